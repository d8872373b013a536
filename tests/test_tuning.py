"""The pacing rule at its edges: no hold with CPU to spare or events one at a
time, the longest hold near saturation, and in between in proportion."""

import subprocess
import sys

import pytest

from eventbus import tuning
from eventbus.tuning import MAX_HOLD_S, SATURATED_SHARE, SPARE_SHARE, Pacer, hold_s

FAST = 10_000.0  # events a second: any hold gathers plenty


@pytest.mark.parametrize("demand", [0.0, SPARE_SHARE / 2, SPARE_SHARE])
def test_with_cpu_to_spare_nothing_is_held_however_fast_events_come(demand):
    assert hold_s(demand, FAST) == 0.0


@pytest.mark.parametrize("demand", [SATURATED_SHARE, 1.0, 4.0])
def test_near_saturation_rounds_are_held_the_longest_and_no_longer(demand):
    assert hold_s(demand, FAST) == MAX_HOLD_S


def test_between_spare_and_saturated_the_hold_grows_in_proportion():
    middle = (SPARE_SHARE + SATURATED_SHARE) / 2
    assert hold_s(middle, FAST) == pytest.approx(MAX_HOLD_S / 2)
    shares = [SPARE_SHARE + step * (SATURATED_SHARE - SPARE_SHARE) / 10 for step in range(11)]
    holds = [hold_s(share, FAST) for share in shares]
    assert holds == sorted(holds) and len(set(holds)) == len(holds)


def test_events_one_at_a_time_are_never_held_even_when_saturated():
    one_per_hold = 1 / MAX_HOLD_S  # a hold would gather a single event
    assert hold_s(1.0, one_per_hold) == 0.0
    assert hold_s(1.0, 0.0) == 0.0
    assert hold_s(1.0, tuning.MIN_GATHERED / MAX_HOLD_S) == MAX_HOLD_S


class Clocks:
    def __init__(self):
        self.wall, self.cpu = 100.0, 5.0

    def advance(self, wall: float, demand: float) -> None:
        self.wall += wall
        self.cpu += wall * demand


def test_the_pacer_measures_demand_and_rate_over_a_window_and_holds_the_result_until_the_next():
    clocks = Clocks()
    pacer = Pacer(clock=lambda: clocks.wall, demand_clock=lambda: clocks.cpu)
    assert pacer.hold() == 0.0
    pacer.count(5_000)
    clocks.advance(tuning.WINDOW_S, demand=1.0)
    assert pacer.hold() == MAX_HOLD_S
    clocks.advance(tuning.WINDOW_S / 2, demand=0.0)
    assert pacer.hold() == MAX_HOLD_S  # the window is not over yet
    clocks.advance(tuning.WINDOW_S / 2, demand=0.0)
    assert pacer.hold() == 0.0  # a quiet window: the next event goes at once


def test_after_a_quiet_spell_the_first_event_is_not_held():
    clocks = Clocks()
    pacer = Pacer(clock=lambda: clocks.wall, demand_clock=lambda: clocks.cpu)
    pacer.count(5_000)
    clocks.advance(tuning.WINDOW_S, demand=1.0)
    assert pacer.hold() == MAX_HOLD_S
    clocks.advance(30.0, demand=0.01)
    pacer.count(1)
    assert pacer.hold() == 0.0


BUSY_FOR_A_MOMENT = """
import time
from eventbus.tuning import cpu_demand_s
demand, cpu = cpu_demand_s(), time.process_time()
until = time.monotonic() + 0.05
while time.monotonic() < until:
    pass
print(cpu_demand_s() - demand, time.process_time() - cpu)
"""


def test_demand_counts_at_least_the_cpu_the_process_used():
    """In a process of its own: here, threads other tests left behind may end
    meanwhile, and their time leaves the sum with them."""
    done = subprocess.run([sys.executable, "-c", BUSY_FOR_A_MOMENT], capture_output=True, text=True, check=True)
    demand, cpu = map(float, done.stdout.split())
    assert demand >= 0.9 * cpu
