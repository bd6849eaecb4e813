"""The ranking benchmark, take two: a ground truth of archs trained from scratch, long enough to
measure trained accuracy, several seeds each, every trial stored the moment it finishes; and, with
``--supernet``, how well each supernet (and their mean) ranks the archs against it.

    python -m experiments.ranking_truth [--space mcu-vision] [--archs 40] [--seeds 3] [--steps 1600] [--name NAME]
                                        [--target mcu-m7] [--concurrent 2] [--out CSV] [--smoke]
                                        [--supernet CKPT ...] [--compare-steps N ...]
                                        [--train-only | --report-only]

The archs: ``--archs`` of 2,000 random draws of the space (seed 0), stratified over log predicted
latency on ``--target`` (evenly spaced points of its range) and over kind patterns (which mixer
kinds and which ffn kinds an arch uses): at each latency point, of the 25 draws nearest to it,
the one whose kind pattern has been picked least so far. Each (arch, seed) is one Ray Tune trial
(``--concurrent`` at a time, one thread each, sharing the GPU where there is one) trained by
:func:`nas.supernet.standalone.train_from_scratch` (``--steps`` AdamW steps of 128 Fashion-MNIST
training images; the batches depend on the seed alone, so every arch of one seed sees the same
data order), scored by accuracy and NLL on the 15,000 held-out images (validation and test
splits). A trial's row is appended to ``--out`` (default experiments/results/ranking_truth.csv)
as it finishes; a rerun trains only what is missing, so the run survives being stopped at any
moment (a trial in flight is lost, never half-written: a torn last line is skipped on reading).
The report, experiments/results/ranking_truth.md, says what is stored so far, how long the
trials took and on what machine.

With ``--supernet`` (trained on the same space), the archs with every seed stored are scored by
each supernet's inherited-weight accuracy and by its loss (NLL), on all 15,000 held-out images,
by the mean over the supernets, and by the parameter count; against the mean stand-alone accuracy
(the truth) each scorer gets what a search needs of it (:func:`ranking_stats`): the global Kendall
tau, the mean tau within latency terciles (what a constrained search compares), the precision at
the top 10%, and its paired difference from params' tau; 95% intervals from 2,000 bootstrap
resamples of the archs. The ceiling is what a perfect scorer reaches against the mean of the seeds
(:func:`truth_ceiling`); one seed against the mean of the others is given beside it.
``--train-only`` trains what is missing and reports nothing else; ``--report-only`` trains nothing.
``--compare-steps N`` reports how the ranking moves against the stored trials of N steps (train
them with ``--steps N --train-only``): where it has stopped moving, the truth measures trained
accuracy.

A text space (``--space hybrid-lm``) runs the same benchmark on GCIDE: the archs stratified over
predicted cpu decode latency (its ``nas latency build`` model), each trial ``--steps`` AdamW steps
(default the space's recipe: 1,024) of the recipe's batch of windows, the truth the held-out loss
(bits per byte: lower is better, so the truth and every score are its negation) with next-byte
accuracy stored beside it (the ``acc`` column); no calibration section (the calibration models
accuracy).
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from experiments._common import RESULTS, markdown_table, write_report
from nas.supernet.calibrate import kind_pattern

TRUTH_CSV = RESULTS / "ranking_truth.csv"
FIELDS = ["space", "arch", "steps", "seed", "acc", "nll", "seconds", "device"]
POOL = 2000
WINDOW = 25  # draws nearest a latency point, of which the least-picked kind pattern is taken


def latency_predictor(space, target: str):
    """What the archs are stratified over: ``target``'s latency profile (a text space: its decode model)."""
    if is_text(space):
        from nas.latency import lm

        return lm.find(target, space, "decode", space.task.input_shape[-1])[0]
    from nas.latency import predictor_for
    from nas.latency.profile import load_profile

    return predictor_for(load_profile(target, space)[0], space)


