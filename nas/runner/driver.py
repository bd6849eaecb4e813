"""The search driver: ask a strategy, dispatch to Ray workers, tell, and store every result.

Everything that can be checked before the store is touched is checked first (strategy,
targets, constraints, checkpoint, latency profiles, the database itself), so bad input
leaves the store as it was. Each finished evaluation is committed on its own; an arch this
experiment already holds is never evaluated again (the store's unique constraint makes that
hold even for concurrent drivers), so a driver killed at any point resumes with ``resume``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import random
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from nas.errors import NasError
from nas.evaluate import Evaluator
from nas.objectives import (
    ARCH_METRICS,
    Constraint,
    Objective,
    latency_metric,
    parse_constraint,
    total_violation,
)
from nas.pareto import RunningFront, front_rows
from nas.runner.ray_pool import Job, LocalPool, Pool, start_ray, stop_ray
from nas.search import STRATEGIES, make_strategy
from nas.space import Arch, SearchSpace
from nas.store import NewEvaluation, Store


@dataclass(frozen=True)
class SearchConfig:
    """Everything ``nas search`` takes; see the CLI help for each option."""

    strategy: str = "nsga2"
    budget: int = 100
    targets: tuple[str, ...] = ("cpu",)
    constraints: tuple[str, ...] = ()
    workers: int = 2
    experiment: str | None = None
    db: str | None = None
    resume: bool = False
    address: str | None = None
    seed: int = 0
    supernet: str | None = None
    space: str | None = None
    val_examples: int | None = None
    depth: int = 2


class SearchProgress(Protocol):
    def started(self, experiment: str, done: int, budget: int) -> None: ...
    def result(self, done: int, budget: int, best: dict[str, float], hypervolume: float) -> None: ...


@dataclass
class SearchResult:
    experiment: str
    evaluated: int  # in this run
    total: int  # stored for the experiment
    screened: int  # candidates rejected by a constraint before evaluation
    failed: int
    hypervolume: float
    front: list[dict[str, Any]]
    wall_s: float
    eval_s: float  # summed evaluation time on the workers
    workers: int
    replaced_workers: int
    nodes: list[str] = field(default_factory=list)

    @property
    def overhead_share(self) -> float:
        """Share of the workers' wall time not spent evaluating (sampler, store, Ray, idling)."""
        return 1.0 - self.eval_s / (self.workers * self.wall_s) if self.wall_s > 0 else 0.0


def known_metrics(targets: Sequence[str]) -> list[str]:
    return ["accuracy", *(latency_metric(t) for t in targets), *ARCH_METRICS]


def _check(config: SearchConfig) -> None:
    if config.strategy not in STRATEGIES:
        raise NasError(f"unknown strategy {config.strategy!r} (known: {', '.join(STRATEGIES)})")
    if config.budget < 1:
        raise NasError(f"--budget must be at least 1, got {config.budget}")
    if config.workers < 0:
        raise NasError(f"--workers must be 0 (evaluate in this process) or more, got {config.workers}")
    if config.val_examples is not None and config.val_examples < 1:
        raise NasError("--val-examples must be at least 1")


def reference_point(objectives: Sequence[Objective], cheap: Callable[[Arch], dict[str, float]],
                    space: SearchSpace, seed: int) -> dict[str, float]:
    """Hypervolume reference, fixed per experiment: accuracy 0, and 1.1 x the worst predicted
    value of each other objective over the largest subnet and 64 random ones."""
    archs = space.sample_unique(random.Random(seed + 99), 64)
    if hasattr(space, "largest"):
        archs.append(space.largest())
    predicted = [cheap(a) for a in archs]
    ref = {}
    for o in objectives:
        if o.name == "accuracy":
            ref[o.name] = 0.0
            continue
        values = [p[o.name] for p in predicted if o.name in p]
        if values:
            ref[o.name] = 1.1 * max(values) if o.direction == "min" else 0.9 * min(values)
    return ref


