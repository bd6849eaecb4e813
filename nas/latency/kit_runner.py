"""Latency kit runner: measure every ONNX graph of a kit with onnxruntime and write a CSV.

This file is copied verbatim into each kit as ``run_kit.py``: it needs only Python 3.8+,
numpy and onnxruntime, never the ``nas`` package. ``nas.latency.measure`` uses the same
timing code, so a kit measures exactly the way ``nas latency build`` does.

Usage, in the unzipped kit folder on the device:

    python run_kit.py                    # writes results.csv next to this file
    python run_kit.py --threads 4 --repeats 100 --out my-device.csv

Then, back where ``nas`` is installed: ``nas latency import results.csv --target NAME``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import sys
import time

import numpy as np

UNIT_STATS = ("family", "macs", "elements", "params")  # copied from the manifest for each unit
COLUMNS = ["space", "kind", "key", "role", "file", "median_ms", "p10_ms", "p90_ms", "cv", "runs", "noisy",
           "probe_us", "device", "runtime", *UNIT_STATS]


def summarise(times_ms, max_cv):
    """(median, p10, p90, robust cv, noisy) of one run of repeated timings."""
    q10, q25, q50, q75, q90 = np.percentile(times_ms, [10, 25, 50, 75, 90])
    cv = float((q75 - q25) / 1.349 / q50) if q50 > 0 else 0.0
    return float(q50), float(q10), float(q90), cv, cv > max_cv


class Guard:
    """Holds measurements to the machine's fast phase, judged by a fixed probe graph.

    Shared and virtual machines alternate between a fast phase and slow phases of a few
    seconds (a neighbour on the same physical core) in which everything runs up to twice as
    slow; a run's own spread does not reveal them. The guard times the probe before and after
    each measurement and accepts it only when both are within ``tolerance`` of the baseline,
    the 20th percentile of the recent probes (robust to a lucky probe, and following slow
    drifts of the machine).

    Waiting never stalls a build. The guard waits by probing, never by sleeping (on these VMs
    a process that sleeps runs slower for a while after it wakes, so a sleeping guard makes the
    machine look slow to itself), for at most ``max_wait_s`` at a time; a machine that stays
    slower that long is the new normal: the probes of that wait become the baseline
    (``rebaselines`` counts how often). All waits together are bounded by ``max_total_wait_s``;
    once that is spent the guard only brackets measurements (a window in a slow phase is still
    reported noisy) and never waits again. :meth:`report` says what it did.
    """

    def __init__(self, probe, tolerance=1.10, max_wait_s=1.0, max_total_wait_s=30.0, calibrate_s=0.5, window=100):
        from collections import deque

        self.probe_run = probe
        self.tolerance = tolerance
        self.max_wait_s = max_wait_s
        self.max_total_wait_s = max_total_wait_s
        self.recent = deque(maxlen=window)
        self.rejected = 0  # measurements repeated because the machine left its fast phase
        self.rebaselines = 0  # waits that ended by taking the machine's present speed as normal
        self.waited_s = 0.0  # time spent waiting for a fast phase, all waits together
        end = time.perf_counter() + calibrate_s
        while time.perf_counter() < end:
            self.probe()

    @property
    def exhausted(self):
        """Whether the total waiting budget is spent (the guard then waits no more)."""
        return self.waited_s >= self.max_total_wait_s

    @property
    def baseline(self):
        return float(np.percentile(self.recent, 20)) if self.recent else float("inf")

    def probe(self, runs=15, record=True):
        times = np.empty(runs)
        for i in range(runs):
            start = time.perf_counter_ns()
            self.probe_run()
            times[i] = time.perf_counter_ns() - start
        value = float(np.median(times))
        if record:
            self.recent.append(value)
        return value

    def fast(self, value=None):
        value = self.probe() if value is None else value
        return value <= self.tolerance * self.baseline

    def wait_fast(self):
        """Probe until the machine is fast; after ``max_wait_s`` its present speed is the new baseline.

        Returns (whether it may measure now: a fast phase, or the new normal after a re-baseline;
        False once the waiting budget is spent and the machine is slow, the last probe in ns). The
        probes of a wait are judged by the baseline from before it, not mixed into it, so a
        slower machine is recognised (and counted) as a re-baseline rather than drifted into."""
        value = self.probe()
        if self.fast(value):
            return True, value
        budget = min(self.max_wait_s, self.max_total_wait_s - self.waited_s)
        if budget <= 0:
            return False, value
        seen = [value]
        start = time.perf_counter()
        try:
            while time.perf_counter() - start < budget:
                value = self.probe(record=False)
                if self.fast(value):
                    self.recent.append(value)
                    return True, value
                seen.append(value)
        finally:
            self.waited_s += time.perf_counter() - start
        self.recent.clear()
        self.recent.extend(seen[-self.recent.maxlen:])
        self.rebaselines += 1
        return True, value

    def measure(self, fn, attempts=3):
        """``fn()`` bracketed by fast probes.

        Returns (result, whether the machine was fast throughout, the probe's level around it in
        ns): dividing by the level expresses a latency relative to the machine's speed of the
        moment, which removes drifts of its speed over minutes. A window whose closing probe was
        slow is repeated, up to ``attempts`` times (once the waiting budget is spent, not at all).
        """
        result, level = None, float("nan")
        for _ in range(attempts if not self.exhausted else 1):
            before, first = self.wait_fast()
            result = fn()
            last = self.probe()
            level = (first + last) / 2
            if before and self.fast(last):
                return result, True, level
            self.rejected += 1
        return result, False, level

    def report(self):
        """One line on what the guard did: for a build's summary and a kit's last line."""
        return (f"guard: waited {self.waited_s:.1f} s for fast phases (at most {self.max_total_wait_s:.0f} s), "
                f"{self.rejected} windows repeated, {self.rebaselines} re-baselines")


def time_runs(run, warmup, repeats, max_cv, retries, guard=None, windows=3):
    """Median latency of ``run`` from ``windows`` separately timed windows of ``repeats`` calls.

    Each window is warmed up and, with a ``guard``, held to the machine's fast phase (see
    :class:`Guard`); the median over windows discards a window that a short slow phase hit
    anyway. A measurement whose windows disagree by more than ``2 * max_cv``, or whose runs
    spread more than ``max_cv``, is noisy and measured again, up to ``retries`` times.
    """
    def window():
        for _ in range(warmup):
            run()
        times = np.empty(repeats)
        for i in range(repeats):
            start = time.perf_counter_ns()
            run()
            times[i] = (time.perf_counter_ns() - start) / 1e6
        return times

    best = None
    for _ in range(retries + 1):
        runs, medians, cvs, levels, steady = [], [], [], [], True
        for _ in range(windows):
            if guard is None:
                times = window()
            else:
                times, fast, level = guard.measure(window)
                steady = steady and fast
                levels.append(level)
            runs.append(times)
            medians.append(float(np.median(times)))
            cvs.append(summarise(times, max_cv)[3])
        pooled = np.concatenate(runs)
        median = float(np.median(medians))
        p10, p90 = (float(v) for v in np.percentile(pooled, [10, 90]))
        cv = float(np.median(cvs))
        disagree = (max(medians) - min(medians)) / median > 2 * max_cv if windows > 1 else False
        noisy = cv > max_cv or disagree or not steady
        probe_us = float(np.median(levels)) / 1e3 if levels else float("nan")
        result = (median, p10, p90, cv, noisy, len(pooled), probe_us)
        if best is None or (not noisy, -cv) > (not best[4], -best[3]):
            best = result
        if not noisy or (guard is not None and guard.exhausted and cv <= max_cv and not disagree):
            break  # an unsteady machine is only worth repeating for while the guard may still wait
    return best  # median, p10, p90, cv, noisy, runs, probe level (us) around the runs


def probe_guard(path_or_bytes, threads=1, **kwargs):
    """A :class:`Guard` timing the kit's probe graph (a stack of small dense layers)."""
    sess = session(path_or_bytes, threads)
    feed = feed_for(sess, 1)
    return Guard(lambda: sess.run(None, feed), **kwargs)


