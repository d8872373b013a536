"""Killing, freezing and poisoning the local stack, then counting effects."""

from behave import then, when

from features.driver import wait_until
from features.faults import EMAILS
from features.poison import POISON_KINDS, publish_poison

FAULT_TIMEOUT = 120.0


@when("{count:d} orders are placed over {seconds:d} seconds while {target} is killed {times:d} times")
def step_burst_with_kills(context, count, seconds, target, times):
    faults = context.faults
    kills = {(n + 1) / (times + 1): (lambda: faults.kill(target)) for n in range(times)}
    context.burst = faults.burst(count, per_second=count / seconds, faults_at=kills)
    context.fault = f"{target} killed {times} times"


@when(
    "{count:d} orders are placed while a third replica of billing and of notifications joins and leaves,"
    " and replicas are killed meanwhile"
)
def step_burst_with_rebalances(context, count):
    """A joining or leaving replica makes its group rebalance; kills land in the middle."""
    faults = context.faults
    plan = {
        0.1: lambda: faults.add_replica("billing", "billing-3"),
        0.15: lambda: faults.kill("billing-1"),
        0.3: lambda: faults.add_replica("notifications", "notifications-3"),
        0.35: lambda: faults.kill("notifications-2"),
        0.6: lambda: faults.retire("billing-3"),
        0.65: lambda: faults.kill("billing-2"),
        0.8: lambda: faults.retire("notifications-3"),
        0.85: lambda: faults.kill("notifications-1"),
    }
    context.burst = faults.burst(count, per_second=count / 10, faults_at=plan)
    context.fault = "replicas killed while partitions move"


@when("{count:d} orders are placed while the broker is frozen")
def step_burst_frozen(context, count):
    frozen_burst(context, count, per_second=20)


@when("{count:d} orders are placed over {seconds:d} seconds while the broker is frozen")
def step_long_burst_frozen(context, count, seconds):
    """Longer than the consumers' 10 s session: the broker drops their
    membership, and a static member that comes back is fenced."""
    frozen_burst(context, count, per_second=count / seconds)


def frozen_burst(context, count: int, per_second: float) -> None:
    context.faults.freeze("the broker")
    try:
        context.burst = context.faults.burst(count, per_second=per_second)
    except BaseException:
        context.faults.thaw("the broker")
        raise
    context.fault = "broker frozen"


@when("the broker is thawed")
def step_thaw(context):
    context.faults.thaw("the broker")


@then("every order was answered within {seconds:d} seconds")
def step_answered_quickly(context, seconds):
    burst = context.burst
    assert not burst.refused, f"refused while the broker was frozen: {burst.refused}"
    assert burst.slowest_answer < seconds, f"slowest answer took {burst.slowest_answer:.1f}s"


@when("{per_kind:d} poison messages of each kind are published among {count:d} good orders")
def step_poison(context, per_kind, count):
    poison = []

    def inject():
        poison.extend(publish_poison(context.driver.bootstrap_servers, per_kind))

    context.burst = context.faults.burst(count, per_second=40, faults_at={0.3: inject, 0.6: inject})
    context.poison = poison
    context.fault = "poison"


@then("every accepted order is charged once and emailed once")
def step_exactly_once(context):
    driver, burst = context.driver, context.burst
    assert burst.accepted, "no order was accepted"
    for order_id in burst.accepted:
        wait_until(lambda o=order_id: driver.events(o, "EmailSent"), f"order {order_id} is emailed", FAULT_TIMEOUT)
    driver.settle()
    effects = context.faults.charges_and_emails(burst.accepted)
    wrong = {order: counts for order, counts in effects.items() if counts != (1, 1)}
    topic_wrong = [
        o
        for o in burst.accepted
        if len(driver.distinct_ids(o, "PaymentCaptured")) != 1 or len(driver.distinct_ids(o, "EmailSent")) != 1
    ]
    context.faults.record(
        {
            "fault": context.fault,
            "orders_placed": len(burst.accepted) + len(burst.refused),
            "orders_accepted": len(burst.accepted),
            "kills": dict(context.faults.kills),
            "dead_letters": len(context.driver.topic.all("orders.events.dlq")),
            "orders_lost": sum(1 for counts in effects.values() if 0 in counts),
            "double_charges": sum(1 for charges, _ in effects.values() if charges > 1),
            "double_emails": sum(1 for _, emails in effects.values() if emails > 1),
            "slowest_answer_s": round(burst.slowest_answer, 2),
            "longest_stall_s": round(longest_stall(driver, burst), 2),
        }
    )
    assert not wrong, f"(charges, emails) per order that is not (1, 1): {wrong}"
    assert not topic_wrong, f"orders without exactly one payment and one email on the topic: {topic_wrong}"


@then("copies of an event on the topic share its id")
def step_copies_share_id(context):
    """A payment or an email is one event, however often a crash made it be published."""
    copies = 0
    for order_id in context.burst.accepted:
        for event_type in ("PaymentCaptured", "EmailSent"):
            seen = context.driver.events(order_id, event_type)
            assert len({event.id for event in seen}) == 1, (order_id, event_type, seen)
            copies += len(seen) - 1
    context.faults.record({"fault": context.fault, "duplicate_copies_on_topic": copies})


