"""The registry of latency targets and how each one measures a unit or a whole subnet."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import torch

from nas.errors import NasError
from nas.latency.mcu import BOARDS
from nas.latency.measure import (
    MeasureConfig,
    Measurement,
    host_description,
    measure_callable,
    measure_onnx,
)
from nas.latency.profile import list_profiles, profiles_dirs


@dataclass(frozen=True)
class Target:
    name: str
    kind: str  # measured (here), mcu (cost model), imported (a kit run elsewhere)
    description: str


BUILTIN = {
    "cpu": Target("cpu", "measured", "onnxruntime on this machine's CPU (CPUExecutionProvider)"),
    "gpu": Target("gpu", "measured", "CUDA through PyTorch on this machine's GPU"),
    **{name: Target(name, "mcu", f"int8 cost model of {b.name} ({b.core} at {b.clock_mhz:.0f} MHz, "
                                 f"{b.sram_kb:.0f} KB SRAM, {b.flash_kb:.0f} KB flash)")
       for name, b in BOARDS.items()},
}


def known_targets() -> dict[str, Target]:
    """Built-in targets plus every imported one a profile folder names."""
    targets = dict(BUILTIN)
    for target, _, _ in list_profiles():
        if target not in targets:
            targets[target] = Target(target, "imported", "a device measured with a latency kit")
    return targets


def get_target(name: str) -> Target:
    targets = known_targets()
    if name not in targets:
        raise NasError(f"unknown target {name!r} (known: {', '.join(targets)})")
    return targets[name]


def imported_meta(name: str) -> dict:
    for root in profiles_dirs():
        meta = root / name / "meta.json"
        if meta.is_file():
            return json.loads(meta.read_text())
    return {}


def gpu_status() -> tuple[bool, str]:
    if torch.cuda.is_available():
        return True, torch.cuda.get_device_name(0)
    return False, "no GPU is present here (torch.cuda.is_available() is False); the gpu target needs one"


def require_measurable(target: Target) -> None:
    if target.kind != "measured":
        how = ("it is a cost model: build computes it, nothing is measured" if target.kind == "mcu"
               else "it was measured elsewhere with a latency kit")
        raise NasError(f"target {target.name!r} cannot be measured on this machine ({how})")
    if target.name == "gpu":
        ok, reason = gpu_status()
        if not ok:
            raise NasError(reason)


def describe(target: Target, config: MeasureConfig) -> dict[str, str]:
    if target.name == "gpu":
        return {"device": torch.cuda.get_device_name(0), "runtime": f"torch {torch.__version__} CUDA {torch.version.cuda}",
                "batch": str(config.batch)}
    host = host_description(config.threads)
    return {"device": host["cpu"], "runtime": host["runtime"], "threads": host["threads"],
            "cores": host["cores"], "platform": host["platform"], "batch": str(config.batch)}


def measure_module(target: Target, module: torch.nn.Module, shape: tuple[int, ...], config: MeasureConfig,
                   onnx_bytes: bytes | None = None) -> Measurement:
    """Measure one unit or subnet on a measured target (cpu: its ONNX graph; gpu: CUDA in torch)."""
    shape = (config.batch, *shape[1:])
    if target.name == "gpu":
        return _measure_cuda(module, shape, config)
    if onnx_bytes is None:
        from nas.supernet.to_onnx import to_onnx

        onnx_bytes = to_onnx(module, torch.zeros(shape))
    return measure_onnx(onnx_bytes, config, shape)


@torch.no_grad()
def _measure_cuda(module: torch.nn.Module, shape: tuple[int, ...], config: MeasureConfig) -> Measurement:
    device = torch.device("cuda")
    module = module.eval().to(device)
    x = torch.from_numpy(np.random.default_rng(0).standard_normal(shape).astype(np.float32)).to(device)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times: list[float] = []

    def run() -> None:
        start.record()
        module(x)
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))

    measure_callable(run, config)  # the wall-clock numbers include the sync; report CUDA event time instead
    from nas.latency.measure import summarise

    return summarise(np.array(times[-config.repeats:]), config.max_cv)