def search(
    config: SearchConfig,
    evaluator_factory: Callable[[], Evaluator] | None = None,
    objectives: Sequence[Objective] | None = None,
    progress: SearchProgress | None = None,
) -> SearchResult:
    """Run (or resume) a search; see :class:`SearchConfig`. A user's own evaluator comes as a
    factory (called once in each worker) together with the objectives to optimise."""
    _check(config)
    for text in config.constraints:  # syntax now, before anything is loaded; metric names below
        parse_constraint(text, None)
    # -- everything that can fail on bad input, before the store ------------------------------
    payload: Any = None
    if evaluator_factory is None:
        from nas.evaluate import SupernetEvaluator
        from nas.latency.targets import get_target

        if not config.supernet:
            raise NasError("a supernet search needs --supernet CKPT (a checkpoint from nas supernet train)")
        for t in config.targets:
            get_target(t)
        screener: Evaluator = SupernetEvaluator.from_files(config.supernet, config.targets, True, config.val_examples)
        payload = screener.payload()  # shipped to every worker through Ray's object store
        evaluator_factory = SupernetEvaluator.from_payload
        metric_names = list(screener.metric_names)
        objectives = list(objectives or screener.objectives)
    else:
        screener = evaluator_factory()
        metric_names = list(screener.metric_names)
        objectives = list(objectives or screener.objectives)
    space = screener.space
    if config.space:
        from nas.space import load

        wanted = load(config.space)
        if wanted.name != space.name or wanted.source_text.strip() != space.source_text.strip():
            raise NasError(f"the checkpoint was trained on space {space.name!r}, not {wanted.name!r}")
    constraints = [parse_constraint(c, metric_names) for c in config.constraints]
    for o in objectives:
        if o.name not in metric_names:
            raise NasError(f"objective {o.name!r} is not a metric of this search ({', '.join(metric_names)})")

    store = Store(config.db)
    try:
        return _run(config, store, space, screener, evaluator_factory, payload, objectives, constraints, progress)
    finally:
        store.close()


def _open_experiment(config: SearchConfig, store: Store, space: SearchSpace, objectives: list[Objective],
                     constraints: list[Constraint], screener: Evaluator):
    from nas.latency.profile import space_hash

    if config.resume:
        if not config.experiment:
            raise NasError("--resume needs --experiment NAME")
        exp = store.experiment(config.experiment)
        mismatches = []
        if exp.strategy != config.strategy:
            mismatches.append(f"strategy {exp.strategy}")
        if list(exp.targets) != list(config.targets):
            mismatches.append(f"targets {', '.join(exp.targets)}")
        if [c for c in exp.constraints] != [c.text for c in constraints]:
            mismatches.append(f"constraints {', '.join(exp.constraints) or 'none'}")
        if exp.space_hash != space_hash(space):
            mismatches.append(f"space {exp.space_name}")
        if mismatches:
            raise NasError(f"experiment {exp.name!r} was started with {'; '.join(mismatches)}: resume it with the same")
        if config.budget < exp.evaluations:
            raise NasError(f"experiment {exp.name!r} already has {exp.evaluations} evaluations, more than --budget {config.budget}")
        return exp
    name = config.experiment or f"{space.name}-{config.strategy}-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"
    if store.experiments(name):  # before anything is written: a clash leaves the store as it was
        raise NasError(f"experiment {name!r} already exists in {store.display_url}: pass --resume to continue it, "
                       "or choose another --experiment")
    space_id = store.ensure_space(space.name, space_hash(space), space.kind, space.source_text)
    reference = reference_point(objectives, screener.cheap, space, config.seed)
    return store.create_experiment(
        name, space_id, config.strategy, list(config.targets), [o.as_dict() for o in objectives],
        [c.text for c in constraints], config.budget, config.seed,
        {"supernet": config.supernet, "workers": config.workers, "val_examples": config.val_examples}, reference)


