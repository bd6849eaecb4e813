"""Objectives (metric + direction) and constraints (``cpu_ms<=2``), as strategies see them."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from nas.errors import NasError

# Metrics every network evaluation reports besides accuracy and one ``<target>_ms`` per target.
ARCH_METRICS = ("params", "macs", "sram_kb", "flash_kb")
_CONSTRAINT = re.compile(r"^\s*([A-Za-z][\w.-]*)\s*(<=|>=|<|>)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$")


@dataclass(frozen=True)
class Objective:
    name: str
    direction: str  # "max" or "min"

    def __post_init__(self) -> None:
        if self.direction not in ("max", "min"):
            raise NasError(f"objective {self.name!r}: direction must be max or min, got {self.direction!r}")

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "direction": self.direction}


@dataclass(frozen=True)
class Constraint:
    metric: str
    op: str
    bound: float

    @property
    def text(self) -> str:
        return f"{self.metric}{self.op}{self.bound:g}"

    def met(self, metrics: Mapping[str, float]) -> bool:
        value = metrics.get(self.metric)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return False
        return {"<=": value <= self.bound, "<": value < self.bound,
                ">=": value >= self.bound, ">": value > self.bound}[self.op]

    def slack(self, metrics: Mapping[str, float]) -> float:
        """Signed distance to the bound relative to it: negative inside, positive outside (Optuna's convention)."""
        value = metrics.get(self.metric)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return math.inf
        scale = abs(self.bound) if self.bound else 1.0
        signed = (value - self.bound) if self.op in ("<=", "<") else (self.bound - value)
        if not self.met(metrics):
            return max(signed / scale, 1e-9)
        return min(signed / scale, 0.0) if signed / scale < 0 else 0.0

    def violation(self, metrics: Mapping[str, float]) -> float:
        """How far ``metrics`` is from meeting the constraint, relative to the bound (0 when met)."""
        return max(self.slack(metrics), 0.0)


def parse_objective(text: str) -> Objective:
    """``accuracy:max`` -> Objective (one line naming the form when it is not that)."""
    name, sep, direction = text.partition(":")
    if not sep or direction not in ("max", "min") or not name:
        raise NasError(f"--objective {text!r}: expected NAME:max or NAME:min (for example accuracy:max)")
    return Objective(name, direction)


def latency_metric(target: str) -> str:
    return f"{target}_ms"


def parse_constraint(text: str, known: Sequence[str] | None) -> Constraint:
    """``"cpu_ms<=2"`` -> Constraint; the metric must be one the evaluation produces (``known``;
    ``None`` checks the syntax only)."""
    m = _CONSTRAINT.match(text)
    if not m:
        raise NasError(f"constraint {text!r} does not parse: expected METRIC<=NUMBER or METRIC>=NUMBER "
                       "(for example cpu_ms<=2 or sram_kb<=320)")
    metric, op, bound = m.group(1), m.group(2), float(m.group(3))
    if metric == "peak_sram_kb":
        metric = "sram_kb"
    if known is not None and metric not in known:
        raise NasError(f"constraint {text!r}: unknown metric {metric!r} (this search reports: {', '.join(known)})")
    if not math.isfinite(bound):
        raise NasError(f"constraint {text!r}: the bound must be a finite number")
    return Constraint(metric, op, bound)


def total_violation(constraints: Sequence[Constraint], metrics: Mapping[str, float]) -> float:
    return float(sum(c.violation(metrics) for c in constraints))


def default_objectives(targets: Sequence[str]) -> list[Objective]:
    return [Objective("accuracy", "max")] + [Objective(latency_metric(t), "min") for t in targets]


def reference_pairs(text: str, value: str = "NUMBER") -> list[tuple[str, str]]:
    """``"accuracy=0.85,cpu_ms=2"`` -> [("accuracy", "0.85"), ("cpu_ms", "2")]: the syntax every
    ``--reference`` takes (``value`` names what the error line says a value is)."""
    items = []
    for part in (p.strip() for p in text.split(",")):
        name, sep, raw = part.partition("=")
        if not sep or not name.strip():
            raise NasError(f"--reference {text!r}: expected NAME={value}[,NAME={value}...] (for example accuracy=0.85,cpu_ms=2)")
        items.append((name.strip(), raw.strip()))
    return items


def parse_reference(text: str | Mapping[str, float] | None, objectives: Sequence[Objective] | None = None) -> dict[str, float]:
    """``"accuracy=0.85,cpu_ms=2"`` (or a mapping) -> {objective: value}, the hypervolume reference a
    user gives; objectives left out are set from the search's own results. With ``objectives``, every
    name must be one of them."""
    if not text:
        return {}
    items = [(str(k), v) for k, v in text.items()] if isinstance(text, Mapping) else reference_pairs(text)
    out: dict[str, float] = {}
    names = [o.name for o in objectives] if objectives is not None else None
    for name, value in items:
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise NasError(f"--reference {name}={value!r}: not a number") from None
        if isinstance(value, bool) or not math.isfinite(number):
            raise NasError(f"--reference {name}: needs a finite number, got {value!r}")
        if names is not None and name not in names:
            raise NasError(f"--reference {name}: not an objective of this search ({', '.join(names)})")
        if name in out:
            raise NasError(f"--reference {name}: given twice")
        out[name] = number
    return out