def pick_archs(space, target: str, n: int, seed: int = 0) -> tuple[list, np.ndarray]:
    """``n`` archs stratified over log predicted latency on ``target`` and over kind patterns (see
    the module doc), with their predicted latencies, cheapest first."""
    from nas.supernet.calibrate import stratified

    pool = space.sample_unique(random.Random(seed), POOL)
    log_latency = np.log(np.asarray(latency_predictor(space, target).predict(pool), dtype=float))
    chosen = stratified(pool, log_latency, n, WINDOW)
    return [pool[i] for i in chosen], np.exp(log_latency[chosen])


def pinned_archs(space, target: str, n: int, path: Path) -> tuple[list, np.ndarray]:
    """The archs of the truth stored at ``path``: those its ``.archs`` file lists (written on the first
    run, so that rebuilding a latency model later cannot change which archs a truth holds), with
    their latencies predicted now."""
    listing = path.with_suffix(".archs")
    if listing.is_file():
        archs = [space.parse(line) for line in listing.read_text().split()]
        if len(archs) != n:
            raise SystemExit(f"{listing} pins {len(archs)} archs, not --archs {n}: use another --out")
        return archs, np.asarray(latency_predictor(space, target).predict(archs), dtype=float)
    archs, latency = pick_archs(space, target, n)
    listing.parent.mkdir(parents=True, exist_ok=True)
    listing.write_text("".join(f"{a.to_str()}\n" for a in archs))
    return archs, latency


BOOTSTRAP = 2000
BINS = 3


def is_text(space) -> bool:
    return space.task.kind == "text"


