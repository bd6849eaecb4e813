"""The evaluator interface and the user-supplied evaluators."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Mapping, Sequence
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


def read_table(path: str | Path, space: SearchSpace, objectives: Sequence[Objective]) -> dict[Arch, dict[str, float]]:
    """A CSV of an ``arch`` column and metric columns as {arch: metrics}: every arch of ``space``,
    once; every objective's column a finite number (other columns may hold text, left out)."""
    from nas.csvfile import read_rows

    path = Path(path)
    rows = read_rows(path, "results table")
    if "arch" not in rows[0]:
        raise NasError(f"results table {path.name} has no 'arch' column (columns: {', '.join(rows[0])})")
    missing = [o.name for o in objectives if o.name not in rows[0]]
    if missing:
        raise NasError(f"results table {path.name} has no column for objective(s) {', '.join(missing)}")
    needed = {o.name for o in objectives}
    table: dict[Arch, dict[str, float]] = {}
    for i, row in enumerate(rows, start=2):
        try:
            arch = space.parse(row["arch"])
        except NasError as exc:
            raise NasError(f"{path.name} line {i}: {exc}") from None
        metrics = {}
        for name in (c for c in rows[0] if c != "arch"):
            try:
                value = float(row[name])
            except (TypeError, ValueError):
                if name in needed:
                    raise NasError(f"{path.name} line {i}: {name} is not a number ({row[name]!r})") from None
                continue
            if name in needed and not math.isfinite(value):
                raise NasError(f"{path.name} line {i}: {name} is {row[name]!r}; every objective needs a finite number")
            metrics[name] = value
        if arch in table:
            raise NasError(f"{path.name} line {i}: arch {arch.to_str()} appears twice")
        table[arch] = metrics
    return table


class TableEvaluator(Evaluator):
    """Looks archs up in a CSV of measured results: an ``arch`` column and one column per metric."""

    def __init__(self, space: SearchSpace, path: str | Path, objectives: list[Objective]) -> None:
        self.space = space
        self.objectives = tuple(objectives)
        self.table = read_table(path, space, objectives)
        self.metric_names = tuple(sorted({k for m in self.table.values() for k in m}))

    def evaluate(self, arch: Arch) -> dict[str, float]:
        if arch not in self.table:
            raise NasError(f"arch {arch.to_str()} is not in the results table")
        return dict(self.table[arch])
