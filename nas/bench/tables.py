"""Tabular benchmarks: a space, and for every arch of it the metrics a search would measure.

- ``graph:DATASET`` is NAS-Bench-Graph (Qin et al., NeurIPS 2022; PyPI ``nas-bench-graph``,
  the optional extra ``[bench]``): 26,206 GNN architectures (a link pattern of four nodes and
  an operation per node, isomorphic ones counted once) with test accuracy and measured
  inference latency on each of 9 datasets. Its files are pickles; they are read with an
  unpickler that builds plain containers and numpy scalars and nothing else.
- Any CSV of an ``arch`` column and metric columns, with a plain-choice space (YAML), runs
  the same way (``nas bench TABLE.csv --space SPACE.yaml --objective accuracy:max ...``).

A benchmark's reference point is, by default, the table's 10th percentile of each maximised
objective and 90th of each minimised one (:func:`nas.pareto.quantile_reference` over the whole
table); ``Benchmark.at_reference`` moves it (``accuracy=p75``: the table's 75th percentile, or a
value), to judge where users look (high accuracy). The true front is the table's own.
"""

from __future__ import annotations

import importlib.util
import itertools
import pickle
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from nas.errors import NasError
from nas.objectives import Objective, parse_objective
from nas.pareto import hypervolume, pareto_mask, quantile_reference
from nas.space import Arch, ChoiceArch, ChoiceSpace, SearchSpace

GRAPH_DATASETS = ("arxiv", "citeseer", "computers", "cora", "cs", "photo", "physics", "proteins", "pubmed")
# NAS-Bench-Graph's link patterns: node i takes its input from node link[i] (0 = the graph's input).
GRAPH_LINKS = ((0, 0, 0, 0), (0, 0, 0, 1), (0, 0, 1, 1), (0, 0, 1, 2), (0, 0, 1, 3), (0, 1, 1, 1), (0, 1, 1, 2),
               (0, 1, 2, 2), (0, 1, 2, 3))
GRAPH_OPS = ("gat", "gcn", "gin", "cheb", "sage", "arma", "graph", "fc", "skip")


@dataclass
class Benchmark:
    """A space, every arch's metrics, and the objectives a search on it optimises."""

    name: str
    space: SearchSpace
    table: dict[Arch, dict[str, float]]
    objectives: list[Objective]
    source: str = ""
    notes: dict[str, Any] = field(default_factory=dict)
    given_reference: dict[str, float] = field(default_factory=dict)  # the yardstick's, where not the default

    def metrics(self, arch: Arch) -> dict[str, float]:
        found = self.table.get(self.space.validate(arch))
        if found is None:
            raise NasError(f"arch {arch.to_str()} is not in benchmark {self.name}")
        return dict(found)

    @cached_property
    def reference(self) -> list[float]:
        """Per objective, the given value, else the table's 10th percentile (maximised) or 90th (minimised)."""
        table = quantile_reference(self.values(list(self.table.values())), self.directions)
        return [self.given_reference.get(o.name, float(table[j])) for j, o in enumerate(self.objectives)]

    def at_reference(self, spec: Mapping[str, str | float]) -> Benchmark:
        """This benchmark judged at another reference: per objective a value, or ``pNN`` for the
        table's NNth percentile (``{"accuracy": "p75"}``: the top quarter's region)."""
        values = self.values(list(self.table.values()))
        given = {}
        for name, raw in spec.items():
            names = [o.name for o in self.objectives]
            if name not in names:
                raise NasError(f"--reference {name}: not an objective of {self.name} ({', '.join(names)})")
            text = str(raw).strip()
            percentile = text[:1] in "pP"
            try:
                number = float(text[1:] if percentile else text)
            except ValueError:
                raise NasError(f"--reference {name}={text!r}: expected a number or pNN (a percentile of the table)") from None
            if not np.isfinite(number) or (percentile and not 0 <= number <= 100):
                raise NasError(f"--reference {name}={text!r}: expected a finite number or p0..p100")
            given[name] = float(np.percentile(values[:, names.index(name)], number)) if percentile else number
        label = ",".join(f"{k}={v}" for k, v in spec.items())
        return Benchmark(f"{self.name}@{label}" if label else self.name, self.space, self.table, self.objectives,
                         self.source, dict(self.notes), {**self.given_reference, **given})

    @cached_property
    def true_front(self) -> np.ndarray:
        values = self.values(list(self.table.values()))
        return values[pareto_mask(values, self.directions)]

    @cached_property
    def true_hypervolume(self) -> float:
        return hypervolume(self.true_front, self.reference, self.directions)

    @property
    def directions(self) -> list[str]:
        return [o.direction for o in self.objectives]

    def values(self, rows: Sequence[Mapping[str, float]]) -> np.ndarray:
        return np.array([[r[o.name] for o in self.objectives] for r in rows], dtype=float).reshape(-1, len(self.objectives))


