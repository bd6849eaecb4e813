"""Zero-cost proxies: scores of a subnet at initialisation that cost one batch, no training.

- ``grad_norm``: the summed L2 norms of the loss gradients on one labelled batch (Abdelfattah
  et al., 2021, "Zero-Cost Proxies for Lightweight NAS").
- ``synflow``: sum of ``|theta * dR/dtheta|`` where R sums the outputs of the network with every
  weight made positive, run on an all-ones input in float64 (Tanaka et al., 2020); no data.
- ``naswot``: log-determinant of the Hamming-agreement kernel of the samples' activation
  patterns (Mellor et al., 2021). Our blocks use GELU and SiLU from ``torch.nn.functional``, not
  modules, so the pattern is read from the inputs of every such call (positive or not), caught
  with a ``TorchFunctionMode``; it needs no hooks per block kind.

Each works on any ``nn.Module`` that maps a batch to logits: a subnet extracted from a freshly
initialised supernet (:func:`score_arch`) or a user's own model.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from nas.errors import NasError
from nas.space import NetArch, NetSpace
from nas.supernet.model import Supernet, SupernetConfig

_ACTIVATIONS = {F.gelu, F.silu, F.relu, F.relu6, F.leaky_relu, F.elu, torch.relu, torch.sigmoid, F.hardswish}


def grad_norm(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    net.zero_grad(set_to_none=True)
    F.cross_entropy(net(x), y).backward()
    total = sum(float(p.grad.norm()) for p in net.parameters() if p.grad is not None)
    net.zero_grad(set_to_none=True)
    return total


def synflow(net: nn.Module, x: torch.Tensor, y: torch.Tensor | None = None) -> float:
    """Data-free: only ``x``'s shape is used. Works on a float64 copy, leaving ``net`` as it was."""
    probe = copy.deepcopy(net).double()
    with torch.no_grad():
        for p in probe.parameters():
            p.abs_()
    probe.zero_grad(set_to_none=True)
    probe(torch.ones((1, *x.shape[1:]), dtype=torch.float64)).sum().backward()
    with torch.no_grad():
        return float(sum((p * p.grad).abs().sum() for p in probe.parameters() if p.grad is not None))


class _Patterns(TorchFunctionMode):
    """Records, per sample, whether each activation function's input is positive."""

    def __init__(self) -> None:
        super().__init__()
        self.codes: list[torch.Tensor] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in _ACTIVATIONS and args and isinstance(args[0], torch.Tensor):
            self.codes.append((args[0].detach() > 0).reshape(args[0].shape[0], -1).double())
        return func(*args, **(kwargs or {}))


def naswot(net: nn.Module, x: torch.Tensor, y: torch.Tensor | None = None) -> float:
    """Labels unused. The batch's samples must have distinct patterns for a finite score."""
    with torch.no_grad(), _Patterns() as patterns:
        net(x)
    if not patterns.codes:
        raise NasError("naswot: the network called no activation function of torch.nn.functional")
    codes = torch.cat(patterns.codes, dim=1)
    kernel = codes @ codes.T + (1 - codes) @ (1 - codes).T
    sign, logdet = torch.linalg.slogdet(kernel)
    return float(logdet) if float(sign) > 0 else float("-inf")


PROXIES: dict[str, Callable[[nn.Module, torch.Tensor, torch.Tensor], float]] = {
    "grad_norm": grad_norm, "synflow": synflow, "naswot": naswot,
}


def fresh_supernet(space: NetSpace, seed: int = 0) -> Supernet:
    """A supernet of ``space`` at initialisation (seeded): the weights every proxy scores."""
    torch.manual_seed(seed)
    return Supernet(SupernetConfig.from_space(space))


def score_arch(supernet: Supernet, arch: NetArch, x: np.ndarray, y: np.ndarray,
               names: Sequence[str] = tuple(PROXIES)) -> dict[str, float]:
    """The proxies of ``arch`` extracted from ``supernet`` (see :func:`fresh_supernet`), on the
    batch ``x, y`` (NASWOT uses its first 64 samples, as in its paper)."""
    unknown = [n for n in names if n not in PROXIES]
    if unknown:
        raise NasError(f"unknown proxy {unknown[0]!r}: choose from {', '.join(PROXIES)}")
    net = supernet.extract(arch, tuple(x.shape[1:]))
    net.train()
    xt, yt = torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=torch.long)
    out = {}
    for name in names:
        batch = slice(0, 64) if name == "naswot" else slice(None)
        out[name] = PROXIES[name](net, xt[batch], yt[batch])
    return out


PROXY_FEATURES = ("log_synflow", "naswot", "log_grad_norm")


def proxy_features(supernet: Supernet, arch: NetArch, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """The three proxies of ``arch`` as model features (see :mod:`nas.supernet.calibrate`): synflow
    and grad_norm span orders of magnitude, so their log10; NASWOT is a log-determinant already
    (a batch whose samples share an activation pattern scores -inf: then -1000)."""
    scores = score_arch(supernet, arch, x[:128], y[:128])
    return {"log_synflow": float(np.log10(max(scores["synflow"], 1e-30))),
            "naswot": float(max(scores["naswot"], -1e3)),
            "log_grad_norm": float(np.log10(max(scores["grad_norm"], 1e-30)))}
