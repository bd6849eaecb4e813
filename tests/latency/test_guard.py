"""The latency guard waits for fast phases without stalling: bounded waits, re-baselining, no sleeps."""

from __future__ import annotations

import time

import pytest

from nas.latency.kit_runner import Guard, time_runs


class Machine:
    """A probe whose duration we set: ``speed`` 1.0 is the fast phase, 1.5 a slower machine."""

    def __init__(self, base_us: float = 40.0) -> None:
        self.base_us = base_us
        self.speed = 1.0
        self.sleeps = 0

    def probe(self) -> None:
        end = time.perf_counter_ns() + self.base_us * self.speed * 1e3
        while time.perf_counter_ns() < end:
            pass


def test_a_machine_that_stays_slower_becomes_the_new_normal_after_one_bounded_wait(monkeypatch):
    machine = Machine()
    monkeypatch.setattr(time, "sleep", lambda s: pytest.fail("the guard must not sleep while it waits"))
    guard = Guard(machine.probe, max_wait_s=0.3, max_total_wait_s=5.0, calibrate_s=0.2)
    fast_baseline = guard.baseline
    machine.speed = 1.6  # the machine slows down for good
    start = time.perf_counter()
    result, steady, level = guard.measure(lambda: "ran")
    first = time.perf_counter() - start
    assert result == "ran" and steady  # judged by the new baseline, not repeated for ever
    assert guard.rebaselines == 1 and first < 1.0
    assert guard.baseline > 1.3 * fast_baseline and level > 1.3 * fast_baseline
    start = time.perf_counter()
    for _ in range(20):  # the slower machine is now normal: no more waiting
        assert guard.measure(lambda: None)[1]
    assert time.perf_counter() - start < 0.5
    assert guard.rebaselines == 1 and guard.waited_s < 0.6
    assert "re-baselines" in guard.report()


def test_waiting_is_bounded_in_total_and_then_stops():
    machine = Machine()
    guard = Guard(machine.probe, max_wait_s=0.2, max_total_wait_s=0.5, calibrate_s=0.1)
    calls = []

    def window():
        calls.append(1)
        machine.speed = 2.0 if len(calls) % 2 else 1.0  # every other window ends in a slow phase

    start = time.perf_counter()
    for _ in range(30):
        guard.measure(window)
    assert guard.waited_s <= 0.5 + 0.2
    assert time.perf_counter() - start < 3.0


def test_time_runs_with_a_guard_returns_a_median_and_the_probe_level():
    machine = Machine(20.0)
    guard = Guard(machine.probe, calibrate_s=0.1)
    median, p10, p90, cv, noisy, runs, probe_us = time_runs(lambda: machine.probe(), 2, 20, 0.5, 1, guard)
    assert 0.015 < median < 0.2 and runs == 60 and probe_us > 0
    assert p10 <= median <= p90
