"""Plain frozen records the store hands out; the rest of the code never sees ORM rows."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ExperimentRecord:
    id: int
    name: str
    space_id: int
    space_name: str
    space_hash: str
    space_yaml: str
    strategy: str
    targets: tuple[str, ...]
    objectives: tuple[dict[str, str], ...]
    constraints: tuple[str, ...]
    budget: int
    seed: int
    status: str
    config: dict[str, Any]
    reference: dict[str, Any]
    created_at: dt.datetime
    updated_at: dt.datetime
    finished_at: dt.datetime | None
    evaluations: int
    last_evaluation_at: dt.datetime | None

    @classmethod
    def from_rows(cls, e, space, count: int, last: dt.datetime | None) -> ExperimentRecord:
        return cls(e.id, e.name, space.id, space.name, space.hash, space.yaml, e.strategy, tuple(e.targets),
                   tuple(e.objectives), tuple(e.constraints), e.budget, e.seed, e.status, dict(e.config or {}),
                   dict(e.reference or {}), e.created_at, e.updated_at, e.finished_at, int(count), last)


@dataclass(frozen=True)
class EvaluationRecord:
    id: int
    trial: int
    arch: str
    arch_hash: str
    status: str
    feasible: bool
    accuracy: float | None
    metrics: dict[str, Any]
    sources: dict[str, Any]
    worker: str
    started_at: dt.datetime
    finished_at: dt.datetime
    features: dict[str, Any] = field(default_factory=dict)
    error: str | None = None  # why it failed (status "failed"), one line

    @classmethod
    def from_rows(cls, e, a) -> EvaluationRecord:
        return cls(e.id, e.trial, a.arch, a.hash, e.status, e.feasible, e.accuracy, dict(e.metrics or {}),
                   dict(e.sources or {}), e.worker, e.started_at, e.finished_at, dict(a.features or {}), e.error)


@dataclass(frozen=True)
class NewEvaluation:
    """What a finished evaluation brings to :meth:`nas.store.Store.add_evaluation`."""

    trial: int
    arch: str
    arch_hash: str
    status: str
    feasible: bool
    metrics: dict[str, Any]
    sources: dict[str, Any]
    worker: str
    started_at: dt.datetime
    finished_at: dt.datetime
    features: dict[str, Any] = field(default_factory=dict)
    error: str | None = None  # why it failed (status "failed"), one line
