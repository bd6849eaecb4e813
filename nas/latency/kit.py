"""Bring your own device: export a self-contained measurement kit, import what it measured.

``write_kit`` zips every unit of a space and a set of whole subnets as ONNX files, a
manifest and ``run_kit.py`` (:mod:`nas.latency.kit_runner`, which needs only numpy and
onnxruntime). ``import_results`` turns the runner's CSV into a profile for a new target:
units become the table, the ``fit`` subnets fit the overhead, the ``validate`` subnets are
held out and scored. It also accepts a plain table of ``arch,latency_ms`` rows for any
space, plain-choice spaces included, and fits a table model on it.
"""

from __future__ import annotations

import csv
import datetime as _dt
import io
import json
import math
import random
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nas.errors import NasError
from nas.latency import kit_runner
from nas.latency.build import build_archs, random_supernet, unit_record, versions
from nas.latency.measure import probe_graph
from nas.latency.predictor import FamilyModel, UnitPredictor, from_profile, require_net_space
from nas.latency.profile import Profile, space_hash
from nas.latency.targets import BUILTIN
from nas.latency.validate import summarise
from nas.space import SearchSpace
from nas.supernet.to_onnx import to_onnx
from nas.supernet.units import all_units, unit_module

KIT_README = """nas latency kit for space {space}
==========================================

1. Copy this folder to the device and install numpy and onnxruntime there
   (pip install numpy onnxruntime).
2. Run:  python run_kit.py            (options: --threads N --repeats N --batch N --out FILE)
3. Bring results.csv back and run:   nas latency import results.csv --target NAME

{units} unit graphs and {archs} whole subnets ({fit} to fit the overhead, {validate} held out).
"""


def write_kit(space: SearchSpace, out: str | Path, n_fit: int = 30, n_validate: int = 20, seed: int = 0,
              progress=None) -> Path:
    """Write a kit zip to ``out`` (every unit + ``n_fit`` + ``n_validate`` whole subnets)."""
    space = require_net_space(space)
    out = Path(out)
    if out.suffix != ".zip":
        raise NasError(f"kit output {str(out)!r} must end in .zip")
    if not out.parent.exists():
        raise NasError(f"output folder {str(out.parent)!r} does not exist")
    if n_fit < 5 or n_validate < 0:
        raise NasError("a kit needs at least 5 subnets to fit the overhead and a non-negative number to validate")
    net = random_supernet(space, seed)
    shape = space.task.input_shape
    units = all_units(space)
    fit = build_archs(space, n_fit, seed)
    held = space.sample_unique(random.Random(seed + 1), n_validate, exclude=set(fit))
    manifest: dict[str, Any] = {
        "space": space.name, "space_hash": space_hash(space), "input_shape": list(shape),
        "created": _dt.date.today().isoformat(), "versions": versions(), "units": [], "archs": [],
    }
    total = len(units) + len(fit) + len(held)
    advance = progress(f"writing a kit of {total} graphs", total) if progress else (lambda: None)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        for i, unit in enumerate(units):
            module, example = unit_module(net, unit)
            name = f"units/{i:04d}.onnx"  # names are ours, never derived from user strings
            data = to_onnx(module, torch.zeros(example))
            z.writestr(name, data)
            record = unit_record(unit, module, data)
            manifest["units"].append({"file": name, "key": unit.key, **{k: record[k] for k in kit_runner.UNIT_STATS}})
            advance()
        for role, archs in (("fit", fit), ("validate", held)):
            for j, arch in enumerate(archs):
                name = f"archs/{role}-{j:04d}.onnx"
                z.writestr(name, to_onnx(net.extract(arch, shape), torch.zeros(1, *shape)))
                manifest["archs"].append({"file": name, "arch": arch.to_str(), "role": role})
                advance()
        z.writestr("manifest.json", json.dumps(manifest, indent=1))
        z.writestr("run_kit.py", Path(kit_runner.__file__).read_text())
        z.writestr("probe.onnx", probe_graph())
        z.writestr("README.txt", KIT_README.format(space=space.name, units=len(units), archs=len(fit) + len(held),
                                                    fit=len(fit), validate=len(held)))
    out.write_bytes(buffer.getvalue())
    return out


def _read_csv(path: str | Path) -> list[dict[str, str]]:
    path = Path(path)
    if not path.is_file():
        raise NasError(f"results file {str(path)!r} does not exist")
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise NasError(f"cannot read {str(path)!r} as CSV: {exc}") from None
    if not rows:
        raise NasError(f"{str(path)!r} has no data rows")
    return rows


def _number(row: dict[str, str], column: str, line: int, source: str) -> float:
    raw = row.get(column)
    try:
        value = float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise NasError(f"{source} line {line}: column {column!r} is not a number ({raw!r})") from None
    if not math.isfinite(value) or value <= 0:
        raise NasError(f"{source} line {line}: column {column!r} must be a positive number, got {raw!r}")
    return value


