"""Analysis of any ONNX graph: per-op shapes and work, MACs, peak int8 activation memory, flash.

Shapes come from one reference run in onnxruntime with every intermediate tensor exposed, so
they are exact even where they depend on the data (the tokens an MoE routes to each
expert). Tensors that depend only on weights and shapes are *static* (a deployment folds
them): they take no memory and no time.

Conventions, chosen to match int8 microcontroller runtimes (TFLite Micro, CMSIS-NN):

- activations are int8: one byte per element;
- flash holds every initializer of two or more dimensions as int8 (one byte per element) and
  every 1-D or scalar initializer as 32-bit (biases, norm parameters): four bytes per element;
- peak activation memory is the largest sum of live activation bytes while an op runs (its
  inputs still needed later, its outputs, and everything produced earlier and read later),
  executing ops in the graph's order;
- MACs count the multiply-accumulates of Conv, ConvTranspose, MatMul and Gemm;
- an int8 graph in QDQ form (onnxruntime's quantisation) is read as a runtime runs it:
  QuantizeLinear and DequantizeLinear are fused into their neighbours (no time, no memory of
  their own: a DequantizeLinear of a weight is the weight), and the int8 weights and 32-bit
  biases they dequantise are what flash holds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from nas.errors import NasError, first_line

# Ops whose outputs are fixed once input shapes are (a deployment evaluates them at build time).
_SHAPE_OPS = {"Shape", "Size", "ConstantOfShape", "EyeLike"}
# A QDQ graph's (de)quantisation: fused into the ops around it by an int8 runtime.
_QDQ_OPS = {"QuantizeLinear", "DequantizeLinear"}

_DTYPES = {
    onnx.TensorProto.FLOAT: np.float32,
    onnx.TensorProto.DOUBLE: np.float64,
    onnx.TensorProto.FLOAT16: np.float16,
    onnx.TensorProto.INT64: np.int64,
    onnx.TensorProto.INT32: np.int32,
    onnx.TensorProto.INT8: np.int8,
    onnx.TensorProto.UINT8: np.uint8,
    onnx.TensorProto.BOOL: np.bool_,
}


@dataclass(frozen=True)
class OpInfo:
    """One executed op: its type, shapes, class for cost models, and work."""

    name: str
    op_type: str
    kind: str  # conv, dwconv, dense, matmul, pool, softmax, norm, elementwise, move
    input_shapes: tuple[tuple[int, ...], ...]
    output_shapes: tuple[tuple[int, ...], ...]
    macs: int
    elements: int  # output elements (input elements for reductions and pooling)
    weight_bytes: int


@dataclass(frozen=True)
class GraphStats:
    ops: tuple[OpInfo, ...]
    params: int
    macs: int
    peak_activation_bytes: int
    flash_bytes: int
    input_shape: tuple[int, ...]

    @property
    def peak_sram_kb(self) -> float:
        return self.peak_activation_bytes / 1024

    @property
    def flash_kb(self) -> float:
        return self.flash_bytes / 1024

    def macs_by_kind(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for op in self.ops:
            out[op.kind] = out.get(op.kind, 0) + op.macs
        return out


def load_model(source: str | Path | bytes | onnx.ModelProto) -> onnx.ModelProto:
    """An ONNX model from a path, bytes or a proto; NasError when it does not load or check."""
    if isinstance(source, onnx.ModelProto):
        return source
    try:
        if isinstance(source, bytes):
            model = onnx.load_from_string(source)
        else:
            path = Path(source)
            if not path.is_file():
                raise NasError(f"ONNX file {str(path)!r} does not exist")
            model = onnx.load(str(path))
        onnx.checker.check_model(model)
    except NasError:
        raise
    except Exception as exc:  # onnx raises several unrelated types for a bad file
        raise NasError(f"not a valid ONNX model: {first_line(exc, 160)}") from None
    return model


def graph_input(model: onnx.ModelProto) -> onnx.ValueInfoProto:
    inits = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    if len(inputs) != 1:
        raise NasError(f"expected an ONNX graph with one input, found {len(inputs)}")
    return inputs[0]


def input_shape_of(model: onnx.ModelProto, batch: int = 1) -> tuple[int, ...]:
    """The graph input's shape, with ``batch`` for a symbolic first dimension."""
    dims = graph_input(model).type.tensor_type.shape.dim
    shape = []
    for i, d in enumerate(dims):
        if d.HasField("dim_value") and d.dim_value > 0:
            shape.append(d.dim_value)
        elif i == 0:
            shape.append(batch)
        else:
            raise NasError(f"ONNX input dimension {i} is symbolic ({d.dim_param!r}); give a fixed shape")
    return tuple(shape)


