"""Few-shot supernets split by the first layer's mixer kind: do they rank better than one?

    python -m experiments.few_shot_ranking [--parent CKPT] [--epochs 1] [--lr 1e-3]
                                           [--control CKPT ...] [--seeds 6]

Few-shot NAS (Zhao et al., 2021) splits a trained one-shot supernet into sub-supernets, one per
operation choice at some layer, copies the weights into each and trains each on its part of the
space only, so that archs that differ there no longer share (and fight over) the weights after it.
Here the split is the mixer kind of the first layer of the first stage (conv, attention, SSM: the
layer that runs on the most tokens): each sub-supernet starts from ``--parent`` and trains
``--epochs`` more epochs with the parent's recipe (sandwich, per-kind extremes, distillation)
at peak lr ``--lr``, every sampled subnet's first mixer forced to its kind (the same option rank
within the kind, so the largest stays largest). An arch is scored by the sub-supernet of its
first mixer kind.

Scored on the same 30 archs, stand-alone accuracies and held-out images as
``experiments/supernet_ranking.py`` (its committed supernet_ranking_standalone.csv, ``--seeds`` of
each arch), against the parent and each ``--control`` checkpoint (e.g. the parent's recipe run
for as many epochs as the parent plus every split, the same training compute). Writes
experiments/results/supernet_ranking_few_shot.md.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import numpy as np

from experiments._common import REPO, markdown_table, write_report
from experiments.supernet_ranking import (
    bootstrap,
    correct_flags,
    pick_archs,
    standalone_results,
    tau,
)

TARGET, N_ARCHS, STEPS = "mcu-m7", 30, 400


def with_first_mixer(space, arch, kind: str):
    """``arch`` with its first layer's mixer replaced by the option of ``kind`` of the same rank."""
    from nas.space import Layer, NetArch, Stage

    spec = space.stages[0]
    first = arch.stages[0].layers[0]
    own = [m for m in spec.mixers if m.kind == first.mixer.kind]
    theirs = [m for m in spec.mixers if m.kind == kind]
    mixer = theirs[min(own.index(first.mixer), len(theirs) - 1)]
    stage = Stage(arch.stages[0].width, (Layer(mixer, first.ffn), *arch.stages[0].layers[1:]))
    return NetArch((stage, *arch.stages[1:]))


