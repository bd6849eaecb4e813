"""Supernet training: the sandwich rule, in-place distillation and fair sampling of block kinds.

Every step trains a largest subnet on the labels, then a smallest and ``random_subnets``
random subnets on a blend of the labels and the largest one's soft predictions (in-place
distillation, as in BigNAS/Once-for-All), summing the gradients before one optimiser step.
The distillation weight ramps up from 0 as the teacher improves (pure in-place distillation
from an untrained teacher trails training on the labels; ``experiments/supernet_recipe.py``
compares the three). The random subnets
draw their mixer and ffn *kinds* round-robin per layer position (FairNAS-style strict
fairness), so that conv, attention and SSM layers, and MLP and MoE ffns, get the same number
of updates at every position whatever their share of the space's options; their sizes
(width, depth, kernel, heads, ...) are uniform. The largest and smallest are by default those
of one pair of block kinds per step, in turn (``extremes="per-kind"``): with the space's single
costliest and cheapest subnet (``"global"``) every step, the kinds those two never use are
trained by the random subnets alone, and subnets that mix kinds in a deep first stage scored
far under their stand-alone accuracy (experiments/results/supernet_ranking*.md). ``"largest"``
keeps the per-kind largest (the teacher) and drops the smallest; ``"none"`` trains the random
subnets alone, on the labels (uniform single-path sampling).
"""

from __future__ import annotations

import contextlib
import math
import random
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F

from nas.blocks import Aux
from nas.data import Dataset
from nas.errors import NasError
from nas.space import Layer, NetArch, NetSpace, Stage
from nas.supernet import checkpoint
from nas.supernet.model import Supernet, SupernetConfig
from nas.supernet.recipe import EXTREMES, PRECISIONS, TrainConfig, resumed_config  # noqa: F401 (re-exported)


class TrainProgress(Protocol):
    def epoch_started(self, epoch: int, epochs: int, steps: int) -> None: ...
    def steps_done(self, steps: int, loss: float, accuracy: float) -> None: ...
    def epoch_done(self, record: dict[str, Any]) -> None: ...


def resolve_device(text: str = "auto") -> torch.device:
    """``auto`` (CUDA when present), ``cpu``, ``cuda`` or ``cuda:N``; one line when it is not here."""
    text = (text or "auto").strip().lower()
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if text == "cpu":
        return torch.device("cpu")
    if text == "cuda" or text.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise NasError(f"--device {text}: no GPU is present here (torch.cuda.is_available() is False)")
        device = torch.device(text)
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise NasError(f"--device {text}: this machine has {torch.cuda.device_count()} GPU(s)")
        return device
    if text == "meta":
        return torch.device("meta")
    raise NasError(f"--device {text!r} is not a device (auto, cpu, cuda or cuda:N)")


def fair_subnet(space: NetSpace, rng: random.Random, slot: int) -> NetArch:
    """A random subnet whose layer kinds follow a round-robin over ``slot`` (see module doc)."""
    stages = []
    for i, spec in enumerate(space.stages):
        mixer_kinds, ffn_kinds = spec.mixer_kinds(), spec.ffn_kinds()
        depth, width = rng.choice(spec.depths), rng.choice(spec.widths)
        layers = []
        for j in range(depth):
            mk = mixer_kinds[(slot + i + j) % len(mixer_kinds)]
            fk = ffn_kinds[(slot + i + 2 * j) % len(ffn_kinds)]
            layers.append(Layer(
                rng.choice([m for m in spec.mixers if m.kind == mk]),
                rng.choice([f for f in spec.ffns if f.kind == fk]),
            ))
        stages.append(Stage(width, tuple(layers)))
    return NetArch(tuple(stages))


