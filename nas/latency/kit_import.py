"""Bring your own device, the second half: a new target's profile from what it measured.

``import_results`` takes the CSV that a kit's ``run_kit.py`` wrote (units become the table, the
``fit`` subnets fit the overhead, the ``validate`` subnets are held out and scored), or a plain
table of ``arch,latency_ms`` rows for any space, plain-choice spaces included (a table model
is fitted on it); with known targets or other devices' tables as references, a transfer fitted
on the measured subnets. Every row is checked as it is read: one clear line names the file,
the line and the column of the first bad value.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nas.errors import NasError, quoted
from nas.latency import kit_runner
from nas.latency.build import random_supernet, unit_record
from nas.latency.predictor import UnitPredictor, predictor_for, require_net_space
from nas.latency.profile import Profile, assemble
from nas.latency.targets import BUILTIN
from nas.latency.transfer import transfer_references
from nas.latency.validate import score_predictions
from nas.space import Arch, SearchSpace
from nas.supernet.to_onnx import to_onnx
from nas.supernet.units import all_units, unit_module

MAX_ROWS = 20_000  # measurements one import takes (a kit has a few hundred)
MIN_MS, MAX_MS = 1e-6, 1e7  # a latency under a nanosecond or over hours is a unit error, not a measurement


def _read_csv(path: str | Path) -> list[dict[str, str]]:
    from nas.csvfile import read_rows

    return read_rows(path, "results file", max_rows=MAX_ROWS)


def _number(row: dict[str, str], column: str, line: int, source: str) -> float:
    raw = row.get(column)
    try:
        value = float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise NasError(f"{source} line {line}: column {column!r} is not a number ({quoted(raw)})") from None
    if not math.isfinite(value) or value <= 0:
        raise NasError(f"{source} line {line}: column {column!r} must be a positive number, got {quoted(raw)}")
    if not MIN_MS <= value <= MAX_MS:
        raise NasError(f"{source} line {line}: column {column!r} is {raw}, not a latency in milliseconds "
                       f"(between {MIN_MS:g} and {MAX_MS:g})")
    return value


def _optional_number(row: dict[str, str], column: str, line: int, source: str) -> float:
    """A non-negative statistic such as ``cv`` (0 when the column is empty or absent)."""
    raw = row.get(column)
    if raw in (None, ""):
        return 0.0
    try:
        value = float(raw)  # type: ignore[arg-type]
    except ValueError:
        raise NasError(f"{source} line {line}: column {column!r} is not a number ({quoted(raw)})") from None
    if not math.isfinite(value) or value < 0:
        raise NasError(f"{source} line {line}: column {column!r} must be a non-negative number, got {quoted(raw)}")
    return value


def _unique(rows: list[tuple[Arch, float, int]], source: str) -> list[tuple[Arch, float, int]]:
    """One row per arch: a repeat with the same time is dropped, one with another time refused."""
    seen: dict[Arch, tuple[float, int]] = {}
    out = []
    for arch, ms, line in rows:
        if arch in seen:
            first_ms, first_line = seen[arch]
            if abs(first_ms - ms) > 1e-9 * max(first_ms, ms):
                raise NasError(f"{source} line {line}: arch {arch.to_str()} is also on line {first_line} with "
                               f"another time ({ms:g} ms against {first_ms:g} ms): keep one measurement per arch")
            continue
        seen[arch] = (ms, line)
        out.append((arch, ms, line))
    return out


def _finite_number(raw: str | None) -> bool:
    try:
        return raw is not None and math.isfinite(float(raw)) and float(raw) > 0
    except ValueError:
        return False


def _require_columns(rows: list[dict[str, str]], columns: tuple[str, ...], source: str) -> None:
    missing = [c for c in columns if c not in rows[0]]
    if missing:
        raise NasError(f"{source} lacks the column(s) {', '.join(missing)} (has: {', '.join(rows[0])})")


def import_results(path: str | Path, target: str, space: SearchSpace | None = None,
                   transfer_from: Sequence[str] = (), reference_tables: Sequence[str | Path] = ()) -> Profile:
    """A profile for the new target ``target`` from a kit's CSV or from a table of (arch, latency_ms);
    with ``transfer_from`` (known targets) or ``reference_tables`` (CSVs of other devices), a
    transfer from those references fitted on the measured whole archs (nas.latency.transfer)."""
    if target in BUILTIN:
        raise NasError(f"{target!r} is a built-in target; import under a new name (for example my-{target})")
    if not target or not all(c.isalnum() or c in "-_." for c in target) or target.startswith("."):
        raise NasError(f"{target!r} is not a usable target name (letters, digits, '-', '_', '.')")
    rows = _read_csv(path)
    source = Path(path).name
    kit = "kind" in rows[0] or "key" in rows[0]
    if transfer_from or reference_tables:
        return _import_transfer(rows, source, target, space, kit, transfer_from, reference_tables)
    if kit:
        return _import_kit(rows, source, target, space)
    archs = [{"arch": a.to_str(), "median_ms": ms} for a, ms in _table_rows(rows, source, space)]
    profile = assemble(target, space, "table", meta={"device": f"imported from {source}"},
                       archs=archs, model={"kind": "random forest on the space's parameters"})
    predictor_for(profile, space)  # fails early on too few rows
    return profile


def measured_rows(path: str | Path, space: SearchSpace) -> list[tuple[Arch, float]]:
    """(arch, ms) rows of a table of arch,latency_ms or of a kit's results (its whole archs)."""
    rows = _read_csv(path)
    source = Path(path).name
    if "kind" not in rows[0] and "key" not in rows[0]:
        return _table_rows(rows, source, space)
    return [(a, ms) for a, ms, _ in _kit_archs(rows, source, _kit_space(rows, source, space))]


