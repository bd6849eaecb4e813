"""Does the supernet rank subnets the way training them from scratch does?

    python experiments/supernet_ranking.py [--supernet CKPT] [--archs 24] [--steps 600] [--concurrent 2]

Samples archs across the space (400 random draws ordered by parameter count, ``--archs`` of
them at evenly spaced ranks, so small and large nets are both in), trains each one stand-alone
from scratch on Fashion-MNIST as a Ray Tune trial (``--concurrent`` at a time, one thread
each), and compares their validation accuracy with the accuracy the supernet gives them with
inherited weights: Kendall tau and Spearman rho. Stand-alone recipe: ``--steps`` AdamW steps
of 128 images (lr 3e-3, weight decay 0.05, 3% warm-up then cosine), the same seed for every
arch. Writes experiments/results/supernet_ranking.md and .png.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from experiments._common import RESULTS, ensure_supernet, markdown_table, write_report  # noqa: E402


def standalone(config: dict, data=None) -> None:
    """A Ray Tune trainable: train one arch from scratch, report validation and test accuracy."""
    import math

    import torch
    import torch.nn.functional as F
    from ray import tune

    from nas.space import load
    from nas.supernet import Supernet, SupernetConfig
    from nas.supernet.train import accuracy

    torch.set_num_threads(1)
    torch.manual_seed(config["seed"])
    space = load("hybrid-vision")
    arch = space.parse(config["arch"])
    x_train, y_train, x_val, y_val, x_test, y_test = data
    net = Supernet(SupernetConfig.from_space(space)).extract(arch, tuple(x_train.shape[1:]))
    steps, warmup = config["steps"], max(1, int(0.03 * config["steps"]))
    decay = [p for p in net.parameters() if p.dim() >= 2]
    other = [p for p in net.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05}, {"params": other, "weight_decay": 0.0}], lr=3e-3)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warmup if s < warmup else 0.02 + 0.49 * (1 + math.cos(math.pi * (s - warmup) / (steps - warmup))))
    gen = torch.Generator().manual_seed(config["seed"])
    x, y = torch.from_numpy(x_train), torch.from_numpy(y_train)
    net.train()
    for _ in range(steps):
        idx = torch.randint(0, len(x), (128,), generator=gen)
        loss = F.cross_entropy(net(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        sched.step()
    tune.report({"val_acc": accuracy(net, None, x_val, y_val), "test_acc": accuracy(net, None, x_test, y_test)})


def pick_archs(space, evaluator, n: int, seed: int):
    pool = space.sample_unique(random.Random(seed), 400)
    pool.sort(key=lambda a: evaluator.cheap(a)["params"])
    return [pool[round(i * (len(pool) - 1) / (n - 1))] for i in range(n)]


def run(ckpt: str, n_archs: int, steps: int, concurrent: int, seed: int) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from ray import tune
    from scipy.stats import kendalltau, spearmanr

    from nas.data import load_dataset
    from nas.evaluate import SupernetEvaluator
    from nas.runner.ray_pool import start_ray, stop_ray

    evaluator = SupernetEvaluator.from_files(ckpt, ["cpu"])
    space = evaluator.space
    archs = pick_archs(space, evaluator, n_archs, seed)
    started = time.time()
    supernet_acc = [evaluator.evaluate(a)["accuracy"] for a in archs]
    print(f"supernet accuracies of {len(archs)} archs in {time.time() - started:.0f} s", flush=True)

    data = load_dataset("fashion-mnist", space.task.kind)
    arrays = (data.x_train, data.y_train, data.x_val, data.y_val, data.x_test, data.y_test)
    started = time.time()
    start_ray(concurrent, None)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            tuner = tune.Tuner(
                tune.with_resources(tune.with_parameters(standalone, data=arrays), {"cpu": 1}),
                param_space={"arch": tune.grid_search([a.to_str() for a in archs]), "steps": steps, "seed": seed},
                tune_config=tune.TuneConfig(max_concurrent_trials=concurrent),
                run_config=tune.RunConfig(storage_path=tmp, name="ranking", verbose=0),
            )
            results = tuner.fit()
            by_arch = {r.config["arch"]: r.metrics for r in results}
    finally:
        stop_ray()
    train_seconds = time.time() - started
    standalone_acc = [by_arch[a.to_str()]["val_acc"] for a in archs]
    tau = kendalltau(supernet_acc, standalone_acc).statistic
    rho = spearmanr(supernet_acc, standalone_acc).statistic

    fig, ax = plt.subplots(figsize=(5.2, 4.6), dpi=110)
    params = [evaluator.cheap(a)["params"] / 1e3 for a in archs]
    sc = ax.scatter(standalone_acc, supernet_acc, c=np.log10(params), cmap="viridis", s=30)
    fig.colorbar(sc, label="log10 thousands of parameters")
    ax.set_xlabel("stand-alone validation accuracy (from scratch)")
    ax.set_ylabel("supernet validation accuracy (inherited weights)")
    ax.set_title(f"{len(archs)} archs: Kendall tau {tau:.3f}, Spearman rho {rho:.3f}", fontsize=9)
    fig.tight_layout()
    fig.savefig(RESULTS / "supernet_ranking.png")
    rows = [[i, f"{p:.0f}k", f"{s:.4f}", f"{t:.4f}", f"{by_arch[a.to_str()]['test_acc']:.4f}", a.to_str()]
            for i, (a, p, s, t) in enumerate(zip(archs, params, supernet_acc, standalone_acc, strict=True))]
    body = (f"**Kendall tau {tau:.3f}, Spearman rho {rho:.3f}** over {len(archs)} archs.\n\n"
            f"Stand-alone recipe: {steps} AdamW steps of 128 Fashion-MNIST images (lr 3e-3, weight decay 0.05, "
            f"3% warm-up, cosine), seed {seed}, one thread per trial, {concurrent} Ray Tune trials at a time "
            f"({train_seconds / 60:.1f} minutes in all). Supernet: {Path(ckpt).name}, accuracy with inherited weights; "
            f"both on the 5,000-image validation split.\n\n"
            + markdown_table(["#", "params", "supernet acc", "stand-alone acc", "stand-alone test acc", "arch"], rows)
            + "\n\n![ranking](supernet_ranking.png)")
    return write_report("supernet_ranking", "Supernet ranking vs stand-alone training",
                        "python experiments/supernet_ranking.py " + " ".join(sys.argv[1:]), body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--supernet", default=None, help="default: train (or reuse) runs/hybrid-vision-fashion-mnist.ckpt")
    parser.add_argument("--archs", type=int, default=24)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--concurrent", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    ckpt = args.supernet or str(ensure_supernet())
    print(run(ckpt, args.archs, args.steps, args.concurrent, args.seed))


if __name__ == "__main__":
    main()
