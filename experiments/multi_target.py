"""One search for a CPU and a microcontroller at once: how the fronts differ, which blocks win where.

    python -m experiments.multi_target [--supernet CKPT] [--budget 150] [--workers 2] [--val-examples 1000]

Runs NSGA-II with three objectives (accuracy up, cpu_ms down, mcu-m7_ms down) on
hybrid-vision, then takes the two 2-D Pareto fronts of the same evaluations (accuracy vs cpu
latency, accuracy vs Cortex-M7 latency) and compares their block mix: the share of conv,
attention and SSM mixers and of MoE ffns among the layers of the archs on each front.
Writes experiments/results/multi_target.md and .png.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

from experiments._common import RESULTS, ensure_supernet, markdown_table, write_report

KINDS = ("conv", "attention", "ssm", "moe")


def run(ckpt: str, budget: int, workers: int, val_examples: int) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nas.pareto import front_rows
    from nas.runner import SearchConfig, search
    from nas.store import Store

    with tempfile.TemporaryDirectory() as tmp:
        db = str(Path(tmp) / "m.db")
        search(SearchConfig(strategy="nsga2", budget=budget, targets=("cpu", "mcu-m7"), workers=workers, db=db,
                            experiment="multi", supernet=ckpt, val_examples=val_examples, seed=0))
        rows = Store(db, readonly=True).evaluation_rows("multi")
    fronts = {t: front_rows(rows, [{"name": "accuracy", "direction": "max"}, {"name": f"{t}_ms", "direction": "min"}])
              for t in ("cpu", "mcu-m7")}
    everything = np.array([[r[f"mix_{k}"] for k in KINDS] for r in rows])
    table = [["all evaluations", len(rows), *(f"{v:.2f}" for v in everything.mean(axis=0)), "", ""]]
    for target, front in fronts.items():
        mix = np.array([[r[f"mix_{k}"] for k in KINDS] for r in front])
        table.append([f"front: accuracy vs {target}_ms", len(front), *(f"{v:.2f}" for v in mix.mean(axis=0)),
                      f"{max(r['accuracy'] for r in front):.4f}", f"{min(r[f'{target}_ms'] for r in front):.4f}"])
    shared = {r["arch"] for r in fronts["cpu"]} & {r["arch"] for r in fronts["mcu-m7"]}

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), dpi=110)
    colours = {"conv": "#d62728", "attention": "#2ca02c", "ssm": "#1f77b4"}
    for ax, (target, front) in zip(axes, fronts.items(), strict=True):
        ax.scatter([r[f"{target}_ms"] for r in rows], [r["accuracy"] for r in rows], s=8, color="#cccccc", label="evaluated")
        ordered = sorted(front, key=lambda r: r[f"{target}_ms"])
        ax.plot([r[f"{target}_ms"] for r in ordered], [r["accuracy"] for r in ordered], color="#333", lw=1, drawstyle="steps-post")
        for r in ordered:
            dominant = max(("conv", "attention", "ssm"), key=lambda k: r[f"mix_{k}"])
            ax.scatter(r[f"{target}_ms"], r["accuracy"], s=50, color=colours[dominant],
                       marker="D" if r["mix_moe"] > 0 else "o", edgecolor="black", zorder=3)
        ax.set_xlabel(f"{target} latency (ms)")
        ax.set_ylabel("validation accuracy")
        ax.set_title(f"front for {target}: colour = dominant mixer, diamond = has MoE", fontsize=8)
    fig.tight_layout()
    fig.savefig(RESULTS / "multi_target.png")
    body = (markdown_table(["set", "archs", "conv share", "attention share", "ssm share", "moe share",
                            "best accuracy", "fastest (ms)"], table)
            + f"\n\n{len(shared)} archs are on both fronts. Shares are averaged over the layers of the archs in each "
            f"set. NSGA-II, {budget} evaluations, objectives accuracy, cpu_ms and mcu-m7_ms; accuracy on the first "
            f"{val_examples} validation images. ![fronts](multi_target.png)")
    return write_report("multi_target", "Searching for a CPU and a microcontroller at once",
                        "python -m experiments.multi_target " + " ".join(sys.argv[1:]), body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--supernet", default=None, help="default: train (or reuse) runs/hybrid-vision-fashion-mnist.ckpt")
    parser.add_argument("--budget", type=int, default=150)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--val-examples", type=int, default=1000)
    args = parser.parse_args()
    ckpt = args.supernet or str(ensure_supernet())
    print(run(ckpt, args.budget, args.workers, args.val_examples))


if __name__ == "__main__":
    main()