def _kit_archs(rows: list[dict[str, str]], source: str, space: SearchSpace) -> list[tuple[Arch, float, str]]:
    """The whole archs a kit measured: (arch, median ms, role)."""
    out, roles = [], {}
    for i, row in enumerate(rows, start=2):
        if row["kind"] == "arch":
            try:
                arch = space.parse(row["key"])
            except NasError as exc:
                raise NasError(f"{source} line {i}: {exc}") from None
            out.append((arch, _number(row, "median_ms", i, source), i))
            roles[i] = row["role"]
    return [(a, ms, roles[i]) for a, ms, i in _unique(out, source)]


def _table_rows(rows: list[dict[str, str]], source: str, space: SearchSpace | None) -> list[tuple[Arch, float]]:
    """(arch, latency_ms) rows of a plain table, each arch checked against ``space``."""
    _require_columns(rows, ("arch", "latency_ms"), source)
    if space is None:
        raise NasError("a table of arch,latency_ms needs --space to say which space its archs belong to")
    out = []
    for i, row in enumerate(rows, start=2):
        try:
            arch = space.parse(row["arch"])
        except NasError as exc:
            raise NasError(f"{source} line {i}: {exc}") from None
        out.append((arch, _number(row, "latency_ms", i, source), i))
    return [(a, ms) for a, ms, _ in _unique(out, source)]


def _kit_space(rows: list[dict[str, str]], source: str, space: SearchSpace | None) -> SearchSpace:
    """The space a kit's CSV was measured for (its own column; ``space`` when given must match)."""
    from nas.space import load

    _require_columns(rows, ("space", "kind", "key", "role", "median_ms"), source)
    names = {r["space"] for r in rows}
    if len(names) != 1:
        raise NasError(f"{source} mixes spaces: {', '.join(sorted(names))}")
    name = names.pop()
    if space is None:
        try:
            space = load(name)
        except NasError:
            raise NasError(f"{source} was measured for space {name!r}, which is not shipped: pass --space PATH") from None
    if space.name != name:
        raise NasError(f"{source} was measured for space {name!r}, not {space.name!r}")
    return space


def _reference_tables(paths: Sequence[str | Path], space: SearchSpace) -> dict[str, list[tuple[Arch, float]]]:
    """Each numeric column of each table (``arch`` + one column per device) as a reference's rows."""
    out: dict[str, list[tuple[Arch, float]]] = {}
    for path in paths:
        rows = _read_csv(path)
        source = Path(path).name
        columns = [c for c in rows[0] if c != "arch"]
        _require_columns(rows, ("arch",), source)
        if not columns:
            raise NasError(f"{source} has no latency column besides 'arch' (one column per reference device)")
        archs = []
        for i, row in enumerate(rows, start=2):
            try:
                archs.append(space.parse(row["arch"]))
            except NasError as exc:
                raise NasError(f"{source} line {i}: {exc}") from None
        for column in columns:
            name = f"{Path(path).stem}:{column}"
            out[name] = [(a, _number(row, column, i, source)) for i, (a, row) in enumerate(zip(archs, rows, strict=True), start=2)]
    return out


