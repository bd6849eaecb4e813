"""Does the supernet rank subnets the way training them from scratch does, and better than free proxies?

    python -m experiments.supernet_ranking [--space mcu-vision] [--supernet CKPT ...] [--archs 30]
                                           [--seeds 3] [--steps 400] [--target mcu-m7] [--concurrent 2]
                                           [--finetune-steps K] [--reuse-standalone]
                                           [--compare-steps N ...] [--report NAME]

Picks ``--archs`` archs stratified over the space's latency range (2,000 random draws, the ones
nearest to evenly spaced points of log predicted latency on ``--target``), trains each one
stand-alone from scratch on Fashion-MNIST as Ray Tune trials (``--seeds`` runs per arch,
``--concurrent`` at a time, one thread each, sharing the GPU where there is one) and ranks them by
the mean of their seeds. Scored against that ranking (Kendall tau, with a 95% bootstrap interval
over archs):

- each supernet's accuracy with inherited weights (the first one's also on 1,000 and 5,000 of the
  images, and with ``--finetune-steps K`` after K fine-tuning steps, as ``nas search
  --finetune-steps`` scores), and with several supernets their mean accuracy;
- free baselines: parameter count, MACs and the zero-cost proxies synflow, grad-norm and NASWOT
  at initialisation (``nas.supernet.proxies``; the mean over 3 initialisations, one batch of 128
  training images);
- blends: the mean rank of each supernet's accuracy (and of the supernets' mean) and the best free
  baseline's; with several supernets, the tau between their own rankings;
- with ``--compare-steps N``, the kept stand-alone runs of the same archs trained for N steps
  (the mean of their seeds): how far the ground truth itself moves with the recipe.

The ceiling is the split-half tau: the seeds split into two halves (every split; with 3 seeds one
seed against the mean of the other two), the tau between the halves' mean accuracies, averaged over
splits, with its bootstrap interval (with ``--seeds 1`` there is none). Accuracies are taken on
the same 15,000 held-out images (the validation and test splits; neither trains anything).
Stand-alone recipe: ``--steps`` AdamW steps of 128 images (lr 3e-3, weight decay 0.05, 3% warm-up
then cosine). Stand-alone accuracies are kept in supernet_ranking_standalone.csv
(``--reuse-standalone`` reads them back). Writes
experiments/results/supernet_ranking.md and .png (``--report NAME``: NAME.md and NAME.png).
"""

from __future__ import annotations

import argparse
import csv
import itertools
import math
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy.stats import rankdata, spearmanr

from experiments._common import REPO, RESULTS, ensure_supernet, markdown_table, write_report

PROXY_SEEDS = 3
BOOTSTRAP = 2000


def standalone(config: dict, data=None) -> None:
    """A Ray Tune trainable: train one arch from scratch, report its held-out accuracy."""
    import torch
    from ray import tune

    from nas.space import load
    from nas.supernet.scoring import accuracy
    from nas.supernet.standalone import StandaloneRecipe, train_from_scratch

    torch.set_num_threads(1)
    arch_text, seed = config["trial"]
    space = load(config["space"])
    x_train, y_train, x_eval, y_eval = data
    device = "cuda" if torch.cuda.is_available() else "cpu"  # Ray gives a GPU trial its share
    net = train_from_scratch(space, space.parse(arch_text), x_train, y_train, seed,
                             StandaloneRecipe(steps=config["steps"]), device)
    tune.report({"acc": accuracy(net, None, x_eval, y_eval)})


