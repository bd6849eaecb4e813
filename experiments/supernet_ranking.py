"""Does the supernet rank subnets the way training them from scratch does?

    python experiments/supernet_ranking.py [--supernet CKPT ...] [--archs 20] [--steps 2580] [--seeds 2]
                                           [--concurrent 2]

Samples archs across the space (400 random draws ordered by parameter count, ``--archs`` of
them at evenly spaced ranks, so small and large nets are both in), trains each one stand-alone
from scratch on Fashion-MNIST as Ray Tune trials (``--seeds`` runs per arch, ``--concurrent``
at a time, one thread each), and compares their mean accuracy with the accuracy the supernet
gives them with inherited weights: Kendall tau and Spearman rho. Both accuracies are taken on
the same 15,000 held-out images (the validation and test splits; neither trains anything), so
that the ranking is not lost in the sampling error of a smaller set. With two or more seeds
it also reports the tau between the seeds' own rankings: the noise ceiling of the stand-alone
ground truth. Stand-alone recipe: ``--steps`` AdamW steps of 128 images (lr 3e-3, weight
decay 0.05, 3% warm-up then cosine). Writes experiments/results/supernet_ranking.md and .png.
"""

from __future__ import annotations

import argparse
import csv
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
    arch_text, seed = config["trial"]
    torch.manual_seed(seed)
    space = load("hybrid-vision")
    arch = space.parse(arch_text)
    x_train, y_train, x_eval, y_eval = data
    net = Supernet(SupernetConfig.from_space(space)).extract(arch, tuple(x_train.shape[1:]))
    steps, warmup = config["steps"], max(1, int(0.03 * config["steps"]))
    decay = [p for p in net.parameters() if p.dim() >= 2]
    other = [p for p in net.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05}, {"params": other, "weight_decay": 0.0}], lr=3e-3)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warmup if s < warmup else 0.02 + 0.49 * (1 + math.cos(math.pi * (s - warmup) / (steps - warmup))))
    gen = torch.Generator().manual_seed(seed)
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
    tune.report({"acc": accuracy(net, None, x_eval, y_eval)})


STANDALONE_CSV = RESULTS / "supernet_ranking_standalone.csv"


def train_standalone(trials: list[tuple[str, int]], steps: int, arrays: tuple, concurrent: int) -> dict:
    """Train each (arch, seed) from scratch as a Ray Tune trial; their held-out accuracies."""
    from ray import tune

    from nas.runner.ray_pool import start_ray, stop_ray

    start_ray(concurrent, None)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            tuner = tune.Tuner(
                tune.with_resources(tune.with_parameters(standalone, data=arrays), {"cpu": 1}),
                param_space={"trial": tune.grid_search([list(t) for t in trials]), "steps": steps},
                tune_config=tune.TuneConfig(max_concurrent_trials=concurrent),
                run_config=tune.RunConfig(storage_path=tmp, name="ranking", verbose=0),
            )
            return {tuple(r.config["trial"]): r.metrics["acc"] for r in tuner.fit()}
    finally:
        stop_ray()


def read_standalone(steps: int) -> dict[tuple[str, int], float]:
    """Stand-alone accuracies of an earlier run with the same number of steps (``--reuse-standalone``)."""
    if not STANDALONE_CSV.is_file():
        return {}
    with STANDALONE_CSV.open() as f:
        return {(r["arch"], int(r["seed"])): float(r["acc"]) for r in csv.DictReader(f) if int(r["steps"]) == steps}


def write_standalone(steps: int, results: dict[tuple[str, int], float]) -> None:
    rows = []
    if STANDALONE_CSV.is_file():
        with STANDALONE_CSV.open() as f:
            rows = [r for r in csv.DictReader(f) if int(r["steps"]) != steps]
    rows += [{"arch": a, "steps": steps, "seed": k, "acc": acc} for (a, k), acc in sorted(results.items())]
    with STANDALONE_CSV.open("w", newline="") as f:
        writer = csv.DictWriter(f, ["arch", "steps", "seed", "acc"])
        writer.writeheader()
        writer.writerows(rows)


def pick_archs(space, evaluator, n: int, seed: int):
    pool = space.sample_unique(random.Random(seed), 400)
    pool.sort(key=lambda a: evaluator.cheap(a)["params"])
    return [pool[round(i * (len(pool) - 1) / (n - 1))] for i in range(n)]


