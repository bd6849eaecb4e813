"""Building latency profiles: measure (or cost) every unit, measure a few whole subnets, fit.

Measured targets use a randomly initialised supernet of the space: latency depends on shapes,
not on trained weights (the one exception, which tokens an MoE routes where, averages out).
A unit's statistics (MACs, elements, memory, MCU instructions) come from its ONNX graph and do
not depend on the target, so a build takes them from any profile of the same space and input
shape that has them, and exports only the units no profile describes yet.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch

from nas.errors import NasError
from nas.graph import analyze
from nas.latency.mcu import calibrate, graph_instructions
from nas.latency.measure import (
    CostedTarget,
    MeasureConfig,
    MeasuringTarget,
    Meter,
    Progress,
    reference_level,
)
from nas.latency.predictor import UnitPredictor, require_net_space, unit_family
from nas.latency.profile import Profile, assemble, list_profiles, load_profile, profile_name
from nas.space import NetArch, NetSpace, SearchSpace
from nas.supernet import Supernet, SupernetConfig
from nas.supernet.metrics import flash_bytes
from nas.supernet.to_onnx import to_onnx
from nas.supernet.units import Unit, all_units, unit_module

RECORD_FIELDS = ("family", "macs", "elements", "ops", "instructions", "peak_bytes", "flash_bytes", "params")


def versions() -> dict[str, str]:
    import onnx
    import onnxruntime

    import nas

    return {"nas": nas.__version__, "torch": torch.__version__, "onnx": onnx.__version__,
            "onnxruntime": onnxruntime.__version__, "numpy": np.__version__}


def random_supernet(space: NetSpace, seed: int = 0, input_shape: tuple[int, ...] | None = None) -> Supernet:
    torch.manual_seed(seed)
    channels = input_shape[0] if input_shape else None
    return Supernet(SupernetConfig.from_space(space, in_channels=channels)).eval()


def build_archs(space: NetSpace, n: int, seed: int) -> list[NetArch]:
    """The whole subnets a build measures: the extremes and ``n - 2`` random ones."""
    extremes = [space.largest(), space.smallest()]
    return extremes + space.sample_unique(random.Random(seed), max(0, n - 2), exclude=set(extremes))


def unit_record(unit: Unit, module: torch.nn.Module, data: bytes) -> dict[str, Any]:
    """What a profile keeps of a unit besides its latency: work, MCU instructions, memory."""
    stats = analyze(data)
    return {"family": unit_family(unit), "macs": stats.macs,
            "elements": sum(op.elements for op in stats.ops), "ops": len(stats.ops),
            "instructions": graph_instructions(stats), "peak_bytes": stats.peak_activation_bytes,
            "flash_bytes": flash_bytes(module), "params": sum(p.numel() for p in module.parameters())}


def known_unit_records(space: NetSpace, shape: tuple[int, ...]) -> dict[str, dict[str, Any]]:
    """Unit statistics any existing profile of ``space`` at ``shape`` already holds (any target)."""
    name = profile_name(space, shape)
    out: dict[str, dict[str, Any]] = {}
    for target, profile_space, _ in list_profiles():
        if profile_space != name:
            continue
        try:
            profile, _ = load_profile(target, space, input_shape=shape)
        except NasError:
            continue  # built for another version of the space
        for key, row in profile.units.items():
            if key not in out and all(k in row for k in RECORD_FIELDS):
                out[key] = {k: row[k] for k in RECORD_FIELDS}
    return out


class _UnitGraphs:
    """Each unit's module (weights from one random supernet) and, when needed, its ONNX graph and statistics."""

    def __init__(self, space: NetSpace, shape: tuple[int, ...], seed: int) -> None:
        self.net = random_supernet(space, seed, shape)
        self.known = known_unit_records(space, shape)

    def record(self, unit: Unit, need_graph: bool) -> tuple[torch.nn.Module, tuple[int, ...], bytes | None, dict[str, Any]]:
        module, example = unit_module(self.net, unit)
        if unit.key in self.known and not need_graph:
            return module, example, None, dict(self.known[unit.key])
        data = to_onnx(module, torch.zeros(example))
        return module, example, data, unit_record(unit, module, data)


