"""Latency targets as types: what can be measured or costed, and how.

Every target offers the same small contract:

- ``describe(config)``: the device and runtime a profile records;
- ``measure(module, shape, meter, onnx_bytes)``: one unit or subnet's latency (measured
  targets only; the others say in one line why not);
- ``build(space, ...)``: the profile of a space (measured units and subnets, or costed units);
- ``validate(space, profile, ...)``: the profile's predictor against held-out subnets;
- ``predictor(profile, space)`` and ``load_predictor(space)``: what searches use.

:class:`CpuTarget` runs ONNX graphs in onnxruntime on this CPU, :class:`GpuTarget` runs the
modules on CUDA through PyTorch, :class:`McuTarget` is the calibrated int8 Cortex-M cost model
and :class:`ImportedTarget` a device measured elsewhere (a kit, a table, or a transfer from
known targets). Predictors follow the profile's data (:func:`nas.latency.predictor.predictor_for`),
so a profile shipped to a Ray worker needs no target registry there.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from nas.errors import NasError
from nas.latency.mcu import BOARDS, Board, McuEstimate, McuModel, calibrate
from nas.latency.measure import (
    MeasureConfig,
    Measurement,
    Meter,
    Progress,
    cuda_times,
    host_description,
    summarise,
)
from nas.latency.predictor import Predictor, predictor_for
from nas.latency.profile import Profile, list_profiles, load_profile, read_meta
from nas.space import NetSpace, SearchSpace

if TYPE_CHECKING:
    import torch

    from nas.graph import GraphStats
    from nas.latency.validate import Validation



def no_progress(description: str, total: int) -> Callable[[], None]:
    return lambda: None


def guard_line(report: dict[str, float]) -> str:
    """A build's guard report (:meth:`Meter.guard_report`) as the CLI prints it."""
    return (f"waited {report['waited_s']:.1f} s for fast phases (bound {report['max_wait_s']:.0f} s), "
            f"{report['repeated']} windows repeated, {report['rebaselines']} re-baselines")


class Target(ABC):
    """A device a latency model describes (see the module's docstring for the contract)."""

    kind: ClassVar[str]  # measured, mcu, imported: the profile kind its build writes
    times_onnx: ClassVar[bool] = False  # measures a module's ONNX graph (so a build exports every unit)
    name: str
    description: str

    def status(self) -> str:
        """What is missing for this target here ("" when nothing is)."""
        return ""

    def describe(self, config: MeasureConfig) -> dict[str, Any]:
        return {"device": self.description}

    def measure(self, module: torch.nn.Module, shape: tuple[int, ...], meter: Meter,
                onnx_bytes: bytes | None = None) -> Measurement:
        raise NasError(f"target {self.name!r} cannot be measured on this machine ({self.why_not_measured()})")

    def lm_cost(self, config: MeasureConfig | None = None):
        """How this target costs a language model's unit and subnet graphs (:mod:`nas.latency.lm`)."""
        raise NasError(f"language-model latency is built for cpu, gpu and the MCU boards, not {self.name!r} "
                       "(an imported target has no step graphs to measure)")

    def why_not_measured(self) -> str:
        return "it is not a device of this machine"

    def cost_graph(self, stats: GraphStats) -> McuEstimate:
        """A model's latency from its ONNX graph alone (cost-model targets)."""
        raise NasError(f"target {self.name!r} has no cost model for a bare ONNX graph")

    @abstractmethod
    def build(self, space: SearchSpace, config: MeasureConfig | None = None, *, n_archs: int = 40, seed: int = 0,
              progress: Progress = no_progress, input_shape: tuple[int, ...] | None = None,
              hint: str | None = None) -> Profile:
        """Measure (or cost) ``space`` on this target; ``hint`` is how the user named the space,
        for the commands error messages suggest."""

    def validate(self, space: NetSpace, profile: Profile, n: int = 100, seed: int = 12345,
                 config: MeasureConfig | None = None, progress: Progress = no_progress) -> Validation:
        from nas.latency.validate import validate_measured

        return validate_measured(self, space, profile, n, seed, config, progress)

    def summary(self, profile: Profile) -> str:
        """One line on a freshly built profile, for the CLI."""
        m = profile.model
        return (f"{self.name} on {profile.meta['device']}: {len(profile.units)} units, {len(profile.archs)} subnets; "
                f"overhead a={m['overhead'][0]:.3f} b={m['overhead'][1] * 1000:.1f}us/unit "
                f"c={m['overhead'][2] * 1000:.1f}us{' + size terms' if len(m['overhead']) > 3 else ''}; "
                f"fit MAPE {m['fit_mape_pct']:.2f}%, {m['noisy_units']} noisy units"
                + (f"; {guard_line(m['guard'])}" if m.get("guard") else ""))

    def predictor(self, profile: Profile, space: SearchSpace) -> Predictor:
        return predictor_for(profile, space)

    def load_predictor(self, space: SearchSpace, input_shape: tuple[int, ...] | None = None,
                       hint: str | None = None) -> Predictor:
        """The predictor of this target's profile of ``space`` (NasError naming the build command when there is none)."""
        profile, _ = load_profile(self.name, space, input_shape=input_shape, hint=hint)
        return self.predictor(profile, space)


