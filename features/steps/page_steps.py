"""The order page, in headless Chromium."""

from behave import given, then, when
from selenium.webdriver.common.by import By

from features.browser import SCREENSHOTS
from features.driver import wait_until


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
    text = browser.find_element(By.ID, item).text
    assert f"amount {amount}" in text, text
    assert context.driver.wait_for_event(context.order_id, "EmailSent").trace_id in text, text
    assert browser.execute_script("return window.notReloaded") is True, "the page was reloaded"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SCREENSHOTS / "order-page.png"))  # the picture in the README