@then("the dead-letter topic holds exactly the poison, once for each service")
def step_dead_letters(context):
    driver = context.driver
    expected = {(p.partition, p.offset) for p in context.poison if p.kind != "unknown type"}
    services = {"orders", "billing", "notifications"}

    def letters():
        found = {}
        for seen in driver.topic.all("orders.events.dlq"):
            if not (seen.key or "").startswith("poison-"):
                continue  # set aside by another scenario (an order breaking its contract)
            origin = (int(seen.headers["dlq_partition"]), int(seen.headers["dlq_offset"]))
            found.setdefault(origin, set()).add((seen.headers["dlq_service"], seen.id))
        return found

    wait_until(
        lambda: all(len(letters().get(origin, ())) >= 3 for origin in expected),
        "every poison message is dead-lettered by each service",
        FAULT_TIMEOUT,
    )
    driver.settle()
    found = letters()
    assert set(found) == expected, f"dead letters for {set(found) - expected}, missing {expected - set(found)}"
    for origin, copies in found.items():
        assert {service for service, _ in copies} == services and len(copies) == 3, (origin, copies)
    kinds = {p.kind for p in context.poison}
    assert kinds == set(POISON_KINDS), kinds


@then("events of an unknown type are skipped, not dead-lettered")
def step_unknown_skipped(context):
    unknown = {(p.partition, p.offset) for p in context.poison if p.kind == "unknown type"}
    dead = {
        (int(seen.headers["dlq_partition"]), int(seen.headers["dlq_offset"]))
        for seen in context.driver.topic.all("orders.events.dlq")
    }
    assert unknown and not unknown & dead


@when(
    "{count:d} orders, every third above the credit limit and every third cancelled right away, are placed over"
    " {seconds:d} seconds while billing, notifications and orders are killed in turn"
)
def step_saga_burst(context, count, seconds):
    faults = context.faults
    kills = {
        fraction: (lambda target=target: faults.kill(target))
        for fraction, target in ((0.2, "billing"), (0.4, "notifications"), (0.6, "orders"), (0.8, "billing"))
    }
    context.burst = faults.burst(count, per_second=count / seconds, faults_at=kills, saga=True)
    context.fault = "saga: billing, notifications and orders killed"
    _wait_for_the_sagas(context)


def _wait_for_the_sagas(context) -> None:
    burst, faults = context.burst, context.faults
    for order_id in burst.accepted:
        declined, cancelled = order_id in burst.declined, order_id in burst.cancelled
        wait_until(
            lambda o=order_id, d=declined, c=cancelled: faults.saga_ran(o, d, c),
            f"order {order_id} has had its charge, refund and emails",
            FAULT_TIMEOUT,
        )
    context.driver.settle()
    context.effects = faults.effects(burst.accepted)


@then("every declined order is never charged, and every other order is charged once")
def step_saga_charges(context):
    burst, effects = context.burst, context.effects
    wrong = {
        order: each.charges
        for order, each in effects.items()
        if each.charges != (0 if order in burst.declined else 1) and order not in burst.cancelled
    }
    wrong |= {order: effects[order].charges for order in burst.cancelled if effects[order].charges > 1}
    context.faults.record(
        {
            "fault": context.fault,
            "orders_accepted": len(burst.accepted),
            "declined": len(burst.declined),
            "cancelled": len(burst.cancelled),
            "kills": dict(context.faults.kills),
            "charges": sum(each.charges for each in effects.values()),
            "refunds": sum(each.refunds for each in effects.values()),
            "emails": {t: sum(each.emails[t] for each in effects.values()) for t in EMAILS},
        }
    )
    assert not wrong, f"charges per order that are wrong: {wrong}"


@then("every order is refunded once exactly when it was charged and cancelled")
def step_saga_refunds(context):
    burst, effects = context.burst, context.effects
    wrong = {
        order: (each.charges, each.refunds)
        for order, each in effects.items()
        if each.refunds != (each.charges if order in burst.cancelled else 0)
    }
    assert not wrong, f"(charges, refunds) per order that are wrong: {wrong}"


@then("every order is emailed once per email it is owed")
def step_saga_emails(context):
    burst, effects = context.burst, context.effects

    def owed(order: int, each) -> dict[str, int]:
        stopped = order in burst.declined or order in burst.cancelled
        return {"order_confirmed": each.charges, "order_cancelled": int(stopped), "payment_refunded": each.refunds}

    wrong = {order: each.emails for order, each in effects.items() if each.emails != owed(order, each)}
    assert not wrong, f"emails per order that are not what it is owed: {wrong}"


@then("copies of an event on the topic share its id, whatever its kind")
def step_saga_copies(context):
    """One id per event: per order, per type, and for emails per template."""
    copies = 0
    for order_id in context.burst.accepted:
        kinds: dict[tuple, set[str]] = {}
        seen = context.driver.topic.for_order(order_id)
        for event in seen:
            kind = (event.type, (event.payload or {}).get("template"))
            kinds.setdefault(kind, set()).add(event.id)
        wrong = {kind: ids for kind, ids in kinds.items() if len(ids) != 1 and kind[0] != "OrderCreated"}
        assert not wrong, (order_id, wrong)
        copies += len(seen) - sum(len(ids) for ids in kinds.values())
    context.faults.record({"fault": context.fault, "duplicate_copies_on_topic": copies})


@then("the page follows every accepted order to its email")
def step_page_follows(context):
    """orders' own consumer, which follows each order's chain for the page, came back too."""
    for order_id in context.burst.accepted:
        wait_until(
            lambda o=order_id: context.driver.get_order(o).body.get("status") == "emailed",
            f"the page shows order {order_id} emailed",
            FAULT_TIMEOUT,
        )


def longest_stall(driver, burst) -> float:
    """The longest wait, over the burst's accepted orders, from the order's acceptance to its
    first EmailSent reaching Kafka (one machine's clock: a figure, not a pass or fail)."""
    return max(
        min(seen.timestamp for seen in driver.events(order_id, "EmailSent")) / 1000 - burst.accepted_at[order_id]
        for order_id in burst.accepted
    )
