"""The training recipe (:class:`TrainConfig`) and how a resumed run continues it; torch-free, so
the CLI's help and a checkpoint's metadata read it without loading the model code."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from nas.errors import NasError

EXTREMES = ("per-kind", "global", "largest", "none")
PRECISIONS = ("fp32", "bf16")


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 2
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 0.05
    warmup_fraction: float = 0.03
    random_subnets: int = 2
    extremes: str = "per-kind"  # the largest and smallest of one block kind per step, in turn; "global"; "largest"; "none"
    distill: bool = True
    distill_weight: float = 0.5
    distill_ramp: float = 0.5
    aux_weight: float = 0.01
    grad_clip: float = 1.0
    limit: int | None = None
    seed: int = 0
    precision: str = "fp32"  # or "bf16": autocast on CUDA (measure it: many tiny ops pay for the casts)
    log_every: int = 10  # steps between host syncs for the progress line

    def __post_init__(self) -> None:
        checks = (
            ("epochs", self.epochs >= 1), ("batch_size", self.batch_size >= 1), ("lr", self.lr > 0),
            ("random_subnets", self.random_subnets >= 0), ("limit", self.limit is None or self.limit >= 1),
            ("distill_weight", 0.0 <= self.distill_weight <= 1.0), ("distill_ramp", 0.0 <= self.distill_ramp <= 1.0),
            ("log_every", self.log_every >= 1),
        )
        for name, ok in checks:
            if not ok:
                raise NasError(f"training option {name}={getattr(self, name)!r} is out of range")
        for name, allowed in (("precision", PRECISIONS), ("extremes", EXTREMES)):
            if getattr(self, name) not in allowed:
                raise NasError(f"training option {name}={getattr(self, name)!r} is not one of {', '.join(allowed)}")
        if self.extremes == "none" and self.distill:
            raise NasError("extremes='none' trains no largest subnet to distill from: train on the labels (--no-distill)")
        if self.extremes == "none" and self.random_subnets < 1:
            raise NasError("extremes='none' trains only the random subnets: random_subnets must be at least 1")


def warmup_cosine(total: int, warmup: int) -> Callable[[int], float]:
    """The learning-rate factor at each step: linear warm-up over ``warmup`` steps, then cosine down
    to 2% of the peak at ``total`` (the supernet's schedule and a stand-alone training's alike)."""
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total - warmup)
        return 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

    return factor


_BEFORE_ADDED = {"extremes": "global"}


def resumed_config(saved: Mapping[str, Any], **given: Any) -> TrainConfig:
    """The recipe a resumed run continues with: the checkpoint's own (``saved``, its
    ``train_config``), with the options in ``given`` that are not None in their place. A run
    resumed without naming its options so goes on as it started (an option added since, which
    an older checkpoint lacks, takes the value that reproduces how it was trained before)."""
    names = {f.name for f in fields(TrainConfig)}
    unknown = set(given) - names
    if unknown:
        raise NasError(f"unknown training options: {', '.join(sorted(unknown))}")
    recipe = _BEFORE_ADDED | {k: v for k, v in saved.items() if k in names}
    return TrainConfig(**(recipe | {k: v for k, v in given.items() if v is not None}))
