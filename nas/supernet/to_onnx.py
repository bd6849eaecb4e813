"""Exporting extracted subnets and single blocks to ONNX, and checking them in onnxruntime.

We use torch's TorchScript-based exporter (``dynamo=False``): about ten times faster than the
dynamo exporter on these small graphs, opset 17, and every block here exports with it. The
batch dimension is dynamic; spatial shapes are fixed by the space's task, so the SSM scan
and the attention have static lengths in the graph.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from typing import TYPE_CHECKING

import numpy as np
import onnx
import torch

from nas.blocks import Aux
from nas.errors import NasError, first_line

if TYPE_CHECKING:
    from nas.supernet.model import Subnet

OPSET = 17
INPUT_NAME = "input"
OUTPUT_NAME = "output"


def export_graph(module: torch.nn.Module, args: tuple[torch.Tensor, ...], input_names: list[str],
                 output_names: list[str] | None = None, dynamic_axes: dict | None = None) -> bytes:
    """Serialised ONNX of ``module`` (in eval mode) traced on ``args``: the one call of torch's
    exporter, quiet (its warnings and prints are about tracing, not about the graph)."""
    buf = io.BytesIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), torch.no_grad():
        warnings.simplefilter("ignore")
        logging.getLogger("torch.onnx").setLevel(logging.ERROR)
        torch.onnx.export(module.eval(), args, buf, dynamo=False, opset_version=OPSET, input_names=input_names,
                          output_names=output_names, dynamic_axes=dynamic_axes, do_constant_folding=True)
    return buf.getvalue()


def to_onnx(module: torch.nn.Module, example: torch.Tensor, metadata: dict[str, str] | None = None) -> bytes:
    """Serialised ONNX of ``module`` traced on ``example`` (batch dimension dynamic)."""
    data = export_graph(module, (example,), [INPUT_NAME], [OUTPUT_NAME],
                        {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}})
    if metadata:
        model = onnx.load_from_string(data)
        for key, value in metadata.items():
            entry = model.metadata_props.add()
            entry.key, entry.value = key, str(value)
        data = model.SerializeToString()
    return data


def ort_session(data: bytes, threads: int = 1, optimize: bool = True):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    if not optimize:
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])


ROUTING_TIE = 1e-5  # a routing gap this small can go either way between two runtimes' rounding


def parity(module: Subnet, data: bytes, x: np.ndarray) -> tuple[float, int]:
    """``onnx.checker`` the graph, run it in onnxruntime on ``x``, and compare with torch.

    Returns the max abs error and how many samples it leaves out: those whose MoE routing was
    within ``ROUTING_TIE`` of going another way in torch (see :mod:`nas.blocks.moe`),
    where both runtimes are right and may still disagree. At most a quarter of the samples are
    left out; past that every sample counts."""
    try:
        onnx.checker.check_model(onnx.load_from_string(data))
    except onnx.checker.ValidationError as exc:
        raise NasError(f"exported graph fails onnx.checker: {first_line(exc)}") from None
    sess = ort_session(data)
    x = x.astype(np.float32)
    got = sess.run(None, {INPUT_NAME: x})[0]
    aux = Aux(margins=[])
    with torch.no_grad():
        want = module.eval()(torch.from_numpy(x), aux=aux).numpy()
    margins = aux.margins
    error = np.abs(got - want).reshape(len(x), -1).max(axis=1)
    tie = np.zeros(len(x), dtype=bool)
    if margins:
        tie = torch.stack(margins).amin(0).numpy() < ROUTING_TIE
    if tie.sum() > len(x) // 4:
        tie[:] = False
    return float(error[~tie].max()), int(tie.sum())


def check_parity(module: Subnet, data: bytes, x: np.ndarray) -> float:
    """The max abs error between onnxruntime and torch on ``x`` (routing ties left out; see :func:`parity`)."""
    return parity(module, data, x)[0]