# -- NAS-Bench-Graph ------------------------------------------------------------------------------
def _link_name(link: Sequence[int]) -> str:
    """``(0, 0, 1, 2)`` -> ``L0012`` (a name, so an arch string keeps it as text)."""
    return "L" + "".join(map(str, link))


class _TableArchs(ChoiceSpace):
    """A plain space whose archs are only those a table holds: ``validate`` refuses the others,
    and draws (``sample``, ``mutate``, ``crossover``) stay inside the table."""

    def _setup(self, archs: Sequence[ChoiceArch]) -> None:
        self.held = list(archs)
        self._held_set = set(archs)

    def _check(self, arch: ChoiceArch) -> ChoiceArch:
        if arch not in self._held_set:
            raise NasError(f"arch {arch.to_str()} is not in the benchmark table of {self.name}")
        return arch

    def validate(self, arch: Arch) -> ChoiceArch:
        return self._check(super().validate(arch))

    def _draw(self, draw, tries: int = 30) -> ChoiceArch | None:
        for _ in range(tries):
            try:
                return self.validate(draw())
            except NasError:
                continue
        return None

    def sample(self, rng) -> ChoiceArch:
        return rng.choice(self.held)

    def mutate(self, arch: Arch, rng, prob: float = 0.3) -> ChoiceArch:
        arch = self.validate(arch)
        child = self._draw(lambda: ChoiceSpace.mutate(self, arch, rng, prob))
        return child if child is not None and child != arch else self.sample(rng)

    def crossover(self, a: Arch, b: Arch, rng) -> ChoiceArch:
        child = self._draw(lambda: ChoiceSpace.crossover(self, a, b, rng))
        return child if child is not None else self.validate(rng.choice((a, b)))

    def size(self) -> int:
        return len(self.held)

    def listing(self) -> list[Arch]:
        return list(self.held)


class TableSpace(_TableArchs):
    """A user's plain space narrowed to the archs of their table (a table that covers only part
    of the space: the search must not propose archs it cannot look up)."""

    def __init__(self, base: ChoiceSpace, archs: Sequence[ChoiceArch]) -> None:
        super().__init__(base.name, base.choices, base.description, base.source_text)
        self.ref = base.ref
        self._setup(archs)


