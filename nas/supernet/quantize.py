"""int8 subnets: post-training static quantisation of an exported subnet with onnxruntime's
quantisation tools, and its accuracy measured in onnxruntime.

The graph is quantised in QDQ form (QuantizeLinear / DequantizeLinear around each quantised
op): weights per output channel, activations per tensor, both signed int8, the ranges
calibrated on samples of the training split (MinMax). Only the ops that carry the work, the
convolutions and matrix products (``QUANTISED``), are quantised; everything else stays float
and is named in the report (:attr:`Int8Model.kept_float`): the softmax of attention and of
MoE routing, the SSM's exponentials and scan, normalisation, and the elementwise glue. That
is what CMSIS-NN-class runtimes do too (their int8 kernels are conv and fully connected; the
rest runs in float or fixed point) and what the MCU cost model counts.
"""

from __future__ import annotations

import logging
import tempfile
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from nas.errors import NasError, first_line

QUANTISED = ("Conv", "MatMul", "Gemm")
CALIBRATION_SAMPLES = 128


def calibration_sample(x_train: np.ndarray) -> np.ndarray:
    """The training examples static quantisation calibrates on: a fixed random ``CALIBRATION_SAMPLES``."""
    return x_train[np.random.default_rng(0).permutation(len(x_train))[:CALIBRATION_SAMPLES]]


@dataclass(frozen=True)
class Int8Model:
    data: bytes  # the QDQ ONNX model
    kept_float: dict[str, int] = field(default_factory=dict)  # op type -> how many nodes stay float
    quantised: dict[str, int] = field(default_factory=dict)  # op type -> how many nodes are int8


class _Reader:
    """onnxruntime's calibration data reader: one sample at a time."""

    def __init__(self, name: str, samples: np.ndarray) -> None:
        self.name = name
        self.samples = iter(samples.astype(np.float32))

    def get_next(self) -> dict[str, np.ndarray] | None:
        sample = next(self.samples, None)
        return None if sample is None else {self.name: sample[None]}


def quantise(data: bytes, calibration: np.ndarray, op_types: tuple[str, ...] = QUANTISED) -> Int8Model:
    """The int8 (QDQ) version of the float ONNX ``data``, calibrated on ``calibration`` (a batch of
    inputs, such as samples of the training split)."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    from nas.graph import graph_input, load_model

    if calibration is None or len(calibration) == 0:
        raise NasError("int8 quantisation needs calibration samples (the checkpoint's dataset gave none)")
    model = load_model(data)
    name = graph_input(model).name
    with tempfile.TemporaryDirectory(prefix="nas-int8-") as tmp, _quiet_root_logger():
        source, target = Path(tmp) / "float.onnx", Path(tmp) / "int8.onnx"
        source.write_bytes(data)
        try:
            _pre_process(source, Path(tmp) / "prepared.onnx")
            quantize_static(str(source), str(target), _Reader(name, calibration[:CALIBRATION_SAMPLES]),
                            quant_format=QuantFormat.QDQ, op_types_to_quantize=list(op_types), per_channel=True,
                            activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                            calibrate_method=CalibrationMethod.MinMax,
                            extra_options={"ActivationSymmetric": False, "WeightSymmetric": True})
        except Exception as exc:  # onnxruntime raises several types for a graph it cannot calibrate
            raise NasError(f"cannot quantise this subnet to int8: {type(exc).__name__}: {first_line(exc, 160)}") from None
        out = onnx.load(str(target))
    _restore_order(out, model)
    quantised_inputs = {n.output[0] for n in out.graph.node if n.op_type == "DequantizeLinear"}
    kept, done = Counter(), Counter()
    for node in out.graph.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            continue
        if node.op_type in op_types and any(i in quantised_inputs for i in node.input):
            done[node.op_type] += 1
        elif node.op_type not in ("Constant", "Shape", "Reshape", "Unsqueeze", "Squeeze", "Transpose", "Flatten",
                                  "Concat", "Gather", "Slice", "Identity"):
            kept[node.op_type] += 1
    return Int8Model(out.SerializeToString(), dict(sorted(kept.items())), dict(sorted(done.items())))


def _restore_order(quantised, original) -> None:
    """Put the quantised graph's nodes back in the float graph's order (onnxruntime's quantiser
    sorts them breadth first, which runs every MoE expert's first half before any second half:
    a runtime executing that order holds far more activations at once). Each (de)quantisation
    goes just before the first node that reads it; data dependencies always win."""
    import heapq

    position = {n.name: i for i, n in enumerate(original.graph.node) if n.name}
    nodes = list(quantised.graph.node)
    readers: dict[str, list[int]] = {}
    for j, node in enumerate(nodes):
        for name in node.input:
            readers.setdefault(name, []).append(j)
    key = [float(position[n.name]) if n.name in position else None for n in nodes]
    for j in range(len(nodes) - 1, -1, -1):  # (de)quantisations: just before their first reader
        if key[j] is None:
            later = [key[r] for o in nodes[j].output for r in readers.get(o, ()) if key[r] is not None]
            key[j] = (min(later) if later else float(len(nodes))) - 0.5
    producer = {o: j for j, n in enumerate(nodes) for o in n.output}
    waiting = [sum(1 for i in set(n.input) if i in producer) for n in nodes]
    ready = [(key[j], j) for j in range(len(nodes)) if waiting[j] == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        _, j = heapq.heappop(ready)
        order.append(nodes[j])
        for o in nodes[j].output:
            for r in set(readers.get(o, ())):
                waiting[r] -= 1
                if waiting[r] == 0:
                    heapq.heappush(ready, (key[r], r))
    if len(order) == len(nodes):  # else leave the quantiser's order (it is a valid one)
        del quantised.graph.node[:]
        quantised.graph.node.extend(order)


@contextmanager
def _quiet_root_logger():
    """onnxruntime's quantiser logs advice at WARNING on the root logger; it is not the user's concern."""
    root = logging.getLogger()
    previous = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(previous)


def _pre_process(source: Path, prepared: Path) -> None:
    """onnxruntime's recommended pre-processing (shape inference, graph optimisation) in place of
    ``source``; a graph it cannot process is quantised as it is."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    try:
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True, skip_optimization=True)
    except Exception:  # noqa: BLE001 - optional: quantisation works without it
        return
    source.write_bytes(prepared.read_bytes())


