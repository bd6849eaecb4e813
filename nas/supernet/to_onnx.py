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

import numpy as np
import onnx
import torch

from nas.errors import NasError

OPSET = 17
INPUT_NAME = "input"
OUTPUT_NAME = "output"


def to_onnx(module: torch.nn.Module, example: torch.Tensor, metadata: dict[str, str] | None = None) -> bytes:
    """Serialised ONNX of ``module`` traced on ``example`` (batch dimension dynamic)."""
    module = module.eval()
    buf = io.BytesIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        logging.getLogger("torch.onnx").setLevel(logging.ERROR)
        torch.onnx.export(
            module,
            (example,),
            buf,
            dynamo=False,
            opset_version=OPSET,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            do_constant_folding=True,
        )
    data = buf.getvalue()
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


def check_parity(module: torch.nn.Module, data: bytes, x: np.ndarray) -> float:
    """``onnx.checker`` the graph, run it in onnxruntime on ``x`` and return the max abs error vs torch."""
    try:
        onnx.checker.check_model(onnx.load_from_string(data))
    except onnx.checker.ValidationError as exc:
        raise NasError(f"exported graph fails onnx.checker: {str(exc).splitlines()[0]}") from None
    sess = ort_session(data)
    got = sess.run(None, {INPUT_NAME: x.astype(np.float32)})[0]
    with torch.no_grad():
        want = module.eval()(torch.from_numpy(x.astype(np.float32))).numpy()
    return float(np.abs(got - want).max())
