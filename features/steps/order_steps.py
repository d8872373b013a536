"""Placing orders and following them along the chain."""

from concurrent.futures import ThreadPoolExecutor

from behave import given, then, when

from eventbus import contracts
from features.driver import wait_until


@when("customer {customer:d} orders {quantity:d} of item {item:d}")
def step_order(context, customer, quantity, item):
    context.reply = context.driver.post_order({"userId": customer, "itemId": item, "qty": quantity})
    context.order_id = context.reply.body.get("orderId")


@given("customer {customer:d} has ordered {quantity:d} of item {item:d} under an order number of their own")
def step_order_with_own_number(context, customer, quantity, item):
    context.order_id = context.driver.new_order_id()
    context.order = {"orderId": context.order_id, "userId": customer, "itemId": item, "qty": quantity}
    context.reply = context.driver.post_order(context.order)
    assert context.reply.status == 201, context.reply


@given("a customer has taken the largest order number there is")
def step_largest_number_taken(context):
    largest = contracts.schema("CreateOrderRequest")["properties"]["orderId"]["maximum"]
    reply = context.driver.post_order({"orderId": largest, "userId": 1, "itemId": 2, "qty": 1})
    assert reply.status in (201, 200, 409), reply  # new, or taken before on a stack that keeps its data


@then("the same order can be placed again under that number")
def step_replay_by_number(context):
    order = {name: context.reply.body[name] for name in ("orderId", "userId", "itemId", "qty")}
    reply = context.driver.post_order(order)
    assert reply.status == 200, reply


@then("the order is accepted with a new order number")
def step_accepted(context):
    assert context.reply.status == 201, context.reply
    assert context.order_id >= 1, context.reply


@then("exactly one payment of {amount:d} is captured for the order")
def step_one_payment(context, amount):
    payment = context.driver.wait_for_event(context.order_id, "PaymentCaptured")
    assert payment.payload["amount"] == amount, payment.payload
    context.driver.settle()
    assert len(context.driver.distinct_ids(context.order_id, "PaymentCaptured")) == 1


@then('exactly one email about the order is sent to "{address}"')
def step_one_email(context, address):
    email = context.driver.wait_for_event(context.order_id, "EmailSent")
    assert email.payload["to"] == address, email.payload
    context.driver.settle()
    assert len(context.driver.distinct_ids(context.order_id, "EmailSent")) == 1


@then("the order's status says it was created, paid and emailed")
def step_status(context):
    reply = wait_until(
        lambda: (r := context.driver.get_order(context.order_id)).body.get("status") == "emailed" and r,
        f"order {context.order_id} shows as emailed",
    )
    chain = reply.body["chain"]
    assert chain["created"] <= chain["paid"] <= chain["emailed"], chain


@given("the order has been paid and emailed")
def step_paid_and_emailed(context):
    context.driver.wait_for_event(context.order_id, "EmailSent")


@when("the same order is placed again")
def step_replay(context):
    context.reply = context.driver.post_order(context.order)


@when("a different order is placed under the same order number")
def step_conflicting_order(context):
    context.reply = context.driver.post_order({**context.order, "qty": context.order["qty"] + 1})


@then("the order is accepted again as a replay")
def step_replayed(context):
    assert context.reply.status == 200, context.reply
    assert {name: context.reply.body[name] for name in context.order} == context.order, context.reply


@then("it is refused as a conflict")
def step_conflict(context):
    assert context.reply.status == 409, context.reply
    assert str(context.order_id) in context.reply.body["error"], context.reply


@then("billing reports that it skipped the duplicate order")
def step_billing_skipped(context):
    context.driver.wait_for_log("billing", f"Billing skipped duplicate OrderCreated for orderId {context.order_id}")


@then("the order was announced twice but paid once and emailed once")
def step_announced_twice(context):
    driver = context.driver
    wait_until(
        lambda: len(driver.distinct_ids(context.order_id, "OrderCreated")) == 2,
        "the order was announced a second time",
    )
    driver.settle()
    assert len(driver.distinct_ids(context.order_id, "PaymentCaptured")) == 1
    assert len(driver.distinct_ids(context.order_id, "EmailSent")) == 1


@then("the order was announced only once")
def step_announced_once(context):
    context.driver.settle()
    assert len(context.driver.distinct_ids(context.order_id, "OrderCreated")) == 1


@when("{count:d} customers each place an order at the same time")
def step_burst(context, count):
    bodies = [{"userId": customer, "itemId": 1 + customer % 5, "qty": 1} for customer in range(1, count + 1)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        replies = list(pool.map(context.driver.post_order, bodies))
    assert all(reply.status == 201 for reply in replies), replies
    context.order_ids = [reply.body["orderId"] for reply in replies]


@then("every one of those orders is paid once and emailed once")
def step_burst_done(context):
    driver = context.driver
    for order_id in context.order_ids:
        driver.wait_for_event(order_id, "EmailSent")
    driver.settle()
    for order_id in context.order_ids:
        assert len(driver.distinct_ids(order_id, "PaymentCaptured")) == 1, order_id
        assert len(driver.distinct_ids(order_id, "EmailSent")) == 1, order_id


@then("every payment captured so far is followed by its email")
def step_every_payment_emailed(context):
    driver = context.driver
    driver.settle()
    paid = {seen.key for seen in driver.topic.all() if seen.type == "PaymentCaptured"}
    assert paid, "no payments on the topic yet"
    wait_until(
        lambda: paid <= {seen.key for seen in driver.topic.all() if seen.type == "EmailSent"},
        f"all {len(paid)} paid orders have their email",
    )