def onnx_accuracy(data: bytes, x: np.ndarray, y: np.ndarray, batch: int = 256) -> float:
    """Top-1 accuracy of an ONNX classifier in onnxruntime (CPU) on arrays."""
    from nas.supernet.to_onnx import INPUT_NAME, ort_session

    session = ort_session(data)
    name = session.get_inputs()[0].name or INPUT_NAME
    correct = 0
    for i in range(0, len(x), batch):
        logits = session.run(None, {name: x[i: i + batch].astype(np.float32)})[0]
        correct += int((logits.argmax(-1) == y[i: i + batch]).sum())
    return correct / max(len(x), 1)


# -- quantisation-aware fine-tuning ------------------------------------------------------------------
class _FakeQuantWeight(torch.nn.Module):
    """Per-output-channel symmetric int8 fake quantisation of a weight (straight-through gradient)."""

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        flat = w.detach().reshape(w.shape[0], -1)
        scale = (flat.abs().amax(dim=1) / 127).clamp_min(1e-8).float()
        zero = torch.zeros(w.shape[0], dtype=torch.int32, device=w.device)
        return torch.fake_quantize_per_channel_affine(w, scale, zero, 0, -128, 127)


class _FakeQuantActivation:
    """A forward hook that fake-quantises a module's output to int8 per tensor, over a running
    range (what static calibration fixes later)."""

    def __init__(self, momentum: float = 0.1) -> None:
        self.low = self.high = None
        self.momentum = momentum

    def __call__(self, module: torch.nn.Module, inputs, output: torch.Tensor) -> torch.Tensor:
        low, high = float(output.detach().min()), float(output.detach().max())
        if self.low is None:
            self.low, self.high = low, high
        elif module.training:
            self.low += self.momentum * (low - self.low)
            self.high += self.momentum * (high - self.high)
        scale = max(self.high - self.low, 1e-8) / 255
        zero = int(round(-128 - self.low / scale))
        return torch.fake_quantize_per_tensor_affine(output, scale, max(-128, min(127, zero)), -128, 127)


def finetune_qat(subnet: torch.nn.Module, x: np.ndarray, y: np.ndarray, steps: int = 300, batch: int = 128,
                 lr: float = 1e-4, seed: int = 0) -> torch.nn.Module:
    """Quantisation-aware fine-tuning of an extracted subnet in place: its weights (every tensor of
    two or more dimensions) and each block's output fake-quantised to int8 while it trains on
    ``x, y`` (labels, and the float subnet's own predictions), so that static quantisation
    afterwards loses less. Returns the subnet with plain (float, quantisation-friendly) weights."""
    import copy

    import torch.nn.functional as F
    from torch.nn.utils import parametrize

    from nas.supernet.scoring import finetune

    teacher = copy.deepcopy(subnet).eval()
    params = [(m, name) for m in subnet.modules() for name, p in list(m.named_parameters(recurse=False)) if p.dim() >= 2]
    for module, name in params:
        parametrize.register_parametrization(module, name, _FakeQuantWeight())
    hooks = [m.register_forward_hook(_FakeQuantActivation()) for m in subnet.modules()
             if type(m).__name__ in ("_Residual", "SuperLayer", "Stem", "Downsample")]

    def loss_fn(logits: torch.Tensor, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            soft = F.softmax(teacher(xb), dim=-1)
        return 0.5 * F.cross_entropy(logits, yb) - 0.5 * (soft * F.log_softmax(logits, dim=-1)).sum(-1).mean()

    finetune(subnet, x, y, steps, lr=lr, batch=min(batch, len(x)), seed=seed, loss_fn=loss_fn)
    for hook in hooks:
        hook.remove()
    for module, name in params:
        parametrize.remove_parametrizations(module, name, leave_parametrized=False)
    return subnet.eval()
