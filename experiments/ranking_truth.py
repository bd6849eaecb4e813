"""The ground truth a supernet's ranking is judged against: archs trained from scratch, long enough
to measure trained accuracy, several seeds each, every trial stored the moment it finishes.

    python -m experiments.ranking_truth [--space mcu-vision] [--archs 40] [--seeds 3] [--steps 1600]
                                        [--target mcu-m7] [--concurrent 2] [--out CSV] [--smoke]

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
from pathlib import Path

import numpy as np

from experiments._common import RESULTS, markdown_table, write_report
from nas.supernet.calibrate import kind_pattern

TRUTH_CSV = RESULTS / "ranking_truth.csv"
FIELDS = ["space", "arch", "steps", "seed", "acc", "nll", "seconds", "device"]
POOL = 2000
WINDOW = 25  # draws nearest a latency point, of which the least-picked kind pattern is taken


def pick_archs(space, target: str, n: int, seed: int = 0) -> tuple[list, np.ndarray]:
    """``n`` archs stratified over log predicted latency on ``target`` and over kind patterns (see
    the module doc), with their predicted latencies, cheapest first."""
    from nas.latency import predictor_for
    from nas.latency.profile import load_profile
    from nas.supernet.calibrate import stratified

    pool = space.sample_unique(random.Random(seed), POOL)
    predictor = predictor_for(load_profile(target, space)[0], space)
    log_latency = np.log(np.asarray(predictor.predict(pool), dtype=float))
    chosen = stratified(pool, log_latency, n, WINDOW)
    return [pool[i] for i in chosen], np.exp(log_latency[chosen])


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
                             StandaloneRecipe(steps=config["steps"]), device)
    acc, nll = accuracy_and_nll(net, None, x_eval, y_eval)
    tune.report({"acc": acc, "nll": nll, "seconds": time.time() - started, "device": device})


def train_missing(space_name: str, todo: list[tuple[str, int]], steps: int, arrays: tuple, concurrent: int,
                  path: Path) -> None:
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
                param_space={"trial": tune.grid_search([list(t) for t in todo]), "steps": steps, "space": space_name},
                tune_config=tune.TuneConfig(max_concurrent_trials=concurrent),
                run_config=tune.RunConfig(storage_path=tmp, name="truth", verbose=0, callbacks=[Store()]),
            ).fit()
    finally:
        stop_ray()


def truth(space_name: str, steps: int, archs, seeds: int, path: Path = TRUTH_CSV) -> np.ndarray:
    """(archs, seeds) stored accuracies of ``archs`` (NaN where a trial is still missing)."""
    kept = {(r["arch"], r["seed"]): r["acc"] for r in read_trials(path)
            if r["space"] == space_name and r["steps"] == steps}
    return np.array([[kept.get((a.to_str(), k), np.nan) for k in range(seeds)] for a in archs])


def report(space_name: str, target: str, archs, latency: np.ndarray, steps: int, seeds: int, path: Path) -> Path:
    rows = [r for r in read_trials(path) if r["space"] == space_name and r["steps"] == steps]
    wanted = {(a.to_str(), k) for a in archs for k in range(seeds)}
    mine = [r for r in rows if (r["arch"], r["seed"]) in wanted]
    runs = truth(space_name, steps, archs, seeds, path)
    patterns = Counter(kind_pattern(a) for a in archs)
    arch_rows = [[i, f"{latency[i]:.1f}", " + ".join(kind_pattern(a)[0]) + " / " + " + ".join(kind_pattern(a)[1]),
                  " ".join("-" if np.isnan(v) else f"{v:.4f}" for v in runs[i]), a.to_str()]
                 for i, a in enumerate(archs)]
    seconds = [r["seconds"] for r in mine]
    devices = Counter(r["device"] for r in mine)
    complete = int(np.isfinite(runs).all(axis=1).sum())
    body = (f"**{len(mine)} of {len(wanted)} trials stored; {complete} of {len(archs)} archs have all {seeds} seeds.** "
            f"{space_name}, {len(archs)} archs stratified over {target} latency ({latency.min():.1f} to "
            f"{latency.max():.1f} ms predicted) and over {len(patterns)} kind patterns; {steps} steps of 128 "
            f"Fashion-MNIST images per trial, seeds 0 to {seeds - 1} (one data order per seed, shared by every arch).\n\n"
            + (f"Trial time: median {np.median(seconds):.0f} s, {sum(seconds) / 3600:.1f} hours in all "
               f"({', '.join(f'{n} on {d}' for d, n in devices.items())}).\n\n" if seconds else "")
            + markdown_table(["#", f"{target} ms", "mixer kinds / ffn kinds", "accuracy per seed", "arch"], arch_rows))
    return write_report(path.stem, f"Stand-alone ground truth, {space_name}",
                        "python -m experiments.ranking_truth " + " ".join(sys.argv[1:]), body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="mcu-vision")
    parser.add_argument("--archs", type=int, default=40)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=1600, help="stand-alone steps of 128 images")
    parser.add_argument("--target", default="mcu-m7", help="latency target the archs are stratified over")
    parser.add_argument("--concurrent", type=int, default=2)
    parser.add_argument("--out", type=Path, default=TRUTH_CSV, help="where trials are stored (and resumed from)")
    parser.add_argument("--smoke", action="store_true", help="4 archs, 1 seed, 5 steps, 2,000 training images, a scratch file")
    args = parser.parse_args()
    if args.archs < 2 or args.seeds < 1 or args.steps < 1 or args.concurrent < 1:
        raise SystemExit("--archs must be at least 2, --seeds, --steps and --concurrent at least 1")
    from nas.data import load_dataset
    from nas.space import load

    space = load(args.space)
    data = load_dataset("fashion-mnist", space.task.kind)
    x_eval, y_eval = np.concatenate([data.x_val, data.x_test]), np.concatenate([data.y_val, data.y_test])
    x_train, y_train = data.x_train, data.y_train
    if args.smoke:
        args.archs, args.seeds, args.steps, args.concurrent = 4, 1, 5, 1
        x_train, y_train, x_eval, y_eval = x_train[:2000], y_train[:2000], x_eval[:500], y_eval[:500]
        args.out = Path(tempfile.mkdtemp()) / "ranking_truth_smoke.csv"
    archs, latency = pick_archs(space, args.target, args.archs)
    stored = {(r["arch"], r["seed"]) for r in read_trials(args.out) if r["space"] == space.name and r["steps"] == args.steps}
    todo = [(a.to_str(), k) for k in range(args.seeds) for a in archs if (a.to_str(), k) not in stored]
    print(f"{args.archs * args.seeds - len(todo)} trials stored, {len(todo)} to train", flush=True)
    if todo:
        train_missing(space.name, todo, args.steps, (x_train, y_train, x_eval, y_eval), args.concurrent, args.out)
    if not args.smoke:
        print(report(space.name, args.target, archs, latency, args.steps, args.seeds, args.out))
    else:
        print(f"smoke: {len(read_trials(args.out))} trials stored in {args.out}")


if __name__ == "__main__":
    main()
