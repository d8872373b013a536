"""make dlq, run as a process against the stack."""

import fcntl
import json
import os
import signal
import struct
import subprocess
import sys
import termios

from behave import given, then, when
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from devstack.kafka import client
from devstack.topic import partitions, read_to_end, seen
from eventbus.store import open_store
from features.driver import wait_until
from features.newer_orders import read_past
from features.poison import publish_poison

SERVICES = {"orders", "billing", "notifications"}
REASONS = {"not JSON": "", "breaks its contract": "contract", "no type header": "ce_type"}  # in each reason
LISTED_WITHIN_S = 60.0


def listing(context, *options: str) -> list[dict]:
    """`make dlq --json`'s dead letters of this scenario's poison messages."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "devstack.dlq",
            "--json",
            "--bootstrap-servers",
            context.driver.bootstrap_servers,
            *options,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    ours = {(p.partition, p.offset): p.kind for p in context.poison}
    return [
        letter | {"kind": ours[key]}
        for letter in json.loads(done.stdout)
        if (key := (letter["partition"], letter["offset"])) in ours and letter["topic"] == "orders.events"
    ]


@when("a poison message of each kind is published")
def step_publish_poison(context):
    context.poison = publish_poison(context.driver.bootstrap_servers, per_kind=1)


@then("the dead-letter listing shows each of them once for each service, with its reason")
def step_listed(context):
    expected = {(kind, service) for kind in REASONS for service in SERVICES}
    wait_until(
        lambda: {(letter["kind"], letter["service"]) for letter in listing(context)} >= expected,
        "every poison message is listed for each service",
        LISTED_WITHIN_S,
    )
    letters = listing(context)
    assert sorted((letter["kind"], letter["service"]) for letter in letters) == sorted(expected), letters
    for letter in letters:
        assert REASONS[letter["kind"]].lower() in letter["reason"].lower(), letter


@then("the listing of billing's dead letters shows billing's alone")
def step_listed_by_service(context):
    letters = listing(context, "--service", "billing")
    assert {letter["service"] for letter in letters} == {"billing"} and len(letters) == len(REASONS), letters


@then("the listing of dead letters that broke their contract shows those alone")
def step_listed_by_reason(context):
    letters = listing(context, "--reason", "contract")
    assert {letter["kind"] for letter in letters} == {"breaks its contract"} and len(letters) == 3, letters


# --- make redrive -----------------------------------------------------------------------------

NO_PRICE = "item 9 has no price"
SENT_BACK_WITHIN_S = 60.0
PIPE_BYTES = 4096  # the least a pipe holds: a redrive that prints into it unread stops once it is full


def restart_billing(context, **env: str) -> None:
    """Each billing replica stopped and started again with `env` as its settings
    (none: its defaults), as a redeploy would: the same names, so the same members."""
    faults = context.faults
    for name in [name for name in faults.stack.supervisor.children if name.startswith("billing")]:
        faults.retire(name)
        faults.add_replica("billing", name, **env)


def dead_letters_of(context, order_id: int) -> list:
    return [
        seen
        for seen in context.driver.topic.all("orders.events.dlq")
        if seen.key == str(order_id) and seen.headers.get("dlq_service") == "billing"
    ]


def set_aside(context, order_ids: list[int], copies: int) -> list[str]:
    """Wait until billing has set aside `copies` of each order, saying why; their places (partition@offset)."""
    for order_id in order_ids:
        wait_until(
            lambda o=order_id: len(dead_letters_of(context, o)) >= copies,
            f"billing sets aside {copies} of order {order_id}",
            SENT_BACK_WITHIN_S,
        )
    letters = [seen for order_id in order_ids for seen in dead_letters_of(context, order_id)]
    assert all(NO_PRICE in seen.reason for seen in letters), [seen.reason for seen in letters]
    return [f"{seen.partition}@{seen.offset}" for seen in letters]


def redrive(context, places: list[str], **popen) -> subprocess.Popen:
    command = [sys.executable, "-m", "devstack.redrive", "--bootstrap-servers", context.driver.bootstrap_servers]
    return subprocess.Popen([*command, "--offsets", ",".join(places)], text=True, **popen)


def dead_letter_count(context) -> int:
    reply = context.driver.dead_letters()
    assert reply.status == 200, reply
    return reply.body["count"]


@given("billing charges only for the items it has a price for, and item 9 has none")
def step_only_priced_items(context):
    context.dead_letters_before = dead_letter_count(context)
    restart_billing(context, ONLY_PRICED_ITEMS="1", ITEM_PRICES="1=100,2=100,3=100")
    context.add_cleanup(restart_billing, context)


@when("customer {customer:d} orders {quantity:d} of item {item:d}, and places the same order again")
def step_order_twice(context, customer, quantity, item):
    context.order_id = context.driver.new_order_id()
    order = {"orderId": context.order_id, "userId": customer, "itemId": item, "qty": quantity}
    assert context.driver.post_order(order).status == 201
    assert context.driver.post_order(order).status == 200


@when("{count:d} orders of item {item:d} are placed")
def step_many_orders(context, count, item):
    context.orders = [context.driver.new_order_id() for _ in range(count)]
    for order_id in context.orders:
        reply = context.driver.post_order({"orderId": order_id, "userId": 4, "itemId": item, "qty": 1})
        assert reply.status == 201, reply


@then("billing sets both copies aside, saying item 9 has no price")
def step_both_set_aside(context):
    context.places = set_aside(context, [context.order_id], copies=2)


@then("billing sets the order aside, saying item 9 has no price")
def step_one_set_aside(context):
    context.places = set_aside(context, [context.order_id], copies=1)


@then("billing sets all {count:d} aside")
def step_all_set_aside(context, count):
    context.places = set_aside(context, context.orders, copies=1)
    assert len(context.places) == count, context.places


@then("the order page counts {more:d} more dead letters")
def step_page_counts(context, more):
    expected = context.dead_letters_before + more
    wait_until(lambda: dead_letter_count(context) == expected, f"the page counts {expected} dead letters")


@when("billing is given a price of {price:d} for item 9")
def step_price_set(context, price):
    restart_billing(context, ONLY_PRICED_ITEMS="1", ITEM_PRICES=f"1=100,2=100,3=100,9={price}")


@when("those dead letters are sent back")
def step_send_back(context):
    done = redrive(context, context.places, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = done.communicate(timeout=60)
    assert done.returncode == 0, err
    assert f"sent back {len(context.places)} to billing" in out, out


@then("billing skips the second copy as a duplicate")
def step_second_copy_skipped(context):
    context.driver.wait_for_log("billing", f"Billing skipped duplicate OrderCreated for orderId {context.order_id}")


@then("sending them back again sends nothing, saying they were sent back before")
def step_send_back_again(context):
    again = redrive(context, context.places, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = again.communicate(timeout=60)
    assert again.returncode == 0, err
    assert f"{len(context.places)} of the {len(context.places)} chosen were sent back before" in out, out
    assert "on its way" not in out, out
    context.driver.settle()
    assert len(context.driver.distinct_ids(context.order_id, "PaymentCaptured")) == 1


@then("billing sets the copy aside again, with where it read it from and its reason")
def step_set_aside_again(context):
    wait_until(lambda: len(dead_letters_of(context, context.order_id)) >= 2, "billing sets the copy aside")
    again = dead_letters_of(context, context.order_id)[1]
    assert NO_PRICE in again.reason, again.reason
    assert again.headers["redrive_of"] == context.places[0], again.headers
    assert again.headers["dlq_topic"] == "orders.events", again.headers
    copy = [s for s in context.driver.events(context.order_id, "OrderCreated") if s.headers.get("redrive_of")]
    assert int(again.headers["dlq_offset"]) == copy[0].offset, (again.headers, copy)


@then("nothing more is set aside for the order")
def step_no_loop(context):
    copy = next(s for s in context.driver.events(context.order_id, "OrderCreated") if s.headers.get("redrive_of"))
    where = TopicPartition(copy.topic, copy.partition)
    wait_until(
        lambda: read_past(context.driver.bootstrap_servers, "billing", where, copy.offset),
        "billing is done with the copy",
    )
    context.driver.settle()
    assert len(dead_letters_of(context, context.order_id)) == 2, dead_letters_of(context, context.order_id)


@when("a redrive of them is killed while it is sending them back")
def step_redrive_killed(context):
    read, write = os.pipe()
    fcntl.fcntl(write, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
    process = redrive(context, context.places, stdout=write, stderr=subprocess.DEVNULL)
    os.close(write)
    try:
        wait_until(lambda: unread(read) > PIPE_BYTES // 2, "the redrive has sent some and stopped at a full pipe")
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    finally:
        os.close(read)


def unread(fd: int) -> int:
    return struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0]


@then("none of what it sent is visible, though it had sent some")
def step_nothing_visible(context):
    mine = set(context.places)
    committed = [s for s in context.driver.topic.all() if s.headers.get("redrive_of") in mine]
    assert committed == [], committed
    written = copies_written(context.driver.bootstrap_servers, mine)
    assert written >= 10, f"the killed redrive wrote {written} copies"


def copies_written(bootstrap_servers: str, places: set[str]) -> int:
    """Copies on orders.events of these dead letters, committed or not (read_uncommitted)."""
    config = {"group.id": "bystander", "enable.partition.eof": True, "isolation.level": "read_uncommitted"}
    consumer = Consumer(client(bootstrap_servers) | config)
    try:
        every = partitions(consumer, ("orders.events",))
        consumer.assign([TopicPartition(tp.topic, tp.partition, OFFSET_BEGINNING) for tp in every])
        return sum(seen(record).headers.get("redrive_of") in places for record in read_to_end(consumer))
    finally:
        consumer.close()


@then("each of the {count:d} orders is charged exactly once and emailed exactly once")
def step_each_once(context, count):
    driver = context.driver
    for order_id in context.orders:
        wait_until(lambda o=order_id: driver.events(o, "EmailSent"), f"order {order_id} is emailed", SENT_BACK_WITHIN_S)
    driver.settle()
    twice = [o for o in context.orders if len(driver.distinct_ids(o, "PaymentCaptured")) != 1]
    assert not twice, f"orders charged other than once: {twice}"
    assert all(len(driver.distinct_ids(o, "EmailSent")) == 1 for o in context.orders)
    committed = [s for s in driver.topic.all() if s.headers.get("redrive_of") in set(context.places)]
    assert sorted(s.headers["redrive_of"] for s in committed) == sorted(context.places), "each sent back once"


# --- make rebuild -----------------------------------------------------------------------------


@given("{count:d} orders that were charged and emailed, and one that was declined")
def step_orders_for_the_read_model(context, count):
    driver = context.driver
    context.orders = [driver.new_order_id() for _ in range(count + 1)]
    for n, order_id in enumerate(context.orders):
        quantity = 1000 if n == count else 1  # 1000 × 100 is above the credit limit
        reply = driver.post_order({"orderId": order_id, "userId": 6, "itemId": 2, "qty": quantity})
        assert reply.status == 201, reply
    for order_id in context.orders:
        wait_until(lambda o=order_id: page_is_done(driver.get_order(o).body), f"the page follows order {order_id}")


def page_is_done(order: dict) -> bool:
    """Emailed, or declined, cancelled and that email sent: nothing more comes for it."""
    return order.get("status") == "emailed" or bool(order.get("chain", {}).get("cancelEmailed"))


@when("the read model is rebuilt")
def step_rebuild(context):
    config = context.faults.stack.config
    env = os.environ | {
        "STACK_DIR": str(config.home),
        "STORE": config.store,
        "KAFKA_PORT": str(config.kafka_port),
        "KAFKA_CONTROLLER_PORT": str(config.controller_port),
        "ORDERS_PORT": str(config.orders_port),
        "POSTGRES_PORT": str(config.postgres_port),
    }
    done = subprocess.run(
        [sys.executable, "-m", "devstack", "rebuild"], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    context.rebuilt = done.stdout


@then("the rebuild says the rebuilt rows equal the live ones")
def step_rebuild_equal(context):
    for table in ("chain", "saga"):
        assert f"{table}: the rebuilt rows equal the live ones" in context.rebuilt, context.rebuilt
    assert "switched in" in context.rebuilt, context.rebuilt


@when("the live read model loses one order's payment and another order altogether")
def step_damage(context):
    context.damaged = context.orders[:2]
    store = open_store(context.faults.stack.config.service_settings("orders"))
    try:
        with store.transaction() as tx:
            tx.execute('UPDATE "chain" SET "paid" = NULL, "amount" = NULL WHERE "orderId" = ?', [context.damaged[0]])
            tx.execute('DELETE FROM "chain" WHERE "orderId" = ?', [context.damaged[1]])
    finally:
        store.close()
    assert context.driver.get_order(context.damaged[0]).body["chain"]["paid"] is None
    assert context.driver.get_order(context.damaged[1]).body["status"] == "accepted"


@then("the rebuild replaced those two orders alone")
def step_rebuild_replaced(context):
    replaced = [line for line in context.rebuilt.splitlines() if "chain: 2 of" in line]
    assert replaced, context.rebuilt
    for order_id in context.damaged:
        assert f"order {order_id}:" in replaced[0], replaced[0]
    assert "saga: the rebuilt rows equal the live ones" in context.rebuilt, context.rebuilt


@then("the order page shows both as emailed again")
def step_repaired(context):
    for order_id in context.damaged:
        order = context.driver.get_order(order_id).body
        assert order["status"] == "emailed" and order["chain"]["paid"] and order["chain"]["amount"] == 100, order
