"""Running strategies on a tabular benchmark through the normal search path, and scoring them by
the fraction of the true front's hypervolume they reach after N evaluations."""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nas.bench.tables import Benchmark
from nas.errors import NasError
from nas.evaluate import CallableEvaluator
from nas.pareto import RunningFront
from nas.runner import SearchConfig, search
from nas.search import STRATEGIES
from nas.store import Store

CHECKPOINTS = (25, 50, 100, 200, 300)


@dataclass(frozen=True)
class BenchConfig:
    strategies: tuple[str, ...] = ("surrogate",)
    seeds: int = 10
    budget: int = 300
    workers: int = 0  # 0: in this process; more: Ray workers
    db: str | None = None  # default: a SQLite file in a temporary folder
    checkpoints: tuple[int, ...] = CHECKPOINTS
    first_seed: int = 0
    cheap: tuple[str, ...] = ()  # metrics the search knows before evaluating (a latency predictor's case)


@dataclass
class Run:
    strategy: str
    seed: int
    curve: np.ndarray  # fraction of the true front's hypervolume after 1..budget evaluations
    seconds: float  # the search's wall time (the table answers at once, so this is the driver's)
    evaluations: int

    @property
    def ms_per_evaluation(self) -> float:
        return 1000 * self.seconds / max(self.evaluations, 1)


@dataclass
class BenchResult:
    benchmark: str
    config: BenchConfig
    runs: list[Run] = field(default_factory=list)

    def fractions(self, strategy: str, n: int) -> np.ndarray:
        """Each seed's fraction after ``n`` evaluations (its last value when a run stopped earlier)."""
        return np.array([r.curve[min(n, len(r.curve)) - 1] for r in self.runs if r.strategy == strategy and len(r.curve)])

    def rows(self) -> list[list[str]]:
        """One row per strategy: mean ± std at each checkpoint, and driver time per evaluation."""
        out = []
        for strategy in self.config.strategies:
            cells = [f"{self.fractions(strategy, n).mean():.3f} ± {self.fractions(strategy, n).std():.3f}"
                     for n in self.config.checkpoints if n <= self.config.budget]
            ms = np.mean([r.ms_per_evaluation for r in self.runs if r.strategy == strategy])
            out.append([strategy, *cells, f"{ms:.1f}"])
        return out

    def header(self) -> list[str]:
        return ["strategy", *(f"after {n}" for n in self.config.checkpoints if n <= self.config.budget),
                "ms per evaluation"]


def hypervolume_fraction(bench: Benchmark, metrics: Sequence[dict[str, float]]) -> np.ndarray:
    """After each evaluation, the hypervolume of the front so far over the true front's."""
    front = RunningFront(bench.reference, bench.directions)
    out = np.zeros(len(metrics))
    for i, m in enumerate(metrics):
        if m and all(isinstance(m.get(o.name), (int, float)) and math.isfinite(m[o.name]) for o in bench.objectives):
            front.add([m[o.name] for o in bench.objectives])
        out[i] = front.hypervolume() / bench.true_hypervolume
    return out


def run_bench(bench: Benchmark, config: BenchConfig, progress: Callable[[str], None] | None = None) -> BenchResult:
    """Every strategy, ``config.seeds`` seeds each, ``config.budget`` evaluations, on ``bench``."""
    unknown = [s for s in config.strategies if s not in STRATEGIES]
    if unknown:
        raise NasError(f"unknown strategy {unknown[0]!r} (known: {', '.join(STRATEGIES)})")
    if config.seeds < 1 or config.budget < 1:
        raise NasError("--seeds and --budget must be at least 1")
    if config.budget > bench.space.size():
        raise NasError(f"--budget {config.budget} is more than the {bench.space.size():,} archs of {bench.name}")
    if bench.true_hypervolume <= 0:
        raise NasError(f"benchmark {bench.name}: the table's front holds no volume above its reference point")
    objectives = list(bench.objectives)
    metric_names = set(next(iter(bench.table.values())))
    unknown = [m for m in config.cheap if m not in metric_names]
    if unknown:
        raise NasError(f"--cheap {unknown[0]}: not a metric of {bench.name} ({', '.join(sorted(metric_names))})")
    cheap = tuple(config.cheap)

    def known(arch) -> dict[str, float]:
        found = bench.metrics(arch)
        return {m: found[m] for m in cheap}

    def factory() -> CallableEvaluator:
        return CallableEvaluator(bench.space, bench.metrics, objectives, cheap_fn=known if cheap else None)

    result = BenchResult(bench.name, config)
    with tempfile.TemporaryDirectory(prefix="nas-bench-") as tmp:
        db = config.db or str(Path(tmp) / "bench.db")
        stamp = time.strftime("%Y%m%d-%H%M%S")
        for strategy in config.strategies:
            for seed in range(config.first_seed, config.first_seed + config.seeds):
                name = f"{bench.name.replace(':', '-')}{'-cheap' if cheap else ''}-{strategy}-s{seed}-{stamp}"
                started = time.perf_counter()
                search(SearchConfig(strategy=strategy, budget=config.budget, targets=(), workers=config.workers,
                                    db=db, experiment=name, seed=seed),
                       evaluator_factory=factory, objectives=objectives)
                seconds = time.perf_counter() - started
                with Store(db, readonly=True) as store:
                    stored = [e.metrics for e in store.evaluations(name)]
                run = Run(strategy, seed, hypervolume_fraction(bench, stored), seconds, len(stored))
                result.runs.append(run)
                if progress:
                    tail = {n: run.curve[min(n, len(run.curve)) - 1] for n in config.checkpoints if n <= config.budget}
                    progress(f"{bench.name} {strategy} seed {seed}: " + ", ".join(f"{n}: {v:.3f}" for n, v in tail.items())
                             + f" ({run.ms_per_evaluation:.1f} ms per evaluation)")
    return result


def plot(results: Sequence[BenchResult], path: str | Path) -> Path:
    """One panel per benchmark: mean fraction of the true front's hypervolume over evaluations."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = min(3, len(results))
    rows = math.ceil(len(results) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.3 * rows), dpi=100, squeeze=False)
    for ax, result in zip(axes.flat, results, strict=False):
        for strategy in result.config.strategies:
            curves = np.array([r.curve for r in result.runs if r.strategy == strategy and len(r.curve) == result.config.budget])
            if not len(curves):
                continue
            x = np.arange(1, curves.shape[1] + 1)
            ax.plot(x, curves.mean(axis=0), label=strategy, lw=1.4)
            ax.fill_between(x, curves.min(axis=0), curves.max(axis=0), alpha=0.12)
        ax.axhline(0.98, color="#999", lw=0.8, ls="--")
        ax.set_ylim(max(0.0, min(0.7, ax.get_ylim()[0])), 1.005)
        ax.set_title(result.benchmark, fontsize=9)
        ax.set_xlabel("evaluations", fontsize=8)
        ax.set_ylabel("share of the true front's HV", fontsize=8)
    for ax in list(axes.flat)[len(results):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
