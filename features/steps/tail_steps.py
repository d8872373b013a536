"""make tail, run as a process against the stack."""

from behave import given, then, when

from features.driver import Tail


@given("the tail follows an order number of a customer's own")
def step_tail_one_order(context):
    context.order_id = context.driver.new_order_id()
    context.tail = Tail(context.driver.bootstrap_servers, "--order", str(context.order_id))
    context.add_cleanup(context.tail.kill)


@when("customer {customer:d} orders {quantity:d} of item {item:d} under that number")
def step_order_under_number(context, customer, quantity, item):
    body = {"orderId": context.order_id, "userId": customer, "itemId": item, "qty": quantity}
    assert context.driver.post_order(body).status == 201


@then("the tail shows the order created, paid and emailed, each in the order's trace")
def step_tail_chain(context):
    trace = context.driver.wait_for_event(context.order_id, "OrderCreated").trace_id
    for event_type in ("OrderCreated", "PaymentCaptured", "EmailSent"):
        context.tail.line_with(event_type, str(context.order_id), trace)


@then('the tail shows the payment of {amount:d} and the email to "{address}"')
def step_tail_payload(context, amount, address):
    context.tail.line_with("PaymentCaptured", f"amount={amount}")
    context.tail.line_with("EmailSent", f"to={address}")


@then("the tail stops cleanly when interrupted")
def step_tail_stops(context):
    assert context.tail.interrupt() == 0, context.tail.lines
    assert context.tail.lines[-1] == "Stopped.", context.tail.lines
    events = context.tail.lines[1:-1]
    assert all(f" order {context.order_id} " in line for line in events), events
    assert not any("Traceback" in line for line in context.tail.lines), context.tail.lines
