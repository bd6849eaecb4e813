"""The store's queries: every read and write of the schema goes through :class:`Store`.

Each evaluation is committed on its own as it arrives; writes retry transient failures and
readers never write (see :mod:`nas.store._engine` for the database underneath).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from nas.errors import NasError
from nas.store._engine import DEFAULT_URL, Database, resolve_url
from nas.store.models import (
    ArchitectureRow,
    EvaluationRow,
    ExperimentRow,
    ExportRow,
    MeasurementRow,
    ProfileRow,
    SpaceRow,
    utcnow,
)
from nas.store.records import EvaluationRecord, ExperimentRecord, NewEvaluation

if TYPE_CHECKING:
    import pandas as pd

STATUSES = ("created", "running", "finished", "interrupted", "failed")
__all__ = ["DEFAULT_URL", "STATUSES", "Store", "resolve_url"]


class Store(Database):
    """A nas store at ``url`` (see :func:`nas.store.resolve_url`): experiments, spaces,
    architectures, evaluations, latency profiles and exports."""

    # -- spaces and architectures ------------------------------------------------------------------
    def ensure_space(self, name: str, space_hash: str, kind: str, yaml_text: str) -> int:
        def work(s: Session) -> int:
            row = s.scalar(sa.select(SpaceRow).where(SpaceRow.hash == space_hash))
            if row is None:
                row = SpaceRow(name=name, hash=space_hash, kind=kind, yaml=yaml_text)
                s.add(row)
                s.flush()
            return row.id

        try:
            return self._retrying(work, "record the space")
        except IntegrityError:  # another writer added it first
            return self._retrying(work, "record the space")

    def _arch_id(self, s: Session, space_id: int, arch: str, arch_hash: str, features: dict[str, Any]) -> int:
        table = ArchitectureRow.__table__
        values = {"space_id": space_id, "hash": arch_hash, "arch": arch, "features": features}
        if self.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        s.execute(insert(table).values(**values).on_conflict_do_nothing(index_elements=["space_id", "hash"]))
        return s.scalar(sa.select(ArchitectureRow.id).where(ArchitectureRow.space_id == space_id,
                                                             ArchitectureRow.hash == arch_hash))

    # -- experiments ---------------------------------------------------------------------------------
    def create_experiment(self, name: str, space_id: int, strategy: str, targets: list[str],
                          objectives: list[dict[str, str]], constraints: list[str], budget: int, seed: int,
                          config: dict[str, Any], reference: dict[str, Any]) -> ExperimentRecord:
        def work(s: Session) -> None:
            s.add(ExperimentRow(name=name, space_id=space_id, strategy=strategy, targets=targets, objectives=objectives,
                                constraints=constraints, budget=budget, seed=seed, status="created", config=config,
                                reference=reference))

        try:
            self._retrying(work, "create the experiment")
        except IntegrityError:
            raise NasError(f"experiment {name!r} already exists in {self.display_url}: pass --resume to continue it, "
                           "or choose another --experiment") from None
        return self.experiment(name)

    def experiment(self, name: str) -> ExperimentRecord:
        for record in self.experiments(name):
            return record
        known = [e.name for e in self.experiments()]
        hint = f" (experiments: {', '.join(known[:8])}{', ...' if len(known) > 8 else ''})" if known else " (the store is empty)"
        raise NasError(f"no experiment {name!r} in {self.display_url}{hint}")

    def experiments(self, name: str | None = None) -> list[ExperimentRecord]:
        counts = (sa.select(EvaluationRow.experiment_id, sa.func.count().label("n"),
                            sa.func.max(EvaluationRow.finished_at).label("last"))
                  .group_by(EvaluationRow.experiment_id).subquery())
        query = (sa.select(ExperimentRow, SpaceRow, counts.c.n, counts.c.last)
                 .join(SpaceRow, SpaceRow.id == ExperimentRow.space_id)
                 .outerjoin(counts, counts.c.experiment_id == ExperimentRow.id)
                 .order_by(ExperimentRow.created_at.desc(), ExperimentRow.id.desc()))
        if name is not None:
            query = query.where(ExperimentRow.name == name)
        with self._read() as s:
            return [ExperimentRecord.from_rows(e, sp, n or 0, last) for e, sp, n, last in s.execute(query)]

    def set_status(self, name: str, status: str) -> None:
        if status not in STATUSES:
            raise ValueError(status)

        def work(s: Session) -> None:
            row = s.scalar(sa.select(ExperimentRow).where(ExperimentRow.name == name))
            row.status = status
            row.updated_at = utcnow()
            row.finished_at = utcnow() if status == "finished" else None

        self._retrying(work, "update the experiment")

    def delete_experiment_if_empty(self, name: str) -> bool:
        """Remove experiment ``name`` when it holds no evaluation (a search that failed before its
        first result); True when it was removed."""

        def work(s: Session) -> bool:
            row = s.scalar(sa.select(ExperimentRow).where(ExperimentRow.name == name))
            if row is None:
                return False
            if s.scalar(sa.select(EvaluationRow.id).where(EvaluationRow.experiment_id == row.id).limit(1)) is not None:
                return False
            if s.scalar(sa.select(ExportRow.id).where(ExportRow.experiment_id == row.id).limit(1)) is not None:
                return False
            s.delete(row)
            return True

        return self._retrying(work, "remove the empty experiment")

    def set_budget(self, name: str, budget: int) -> None:
        def work(s: Session) -> None:
            row = s.scalar(sa.select(ExperimentRow).where(ExperimentRow.name == name))
            row.budget = budget

        self._retrying(work, "update the experiment")

    def set_reference(self, name: str, reference: dict[str, float]) -> None:
        """The experiment's hypervolume reference, once its initial design has fixed it."""

        def work(s: Session) -> None:
            row = s.scalar(sa.select(ExperimentRow).where(ExperimentRow.name == name))
            row.reference = dict(reference)

        self._retrying(work, "update the experiment")

    # -- evaluations -----------------------------------------------------------------------------------
    def add_evaluation(self, experiment_id: int, space_id: int, new: NewEvaluation) -> bool:
        """Commit one finished evaluation; False when this experiment already holds that arch."""

        def work(s: Session) -> bool:
            arch_id = self._arch_id(s, space_id, new.arch, new.arch_hash, new.features)
            exists = s.scalar(sa.select(EvaluationRow.id).where(EvaluationRow.experiment_id == experiment_id,
                                                                EvaluationRow.architecture_id == arch_id))
            if exists is not None:
                return False
            s.add(EvaluationRow(experiment_id=experiment_id, architecture_id=arch_id, trial=new.trial,
                                status=new.status, error=_error_line(new.error), feasible=new.feasible,
                                accuracy=_accuracy(new.metrics),
                                metrics=_finite(new.metrics), sources=new.sources, worker=new.worker,
                                started_at=new.started_at, finished_at=new.finished_at))
            return True

        try:
            return self._retrying(work, "store an evaluation")
        except IntegrityError:  # a concurrent writer stored the same arch first
            return False

    def add_evaluations(self, experiment_id: int, space_id: int, batch: list[NewEvaluation]) -> int:
        """Commit many evaluations in one transaction (imports, seeding); returns how many were new."""
        if self.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert

        def work(s: Session) -> int:
            archs = [{"space_id": space_id, "hash": e.arch_hash, "arch": e.arch, "features": e.features} for e in batch]
            for chunk in range(0, len(archs), 5000):
                s.execute(insert(ArchitectureRow.__table__).values(archs[chunk:chunk + 5000])
                          .on_conflict_do_nothing(index_elements=["space_id", "hash"]))
            ids = dict(s.execute(sa.select(ArchitectureRow.hash, ArchitectureRow.id)
                                 .where(ArchitectureRow.space_id == space_id)).all())
            rows = [{"experiment_id": experiment_id, "architecture_id": ids[e.arch_hash], "trial": e.trial,
                     "status": e.status, "error": _error_line(e.error), "feasible": e.feasible,
                     "accuracy": _accuracy(e.metrics),
                     "metrics": _finite(e.metrics), "sources": e.sources, "worker": e.worker,
                     "started_at": e.started_at, "finished_at": e.finished_at} for e in batch]
            before = s.scalar(sa.select(sa.func.count()).select_from(EvaluationRow)
                              .where(EvaluationRow.experiment_id == experiment_id)) or 0
            for chunk in range(0, len(rows), 5000):
                s.execute(insert(EvaluationRow.__table__).values(rows[chunk:chunk + 5000])
                          .on_conflict_do_nothing(index_elements=["experiment_id", "architecture_id"]))
            after = s.scalar(sa.select(sa.func.count()).select_from(EvaluationRow)
                             .where(EvaluationRow.experiment_id == experiment_id)) or 0
            return after - before

        return self._retrying(work, "store evaluations")

    def evaluations(self, experiment: str, limit: int | None = None) -> list[EvaluationRecord]:
        exp = self.experiment(experiment)
        query = (sa.select(EvaluationRow, ArchitectureRow)
                 .join(ArchitectureRow, ArchitectureRow.id == EvaluationRow.architecture_id)
                 .where(EvaluationRow.experiment_id == exp.id)
                 .order_by(EvaluationRow.trial, EvaluationRow.id))
        if limit is not None:
            query = query.limit(limit)
        with self._read() as s:
            return [EvaluationRecord.from_rows(e, a) for e, a in s.execute(query)]

    def evaluation_rows(self, experiment: str) -> list[dict[str, Any]]:
        """Flat rows (one per evaluation, every metric a key) for tables and data frames."""
        keys, fetched, (metrics, features, sources) = self._flat_evaluations(experiment, light=False)
        rows = []
        for row, m, f, src in zip(fetched, metrics, features, sources, strict=True):
            out = dict(zip(keys, row, strict=False))
            out.update(m or {})
            out.update({f"mix_{k}": v for k, v in (f or {}).items()})
            out["sources"] = src
            rows.append(out)
        return rows

    def evaluation_frame(self, experiment: str) -> pd.DataFrame:
        """:meth:`evaluation_rows` as a pandas DataFrame built column by column, without the
        timestamps and the metrics' sources: the dashboard's view (about twice as fast on 100,000)."""
        import pandas as pd

        keys, fetched, (metrics, features) = self._flat_evaluations(experiment, light=True)
        if not fetched:
            return pd.DataFrame()
        columns = [pd.DataFrame([row[:len(keys)] for row in fetched], columns=keys),
                   pd.DataFrame([m or {} for m in metrics]),
                   pd.DataFrame([f or {} for f in features]).add_prefix("mix_")]
        return pd.concat(columns, axis=1)

    def _flat_evaluations(self, experiment: str, light: bool) -> tuple[list[str], list[Any], list[list[Any]]]:
        """(column names, rows of those columns, decoded JSON documents: metrics, features[, sources]).

        The JSON columns come back as text and are decoded in one call per column: on 100,000
        evaluations that is several times faster than decoding each value on its own."""
        exp = self.experiment(experiment)
        plain = [EvaluationRow.trial, ArchitectureRow.arch, ArchitectureRow.hash, EvaluationRow.status,
                 EvaluationRow.feasible, EvaluationRow.worker, EvaluationRow.error]
        if not light:
            plain += [EvaluationRow.started_at, EvaluationRow.finished_at]
        documents = [EvaluationRow.metrics, ArchitectureRow.features] + ([] if light else [EvaluationRow.sources])
        query = (sa.select(*plain, *(sa.cast(c, sa.Text) for c in documents))
                 .join(ArchitectureRow, ArchitectureRow.id == EvaluationRow.architecture_id)
                 .where(EvaluationRow.experiment_id == exp.id)
                 .order_by(EvaluationRow.trial, EvaluationRow.id))
        with self._read() as s:
            fetched = s.connection().execute(query).all()  # Core rows: no ORM loading per row
        decoded = [_decode_all([row[len(plain) + i] for row in fetched]) for i in range(len(documents))]
        return [c.key for c in plain], fetched, decoded

    # -- latency profiles ---------------------------------------------------------------------------------
    def save_profile(self, profile: dict[str, Any]) -> int:
        """Store a latency profile (as :class:`nas.latency.Profile.to_json` gives it), replacing an older one."""

        def work(s: Session) -> int:
            old = s.scalar(sa.select(ProfileRow).where(ProfileRow.target == profile["target"],
                                                       ProfileRow.space_hash == profile["space_hash"]))
            if old is not None:
                s.execute(sa.delete(MeasurementRow).where(MeasurementRow.profile_id == old.id))
                s.delete(old)
                s.flush()
            row = ProfileRow(target=profile["target"], space_name=profile["space"], space_hash=profile["space_hash"],
                             kind=profile["kind"], meta=profile.get("meta", {}),
                             model={k: profile[k] for k in ("model", "input_shape", "archs") if k in profile},
                             validation=profile.get("validation") or {})
            s.add(row)
            s.flush()
            rows = [MeasurementRow(profile_id=row.id, kind="unit", key=k, median_ms=u["median_ms"],
                                   p10_ms=u.get("p10_ms"), p90_ms=u.get("p90_ms"), cv=u.get("cv"))
                    for k, u in profile.get("units", {}).items() if u.get("median_ms") is not None]
            rows += [MeasurementRow(profile_id=row.id, kind="arch", key=a["arch"], median_ms=a["median_ms"],
                                    p10_ms=a.get("p10_ms"), p90_ms=a.get("p90_ms"), cv=a.get("cv"))
                     for a in profile.get("archs", [])]
            rows += [MeasurementRow(profile_id=row.id, kind="validation", key=v["arch"], median_ms=v["measured_ms"],
                                    predicted_ms=v["predicted_ms"])
                     for v in profile.get("validation_rows", [])]
            s.add_all(rows)
            return row.id

        return self._retrying(work, "store the latency profile")

    def profiles(self) -> list[dict[str, Any]]:
        with self._read() as s:
            rows = s.scalars(sa.select(ProfileRow).order_by(ProfileRow.target, ProfileRow.space_name)).all()
            return [{"id": r.id, "target": r.target, "space": r.space_name, "space_hash": r.space_hash, "kind": r.kind,
                     "meta": r.meta, "validation": r.validation, "created_at": r.created_at} for r in rows]

    def validation_points(self, profile_id: int) -> list[dict[str, Any]]:
        with self._read() as s:
            rows = s.scalars(sa.select(MeasurementRow).where(MeasurementRow.profile_id == profile_id,
                                                             MeasurementRow.kind == "validation")).all()
            return [{"arch": r.key, "measured_ms": r.median_ms, "predicted_ms": r.predicted_ms} for r in rows]

    # -- exports ---------------------------------------------------------------------------------------------
    def add_export(self, space_id: int, arch: str, arch_hash: str, features: dict[str, Any], path: str,
                   max_abs_error: float, opset: int, experiment: str | None = None) -> None:
        exp_id = self.experiment(experiment).id if experiment else None

        def work(s: Session) -> None:
            arch_id = self._arch_id(s, space_id, arch, arch_hash, features)
            s.add(ExportRow(experiment_id=exp_id, architecture_id=arch_id, path=path, max_abs_error=max_abs_error,
                            opset=opset))

        self._retrying(work, "record the export")

    def row_counts(self) -> dict[str, int]:
        """Rows per table (tests use it to show a failed command changed nothing)."""
        from nas.store.models import Base

        with self._read() as s:
            return {t.name: s.scalar(sa.select(sa.func.count()).select_from(t)) or 0
                    for t in Base.metadata.sorted_tables}


def _error_line(error: str | None) -> str | None:
    """A failure's reason as stored: one line of at most 1,000 characters."""
    if not error:
        return None
    line = " ".join(str(error).split())
    return line if len(line) <= 1000 else line[:997] + "..."


def _accuracy(metrics: dict[str, Any]) -> float | None:
    value = metrics.get("accuracy")
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and value == value \
        and abs(value) != float("inf") else None


def _finite(metrics: dict[str, Any]) -> dict[str, Any]:
    """JSON has no NaN or infinity: store them as null."""
    out = {}
    for k, v in metrics.items():
        out[k] = None if isinstance(v, float) and (v != v or v in (float("inf"), float("-inf"))) else v
    return json.loads(json.dumps(out, default=float))


def now() -> dt.datetime:
    return utcnow()


def _decode_all(texts: list[Any]) -> list[Any]:
    """JSON texts (or values a driver already decoded, or NULLs) decoded in one ``json.loads``."""
    if all(isinstance(t, str) for t in texts):
        return json.loads("[" + ",".join(texts) + "]")
    return [json.loads(t) if isinstance(t, str) else t for t in texts]
