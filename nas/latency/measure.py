"""Measuring ONNX graphs: warm-up, repeats, median and spread, and rejection of noisy runs.

A run is *noisy* when its robust coefficient of variation (interquartile range / 1.349 /
median) exceeds ``max_cv``; it is then measured again (up to ``retries`` times) and the
quietest run is kept, flagged if it is still noisy. Measure with the machine otherwise idle:
a busy neighbour core moves onnxruntime medians by tens of percent.
"""

from __future__ import annotations

import functools
import math
import os
import platform
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from time import perf_counter
from typing import Any, Protocol

import numpy as np

from nas.errors import NasError, first_line
from nas.latency import kit_runner

DISAGREE = 0.10  # two passes of a validation further apart than this: one of them was disturbed


@dataclass(frozen=True)
class Measurement:
    median_ms: float
    p10_ms: float
    p90_ms: float
    cv: float  # robust coefficient of variation of the kept run
    runs: int
    noisy: bool
    probe_us: float = float("nan")  # the guard's probe around the runs: the machine's speed of the moment

    def as_dict(self) -> dict[str, float]:
        return {"median_ms": self.median_ms, "p10_ms": self.p10_ms, "p90_ms": self.p90_ms,
                "cv": self.cv, "runs": self.runs, "noisy": self.noisy, "probe_us": self.probe_us}

    def at_level(self, probe_us: float | None) -> float:
        """The median scaled to a reference probe level (the machine at a fixed speed)."""
        if not probe_us or not math.isfinite(self.probe_us) or self.probe_us <= 0:
            return self.median_ms
        return self.median_ms * probe_us / self.probe_us


@dataclass(frozen=True)
class MeasureConfig:
    warmup: int = 10
    repeats: int = 50
    max_cv: float = 0.05
    retries: int = 2
    threads: int = 1
    batch: int = 1
    guard: bool = True  # hold measurements to the machine's fast phase
    max_wait_s: float = 30.0  # the most a build or validation waits for fast phases, all waits together
    min_window_ms: float = 0.0  # more repeats where a graph is so fast that a window would be shorter than this


def summarise(times_ms: np.ndarray, max_cv: float) -> Measurement:
    median, p10, p90, cv, noisy = kit_runner.summarise(times_ms, max_cv)
    return Measurement(median, p10, p90, cv, len(times_ms), noisy)


def reference_level(measurements: list[Measurement]) -> float | None:
    """The median probe level over a set of measurements (what a profile records as its level)."""
    levels = [m.probe_us for m in measurements if math.isfinite(m.probe_us)]
    return float(np.median(levels)) if levels else None


@functools.cache
def probe_graph() -> bytes:
    """The fixed graph a :class:`kit_runner.Guard` times to tell fast from slow phases (eight 128-wide dense layers)."""
    import torch

    from nas.supernet.to_onnx import to_onnx

    torch.manual_seed(0)
    layers = torch.nn.Sequential(*[torch.nn.Linear(128, 128) for _ in range(8)])
    return to_onnx(layers, torch.zeros(1, 128))


class Meter:
    """Times inferences on this machine under one :class:`MeasureConfig`.

    It holds the guard that tells the machine's fast phases from its slow ones (a probe graph
    timed around every window, see :class:`kit_runner.Guard`), whose waiting is bounded by
    ``config.max_wait_s`` over the meter's life, so one meter serves a whole build or
    validation. The timing loop is the kit runner's, so local builds and kits measure alike."""

    def __init__(self, config: MeasureConfig | None = None) -> None:
        self.config = config or MeasureConfig()
        self._guard: kit_runner.Guard | None = None

    def guard(self) -> kit_runner.Guard | None:
        if not self.config.guard:
            return None
        if self._guard is None:
            self._guard = kit_runner.probe_guard(probe_graph(), self.config.threads,
                                                 max_total_wait_s=self.config.max_wait_s)
        return self._guard

    def guard_report(self) -> dict[str, float]:
        """What the guard did so far: seconds waited, windows repeated, re-baselines (empty without one)."""
        g = self._guard
        if g is None:
            return {}
        return {"waited_s": round(g.waited_s, 2), "max_wait_s": g.max_total_wait_s, "repeated": g.rejected,
                "rebaselines": g.rebaselines}

    def time(self, run: Callable[[], object]) -> Measurement:
        """Time ``run`` (one inference) ``repeats`` times after ``warmup`` (more when ``min_window_ms`` asks);
        retry noisy runs and slow phases."""
        c = self.config
        repeats = c.repeats
        if c.min_window_ms > 0:  # a graph of tens of microseconds: a window of 50 runs is over in a
            # millisecond or two, at the mercy of one slow phase; run it long enough instead
            start = perf_counter()
            for _ in range(max(c.warmup, 3)):
                run()
            each_ms = (perf_counter() - start) * 1e3 / max(c.warmup, 3)
            repeats = min(max(repeats, math.ceil(c.min_window_ms / max(each_ms, 1e-4))), 40 * c.repeats)
        median, p10, p90, cv, noisy, runs, probe_us = kit_runner.time_runs(
            run, c.warmup, repeats, c.max_cv, c.retries, self.guard())
        return Measurement(median, p10, p90, cv, runs, noisy, probe_us)

    def onnx(self, data: bytes, input_shape: tuple[int, ...] | None = None) -> Measurement:
        """Median latency of an ONNX graph in onnxruntime on this CPU (``config.threads`` threads)."""
        from nas.graph import input_shape_of, load_model
        from nas.supernet.to_onnx import ort_session

        model = load_model(data)
        shape = input_shape or input_shape_of(model, batch=self.config.batch)
        try:
            sess = ort_session(model.SerializeToString(), threads=self.config.threads)
        except Exception as exc:
            raise NasError(f"onnxruntime cannot load the model: {first_line(exc, 160)}") from None
        feed = {sess.get_inputs()[0].name: np.random.default_rng(0).standard_normal(shape).astype(np.float32)}
        try:
            sess.run(None, feed)
        except Exception as exc:
            raise NasError(f"onnxruntime cannot run the model on input {list(shape)}: {first_line(exc, 160)}") from None
        return self.time(lambda: sess.run(None, feed))


