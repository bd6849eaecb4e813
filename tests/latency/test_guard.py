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


def test_passes_correct_the_machines_speed_and_measure_a_disturbed_subnet_again():
    import numpy as np

    from nas.latency.measure import measure_in_passes

    truth = np.array([1.0, 2.0, 3.0, 4.0])
    speed = iter([1.0, 1.5])  # the machine runs 1.5 times slower in the second pass
    state = {"speed": 1.0}
    calls: list[int] = []

    def reference() -> float:
        state["speed"] = next(speed, 1.0)
        return 10.0 * state["speed"]

    def measure(i: int) -> float:
        calls.append(i)
        disturbed = i == 2 and len(calls) == 7  # subnet 2 in the second pass: a neighbour on the core
        return truth[i] * state["speed"] * (2.0 if disturbed else 1.0)

    runs = measure_in_passes(4, measure, [(reference, 10.0)])
    assert runs.speeds == [1.0, 1.5]
    assert runs.raw.shape == (2, 4)
    assert list(runs.remeasured) == [2] and calls[-1] == 2  # measured a third time, nothing else
    assert np.allclose(runs.measured[[0, 1, 3]], truth[[0, 1, 3]])  # brought back to the build's speed
    # The third measurement (in the slow phase, scaled by the mean speed: 3 * 1.5 / 1.25) is the
    # median of the three, not the mean of the two passes (4.5).
    assert runs.measured[2] == pytest.approx(3.6)
    assert np.allclose(runs.raw_mean[[0, 1, 3]], truth[[0, 1, 3]] * 1.25)  # uncorrected beside it
    once = measure_in_passes(3, lambda i: float(i + 1), passes=1)
    assert list(once.measured) == [1.0, 2.0, 3.0] and not len(once.remeasured)


def test_cuda_times_time_each_call_of_a_window():
    from nas.latency.measure import cuda_times

    calls = []
    times = cuda_times(lambda: calls.append(1), warmup=3, repeats=5, cuda=False)
    assert len(calls) == 8 and times.shape == (5,) and (times >= 0).all()
