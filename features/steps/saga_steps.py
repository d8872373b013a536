"""The order's saga: a declined payment, a customer's cancel, the refund and the emails."""

from concurrent.futures import ThreadPoolExecutor

from behave import given, then, when

from features.driver import wait_until


@given("customer {customer:d} has a paid order of {quantity:d} of item {item:d}")
def step_paid_order(context, customer, quantity, item):
    reply = context.driver.post_order({"userId": customer, "itemId": item, "qty": quantity})
    assert reply.status == 201, reply
    context.order_id = reply.body["orderId"]
    context.driver.wait_for_event(context.order_id, "PaymentCaptured")


@when("the customer cancels the order")
def step_cancel(context):
    context.cancel = context.driver.cancel_order(context.order_id)


@when("the customer cancels the order again")
def step_cancel_again(context):
    context.again = context.driver.cancel_order(context.order_id)


@when("the customer cancels the order {times:d} times at once")
def step_cancel_at_once(context, times):
    with ThreadPoolExecutor(max_workers=times) as pool:
        context.cancels = list(pool.map(context.driver.cancel_order, [context.order_id] * times))


@when("{count:d} customers each order {quantity:d} of item {item:d} and cancel it right away")
def step_race(context, count, quantity, item):
    def order_and_cancel(customer: int):
        reply = context.driver.post_order({"userId": customer, "itemId": item, "qty": quantity})
        assert reply.status == 201, reply
        return reply.body["orderId"], context.driver.cancel_order(reply.body["orderId"])

    with ThreadPoolExecutor(max_workers=count) as pool:
        context.raced = list(pool.map(order_and_cancel, range(1, count + 1)))


@when("a customer cancels an order that does not exist")
def step_cancel_unknown(context):
    context.order_id = context.driver.new_order_id()
    context.cancel = context.driver.cancel_order(context.order_id)


@then("its payment of {amount:d} is declined because it is above the credit limit")
def step_declined(context, amount):
    declined = context.driver.wait_for_event(context.order_id, "PaymentDeclined")
    assert declined.payload["amount"] == amount, declined.payload
    assert "above the credit limit" in declined.payload["reason"], declined.payload
    context.driver.wait_for_log("billing", f"Billing declined {{'orderId': {context.order_id}")


@then("the order is cancelled once, for the reason billing gave")
def step_cancelled_for_billings_reason(context):
    reason = context.driver.wait_for_event(context.order_id, "PaymentDeclined").payload["reason"]
    step_cancelled_once(context, reason)


@then('the order is cancelled once, for the reason "{reason}"')
def step_cancelled_once(context, reason):
    driver = context.driver
    cancelled = driver.wait_for_event(context.order_id, "OrderCancelled")
    assert cancelled.payload["reason"] == reason, cancelled.payload
    driver.settle()
    assert len(driver.distinct_ids(context.order_id, "OrderCancelled")) == 1


@then("the customer is emailed once that the order was cancelled")
def step_cancel_email(context):
    _one_email(context, "order_cancelled")


@then("the customer is emailed once about the refund")
def step_refund_email(context):
    _one_email(context, "payment_refunded")


def _one_email(context, template: str) -> None:
    driver = context.driver
    wait_until(lambda: driver.emails(context.order_id, template), f"a {template} email for order {context.order_id}")
    driver.settle()
    assert len(driver.emails(context.order_id, template)) == 1


@then("no payment is captured and nothing is refunded for the order")
def step_nothing_charged(context):
    driver = context.driver
    driver.settle()
    assert driver.events(context.order_id, "PaymentCaptured") == []
    assert driver.events(context.order_id, "PaymentRefunded") == []


@then("the cancel is accepted, and the order says it is cancelled")
def step_cancel_accepted(context):
    assert context.cancel.status == 202, context.cancel
    assert context.cancel.body["orderId"] == context.order_id, context.cancel
    assert context.cancel.body["status"] == "cancelled", context.cancel


@then("the second cancel answers that the order was already cancelled")
def step_cancel_again_answer(context):
    assert context.cancel.status == 202, context.cancel
    assert context.again.status == 200, context.again
    assert context.again.body["status"] == "cancelled", context.again


@then("one cancel is accepted and the {others:d} others answer that it was already cancelled")
def step_cancels_at_once(context, others):
    statuses = sorted(reply.status for reply in context.cancels)
    assert statuses == [200] * others + [202], statuses


@then("exactly one refund of {amount:d} is made for the order")
def step_one_refund(context, amount):
    driver = context.driver
    refund = driver.wait_for_event(context.order_id, "PaymentRefunded")
    assert refund.payload["amount"] == amount, refund.payload
    driver.settle()
    assert len(driver.distinct_ids(context.order_id, "PaymentRefunded")) == 1
    assert driver.money_kept(context.order_id) == 0


@then("the order's status says it was cancelled, and {what}")
def step_cancelled_status(context, what):
    refunded = what == "its money went back"

    def shown():
        reply = context.driver.get_order(context.order_id)
        done = reply.body.get("status") == "cancelled" and reply.body.get("refunded") is refunded
        return done and reply

    reply = wait_until(shown, f"order {context.order_id} shows as cancelled, refunded: {refunded}")
    assert reply.body["reason"], reply


@then("every cancel is accepted")
def step_every_cancel_accepted(context):
    assert all(cancel.status == 202 for _, cancel in context.raced), context.raced


@then("for each of those orders, charges minus refunds come to 0, and nothing is refunded that was not charged")
def step_race_settled(context):
    """Billing reads an order's events in order: it decides on the payment, then on the cancel,
    and says what it made of the cancel. Its refund follows its charge on the topic."""
    driver = context.driver
    for order_id, _ in context.raced:
        refunded, nothing = f"Billing refunded {{'orderId': {order_id},", f"order {order_id} cancelled, nothing"
        wait_until(
            lambda r=refunded, n=nothing: (r in (text := driver.logs.text("billing"))) or n in text,
            f"billing has read the cancel of order {order_id}",
        )
        if refunded in driver.logs.text("billing"):
            driver.wait_for_event(order_id, "PaymentRefunded")
    driver.settle()
    for order_id, _ in context.raced:
        charges = len(driver.distinct_ids(order_id, "PaymentCaptured"))
        refunds = len(driver.distinct_ids(order_id, "PaymentRefunded"))
        assert (charges, refunds) in ((0, 0), (1, 1)), (order_id, charges, refunds)
        assert driver.money_kept(order_id) == 0, order_id
    print("charged, then refunded:", sum(len(driver.distinct_ids(o, "PaymentCaptured")) for o, _ in context.raced))


@then("the cancel answers 404, naming the order")
def step_cancel_unknown_answer(context):
    assert context.cancel.status == 404, context.cancel
    assert str(context.order_id) in context.cancel.body["error"], context.cancel
