"""Judging search strategies on tabular benchmarks (NAS-Bench-Graph, or any table of measured
archs) through the normal search path: the store, in process or on Ray workers.

>>> from nas.bench import BenchConfig, load_benchmark, run_bench
>>> bench = load_benchmark("graph:cora")                                       # doctest: +SKIP
>>> result = run_bench(bench, BenchConfig(strategies=("surrogate", "tpe"), seeds=3))  # doctest: +SKIP
>>> result.fractions("surrogate", 100).mean()   # share of the true front's hypervolume  # doctest: +SKIP
"""

from nas.bench.run import (
    CHECKPOINTS,
    BenchConfig,
    BenchResult,
    hypervolume_fraction,
    plot,
    run_bench,
)
from nas.bench.tables import (
    GRAPH_DATASETS,
    Benchmark,
    load_benchmark,
    load_csv,
    load_graph,
    load_graph_dead,
)

__all__ = [
    "CHECKPOINTS",
    "GRAPH_DATASETS",
    "BenchConfig",
    "BenchResult",
    "Benchmark",
    "hypervolume_fraction",
    "load_benchmark",
    "load_csv",
    "load_graph",
    "load_graph_dead",
    "plot",
    "run_bench",
]