def _run_all(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run once, returning every intermediate tensor by name."""
    import onnxruntime as ort

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    existing = {o.name for o in probe.graph.output}
    for node in probe.graph.node:
        for name in node.output:
            if name and name not in existing:
                probe.graph.output.append(onnx.ValueInfoProto(name=name))
                existing.add(name)
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 3
    try:
        sess = ort.InferenceSession(probe.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        names = [o.name for o in sess.get_outputs()]
        values = sess.run(names, feeds)
    except Exception as exc:
        raise NasError(f"onnxruntime cannot run the model: {first_line(exc, 160)}") from None
    return dict(zip(names, values, strict=True))


def _kind(node: onnx.NodeProto, shapes: dict[str, tuple[int, ...]], weights: set[str]) -> str:
    t = node.op_type
    if t in ("Conv", "ConvTranspose"):
        group = next((a.i for a in node.attribute if a.name == "group"), 1)
        return "dwconv" if group > 1 and group == shapes[node.input[0]][1] else "conv"
    if t == "Gemm" or (t == "MatMul" and any(i in weights for i in node.input)):
        return "dense"
    if t == "MatMul":
        return "matmul"
    if t in ("AveragePool", "MaxPool", "GlobalAveragePool", "GlobalMaxPool", "ReduceMean", "ReduceSum", "ReduceMax"):
        return "pool"
    if t in ("Softmax", "LogSoftmax", "TopK"):
        return "softmax"
    if t in ("LayerNormalization", "BatchNormalization", "InstanceNormalization"):
        return "norm"
    if t in _QDQ_OPS:
        return "move"
    if t in ("Reshape", "Transpose", "Flatten", "Squeeze", "Unsqueeze", "Concat", "Split", "Slice", "Gather",
             "GatherND", "GatherElements", "ScatterElements", "ScatterND", "Expand", "Pad", "Identity",
             "Tile", "NonZero", "Cast", "Trilu"):
        return "move"
    return "elementwise"


def _macs(node: onnx.NodeProto, kind: str, shapes: dict[str, tuple[int, ...]]) -> int:
    out = shapes[node.output[0]]
    if kind in ("conv", "dwconv"):
        w = shapes[node.input[1]]
        return math.prod(out) * math.prod(w[1:])
    if node.op_type == "MatMul":
        return math.prod(out) * shapes[node.input[0]][-1]
    if node.op_type == "Gemm":
        a = shapes[node.input[0]]
        trans_a = next((x.i for x in node.attribute if x.name == "transA"), 0)
        return math.prod(out) * (a[0] if trans_a else a[-1])
    return 0


def analyze(source: str | Path | bytes | onnx.ModelProto,
            x: np.ndarray | dict[str, np.ndarray] | None = None) -> GraphStats:
    """Analyse a graph at batch 1 (or on ``x``, when given: real data routes an MoE realistically).
    A graph of several inputs (a language model's decode step: the token and the state) takes
    them by name; every input is live at the start, so its state counts in the peak."""
    model = load_model(source)
    if x is None:
        shape = input_shape_of(model)
        x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    feeds = x if isinstance(x, dict) else {graph_input(model).name: x}
    values = _run_all(model, feeds)
    g = model.graph
    inits = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    for node in g.node:
        if node.op_type == "Constant" and node.output:
            values.setdefault(node.output[0], values.get(node.output[0]))
    shapes: dict[str, tuple[int, ...]] = {k: tuple(np.shape(v)) for k, v in values.items() if v is not None}
    shapes.update({k: tuple(v.shape) for k, v in inits.items()})
    shapes.update({name: tuple(v.shape) for name, v in feeds.items()})

    # Static tensors: weights, constants, and anything computed only from them or from shapes.
    static = set(inits)
    for node in g.node:
        if node.op_type == "Constant" or node.op_type in _SHAPE_OPS or all(
            (not i) or i in static for i in node.input
        ):
            static.update(o for o in node.output if o)
    weights = {n for n, v in inits.items() if v.dtype.kind == "f"}
    # In a QDQ graph the stored weights are the integers a DequantizeLinear reads (int8 weights,
    # int32 biases), and what it gives is that weight again, not one more.
    dequantised = {n.input[0] for n in g.node if n.op_type == "DequantizeLinear" and n.input[0] in inits}
    weights |= {n for n in dequantised if inits[n].dtype.kind in "iu"}
    # A (de)quantisation's scales and zero points count with the weight they belong to, not as one.
    weights -= {i for n in g.node if n.op_type in _QDQ_OPS for i in n.input[1:]}
    # Constants of float type with more than one element are weights too (folded parameters).
    for node in g.node:
        if node.op_type == "Constant" and node.output and node.output[0] in values:
            v = values[node.output[0]]
            if v is not None and np.asarray(v).dtype.kind == "f" and np.asarray(v).size > 1:
                weights.add(node.output[0])

    ops: list[OpInfo] = []
    executed: list[onnx.NodeProto] = []
    for node in g.node:
        if node.output and all(o in static for o in node.output if o):
            continue  # folded at build time
        kind = _kind(node, shapes, weights)
        out_elems = sum(math.prod(shapes.get(o, ())) for o in node.output if o)
        if kind == "pool":
            out_elems = math.prod(shapes[node.input[0]])
        wbytes = sum(_weight_bytes(inits.get(i, values.get(i))) for i in node.input if i in weights)
        ops.append(OpInfo(
            node.name or node.op_type,
            node.op_type,
            kind,
            tuple(shapes.get(i, ()) for i in node.input if i),
            tuple(shapes.get(o, ()) for o in node.output if o),
            _macs(node, kind, shapes),
            out_elems,
            wbytes,
        ))
        executed.append(node)

    params = sum(int(np.asarray(v).size) for n, v in {**values, **inits}.items() if n in weights and v is not None)
    flash = sum(_weight_bytes(inits.get(n, values.get(n))) for n in weights)
    peak = _peak_bytes([n for n in executed if n.op_type not in _QDQ_OPS], shapes, static, set(feeds),
                       {o.name for o in g.output}, _aliases(g, static))
    return GraphStats(tuple(ops), params, sum(o.macs for o in ops), peak, flash, tuple(next(iter(feeds.values())).shape))


def _weight_bytes(value: np.ndarray | None) -> int:
    if value is None:
        return 0
    arr = np.asarray(value)
    return int(arr.size) if arr.ndim >= 2 else 4 * int(arr.size)


def _aliases(g: onnx.GraphProto, static: set[str]) -> dict[str, str]:
    """Activation tensors a (de)quantisation renames: the tensor it reads, followed back."""
    alias: dict[str, str] = {}
    for node in g.node:
        if node.op_type in _QDQ_OPS and node.input[0] not in static:
            alias[node.output[0]] = alias.get(node.input[0], node.input[0])
    return alias


def _peak_bytes(
    nodes: list[onnx.NodeProto],
    shapes: dict[str, tuple[int, ...]],
    static: set[str],
    inputs: set[str],
    outputs: set[str],
    alias: dict[str, str] | None = None,
) -> int:
    """Largest live activation footprint (int8) over the schedule given by ``nodes``' order;
    ``alias`` maps a renamed tensor (a QDQ graph's) to the one it is."""
    alias = alias or {}
    last_use: dict[str, int] = {}
    for i, node in enumerate(nodes):
        for name in node.input:
            name = alias.get(name, name)
            if name and name not in static:
                last_use[name] = i
    for name in outputs:
        last_use[alias.get(name, name)] = len(nodes)
    size = {n: math.prod(s) for n, s in shapes.items()}
    live = {n for n in inputs if n in last_use}
    peak = sum(size.get(n, 0) for n in inputs)
    for i, node in enumerate(nodes):
        produced = [o for o in node.output if o and o not in static]
        current = sum(size.get(n, 0) for n in live) + sum(size.get(o, 0) for o in produced)
        peak = max(peak, current)
        live.update(o for o in produced if last_use.get(o, -1) > i)
        live = {n for n in live if last_use.get(n, -1) > i}
    return peak
