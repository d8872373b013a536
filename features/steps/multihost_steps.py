"""Processes on hosts of their own, sharing only PostgreSQL and Kafka."""

import time
from concurrent.futures import ThreadPoolExecutor

from behave import given, then, when

from features.driver import Driver, Logs, wait_until
from features.steps.fault_steps import FAULT_TIMEOUT

SECOND_ORDERS_PORT_STEP = 50  # the second orders process answers this far above the first


def order(order_id: int, qty: int = 1) -> dict:
    return {"orderId": order_id, "userId": order_id % 89 + 1, "itemId": 4, "qty": qty}


@given("{count:d} orders have been charged and emailed")
def step_charged(context, count):
    driver = context.driver
    context.orders = [driver.new_order_id() for _ in range(count)]
    for order_id in context.orders:
        assert driver.post_order(order(order_id)).status == 201
    for order_id in context.orders:
        wait_until(lambda o=order_id: driver.events(o, "EmailSent"), f"order {order_id} is emailed", FAULT_TIMEOUT)


@when("billing moves to a new host with an empty folder")
def step_billing_moves(context):
    faults = context.faults
    replicas = [name for name in faults.stack.supervisor.children if name.startswith("billing")]
    for name in replicas:
        faults.retire(name)
    context.add_cleanup(lambda: [faults.add_replica("billing", name) for name in replicas])
    context.add_cleanup(lambda: faults.retire("billing-new-host"))
    folder = faults.stack.config.service_settings("billing", "billing-new-host").data_dir
    assert not folder.exists(), f"{folder} is not empty"
    faults.add_replica("billing", "billing-new-host")


@when("the {count:d} orders are placed again")
def step_placed_again(context, count):
    for order_id in context.orders:
        assert context.driver.post_order(order(order_id)).status == 200


@then("billing on the new host skips each of them as a duplicate")
def step_new_host_skips(context):
    logs = context.driver.logs
    for order_id in context.orders:
        line = f"Billing skipped duplicate OrderCreated for orderId {order_id}"
        wait_until(lambda line=line: line in logs.text("billing-new-host"), f"billing-new-host logs {line!r}")


@then("no payment was captured again")
def step_no_new_payment(context):
    context.driver.settle()
    twice = [o for o in context.orders if len(context.driver.events(o, "PaymentCaptured")) != 1]
    assert not twice, f"orders with other than one PaymentCaptured: {twice}"


@given("a second orders process on another host")
def step_second_orders(context):
    faults, config = context.faults, context.faults.stack.config
    port = config.orders_port + SECOND_ORDERS_PORT_STEP
    faults.add_replica("orders", "orders-other-host", HTTP_PORT=str(port))
    context.add_cleanup(lambda: faults.retire("orders-other-host"))
    context.other = Driver(f"http://127.0.0.1:{port}", context.driver.bootstrap_servers, Logs(str(config.log_dir)))
    context.add_cleanup(context.other.close)
    wait_until(lambda: _answers(context.other), "the second orders process answers", FAULT_TIMEOUT)


def _answers(driver: Driver) -> bool:
    try:
        return driver.get_order(1).status in (200, 404)
    except OSError:
        return False


@when("{automatic:d} orders without a number and {chosen:d} with numbers of their own are placed on both hosts at once")
def step_both_at_once(context, automatic, chosen):
    hosts = (context.driver, context.other)
    context.chosen = {context.driver.new_order_id(): n % 2 + 1 for n in range(chosen)}  # the other host's qty

    def automatic_order(n: int):
        return ("automatic", _post_until_not_busy(hosts[n % 2], {"userId": 1, "itemId": 4, "qty": 1}))

    def chosen_order(order_id: int, host: int):
        qty = 1 if host == 0 else context.chosen[order_id]
        return (order_id, _post_until_not_busy(hosts[host], order(order_id, qty)))

    with ThreadPoolExecutor(max_workers=8) as pool:
        futures = [pool.submit(automatic_order, n) for n in range(automatic)]
        futures += [pool.submit(chosen_order, order_id, host) for order_id in context.chosen for host in (0, 1)]
        context.replies = [future.result() for future in futures]
    assert all(reply.status != 500 for _, reply in context.replies), context.replies


