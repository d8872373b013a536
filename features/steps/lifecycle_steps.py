"""Starting, closing, killing and stopping `make run`, and what is left after."""

import json
import os
import socket
import sys

import psutil
from behave import given, then, when

from devstack.stack import StackConfig, read_store
from eventbus.settings import Env, checked
from features.driver import Driver, wait_until
from features.faults import charges_and_emails
from features.lifecycle import Terminal, alive, parts, post_order, wait_until_gone


def record(context, seconds: float) -> None:
    """Keep how long the stack took to go, for the run's report."""
    with open(context.place.home.parent / "stop-times.jsonl", "a") as report:
        report.write(json.dumps({"scenario": context.scenario.name, "gone_after_s": round(seconds, 1)}) + "\n")


def start(context, **env: str) -> Terminal:
    terminal = Terminal(context.place.env(**env))
    context.terminals.append(terminal)
    return terminal


def started(context) -> Terminal:
    terminal = start(context)
    terminal.wait_for("ready:")
    context.processes += terminal.processes()
    return terminal


@given("make run is running in a terminal")
def step_running(context):
    context.terminal = started(context)


def look_before(context) -> None:
    """Note the stack's processes, and its parts among them, before it is stopped:
    a process killed and reaped has no name or parent left to count it by."""
    context.before = alive(context.terminal.processes())
    context.parts_before = parts(context.before)


@when("the terminal is closed")
def step_close_terminal(context):
    look_before(context)
    context.terminal.hang_up()


@when("{target} is killed with SIGKILL")
def step_kill(context, target):
    look_before(context)
    process = (
        context.terminal.supervisor() if target == "the supervisor" else psutil.Process(context.terminal.process.pid)
    )
    process.kill()


@then("no process of the stack is left after {seconds:d} seconds")
def step_none_left(context, seconds):
    postgres = checked(read_store) == "postgres"
    expected = "make, the supervisor, Kafka, 3 services" + " and PostgreSQL" * postgres
    assert len(context.parts_before) == 6 + postgres, f"{expected}: {context.parts_before}"
    record(context, wait_until_gone(context.before, seconds))


@when("a second make run starts {where}")
def step_second(context, where):
    home = context.place.home if where == "on the same folder and ports" else context.place.home.with_name("other")
    terminal = Terminal(context.place.env(STACK_DIR=str(home)))
    context.terminals.append(terminal)
    context.second = terminal


@then("it is refused within {seconds:d} seconds, naming {holder} and how to stop it")
def step_refused(context, seconds, holder):
    terminal = context.second
    assert terminal.wait_for_exit(seconds) != 0, terminal.output()
    if holder == "that program's pid":
        expected = [f"port {context.place.orders_port} (orders) is taken by pid {os.getpid()}", f"kill {os.getpid()}"]
    else:
        supervisor = context.terminal.supervisor().pid
        expected = [f"kill {supervisor}"] + {
            "the running stack's supervisor": [f"a stack already runs from {context.place.home}: pid {supervisor}"],
            "Kafka's pid and the stack's supervisor": [
                f"port {context.place.kafka_port} (Kafka) is taken by pid {context.place.children()['kafka'].pid}",
                f"of the stack run by pid {supervisor}",
            ],
        }[holder]
    for text in expected:
        assert text in terminal.output(), terminal.output()
    assert "Traceback" not in terminal.output(), terminal.output()


@given("another program listens on the orders port")
def step_port_taken(context):
    listener = socket.socket()
    listener.bind(("127.0.0.1", context.place.orders_port))
    listener.listen()
    context.cleanups.append(listener.close)


@when("make run starts")
def step_make_run(context):
    context.second = start(context)


@when("the stack starts with UNIT_PRICE={value}")
def step_bad_setting(context, value):
    context.second = Terminal(context.place.env(UNIT_PRICE=value), (sys.executable, "-m", "devstack", "run"))
    context.terminals.append(context.second)


@then('it exits with code {code:d} and prints only "{line}"')
def step_exit_line(context, code, line):
    assert context.second.wait_for_exit(60) == code, context.second.output()
    assert context.second.output() == line + "\n", context.second.output()
    assert not context.place.children(), "something was started"


@given("its {target} process is frozen")
def step_freeze(context, target):
    context.frozen = context.place.children()[target]
    context.frozen.suspend()


@then("only the frozen process is left after {seconds:d} seconds")
def step_only_frozen_left(context, seconds):
    others = [process for process in context.before if process.pid != context.frozen.pid]
    wait_until_gone(others, seconds)
    assert alive([context.frozen]), "the frozen process ended, but it could not act on SIGTERM"


@when("make run starts again")
def step_start_again(context):
    context.terminal = started(context)


@then('it says "{text}"')
def step_says(context, text):
    text = text.replace("<home>", str(context.place.home)).replace("<pid>", str(context.frozen.pid))
    assert text in context.terminal.output(), context.terminal.output()


@then("the frozen process is gone")
def step_frozen_gone(context):
    assert not alive([context.frozen])


@given("{count:d} orders have been placed")
@when("{count:d} more orders are placed")
def step_place_orders(context, count):
    for _ in range(count):
        order_id = Driver.new_order_id()
        status = post_order(context.place.orders_url, {"orderId": order_id, "userId": 3, "itemId": 4, "qty": 1})
        assert status == 201, status
        context.orders.append(order_id)


@given("the broker is frozen")
def step_freeze_broker(context):
    step_freeze(context, "kafka")


@when("make run is stopped with Ctrl-C")
def step_ctrl_c(context):
    look_before(context)
    context.terminal.interrupt()


@then("everything has stopped within {seconds:d} seconds")
def step_stopped_within(context, seconds):
    record(context, wait_until_gone(context.before, seconds))


@then("every order is charged once and emailed once")
def step_once_each(context):
    config = StackConfig.from_env(Env(context.place.env()))
    wait_until(
        lambda: all(
            counts != (0, 0) and 0 not in counts for counts in charges_and_emails(config, context.orders).values()
        ),
        "every order is charged and emailed",
        120,
    )
    wrong = {order: counts for order, counts in charges_and_emails(config, context.orders).items() if counts != (1, 1)}
    assert not wrong, f"(charges, emails) per order that is not (1, 1): {wrong}"
