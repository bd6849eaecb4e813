"""Supernet training: the sandwich rule, in-place distillation and fair sampling of block kinds.

Every step trains the largest subnet on the labels, then the smallest and ``random_subnets``
random subnets on a blend of the labels and the largest one's soft predictions (in-place
distillation, as in BigNAS/Once-for-All), summing the gradients before one optimiser step.
The distillation weight ramps up from 0 as the teacher improves (pure in-place distillation
from an untrained teacher trails training on the labels; ``experiments/supernet_recipe.py``
compares the three). The random subnets
draw their mixer and ffn *kinds* round-robin per layer position (FairNAS-style strict
fairness), so that conv, attention and SSM layers, and MLP and MoE ffns, get the same number
of updates at every position whatever their share of the space's options; their sizes
(width, depth, kernel, heads, ...) are uniform.
"""

from __future__ import annotations

import math
import random
import time
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
from nas.supernet.model import Supernet, SupernetConfig


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 2
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 0.05
    warmup_fraction: float = 0.03
    random_subnets: int = 2
    distill: bool = True
    distill_weight: float = 0.5
    distill_ramp: float = 0.5
    aux_weight: float = 0.01
    grad_clip: float = 1.0
    limit: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        checks = (
            ("epochs", self.epochs >= 1), ("batch_size", self.batch_size >= 1), ("lr", self.lr > 0),
            ("random_subnets", self.random_subnets >= 0), ("limit", self.limit is None or self.limit >= 1),
            ("distill_weight", 0.0 <= self.distill_weight <= 1.0), ("distill_ramp", 0.0 <= self.distill_ramp <= 1.0),
        )
        for name, ok in checks:
            if not ok:
                raise NasError(f"training option {name}={getattr(self, name)!r} is out of range")


class TrainProgress(Protocol):
    def epoch_started(self, epoch: int, epochs: int, steps: int) -> None: ...
    def step_done(self, loss: float, accuracy: float) -> None: ...
    def epoch_done(self, record: dict[str, Any]) -> None: ...


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


def sandwich(space: NetSpace, rng: random.Random, step: int, n_random: int) -> list[NetArch]:
    """The subnets one step trains: largest first (the teacher), smallest, then fair random ones."""
    return [space.largest(), space.smallest()] + [
        fair_subnet(space, rng, step * n_random + k) for k in range(n_random)
    ]


@torch.no_grad()
def accuracy(net: torch.nn.Module, arch: NetArch | None, x: np.ndarray, y: np.ndarray, batch: int = 500) -> float:
    """Top-1 accuracy of ``arch`` (or of an extracted subnet when ``arch`` is None) on arrays."""
    was_training = net.training
    net.eval()
    correct = 0
    for i in range(0, len(x), batch):
        xb = torch.from_numpy(x[i : i + batch])
        logits = net(xb) if arch is None else net(xb, arch)
        correct += int((logits.argmax(-1).numpy() == y[i : i + batch]).sum())
    net.train(was_training)
    return correct / max(len(x), 1)


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


def train(
    space: NetSpace,
    data: Dataset,
    config: TrainConfig,
    out: str | Path,
    resume: bool = False,
    progress: TrainProgress | None = None,
) -> checkpoint.Checkpoint:
    """Train (or resume training) a supernet of ``space`` on ``data``; checkpoint every epoch to ``out``.

    Returns the final checkpoint info, whose ``final`` holds the test accuracy of the largest
    and the smallest subnet.
    """
    data = data.limit(config.limit)
    if resume:
        net, info = checkpoint.load(out)
        if info.space.name != space.name or info.space.source_text.strip() != space.source_text.strip():
            raise NasError(f"cannot resume {str(out)!r}: it was trained on space {info.space.name!r}, not this one")
        if info.dataset != data.name:
            raise NasError(f"cannot resume {str(out)!r}: it was trained on {info.dataset!r}, not {data.name!r}")
    else:
        torch.manual_seed(config.seed)
        net = Supernet(SupernetConfig.from_space(space, data.num_classes, data.input_shape[0]))
        info = checkpoint.Checkpoint(space, data.name, data.input_shape, data.num_classes, data.mean, data.std)
    info.train_config = asdict(config)

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
    if resume and info.optimizer is not None:
        optimizer.load_state_dict(info.optimizer)
        scheduler.load_state_dict(info.scheduler)
        if info.rng:
            rng.setstate(_to_state(info.rng["python"]))
            gen.set_state(info.rng["torch"])

    x_all = torch.from_numpy(data.x_train)
    y_all = torch.from_numpy(data.y_train)
    net.train()
    for epoch in range(info.epoch, config.epochs):
        started = time.time()
        if progress:
            progress.epoch_started(epoch, config.epochs, steps_per_epoch)
        order = torch.randperm(len(x_all), generator=gen)
        loss_sum, correct, seen = 0.0, 0, 0
        for b in range(steps_per_epoch):
            idx = order[b * config.batch_size : (b + 1) * config.batch_size]
            xb, yb = x_all[idx], y_all[idx]
            optimizer.zero_grad(set_to_none=True)
            archs = sandwich(space, rng, info.step, config.random_subnets)
            aux = Aux()
            logits = net(xb, archs[0], aux=aux)
            loss = F.cross_entropy(logits, yb) + config.aux_weight * sum(aux.losses, torch.zeros(()))
            loss.backward()
            teacher = F.softmax(logits.detach(), dim=-1)
            kd = distill_weight(config, info.step, total_steps)
            for arch in archs[1:]:
                aux = Aux()
                student = net(xb, arch, aux=aux)
                sub_loss = F.cross_entropy(student, yb) if kd < 1 else 0.0
                if kd > 0:
                    soft = -(teacher * F.log_softmax(student, dim=-1)).sum(-1).mean()
                    sub_loss = (1 - kd) * sub_loss + kd * soft
                (sub_loss + config.aux_weight * sum(aux.losses, torch.zeros(()))).backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), config.grad_clip)
            optimizer.step()
            scheduler.step()
            info.step += 1
            loss_sum += float(loss.detach()) * len(yb)
            correct += int((logits.argmax(-1) == yb).sum())
            seen += len(yb)
            if progress:
                progress.step_done(loss_sum / seen, correct / seen)
        info.epoch = epoch + 1
        record = {
            "epoch": info.epoch,
            "loss": round(loss_sum / seen, 4),
            "train_acc_largest": round(correct / seen, 4),
            "val_acc_largest": round(accuracy(net, space.largest(), data.x_val, data.y_val), 4),
            "val_acc_smallest": round(accuracy(net, space.smallest(), data.x_val, data.y_val), 4),
            "seconds": round(time.time() - started, 1),
        }
        info.history.append(record)
        info.optimizer, info.scheduler = optimizer.state_dict(), scheduler.state_dict()
        info.rng = {"python": _from_state(rng.getstate()), "torch": gen.get_state()}
        checkpoint.save(out, net, info)
        if progress:
            progress.epoch_done(record)

    info.final = {
        "test_acc_largest": round(accuracy(net, space.largest(), data.x_test, data.y_test), 4),
        "test_acc_smallest": round(accuracy(net, space.smallest(), data.x_test, data.y_test), 4),
        "largest": space.largest().to_str(),
        "smallest": space.smallest().to_str(),
        "train_examples": len(data.x_train),
    }
    checkpoint.save(out, net, info)
    return info


# Python's random state holds a tuple of ints; lists keep it weights_only-loadable either way.
def _from_state(state: tuple) -> list:
    return [state[0], list(state[1]), state[2]]


def _to_state(state: list) -> tuple:
    return (state[0], tuple(state[1]), state[2])