class GraphSpace(_TableArchs):
    """NAS-Bench-Graph's space: a link pattern and an operation per node. Archs that differ only
    by an order of nodes the graph does not see (isomorphic ones) are one arch: ``validate``
    returns the representative the benchmark's table holds. The benchmark also leaves out some
    placements of ``skip`` (those equal to a smaller graph); those combinations are not archs of
    the space (``validate`` refuses them, draws stay inside the table)."""

    def __init__(self, ops: tuple[str, ...], canonical: set[tuple[tuple[int, ...], tuple[str, ...]]], source: str) -> None:
        choices: dict[str, tuple[Any, ...]] = {"link": tuple(_link_name(lk) for lk in GRAPH_LINKS)}
        choices.update({f"op{i}": ops for i in range(4)})
        yaml = ("name: nas-bench-graph\nkind: choice\ndescription: NAS-Bench-Graph (link pattern + 4 operations)\n"
                "choices:\n" + "".join(f"  {k}: [{', '.join(v)}]\n" for k, v in choices.items()))
        super().__init__("nas-bench-graph", choices, "NAS-Bench-Graph: link pattern and four GNN operations", yaml)
        self.canonical = canonical
        self._cache: dict[ChoiceArch, ChoiceArch] = {}
        self.source = source
        self._setup([self._arch(link, ops) for link, ops in sorted(canonical)])

    @staticmethod
    def _arch(link: Sequence[int], ops: Sequence[str]) -> ChoiceArch:
        return ChoiceArch((("link", _link_name(link)), *((f"op{i}", op) for i, op in enumerate(ops))))

    def validate(self, arch: Arch) -> ChoiceArch:
        got = self._cache.get(arch)  # type: ignore[arg-type]
        if got is None:
            plain = ChoiceSpace.validate(self, arch)
            got = self._cache[arch] = self._cache[plain] = self._representative(plain)  # type: ignore[index]
        return got

    def _representative(self, arch: ChoiceArch) -> ChoiceArch:
        v = arch.as_dict()
        link = tuple(int(c) for c in v["link"][1:])
        ops = tuple(v[f"op{i}"] for i in range(4))
        for order in itertools.permutations(range(4)):  # order[new position] = old node
            position = {old: new for new, old in enumerate(order)}
            new_link = tuple(0 if link[old] == 0 else position[link[old] - 1] + 1 for old in order)
            if any(src > i for i, src in enumerate(new_link)):
                continue  # a node would read one that comes after it
            new_ops = tuple(ops[old] for old in order)
            if (new_link, new_ops) in self.canonical:
                return self._arch(new_link, new_ops)
        raise NasError(f"arch {arch.to_str()} is not in NAS-Bench-Graph ({self.source})")


class _Plain(pickle.Unpickler):
    """Builds dicts, lists, numbers and numpy scalars only: a benchmark file runs no code."""

    ALLOWED = {("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"), ("numpy", "dtype")}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a benchmark file")
        if module.startswith("numpy.core"):
            module = module.replace("numpy.core", "numpy._core")
        return getattr(importlib.import_module(module), name)


def graph_folder() -> Path:
    spec = importlib.util.find_spec("nas_bench_graph")
    if spec is None or not spec.submodule_search_locations:
        raise NasError("NAS-Bench-Graph is not installed: pip install 'nas-service[bench]' (PyPI nas-bench-graph, "
                       "about 17 MB with its data)")
    return Path(next(iter(spec.submodule_search_locations))) / "light"


