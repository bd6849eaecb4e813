"""What a language model costs where it is deployed: prefill latency for a prompt of P tokens,
per-token decode latency at a context of C tokens, and the state a decode keeps.

Latency is measured the way the image spaces' is (nn-Meter's kernel-level idea): each unit is
its own ONNX graph timed in onnxruntime on this CPU (one thread, median of repeats, the
machine's fast phases), a whole subnet's latency is the sum of its units corrected by a
linear model of per-graph overhead fitted on a few whole subnets, and held-out whole subnets
measured end to end validate it. The units of a decode are step graphs with state in and out:

- per layer, the mixer's step (one new token, its state at C - 1 tokens in, the state after it
  out: the KV cache for attention, the last kernel - 1 inputs for a conv, the conv inputs and
  scan state for an SSM) with its residual add, and the ffn on one token with its add;
- per width, the ends: the byte embedding, the final norm and the tied output head.

The prefill's units are the same blocks on P tokens, producing the state a decode starts from.
The whole graphs are exactly :mod:`nas.supernet.lm_onnx`'s prefill and step, which the export
writes and checks.

The state (:func:`state_bytes`, float32) grows with C for attention (2 x heads x head_dim x C
per layer) and not for conv (width x (kernel - 1)) or SSM (inner x (ssm_conv - 1) + heads x
head_dim x state) layers.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from nas.errors import NasError
from nas.space import NetArch, NetSpace

DEFAULT_PROMPT = 64
MIN_WINDOW_MS = 20.0  # a timed window of a graph lasts at least this long (see OnnxCpuCost)
MODES = ("prefill", "decode")


def check_lengths(space: NetSpace, prompt: int, context: int) -> None:
    trained = space.task.input_shape[-1]
    if prompt < 1 or context < 2:
        raise NasError(f"--prompt must be at least 1 and --context at least 2 tokens, got {prompt} and {context}")
    for name, value in (("--prompt", prompt), ("--context", context)):
        if value > trained:
            raise NasError(f"{name} {value} is longer than the context of {trained} tokens {space.name} is trained on")


def state_bytes(space: NetSpace, arch: NetArch, context: int) -> int:
    """The float32 bytes a decode keeps after ``context`` tokens (see the module doc)."""
    s, total = space.settings, 0
    width = arch.stages[0].width
    for layer in arch.stages[0].layers:
        m = layer.mixer
        if m.kind == "attention":
            total += 2 * m.heads * s.attention_head_dim * context
        elif m.kind == "conv":
            total += width * (m.kernel - 1)
        elif m.kind == "ssm":
            inner = m.expand * width
            total += inner * (s.ssm_conv - 1) + (inner // s.ssm_head_dim) * s.ssm_head_dim * m.state
    return 4 * total


# ----------------------------------------------------------------------------- unit graphs


class _MixerUnit(nn.Module):
    """``x + mixer(x)`` on new tokens after a state, returning the state after them."""

    def __init__(self, block: nn.Module, width: int, op, stateful: bool) -> None:
        super().__init__()
        self.block, self.width, self.op, self.stateful = block, width, op, stateful

    def forward(self, x: torch.Tensor, *state: torch.Tensor) -> tuple[torch.Tensor, ...]:
        y, new = self.block.forward_cached(x, self.width, self.op, tuple(state) if self.stateful else None)
        return (x + y, *new)


class _FfnUnit(nn.Module):
    def __init__(self, block: nn.Module, width: int, op) -> None:
        super().__init__()
        self.block, self.width, self.op = block, width, op

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x, (x.shape[1],), self.width, self.op, None)


class _Ends(nn.Module):
    """The byte embedding, then the final norm and the tied head (the two ends of every subnet)."""

    def __init__(self, stem: nn.Module, head: nn.Module, width: int) -> None:
        super().__init__()
        self.stem, self.head, self.width = stem, head, width

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head(self.stem(tokens, self.width), self.width)


class Graph:
    """A unit's or a subnet's module and the inputs it runs on, with its ONNX graph made on demand
    (what the cpu and MCU costs read; the gpu cost runs the module itself)."""

    def __init__(self, module: nn.Module, args: tuple[torch.Tensor, ...], names: list[str],
                 export: Callable[[], bytes] | None = None) -> None:
        self.module, self.args, self.names = module.eval(), args, names
        self._export, self._data = export, None

    @property
    def data(self) -> bytes:
        if self._data is None:
            from nas.supernet.to_onnx import export_graph

            self._data = self._export() if self._export else export_graph(self.module, self.args, self.names)
        return self._data

    @property
    def feeds(self) -> dict[str, np.ndarray]:
        return {n: a.numpy() for n, a in zip(self.names, self.args, strict=True)}


def unit_keys(arch: NetArch) -> list[str]:
    width = arch.stages[0].width
    keys = [f"{width}/ends"]
    for layer in arch.stages[0].layers:
        keys += [f"{width}/{layer.mixer.token}", f"{width}/{layer.ffn.token}"]
    return keys


def all_unit_keys(space: NetSpace) -> list[str]:
    spec = space.stages[0]
    return [f"{w}/{t}" for w in spec.widths for t in ("ends", *(m.token for m in spec.mixers),
                                                      *(f.token for f in spec.ffns))]


def unit_graph(net: nn.Module, space: NetSpace, key: str, mode: str, length: int) -> Graph:
    """The graph of unit ``key`` (``WIDTH/TOKEN`` or ``WIDTH/ends``): on ``length`` tokens for a
    prefill, on one token after a state of ``length - 1`` tokens for a decode."""
    from nas.space import parse_ffn_or_mixer

    width_text, token = key.split("/")
    width = int(width_text)
    gen = torch.Generator().manual_seed(0)
    new = 1 if mode == "decode" else length
    if token == "ends":
        stem = net.stem.extract(width)
        tokens = torch.randint(0, stem.weight.shape[0], (1, new), generator=gen)
        return Graph(_Ends(stem, net.head.extract(width, stem), width), (tokens,), ["tokens"])
    op = parse_ffn_or_mixer(token)
    layer = net.stages[0][0]
    x = torch.randn(1, new, width, generator=gen)
    if op.role == "ffn":
        return Graph(_FfnUnit(layer.ffns[op.kind].extract(width, op), width, op), (x,), ["x"])
    block = layer.mixers[op.kind].extract(width, op).eval()
    if mode == "prefill":
        return Graph(_MixerUnit(block, width, op, False), (x,), ["x"])
    with torch.no_grad():
        _, state = block.forward_cached(torch.randn(1, length - 1, width, generator=gen), width, op, None)
    names = ["x", *(f"state{i}" for i in range(len(state)))]
    return Graph(_MixerUnit(block, width, op, True), (x, *state), names)


def whole_graph(net: nn.Module, arch: NetArch, mode: str, length: int) -> Graph:
    """A subnet's prefill graph on ``length`` tokens, or its decode step after ``length - 1``: the
    very graphs :func:`nas.supernet.lm_onnx.export_pair` writes."""
    from nas.supernet.lm_onnx import PrefillGraph, StepGraph, export_pair, state_names

    sub = net.extract(arch, (length,)).eval()
    vocab = sub.net.stem.weight.shape[0]
    gen = torch.Generator().manual_seed(0)
    pick = 0 if mode == "prefill" else 1
    export = lambda: export_pair(sub, bytes(range(vocab)), length)[pick]  # noqa: E731
    if mode == "prefill":
        return Graph(PrefillGraph(sub), (torch.randint(0, vocab, (1, length), generator=gen),), ["tokens"], export)
    with torch.no_grad():
        _, states = sub.decode(torch.randint(0, vocab, (1, length - 1), generator=gen))
    flat = tuple(t for state in states for t in state)
    return Graph(StepGraph(sub), (torch.tensor([[1]]), *flat), ["token", *state_names(arch)], export)


# ----------------------------------------------------------------------------- costing a graph


class OnnxCpuCost:
    """onnxruntime on this CPU (the meter's threads): the median of windows of at least
    ``min_window_ms`` (a decode step takes tens of microseconds), held to the machine's fast phases."""

    target = "cpu"
    passes = 3  # each graph measured in three passes, interleaved with the others; the median is kept

    def __init__(self, meter) -> None:
        self.meter, self.cvs = meter, []

    def __call__(self, graph: Graph) -> float:
        from nas.supernet.to_onnx import ort_session

        sess = ort_session(graph.data, threads=self.meter.config.threads)
        feeds = graph.feeds
        sess.run(None, feeds)
        m = self.meter.time(lambda: sess.run(None, feeds))
        self.cvs.append(m.cv)
        return m.median_ms

    def describe(self) -> dict[str, Any]:
        from nas.latency.measure import host_description

        c = self.meter.config
        return {**host_description(c.threads), "repeats": c.repeats, "min_window_ms": c.min_window_ms,
                "passes": self.passes, **{f"guard_{k}": v for k, v in self.meter.guard_report().items()}}


class CudaCost:
    """PyTorch on this machine's GPU: the graph's module timed with CUDA events (no ONNX)."""

    target = "gpu"
    passes = 3

    def __init__(self, meter, device: str = "cuda") -> None:
        self.meter, self.device, self.cvs = meter, torch.device(device), []

    def __call__(self, graph: Graph) -> float:
        from nas.latency.kit_runner import summarise
        from nas.latency.measure import cuda_times

        c = self.meter.config
        module = graph.module.to(self.device)
        args = tuple(a.to(self.device) for a in graph.args)
        cuda = self.device.type == "cuda"
        medians = []
        with torch.inference_mode():
            for window in range(3):  # the first window also warms up: kernels chosen, caches warm
                ms = cuda_times(lambda: module(*args), c.warmup + 25 if window == 0 else 0, c.repeats, cuda)
                medians.append(float(np.median(ms)))
                self.cvs.append(summarise(ms, c.max_cv)[3])
        graph.module.to("cpu")
        return float(np.median(medians))

    def describe(self) -> dict[str, Any]:
        name = torch.cuda.get_device_name(0) if self.device.type == "cuda" else "this CPU (torch, no GPU)"
        return {"device": name, "runtime": f"torch {torch.__version__} CUDA {torch.version.cuda}",
                "repeats": self.meter.config.repeats, "passes": self.passes}


class McuCost:
    """An MCU board's int8 cost model (:mod:`nas.latency.mcu`) run on the graph: nothing is measured,
    so one pass is exact."""

    passes = 1

    def __init__(self, target) -> None:
        self.mcu, self.target, self.cvs = target, target.name, []

    def __call__(self, graph: Graph) -> float:
        from nas.graph import analyze

        return float(self.mcu.cost_graph(analyze(graph.data, graph.feeds)).latency_ms)

    def describe(self) -> dict[str, Any]:
        from nas.latency.measure import MeasureConfig

        return {**self.mcu.describe(MeasureConfig()), "passes": 1}


def cost_all(graphs: dict[Any, Graph], cost, seed: int = 0, progress: Callable[[str], None] | None = None,
             ) -> dict[Any, float]:
    """Every graph costed in ``cost.passes`` passes, each pass in its own shuffled order (so a slow
    phase of the machine hits a different mix of units and subnets each time); the median per graph."""
    rng = random.Random(seed)
    values: dict[Any, list[float]] = {k: [] for k in graphs}
    for p in range(cost.passes):
        order = list(graphs)
        rng.shuffle(order)
        for key in order:
            values[key].append(cost(graphs[key]))
            if progress:
                progress(f"pass {p + 1}/{cost.passes} {key}: {values[key][-1]:.4f} ms")
    return {k: float(np.median(v)) for k, v in values.items()}


# ----------------------------------------------------------------------------- the model


@dataclass
class LmLatency:
    """Per-unit medians and the overhead fitted on whole subnets, for one mode at one length."""

    target: str
    space: str
    mode: str  # prefill or decode
    length: int  # P tokens of a prefill, or the context C a decode step runs at
    units: dict[str, float]
    overhead: tuple[float, float, float] = (1.0, 0.0, 0.0)  # a * sum + b * layers + c
    fit: list[dict[str, Any]] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def metric(self) -> str:
        return f"{self.target}_{self.mode}_ms"

    def unit_sum(self, arch: NetArch) -> float:
        missing = [k for k in unit_keys(arch) if k not in self.units]
        if missing:
            raise NasError(f"the {self.metric} model has no unit {missing[0]!r}: rebuild it for this space")
        return float(sum(self.units[k] for k in unit_keys(arch)))

    def predict(self, archs: Sequence[NetArch]) -> np.ndarray:
        a, b, c = self.overhead
        return np.array([a * self.unit_sum(x) + b * x.stages[0].depth + c for x in archs])

    def fit_overhead(self, archs: Sequence[NetArch], measured: Sequence[float]) -> None:
        """``a``, ``b``, ``c`` by least squares in relative error (every subnet weighs alike)."""
        y = np.asarray(measured, dtype=float)
        design = np.array([[self.unit_sum(x), x.stages[0].depth, 1.0] for x in archs]) / y[:, None]
        coef, *_ = np.linalg.lstsq(design, np.ones_like(y), rcond=None)
        self.overhead = tuple(float(v) for v in coef)
        self.fit = [{"arch": x.to_str(), "measured_ms": float(m)} for x, m in zip(archs, y, strict=True)]

    def to_json(self) -> dict[str, Any]:
        return {"format": "nas-lm-latency", "target": self.target, "space": self.space, "mode": self.mode,
                "length": self.length, "units": self.units, "overhead": list(self.overhead), "fit": self.fit,
                "meta": self.meta}

    @classmethod
    def from_json(cls, data: dict[str, Any], where: str) -> LmLatency:
        try:
            if data.get("format") != "nas-lm-latency":
                raise KeyError("format")
            return cls(str(data["target"]), str(data["space"]), str(data["mode"]), int(data["length"]),
                       {str(k): float(v) for k, v in data["units"].items()}, tuple(float(v) for v in data["overhead"]),
                       list(data.get("fit", [])), dict(data.get("meta", {})))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise NasError(f"{where} is not a language-model latency model ({exc})") from None


def build(space: NetSpace, net: nn.Module, cost, mode: str, length: int, n_fit: int = 40, seed: int = 0,
          progress: Callable[[str], None] | None = None) -> LmLatency:
    """Cost every unit of ``space`` for ``mode`` at ``length`` and fit the overhead on ``n_fit``
    whole subnets (the extremes and random ones), units and subnets costed together in
    ``cost.passes`` interleaved passes."""
    if mode not in MODES:
        raise NasError(f"mode {mode!r} is not one of {', '.join(MODES)}")
    started = time.time()
    archs = [space.largest(), space.smallest(),
             *space.sample_unique(random.Random(seed), n_fit - 2, exclude={space.largest(), space.smallest()})]
    graphs: dict[Any, Graph] = {key: unit_graph(net, space, key, mode, length) for key in all_unit_keys(space)}
    graphs |= {a: whole_graph(net, a, mode, length) for a in archs}
    values = cost_all(graphs, cost, seed, progress)
    model = LmLatency(cost.target, space.name, mode, length, {k: v for k, v in values.items() if isinstance(k, str)})
    model.fit_overhead(archs, [values[a] for a in archs])
    model.meta = {**cost.describe(), "built": time.strftime("%Y-%m-%d %H:%M"),
                  "seconds": round(time.time() - started, 1)}
    return model


def validate(space: NetSpace, net: nn.Module, model: LmLatency, cost, n: int = 100, seed: int = 1,
             progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Cost ``n`` held-out random subnets end to end (none of the fit's) and score the model, as
    :mod:`nas.latency.validate` does for the image spaces: a timed target measures every subnet in
    two separate passes, each pass first re-measuring ten of the build's own subnets for the
    machine's speed against the build's (``speed_vs_build``, figures given on measurements brought
    back to the build's speed and uncorrected beside them); a subnet whose two passes disagree by
    more than 10% is measured a third time and the median kept (``remeasured``). A cost model
    (MCU) is run once on each whole graph."""
    from scipy.stats import kendalltau

    from nas.latency.measure import measure_in_passes

    fitted = {row["arch"] for row in model.fit}
    archs = [a for a in space.sample_unique(random.Random(seed), n + len(fitted)) if a.to_str() not in fitted][:n]
    graphs = [whole_graph(net, a, model.mode, model.length) for a in archs]
    refs = model.fit[:: max(1, len(model.fit) // 10)][:10] if cost.passes > 1 else []
    references = [(lambda g=whole_graph(net, space.parse(r["arch"]), model.mode, model.length): cost(g),
                   r["measured_ms"]) for r in refs]

    def report(description: str, total: int) -> Callable[[], None]:
        done = [0]

        def advance() -> None:
            done[0] += 1
            if progress:
                progress(f"{description}: {done[0]} of {total}")
        return advance

    runs = measure_in_passes(len(graphs), lambda i: cost(graphs[i]), references, min(2, cost.passes), report)
    measured, raw = runs.measured, runs.raw_mean
    predicted = model.predict(archs)
    rows = [{"arch": a.to_str(), "measured_ms": float(m), "predicted_ms": float(p),
             "state_kb": state_bytes(space, a, model.length) / 1024,
             **({f"pass{j + 1}_ms": float(x[i]) for j, x in enumerate(runs.raw)} if cost.passes > 1 else {})}
            for i, (a, m, p) in enumerate(zip(archs, measured, predicted, strict=True))]
    err, err_raw = np.abs(predicted / measured - 1), np.abs(predicted / raw - 1)
    return {"rows": rows, "n": len(rows), "within_10pct": float((err <= 0.10).mean()),
            "within_5pct": float((err <= 0.05).mean()), "median_rel_error": float(np.median(err)),
            "p90_rel_error": float(np.percentile(err, 90)),
            "kendall_tau": float(kendalltau(measured, predicted).statistic) if len(rows) > 1 else float("nan"),
            "speed_vs_build": float(np.mean(runs.speeds)), "within_10pct_uncorrected": float((err_raw <= 0.10).mean()),
            "median_rel_error_uncorrected": float(np.median(err_raw)),
            "repeat_diff": float(np.median(runs.disagreement)), "remeasured": int(len(runs.remeasured)),
            "noise_cv": float(np.median(cost.cvs)) if cost.cvs else 0.0,
            "measured_ms_range": [float(measured.min()), float(measured.max())]}


def model_path(root: Path, target: str, space: NetSpace, mode: str, length: int) -> Path:
    return root / target / f"{space.name}.{mode}{length}.lm.json"


def save(model: LmLatency, path: Path) -> None:
    from nas.atomic import atomic_write

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(model.to_json(), indent=1))


def find(target: str, space: NetSpace, mode: str, length: int, roots: list[Path] | None = None,
         ) -> tuple[LmLatency, Path]:
    """The model of ``target``'s ``mode`` at ``length`` tokens, from the profile folders
    (:func:`nas.latency.profile.profiles_dirs`), with one line naming the build command when none is there."""
    from nas.latency.profile import profiles_dirs

    for root in roots or profiles_dirs():
        path = model_path(root, target, space, mode, length)
        if path.is_file():
            model = load(path)
            if model.space != space.name or model.mode != mode:
                raise NasError(f"{path} models {model.space} {model.mode}, not {space.name} {mode}")
            return model, path
    option = "--prompt" if mode == "prefill" else "--context"
    raise NasError(f"no {target} {mode} latency model of {space.name} at {length} tokens: run nas latency build "
                   f"{space.ref or space.name} --target {target} {option} {length}")


def load(path: Path) -> LmLatency:
    from nas.atomic import read_json

    return LmLatency.from_json(read_json(path, "language-model latency model", "nas latency build"), str(path))
