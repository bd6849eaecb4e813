"""Toy problems the strategy tests share: a plain space's smooth two objectives, a network
space's, and the plain ask/tell loop that runs a strategy on them."""

from __future__ import annotations

import numpy as np

from nas.objectives import Objective

OBJECTIVES = [Objective("score", "max"), Objective("cost", "min")]


def toy_metrics(arch) -> dict[str, float]:
    """A smooth two-objective problem on the plain toy space: bigger nets score more and cost more."""
    v = arch.as_dict()
    size = v["layers"] * v["units"]
    act = {"relu": 0.0, "gelu": 0.05, "tanh": -0.05}[v["activation"]]
    score = 1 - np.exp(-size / 150) + act - 0.3 * v["dropout"]
    cost = 0.1 + size / 100 + (0.2 if v["activation"] == "gelu" else 0.0)
    return {"score": float(score), "cost": float(cost)}


def net_metrics(arch) -> dict[str, float]:
    """A network-space problem: accuracy grows with depth x width, latency with MACs-ish cost."""
    depth = sum(arch.depths)
    width = sum(arch.widths)
    attn = arch.block_mix()["attention"]
    return {"accuracy": float(1 - np.exp(-depth * width / 300) + 0.02 * attn), "cpu_ms": float(0.1 + depth * width / 500)}


def run(strategy, metrics_fn, n: int) -> list:
    seen = {}
    for _ in range(n):
        arch = strategy.ask()
        strategy.space.validate(arch)
        if arch not in seen:
            seen[arch] = metrics_fn(arch)
        strategy.tell(arch, seen[arch])
    return list(seen.items())
