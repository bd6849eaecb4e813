"""Strategies on NAS-Bench-Graph's 9 datasets, scored by the share of the true front's hypervolume.

    python experiments/bench_graph.py [--seeds 10] [--budget 300] [--strategies random evolution nsga2 tpe surrogate]

Every run goes through the normal search path (``nas bench``: the driver, a SQLite store, in
process). Reference point: each table's 10th-percentile accuracy and 90th-percentile latency.
Writes experiments/results/bench_graph.md and .png.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from experiments._common import RESULTS, markdown_table, write_report  # noqa: E402


def run(datasets: list[str], strategies: list[str], seeds: int, budget: int) -> Path:
    from nas.bench import BenchConfig, load_benchmark, plot, run_bench

    results = []
    started = time.time()
    for dataset in datasets:
        bench = load_benchmark(f"graph:{dataset}")
        results.append(run_bench(bench, BenchConfig(strategies=tuple(strategies), seeds=seeds, budget=budget)))
        print(f"{dataset} done ({time.time() - started:.0f} s)", flush=True)
    checkpoints = [n for n in results[0].config.checkpoints if n <= budget]
    parts = []
    for result in results:
        parts.append(f"### {result.benchmark}\n\n" + markdown_table(result.header(), result.rows()))
    # The summary: per strategy, the datasets where it reaches 0.98 after the budget, and where it
    # beats TPE's mean after 100 evaluations.
    summary = []
    for strategy in strategies:
        final = [r.fractions(strategy, budget).mean() for r in results]
        at100 = [r.fractions(strategy, 100).mean() for r in results] if budget >= 100 else []
        tpe100 = [r.fractions("tpe", 100).mean() for r in results] if "tpe" in strategies and budget >= 100 else []
        beats = sum(a > t for a, t in zip(at100, tpe100, strict=False)) if tpe100 and strategy != "tpe" else "-"
        ms = np.mean([run.ms_per_evaluation for r in results for run in r.runs if run.strategy == strategy])
        summary.append([strategy, f"{np.mean(final):.3f}", f"{np.min(final):.3f}", sum(f >= 0.98 for f in final),
                        f"{np.mean(at100):.3f}" if at100 else "-", beats, f"{ms:.1f}"])
    head = (f"{len(datasets)} datasets x {seeds} seeds x {budget} evaluations per strategy; accuracy (test) up, "
            f"latency down, both costly. Cells: mean ± std over seeds of the share of the true front's hypervolume.\n\n"
            + markdown_table(["strategy", f"mean after {budget}", f"worst dataset after {budget}",
                              f"datasets >= 0.98 after {budget}", "mean after 100", "datasets beating tpe's mean after 100",
                              "ms per evaluation (ask, tell, store)"], summary))
    png = plot(results, RESULTS / "bench_graph.png")
    return write_report("bench_graph", "NAS-Bench-Graph: share of the true Pareto front's hypervolume",
                        "python experiments/bench_graph.py " + " ".join(sys.argv[1:]),
                        head + "\n\n" + "\n\n".join(parts) + f"\n\n![curves]({png.name})\n\n"
                        f"Checkpoints: {', '.join(map(str, checkpoints))} evaluations.")


def main() -> None:
    from nas.bench import GRAPH_DATASETS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(GRAPH_DATASETS))
    parser.add_argument("--strategies", nargs="+", default=["random", "evolution", "nsga2", "tpe", "surrogate"])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--budget", type=int, default=300)
    args = parser.parse_args()
    print(run(args.datasets, args.strategies, args.seeds, args.budget))


if __name__ == "__main__":
    main()