class _MeasuredHere(Target):
    kind = "measured"

    def build(self, space, config=None, *, n_archs=40, seed=0, progress=no_progress, input_shape=None, hint=None):
        from nas.latency.build import build_measured

        problem = self.status()
        if problem:
            raise NasError(problem)
        return build_measured(self, space, Meter(config), n_archs, seed, progress, input_shape)


class CpuTarget(_MeasuredHere):
    """onnxruntime on this machine's CPU: each unit and subnet timed as its own ONNX graph."""

    name = "cpu"
    description = "onnxruntime on this machine's CPU (CPUExecutionProvider)"
    times_onnx = True

    def describe(self, config: MeasureConfig) -> dict[str, Any]:
        host = host_description(config.threads)
        return {"device": host["cpu"], "runtime": host["runtime"], "threads": host["threads"],
                "cores": host["cores"], "platform": host["platform"], "batch": str(config.batch)}

    def lm_cost(self, config=None):
        from nas.latency import lm

        return lm.OnnxCpuCost(Meter(config or MeasureConfig(min_window_ms=lm.MIN_WINDOW_MS)))

    def measure(self, module, shape, meter, onnx_bytes=None):
        import torch

        shape = (meter.config.batch, *shape[1:])
        if onnx_bytes is None:
            from nas.supernet.to_onnx import to_onnx

            onnx_bytes = to_onnx(module, torch.zeros(shape))
        return meter.onnx(onnx_bytes, shape)


class GpuTarget(_MeasuredHere):
    """CUDA through PyTorch: each unit and subnet timed with CUDA events, no ONNX on the way."""

    name = "gpu"
    description = "CUDA through PyTorch on this machine's GPU"
    extra_warmup = 25  # cuDNN/cuBLAS pick their kernels in the first runs of a shape

    def status(self) -> str:
        import torch

        if not torch.cuda.is_available():
            return "no GPU is present here (torch.cuda.is_available() is False); the gpu target needs one"
        return ""

    def why_not_measured(self) -> str:
        return self.status() or "no GPU"

    def lm_cost(self, config=None):
        from nas.latency import lm

        problem = self.status()
        if problem:
            raise NasError(problem)
        return lm.CudaCost(Meter(config or MeasureConfig(min_window_ms=lm.MIN_WINDOW_MS)))

    def describe(self, config: MeasureConfig) -> dict[str, Any]:
        import torch

        return {"device": torch.cuda.get_device_name(0),
                "runtime": f"torch {torch.__version__} CUDA {torch.version.cuda}", "batch": str(config.batch)}

    def measure(self, module, shape, meter, onnx_bytes=None):
        import torch

        problem = self.status()
        if problem:
            raise NasError(problem)
        config = meter.config
        device = torch.device("cuda")
        module = module.eval().to(device)
        x = torch.from_numpy(np.random.default_rng(0).standard_normal((config.batch, *shape[1:])).astype(np.float32)).to(device)
        previous = torch.backends.cudnn.benchmark
        torch.backends.cudnn.benchmark = True
        try:
            with torch.inference_mode():
                times = cuda_times(lambda: module(x), config.warmup + self.extra_warmup, config.repeats)
        finally:
            torch.backends.cudnn.benchmark = previous
        return summarise(times, config.max_cv)