def session(path, threads):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])


def feed_for(sess, batch):
    inp = sess.get_inputs()[0]
    shape = [batch if not isinstance(d, int) or d <= 0 else d for d in inp.shape]
    return {inp.name: np.random.default_rng(0).standard_normal(shape).astype(np.float32)}


def device_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def run_kit(folder, out, threads=1, warmup=10, repeats=50, max_cv=0.05, retries=2, batch=1):
    import onnxruntime as ort

    with open(os.path.join(folder, "manifest.json")) as f:
        manifest = json.load(f)
    entries = [("unit", u["key"], "", u["file"], [u.get(k, "") for k in UNIT_STATS]) for u in manifest["units"]]
    entries += [("arch", a["arch"], a["role"], a["file"], [""] * len(UNIT_STATS)) for a in manifest["archs"]]
    device = device_name()
    runtime = f"onnxruntime {ort.__version__} CPUExecutionProvider threads={threads}"
    guard = probe_guard(os.path.join(folder, "probe.onnx"), threads)
    rows = []
    for i, (kind, key, role, file, stats) in enumerate(entries):
        sess = session(os.path.join(folder, file), threads)
        feed = feed_for(sess, batch)
        median, p10, p90, cv, noisy, runs, probe_us = time_runs(lambda s=sess, f=feed: s.run(None, f), warmup, repeats,
                                                                max_cv, retries, guard)
        rows.append([manifest["space"], kind, key, role, file, f"{median:.6f}", f"{p10:.6f}", f"{p90:.6f}",
                     f"{cv:.4f}", runs, int(noisy), f"{probe_us:.4f}", device, runtime, *stats])
        if sys.stdout.isatty():
            sys.stdout.write(f"\r{i + 1}/{len(entries)} measured")
        elif (i + 1) % max(1, len(entries) // 10) == 0 or i + 1 == len(entries):
            sys.stdout.write(f"{i + 1}/{len(entries)} measured\n")  # a log gets lines, not carriage returns
        sys.stdout.flush()
    with open(out, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        writer.writerows(rows)
    sys.stdout.write(f"\nwrote {out} ({guard.report()})\n")
    return out


def main(argv=None):
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description="Measure a nas latency kit with onnxruntime.")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--out", default=os.path.join(here, "results.csv"))
    args = parser.parse_args(argv)
    run_kit(here, args.out, threads=args.threads, warmup=args.warmup, repeats=args.repeats, batch=args.batch)


if __name__ == "__main__":
    main()
