"""The chain under load, seen from outside as a customer sees it: POST /orders,
then EmailSent on the topic.

- Throughput is a closed loop: each client places an order, waits for its
  EmailSent, places the next; orders per second over the steady middle.
- Latency is an open loop: orders leave on a fixed schedule whatever the
  replies, and every delay counts from the scheduled time, so a stall shows
  in the figures instead of quietly slowing the load (coordinated omission).
"""

import queue
import threading
import time

from bench.orders_client import OrdersClient
from bench.stats import percentile, rate_of_middle
from bench.watcher import STAGES, ChainWatcher

ORDER_TIMEOUT_S = 60  # the closed loop gives up when no email came for this long
CONNECTIONS = 16  # keep-alive connections to orders: enough to keep its 4 threads busy
GRACE_S = 30  # how long the open loop waits for the last emails after the last reply
STAGE_NAMES = ("orders", "billing", "notifications", "observed")  # who produced each, and then us


def throughput(orders_url: str, watcher: ChainWatcher, orders: int, clients: int, progress, deadline_s: float) -> dict:
    """Closed loop: `clients` customers, each with one order in the chain at a
    time (placed, then waited for until its EmailSent), over a few keep-alive
    connections. The rate covers `orders` completions after a warm-up margin,
    and as many more run after them so that the measured ones never see the drain."""
    margin = max(2 * clients, orders // 50)
    total = orders + 2 * margin
    in_chain = threading.Semaphore(clients)
    lock = threading.Lock()
    counts = {"issued": 0, "accepted": 0, "http_errors": 0}
    completions: list[float] = []
    stop = threading.Event()

    def emailed(seen_at: float) -> None:
        completions.append(seen_at)
        in_chain.release()

    def connection() -> None:
        http_client = OrdersClient(orders_url)
        try:
            while not stop.is_set():
                if not in_chain.acquire(timeout=0.5):
                    continue
                with lock:
                    if counts["issued"] >= total:
                        in_chain.release()
                        return
                    counts["issued"] += 1
                    number = counts["issued"]
                _status, order_id = http_client.place(user_id=number % 1000 + 1)
                with lock:
                    counts["accepted" if order_id is not None else "http_errors"] += 1
                if order_id is None:
                    in_chain.release()
                else:
                    watcher.when_emailed(order_id, emailed)
        finally:
            http_client.close()

    threads = [
        threading.Thread(target=connection, name=f"connection-{n}", daemon=True)
        for n in range(min(clients, CONNECTIONS))
    ]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    try:
        last_progress = (0, started)
        while len(completions) < counts["accepted"] or any(thread.is_alive() for thread in threads):
            time.sleep(0.25)
            now, done = time.monotonic(), len(completions)
            progress.show("chain", done / total, f"{done:,}/{total:,} orders emailed, ~{done / (now - started):,.0f}/s")
            if done > last_progress[0]:
                last_progress = (done, now)
            if now - started > deadline_s or now - last_progress[1] > ORDER_TIMEOUT_S:
                break  # out of time, or nothing emailed for a minute: report what there is
    finally:
        stop.set()
    elapsed = time.monotonic() - started
    rate, covered = rate_of_middle(completions, margin, orders)
    return {
        "chain_orders_per_s": round(rate, 1) if rate else None,
        "chain_orders": covered,
        "chain_orders_total": len(completions),
        "chain_clients": clients,
        "chain_connections": len(threads),
        "chain_elapsed_s": round(elapsed, 1),
        "chain_http_errors": counts["http_errors"],
        "chain_lost": counts["accepted"] - len(completions),
        "chain_complete": covered >= orders,
    }


def latency(orders_url: str, watcher: ChainWatcher, rate: float, seconds: float, workers: int, progress) -> dict:
    """Open loop at `rate` orders/s for `seconds`; the first second is warm-up."""
    count = max(1, int(rate * seconds))
    warmup = min(int(rate), count // 4)
    jobs: queue.Queue = queue.Queue()
    results: list[tuple | None] = [None] * count
    stop = threading.Event()

    def schedule(start: float) -> None:
        for number in range(count):
            due = start + number / rate
            if stop.wait(max(due - time.monotonic(), 0)):
                break
            jobs.put((number, due))
        for _ in range(workers):
            jobs.put(None)

    def work() -> None:
        http_client = OrdersClient(orders_url)
        try:
            while (job := jobs.get()) is not None:
                number, due = job
                status, order_id = http_client.place(user_id=number % 1000 + 1)
                results[number] = (due, time.monotonic(), status, order_id)
        finally:
            http_client.close()

    threads = [threading.Thread(target=work, name=f"worker-{n}", daemon=True) for n in range(workers)]
    for thread in threads:
        thread.start()
    start = time.monotonic() + 0.1
    wall_offset = time.time() - time.monotonic()  # CreateTime is wall-clock; everything else is monotonic
    scheduler = threading.Thread(target=schedule, args=(start,), name="scheduler", daemon=True)
    scheduler.start()
    try:
        while scheduler.is_alive():
            scheduler.join(0.25)
            sent = count - results.count(None)
            progress.show("latency", (time.monotonic() - start) / seconds, f"{sent:,}/{count:,} sent at {rate:g}/s")
        for thread in threads:
            thread.join(60)
    finally:
        stop.set()
    replied = [result for result in results[warmup:] if result is not None]
    accepted = sum(1 for result in results if result is not None and result[3] is not None)
    return {"offered_rate": rate, "accepted_total": accepted, **_figures(replied, watcher, wall_offset)}


def _figures(replied: list[tuple], watcher: ChainWatcher, wall_offset: float) -> dict:
    """Percentiles of the POST response and of POST -> EmailSent, both from the
    scheduled send time, and the same split by stage."""
    grace_until = time.monotonic() + GRACE_S
    http_ms, chain_ms, lost = [], [], 0
    stages: dict[str, list[float]] = {name: [] for name in STAGE_NAMES}
    for due, answered, _status, order_id in replied:
        http_ms.append((answered - due) * 1000)
        if order_id is None:
            continue
        seen = watcher.wait_for(order_id, grace_until - time.monotonic())
        if seen is None:
            lost += 1
            continue
        chain_ms.append((seen - due) * 1000)
        for name, value in _stages(watcher.produced(order_id), due, seen, wall_offset).items():
            stages[name].append(value)
    span = max((r[1] for r in replied), default=0) - min((r[0] for r in replied), default=0)
    return {
        "achieved_rate": round(len(replied) / span, 1) if span > 0 else None,
        "latency_orders": len(chain_ms),
        "latency_lost": lost,
        "latency_http_errors": sum(1 for r in replied if r[3] is None),
        "p50_ms": _round(percentile(chain_ms, 50)),
        "p95_ms": _round(percentile(chain_ms, 95)),
        "p99_ms": _round(percentile(chain_ms, 99)),
        "max_ms": _round(max(chain_ms, default=None)),
        "http_p50_ms": _round(percentile(http_ms, 50)),
        "http_p95_ms": _round(percentile(http_ms, 95)),
        "http_p99_ms": _round(percentile(http_ms, 99)),
        "latency_stages_ms": {
            name: {"p50": _round(percentile(values, 50)), "p99": _round(percentile(values, 99))}
            for name, values in stages.items()
        },
    }


def _stages(produced: dict[bytes, int], due: float, seen: float, wall_offset: float) -> dict[str, float]:
    """Where one order's time went, in ms: POST scheduled -> OrderCreated produced
    (orders: HTTP, transaction, outbox relay), -> PaymentCaptured produced
    (billing's hop), -> EmailSent produced (notifications' hop), -> seen here."""
    created, paid, emailed = (produced.get(event_type) for event_type in STAGES)
    if None in (created, paid, emailed):
        return {}
    due_ms, seen_ms = (due + wall_offset) * 1000, (seen + wall_offset) * 1000
    return dict(zip(STAGE_NAMES, (created - due_ms, paid - created, emailed - paid, seen_ms - emailed), strict=True))


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)
