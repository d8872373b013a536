"""Fuzzing the orders API with schemathesis, from contracts/orders_api.yaml."""

import os
import re
import subprocess
import sys
from pathlib import Path

from behave import then, when


@when("the orders API is fuzzed with {examples:d} examples per operation")
def step_fuzz(context, examples):
    context.restarts_before = context.driver.restarts("orders")
    command = [
        str(Path(sys.executable).parent / "st"),
        "run",
        "contracts/orders_api.yaml",
        "--url",
        context.driver.orders_url,
        "--max-examples",
        str(examples),
        "--checks",
        "all",
        "--seed",
        "1",
    ]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "features.fuzz_checks", "PYTHONPATH": os.getcwd()}
    context.fuzz = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)


@then("every response matched the description, without a server error or a stack trace")
def step_fuzz_clean(context):
    output = context.fuzz.stdout + context.fuzz.stderr
    assert context.fuzz.returncode == 0, output[-4000:]
    generated = re.search(r"(\d+) generated", output)
    assert generated and int(generated.group(1)) > 0, output[-2000:]
    print(f"fuzz cases: {generated.group(1)}")


@then("orders is still up, never restarted")
def step_orders_up(context):
    assert context.driver.get_order(1).status in (200, 404)
    assert context.driver.restarts("orders") == context.restarts_before
