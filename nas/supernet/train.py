"""Supernet training: the sandwich rule, in-place distillation and fair sampling of block kinds.

Every step trains a largest subnet on the labels, then a smallest and ``random_subnets``
random subnets on a blend of the labels and the largest one's soft predictions (in-place
distillation, as in BigNAS/Once-for-All), summing the gradients before one optimiser step.
The distillation weight ramps up from 0 as the teacher improves (pure in-place distillation
from an untrained teacher trails training on the labels; ``experiments/supernet_recipe.py``
compares the three). The random subnets
draw their mixer and ffn *kinds* from a random permutation per layer position and block of
subnets (FairNAS's strict fairness), so that conv, attention and SSM layers, and MLP and MoE
ffns, get the same number of updates at every position whatever their share of the space's
options, and every combination of kinds across a stage's layers is trained; their sizes
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
from dataclasses import asdict, dataclass
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
from nas.supernet.devices import resolve_device
from nas.supernet.model import Supernet, SupernetConfig
from nas.supernet.recipe import (  # noqa: F401 (re-exported)
    EXTREMES,
    PRECISIONS,
    TrainConfig,
    resumed_config,
    warmup_cosine,
)
from nas.supernet.scoring import accuracy_and_nll, token_loss


class TrainProgress(Protocol):
    def epoch_started(self, epoch: int, epochs: int, steps: int) -> None: ...
    def steps_done(self, steps: int, loss: float, accuracy: float) -> None: ...
    def epoch_done(self, record: dict[str, Any]) -> None: ...


def _deck_kind(kinds: list[str], seed: int, where: str, slot: int) -> str:
    """The kind subnet ``slot`` uses at one layer position: the slots come in blocks of
    ``len(kinds)``, and every block deals the kinds in its own random order (one permutation per
    position and block, derived from ``seed``: stateless, so a resumed run deals the same)."""
    block, turn = divmod(slot, len(kinds))
    return random.Random(f"{seed}/{where}/{block}").sample(kinds, len(kinds))[turn]


def fair_subnet(space: NetSpace, rng: random.Random, slot: int, seed: int = 0) -> NetArch:
    """A random subnet with strictly fair kinds (FairNAS): at every layer position the mixer kind
    and the ffn kind each follow their own random permutation per block of slots, so that over
    any ``len(kinds)`` consecutive slots every kind is dealt once at every position, and the
    positions (and the mixer and ffn of one layer) are independent of each other: every
    (mixer, ffn) pair and every sequence of kinds along a stage gets trained. Sizes (depth,
    width, kernel, heads, ...) are uniform draws from ``rng``."""
    stages = []
    for i, spec in enumerate(space.stages):
        mixer_kinds, ffn_kinds = spec.mixer_kinds(), spec.ffn_kinds()
        depth, width = rng.choice(spec.depths), rng.choice(spec.widths)
        layers = []
        for j in range(depth):
            mk = _deck_kind(mixer_kinds, seed, f"{i}/{j}/mixer", slot)
            fk = _deck_kind(ffn_kinds, seed, f"{i}/{j}/ffn", slot)
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


def sandwich(space: NetSpace, rng: random.Random, step: int, n_random: int, extremes: str = "per-kind",
             seed: int = 0) -> list[NetArch]:
    """The subnets one step trains: largest first (the teacher), smallest, then fair random ones.
    ``extremes="per-kind"`` takes the largest and smallest of one pair of block kinds per step
    (:func:`kind_extremes`), ``"global"`` the space's costliest and cheapest, ``"largest"`` the
    per-kind largest only (the teacher; no smallest), ``"none"`` neither (uniform single-path
    sampling: the random subnets only, every one on the labels). ``seed`` deals the random
    subnets' kinds (:func:`fair_subnet`)."""
    ends = {"per-kind": lambda: kind_extremes(space, step), "global": lambda: (space.largest(), space.smallest()),
            "largest": lambda: kind_extremes(space, step)[:1], "none": tuple}[extremes]()
    return list(ends) + [fair_subnet(space, rng, step * n_random + k, seed) for k in range(n_random)]


@torch.no_grad()
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