class McuTarget(Target):
    """The int8 Cortex-M cost model of one board, calibrated on MLPerf Tiny (nothing is measured)."""

    kind = "mcu"

    def __init__(self, board: Board) -> None:
        self.board = board
        self.name = board.target
        self.description = (f"int8 cost model of {board.name} ({board.core} at {board.clock_mhz:.0f} MHz, "
                            f"{board.sram_kb:.0f} KB SRAM, {board.flash_kb:.0f} KB flash)")

    def why_not_measured(self) -> str:
        return "it is a cost model: build computes it, nothing is measured"

    def model(self) -> McuModel:
        return McuModel(self.board, calibrate(self.name).cpi)

    def lm_cost(self, config=None):
        from nas.latency import lm

        return lm.McuCost(self)

    def cost_graph(self, stats: GraphStats) -> McuEstimate:
        return self.model().estimate(stats)

    def describe(self, config: MeasureConfig) -> dict[str, Any]:
        b = self.board
        return {"device": f"{b.name} ({b.core}, {b.clock_mhz:.0f} MHz)",
                "runtime": "int8 cost model calibrated on MLPerf Tiny v1.0 (latency_models/mcu/)",
                "sram_kb": b.sram_kb, "flash_kb": b.flash_kb, "clock_mhz": b.clock_mhz}

    def build(self, space, config=None, *, n_archs=40, seed=0, progress=no_progress, input_shape=None, hint=None):
        from nas.latency.build import build_costed

        return build_costed(self, space, progress, input_shape)

    def validate(self, space, profile, n=100, seed=12345, config=None, progress=no_progress):
        from nas.latency.validate import validate_costed

        return validate_costed(self, space, profile, n, seed, progress)

    def summary(self, profile: Profile) -> str:
        m = profile.model
        loo = ", ".join(f"{k} {v:+.1f}%" for k, v in m["loo_error_pct"].items())
        return f"{self.name}: CPI {m['cpi']:.3f}; calibration leave-one-out error: {loo}"


class ImportedTarget(Target):
    """A device measured elsewhere: a kit's results, a table of (arch, latency), or a transfer
    from known targets (``nas latency import``)."""

    kind = "imported"

    def __init__(self, name: str, meta: dict[str, Any] | None = None) -> None:
        self.name = name
        meta = meta or {}
        self.description = f"{meta.get('device') or 'a device'} (imported{', ' + meta['kind'] if meta.get('kind') else ''})"

    def why_not_measured(self) -> str:
        return "it was measured elsewhere: make a kit with 'nas latency kit' and import its results"

    def build(self, space, config=None, *, n_archs=40, seed=0, progress=no_progress, input_shape=None, hint=None):
        raise NasError(f"target {self.name!r} was measured elsewhere and cannot be built here: run "
                       f"'nas latency kit {hint or space.name} -o kit.zip' on the device and "
                       f"'nas latency import results.csv --target {self.name}'")

    def validate(self, space, profile, n=100, seed=12345, config=None, progress=no_progress):
        raise NasError(f"target {self.name!r} was measured elsewhere: validate it with more measurements "
                       f"('nas latency validate SPACE --target {self.name} --measured FILE.csv')")


BUILTIN: dict[str, Target] = {"cpu": CpuTarget(), "gpu": GpuTarget(),
                              **{name: McuTarget(board) for name, board in BOARDS.items()}}
BUILTIN_NAMES = tuple(BUILTIN)


def known_targets() -> dict[str, Target]:
    """Built-in targets plus every imported one a profile folder names."""
    targets = dict(BUILTIN)
    for target, _, path in list_profiles():
        if target not in targets:
            targets[target] = ImportedTarget(target, read_meta(path.parent))
    return targets


def get_target(name: str) -> Target:
    if name in BUILTIN:
        return BUILTIN[name]
    targets = known_targets()
    if name not in targets:
        raise NasError(f"unknown target {name!r} (known: {', '.join(targets)})")
    return targets[name]