def train_standalone(space: str, trials: list[tuple[str, int]], steps: int, arrays: tuple, concurrent: int) -> dict:
    """Train each (arch, seed) from scratch as a Ray Tune trial (``concurrent`` of them share the GPU
    where there is one); their held-out accuracies."""
    import torch
    from ray import tune

    from nas.runner.ray_pool import start_ray, stop_ray

    resources = {"cpu": 1, "gpu": 1 / concurrent} if torch.cuda.is_available() else {"cpu": 1}
    start_ray(concurrent, None)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            tuner = tune.Tuner(
                tune.with_resources(tune.with_parameters(standalone, data=arrays), resources),
                param_space={"trial": tune.grid_search([list(t) for t in trials]), "steps": steps, "space": space},
                tune_config=tune.TuneConfig(max_concurrent_trials=concurrent),
                run_config=tune.RunConfig(storage_path=tmp, name="ranking", verbose=0),
            )
            return {tuple(r.config["trial"]): r.metrics["acc"] for r in tuner.fit()}
    finally:
        stop_ray()


STANDALONE_CSV = RESULTS / "supernet_ranking_standalone.csv"
FIELDS = ["space", "arch", "steps", "seed", "acc"]


def read_standalone() -> list[dict]:
    """Every stand-alone run kept so far (rows from before the space column are hybrid-vision's)."""
    if not STANDALONE_CSV.is_file():
        return []
    with STANDALONE_CSV.open() as f:
        return [{"space": r.get("space") or "hybrid-vision", **{k: r[k] for k in FIELDS[1:]}} for r in csv.DictReader(f)]


def standalone_results(space: str, steps: int) -> dict[tuple[str, int], float]:
    return {(r["arch"], int(r["seed"])): float(r["acc"]) for r in read_standalone()
            if r["space"] == space and int(r["steps"]) == steps}


def write_standalone(space: str, steps: int, results: dict[tuple[str, int], float]) -> None:
    rows = [r for r in read_standalone() if not (r["space"] == space and int(r["steps"]) == steps)]
    rows += [{"space": space, "arch": a, "steps": steps, "seed": k, "acc": acc} for (a, k), acc in sorted(results.items())]
    with STANDALONE_CSV.open("w", newline="") as f:
        writer = csv.DictWriter(f, FIELDS)
        writer.writeheader()
        writer.writerows(rows)


def pick_archs(space, evaluator, target: str, n: int, seed: int):
    """``n`` archs nearest to evenly spaced points of log predicted latency over 2,000 random ones."""
    from nas.objectives import latency_metric

    pool = space.sample_unique(random.Random(seed), 2000)
    log_latency = np.log([evaluator.cheap_metrics(a, [latency_metric(target)])[latency_metric(target)] for a in pool])
    order = np.argsort(log_latency)
    points = np.linspace(log_latency[order[0]], log_latency[order[-1]], n)
    chosen: list[int] = []
    for point in points:
        free = [i for i in order if i not in chosen]
        chosen.append(min(free, key=lambda i: abs(log_latency[i] - point)))
    return [pool[i] for i in chosen], np.exp(log_latency[chosen])


def correct_flags(net, arch, x: np.ndarray, y: np.ndarray, batch: int = 500) -> np.ndarray:
    """Per image, whether ``arch`` with the supernet's weights classifies it right."""
    import torch

    net.eval()
    with torch.no_grad():
        pred = np.concatenate([net(torch.as_tensor(x[i:i + batch]), arch).argmax(1).numpy()
                               for i in range(0, len(x), batch)])
    return pred == y


def finetuned_accuracy(supernet, arch, data, x_eval, y_eval, steps: int) -> float:
    """Held-out accuracy of ``arch`` after ``steps`` fine-tuning steps from the weights it inherits,
    as ``nas search --finetune-steps`` scores it."""
    from nas.supernet.scoring import accuracy, finetune, finetune_sample

    x, y = finetune_sample(data.x_train, data.y_train, steps)
    subnet = finetune(supernet.extract(arch, tuple(data.x_train.shape[1:])), x, y, steps)
    return accuracy(subnet, None, x_eval, y_eval)


def tau(a, b) -> float:
    from scipy.stats import kendalltau

    return float(kendalltau(a, b).statistic)


