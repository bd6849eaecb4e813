"""An int8 cost model for Cortex-M boards that works on any ONNX graph.

Latency: each executed op gets an instruction count from the shape of the CMSIS-NN int8
kernel that would run it; a board turns instructions into cycles with one calibrated number,
its cycles per instruction (CPI), fitted on the measured MLPerf Tiny v1.0 results. Peak SRAM
and flash come from :mod:`nas.graph` (int8 activations by liveness, int8 weights).

The per-op constants below are derived from the inner loops of CMSIS-NN's s8 kernels, not
fitted to the calibration data (three models cannot identify per-op constants; see the
README). Fitting only the CPI per board keeps leave-one-out honest: the CPI is fitted on two
models and the third is predicted.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nas.errors import NasError
from nas.graph import GraphStats, OpInfo
from nas.latency.boards import BOARDS, Board, board_of  # noqa: F401 (re-exported)

# -- instruction counts per op (CMSIS-NN s8 kernels) ---------------------------------------
# Convolution (im2col + 2x2-blocked q15 GEMM): 16 MACs per inner iteration take 8 SMLAD,
# 2 weight loads with sign extension (3 instructions each) and 4 column loads: 18/16.
CONV_PER_MAC = 1.125
# im2col expands each input element once per output pixel and kernel tap (load, SXTB16, store).
IM2COL_PER_ELEMENT = 1.5
# Depthwise (4 channels at a time): per 4 MACs, 2 loads, 4 sign extensions, 2 SMLAD and
# 2 address updates; no reuse across output channels.
DWCONV_PER_MAC = 2.5
# Matrix-vector (fully connected, 2 rows at a time): per 8 MACs, 1 input load + 2 SXTB16,
# 2 weight loads + 4 SXTB16, 4 SMLAD.
DENSE_PER_MAC = 1.625
# Requantising one output (multiply-high, shift, add offset, clamp, store).
REQUANT_PER_OUTPUT = 20.0
# Per element of other ops.
ELEMENTWISE = {
    "Add": 10.0, "Sub": 10.0, "Mul": 10.0,  # both inputs requantised
    "Div": 20.0, "Sqrt": 20.0, "Pow": 20.0, "Reciprocal": 20.0,
    "Relu": 0.0, "Clip": 0.0,  # fused into the producing kernel's clamp
    "Exp": 6.0, "Erf": 6.0, "Sigmoid": 6.0, "Tanh": 6.0, "Softplus": 6.0, "Log": 6.0, "Neg": 2.0,
    "Where": 2.0, "Equal": 2.0, "Not": 1.0, "Less": 2.0, "Greater": 2.0, "CumSum": 3.0,
}
DEFAULT_ELEMENTWISE = 6.0
NORM_PER_ELEMENT = 15.0  # mean, variance, normalise, requantise
SOFTMAX_PER_ELEMENT = 40.0  # max, exp by table, sum, divide, requantise
POOL_PER_INPUT = 2.0
MOVE_PER_ELEMENT = 1.0
VIEW_OPS = {"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity",  # no data movement
            "QuantizeLinear", "DequantizeLinear"}  # fused into the int8 kernels around them


def op_instructions(op: OpInfo) -> float:
    """Estimated Cortex-M instructions to run one op with CMSIS-NN-style int8 kernels."""
    out = sum(math.prod(s) for s in op.output_shapes)
    if op.kind == "conv":
        weight = op.input_shapes[1]
        k_in = math.prod(weight[1:])  # Cin/groups x kernel taps
        pixels = math.prod(op.output_shapes[0][2:]) * op.output_shapes[0][0]
        pointwise = math.prod(weight[2:]) == 1
        im2col = 0.0 if pointwise else IM2COL_PER_ELEMENT * pixels * k_in
        return CONV_PER_MAC * op.macs + im2col + REQUANT_PER_OUTPUT * out
    if op.kind == "dwconv":
        return DWCONV_PER_MAC * op.macs + REQUANT_PER_OUTPUT * out
    if op.kind in ("dense", "matmul"):
        rows = math.prod(op.output_shapes[0][:-1])
        # Many rows sharing one weight matrix run as a GEMM (1x1-conv kernel), one row as matrix-vector.
        per_mac = CONV_PER_MAC if rows >= 4 else DENSE_PER_MAC
        return per_mac * op.macs + REQUANT_PER_OUTPUT * out
    if op.kind == "pool":
        return POOL_PER_INPUT * op.elements
    if op.kind == "softmax":
        return SOFTMAX_PER_ELEMENT * op.elements
    if op.kind == "norm":
        return NORM_PER_ELEMENT * op.elements
    if op.kind == "move":
        return 0.0 if op.op_type in VIEW_OPS else MOVE_PER_ELEMENT * op.elements
    return ELEMENTWISE.get(op.op_type, DEFAULT_ELEMENTWISE) * op.elements


def graph_instructions(stats: GraphStats) -> float:
    return float(sum(op_instructions(op) for op in stats.ops))


@dataclass(frozen=True)
class McuEstimate:
    latency_ms: float
    cycles: float
    peak_sram_kb: float
    flash_kb: float
    fits: bool


@dataclass(frozen=True)
class McuModel:
    """A calibrated board: instructions -> cycles -> milliseconds."""

    board: Board
    cpi: float

    def estimate(self, stats: GraphStats) -> McuEstimate:
        return self.from_counts(graph_instructions(stats), stats.peak_activation_bytes, stats.flash_bytes)

    def from_counts(self, instructions: float, peak_bytes: float, flash_bytes: float) -> McuEstimate:
        cycles = self.cpi * instructions
        peak_kb, flash_kb = peak_bytes / 1024, flash_bytes / 1024
        return McuEstimate(
            latency_ms=cycles / (self.board.clock_mhz * 1e3),
            cycles=cycles,
            peak_sram_kb=peak_kb,
            flash_kb=flash_kb,
            fits=peak_kb <= self.board.sram_kb and flash_kb <= self.board.flash_kb,
        )


def calibration_rows(path: str | Path | None = None) -> list[dict[str, str]]:
    """The measured MLPerf Tiny rows (board, core, clock, model, latency_ms)."""
    path = Path(path) if path else calibration_file()
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def calibration_file() -> Path:
    from nas.latency.profile import profiles_dirs

    for root in profiles_dirs():
        candidate = root / "mcu" / "mlperf_tiny_v1.0_mcu_latency.csv"
        if candidate.is_file():
            return candidate
    raise NasError("the MLPerf Tiny calibration table is missing from latency_models/mcu/")


def reference_instructions() -> dict[str, float]:
    """Instruction estimates of the three reference models (built and analysed once)."""
    from nas.graph import analyze
    from nas.latency.reference_models import REFERENCE_MODELS, reference_onnx

    return {name: graph_instructions(analyze(reference_onnx(name))) for name in REFERENCE_MODELS}


def fit_cpi(instructions: dict[str, float], measured_cycles: dict[str, float]) -> float:
    """The CPI minimising squared log error (the geometric mean of measured/estimated)."""
    ratios = [measured_cycles[m] / instructions[m] for m in measured_cycles]
    return float(np.exp(np.mean(np.log(ratios))))


@dataclass(frozen=True)
class Calibration:
    target: str
    cpi: float
    fit_error_pct: dict[str, float]
    loo_error_pct: dict[str, float]


def calibrate(target: str, rows: list[dict[str, str]] | None = None,
              instructions: dict[str, float] | None = None) -> Calibration:
    """Fit the board's CPI on all its models and report each model's leave-one-out error."""
    board = board_of(target)
    rows = rows if rows is not None else calibration_rows()
    instructions = instructions or reference_instructions()
    cycles = {r["model"]: float(r["latency_ms"]) * float(r["clock_mhz"]) * 1e3
              for r in rows if r["core"] == board.core and r["model"] in instructions}
    if len(cycles) < 2:
        raise NasError(f"the calibration table has fewer than two models for {board.core}")
    cpi = fit_cpi(instructions, cycles)
    fit_err = {m: 100 * (cpi * instructions[m] - c) / c for m, c in cycles.items()}
    loo = {}
    for held, c in cycles.items():
        rest = {m: v for m, v in cycles.items() if m != held}
        loo[held] = 100 * (fit_cpi(instructions, rest) * instructions[held] - c) / c
    return Calibration(target, cpi, fit_err, loo)
