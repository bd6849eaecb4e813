"""Soak: a long search against PostgreSQL with the dashboard open; memory over time, rate at start and end.

    python -m experiments.soak [--supernet CKPT] [--evaluations 2000] [--workers 2] [--val-examples 200]
                               [--db postgresql://postgres@127.0.0.1:5432/test]

Runs a search (NSGA-II, cpu target) with Ray workers while `nas dashboard` serves the same
store and a headless Chromium keeps its Experiments page (which refreshes every 5 s) open.
Every 2 s it samples the resident memory of the driver and of each worker process. Reports
evaluations per second over the first and last 10% of the run, and memory at the start and
end with the fitted slope (MB per 1,000 evaluations). Writes experiments/results/soak.md and .png.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
import uuid
from pathlib import Path

import numpy as np

from dashboard.testing import CHROMIUM, CHROMIUM_FLAGS, dashboard_server
from experiments._common import RESULTS, ensure_supernet, markdown_table, write_report


class Sampler(threading.Thread):
    """Samples RSS (MB) of this process and of Ray's evaluation workers every ``every`` seconds,
    as (wall-clock time, driver MB, [worker MB, ...])."""

    def __init__(self, every: float = 2.0) -> None:
        super().__init__(daemon=True)
        self.every, self.samples, self.stop = every, [], threading.Event()

    def run(self) -> None:
        import psutil

        me = psutil.Process()
        while not self.stop.is_set():
            workers = [p for p in psutil.process_iter(["cmdline"]) if "EvaluationWorker" in " ".join(p.info["cmdline"] or [])]
            try:
                rss = [w.memory_info().rss / 2**20 for w in workers]
            except psutil.Error:
                rss = []
            self.samples.append((time.time(), me.memory_info().rss / 2**20, rss))
            self.stop.wait(self.every)


class Counter:
    def __init__(self) -> None:
        self.times: list[float] = []

    def started(self, experiment: str, done: int, budget: int) -> None:
        pass

    def result(self, done: int, budget: int, best: dict, hypervolume: float) -> None:
        self.times.append(time.time())


def run(ckpt: str, n: int, workers: int, val_examples: int, db: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from playwright.sync_api import sync_playwright

    from nas.runner import SearchConfig, search
    from nas.store import Store

    name = f"soak-{uuid.uuid4().hex[:8]}"
    Store(db).close()  # the store exists before the dashboard checks it
    sampler, counter = Sampler(), Counter()
    with dashboard_server(db) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        page = browser.new_page()
        page.goto(url + "/")
        sampler.start()
        started = time.time()
        try:
            result = search(SearchConfig(strategy="nsga2", budget=n, workers=workers, db=db, experiment=name,
                                         supernet=ckpt, val_examples=val_examples), progress=counter)
        finally:
            sampler.stop.set()
            sampler.join()
            page_ok = "Traceback" not in page.content()
            browser.close()
    wall = time.time() - started
    times = np.array(counter.times)  # wall-clock time of each stored evaluation
    k = max(2, len(times) // 10)
    rate_start = (k - 1) / (times[k - 1] - times[0])
    rate_end = (k - 1) / (times[-1] - times[-k])
    # Where a change of rate comes from: the workers' own seconds per evaluation, or the rest.
    records = sorted(Store(db, readonly=True).evaluations(name), key=lambda r: r.finished_at)
    work = np.array([(r.finished_at - r.started_at).total_seconds() for r in records])
    work_start, work_end = np.median(work[:k]), np.median(work[-k:])
    at = np.array([s[0] for s in sampler.samples])
    t = at - started
    driver = np.array([s[1] for s in sampler.samples])
    worker_total = np.array([sum(s[2]) for s in sampler.samples])
    evals_at = np.interp(at, times, np.arange(1, len(times) + 1), left=0)  # evaluations stored by each sample
    # After warm-up (imports, first allocations), while the workers are alive (a last sample
    # can fall after the search stopped them).
    tail = (evals_at > 0.1 * n) & (worker_total > 0)
    if not tail.any():  # a run too short for samples after the warm-up: every sample
        tail = np.ones(len(driver), dtype=bool)
    slope_driver = np.polyfit(evals_at[tail], driver[tail], 1)[0] * 1000 if tail.sum() > 3 else float("nan")
    slope_workers = np.polyfit(evals_at[tail], worker_total[tail], 1)[0] * 1000 if tail.sum() > 3 else float("nan")
    fig, ax = plt.subplots(figsize=(7, 3.8), dpi=110)
    ax.plot(t, driver, label="driver")
    ax.plot(t, worker_total, label=f"{workers} workers (sum)")
    ax.set_xlabel("seconds")
    ax.set_ylabel("resident memory (MB)")
    ax.set_title(f"{result.total} evaluations, PostgreSQL store, dashboard open", fontsize=9)
    ax.legend()
    fig.tight_layout()
    fig.savefig(RESULTS / "soak.png")
    rows = [["evaluations", result.total], ["wall (s)", f"{wall:.0f}"],
            ["eval/s, first 10%", f"{rate_start:.2f}"], ["eval/s, last 10%", f"{rate_end:.2f}"],
            ["worker seconds per evaluation (median), first / last 10%", f"{work_start:.3f} / {work_end:.3f}"],
            [f"... so {workers} busy workers could do (eval/s), first / last 10%",
             f"{workers / work_start:.1f} / {workers / work_end:.1f}"],
            ["driver RSS start / end (MB)", _ends(driver[tail])],
            ["workers RSS start / end (MB)", _ends(worker_total[tail])],
            ["driver slope (MB per 1,000 evaluations, after warm-up)", _slope(slope_driver)],
            ["workers slope (MB per 1,000 evaluations, after warm-up)", _slope(slope_workers)],
            ["dashboard page without error", page_ok]]
    body = markdown_table(["figure", "value"], rows) + "\n\n![memory](soak.png)"
    print(body)
    return write_report("soak", "Soak: a long search with the dashboard open",
                        "python -m experiments.soak " + " ".join(sys.argv[1:]), body)


def _ends(values: np.ndarray) -> str:
    return f"{values[0]:.0f} / {values[-1]:.0f}" if len(values) else "- (no memory sample in so short a run)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--supernet", default=None, help="default: train (or reuse) runs/hybrid-vision-fashion-mnist.ckpt")
    parser.add_argument("--evaluations", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--val-examples", type=int, default=200)
    parser.add_argument("--db", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    ckpt = args.supernet or str(ensure_supernet())
    print(run(ckpt, args.evaluations, args.workers, args.val_examples, args.db))


def _slope(value: float) -> str:
    """A fitted slope, or why there is none (a run too short for four memory samples after warm-up)."""
    return f"{value:.1f}" if np.isfinite(value) else "too few samples after warm-up"


if __name__ == "__main__":
    main()