@dataclass
class TrainState:
    """Everything a training run carries from step to step: the supernet and its checkpoint info,
    the optimiser and schedule, the random state of the sampling and the data order, and the
    sampler of the subnets each step trains (the sandwich rule, unless a caller gives another:
    a few-shot sub-supernet trains only the subnets it will score)."""

    space: NetSpace
    data: Dataset
    config: TrainConfig
    net: Supernet
    info: checkpoint.Checkpoint
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    rng: random.Random
    gen: torch.Generator
    steps_per_epoch: int
    total_steps: int
    sampler: Callable[[TrainState], list[NetArch]] | None = None

    @classmethod
    def start(cls, space: NetSpace, data: Dataset, config: TrainConfig, device: torch.device,
              resume_from: checkpoint.Checkpoint | None = None, net: Supernet | None = None) -> TrainState:
        """A fresh run, or one resumed from ``resume_from`` (its checkpoint info) and ``net``."""
        if resume_from is None:
            torch.manual_seed(config.seed)
            net = Supernet(SupernetConfig.from_space(space, data.num_classes, data.input_shape[0]))
            info = checkpoint.Checkpoint(space, data.name, data.input_shape, data.num_classes, data.mean, data.std,
                                         vocab=data.vocab)
        else:
            info = resume_from
        info.train_config = asdict(config)
        net = net.to(device)
        steps_per_epoch = math.ceil(len(data.x_train) / config.batch_size)
        total_steps = steps_per_epoch * config.epochs
        decay = [p for p in net.parameters() if p.dim() >= 2]
        no_decay = [p for p in net.parameters() if p.dim() < 2]
        optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=config.lr,
        )
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, warmup_cosine(total_steps, max(1, int(config.warmup_fraction * total_steps)))
        )
        rng = random.Random(config.seed)
        gen = torch.Generator().manual_seed(config.seed)
        if resume_from is not None and info.optimizer is not None:
            optimizer.load_state_dict(info.optimizer)
            scheduler.load_state_dict(info.scheduler)
            if info.rng:
                rng.setstate(_to_state(info.rng["python"]))
                gen.set_state(info.rng["torch"])
        return cls(space, data, config, net, info, optimizer, scheduler, rng, gen, steps_per_epoch, total_steps)

    def subnets(self) -> list[NetArch]:
        """The subnets this step trains, the teacher first: the sampler's, else the sandwich's."""
        return self.sampler(self) if self.sampler is not None else self.subnets_of_the_sandwich()

    def subnets_of_the_sandwich(self) -> list[NetArch]:
        """This step's sandwich (:func:`sandwich`), drawn from the run's own random state."""
        c = self.config
        return sandwich(self.space, self.rng, self.info.step, c.random_subnets, c.extremes, c.seed)

    def remember(self) -> None:
        """Keep the optimiser, schedule and random state in the checkpoint info (after an epoch)."""
        self.info.optimizer, self.info.scheduler = self.optimizer.state_dict(), self.scheduler.state_dict()
        self.info.rng = {"python": _from_state(self.rng.getstate()), "torch": self.gen.get_state()}


def train_step(state: TrainState, xb: torch.Tensor, yb: torch.Tensor, share: float,
               autocast) -> tuple[torch.Tensor, torch.Tensor] | None:
    """One step's forward and backward passes on this rank's batch (``share``: its part of the
    global mean): the teacher on the labels, every other subnet on a blend of the labels and the
    teacher's soft predictions; the gradients accumulate, the caller steps. Returns the teacher's
    logits and loss (None for an empty batch)."""
    config, net = state.config, state.net
    archs = state.subnets()
    if not len(yb):
        return None
    kd = distill_weight(config, state.info.step, state.total_steps)
    with autocast:
        aux = Aux()
        logits = net(xb, archs[0], aux=aux)
        loss = token_loss(logits, yb) + config.aux_weight * sum(aux.losses)
    (share * loss).backward()
    teacher = F.softmax(logits.detach().float(), dim=-1)
    for arch in archs[1:]:
        with autocast:
            aux = Aux()
            student = net(xb, arch, aux=aux)
            sub_loss = token_loss(student, yb) if kd < 1 else 0.0
            if kd > 0:
                soft = -(teacher * F.log_softmax(student.float(), dim=-1)).sum(-1).mean()
                sub_loss = (1 - kd) * sub_loss + kd * soft
            sub_loss = sub_loss + config.aux_weight * sum(aux.losses)
        (share * sub_loss).backward()
    return logits, loss.detach()