def check_shape(space: NetSpace, input_shape: tuple[int, ...] | None) -> tuple[int, ...]:
    shape = tuple(input_shape or space.task.input_shape)
    if len(shape) != len(space.task.input_shape) or any(d < 1 for d in shape):
        form = "C,H,W" if space.task.kind == "image" else "C,L"
        raise NasError(f"input shape {list(shape)} does not fit a {space.task.kind} space (expected {form})")
    return shape


def build_measured(target: MeasuringTarget, space: SearchSpace, meter: Meter, n_archs: int, seed: int, progress: Progress,
                   input_shape: tuple[int, ...] | None) -> Profile:
    """Measure every unit and ``n_archs`` whole subnets of ``space`` on ``target`` and fit its predictor."""
    space = require_net_space(space)
    shape = check_shape(space, input_shape)
    if n_archs < 5:
        raise NasError(f"--archs must be at least 5 to fit the overhead model, got {n_archs}")
    config = meter.config
    graphs = _UnitGraphs(space, shape, seed)
    units = all_units(space, shape)
    advance = progress(f"{target.name}: measuring {len(units)} units", len(units))
    records: dict[str, dict[str, Any]] = {}
    unit_measurements = {}
    for unit in units:
        module, example, data, record = graphs.record(unit, target.times_onnx)
        unit_measurements[unit.key] = m = target.measure(module, example, meter, data)
        records[unit.key] = {**record, **m.as_dict()}
        advance()

    archs = build_archs(space, n_archs, seed)
    advance = progress(f"{target.name}: measuring {len(archs)} whole subnets", len(archs))
    arch_measurements = []
    for arch in archs:
        arch_measurements.append(target.measure(graphs.net.extract(arch, shape), (1, *shape), meter))
        advance()
    # The probe level says how fast the machine was during the build (a diagnostic; validation
    # compares speeds with the build's own subnets, see nas.latency.validate).
    level = reference_level(list(unit_measurements.values()) + arch_measurements)
    arch_rows = [{"arch": a.to_str(), **m.as_dict()} for a, m in zip(archs, arch_measurements, strict=True)]

    predictor = UnitPredictor.fitted(target.name, space, shape, records, archs, [r["median_ms"] for r in arch_rows])
    families = predictor.families
    fitted = predictor.predict(archs)
    measured = np.array([r["median_ms"] for r in arch_rows])
    family_err = [abs(families.predict(r["family"], r) - r["median_ms"]) / r["median_ms"] for r in records.values()]
    return assemble(
        target.name, space, "measured", input_shape=shape,
        meta={**target.describe(config), "versions": versions(), "warmup": config.warmup, "repeats": config.repeats,
              "seed": seed, "probe_us": level},
        units=records,
        archs=arch_rows,
        model={
            **predictor.model_json(),
            "fit_mape_pct": float(100 * np.mean(np.abs(fitted - measured) / measured)),
            "family_mape_pct": float(100 * np.mean(family_err)),
            "noisy_units": sum(bool(r["noisy"]) for r in records.values()),
            "guard": meter.guard_report(),
        },
    )


def build_costed(target: CostedTarget, space: SearchSpace, progress: Progress, input_shape: tuple[int, ...] | None) -> Profile:
    """Cost every unit of ``space`` with ``target``'s int8 model (instructions, peak SRAM, flash)."""
    space = require_net_space(space)
    shape = check_shape(space, input_shape)
    calibration = calibrate(target.name)
    graphs = _UnitGraphs(space, shape, 0)
    units = all_units(space, shape)
    advance = progress(f"{target.name}: costing {len(units)} units", len(units))
    records = {}
    for unit in units:
        records[unit.key] = graphs.record(unit, need_graph=False)[3]
        advance()
    return assemble(
        target.name, space, "mcu", input_shape=shape,
        meta={**target.describe(MeasureConfig()), "versions": versions()},
        units=records,
        model={"cpi": calibration.cpi, "fit_error_pct": calibration.fit_error_pct,
               "loo_error_pct": calibration.loo_error_pct},
    )
