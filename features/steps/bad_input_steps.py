"""Sending orders that break the contract."""

from behave import then, when

VALUES = {"zero": 0, "negative": -1, "a word": "two", "a fraction": 1.5, "an extra field": "SAVE10"}


@when("a customer sends an order whose {field} is {value}")
def step_bad_field(context, field, value):
    context.order_id = context.driver.new_order_id()
    body = {"orderId": context.order_id, "userId": 1, "itemId": 2, "qty": 1}
    if value == "missing":
        del body[field]
    else:
        body[field] = VALUES[value]
    context.reply = context.driver.post_order(body)


@when("a customer sends an order that is not JSON")
def step_not_json(context):
    context.announced_before = len(context.driver.topic.all())
    context.reply = context.driver.post_order(b"userId=1&itemId=2&qty=1")


@when("a customer sends an order declared as plain text")
def step_plain_text(context):
    context.announced_before = len(context.driver.topic.all())
    context.reply = context.driver.post_order({"userId": 1, "itemId": 2, "qty": 1}, content_type="text/plain")


@when("a customer sends an order of a megabyte")
def step_huge(context):
    context.announced_before = len(context.driver.topic.all())
    padding = "x" * 1024 * 1024
    context.reply = context.driver.post_order(f'{{"userId": 1, "itemId": 2, "qty": 1, "note": "{padding}"}}'.encode())


@then('the order is refused as bad input naming "{field}"')
def step_refused_naming(context, field):
    assert context.reply.status == 400, context.reply
    named = [problem["field"] for problem in context.reply.body["problems"]]
    assert field in named, context.reply.body


@then('the order is refused with status {status:d} saying "{text}"')
def step_refused_with(context, status, text):
    assert context.reply.status == status, context.reply
    assert text in context.reply.body["error"], context.reply.body


@then("nothing is published for that order")
def step_nothing_for_order(context):
    context.driver.settle()
    assert context.driver.topic.for_order(context.order_id) == []
    assert context.driver.get_order(context.order_id).status == 404


@then("nothing is published")
def step_nothing(context):
    """Only the marker order that settle() places appears after the refusal, with what it causes."""
    context.driver.settle()
    since = context.driver.topic.all()[context.announced_before :]
    created = [seen for seen in since if seen.type == "OrderCreated"]
    assert len(created) == 1, [seen.payload for seen in created]