def _tau(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import kendalltau

    value = kendalltau(a, b).statistic
    return float(value) if np.isfinite(value) else 0.0


def ranking_stats(score: np.ndarray, truth: np.ndarray, latency: np.ndarray, idx: np.ndarray | None = None) -> dict:
    """What a search needs of a scorer (higher is better) against ``truth``: the global Kendall tau,
    the mean tau within latency terciles, and the share of the truth's top 10% that the scorer's
    top 10% holds (at least one arch each). ``idx``: the archs to use (a bootstrap resample)."""
    idx = np.arange(len(truth)) if idx is None else idx
    score, truth, latency = score[idx], truth[idx], latency[idx]
    edges = np.quantile(latency, np.linspace(0, 1, BINS + 1)[1:-1])
    bins = np.digitize(latency, edges)
    within = [_tau(score[bins == b], truth[bins == b]) for b in range(BINS) if (bins == b).sum() >= 3]
    top = max(1, round(0.1 * len(truth)))
    best_truth, best_score = set(np.argsort(-truth)[:top]), set(np.argsort(-score)[:top])
    return {"tau": _tau(score, truth), "tau_within": float(np.mean(within)) if within else float("nan"),
            "precision_top10": len(best_truth & best_score) / top}


def compare(scorers: dict[str, np.ndarray], truth: np.ndarray, latency: np.ndarray, baseline: str = "params",
            seed: int = 0) -> dict[str, dict]:
    """Each scorer's :func:`ranking_stats`, their 95% bootstrap intervals over archs, and the
    paired difference of its taus (global and within bins) from ``baseline``'s, with intervals."""
    rng = np.random.default_rng(seed)
    n = len(truth)
    samples = [rng.integers(0, n, n) for _ in range(BOOTSTRAP)]
    boot = {k: [ranking_stats(v, truth, latency, i) for i in samples] for k, v in scorers.items()}
    out = {}
    for name, score in scorers.items():
        row = {"point": ranking_stats(score, truth, latency)}
        for stat in ("tau", "tau_within", "precision_top10"):
            row[stat] = np.nanpercentile([b[stat] for b in boot[name]], [2.5, 97.5])
            if name != baseline:
                diffs = [b[stat] - c[stat] for b, c in zip(boot[name], boot[baseline], strict=True)]
                row[f"{stat}_minus_{baseline}"] = (row["point"][stat] - ranking_stats(scorers[baseline], truth, latency)[stat],
                                                   *np.nanpercentile(diffs, [2.5, 97.5]))
        out[name] = row
    return out


def supernet_scores(ckpts: list[str], archs, x_eval, y_eval) -> dict[str, np.ndarray]:
    """Per checkpoint, each arch's inherited-weight accuracy and negated NLL (higher is better)."""
    from nas.supernet import checkpoint
    from nas.supernet.scoring import accuracy_and_nll

    out = {}
    for ckpt in ckpts:
        net, _ = checkpoint.load(ckpt)
        scored = np.array([accuracy_and_nll(net, a, x_eval, y_eval) for a in archs])
        out[f"{Path(ckpt).name} accuracy"] = scored[:, 0]
        out[f"{Path(ckpt).name} -NLL"] = -scored[:, 1]
    if len(ckpts) > 1:
        for what in ("accuracy", "-NLL"):
            out[f"mean of the {len(ckpts)} supernets, {what}"] = np.mean(
                [v for k, v in out.items() if k.endswith(f" {what}") and not k.startswith("mean")], axis=0)
    return out


def scores_table(results: dict[str, dict]) -> str:
    def ci(low_high) -> str:
        return f"{low_high[0]:.3f} to {low_high[1]:.3f}"

    rows = []
    for name, r in results.items():
        p = r["point"]
        diff = r.get("tau_minus_params")
        diff_within = r.get("tau_within_minus_params")
        rows.append([name, f"{p['tau']:.3f} ({ci(r['tau'])})", f"{p['tau_within']:.3f} ({ci(r['tau_within'])})",
                     f"{p['precision_top10']:.2f} ({ci(r['precision_top10'])})",
                     "-" if diff is None else f"{diff[0]:+.3f} ({diff[1]:+.3f} to {diff[2]:+.3f})",
                     "-" if diff_within is None else f"{diff_within[0]:+.3f} ({diff_within[1]:+.3f} to {diff_within[2]:+.3f})"])
    return markdown_table(["scorer", "Kendall tau (95% interval)", f"tau within {BINS} latency bins",
                           "precision at the top 10%", "tau minus params's", "tau within bins minus params's"], rows)


def read_trials(path: Path = TRUTH_CSV) -> list[dict]:
    """Every stored trial; a row a kill tore in half is skipped."""
    if not path.is_file():
        return []
    rows = []
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            try:
                rows.append({**row, "steps": int(row["steps"]), "seed": int(row["seed"]), "acc": float(row["acc"]),
                             "nll": float(row["nll"]), "seconds": float(row["seconds"])})
            except (TypeError, ValueError, KeyError):
                continue
    return rows


def append_trial(row: dict, path: Path = TRUTH_CSV) -> None:
    """One finished trial, on disk before this returns (after a torn line, on a line of its own)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fresh = not path.is_file() or path.stat().st_size == 0
    with path.open("a+", newline="") as f:
        if not fresh:
            f.seek(f.tell() - 1)
            if f.read(1) != "\n":
                f.write("\n")
        writer = csv.DictWriter(f, FIELDS)
        if fresh:
            writer.writeheader()
        writer.writerow({k: row[k] for k in FIELDS})
        f.flush()
        os.fsync(f.fileno())


def trial(config: dict, data=None) -> None:
    """A Ray Tune trainable: one arch from scratch with one seed; its held-out accuracy and NLL."""
    import torch
    from ray import tune

    from nas.space import load
    from nas.supernet.scoring import accuracy_and_nll
    from nas.supernet.standalone import StandaloneRecipe, train_from_scratch

    torch.set_num_threads(1)
    started = time.time()
    space = load(config["space"])
    arch_text, seed = config["trial"]
    x_train, y_train, x_eval, y_eval = data
    device = "cuda" if torch.cuda.is_available() else "cpu"  # Ray gives a GPU trial its share
    net = train_from_scratch(space, space.parse(arch_text), x_train, y_train, seed,
                             StandaloneRecipe(steps=config["steps"], batch_size=config["batch"]), device,
                             num_classes=config["num_classes"])
    acc, nll = accuracy_and_nll(net, None, x_eval, y_eval)
    tune.report({"acc": acc, "nll": nll, "seconds": time.time() - started, "device": device})


def train_missing(space_name: str, todo: list[tuple[str, int]], steps: int, arrays: tuple, concurrent: int,
                  path: Path, batch: int = 128, num_classes: int | None = None) -> None:
    """Each (arch, seed) of ``todo`` as a Ray Tune trial, its row appended to ``path`` as it finishes."""
    import torch
    from ray import tune

    from nas.runner.ray_pool import start_ray, stop_ray

    done = [0]
    started = time.time()

    class Store(tune.Callback):
        def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
            arch, seed = trial.config["trial"]
            append_trial({"space": space_name, "arch": arch, "steps": steps, "seed": seed, "acc": round(result["acc"], 5),
                          "nll": round(result["nll"], 5), "seconds": round(result["seconds"], 1),
                          "device": result["device"]}, path)
            done[0] += 1
            print(f"{done[0]}/{len(todo)} trials ({time.time() - started:.0f} s): seed {seed} acc {result['acc']:.4f}",
                  flush=True)

    resources = {"cpu": 1, "gpu": 1 / concurrent} if torch.cuda.is_available() else {"cpu": 1}
    start_ray(concurrent, None)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            tune.Tuner(
                tune.with_resources(tune.with_parameters(trial, data=arrays), resources),
                param_space={"trial": tune.grid_search([list(t) for t in todo]), "steps": steps, "space": space_name,
                             "batch": batch, "num_classes": num_classes},
                tune_config=tune.TuneConfig(max_concurrent_trials=concurrent),
                run_config=tune.RunConfig(storage_path=tmp, name="truth", verbose=0, callbacks=[Store()]),
            ).fit()
    finally:
        stop_ray()


def truth(space_name: str, steps: int, archs, seeds: int, path: Path = TRUTH_CSV, loss: bool = False) -> np.ndarray:
    """(archs, seeds) stored accuracies of ``archs``, or with ``loss`` their negated held-out NLL
    (higher is better either way; NaN where a trial is still missing)."""
    kept = {(r["arch"], r["seed"]): -r["nll"] if loss else r["acc"] for r in read_trials(path)
            if r["space"] == space_name and r["steps"] == steps}
    return np.array([[kept.get((a.to_str(), k), np.nan) for k in range(seeds)] for a in archs])


def ceiling(runs: np.ndarray) -> float:
    """The mean over seeds of the tau between one seed and the mean of the others: how well a
    perfect scorer of trained accuracy could agree with a truth of this many seeds' noise."""
    seeds = runs.shape[1]
    return float(np.mean([_tau(runs[:, k], np.delete(runs, k, axis=1).mean(1)) for k in range(seeds)]))


def ceiling_line(runs: np.ndarray) -> str:
    seeds = runs.shape[1]
    if seeds < 2:
        return "Ceiling: not known from one seed."
    full, one = truth_ceiling(runs)
    return (f"Ceiling of this {seeds}-seed truth (a perfect scorer against the mean of the {seeds} seeds; "
            f"model of arch + seed effects + noise, :func:`truth_ceiling`): **{full:.3f}**. "
            f"One seed against the mean of the others, measured: {ceiling(runs):.3f} "
            f"(the model predicts {one:.3f}): that is the ceiling of a one-seed truth.")


def truth_ceiling(runs: np.ndarray, sims: int = 2000, seed: int = 0) -> tuple[float, float]:
    """What a perfect scorer reaches against the *mean of all seeds* (the truth the scorers meet),
    and what the same model says one seed reaches against the mean of the others (to check the
    model on :func:`ceiling`'s measured figure).

    :func:`ceiling` pits one seed against the mean of the rest, so both sides carry seed noise and
    it measures a one-seed truth: it understates the ceiling of a truth averaged over every seed.
    Here the runs are modelled as arch effect + seed effect (one data order per seed shifts every
    arch) + normal noise; the noise variance is the residual's, the spread of the arch effects the
    variance of the arch means less the part of it the noise explains; the tau between simulated
    arch effects and their noisy ``seeds``-seed mean is averaged over ``sims`` draws."""
    n, seeds = runs.shape
    resid = runs - runs.mean(1, keepdims=True) - runs.mean(0, keepdims=True) + runs.mean()
    noise = float((resid ** 2).sum() / ((n - 1) * (seeds - 1)))
    spread = max(float(runs.mean(1).var(ddof=1)) - noise / seeds, 0.0)
    rng = np.random.default_rng(seed)
    full, one = [], []
    for _ in range(sims):
        arch = rng.normal(0.0, np.sqrt(spread), n)
        full.append(_tau(arch, arch + rng.normal(0.0, np.sqrt(noise / seeds), n)))
        one.append(_tau(arch + rng.normal(0.0, np.sqrt(noise), n),
                        arch + rng.normal(0.0, np.sqrt(noise / (seeds - 1)), n)))
    return float(np.mean(full)), float(np.mean(one))


def write_scores(path: Path, archs, truth: np.ndarray, scorers: dict[str, np.ndarray]) -> None:
    """Every arch's truth and scores, one row each (higher is better in every column), so that a
    question about the scorers needs no supernet evaluated again."""
    import io

    from nas.atomic import atomic_write

    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["arch", "truth", *scorers])
    writer.writerows([a.to_str(), f"{t:.6g}", *(f"{v[i]:.6g}" for v in scorers.values())]
                     for i, (a, t) in enumerate(zip(archs, truth, strict=True)))
    atomic_write(path, text.getvalue())