def _finite_number(raw: str | None) -> bool:
    try:
        return raw is not None and math.isfinite(float(raw)) and float(raw) > 0
    except ValueError:
        return False


def _require_columns(rows: list[dict[str, str]], columns: tuple[str, ...], source: str) -> None:
    missing = [c for c in columns if c not in rows[0]]
    if missing:
        raise NasError(f"{source} lacks the column(s) {', '.join(missing)} (has: {', '.join(rows[0])})")


def import_results(path: str | Path, target: str, space: SearchSpace | None = None) -> Profile:
    """A profile for the new target ``target`` from a kit's CSV or from a table of (arch, latency_ms)."""
    if target in BUILTIN:
        raise NasError(f"{target!r} is a built-in target; import under a new name (for example my-{target})")
    if not target or not all(c.isalnum() or c in "-_." for c in target) or target.startswith("."):
        raise NasError(f"{target!r} is not a usable target name (letters, digits, '-', '_', '.')")
    rows = _read_csv(path)
    source = Path(path).name
    if "kind" in rows[0] or "key" in rows[0]:
        return _import_kit(rows, source, target, space)
    _require_columns(rows, ("arch", "latency_ms"), source)
    if space is None:
        raise NasError("a table of arch,latency_ms needs --space to say which space its archs belong to")
    archs = []
    for i, row in enumerate(rows, start=2):
        try:
            arch = space.parse(row["arch"])
        except NasError as exc:
            raise NasError(f"{source} line {i}: {exc}") from None
        archs.append({"arch": arch.to_str(), "median_ms": _number(row, "latency_ms", i, source)})
    profile = Profile(target, space.name, "table", space_hash(space), list(getattr(getattr(space, "task", None), "input_shape", ())),
                      meta={"device": f"imported from {source}", "date": _dt.date.today().isoformat()},
                      archs=archs, model={"kind": "random forest on the space's parameters"})
    from_profile(profile, space)  # fails early on too few rows
    return profile


def _import_kit(rows: list[dict[str, str]], source: str, target: str, space: SearchSpace | None) -> Profile:
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
    space = require_net_space(space)
    units: dict[str, dict[str, Any]] = {}
    fit_rows, held_rows = [], []
    known = {u.key: u for u in all_units(space)}
    levels = [float(r["probe_us"]) for r in rows if _finite_number(r.get("probe_us"))]
    level = float(np.median(levels)) if levels else None  # the device's speed during the run (diagnostic)
    for i, row in enumerate(rows, start=2):
        ms = _number(row, "median_ms", i, source)
        if row["kind"] == "unit":
            if row["key"] not in known:
                raise NasError(f"{source} line {i}: unit {row['key']!r} is not a unit of space {space.name!r}")
            units[row["key"]] = {"median_ms": ms, "cv": float(row.get("cv") or 0), "noisy": row.get("noisy") == "1"}
            family, *sizes = kit_runner.UNIT_STATS
            if row.get(family) and all(_finite_number(row.get(k)) for k in sizes):
                units[row["key"]].update({family: row[family], **{k: int(float(row[k])) for k in sizes}})
        elif row["kind"] == "arch":
            try:
                arch = space.parse(row["key"])
            except NasError as exc:
                raise NasError(f"{source} line {i}: {exc}") from None
            (held_rows if row["role"] == "validate" else fit_rows).append((arch, ms, float(row.get("cv") or 0)))
        else:
            raise NasError(f"{source} line {i}: kind must be unit or arch, got {row['kind']!r}")
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
    measured = [(r["family"], r, r["median_ms"]) for r in units.values() if "median_ms" in r]
    families = FamilyModel.fit(measured)
    shape = space.task.input_shape
    predictor = UnitPredictor(target, space, shape, {k: r["median_ms"] for k, r in units.items() if "median_ms" in r},
                              families=families, unit_stats=units)
    overhead = predictor.fit_overhead([a for a, _, _ in fit_rows], [m for _, m, _ in fit_rows])
    validation: dict[str, Any] = {}
    if len(held_rows) >= 2:
        pred = predictor.predict([a for a, _, _ in held_rows])
        meas = np.array([m for _, m, _ in held_rows])
        validation = summarise(meas, pred, float(np.median([c for _, _, c in held_rows])), None)
    device = rows[0].get("device") or "unknown device"
    return Profile(
        target=target, space=space.name, kind="measured", space_hash=space_hash(space), input_shape=list(shape),
        meta={"device": device, "runtime": rows[0].get("runtime", ""), "imported_from": source,
              "date": _dt.date.today().isoformat(), "estimated_units": len(missing), "probe_us": level},
        units=units,
        archs=[{"arch": a.to_str(), "median_ms": m, "cv": c} for a, m, c in fit_rows],
        model={"overhead": list(overhead), "families": families.coefficients},
        validation=validation,
    )
