"""The order page, in headless Chromium."""

from behave import given, then, when
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By

from features.browser import SCREENSHOTS
from features.driver import wait_until

SERVICES = ("orders", "billing", "notifications")


def on_page(read):
    """`read`, retried by `wait_until` when the page redrew the order under it:
    an element found just before a redraw is stale, which means "look again"."""

    def attempt():
        try:
            return read()
        except StaleElementReferenceException:
            return None

    return attempt


@given("the order page is open in a browser")
def step_open_page(context):
    context.browser.get(f"{context.driver.orders_url}/")
    context.browser.execute_script("window.notReloaded = true")


@when("a customer orders {quantity:d} of item {item:d} on the page")
def step_order_on_page(context, quantity, item):
    form = context.browser.find_element(By.ID, "order-form")
    for name, value in (("userId", 5), ("itemId", item), ("qty", quantity)):
        field = form.find_element(By.NAME, name)
        field.clear()
        field.send_keys(str(value))
    form.find_element(By.TAG_NAME, "button").click()


@then("the page shows the order accepted")
def step_page_accepted(context):
    result = wait_until(
        lambda: (text := context.browser.find_element(By.ID, "form-result").text).startswith("Order ") and text,
        "the page says the order was accepted",
    )
    context.order_id = int(result.split()[1])


@then("the page shows the order emailed, with its amount of {amount:d}, without being reloaded")
def step_page_emailed(context, amount):
    browser = context.browser
    item = f"order-{context.order_id}"
    wait_until(
        lambda: browser.execute_script(f"return document.getElementById('{item}')?.dataset.status") == "emailed",
        f"the page shows order {context.order_id} emailed",
    )
    text = wait_until(on_page(lambda: browser.find_element(By.ID, item).text), f"order {context.order_id}'s text")
    assert f"amount {amount}" in text, text
    assert context.driver.wait_for_event(context.order_id, "EmailSent").trace_id in text, text
    assert browser.execute_script("return window.notReloaded") is True, "the page was reloaded"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SCREENSHOTS / "order-page.png"))  # the picture in docs/observability.md


@when("the customer cancels the order on the page")
def step_cancel_on_page(context):
    selector = f"#order-{context.order_id} button.cancel"

    def click_cancel():
        buttons = context.browser.find_elements(By.CSS_SELECTOR, selector)
        if buttons:
            buttons[0].click()
        return bool(buttons)

    wait_until(on_page(click_cancel), f"the page offers to cancel order {context.order_id} and takes the click")


@then("the page shows the chain stopped in red at {first} and {second}, with {money}")
def step_page_stopped(context, first, second, money):
    browser, item = context.browser, f"order-{context.order_id}"

    def stopped_text():
        hops = browser.find_elements(By.CSS_SELECTOR, f"#{item} .hop.stop.done")
        return [hop.text.split()[0] for hop in hops] == [first, second] and browser.find_element(By.ID, item).text

    text = wait_until(on_page(stopped_text), f"the page shows order {context.order_id} stopped at {first} and {second}")
    assert money in text, text
    assert browser.execute_script("return window.notReloaded") is True, "the page was reloaded"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SCREENSHOTS / f"order-page-{first}.png"))


@then("the browser logged no error on its console")
def step_console_clean(context):
    errors = [entry for entry in context.browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert not errors, errors


@when("the order's trace is opened from the page")
def step_open_trace(context):
    trace_id = context.driver.wait_for_event(context.order_id, "EmailSent").trace_id
    wait_until(
        lambda: any(span.name == "send email" for span in context.zipkin.trace(trace_id)),
        f"Zipkin holds the email's span of trace {trace_id}",
    )
    link = context.browser.find_element(By.CSS_SELECTOR, f"#order-{context.order_id} a.trace-link")
    assert link.text == trace_id, link.text
    opened = set(context.browser.window_handles)
    link.click()  # the trace opens in a tab of its own
    tab = wait_until(lambda: set(context.browser.window_handles) - opened, "the trace's tab opens").pop()
    context.browser.switch_to.window(tab)


@then("the trace viewer shows orders, billing and notifications in that one trace")
def step_trace_viewer(context):
    browser = context.browser
    wait_until(
        lambda: all(  # each span's row reads "<service>: <span name>"
            f"{service}: " in browser.find_element(By.TAG_NAME, "body").text for service in SERVICES
        ),
        "Zipkin's trace page shows spans of the three services",
    )
    assert "/zipkin/traces/" in browser.current_url, browser.current_url
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SCREENSHOTS / "zipkin-trace.png"))  # the picture in docs/observability.md
