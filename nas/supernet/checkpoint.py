"""Supernet checkpoints: plain tensors and primitives only, so they load with ``weights_only=True``.

A checkpoint carries its space's YAML text and the dataset's shape and normalisation, so a
checkpoint alone is enough to rebuild the supernet, evaluate, extract and export subnets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from nas.atomic import atomic_path
from nas.errors import NasError, first_line
from nas.space import NetSpace, loads
from nas.supernet.model import Supernet, SupernetConfig

FORMAT = "nas-supernet"
VERSION = 1


@dataclass
class Checkpoint:
    """What a checkpoint holds besides the weights."""

    space: NetSpace
    dataset: str
    input_shape: tuple[int, ...]
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    epoch: int = 0
    step: int = 0
    train_config: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    final: dict[str, Any] = field(default_factory=dict)
    optimizer: dict[str, Any] | None = None
    scheduler: dict[str, Any] | None = None
    rng: dict[str, Any] | None = None
    vocab: bytes = b""  # a text space's byte vocabulary (token i is byte vocab[i])

    def build(self) -> Supernet:
        return Supernet(SupernetConfig.from_space(self.space, self.num_classes, self.input_shape[0]))


def _cpu(value: Any) -> Any:
    """Tensors (in nested dicts and lists) on the CPU: a checkpoint holds no device."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {k: _cpu(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_cpu(v) for v in value)
    return value


def save(path: str | Path, net: Supernet, info: Checkpoint) -> None:
    """Write atomically (a temporary file, then rename), so a kill never leaves half a checkpoint.
    Every tensor is saved from the CPU, whatever device trained it."""
    path = Path(path)
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "space_name": info.space.name,
        "space_yaml": info.space.source_text,
        "dataset": info.dataset,
        "input_shape": list(info.input_shape),
        "num_classes": info.num_classes,
        "mean": list(info.mean),
        "std": list(info.std),
        "epoch": info.epoch,
        "step": info.step,
        "train_config": info.train_config,
        "history": info.history,
        "final": info.final,
        "model": _cpu(net.state_dict()),
        "optimizer": _cpu(info.optimizer),
        "scheduler": _cpu(info.scheduler),
        "rng": _cpu(info.rng),
        "vocab": list(info.vocab),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load(path: str | Path) -> tuple[Supernet, Checkpoint]:
    """Load a checkpoint (``weights_only=True``) and rebuild its supernet; NasError on anything wrong."""
    path = Path(path)
    if not path.is_file():
        raise NasError(f"checkpoint {str(path)!r} does not exist")
    return _load(path, path)


def load_bytes(data: bytes, name: str = "checkpoint") -> tuple[Supernet, Checkpoint]:
    """:func:`load` from the file's bytes (what the search driver ships to its workers)."""
    import io

    return _load(io.BytesIO(data), Path(name))


def _load(source, path: Path) -> tuple[Supernet, Checkpoint]:
    where = f"checkpoint {str(path)!r}"
    try:
        payload = torch.load(source, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - a text file, a truncated or foreign zip, another program's pickle
        raise NasError(f"{where} is corrupted or not a supernet checkpoint ({first_line(exc, 120)})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise NasError(f"{where} is not a nas supernet checkpoint")
    if payload.get("version") != VERSION:
        raise NasError(f"{where} has format version {payload.get('version')}, expected {VERSION}")
    try:
        space = loads(payload["space_yaml"], source=f"{path} (embedded space)")
        if not isinstance(space, NetSpace):
            raise NasError(f"{where} embeds a space without a supernet")
        info = Checkpoint(
            space=space,
            dataset=str(payload["dataset"]),
            input_shape=tuple(int(d) for d in payload["input_shape"]),
            num_classes=int(payload["num_classes"]),
            mean=tuple(payload["mean"]),
            std=tuple(payload["std"]),
            epoch=int(payload["epoch"]),
            step=int(payload["step"]),
            train_config=payload["train_config"],
            history=payload["history"],
            final=payload["final"],
            optimizer=payload["optimizer"],
            scheduler=payload["scheduler"],
            rng=payload["rng"],
            vocab=bytes(payload.get("vocab", [])),
        )
        net = info.build()
    except NasError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise NasError(f"{where} is incomplete or damaged ({type(exc).__name__}: {first_line(exc, 120)})") from None
    try:
        net.load_state_dict(payload["model"])
    except (KeyError, TypeError, RuntimeError) as exc:
        raise NasError(f"{where} does not match its space: {first_line(exc, 160)}") from None
    return net, info