def load_graph(dataset: str) -> Benchmark:
    """NAS-Bench-Graph on ``dataset``: objectives test accuracy (max) and latency in ms (min)."""
    if dataset not in GRAPH_DATASETS:
        raise NasError(f"unknown NAS-Bench-Graph dataset {dataset!r} (known: {', '.join(GRAPH_DATASETS)})")
    path = graph_folder() / f"{dataset}.bench"
    try:
        with open(path, "rb") as f:
            raw = _Plain(f).load()
    except (OSError, pickle.UnpicklingError, EOFError, ValueError) as exc:
        raise NasError(f"cannot read {path}: {exc}") from None
    ops, base = GRAPH_OPS, 10  # the benchmark's hash: the link's index, then each op's index, in base 10
    rows: dict[tuple[tuple[int, ...], tuple[str, ...]], dict[str, float]] = {}
    for key, record in raw.items():
        digits = [(int(key) // base ** (3 - i)) % base for i in range(4)]
        link = GRAPH_LINKS[int(key) // base**4]
        rows[(link, tuple(ops[d] for d in digits))] = {
            "accuracy": float(record["perf"]), "valid_accuracy": float(record["valid_perf"]),
            "latency_ms": 1000.0 * float(record["latency"]), "params_m": float(record["para"])}
    present = {op for _, combo in rows for op in combo}
    space = GraphSpace(tuple(op for op in ops if op in present), set(rows), f"{dataset}.bench")
    table = {space.validate(GraphSpace._arch(lk, op)): m for (lk, op), m in rows.items()}
    return Benchmark(f"graph:{dataset}", space, table, [Objective("accuracy", "max"), Objective("latency_ms", "min")],
                     source=str(path), notes={"archs": len(table)})


def load_graph_dead(dataset: str) -> Benchmark:
    """``graph-dead:DATASET``: NAS-Bench-Graph on ``dataset`` with half its space useless, the case of a
    space whose archs can be broken (NAS-Bench-201's ``none`` operation cuts a cell's paths: chance
    accuracy at almost no latency). Each arch of the table comes twice, by a parameter ``output``:
    ``full`` is the table's own row; ``cut`` has the table's lowest accuracy (chance, or near it) and
    5% of the arch's latency (a net cut before its output layers does little work). A search that
    chases the fastest corner finds only cut archs there. The reference point is the original
    table's (its 10%-worst accuracy and latency), so cut archs hold no volume."""
    base = load_graph(dataset)
    floor = min(m["accuracy"] for m in base.table.values())
    choices = {**base.space.choices, "output": ("full", "cut")}
    yaml = ("name: nas-bench-graph-dead\nkind: choice\ndescription: NAS-Bench-Graph with a cut output (half the space useless)\n"
            "choices:\n" + "".join(f"  {k}: [{', '.join(v)}]\n" for k, v in choices.items()))
    plain = ChoiceSpace("nas-bench-graph-dead", choices, "NAS-Bench-Graph, every arch also cut at its output", yaml)
    table: dict[Arch, dict[str, float]] = {}
    for arch, m in base.table.items():
        items = tuple(arch.values)  # type: ignore[attr-defined]
        table[ChoiceArch((*items, ("output", "full")))] = dict(m)
        table[ChoiceArch((*items, ("output", "cut")))] = {**m, "accuracy": floor, "valid_accuracy": floor,
                                                            "latency_ms": 0.05 * m["latency_ms"]}
    space = TableSpace(plain, list(table))
    return Benchmark(f"graph-dead:{dataset}", space, table, list(base.objectives), source=base.source,
                     notes={"archs": len(table), "cut": len(base.table)},
                     given_reference={o.name: r for o, r in zip(base.objectives, base.reference, strict=True)})


# -- any CSV ----------------------------------------------------------------------------------------
def parse_objectives(texts: Sequence[str]) -> list[Objective]:
    """``accuracy:max`` -> Objective; at least one."""
    out = [parse_objective(text) for text in texts]
    if not out:
        raise NasError("a table benchmark needs --objective NAME:max|min (at least one)")
    return out


def load_csv(path: str | Path, space: SearchSpace, objectives: Sequence[Objective]) -> Benchmark:
    """A table of an ``arch`` column and metric columns (:func:`nas.evaluate.read_table`); when it
    holds only part of a plain space, the search stays inside its archs."""
    from nas.evaluate import read_table

    table = read_table(path, space, objectives)
    if isinstance(space, ChoiceSpace) and len(table) < space.size():
        space = TableSpace(space, list(table))
    return Benchmark(f"table:{Path(path).stem}", space, table, list(objectives), source=str(path))


def load_benchmark(name: str, space: str | None = None, objectives: Sequence[str] = ()) -> Benchmark:
    """``graph:DATASET`` (NAS-Bench-Graph), or a CSV path with ``space`` (a YAML) and ``objectives``."""
    if name.startswith("graph:"):
        return load_graph(name.split(":", 1)[1])
    if name.startswith("graph-dead:"):
        return load_graph_dead(name.split(":", 1)[1])
    if name.endswith(".csv") or Path(name).is_file():
        if not space:
            raise NasError("a table benchmark needs --space SPACE.yaml (the plain-choice space of its archs)")
        from nas.space import load

        return load_csv(name, load(space), parse_objectives(objectives))
    raise NasError(f"unknown benchmark {name!r} (graph:DATASET with DATASET one of {', '.join(GRAPH_DATASETS)}, "
                   "graph-dead:DATASET, or a CSV of arch + metric columns)")
