"""What the stack's Prometheus scrapes, alerts on and graphs."""

from behave import given, then, when

from features.browser import SCREENSHOTS
from features.driver import wait_until

ALERT_WITHIN_S = 45.0  # a scrape that times out (5 s apart, 4 s each), then a rule evaluation (5 s apart), with room
CAUGHT_UP_WITHIN_S = 90.0
THROUGHPUT = 'sum by (job) (rate(consumer_events_total{outcome="handled"}[20s]))'
LAG = "sum by (process) (consumer_lag)"


@given("the stack's Prometheus scrapes every process of the stack")
def step_scrapes_all(context):
    processes = {name for _, name in context.faults.stack.processes()}
    targets = wait_until(
        lambda: (found := context.prometheus.targets()) and set(found.values()) == {"up"} and found,
        "every target's last scrape succeeded",
    )
    assert set(targets) == processes, targets


@when("{count:d} orders are placed over {seconds:d} seconds while a billing process is frozen")
def step_burst_billing_frozen(context, count, seconds):
    context.frozen = context.faults.process("billing")
    context.faults.freeze(context.frozen)
    context.add_cleanup(context.faults.thaw, context.frozen)  # whatever the scenario's fate
    context.burst = context.faults.burst(count, per_second=count / seconds)
    context.fault = f"{context.frozen} frozen"


@then("Prometheus alerts that the billing process is down")
def step_alert_down(context):
    def raised():
        return [
            alert
            for alert in context.prometheus.alerts()
            if alert["labels"]["alertname"] == "ServiceDown" and alert["labels"]["process"] == context.frozen
        ]

    [alert] = wait_until(raised, f"ServiceDown is pending or firing for {context.frozen}", ALERT_WITHIN_S)
    assert alert["state"] in ("pending", "firing"), alert
    assert context.frozen in alert["annotations"]["summary"], alert


@when("the billing process is thawed")
def step_thaw_billing(context):
    context.faults.thaw(context.frozen)


@when("orders are placed for {seconds:d} seconds, {per_second:d} a second")
def step_orders_flow(context, seconds, per_second):
    context.burst = context.faults.burst(seconds * per_second, per_second=per_second)
    assert context.burst.accepted, context.burst


@then("Prometheus sees billing handle them and catch up")
def step_seen_and_caught_up(context):
    def billing_rate() -> float:
        return sum(
            float(s["value"][1]) for s in context.prometheus.query(THROUGHPUT) if s["metric"]["job"] == "billing"
        )

    wait_until(lambda: billing_rate() > 1, "Prometheus sees billing handle orders", CAUGHT_UP_WITHIN_S)
    wait_until(lambda: billing_rate() == 0, "Prometheus sees billing caught up", CAUGHT_UP_WITHIN_S)


@then("its graphs show the events each service handled per second and each process's lag")
def step_graphs(context):
    browser = context.browser
    browser.set_window_size(1200, 1800)  # both graphs and their legends
    browser.get(context.prometheus.graph(THROUGHPUT, LAG, over="1m"))
    expected = {f'{{job="{service}"}}' for service in ("orders", "billing", "notifications")} | {
        f'{{process="{name}"}}' for _, name in context.faults.stack.processes()
    }
    wait_until(
        lambda: (
            set(browser.execute_script("return [...document.querySelectorAll('.legend .label')].map(e => e.innerText)"))
            == expected
        ),
        "both graphs are drawn with a line for each service and each process",
    )
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SCREENSHOTS / "prometheus-graph.png"))  # the picture in docs/operating.md