def kind_extremes(space: NetSpace, step: int) -> tuple[NetArch, NetArch]:
    """The largest and smallest subnets of one pair of block kinds: step by step, the largest
    walks through every (mixer kind, ffn kind) pair, and the smallest through the same pairs
    one mixer kind behind, so that every kind's weights at every position get the updates the
    global extremes give only to the costliest and the cheapest kind."""
    mixers = list(dict.fromkeys(k for spec in space.stages for k in spec.mixer_kinds()))
    ffns = list(dict.fromkeys(k for spec in space.stages for k in spec.ffn_kinds()))
    m, f = step % len(mixers), (step // len(mixers)) % len(ffns)
    return (space.uniform(mixers[m], ffns[f], largest=True),
            space.uniform(mixers[(m + 1) % len(mixers)], ffns[f], largest=False))


def sandwich(space: NetSpace, rng: random.Random, step: int, n_random: int, extremes: str = "per-kind") -> list[NetArch]:
    """The subnets one step trains: largest first (the teacher), smallest, then fair random ones.
    ``extremes="per-kind"`` takes the largest and smallest of one pair of block kinds per step
    (:func:`kind_extremes`), ``"global"`` the space's costliest and cheapest, ``"largest"`` the
    per-kind largest only (the teacher; no smallest), ``"none"`` neither (uniform single-path
    sampling: the random subnets only, every one on the labels)."""
    ends = {"per-kind": lambda: kind_extremes(space, step), "global": lambda: (space.largest(), space.smallest()),
            "largest": lambda: kind_extremes(space, step)[:1], "none": tuple}[extremes]()
    return list(ends) + [fair_subnet(space, rng, step * n_random + k) for k in range(n_random)]


@torch.no_grad()
def accuracy(net: torch.nn.Module, arch: NetArch | None, x: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor,
             batch: int = 500) -> float:
    """Top-1 accuracy of ``arch`` (or of an extracted subnet when ``arch`` is None), batched on the
    device of ``net``'s weights; arrays or tensors (already there, for a search's workers)."""
    was_training = net.training
    net.eval()
    device = next(net.parameters()).device
    x = torch.as_tensor(x).to(device, non_blocking=True)
    y = torch.as_tensor(y).to(device, non_blocking=True)
    correct = torch.zeros((), dtype=torch.long, device=device)
    for i in range(0, len(x), batch):
        xb = x[i : i + batch]
        logits = net(xb) if arch is None else net(xb, arch)
        correct += (logits.argmax(-1) == y[i : i + batch]).sum()
    net.train(was_training)
    return int(correct) / max(len(x), 1)  # one host sync, at the end


def finetune_sample(x: np.ndarray, y: np.ndarray, steps: int, batch: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """The training examples a fine-tune of ``steps`` draws its batches from: a fixed random
    ``steps * batch`` of them (all when fewer), so every worker and every subnet sees the same."""
    keep = np.random.default_rng(0).permutation(len(x))[: steps * batch]
    return x[keep], y[keep]


def finetune(subnet: torch.nn.Module, x: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor, steps: int,
             lr: float = 1e-3, batch: int = 128, seed: int = 0,
             loss_fn: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor] | None = None) -> torch.nn.Module:
    """``steps`` AdamW steps (no weight decay; random batches of ``batch``, seeded) from the weights
    an extracted subnet inherited, in place, on its weights' device. The loss is cross-entropy on
    the labels unless ``loss_fn(logits, x_batch, y_batch)`` gives another. Scoring subnets after
    such a short fine-tune ranks them closer to training each from scratch than inherited weights
    alone (experiments/supernet_ranking.py)."""
    device = next(subnet.parameters()).device
    x, y = torch.as_tensor(x, dtype=torch.float32).to(device), torch.as_tensor(y).to(device)
    opt = torch.optim.AdamW(subnet.parameters(), lr=lr, weight_decay=0.0)
    gen = torch.Generator().manual_seed(seed)
    was_training = subnet.training
    subnet.train()
    for _ in range(steps):
        idx = torch.randint(0, len(x), (batch,), generator=gen).to(device)
        logits = subnet(x[idx])
        loss = F.cross_entropy(logits, y[idx]) if loss_fn is None else loss_fn(logits, x[idx], y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    subnet.train(was_training)
    return subnet


def distill_weight(config: TrainConfig, step: int, total_steps: int) -> float:
    """Weight of the distillation loss for the smaller subnets at ``step``.

    It ramps from 0 to ``distill_weight`` over the first ``distill_ramp`` of training: an
    early teacher is barely better than its students, and distilling from it alone was
    measured to cost 4-6 points of accuracy at short schedules (see the README).
    """
    if not config.distill:
        return 0.0
    ramp = config.distill_ramp * total_steps
    return config.distill_weight * (1.0 if ramp <= 0 else min(1.0, step / ramp))


def _lr_lambda(total: int, warmup: int):
    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

    return f


class Ranks(Protocol):
    """How the ranks of a data-parallel run share the work (see :mod:`nas.supernet.distributed`)."""

    rank: int
    world: int

    def average_gradients(self, params: list[torch.nn.Parameter]) -> None: ...


class _OneProcess:
    rank, world = 0, 1

    def average_gradients(self, params: list[torch.nn.Parameter]) -> None:
        pass


def _held(array: np.ndarray, device: torch.device) -> torch.Tensor:
    """An array as a tensor on ``device``: the whole of it when it fits easily (the shipped
    datasets), else in pinned host memory, batches copied over as they are used."""
    tensor = torch.from_numpy(np.ascontiguousarray(array))
    if device.type == "cuda":
        if tensor.nbytes <= 2**30:
            return tensor.to(device)
        return tensor.pin_memory()
    return tensor.to(device)


def setup(space: NetSpace, data: Dataset, config: TrainConfig, resume_from: checkpoint.Checkpoint | None,
          net: Supernet | None, device: torch.device):
    """The supernet, checkpoint info, optimiser, schedule and random state of a run (fresh or resumed)."""
    if resume_from is None:
        torch.manual_seed(config.seed)
        net = Supernet(SupernetConfig.from_space(space, data.num_classes, data.input_shape[0]))
        info = checkpoint.Checkpoint(space, data.name, data.input_shape, data.num_classes, data.mean, data.std)
    else:
        info = resume_from
    info.train_config = asdict(config)
    net = net.to(device)
    steps_per_epoch = math.ceil(len(data.x_train) / config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    decay = [p for n, p in net.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in net.named_parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=config.lr,
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, _lr_lambda(total_steps, max(1, int(config.warmup_fraction * total_steps)))
    )
    rng = random.Random(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    if resume_from is not None and info.optimizer is not None:
        optimizer.load_state_dict(info.optimizer)
        scheduler.load_state_dict(info.scheduler)
        if info.rng:
            rng.setstate(_to_state(info.rng["python"]))
            gen.set_state(info.rng["torch"])
    return net, info, optimizer, scheduler, rng, gen, steps_per_epoch, total_steps


def run_epochs(space: NetSpace, data: Dataset, config: TrainConfig, net: Supernet, info: checkpoint.Checkpoint,
               optimizer, scheduler, rng: random.Random, gen: torch.Generator, steps_per_epoch: int,
               total_steps: int, save, progress: TrainProgress | None = None, ranks: Ranks | None = None,
               restrict: Callable[[NetArch], NetArch] | None = None) -> None:
    """The training loop from ``info.epoch`` on, calling ``save(net, info)`` after every epoch.

    With ``ranks`` (data-parallel training), each global batch of ``batch_size`` examples is
    split between the ranks, every rank trains the same subnets (the sampling's random state
    is the same everywhere), and the gradients are averaged before each step, weighted by
    each rank's share of the batch: the same update as one process on the whole batch.
    ``restrict`` maps every sampled subnet into a part of the space (a few-shot sub-supernet
    trains only the subnets it will score; experiments/few_shot_ranking.py).
    Host synchronisation happens once every ``config.log_every`` steps, for the progress line."""
    ranks = ranks or _OneProcess()
    device = next(net.parameters()).device
    x_all, y_all = _held(data.x_train, device), _held(data.y_train, device)
    params = list(net.parameters())
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if config.precision == "bf16" and device.type == "cuda" \
        else contextlib.nullcontext()
    net.train()
    for epoch in range(info.epoch, config.epochs):
        started = time.time()
        if progress:
            progress.epoch_started(epoch, config.epochs, steps_per_epoch)
        order = torch.randperm(len(x_all), generator=gen)
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), dtype=torch.long, device=device)
        seen = pending = 0
        for b in range(steps_per_epoch):
            batch = order[b * config.batch_size : (b + 1) * config.batch_size]
            mine = batch.tensor_split(ranks.world)[ranks.rank]
            share = len(mine) * ranks.world / len(batch)  # this rank's part of the global mean
            idx = mine.to(x_all.device)
            xb = x_all[idx].to(device, non_blocking=True)
            yb = y_all[idx].to(device, non_blocking=True)
            optimizer.zero_grad(set_to_none=True)
            archs = sandwich(space, rng, info.step, config.random_subnets, config.extremes)
            if restrict is not None:
                archs = [restrict(a) for a in archs]
            kd = distill_weight(config, info.step, total_steps)
            if len(mine):
                with autocast:
                    aux = Aux()
                    logits = net(xb, archs[0], aux=aux)
                    loss = F.cross_entropy(logits, yb) + config.aux_weight * sum(aux.losses)
                (share * loss).backward()
                teacher = F.softmax(logits.detach().float(), dim=-1)
                for arch in archs[1:]:
                    with autocast:
                        aux = Aux()
                        student = net(xb, arch, aux=aux)
                        sub_loss = F.cross_entropy(student, yb) if kd < 1 else 0.0
                        if kd > 0:
                            soft = -(teacher * F.log_softmax(student.float(), dim=-1)).sum(-1).mean()
                            sub_loss = (1 - kd) * sub_loss + kd * soft
                        sub_loss = sub_loss + config.aux_weight * sum(aux.losses)
                    (share * sub_loss).backward()
                loss_sum += loss.detach() * len(yb)
                correct += (logits.argmax(-1) == yb).sum()
            ranks.average_gradients(params)
            torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
            optimizer.step()
            scheduler.step()
            info.step += 1
            seen += len(yb)
            pending += 1
            if progress and (pending == config.log_every or b == steps_per_epoch - 1):
                progress.steps_done(pending, float(loss_sum) / max(seen, 1), int(correct) / max(seen, 1))
                pending = 0
        info.epoch = epoch + 1
        record = {
            "epoch": info.epoch,
            "loss": round(float(loss_sum) / max(seen, 1), 4),
            "train_acc_largest": round(int(correct) / max(seen, 1), 4),
            "val_acc_largest": round(accuracy(net, space.largest(), data.x_val, data.y_val), 4),
            "val_acc_smallest": round(accuracy(net, space.smallest(), data.x_val, data.y_val), 4),
            "seconds": round(time.time() - started, 1),
        }
        info.history.append(record)
        info.optimizer, info.scheduler = optimizer.state_dict(), scheduler.state_dict()
        info.rng = {"python": _from_state(rng.getstate()), "torch": gen.get_state()}
        save(net, info)
        if progress:
            progress.epoch_done(record)


def finish(space: NetSpace, data: Dataset, net: Supernet, info: checkpoint.Checkpoint) -> None:
    """The final test accuracies of the largest and smallest subnet, kept in the checkpoint info."""
    info.final = {
        "test_acc_largest": round(accuracy(net, space.largest(), data.x_test, data.y_test), 4),
        "test_acc_smallest": round(accuracy(net, space.smallest(), data.x_test, data.y_test), 4),
        "largest": space.largest().to_str(),
        "smallest": space.smallest().to_str(),
        "train_examples": len(data.x_train),
    }


# Options added after checkpoints were written without them, with the value those were trained with.
def check_resume(out: str | Path, space: NetSpace, data: Dataset) -> tuple[Supernet, checkpoint.Checkpoint]:
    net, info = checkpoint.load(out)
    if info.space.name != space.name or info.space.source_text.strip() != space.source_text.strip():
        raise NasError(f"cannot resume {str(out)!r}: it was trained on space {info.space.name!r}, not this one")
    if info.dataset != data.name:
        raise NasError(f"cannot resume {str(out)!r}: it was trained on {info.dataset!r}, not {data.name!r}")
    return net, info


def train(
    space: NetSpace,
    data: Dataset,
    config: TrainConfig,
    out: str | Path,
    resume: bool = False,
    progress: TrainProgress | None = None,
    device: str | torch.device = "cpu",
) -> checkpoint.Checkpoint:
    """Train (or resume training) a supernet of ``space`` on ``data`` on ``device`` (``auto``, ``cpu``,
    ``cuda[:N]``); checkpoint every epoch to ``out`` (device-free: it loads anywhere).

    Returns the final checkpoint info, whose ``final`` holds the test accuracy of the largest
    and the smallest subnet. Several GPUs or nodes: :func:`nas.supernet.distributed.train_distributed`.
    """
    device = device if isinstance(device, torch.device) else resolve_device(device)
    data = data.limit(config.limit)
    net, info = check_resume(out, space, data) if resume else (None, None)
    net, info, optimizer, scheduler, rng, gen, steps, total = setup(space, data, config, info, net, device)
    run_epochs(space, data, config, net, info, optimizer, scheduler, rng, gen, steps, total,
               lambda n, i: checkpoint.save(out, n, i), progress)
    finish(space, data, net, info)
    checkpoint.save(out, net, info)
    return info


# Python's random state holds a tuple of ints; lists keep it weights_only-loadable either way.
def _from_state(state: tuple) -> list:
    return [state[0], list(state[1]), state[2]]


def _to_state(state: list) -> tuple:
    return (state[0], tuple(state[1]), state[2])
