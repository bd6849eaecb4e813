"""The SQL schema, in one place. Only :mod:`nas.store` reads or writes these tables."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class SpaceRow(Base):
    __tablename__ = "nas_spaces"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    hash: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(20))
    yaml: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class ExperimentRow(Base):
    __tablename__ = "nas_experiments"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    space_id: Mapped[int] = mapped_column(ForeignKey("nas_spaces.id"))
    strategy: Mapped[str] = mapped_column(String(40))
    targets: Mapped[list[Any]] = mapped_column(JSON)
    objectives: Mapped[list[Any]] = mapped_column(JSON)  # [{"name": "accuracy", "direction": "max"}, ...]
    constraints: Mapped[list[Any]] = mapped_column(JSON)  # ["cpu_ms<=2", ...]
    budget: Mapped[int] = mapped_column(Integer)
    seed: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20), default="created")
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    reference: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # hypervolume reference point
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)


class ArchitectureRow(Base):
    __tablename__ = "nas_architectures"
    __table_args__ = (UniqueConstraint("space_id", "hash", name="uq_architecture_space_hash"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    space_id: Mapped[int] = mapped_column(ForeignKey("nas_spaces.id"))
    hash: Mapped[str] = mapped_column(String(64))
    arch: Mapped[str] = mapped_column(Text)  # the canonical string
    features: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # block mix, for colouring


class EvaluationRow(Base):
    __tablename__ = "nas_evaluations"
    __table_args__ = (
        UniqueConstraint("experiment_id", "architecture_id", name="uq_evaluation_experiment_arch"),
        Index("ix_evaluation_experiment_trial", "experiment_id", "trial"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("nas_experiments.id"))
    architecture_id: Mapped[int] = mapped_column(ForeignKey("nas_architectures.id"))
    trial: Mapped[int] = mapped_column(Integer)  # order of asking, for curves over evaluations
    status: Mapped[str] = mapped_column(String(20))  # ok, failed
    error: Mapped[str | None] = mapped_column(Text, nullable=True)  # why a failed evaluation failed, one line
    feasible: Mapped[bool] = mapped_column(Boolean)
    accuracy: Mapped[float | None] = mapped_column(Float, nullable=True)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON)  # every objective and metric
    sources: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # per metric: predicted or measured
    worker: Mapped[str] = mapped_column(String(200), default="")
    started_at: Mapped[dt.datetime] = mapped_column(DateTime)
    finished_at: Mapped[dt.datetime] = mapped_column(DateTime)


class ProfileRow(Base):
    __tablename__ = "nas_latency_profiles"
    __table_args__ = (UniqueConstraint("target", "space_hash", name="uq_profile_target_space"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    target: Mapped[str] = mapped_column(String(100))
    space_name: Mapped[str] = mapped_column(String(200))
    space_hash: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(20))
    meta: Mapped[dict[str, Any]] = mapped_column(JSON)
    model: Mapped[dict[str, Any]] = mapped_column(JSON)
    validation: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class MeasurementRow(Base):
    __tablename__ = "nas_latency_measurements"
    __table_args__ = (UniqueConstraint("profile_id", "kind", "key", name="uq_measurement_profile_key"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    profile_id: Mapped[int] = mapped_column(ForeignKey("nas_latency_profiles.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(20))  # unit, arch, validation
    key: Mapped[str] = mapped_column(Text)
    median_ms: Mapped[float] = mapped_column(Float)
    p10_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    p90_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    cv: Mapped[float | None] = mapped_column(Float, nullable=True)
    predicted_ms: Mapped[float | None] = mapped_column(Float, nullable=True)


class ExportRow(Base):
    __tablename__ = "nas_exports"
    id: Mapped[int] = mapped_column(primary_key=True)
    experiment_id: Mapped[int | None] = mapped_column(ForeignKey("nas_experiments.id"), nullable=True)
    architecture_id: Mapped[int] = mapped_column(ForeignKey("nas_architectures.id"))
    path: Mapped[str] = mapped_column(Text)
    max_abs_error: Mapped[float] = mapped_column(Float)
    opset: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