def _run(config: SearchConfig, store: Store, space: SearchSpace, screener: Evaluator,
         factory: Callable[..., Evaluator], payload: Any, objectives: list[Objective], constraints: list[Constraint],
         progress: SearchProgress | None) -> SearchResult:
    exp = _open_experiment(config, store, space, objectives, constraints, screener)
    for profile in getattr(screener, "profiles", dict)().values():
        store.save_profile(profile)  # the dashboard shows the models the search predicted with
    if config.resume and config.budget != exp.budget:
        store.set_budget(exp.name, config.budget)
    budget = config.budget
    history = store.evaluations(exp.name)
    stored: dict[Arch, dict[str, float]] = {space.parse(e.arch): e.metrics for e in history}
    used = {o.name for o in objectives} | {c.metric for c in constraints}

    def known_early(arch: Arch) -> dict[str, float]:
        """The cheap metrics the search uses: what the strategy may look at, and what screens."""
        return screener.cheap_metrics(arch, used)

    strategy = make_strategy(config.strategy, space, objectives, constraints, config.seed + len(history),
                             cheap=known_early)
    strategy.warm_start([(space.parse(e.arch), e.metrics) for e in history if e.status == "ok"])
    directions = [o.direction for o in objectives]
    names = [o.name for o in objectives]
    reference = [exp.reference.get(n, math.nan) for n in names]
    points = _Front(directions, reference)  # the feasible results' best values and front, kept as they arrive
    for e in history:
        if e.status == "ok" and total_violation(constraints, e.metrics) == 0:
            points.add([e.metrics.get(n, math.nan) for n in names])
    cheap_metrics = set(known_early(space.sample(random.Random(0))))
    screenable = [c for c in constraints if c.metric in cheap_metrics]
    store.set_status(exp.name, "running")
    if progress:
        progress.started(exp.name, len(stored), budget)

    next_trial = max((e.trial for e in history), default=-1) + 1
    evaluated = failed = screened = 0
    eval_seconds = 0.0
    inflight: set[Arch] = set()
    started_ray = False
    pool: Pool | LocalPool | None = None
    nodes: list[str] = []
    loop_start = time.time()
    try:
        if len(stored) < budget:
            with tempfile.TemporaryDirectory(prefix="nas-ray-") as tmp:
                if config.workers == 0:
                    pool = LocalPool(screener)
                else:
                    started_ray = start_ray(config.workers, config.address, None if config.address else tmp)
                    pool = Pool(factory, config.workers, depth=config.depth, payload=payload)
                loop_start = time.time()
                misses = 0
                while len(stored) < budget:
                    # Fill every free slot, never beyond the budget.
                    while pool.free_slots() and len(stored) + pool.busy() < budget:
                        arch = strategy.ask()
                        if arch in stored:
                            strategy.tell(arch, stored[arch])
                        elif arch in inflight:
                            pass  # told when its result arrives
                        else:
                            cheap = known_early(arch) if screenable else {}
                            if screenable and total_violation(screenable, cheap) > 0:
                                strategy.tell(arch, cheap)
                                screened += 1
                            else:
                                pool.submit(Job(arch.to_str(), next_trial))
                                inflight.add(arch)
                                next_trial += 1
                                misses = 0
                                continue
                        misses += 1
                        if misses > 2000:
                            if not pool.busy():
                                raise NasError(
                                    "the strategy proposed 2,000 candidates in a row that were already evaluated "
                                    "or broke a constraint: the space may be exhausted or the constraints unsatisfiable")
                            break
                    for job, result, error in pool.wait(timeout=None):
                        arch = space.parse(job.arch_text)
                        inflight.discard(arch)
                        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
                        if error is None:
                            metrics = result["metrics"]
                            eval_seconds += result["seconds"]
                            begun = dt.datetime.fromtimestamp(result["started"], dt.UTC).replace(tzinfo=None)
                            worker = f"{result['worker']}@{result['node'][:8]}"
                            status = "ok"
                        else:
                            metrics, begun, worker, status = {}, now, "", "failed"
                            failed += 1
                        feasible = status == "ok" and total_violation(constraints, metrics) == 0
                        mix = arch.block_mix() if hasattr(arch, "block_mix") else {}
                        if store.add_evaluation(exp.id, exp.space_id, NewEvaluation(
                                job.trial, arch.to_str(), arch.key, status, feasible, metrics, screener.sources(),
                                worker, begun, now, mix)):
                            evaluated += 1
                        stored[arch] = metrics
                        strategy.tell(arch, metrics)
                        if feasible:
                            points.add([metrics.get(n, math.nan) for n in names])
                        if progress:
                            progress.result(len(stored), budget, points.best(names), points.hypervolume())
                nodes = pool.nodes() if config.address or config.workers > 1 else []
        store.set_status(exp.name, "finished")
    except BaseException:
        # Best effort: when the store itself failed, its error is the one to report.
        with contextlib.suppress(NasError):
            store.set_status(exp.name, "interrupted")
        raise
    finally:
        if pool is not None:
            replaced = pool.replaced
            pool.shutdown()
        else:
            replaced = 0
        if started_ray:
            stop_ray()
    wall = time.time() - loop_start
    final = store.evaluations(exp.name)
    return SearchResult(exp.name, evaluated, len(final), screened, failed, points.hypervolume(),
                        pareto_front(final, objectives), wall, eval_seconds, max(config.workers, 1),
                        replaced, nodes)


class _Front(RunningFront):
    """The feasible results' front and hypervolume, and the best value per objective, kept as
    results arrive (recomputing over every result made a long search's progress bar cost more
    than its evaluations)."""

    def __init__(self, directions: list[str], reference: list[float]) -> None:
        super().__init__(reference, directions)
        self.best_min = np.full(len(directions), np.nan)

    def add(self, point: list[float]) -> None:
        self.best_min = np.fmin(self.best_min, np.asarray(point, dtype=float) * self.signs)
        super().add(point)

    def best(self, names: list[str]) -> dict[str, float]:
        return {n: float(v * s) for n, v, s in zip(names, self.best_min, self.signs, strict=True) if not np.isnan(v)}


def pareto_front(evaluations, objectives: Sequence[Objective]) -> list[dict[str, Any]]:
    """The feasible non-dominated evaluations (records), best first by the first objective."""
    rows = [{"arch": e.arch, "trial": e.trial, "status": e.status, "feasible": e.feasible, **e.metrics}
            for e in evaluations]
    return [dict(r) for r in front_rows(rows, [o.as_dict() for o in objectives])]
