"""Which supernet training recipe: in-place distillation, labels only, or the ramped blend.

    python -m experiments.supernet_recipe [--steps 300] [--seed 0]

Trains hybrid-vision on Fashion-MNIST three times with the same steps and seed, differing
only in what the smaller subnets learn from, and reports validation accuracy of the largest,
the smallest and 10 random subnets. Writes experiments/results/supernet_recipe.md and .png.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

from experiments._common import RESULTS, markdown_table, write_report

RECIPES = {
    "in-place distillation only": {"distill_weight": 1.0, "distill_ramp": 0.0},
    "labels only": {"distill": False},
    "labels + distillation, ramped (default)": {},
}


def run(steps: int, seed: int) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nas.data import load_dataset
    from nas.space import load
    from nas.supernet import checkpoint
    from nas.supernet.scoring import accuracy
    from nas.supernet.train import TrainConfig, train

    space = load("hybrid-vision")
    data = load_dataset("fashion-mnist", seed=seed)
    probes = space.sample_unique(random.Random(seed + 1), 10)
    rows, results = [], {}
    for name, options in RECIPES.items():
        started = time.time()
        with tempfile.TemporaryDirectory() as tmp:
            config = TrainConfig(epochs=1, limit=steps * 128, seed=seed, **options)
            train(space, data, config, Path(tmp) / "s.ckpt")
            net, _ = checkpoint.load(Path(tmp) / "s.ckpt")
        largest = accuracy(net, space.largest(), data.x_val, data.y_val)
        smallest = accuracy(net, space.smallest(), data.x_val, data.y_val)
        random_accs = [accuracy(net, a, data.x_val, data.y_val) for a in probes]
        results[name] = (largest, smallest, random_accs)
        rows.append([name, f"{largest:.4f}", f"{smallest:.4f}", f"{sum(random_accs) / len(random_accs):.4f}",
                     f"{min(random_accs):.4f}", f"{time.time() - started:.0f}"])
        print(rows[-1], flush=True)
    fig, ax = plt.subplots(figsize=(7, 3.6), dpi=110)
    for i, (largest, smallest, accs) in enumerate(results.values()):
        ax.scatter([i] * len(accs), accs, color="#999", s=14, label="random subnets" if i == 0 else None)
        ax.scatter([i], [largest], marker="^", color="#c0392b", s=60, label="largest" if i == 0 else None)
        ax.scatter([i], [smallest], marker="v", color="#2e86c1", s=60, label="smallest" if i == 0 else None)
    ax.set_xticks(range(len(results)), [n.replace(" (default)", "\n(default)") for n in results], fontsize=8)
    ax.set_ylabel("validation accuracy")
    ax.set_title(f"hybrid-vision on Fashion-MNIST, {steps} steps of 128", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(RESULTS / "supernet_recipe.png")
    body = markdown_table(["recipe (smaller subnets learn from)", "largest", "smallest", "random mean (10)",
                           "random min", "seconds"], rows)
    body += (f"\n\nSame seed, data order and {steps} steps (largest, smallest and 2 fair random subnets per step); "
             "validation split of 5,000 images. ![recipes](supernet_recipe.png)")
    return write_report("supernet_recipe", "Supernet training recipe", "python -m experiments.supernet_recipe "
                        + " ".join(sys.argv[1:]), body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(run(args.steps, args.seed))


if __name__ == "__main__":
    main()
