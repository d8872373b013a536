"""What makes the chain fast, in one place: everything here changes how much
CPU and latency an event costs, never what happens to it. The consumer loop
(eventbus.consumer), the poller (eventbus.kafka) and the relay (eventbus.outbox)
read plainly without it; docs/performance.md explains each choice.

- `tune_process`: Python's thread switch interval, and logging's per-record
  work that our log format never shows.
- `Pace`: how a consumer reads. PROMPT for one whose work someone waits on;
  BACKGROUND for orders' own consumer, which only follows the chain for its page.
- `Pacer`: how long a poll or a relay round waits for more events to share it,
  from the load this process sees, as follows.

A batch costs about the same whether it carries one event or twenty: the
consumer's store transaction and its commit, the relay's flush and its
acknowledgement, the broker's request. Holding a batch a moment so that
several events share it saves that CPU, and costs each event the hold in
latency. That trade is worth it only when CPU is short, so the hold follows
two figures the process measures itself, over the last WINDOW_S:

- its demand for CPU: the seconds its threads ran on a core or waited in the
  kernel's run queue for one, per second of wall time. On a quiet machine
  that is its CPU share; on a busy one the waiting shows how short CPU is,
  even while the process itself gets little. A Python process cannot use
  much more than one core (the GIL), so a demand near SATURATED_SHARE means
  it is close to falling behind; below SPARE_SHARE it has CPU to spare and
  nothing is held.
- how many events a second pass through: a hold that would not gather at
  least MIN_GATHERED events on average saves nothing (the batch goes out with
  one event, and costs as much as ever), so at low rates nothing is held.

Between the two shares the hold grows in proportion, up to MAX_HOLD_S. The
loop closes on itself: holding lowers the demand, which lowers the hold, so it
settles where the load it sees needs it, on a quiet machine or a busy one.
Where the kernel does not report run-queue waits (not Linux), demand is the
CPU share alone.
"""

import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

SPARE_SHARE = 0.15  # of one core: below it, every event goes at once
SATURATED_SHARE = 0.6  # of one core: from it on, batches are held the longest
MAX_HOLD_S = 0.02
MIN_GATHERED = 2.0  # events a hold must gather on average to be worth its latency
WINDOW_S = 0.5  # the load is measured over this long, and the hold set again after it
THREADS = "/proc/self/task"
# Each service runs three or more Python threads (consumer, relay, HTTP); a
# thread woken by the network waits for the GIL up to this long (Python's
# default is 5 ms), and that wait lands on every hop.
SWITCH_INTERVAL_S = 0.001


def tune_process() -> None:
    """Once per service process, before its threads start."""
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    # Our log format shows none of these, and each costs a call per record (the
    # logging HOWTO's "Optimization" section); _srcfile=None skips the stack walk.
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    logging._srcfile = None


@dataclass(frozen=True)
class Pace:
    """How a consumer reads: `fetch`, consumer settings on top of the one
    set-up (eventbus.kafka.make_consumer); `batch`, the records one poll takes
    at most; `paced`, whether the Pacer may hold a poll for more."""

    fetch: dict = field(default_factory=dict)
    batch: int = 500
    paced: bool = True


PROMPT = Pace()  # a poll returns at its first record; held for more only when CPU is short
# Nobody waits on it: the broker holds each fetch until it fills or 500 ms
# pass (a few fetches a second at any rate), and the hundreds of records one
# brings are taken 16 at a time, so that each store transaction is short and
# an HTTP request writing to the same store waits for one of them, not for all.
BACKGROUND = Pace(fetch={"fetch.min.bytes": 1024 * 1024, "fetch.wait.max.ms": 500}, batch=16, paced=False)


def hold_s(demand: float, events_per_s: float) -> float:
    """How long to hold the next batch, in seconds (0: not at all), for a
    process demanding `demand` of one core while `events_per_s` pass through it."""
    pressure = min(max((demand - SPARE_SHARE) / (SATURATED_SHARE - SPARE_SHARE), 0.0), 1.0)
    hold = pressure * MAX_HOLD_S
    return hold if events_per_s * hold >= MIN_GATHERED else 0.0


def cpu_demand_s() -> float:
    """Seconds this process's threads have run on a core or waited in the run
    queue for one (Linux's schedstat), or its CPU time where that is not known."""
    try:
        threads = os.listdir(THREADS)
    except OSError:
        return time.process_time()
    demand, read = 0, False
    for thread in threads:
        try:
            with open(f"{THREADS}/{thread}/schedstat", "rb") as stat:
                ran, waited, _ = stat.read().split()
        except OSError:
            continue  # the thread ended meanwhile
        demand, read = demand + int(ran) + int(waited), True
    return demand / 1e9 if read else time.process_time()


class Pacer:
    """Measures this process's demand for CPU and the events counted to it,
    and gives the hold `hold_s` sets from them; both are taken again every WINDOW_S."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, demand_clock: Callable[[], float] = cpu_demand_s):
        self._clock = clock
        self._demand_clock = demand_clock
        self._since, self._demand_since = clock(), demand_clock()
        self._events = 0
        self._hold = 0.0

    def count(self, events: int) -> None:
        """`events` went through in one batch."""
        self._events += events

    def hold(self) -> float:
        """The hold for the next batch, in seconds."""
        now = self._clock()
        wall = now - self._since
        if wall >= WINDOW_S:
            demand = self._demand_clock()
            # max(): a thread that ended takes its seconds out of the sum
            self._hold = hold_s(max(demand - self._demand_since, 0.0) / wall, self._events / wall)
            self._since, self._demand_since, self._events = now, demand, 0
        return self._hold