def score_section(space, ckpts: list[str], archs, latency: np.ndarray, runs: np.ndarray, x_eval, y_eval,
                  x_val, y_val, scores_csv: Path | None = None) -> str:
    """The supernets (and params) against the truth, on the archs with every seed stored (their
    scores kept in ``scores_csv``)."""
    from nas.supernet.metrics import MetricsModel
    from nas.supernet.proxies import fresh_supernet

    full = np.isfinite(runs).all(axis=1)
    if full.sum() < 6:
        return f"Scoring needs at least 6 archs with every seed stored; {int(full.sum())} have them so far."
    archs = [a for a, keep in zip(archs, full, strict=True) if keep]
    runs, latency = runs[full], latency[full]
    truth = runs.mean(axis=1)
    metrics = MetricsModel(fresh_supernet(space), space)
    scorers = {"params": np.array([float(metrics.params(a)) for a in archs]),
               **supernet_scores(ckpts, archs, x_eval, y_eval)}
    if scores_csv is not None:
        write_scores(scores_csv, archs, truth, scorers)
    results = compare(scorers, truth, latency)
    held = f"{len(x_eval):,} held-out {'windows' if is_text(space) else 'images'}"
    return (f"### {len(archs)} archs with all {runs.shape[1]} seeds, scored on the {held}\n\n"
            + ceiling_line(runs) + "\n\n"
            + scores_table(results)
            + "\n\nSupernets: " + "; ".join(f"{Path(c).name}: {checkpoint_recipe(c)}" for c in ckpts) + "."
            + ("" if is_text(space) else
               calibration_section(space, ckpts[0], archs, truth, scorers["params"], x_val, y_val)))