def run(ckpts: list[str], n_archs: int, steps: int, seeds: int, concurrent: int, seed: int, reuse: bool) -> Path:
    """Rank the same archs with each supernet in ``ckpts``; the first one's plot and headline."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy.stats import kendalltau, spearmanr

    from nas.data import load_dataset
    from nas.evaluate import SupernetEvaluator
    from nas.supernet.train import accuracy

    evaluators = [SupernetEvaluator.from_files(c, ["cpu"], with_data=False) for c in ckpts]
    space = evaluators[0].space
    if any(e.space.source_text != space.source_text for e in evaluators):
        raise SystemExit("every --supernet must be trained on the same space")
    archs = pick_archs(space, evaluators[0], n_archs, seed)
    data = load_dataset("fashion-mnist", space.task.kind)
    x_eval, y_eval = np.concatenate([data.x_val, data.x_test]), np.concatenate([data.y_val, data.y_test])
    started = time.time()
    supernet_acc = np.array([[accuracy(e.net, a, x_eval, y_eval) for a in archs] for e in evaluators])
    print(f"supernet accuracies of {len(archs)} archs in {time.time() - started:.0f} s", flush=True)

    wanted = [(a.to_str(), seed + k) for a in archs for k in range(seeds)]
    cached = read_standalone(steps) if reuse else {}
    missing = [t for t in wanted if t not in cached]
    print(f"stand-alone trials: {len(wanted) - len(missing)} reused, {len(missing)} to train", flush=True)
    started = time.time()
    if missing:
        cached.update(train_standalone(missing, steps, (data.x_train, data.y_train, x_eval, y_eval), concurrent))
        write_standalone(steps, cached)
    train_seconds = time.time() - started
    runs = np.array([[cached[(a.to_str(), seed + k)] for k in range(seeds)] for a in archs])
    standalone_acc = runs.mean(axis=1)
    ceiling = [kendalltau(runs[:, i], runs[:, j]).statistic for i in range(seeds) for j in range(i + 1, seeds)]

    summary = []
    for ckpt, acc in zip(ckpts, supernet_acc, strict=True):
        summary.append([Path(ckpt).name, checkpoint_recipe(ckpt), f"{kendalltau(acc, standalone_acc).statistic:.3f}",
                        f"{spearmanr(acc, standalone_acc).statistic:.3f}",
                        ", ".join(f"{kendalltau(acc, runs[:, k]).statistic:.3f}" for k in range(seeds))])
    tau, rho = summary[0][2], summary[0][3]

    fig, ax = plt.subplots(figsize=(5.2, 4.6), dpi=110)
    params = [evaluators[0].cheap(a)["params"] / 1e3 for a in archs]
    sc = ax.scatter(standalone_acc, supernet_acc[0], c=np.log10(params), cmap="viridis", s=30)
    fig.colorbar(sc, label="log10 thousands of parameters")
    ax.set_xlabel(f"stand-alone accuracy (from scratch, mean of {seeds} seeds)")
    ax.set_ylabel(f"supernet accuracy (inherited weights, {Path(ckpts[0]).name})")
    ax.set_title(f"{len(archs)} archs: Kendall tau {tau}, Spearman rho {rho}", fontsize=9)
    fig.tight_layout()
    fig.savefig(RESULTS / "supernet_ranking.png")
    rows = [[i, f"{p:.0f}k", *(f"{acc[i]:.4f}" for acc in supernet_acc), f"{standalone_acc[i]:.4f}",
             " ".join(f"{v:.4f}" for v in runs[i]), a.to_str()] for i, (a, p) in enumerate(zip(archs, params, strict=True))]
    noise = (f"The stand-alone ground truth's own reproducibility, Kendall tau between its seeds: "
             f"{', '.join(f'{c:.3f}' for c in ceiling)}. Its accuracies span {standalone_acc.min():.4f} to "
             f"{standalone_acc.max():.4f}; the two seeds of one arch differ by {np.abs(runs[:, 0] - runs[:, 1]).mean():.4f} "
             "on average.\n\n" if seeds > 1 else "")
    body = (f"**Kendall tau {tau}, Spearman rho {rho}** over {len(archs)} archs ({Path(ckpts[0]).name}).\n\n"
            + markdown_table(["supernet", "training", "Kendall tau", "Spearman rho", "tau against each seed alone"],
                             summary)
            + f"\n\n{noise}"
            f"Stand-alone recipe: {steps} AdamW steps of 128 Fashion-MNIST images (lr 3e-3, weight decay 0.05, "
            f"3% warm-up, cosine), seeds {seed} to {seed + seeds - 1}, one thread per trial, {concurrent} Ray Tune "
            f"trials at a time ({train_seconds / 60:.1f} minutes for the {len(missing)} trials trained in this run; "
            f"the others came from {STANDALONE_CSV.name}). Supernet accuracy with inherited weights. Both on the "
            "same 15,000 held-out images (validation and test splits).\n\n"
            + markdown_table(["#", "params", *(f"{Path(c).name} acc" for c in ckpts),
                              f"stand-alone acc (mean of {seeds})", "per seed", "arch"], rows)
            + "\n\n![ranking](supernet_ranking.png)")
    return write_report("supernet_ranking", "Supernet ranking vs stand-alone training",
                        "python experiments/supernet_ranking.py " + " ".join(sys.argv[1:]), body)


def checkpoint_recipe(ckpt: str) -> str:
    """The supernet's training options, from the checkpoint itself."""
    from nas.supernet import checkpoint

    info = checkpoint.load(ckpt)[1]
    config = info.train_config or {}
    return (f"{info.dataset}, {config.get('epochs', '?')} epochs, {info.step} steps of {config.get('batch_size', '?')}, "
            f"{config.get('random_subnets', '?')} random subnets per step, distillation "
            f"{'on' if config.get('distill') else 'off'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--supernet", nargs="+", default=None,
                        help="one or more checkpoints to compare (default: train or reuse "
                             "runs/hybrid-vision-fashion-mnist.ckpt)")
    parser.add_argument("--archs", type=int, default=20)
    parser.add_argument("--steps", type=int, default=2580, help="stand-alone steps (2580 = 6 epochs)")
    parser.add_argument("--seeds", type=int, default=2, help="stand-alone runs per arch (averaged)")
    parser.add_argument("--reuse-standalone", action="store_true",
                        help=f"reuse the stand-alone accuracies in {STANDALONE_CSV.name} (to compare supernets)")
    parser.add_argument("--concurrent", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    ckpts = args.supernet or [str(ensure_supernet())]
    print(run(ckpts, args.archs, args.steps, args.seeds, args.concurrent, args.seed, args.reuse_standalone))


if __name__ == "__main__":
    main()
