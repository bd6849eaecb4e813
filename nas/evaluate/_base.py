"""The evaluator interface and the user-supplied evaluators."""

from __future__ import annotations

import csv
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any

from nas.errors import NasError
from nas.objectives import Objective
from nas.space import Arch, SearchSpace


class Evaluator(ABC):
    """Metrics of archs of one space; ``metric_names`` lists every key ``evaluate`` returns."""

    space: SearchSpace
    metric_names: tuple[str, ...]
    objectives: tuple[Objective, ...]

    def cheap(self, arch: Arch) -> dict[str, float]:
        """Metrics that cost (almost) nothing; the default has none."""
        return {}

    def cheap_metrics(self, arch: Arch, names: Collection[str]) -> dict[str, float]:
        """The cheap metrics among ``names``: a search asks for those its objectives and constraints
        use, for many candidates. Override it when computing fewer metrics costs less."""
        return {k: v for k, v in self.cheap(arch).items() if k in names}

    @abstractmethod
    def evaluate(self, arch: Arch) -> dict[str, float]:
        """Every metric of ``arch``."""

    def sources(self) -> dict[str, str]:
        """Per metric, ``measured`` or ``predicted`` (kept with each stored evaluation)."""
        return {m: "measured" for m in self.metric_names}

    def profiles(self) -> dict[str, dict[str, Any]]:
        """The latency profiles it predicts with, as JSON (kept in the store); none by default."""
        return {}


def _as_metrics(result: Any, where: str) -> dict[str, float]:
    if not isinstance(result, Mapping):
        raise NasError(f"{where} must return a dict of metric name -> number, got {type(result).__name__}")
    out = {}
    for k, v in result.items():
        try:
            out[str(k)] = float(v)
        except (TypeError, ValueError):
            raise NasError(f"{where} returned a non-numeric value for {k!r}: {v!r}") from None
    return out


class CallableEvaluator(Evaluator):
    """Wraps ``fn(arch) -> {metric: value}``; the objectives say which metrics to optimise."""

    def __init__(self, space: SearchSpace, fn: Callable[[Arch], Mapping[str, float]],
                 objectives: list[Objective], cheap_fn: Callable[[Arch], Mapping[str, float]] | None = None) -> None:
        self.space, self.fn, self.cheap_fn = space, fn, cheap_fn
        self.objectives = tuple(objectives)
        self.metric_names = tuple(o.name for o in objectives)

    def cheap(self, arch: Arch) -> dict[str, float]:
        return _as_metrics(self.cheap_fn(arch), "the cheap function") if self.cheap_fn else {}

    def evaluate(self, arch: Arch) -> dict[str, float]:
        metrics = _as_metrics(self.fn(arch), "the evaluator")
        missing = [o.name for o in self.objectives if o.name not in metrics]
        if missing:
            raise NasError(f"the evaluator returned no value for objective(s) {', '.join(missing)}")
        return metrics


class TableEvaluator(Evaluator):
    """Looks archs up in a CSV of measured results: an ``arch`` column and one column per metric."""

    def __init__(self, space: SearchSpace, path: str | Path, objectives: list[Objective]) -> None:
        path = Path(path)
        if not path.is_file():
            raise NasError(f"results table {str(path)!r} does not exist")
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        if not rows or "arch" not in rows[0]:
            raise NasError(f"results table {path.name} needs an 'arch' column and one column per metric")
        self.space = space
        self.objectives = tuple(objectives)
        self.metric_names = tuple(c for c in rows[0] if c != "arch")
        missing = [o.name for o in objectives if o.name not in self.metric_names]
        if missing:
            raise NasError(f"results table {path.name} has no column for objective(s) {', '.join(missing)}")
        self.table: dict[Arch, dict[str, float]] = {}
        for i, row in enumerate(rows, start=2):
            try:
                arch = space.parse(row["arch"])
            except NasError as exc:
                raise NasError(f"{path.name} line {i}: {exc}") from None
            values = {}
            for k in self.metric_names:
                try:
                    values[k] = float(row[k])
                except (TypeError, ValueError):
                    raise NasError(f"{path.name} line {i}: column {k!r} is not a number ({row[k]!r})") from None
                if not math.isfinite(values[k]):
                    raise NasError(f"{path.name} line {i}: column {k!r} is not finite")
            self.table[arch] = values

    def evaluate(self, arch: Arch) -> dict[str, float]:
        if arch not in self.table:
            raise NasError(f"arch {arch.to_str()} is not in the results table")
        return dict(self.table[arch])