CALIBRATION_ARCHS, SPLITS = 10, 200


def split_taus(features: list[dict[str, float]], truth: np.ndarray, sets: dict[str, Sequence[tuple[str, ...]]],
               k: int, splits: int = SPLITS, seed: int = 0, baselines: dict[str, np.ndarray] | None = None,
               ) -> dict[str, np.ndarray]:
    """For each random split of the archs into ``k`` fitted and the rest held out: the Kendall tau on
    the held-out archs of the calibration's ridge (``nas supernet calibrate``'s model) fitted on the
    ``k``, one per entry of ``sets`` (its candidate feature sets, chosen among by leave-one-out when
    several), and of each fixed ``baselines`` score on the same held-out archs."""
    from nas.supernet.calibrate import AccuracyCalibration

    baselines = baselines or {}
    rng = np.random.default_rng(seed)
    out: dict[str, list[float]] = {name: [] for name in [*sets, *baselines]}
    for _ in range(splits):
        order = rng.permutation(len(truth))
        fit, held = order[:k], order[k:]
        rows = [{"arch": str(i), "accuracy": float(truth[i]), "features": features[i]} for i in fit]
        for name, candidates in sets.items():
            model = AccuracyCalibration("", 0, 0, rows=rows).fit(candidates, check=False)
            out[name].append(_tau(np.array([model.predict(features[i]) for i in held]), truth[held]))
        for name, values in baselines.items():
            out[name].append(_tau(values[held], truth[held]))
    return {name: np.array(values) for name, values in out.items()}