def train_split(parent: Path, kind: str, epochs: int, lr: float, out: Path, limit: int | None = None) -> float:
    """One sub-supernet: the parent's weights, trained on archs whose first mixer is ``kind``."""
    import torch

    from nas.data import load_dataset
    from nas.supernet import checkpoint
    from nas.supernet.train import TrainState, finish, resumed_config, run_epochs

    net, info = checkpoint.load(parent)
    space = info.space
    config = resumed_config(info.train_config or {}, epochs=epochs, lr=lr, limit=limit)
    data = load_dataset(info.dataset, space.task).limit(config.limit)
    start = copy.copy(info)
    start.epoch, start.step, start.optimizer, start.scheduler, start.rng, start.history = 0, 0, None, None, None, []
    state = TrainState.start(space, data, config, torch.device("cpu"), start, net)
    state.sampler = lambda s: [with_first_mixer(space, a, kind) for a in s.subnets_of_the_sandwich()]
    started = time.time()
    run_epochs(state, lambda n, i: None)
    start.train_config["few_shot"] = {"parent": str(parent), "first_mixer": kind, "epochs": epochs, "lr": lr}
    finish(space, data, net, start)
    checkpoint.save(out, net, start)
    return time.time() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parent", default=str(REPO / "runs" / "mcu-vision-fashion-mnist.ckpt"))
    parser.add_argument("--epochs", type=int, default=1, help="epochs each sub-supernet trains from the parent")
    parser.add_argument("--lr", type=float, default=1e-3, help="their peak learning rate")
    parser.add_argument("--control", nargs="*", default=[], help="other checkpoints of the space to score alongside")
    parser.add_argument("--seeds", type=int, default=6, help="stand-alone seeds per arch (from the committed CSV)")
    args = parser.parse_args()

    from nas.data import load_dataset
    from nas.evaluate import SupernetEvaluator
    from nas.supernet import checkpoint

    parent = Path(args.parent)
    if not parent.is_file():
        raise SystemExit(f"--parent {parent} does not exist: `nas supernet train mcu-vision` writes it")
    evaluator = SupernetEvaluator.from_files(str(parent), [TARGET], with_data=False)
    space = evaluator.space
    kinds = space.stages[0].mixer_kinds()
    splits, seconds = {}, {}
    for kind in kinds:
        out = parent.with_name(f"{parent.stem}-few-shot-{kind}.ckpt")
        if not out.is_file():
            print(f"training the {kind} sub-supernet ...", flush=True)
            seconds[kind] = train_split(parent, kind, args.epochs, args.lr, out)
        splits[kind] = checkpoint.load(out)[0]

    archs, _ = pick_archs(space, evaluator, TARGET, N_ARCHS, 0)
    cached = standalone_results(space.name, STEPS)
    missing = [a.to_str() for a in archs for k in range(args.seeds) if (a.to_str(), k) not in cached]
    if missing:
        raise SystemExit(f"{len(missing)} stand-alone results are missing: run experiments/supernet_ranking.py first")
    truth = np.array([np.mean([cached[(a.to_str(), k)] for k in range(args.seeds)]) for a in archs])
    data = load_dataset("fashion-mnist", space.task)
    x_eval, y_eval = np.concatenate([data.x_val, data.x_test]), np.concatenate([data.y_val, data.y_test])

    scores = {f"parent {parent.name}": [correct_flags(evaluator.net, a, x_eval, y_eval).mean() for a in archs]}
    for c in args.control:
        net = checkpoint.load(c)[0]
        scores[f"control {Path(c).name}"] = [correct_flags(net, a, x_eval, y_eval).mean() for a in archs]
    scores["few-shot, by first mixer kind"] = [
        correct_flags(splits[a.stages[0].layers[0].mixer.kind], a, x_eval, y_eval).mean() for a in archs]
    rng = np.random.default_rng(0)
    rows = []
    for name, values in scores.items():
        v = np.array(values)
        lo, hi = bootstrap(lambda idx, v=v: tau(v[idx], truth[idx]), len(archs), rng)
        rows.append([name, f"{tau(v, truth):.3f}", f"{lo:.3f} to {hi:.3f}", f"{np.mean(v - truth) * 100:+.2f}"])
    per_arch = [[i, a.stages[0].layers[0].mixer.kind, f"{truth[i]:.4f}", *(f"{scores[k][i]:.4f}" for k in scores),
                 a.to_str()] for i, a in enumerate(archs)]
    trained = ", ".join(f"{k} {s / 60:.1f} min" for k, s in seconds.items()) or "reused"
    body = (f"Sub-supernets: {len(kinds)} ({', '.join(kinds)}), each {args.epochs} epoch(s) from `{parent.name}` at "
            f"peak lr {args.lr} with the parent's recipe (training time: {trained}). {N_ARCHS} archs stratified over "
            f"{TARGET} latency, stand-alone truth the mean of {args.seeds} seeds of {STEPS} steps "
            "(supernet_ranking_standalone.csv); accuracy on the 15,000 held-out images.\n\n"
            + markdown_table(["scorer", "Kendall tau with the stand-alone ranking", "95% bootstrap interval",
                              "mean minus stand-alone (points)"], rows)
            + "\n\n" + markdown_table(["#", "first mixer", "stand-alone", *scores, "arch"], per_arch))
    print(write_report("supernet_ranking_few_shot", "Few-shot supernets split by the first mixer kind",
                       "python -m experiments.few_shot_ranking " + " ".join(sys.argv[1:]), body))


if __name__ == "__main__":
    main()
