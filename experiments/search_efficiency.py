"""Search throughput on Ray, and hypervolume against evaluations for every strategy.

    python experiments/search_efficiency.py [--supernet CKPT] [--budget 120] [--seeds 5]
                                            [--throughput 60] [--val-examples 1000]

Part 1 runs the same random search with 1 and then 2 Ray workers and reports evaluations per
second in steady state (after every worker's first result) and the share of the workers'
time not spent evaluating (sampler, store, Ray, waiting). Part 2 runs every strategy for
``--budget`` evaluations over ``--seeds`` seeds, in process (so that the comparison measures
the strategies, not the machine), and draws hypervolume against evaluations with one
reference point for all: accuracy 0 and 1.1 x the largest subnet's predicted cpu latency.
Writes experiments/results/search_efficiency.md and .png.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from experiments._common import RESULTS, ensure_supernet, markdown_table, write_report  # noqa: E402

STRATEGIES = ["random", "evolution", "nsga2", "tpe", "gp"]


def throughput(ckpt: str, n: int, val_examples: int) -> list[list[object]]:
    from nas.runner import SearchConfig, search
    from nas.store import Store

    rows = []
    rates = {}
    for workers in (1, 2):
        with tempfile.TemporaryDirectory() as tmp:
            db = str(Path(tmp) / "t.db")
            started = time.time()
            result = search(SearchConfig(strategy="random", budget=n, workers=workers, db=db, experiment="t",
                                         supernet=ckpt, val_examples=val_examples, seed=1))
            total = time.time() - started
            done = sorted(r.finished_at for r in Store(db, readonly=True).evaluations("t"))
        steady = (len(done) - workers) / max((done[-1] - done[workers - 1]).total_seconds(), 1e-9)
        per_eval = result.eval_s / n
        outside_steady = max(0.0, 1 - steady * per_eval / workers)
        outside_all = 1 - result.eval_s / (result.workers * result.wall_s)
        rates[workers] = steady
        rows.append([workers, n, f"{total:.1f}", f"{n / result.wall_s:.2f}", f"{steady:.2f}", f"{per_eval:.3f}",
                     f"{100 * outside_steady:.1f}%", f"{100 * outside_all:.1f}%"])
        print(rows[-1], flush=True)
    rows.append(["2 vs 1", "", "", "", f"{rates[2] / rates[1]:.2f}x", "", "", ""])
    return rows


def curves(ckpt: str, budget: int, seeds: int, val_examples: int) -> tuple[dict[str, np.ndarray], list[float]]:
    from nas.evaluate import SupernetEvaluator
    from nas.pareto import hypervolume_curve
    from nas.runner import SearchConfig, search
    from nas.store import Store

    screener = SupernetEvaluator.from_files(ckpt, ["cpu"], with_data=False)
    reference = [0.0, 1.1 * screener.cheap(screener.space.largest())["cpu_ms"]]
    out: dict[str, np.ndarray] = {}
    for strategy in STRATEGIES:
        runs = []
        for seed in range(seeds):
            with tempfile.TemporaryDirectory() as tmp:
                db = str(Path(tmp) / "h.db")
                started = time.time()
                search(SearchConfig(strategy=strategy, budget=budget, workers=0, db=db, experiment="h",
                                    supernet=ckpt, val_examples=val_examples, seed=seed))
                rows = Store(db, readonly=True).evaluations("h")
            points = np.array([[r.metrics["accuracy"], r.metrics["cpu_ms"]] for r in rows])
            runs.append(hypervolume_curve(points, reference, ["max", "min"]))
            print(f"{strategy} seed {seed}: final HV {runs[-1][-1]:.4f} ({time.time() - started:.0f} s)", flush=True)
        out[strategy] = np.array(runs)
    return out, reference


def run(ckpt: str, budget: int, seeds: int, n_throughput: int, val_examples: int) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    speed = throughput(ckpt, n_throughput, val_examples)
    hv, reference = curves(ckpt, budget, seeds, val_examples)
    random_final = hv["random"][:, -1].mean()
    rows = []
    for strategy, runs in hv.items():
        mean = runs.mean(axis=0)
        reach = int(np.argmax(mean >= random_final)) + 1 if (mean >= random_final).any() else None
        rows.append([strategy, f"{mean[-1]:.4f} ± {runs[:, -1].std():.4f}",
                     f"{mean[budget // 3 - 1]:.4f}", reach if reach else f"> {budget}",
                     f"{reach / budget:.2f}" if reach else "-"])
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    x = np.arange(1, budget + 1)
    for strategy, runs in hv.items():
        mean, sd = runs.mean(axis=0), runs.std(axis=0)
        ax.plot(x, mean, label=strategy, lw=2 if strategy != "random" else 1.5, ls="--" if strategy == "random" else "-")
        ax.fill_between(x, mean - sd, mean + sd, alpha=0.12)
    ax.axhline(random_final, color="#555", lw=0.8, ls=":")
    ax.axvline(budget / 3, color="#555", lw=0.8, ls=":")
    ax.set_xlabel("evaluations")
    ax.set_ylabel("hypervolume (accuracy up, cpu latency down)")
    ax.set_title(f"hybrid-vision, mean ± sd over {seeds} seeds; dotted: random's final HV and budget/3", fontsize=9)
    ax.legend()
    fig.tight_layout()
    fig.savefig(RESULTS / "search_efficiency.png")
    best = min((r for r in rows if r[0] != "random" and isinstance(r[3], int)), key=lambda r: r[3], default=None)
    verdict = (f"The best strategy, {best[0]}, reaches random's final hypervolume after {best[3]} of {budget} "
               f"evaluations ({best[4]} of the budget)." if best else "No strategy reaches random's final hypervolume.")
    body = ("## Throughput on Ray (random search, steady state after each worker's first result)\n\n"
            + markdown_table(["workers", "evaluations", "total s (incl. Ray start)", "eval/s (whole loop)",
                              "eval/s (steady)", "s per evaluation", "worker time outside evaluation (steady)",
                              "... including the workers' start"], speed)
            + "\n\nSteady state starts at each worker's first result; before it, Ray starts the actors, which "
            "import torch and unpack the supernet, profiles and data (a fixed cost of a few seconds per search). "
            "Outside evaluation = 1 - eval/s x seconds per evaluation / workers: the sampler, the store and Ray."
            + f"\n\n## Hypervolume against evaluations ({seeds} seeds, in process)\n\n"
            + markdown_table(["strategy", f"HV after {budget}", f"HV after {budget // 3}",
                              "evaluations to reach random's final HV", "share of budget"], rows)
            + f"\n\n{verdict} Reference point: accuracy 0, cpu {reference[1]:.3f} ms; accuracy on the first "
            f"{val_examples} validation images. ![hypervolume](search_efficiency.png)")
    return write_report("search_efficiency", "Search efficiency", "python experiments/search_efficiency.py "
                        + " ".join(sys.argv[1:]), body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--supernet", default=None, help="default: train (or reuse) runs/hybrid-vision-fashion-mnist.ckpt")
    parser.add_argument("--budget", type=int, default=120)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--throughput", type=int, default=150)
    parser.add_argument("--val-examples", type=int, default=1000)
    args = parser.parse_args()
    ckpt = args.supernet or str(ensure_supernet())
    print(run(ckpt, args.budget, args.seeds, args.throughput, args.val_examples))


if __name__ == "__main__":
    main()