def run_epochs(state: TrainState, save: Callable[[Supernet, checkpoint.Checkpoint], None],
               progress: TrainProgress | None = None, ranks: Ranks | None = None) -> None:
    """The training loop from ``state.info.epoch`` on, calling ``save(net, info)`` after every epoch.

    With ``ranks`` (data-parallel training), each global batch of ``batch_size`` examples is
    split between the ranks, every rank trains the same subnets (the sampling's random state
    is the same everywhere), and the gradients are averaged before each step, weighted by
    each rank's share of the batch: the same update as one process on the whole batch.
    Host synchronisation happens once every ``config.log_every`` steps, for the progress line."""
    ranks = ranks or _OneProcess()
    config, net, info = state.config, state.net, state.info
    device = next(net.parameters()).device
    x_all, y_all = _held(state.data.x_train, device), _held(state.data.y_train, device)
    params = list(net.parameters())
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if config.precision == "bf16" and device.type == "cuda" \
        else contextlib.nullcontext()
    net.train()
    for epoch in range(info.epoch, config.epochs):
        started = time.time()
        if progress:
            progress.epoch_started(epoch, config.epochs, state.steps_per_epoch)
        order = torch.randperm(len(x_all), generator=state.gen)
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), dtype=torch.long, device=device)
        seen = pending = 0
        for b in range(state.steps_per_epoch):
            batch = order[b * config.batch_size : (b + 1) * config.batch_size]
            mine = batch.tensor_split(ranks.world)[ranks.rank]
            idx = mine.to(x_all.device)
            xb = x_all[idx].to(device, non_blocking=True)
            yb = y_all[idx].to(device, non_blocking=True)
            state.optimizer.zero_grad(set_to_none=True)
            done = train_step(state, xb, yb, len(mine) * ranks.world / len(batch), autocast)
            if done is not None:
                logits, loss = done
                loss_sum += loss * yb.numel()
                correct += (logits.argmax(-1) == yb).sum()
            ranks.average_gradients(params)
            torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
            state.optimizer.step()
            state.scheduler.step()
            info.step += 1
            seen += yb.numel()
            pending += 1
            if progress and (pending == config.log_every or b == state.steps_per_epoch - 1):
                progress.steps_done(pending, float(loss_sum) / max(seen, 1), int(correct) / max(seen, 1))
                pending = 0
        info.epoch = epoch + 1
        record = {
            "epoch": info.epoch,
            "loss": round(float(loss_sum) / max(seen, 1), 4),
            "train_acc_largest": round(int(correct) / max(seen, 1), 4),
            **held_out_scores(net, state.space, state.data.x_val, state.data.y_val, "val"),
            "seconds": round(time.time() - started, 1),
        }
        info.history.append(record)
        state.remember()
        save(net, info)
        if progress:
            progress.epoch_done(record)


def held_out_scores(net: Supernet, space: NetSpace, x: np.ndarray, y: np.ndarray, split: str) -> dict[str, float]:
    """The largest and smallest subnets' accuracy on ``split`` (``val_acc_largest``, ...), and for
    a text space their bits per byte beside it (``val_bpb_largest``, ...)."""
    out: dict[str, float] = {}
    for which, arch in (("largest", space.largest()), ("smallest", space.smallest())):
        acc, nll = accuracy_and_nll(net, arch, x, y)
        out[f"{split}_acc_{which}"] = round(acc, 4)
        if space.task.kind == "text":
            out[f"{split}_bpb_{which}"] = round(nll / math.log(2), 4)
    return out


def finish(space: NetSpace, data: Dataset, net: Supernet, info: checkpoint.Checkpoint) -> None:
    """The final test accuracies of the largest and smallest subnet, kept in the checkpoint info."""
    info.final = {
        **held_out_scores(net, space, data.x_test, data.y_test, "test"),
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
    state = TrainState.start(space, data, config, device, info, net)
    run_epochs(state, lambda n, i: checkpoint.save(out, n, i), progress)
    finish(space, data, state.net, state.info)
    checkpoint.save(out, state.net, state.info)
    return state.info


# Python's random state holds a tuple of ints; lists keep it weights_only-loadable either way.
def _from_state(state: tuple) -> list:
    return [state[0], list(state[1]), state[2]]


def _to_state(state: list) -> tuple:
    return (state[0], tuple(state[1]), state[2])