def split_half(runs: np.ndarray, idx: np.ndarray | None = None, size: int | None = None) -> float:
    """Mean over every split of the seeds into two halves (``size`` seeds against the rest; half of
    them by default) of the tau between the halves' means."""
    runs = runs if idx is None else runs[idx]
    seeds = runs.shape[1]
    size = size or seeds // 2
    splits = [c for c in itertools.combinations(range(seeds), size)
              if 2 * size != seeds or 0 in c]  # halves of an even count: each split once
    return float(np.mean([tau(runs[:, list(c)].mean(1), np.delete(runs, list(c), axis=1).mean(1)) for c in splits]))


def kept_runs(space: str, steps: int, archs) -> np.ndarray:
    """(archs, seeds) accuracies of every seed kept for all of ``archs`` at ``steps`` stand-alone steps."""
    kept = standalone_results(space, steps)
    seeds = sorted({k for _, k in kept})
    seeds = [k for k in seeds if all((a.to_str(), k) in kept for a in archs)]
    if not seeds:
        raise SystemExit(f"no kept {steps}-step stand-alone runs of these archs in {STANDALONE_CSV.name}")
    return np.array([[kept[(a.to_str(), k)] for k in seeds] for a in archs])


def bootstrap(stat, n: int, rng: np.random.Generator) -> tuple[float, float]:
    """95% interval of ``stat(idx)`` over archs resampled with replacement."""
    values = [stat(rng.integers(0, n, n)) for _ in range(BOOTSTRAP)]
    values = [v for v in values if not math.isnan(v)]
    return float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))


def free_scores(space, evaluator, archs, data) -> dict[str, np.ndarray]:
    """Parameter count, MACs and the zero-cost proxies (mean over initialisations) of each arch."""
    from nas.supernet.proxies import PROXIES, fresh_supernet, score_arch

    sizes = [evaluator.cheap_metrics(a, ["params", "macs"]) for a in archs]
    scores = {"params": np.array([m["params"] for m in sizes]), "MACs": np.array([m["macs"] for m in sizes])}
    x, y = data.x_train[:128], data.y_train[:128]
    per_seed = []
    for seed in range(PROXY_SEEDS):
        supernet = fresh_supernet(space, seed)
        per_seed.append([score_arch(supernet, a, x, y) for a in archs])
    for name in PROXIES:
        scores[name] = np.array([np.mean([s[i][name] for s in per_seed]) for i in range(len(archs))])
    return scores