def _import_transfer(rows: list[dict[str, str]], source: str, target: str, space: SearchSpace | None, kit: bool,
                     transfer_from: Sequence[str], reference_tables: Sequence[str | Path]) -> Profile:
    from nas.latency.transfer import fit_transfer, reference_json

    held: list[tuple[Arch, float]] = []
    if kit:  # a full kit's units are not needed: the references stand for them
        space = _kit_space(rows, source, space)
        archs = _kit_archs(rows, source, space)
        fit = [(a, ms) for a, ms, role in archs if role != "validate"]
        held = [(a, ms) for a, ms, role in archs if role == "validate"]
    else:
        fit = _table_rows(rows, source, space)
    assert space is not None
    references: dict[str, Any] = {r.name: r for r in transfer_references(space, transfer_from)} if transfer_from else {}
    references.update(_reference_tables(reference_tables, space))
    predictor = fit_transfer(space, fit, references, target)
    validation: dict[str, Any] = {}
    predicted = predictor.predict([a for a, _ in held])
    if len(held) >= 2:
        validation = score_predictions(np.array([ms for _, ms in held]), predicted, 0.0, None)
    device = (rows[0].get("device") if kit else "") or f"imported from {source}"
    return assemble(
        target, space, "transfer",
        meta={"device": device, "runtime": rows[0].get("runtime", "") if kit else "", "imported_from": source,
              "transfer_from": [r.name for r in predictor.references]},
        archs=[{"arch": a.to_str(), "median_ms": ms} for a, ms in predictor.measured],
        model={"kind": "transfer: geometric mean of a log-linear ridge and non-negative per-family scales "
                       "over the references", "references": {r.name: reference_json(r) for r in predictor.references}},
        validation=validation,
        validation_rows=[{"arch": a.to_str(), "measured_ms": ms, "predicted_ms": float(p)}
                         for (a, ms), p in zip(held, predicted, strict=True)],
    )


def _import_kit(rows: list[dict[str, str]], source: str, target: str, space: SearchSpace | None) -> Profile:
    space = _kit_space(rows, source, space)
    space = require_net_space(space)
    units: dict[str, dict[str, Any]] = {}
    fit_rows, held_rows = [], []
    known = {u.key: u for u in all_units(space)}
    levels = [float(r["probe_us"]) for r in rows if _finite_number(r.get("probe_us"))]
    level = float(np.median(levels)) if levels else None  # the device's speed during the run (diagnostic)
    for i, row in enumerate(rows, start=2):
        ms = _number(row, "median_ms", i, source)
        cv = _optional_number(row, "cv", i, source)
        if row["kind"] == "unit":
            if row["key"] not in known:
                raise NasError(f"{source} line {i}: unit {quoted(row['key'])} is not a unit of space {space.name!r}")
            if row["key"] in units and units[row["key"]]["median_ms"] != ms:
                raise NasError(f"{source} line {i}: unit {row['key']} is measured twice with different times")
            units[row["key"]] = {"median_ms": ms, "cv": cv, "noisy": row.get("noisy") == "1"}
            family, *sizes = kit_runner.UNIT_STATS
            if row.get(family) and all(_finite_number(row.get(k)) for k in sizes):
                units[row["key"]].update({family: row[family], **{k: int(float(row[k])) for k in sizes}})
        elif row["kind"] == "arch":
            try:
                arch = space.parse(row["key"])
            except NasError as exc:
                raise NasError(f"{source} line {i}: {exc}") from None
            (held_rows if row["role"] == "validate" else fit_rows).append((arch, ms, cv, i))
        else:
            raise NasError(f"{source} line {i}: kind must be unit or arch, got {quoted(row['kind'])}")
    in_order = sorted(((a, ms, line) for a, ms, _, line in fit_rows + held_rows), key=lambda r: r[2])
    kept = {line for _, _, line in _unique(in_order, source)}  # a repeat with the same time counts once
    fit_rows = [(a, ms, cv) for a, ms, cv, line in fit_rows if line in kept]
    held_rows = [(a, ms, cv) for a, ms, cv, line in held_rows if line in kept]
    if len(fit_rows) < 5:
        raise NasError(f"{source} has {len(fit_rows)} 'fit' subnets; the overhead model needs at least 5")
    # Units the CSV lacks (or lacks statistics for) are analysed here; the family model
    # then estimates the missing ones' latency.
    missing = [k for k in known if k not in units]
    need_stats = missing + [k for k, r in units.items() if "params" not in r]
    if need_stats:
        net = random_supernet(space)
        for key in need_stats:
            module, example = unit_module(net, known[key])
            record = unit_record(known[key], module, to_onnx(module, torch.zeros(example)))
            units.setdefault(key, {}).update({k: record[k] for k in kit_runner.UNIT_STATS})
    predictor = UnitPredictor.fitted(target, space, space.task.input_shape, units, [a for a, _, _ in fit_rows], [m for _, m, _ in fit_rows])
    validation: dict[str, Any] = {}
    if len(held_rows) >= 2:
        pred = predictor.predict([a for a, _, _ in held_rows])
        meas = np.array([m for _, m, _ in held_rows])
        validation = score_predictions(meas, pred, float(np.median([c for _, _, c in held_rows])), None)
    device = rows[0].get("device") or "unknown device"
    return assemble(
        target, space, "measured",
        meta={"device": device, "runtime": rows[0].get("runtime", ""), "imported_from": source,
              "estimated_units": len(missing), "probe_us": level},
        units=units,
        archs=[{"arch": a.to_str(), "median_ms": m, "cv": c} for a, m, c in fit_rows],
        model=predictor.model_json(),
        validation=validation,
    )