def calibrated_taus(features: list[dict[str, float]], truth: np.ndarray, params: np.ndarray, k: int = CALIBRATION_ARCHS,
                    splits: int = SPLITS, seed: int = 0) -> dict[str, np.ndarray]:
    """Accuracy calibrated from ``k`` stand-alone archs (its feature set chosen by leave-one-out, and
    each set fixed) against the supernet's own accuracy and params, each scored by its Kendall tau on
    the other archs; one value per random split (:func:`split_taus`)."""
    from nas.supernet.calibrate import CANDIDATES

    fixed = {f"ridge on {', '.join(c)}": (c,) for c in CANDIDATES if all(n in f for f in features for n in c)}
    supernet = np.array([f["supernet_accuracy"] for f in features])
    return split_taus(features, truth, {"calibrated": CANDIDATES, **fixed}, k, splits, seed,
                      {"supernet accuracy": supernet, "params": params})


def calibration_section(space, ckpt: str, archs, truth: np.ndarray, params: np.ndarray, x_val, y_val) -> str:
    from nas.supernet import checkpoint
    from nas.supernet.calibrate import arch_features
    from nas.supernet.proxies import fresh_supernet

    if len(archs) < CALIBRATION_ARCHS + 6:
        return ""
    net, _ = checkpoint.load(ckpt)
    fresh = fresh_supernet(space)
    features = [arch_features(net, a, x_val, y_val, p, fresh) for a, p in zip(archs, params, strict=True)]
    taus = calibrated_taus(features, truth, params)
    rows = [["calibrated (its feature set chosen by leave-one-out on the k)" if name == "calibrated" else name,
             f"{v.mean():.3f}", f"{np.percentile(v, 2.5):.3f} to {np.percentile(v, 97.5):.3f}"]
            for name, v in taus.items()]
    gain = taus["calibrated"] - taus["params"]
    more = [k for k in (20, 30) if k <= len(archs) - 6]
    curve = [[k, *(f"{v[name].mean():.3f}" for name in ("calibrated", "params", "supernet accuracy")),
              f"{100 * (v['calibrated'] > v['params']).mean():.0f}%"]
             for k, v in ((k, calibrated_taus(features, truth, params, k=k)) for k in more)]
    curve_text = ("" if not curve else
                  f"\n\nWith more stand-alone archs (the same {SPLITS} kinds of split, fewer held out):\n\n"
                  + markdown_table(["k archs fitted", "calibrated", "params", "supernet accuracy",
                                    "splits where calibrated beats params"],
                                   [[CALIBRATION_ARCHS, f"{taus['calibrated'].mean():.3f}", f"{taus['params'].mean():.3f}",
                                     f"{taus['supernet accuracy'].mean():.3f}", f"{100 * (gain > 0).mean():.0f}%"],
                                    *curve]))
    return (f"\n\n### Accuracy calibrated from {CALIBRATION_ARCHS} stand-alone archs ({Path(ckpt).name})\n\n"
            f"The model of `nas supernet calibrate` (a ridge on one of a few feature sets, chosen by leave-one-out error "
            f"on the {CALIBRATION_ARCHS} archs themselves: the supernet's accuracy and NLL on the 5,000 validation "
            f"images, log params, depth, zero-cost proxies at initialisation; each set fixed is shown too) fitted on "
            f"{CALIBRATION_ARCHS} archs of the truth drawn at random, scored "
            f"by its Kendall tau on the other {len(archs) - CALIBRATION_ARCHS}; {SPLITS} random splits (the interval "
            f"is the splits' 2.5 to 97.5 percentiles, not a confidence interval).\n\n"
            + markdown_table(["scorer, on the held-out archs", "mean Kendall tau", "over the splits"], rows)
            + f"\n\nCalibrated minus params, per split: mean {gain.mean():+.3f}, ahead in {100 * (gain > 0).mean():.0f}% of splits."
            + curve_text)


def checkpoint_recipe(ckpt: str) -> str:
    from nas.supernet import checkpoint

    info = checkpoint.load(ckpt)[1]
    config = info.train_config or {}
    return (f"{info.dataset}, {info.step} steps of {config.get('batch_size', '?')}, {config.get('random_subnets', '?')} "
            f"random subnets per step, {config.get('extremes', 'global')} extremes, seed {config.get('seed', '?')}")


