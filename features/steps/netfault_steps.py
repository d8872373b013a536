"""A host's fault for a while during a burst of orders, and how long orders stalled."""

import time

from behave import given, then, when

from features.driver import wait_until
from features.netfaults import HostFaults
from features.steps.fault_steps import longest_stall


@given("every broker holds an in-sync copy of every partition")
def step_cluster_whole(context):
    faults = context.faults

    def whole() -> bool:
        return all(faults.in_sync_everywhere(broker) for broker in faults.stack.kafka.nodes)

    wait_until(whole, "every broker is in sync on every partition", 120)


@when("{count:d} orders are placed over {seconds:d} seconds while {who} is {fault} for {lasting:d} seconds")
def step_burst_with_host_fault(context, count, seconds, who, fault, lasting):
    hosts = HostFaults(context.faults)

    def fault_for_a_while() -> None:
        name = hosts.process(who)
        end = hosts.begin(name, fault)
        try:
            time.sleep(lasting)  # the fault's duration, not a wait for something to happen
        finally:
            end()

    context.burst = context.faults.burst(count, per_second=count / seconds, faults_at={0.1: fault_for_a_while})
    context.fault, context.fault_s = f"{who} {fault}", lasting


@then("no accepted order waited longer than {seconds:d} seconds for its email")
def step_no_long_stall(context, seconds):
    burst = context.burst
    stall = longest_stall(context.driver, burst)
    counts = context.faults.charges_and_emails(burst.accepted).values()
    context.faults.record(
        {
            "fault": context.fault,
            "for (s)": context.fault_s,
            "longest stall (s)": round(stall, 1),
            "accepted": len(burst.accepted),
            "refused": len(burst.refused),
            "charged twice": sum(charges > 1 for charges, _ in counts),
            "emailed twice": sum(emails > 1 for _, emails in counts),
        }
    )
    assert stall <= seconds, f"an accepted order waited {stall:.1f}s for its email"