def cuda_times(run: Callable[[], object], warmup: int, repeats: int, cuda: bool = True) -> np.ndarray:
    """Milliseconds of ``repeats`` calls of ``run`` after ``warmup`` calls, each timed by CUDA events
    recorded around it and read after one synchronisation for the whole window (not one per call,
    which would time the host's wait too). With ``cuda`` false the same loop is timed on the host
    (tests; a machine without a GPU)."""
    for _ in range(warmup):
        run()
    if not cuda:
        times = []
        for _ in range(repeats):
            start = perf_counter()
            run()
            times.append((perf_counter() - start) * 1e3)
        return np.array(times)
    import torch

    torch.cuda.synchronize()
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(repeats)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(repeats)]
    for start, end in zip(starts, ends, strict=True):
        start.record()
        run()
        end.record()
    torch.cuda.synchronize()
    return np.array([s.elapsed_time(e) for s, e in zip(starts, ends, strict=True)])


def cpu_model() -> str:
    return kit_runner.device_name()


def host_description(threads: int) -> dict[str, str]:
    import onnxruntime

    return {
        "cpu": cpu_model(),
        "cores": str(os.cpu_count()),
        "threads": str(threads),
        "platform": platform.platform(),
        "runtime": f"onnxruntime {onnxruntime.__version__} (CPUExecutionProvider)",
    }


# -- what a build or a validation needs of a target (nas.latency.targets implements it) ----------------
Progress = Callable[[str, int], Callable[[], None]]  # (description, total) -> advance()


class MeasuringTarget(Protocol):
    """A target that times modules here (cpu, gpu), as a build and a validation use it."""

    name: str
    times_onnx: bool

    def status(self) -> str: ...

    def describe(self, config: MeasureConfig) -> dict[str, Any]: ...

    def measure(self, module: Any, shape: tuple[int, ...], meter: Meter, onnx_bytes: bytes | None = None) -> Measurement: ...


class CostedTarget(Protocol):
    """A target whose latency is a cost model's (the MCU boards), as a build and a validation use it."""

    name: str

    def describe(self, config: MeasureConfig) -> dict[str, Any]: ...

    def model(self) -> Any: ...


@dataclass(frozen=True)
class Passes:
    """Separate passes of measurements over the same subnets (see :func:`measure_in_passes`)."""

    raw: np.ndarray  # (passes, subnets), as measured
    speeds: list[float]  # each pass's speed against the build: latency now / latency then, on its references
    scaled: np.ndarray  # raw brought back to the build's speed
    measured: np.ndarray  # the mean of the scaled passes; the median of three where they disagreed
    disagreement: np.ndarray  # |first - last| / measured, per subnet (zeros with one pass)
    remeasured: np.ndarray  # the subnets measured a third time

    @property
    def raw_mean(self) -> np.ndarray:
        return self.raw.mean(axis=0)


def measure_in_passes(n: int, measure: Callable[[int], float],
                      references: Sequence[tuple[Callable[[], float], float]] = (), passes: int = 2,
                      progress: Progress | None = None, name: str = "") -> Passes:
    """Measure subnets ``0 .. n-1`` (``measure(i)``, in ms) in ``passes`` separate passes over the set.

    A shared or virtual machine drifts in speed over minutes: each pass first re-measures the
    ``references`` (a callable measuring one of the build's own subnets now, and its latency at the
    build) and the median ratio is the pass's speed, by which its figures are divided. Where two
    passes disagree by more than :data:`DISAGREE` one was disturbed: that subnet is measured a third
    time and the median of the three kept. One pass (a cost model, exact) is taken as it is."""
    progress = progress or (lambda description, total: lambda: None)
    raw, speeds = [], []
    for k in range(passes):
        advance = progress(f"{name}measuring {n} held-out subnets (pass {k + 1} of {passes})", n + len(references))
        ratios = []
        for measure_ref, built_ms in references:
            ratios.append(measure_ref() / built_ms)
            advance()
        speeds.append(float(np.median(ratios)) if ratios else 1.0)
        row = []
        for i in range(n):
            row.append(float(measure(i)))
            advance()
        raw.append(row)
    raw_arr = np.array(raw)
    scaled = raw_arr / np.array(speeds)[:, None]
    measured = scaled.mean(axis=0)
    disagreement = np.abs(scaled[0] - scaled[-1]) / measured
    disturbed = np.flatnonzero(disagreement > DISAGREE)
    if len(disturbed):
        advance = progress(f"{name}measuring {len(disturbed)} disturbed subnets again", len(disturbed))
        for i in disturbed:
            third = measure(int(i)) / float(np.mean(speeds))
            measured[i] = float(np.median([scaled[0][i], scaled[-1][i], third]))
            advance()
    return Passes(raw_arr, speeds, scaled, measured, disagreement, disturbed)