def steps_section(space_name: str, archs, steps: int, others: list[int], path: Path) -> str:
    """How far the ranking moves with longer (or shorter) stand-alone training: for each other step
    count, the archs trained both ways (mean over the seeds each has), Kendall tau between the two
    rankings and the mean accuracy gained."""
    def means(n: int) -> dict[str, float]:
        by_arch: dict[str, list[float]] = {}
        for r in read_trials(path):
            if r["space"] == space_name and r["steps"] == n:
                by_arch.setdefault(r["arch"], []).append(r["acc"])
        return {a: float(np.mean(v)) for a, v in by_arch.items()}

    mine, rows = means(steps), []
    wanted = {a.to_str() for a in archs}
    for n in others:
        theirs = means(n)
        common = sorted(wanted & set(mine) & set(theirs))
        if len(common) < 3:
            rows.append([n, len(common), "-", "-"])
            continue
        a, b = np.array([mine[k] for k in common]), np.array([theirs[k] for k in common])
        rows.append([n, len(common), f"{_tau(a, b):.3f}", f"{100 * (b - a).mean():+.2f}"])
    return (f"### Does the ranking still move? {steps} steps against other lengths\n\n"
            + markdown_table(["other steps", "archs trained both ways", "Kendall tau between the rankings",
                              "accuracy gained (points)"], rows))