def _post_until_not_busy(driver: Driver, body: dict, attempts: int = 5):
    """Like a careful client, try again after a 503: the database answered too
    late (a busy machine) and nothing was stored."""
    for _ in range(attempts):
        reply = driver.post_order(body)
        if reply.status != 503:
            return reply
    return reply


@then("the orders without a number all got different numbers")
def step_distinct_numbers(context):
    replies = [reply for kind, reply in context.replies if kind == "automatic"]
    assert all(reply.status == 201 for reply in replies), replies
    numbers = [reply.body["orderId"] for reply in replies]
    assert len(set(numbers)) == len(numbers), sorted(numbers)


@then("each number of their own was created once and replayed or refused once")
def step_chosen_once(context):
    for order_id, qty in context.chosen.items():
        statuses = sorted(reply.status for kind, reply in context.replies if kind == order_id)
        assert statuses == ([200, 201] if qty == 1 else [201, 409]), (order_id, statuses)


@then("every order was announced only with its own details")
def step_announced_consistently(context):
    """Two processes write the one outbox at once, so a row may be committed
    after one with a higher id, and published after it: wait for each order's
    announcements before settling, rather than for a marker placed last."""
    driver = context.driver
    numbers = [reply.body["orderId"] for kind, reply in context.replies if kind == "automatic"]
    answered = {
        order_id: sum(
            reply.status in (200, 201) for kind, reply in context.replies if reply.body.get("orderId") == order_id
        )
        for order_id in [*numbers, *context.chosen]
    }
    for order_id, times in answered.items():
        wait_until(
            lambda o=order_id, n=times: len(driver.events(o, "OrderCreated")) >= n,
            f"order {order_id} announced {times} times",
            FAULT_TIMEOUT,
        )
    driver.settle()
    for order_id, times in answered.items():
        announced = driver.events(order_id, "OrderCreated")
        assert len({seen.value for seen in announced}) == 1, (order_id, announced)
        assert len(announced) == times, (order_id, announced)


@when("the database is frozen")
def step_freeze_database(context):
    context.faults.freeze("the database")
    context.add_cleanup(lambda: context.faults.thaw("the database"))


@when("the database is thawed")
def step_thaw_database(context):
    context.faults.thaw("the database")


@then("a new order is refused within {seconds:d} seconds, saying the database cannot be reached")
def step_refused_quickly(context, seconds):
    began = time.monotonic()
    reply = context.driver.post_order({"userId": 1, "itemId": 4, "qty": 1})
    took = time.monotonic() - began
    assert reply.status == 503 and "database" in reply.body["error"], reply
    assert took < seconds, f"answered after {took:.1f}s"


@then("the health check names the database as missing")
def step_health_names_database(context):
    reply = context.driver.health()
    assert reply.status == 503 and reply.body["missing"] == ["database"], reply


@then("a new order is accepted again")
def step_accepted_again(context):
    wait_until(
        lambda: context.driver.post_order({"userId": 1, "itemId": 4, "qty": 1}).status == 201,
        "orders accepts new orders again",
        FAULT_TIMEOUT,
    )


@when(
    "{count:d} orders are placed over {seconds:d} seconds while billing, notifications, orders and the database"
    " are killed and the database is frozen for {frozen:d} seconds"
)
def step_burst_with_database_faults(context, count, seconds, frozen):
    faults = context.faults

    def freeze_for_a_while():
        faults.freeze("the database")
        time.sleep(frozen)  # the fault itself: how long the database stays frozen
        faults.thaw("the database")

    plan = {
        0.1: lambda: faults.kill("billing"),
        0.2: lambda: faults.kill("notifications"),
        0.3: lambda: faults.kill("the database"),
        0.45: lambda: faults.kill("orders"),
        0.55: freeze_for_a_while,
        0.75: lambda: faults.kill("billing-2"),
        0.85: lambda: faults.kill("notifications-2"),
    }
    context.burst = faults.burst(count, per_second=count / seconds, faults_at=plan)
    context.fault = "services and the database killed, the database frozen"


@then("nothing is left waiting in any outbox")
def step_outboxes_empty(context):
    wait_until(
        lambda: not any(context.faults.pending_in_outboxes().values()),
        "every outbox is published",
        FAULT_TIMEOUT,
    )