def run(space_name: str, ckpts: list[str], n_archs: int, steps: int, seeds: int, target: str, concurrent: int,
        seed: int, reuse: bool, finetune: int = 0, report: str = "supernet_ranking",
        compare_steps: tuple[int, ...] = ()) -> Path:
    """Rank the same archs with each supernet in ``ckpts`` and with the free baselines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    from nas.data import load_dataset
    from nas.evaluate import SupernetEvaluator
    evaluators = [SupernetEvaluator.from_files(c, [target], with_data=False) for c in ckpts]
    space = evaluators[0].space
    if space.name != space_name or any(e.space.source_text != space.source_text for e in evaluators):
        raise SystemExit(f"every --supernet must be trained on {space_name}")
    archs, latency = pick_archs(space, evaluators[0], target, n_archs, seed)
    data = load_dataset("fashion-mnist", space.task)
    x_eval, y_eval = np.concatenate([data.x_val, data.x_test]), np.concatenate([data.y_val, data.y_test])
    started = time.time()
    correct = {Path(c).name: np.array([correct_flags(e.net, a, x_eval, y_eval) for a in archs])
               for c, e in zip(ckpts, evaluators, strict=True)}
    supernet_acc = {k: v.mean(axis=1) for k, v in correct.items()}
    print(f"supernet accuracies of {len(archs)} archs in {time.time() - started:.0f} s", flush=True)
    first = next(iter(supernet_acc))
    tuned = {}
    if finetune:
        started = time.time()
        tuned[f"supernet {first} + {finetune} fine-tuning steps"] = np.array(
            [finetuned_accuracy(evaluators[0].net, a, data, x_eval, y_eval, finetune) for a in archs])
        print(f"fine-tuned accuracies in {time.time() - started:.0f} s", flush=True)
    started = time.time()
    free = free_scores(space, evaluators[0], archs, data)
    print(f"free baselines in {time.time() - started:.0f} s", flush=True)

    wanted = [(a.to_str(), seed + k) for a in archs for k in range(seeds)]
    cached = standalone_results(space_name, steps) if reuse else {}
    missing = [t for t in wanted if t not in cached]
    print(f"stand-alone trials: {len(wanted) - len(missing)} reused, {len(missing)} to train", flush=True)
    started = time.time()
    if missing:
        cached.update(train_standalone(space_name, missing, steps, (data.x_train, data.y_train, x_eval, y_eval),
                                       concurrent))
        write_standalone(space_name, steps, cached)
    train_minutes = (time.time() - started) / 60
    where = "one thread per trial" + (", sharing the GPU" if missing and torch.cuda.is_available() else "")
    runs = np.array([[cached[(a.to_str(), seed + k)] for k in range(seeds)] for a in archs])
    truth = runs.mean(axis=1)
    # The same archs trained with another number of steps (kept runs only): how far the ground truth
    # itself moves with the stand-alone recipe.
    other_runs = {m: kept_runs(space_name, m, archs) for m in compare_steps}

    rng = np.random.default_rng(seed)
    n = len(archs)
    if seeds > 1:
        ceiling = split_half(runs)
        ceiling_ci = bootstrap(lambda idx: split_half(runs, idx), n, rng)
        ceiling_text = f"{ceiling:.3f} ({ceiling_ci[0]:.3f} to {ceiling_ci[1]:.3f})"
    else:
        ceiling, ceiling_text = None, "not measured (one seed)"
    # What the first supernet's tau owes to the number of images it is scored on (the 5,000 of the
    # validation split are what a search uses by default), and a blend with the free baselines.
    fewer = {f"supernet {first} on {m:,} images": correct[first][:, :m].mean(axis=1) for m in (1000, 5000)}
    compared = {f"stand-alone, {m} steps (mean of {r.shape[1]} seeds)": r.mean(axis=1) for m, r in other_runs.items()}
    # Several supernets (say, one recipe trained from several seeds): their mean accuracy, an ensemble.
    ensemble = ({f"mean accuracy of the {len(ckpts)} supernets": np.mean(list(supernet_acc.values()), axis=0)}
                if len(ckpts) > 1 else {})
    own = {**{f"supernet {k}": v for k, v in supernet_acc.items()}, **ensemble}
    scorers = {**own, **fewer, **tuned, **free}
    taus = {k: tau(v, truth) for k, v in scorers.items()}
    best_free = max(free, key=lambda k: taus[k])
    # Each supernet (and the ensemble) blended with the best free baseline: the mean of the two ranks.
    for k, v in own.items():
        blend = f"blend: mean rank of {k} and {best_free}"
        scorers[blend] = rankdata(v) + rankdata(free[best_free])
        taus[blend] = tau(scorers[blend], truth)
    scorers.update(compared)
    taus.update({k: tau(v, truth) for k, v in compared.items()})
    cis = {k: bootstrap(lambda idx, v=v: tau(v[idx], truth[idx]), n, rng) for k, v in scorers.items()}
    rows = [[k, f"{taus[k]:.3f}", f"{cis[k][0]:.3f} to {cis[k][1]:.3f}"] for k in scorers]
    margins = []
    for k in supernet_acc:
        sk = scorers[f"supernet {k}"]
        lo, hi = bootstrap(lambda idx, sk=sk: tau(sk[idx], truth[idx]) - tau(free[best_free][idx], truth[idx]), n, rng)
        # How far the supernet's over- or under-scoring follows size: what a blend with params corrects.
        size_bias = spearmanr(supernet_acc[k] - truth, free["params"]).statistic
        margins.append([k, checkpoint_recipe(next(c for c in ckpts if Path(c).name == k)),
                        f"{taus[f'supernet {k}']:.3f}", f"{taus[f'supernet {k}'] - taus[best_free]:+.3f}",
                        f"{lo:+.3f} to {hi:+.3f}", f"{size_bias:+.2f}"])

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.4), dpi=110)
    sc = axes[0].scatter(truth, supernet_acc[first], c=np.log10(latency), cmap="viridis", s=30)
    fig.colorbar(sc, ax=axes[0], label=f"log10 predicted latency on {target} (ms)")
    axes[0].set_xlabel(f"stand-alone accuracy (from scratch, mean of {seeds} seeds)")
    axes[0].set_ylabel(f"supernet accuracy (inherited weights, {first})")
    axes[0].set_title(f"{space_name}, {n} archs: Kendall tau {taus['supernet ' + first]:.3f}", fontsize=9)
    names = list(scorers)
    axes[1].barh(range(len(names)), [taus[k] for k in names],
                 xerr=np.array([[taus[k] - cis[k][0], cis[k][1] - taus[k]] for k in names]).T, color="#5b8db8")
    if ceiling is not None:
        axes[1].axvline(ceiling, color="#c0392b", ls="--", label=f"ceiling (split-half) {ceiling:.3f}")
        axes[1].legend(fontsize=8, loc="lower right")
    axes[1].set_yticks(range(len(names)), names, fontsize=7)
    axes[1].set_xlabel("Kendall tau with the stand-alone ranking (95% bootstrap interval)")
    fig.tight_layout()
    fig.savefig(RESULTS / f"{report}.png")

    agreement = "".join(
        f" {a} against {b}: {tau(supernet_acc[a], supernet_acc[b]):.3f}." for a, b in itertools.combinations(supernet_acc, 2))
    if agreement:
        agreement = "\n\nKendall tau between the supernets' own rankings (how much of a supernet's ranking is its own training):" + agreement
    arch_rows = [[i, f"{latency[i]:.1f}", f"{free['params'][i] / 1e3:.1f}k", *(f"{v[i]:.4f}" for v in supernet_acc.values()),
                  f"{truth[i]:.4f}", " ".join(f"{v:.4f}" for v in runs[i]), *(f"{v[i]:.4f}" for v in compared.values()),
                  a.to_str()] for i, a in enumerate(archs)]
    noise = "".join(f" One {m}-step seed against the mean of the other {r.shape[1] - 1}: Kendall tau {split_half(r, size=1):.3f} "
                    f"(what a one-seed truth loses to seed noise)." for m, r in other_runs.items() if r.shape[1] > 2)
    body = (f"**{space_name}: supernet Kendall tau {taus['supernet ' + first]:.3f} "
            f"(95% interval {cis['supernet ' + first][0]:.3f} to {cis['supernet ' + first][1]:.3f}) against a ceiling of "
            f"{ceiling_text}; best free baseline {best_free} "
            f"{taus[best_free]:.3f}.** {n} archs stratified over {target} latency "
            f"({latency.min():.1f} to {latency.max():.1f} ms predicted), {seeds} stand-alone seed{'s' if seeds > 1 else ''} each.\n\n"
            "### Supernets against the best free baseline\n\n"
            + markdown_table(["supernet", "training", "Kendall tau", f"minus {best_free}'s", "95% interval of the difference",
                              "Spearman of (supernet minus stand-alone) with params"], margins)
            + "\n\nThe last column: negative when the supernet over-scores small archs and under-scores large ones."
            + agreement
            + "\n\n### Every scorer\n\n"
            + markdown_table(["scorer", "Kendall tau with the stand-alone ranking", "95% bootstrap interval"], rows)
            + f"\n\nCeiling (split-half tau of the stand-alone seeds): {ceiling_text}.{noise} Stand-alone accuracies span "
            f"{truth.min():.4f} to {truth.max():.4f}"
            + (f"; a seed differs from its arch's mean by {np.abs(runs - truth[:, None]).mean():.4f} on average.\n\n"
               if seeds > 1 else ".\n\n")
            + f"Stand-alone recipe: {steps} AdamW steps of 128 Fashion-MNIST images (lr 3e-3, weight decay 0.05, "
            f"3% warm-up, cosine), seed{f's {seed} to {seed + seeds - 1}' if seeds > 1 else f' {seed}'}, {where}, {concurrent} Ray Tune "
            f"trials at a time ({train_minutes:.1f} minutes for the {len(missing)} trials trained in this run; "
            f"the others came from {STANDALONE_CSV.name}). Free baselines: params and MACs from the per-unit "
            f"tables; proxies at initialisation, the mean over {PROXY_SEEDS} initialisations, on 128 training images "
            f"(NASWOT on 64). Supernet and stand-alone accuracy on the same 15,000 held-out images (validation and "
            f"test splits). Intervals: {BOOTSTRAP} bootstrap resamples of the archs.\n\n"
            + markdown_table(["#", f"{target} ms", "params", *(f"{k} acc" for k in supernet_acc),
                              f"stand-alone acc (mean of {seeds})", "per seed", *(f"{k} acc" for k in compared), "arch"],
                             arch_rows)
            + f"\n\n![ranking]({report}.png)")
    return write_report(report, "Supernet ranking vs stand-alone training and free baselines",
                        "python -m experiments.supernet_ranking " + " ".join(sys.argv[1:]), body)


def checkpoint_recipe(ckpt: str) -> str:
    """The supernet's training options, from the checkpoint itself."""
    from nas.supernet import checkpoint

    info = checkpoint.load(ckpt)[1]
    config = info.train_config or {}
    extremes = config.get("extremes", "global")  # what checkpoints without the option were trained with
    ends = {"none": "no largest or smallest", "largest": "per-kind largest only"}.get(
        extremes, f"{extremes} largest and smallest")
    return (f"{info.dataset}, {config.get('epochs', '?')} epochs, {info.step} steps of {config.get('batch_size', '?')}, "
            f"{config.get('random_subnets', '?')} random subnets per step, {ends}, distillation "
            + (f"weight {config.get('distill_weight', '?')}" if config.get("distill") else "off"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="mcu-vision")
    parser.add_argument("--supernet", nargs="+", default=None,
                        help="one or more checkpoints of --space to compare (default: train or reuse "
                             "runs/SPACE-fashion-mnist.ckpt with the default recipe)")
    parser.add_argument("--archs", type=int, default=30)
    parser.add_argument("--steps", type=int, default=400, help="stand-alone steps of 128 images")
    parser.add_argument("--seeds", type=int, default=3, help="stand-alone runs per arch (averaged)")
    parser.add_argument("--target", default="mcu-m7", help="latency target the archs are stratified over")
    parser.add_argument("--reuse-standalone", action="store_true",
                        help=f"reuse the stand-alone accuracies in {STANDALONE_CSV.name} (to compare supernets)")
    parser.add_argument("--finetune-steps", type=int, default=0,
                        help="also score the first supernet's subnets after this many fine-tuning steps")
    parser.add_argument("--concurrent", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--report", default="supernet_ranking",
                        help="name of the report under experiments/results/ (NAME.md and NAME.png)")
    parser.add_argument("--compare-steps", type=int, nargs="+", default=[],
                        help="also rank by the kept stand-alone runs of the same archs at these step counts")
    args = parser.parse_args()
    if args.archs < 5 or args.seeds < 1:
        raise SystemExit("--archs must be at least 5 and --seeds at least 1 (the ceiling needs 2)")
    ckpts = args.supernet or [str(ensure_supernet(REPO / "runs" / f"{args.space}-fashion-mnist.ckpt", args.space))]
    print(run(args.space, ckpts, args.archs, args.steps, args.seeds, args.target, args.concurrent, args.seed,
              args.reuse_standalone, args.finetune_steps, args.report, tuple(args.compare_steps)))


if __name__ == "__main__":
    main()