def report(space, target: str, archs, latency: np.ndarray, steps: int, seeds: int, path: Path,
           scored: str = "", batch: int = 128, name: str | None = None) -> Path:
    space_name, text = space.name, is_text(space)
    rows = [r for r in read_trials(path) if r["space"] == space_name and r["steps"] == steps]
    wanted = {(a.to_str(), k) for a in archs for k in range(seeds)}
    mine = list({(r["arch"], r["seed"]): r for r in rows if (r["arch"], r["seed"]) in wanted}.values())  # a trial once
    runs = truth(space_name, steps, archs, seeds, path, loss=text)
    shown = -runs / np.log(2) if text else runs  # bits per byte, or accuracy
    patterns = Counter(kind_pattern(a) for a in archs)
    arch_rows = [[i, f"{latency[i]:.3g}", " + ".join(kind_pattern(a)[0]) + " / " + " + ".join(kind_pattern(a)[1]),
                  " ".join("-" if np.isnan(v) else f"{v:.4f}" for v in shown[i]), a.to_str()]
                 for i, a in enumerate(archs)]
    seconds = [r["seconds"] for r in mine]
    devices = Counter(r["device"] for r in mine)
    complete = int(np.isfinite(runs).all(axis=1).sum())
    body = (f"**{len(mine)} of {len(wanted)} trials stored; {complete} of {len(archs)} archs have all {seeds} seeds.** "
            f"{space_name}, {len(archs)} archs stratified over {target}{' decode' if text else ''} latency "
            f"({latency.min():.3g} to {latency.max():.3g} ms predicted) and over {len(patterns)} kind patterns; {steps} "
            f"steps of {batch} {'GCIDE windows' if text else 'Fashion-MNIST images'} per trial, seeds 0 to {seeds - 1} "
            f"(one data order per seed, shared by every arch)"
            f"{'; the truth is the held-out loss, shown in bits per byte' if text else ''}.\n\n"
            + (f"Trial time: median {np.median(seconds):.0f} s, {sum(seconds) / 3600:.1f} hours in all "
               f"({', '.join(f'{n} on {d}' for d, n in devices.items())}).\n\n" if seconds else "")
            + (scored + "\n\n" if scored else "")
            + "### The archs\n\n"
            + markdown_table(["#", f"{target} ms", "mixer kinds / ffn kinds",
                              f"{'bits per byte' if text else 'accuracy'} per seed", "arch"], arch_rows))
    return write_report(name or path.stem, f"Stand-alone ground truth, {space_name}",
                        "python -m experiments.ranking_truth " + " ".join(sys.argv[1:]), body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="mcu-vision")
    parser.add_argument("--archs", type=int, default=40)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=None,
                        help="stand-alone steps of 128 images (default 1600; a text space: its recipe's steps)")
    parser.add_argument("--target", default=None, help="latency target the archs are stratified over "
                        "(default mcu-m7; a text space: cpu)")
    parser.add_argument("--concurrent", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None, help="where trials are stored (and resumed from; default "
                        "experiments/results/ranking_truth.csv, a text space's lm_ranking_truth.csv)")
    parser.add_argument("--smoke", action="store_true", help="4 archs, 1 seed, 5 steps, 2,000 training images, a scratch file")
    parser.add_argument("--supernet", nargs="+", default=[], help="checkpoints of --space to score against the truth")
    parser.add_argument("--train-only", action="store_true", help="train what is missing, report nothing else")
    parser.add_argument("--compare-steps", type=int, nargs="+", default=[],
                        help="also report how the ranking moves against the stored trials of these step counts")
    parser.add_argument("--report-only", action="store_true",
                        help="train nothing: report what is stored (while another process trains, say)")
    parser.add_argument("--name", default=None, help="the report's name, NAME.md and NAME_scores.csv beside the "
                        "trials (default: the trials file's name; another to score other supernets on the same truth)")
    args = parser.parse_args()
    from nas.data import load_dataset
    from nas.space import load

    space = load(args.space)
    text = is_text(space)
    recipe = dict(space.recipe) if text else {}  # a text space's own training defaults (hybrid-lm: 1,024 steps of 16)
    batch = int(recipe.get("batch_size", 16)) if text else 128
    if args.steps is None:
        args.steps = int(recipe.get("epochs", 1)) * -(-int(recipe.get("limit", 16384)) // batch) if text else 1600
    args.target = args.target or ("cpu" if text else "mcu-m7")
    args.out = args.out or (RESULTS / "lm_ranking_truth.csv" if text else TRUTH_CSV)
    if args.archs < 2 or args.seeds < 1 or args.steps < 1 or args.concurrent < 1:
        raise SystemExit("--archs must be at least 2, --seeds, --steps and --concurrent at least 1")
    data = load_dataset("gcide" if text else "fashion-mnist", space.task)
    if text and recipe.get("limit"):
        data = data.limit(int(recipe["limit"]))  # the windows the supernet's recipe trains on
    x_eval, y_eval = np.concatenate([data.x_val, data.x_test]), np.concatenate([data.y_val, data.y_test])
    x_train, y_train = data.x_train, data.y_train
    if args.smoke:
        args.archs, args.seeds, args.steps, args.concurrent = 4, 1, 5, 1
        x_train, y_train, x_eval, y_eval = x_train[:2000], y_train[:2000], x_eval[:500], y_eval[:500]
        args.out = Path(tempfile.mkdtemp()) / "ranking_truth_smoke.csv"
    archs, latency = pinned_archs(space, args.target, args.archs, args.out)
    stored = {(r["arch"], r["seed"]) for r in read_trials(args.out) if r["space"] == space.name and r["steps"] == args.steps}
    todo = [(a.to_str(), k) for k in range(args.seeds) for a in archs if (a.to_str(), k) not in stored]
    print(f"{args.archs * args.seeds - len(todo)} trials stored, {len(todo)} to train", flush=True)
    if todo and not args.report_only:
        train_missing(space.name, todo, args.steps, (x_train, y_train, x_eval, y_eval), args.concurrent, args.out,
                      batch, data.num_classes if text else None)
    if args.smoke:
        print(f"smoke: {len(read_trials(args.out))} trials stored in {args.out}")
    elif not args.train_only:
        runs = truth(space.name, args.steps, archs, args.seeds, args.out, loss=text)
        scored = (score_section(space, args.supernet, archs, latency, runs, x_eval, y_eval, data.x_val, data.y_val,
                                args.out.with_name(f"{args.name or args.out.stem}_scores.csv")) if args.supernet else "")
        if args.compare_steps:
            scored += "\n\n" + steps_section(space.name, archs, args.steps, args.compare_steps, args.out)
        print(report(space, args.target, archs, latency, args.steps, args.seeds, args.out, scored, batch, args.name))


if __name__ == "__main__":
    main()
