"""The search driver: ask a strategy, dispatch to workers, tell, and store every result.

Everything that can be checked before the store is touched is checked first (strategy,
targets, constraints, checkpoint, latency profiles, the database itself), so bad input
leaves the store as it was. Each finished evaluation is committed on its own; an arch this
experiment already holds is never evaluated again (the store's unique constraint makes that
hold even for concurrent drivers), so a driver killed at any point resumes with ``resume``.

The loop is one :class:`_SearchRun`, born from the opened experiment (its history, reference,
strategy and front are restored in the constructor), then ``fill`` the pool's free slots and
``record`` each result until the budget is stored, then ``finish``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import random
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from nas.errors import NasError
from nas.evaluate import Evaluator
from nas.objectives import (
    Constraint,
    Objective,
    parse_constraint,
    parse_objective,
    parse_reference,
    total_violation,
)
from nas.pareto import ReferenceRule, RunningFront, constraint_bounds, front_rows
from nas.runner._pool import Job, Outcome, WorkerPool
from nas.search import STRATEGIES, SpaceExhausted, make_strategy, objective_problem, usable
from nas.space import Arch, SearchSpace
from nas.store import NewEvaluation, Store


@dataclass(frozen=True)
class SearchConfig:
    """Everything ``nas search`` takes; see the CLI help for each option."""

    strategy: str = "surrogate"
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
    profiles: str | None = None  # a latency profiles folder to use before the default ones
    device: str = "cpu"  # where workers score accuracy: cpu, auto, cuda or cuda:N
    int8: bool = False  # every evaluation also reports int8_accuracy (the quantised subnet's)
    finetune_steps: int = 0  # fine-tuning steps from the inherited weights before accuracy is scored
    # "supernet" (inherited weights), "calibrated" (the checkpoint's nas supernet calibrate file, beside
    # it) or "calibrated:PATH": accuracy from a model fitted on a few stand-alone trainings.
    accuracy: str = "supernet"
    objectives: tuple[str, ...] = ()  # NAME:max|min each; default accuracy and each target's latency
    # The hypervolume reference, "accuracy=0.85,cpu_ms=2" or a mapping; objectives left out are set
    # from the first results (nas.pareto.ReferenceRule), and a constraint's bound counts as given.
    reference: str | dict[str, float] | None = None


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
    objectives: list[str] = field(default_factory=list)  # the names the search optimised, in order

    @property
    def overhead_share(self) -> float:
        """Share of the workers' wall time not spent evaluating (sampler, store, Ray, idling)."""
        return 1.0 - self.eval_s / (self.workers * self.wall_s) if self.wall_s > 0 else 0.0


def _check(config: SearchConfig) -> None:
    if config.strategy not in STRATEGIES:
        raise NasError(f"unknown strategy {config.strategy!r} (known: {', '.join(STRATEGIES)})")
    if config.budget < 1:
        raise NasError(f"--budget must be at least 1, got {config.budget}")
    if config.workers < 0:
        raise NasError(f"--workers must be 0 (evaluate in this process) or more, got {config.workers}")
    if config.val_examples is not None and config.val_examples < 1:
        raise NasError("--val-examples must be at least 1")
    if config.accuracy != "supernet" and config.accuracy.partition(":")[0] != "calibrated":
        raise NasError(f"--accuracy must be supernet, calibrated or calibrated:PATH, got {config.accuracy[:80]!r}")
    name = config.experiment
    if name is not None and (not name or len(name) > 200 or not name.isprintable()):
        raise NasError(f"--experiment must be 1 to 200 printable characters, got {len(name)} characters"
                       + ("" if name.isprintable() else " with control characters"))


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
    wanted = None
    if config.space:
        from nas.space import load

        wanted = load(config.space)
    if evaluator_factory is None:
        from pathlib import Path

        from nas.evaluate import SupernetEvaluator
        from nas.latency.profile import profiles_dirs
        from nas.latency.targets import get_target
        from nas.supernet.devices import resolve_device

        if not config.supernet:
            raise NasError("a supernet search needs --supernet CKPT (a checkpoint from nas supernet train)")
        resolve_device(config.device)  # a GPU asked for and not here: one line, before anything starts
        for t in config.targets:
            get_target(t)
        roots = ([Path(config.profiles)] if config.profiles else []) + profiles_dirs()
        calibration = None
        if config.accuracy != "supernet":
            from nas.supernet.calibrate import default_path

            calibration = config.accuracy.partition(":")[2] or default_path(config.supernet)
        screener: Evaluator = SupernetEvaluator.from_files(config.supernet, config.targets, True, config.val_examples,
                                                           roots=roots, hint=config.space, int8=config.int8,
                                                           finetune_steps=config.finetune_steps,
                                                           accuracy_calibration=calibration)
        payload = screener.payload(device=config.device)  # shipped to every worker through Ray's object store
        evaluator_factory = SupernetEvaluator.from_payload
        import hashlib

        scorer = {"supernet_sha256": hashlib.sha256(payload.checkpoint_bytes).hexdigest(),
                  "val_examples": config.val_examples, "int8": config.int8, "finetune_steps": config.finetune_steps,
                  "accuracy_calibration": payload.accuracy_model}  # the model itself, stored with the experiment
    else:
        screener = evaluator_factory()
        scorer = {}
    metric_names = list(screener.metric_names)
    if config.objectives and not objectives:
        objectives = [parse_objective(text) for text in config.objectives]
    objectives = list(objectives or screener.objectives)
    space = screener.space
    if wanted is not None and (wanted.name != space.name or wanted.source_text.strip() != space.source_text.strip()):
        raise NasError(f"the checkpoint was trained on space {space.name!r}, not {wanted.name!r}")
    constraints = [parse_constraint(c, metric_names) for c in config.constraints]
    for o in objectives:
        if o.name not in metric_names:
            raise NasError(f"objective {o.name!r} is not a metric of this search ({', '.join(metric_names)})")
    given = parse_reference(config.reference, objectives)

    _check_satisfiable(space, screener, constraints, objectives, config.seed)
    store = Store(config.db)
    try:
        run = _SearchRun(config, store, space, screener, objectives, constraints, progress, scorer, given)
        return run.run(evaluator_factory, payload)
    finally:
        store.close()


def _check_satisfiable(space: SearchSpace, screener: Evaluator, constraints: list[Constraint],
                       objectives: list[Objective], seed: int, n: int = 256) -> None:
    """Refuse, before the store is opened, constraints on cheap metrics that none of ``n`` random
    archs and the space's extremes meets: such a search could only end with nothing stored."""
    used = {o.name for o in objectives} | {c.metric for c in constraints}
    archs = space.sample_unique(random.Random(seed + 7), n) + list(space.extremes())
    cheap = [screener.cheap_metrics(a, used) for a in archs]
    screenable = [c for c in constraints if cheap and c.metric in cheap[0]]
    if screenable and all(total_violation(screenable, m) > 0 for m in cheap):
        closest = min(cheap, key=lambda m: total_violation(screenable, m))
        values = ", ".join(f"{c.metric} {closest[c.metric]:.4g}" for c in screenable)
        raise NasError(f"no arch tried meets {', '.join(c.text for c in screenable)} (of {len(archs)} random archs "
                       f"and the extremes, the closest has {values}): the constraints look unsatisfiable")


def _open_experiment(config: SearchConfig, store: Store, space: SearchSpace, objectives: list[Objective],
                     constraints: list[Constraint], scorer: dict[str, Any], given: dict[str, float]):
    from nas.space import space_hash

    if config.resume:
        if not config.experiment:
            raise NasError("--resume needs --experiment NAME")
        exp = store.experiment(config.experiment)
        mismatches = []
        if exp.strategy != config.strategy:
            mismatches.append(f"strategy {exp.strategy}")
        if list(exp.targets) != list(config.targets):
            mismatches.append(f"targets {', '.join(exp.targets)}")
        if list(exp.constraints) != [c.text for c in constraints]:
            mismatches.append(f"constraints {', '.join(exp.constraints) or 'none'}")
        if exp.space_hash != space_hash(space):
            mismatches.append(f"space {exp.space_name}")
        if [dict(o) for o in exp.objectives] != [o.as_dict() for o in objectives]:
            mismatches.append("objectives " + ", ".join(f"{o['name']}:{o['direction']}" for o in exp.objectives))
        # Accuracies from another checkpoint, validation split or scoring are not comparable.
        for key, label in (("supernet_sha256", "another supernet checkpoint"), ("val_examples", "--val-examples"),
                           ("int8", "--int8"), ("finetune_steps", "--finetune-steps"),
                           ("accuracy_calibration", "--accuracy")):
            was = exp.config.get(key, None if key == "accuracy_calibration" else scorer.get(key))
            if key in scorer and was != scorer[key]:
                mismatches.append(label if key == "supernet_sha256" else f"{label} {was}" if key != "accuracy_calibration"
                                  else "--accuracy " + ("calibrated (another calibration)" if was else "supernet"))
        if config.reference is not None and exp.config.get("reference_given", {}) != given:
            was = exp.config.get("reference_given", {})
            mismatches.append("--reference " + (",".join(f"{k}={v:g}" for k, v in was.items()) or "from its results"))
        if mismatches:
            raise NasError(f"experiment {exp.name!r} was started with {'; '.join(mismatches)}: resume it with the same")
        if config.budget < exp.evaluations:
            raise NasError(f"experiment {exp.name!r} already has {exp.evaluations} evaluations, more than --budget {config.budget}")
        if config.budget != exp.budget:
            store.set_budget(exp.name, config.budget)
        return exp
    name = config.experiment or f"{space.name}-{config.strategy}-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"
    if store.experiments(name):  # before anything is written: a clash leaves the store as it was
        raise NasError(f"experiment {name!r} already exists in {store.display_url}: pass --resume to continue it, "
                       "or choose another --experiment")
    space_id = store.ensure_space(space.name, space_hash(space), space.kind, space.source_text)
    reference = {**constraint_bounds(objectives, constraints), **given}  # the rest once the initial design is in
    return store.create_experiment(
        name, space_id, config.strategy, list(config.targets), [o.as_dict() for o in objectives],
        [c.text for c in constraints], config.budget, config.seed,
        {"supernet": config.supernet, "workers": config.workers, "val_examples": config.val_examples,
         "reference_given": given, **scorer},
        reference)


@contextlib.contextmanager
def open_pool(config: SearchConfig, screener: Evaluator, factory: Callable[..., Evaluator],
              payload: Any) -> Iterator[WorkerPool]:
    """The workers a search evaluates on: this process (``workers == 0``) or Ray actors, on a
    local Ray started here (and stopped after) or on the cluster at ``address``."""
    on_gpu = _on_gpu(config.device)
    if config.workers == 0:
        from nas.runner.local_pool import LocalPool

        # The screener already holds the supernet and data on the CPU; a GPU needs its own copy.
        pool: WorkerPool = LocalPool(factory(payload) if payload is not None and on_gpu else screener)
        try:
            yield pool
        finally:
            pool.shutdown()
        return
    from nas.runner.ray_pool import RayPool, start_ray, stop_ray

    with tempfile.TemporaryDirectory(prefix="nas-ray-") as tmp:
        started = start_ray(config.workers, config.address, None if config.address else tmp)
        try:
            gpus = 1.0 / config.workers if on_gpu else 0.0  # the workers share the GPU
            pool = RayPool(factory, config.workers, depth=config.depth, payload=payload, gpus=gpus)
            try:
                yield pool
            finally:
                pool.shutdown()
        finally:
            if started:
                stop_ray()


def _on_gpu(device: str) -> bool:
    """Whether ``device`` (as ``nas search --device`` takes it) means the GPU here."""
    if device == "cpu":
        return False  # a plain-space search never imports torch (tests/runner/test_search_e2e.py checks)
    from nas.supernet.devices import resolve_device

    return resolve_device(device).type == "cuda"


class _SearchRun:
    """One run of the search loop over an opened store (see the module's docstring)."""

    max_misses = 2000  # proposals in a row that cannot be evaluated before the space counts as exhausted

    def __init__(self, config: SearchConfig, store: Store, space: SearchSpace, screener: Evaluator,
                 objectives: list[Objective], constraints: list[Constraint], progress: SearchProgress | None,
                 scorer: dict[str, Any] | None = None, given: dict[str, float] | None = None) -> None:
        self.config, self.store, self.space, self.screener = config, store, space, screener
        self.given = given or {}
        self.objectives, self.constraints, self.progress = objectives, constraints, progress
        self.scorer = scorer or {}
        self.created = False  # whether this run created the experiment (an empty one is removed on bad input)
        self.worst: dict[str, float] = {}  # each objective's worst stored value: what a screened candidate is told
        self.names = [o.name for o in objectives]
        self.used = set(self.names) | {c.metric for c in constraints}
        self.evaluated = self.failed = self.screened = 0
        self.eval_seconds = 0.0
        self.inflight: set[Arch] = set()
        self.restore()  # the experiment, its history, reference, strategy and front

    def known_early(self, arch: Arch) -> dict[str, float]:
        """The cheap metrics the search uses: what the strategy may look at, and what screens."""
        return self.screener.cheap_metrics(arch, self.used)

    # -- restore ---------------------------------------------------------------------------------
    def restore(self) -> None:
        """Open (or reopen) the experiment and bring the strategy and the front up to its stored results."""
        self.created = not self.config.resume
        self.exp = exp = _open_experiment(self.config, self.store, self.space, self.objectives, self.constraints,
                                          self.scorer, self.given)
        for profile in self.screener.profiles().values():
            self.store.save_profile(profile)  # the dashboard shows the models the search predicted with
        history = self.store.evaluations(exp.name)
        self.stored: dict[Arch, dict[str, float]] = {self.space.parse(e.arch): e.metrics for e in history}
        ok = [e for e in history if e.status == "ok" and usable(self.objectives, e.metrics)]
        self.reference = ReferenceRule.from_stored(self.names, [o.direction for o in self.objectives], exp.reference,
                                                   [[e.metrics[n] for n in self.names] for e in ok])
        self.reference_stored = self.reference.fixed and set(exp.reference) >= set(self.names)
        self.strategy = make_strategy(self.config.strategy, self.space, self.objectives, self.constraints,
                                      self.config.seed + len(history), cheap=self.known_early, reference=self.reference)
        # Every stored row, failed ones with no metrics: told exactly as a live run told them.
        self.strategy.warm_start([(self.space.parse(e.arch), e.metrics if e.status == "ok" else {}) for e in history],
                                 taken=self.stored)
        self.feasible_points = [[e.metrics[n] for n in self.names] for e in ok
                                if total_violation(self.constraints, e.metrics) == 0]
        for e in ok:
            self._note_worst(e.metrics)
        self._new_front()
        probe = self.known_early(self.space.sample(random.Random(0)))
        self.screenable = [c for c in self.constraints if c.metric in probe]
        self.next_trial = max((e.trial for e in history), default=-1) + 1

    # -- fill ------------------------------------------------------------------------------------
    def fill(self, pool: WorkerPool) -> None:
        """Ask for candidates until every free slot is taken or the budget is covered. A candidate
        whose cheap metrics break a constraint is told without evaluation (screened)."""
        misses = 0
        while pool.free_slots() and len(self.stored) + pool.busy() < self.config.budget:
            try:
                arch = self.strategy.ask()
            except SpaceExhausted as exc:
                if pool.busy():
                    return  # let what is in flight finish first
                raise NasError(f"the search space is exhausted: {exc} ({len(self.stored)} evaluated, "
                               f"--budget {self.config.budget})") from None
            if arch in self.stored or arch in self.inflight:
                misses += 1  # a strategy that repeats itself despite knowing what is taken
            elif self.screenable and total_violation(self.screenable, cheap := self.known_early(arch)) > 0:
                self.tell_screened(arch, cheap)
                self.screened += 1
                misses += 1
            else:
                pool.submit(Job(arch.to_str(), self.next_trial))
                self.inflight.add(arch)
                self.next_trial += 1
                misses = 0
                continue
            if misses > self.max_misses:
                if pool.busy():
                    return
                raise NasError(f"the strategy proposed {self.max_misses:,} candidates in a row that were already "
                               "evaluated or broke a constraint: the constraints may be unsatisfiable")

    # -- record ----------------------------------------------------------------------------------
    def judge(self, result: dict[str, Any] | None, error: str | None) -> tuple[str, dict[str, Any], str | None]:
        """What an outcome is, decided here once: (status, metrics, reason). A result without a
        finite value of every objective failed as surely as one that raised."""
        if error is not None or result is None:
            return "failed", {}, error or "the worker returned nothing"
        metrics = dict(result["metrics"])
        problem = objective_problem(self.objectives, metrics)
        return ("failed", metrics, problem) if problem else ("ok", metrics, None)

    def record(self, outcome: Outcome) -> None:
        """Store one finished evaluation (committed on its own) and tell the strategy."""
        job, result, error = outcome
        arch = self.space.parse(job.arch_text)
        self.inflight.discard(arch)
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        status, metrics, reason = self.judge(result, error)
        if result is not None:
            self.eval_seconds += result["seconds"]
            begun = dt.datetime.fromtimestamp(result["started"], dt.UTC).replace(tzinfo=None)
            worker = f"{result['worker']}@{result['node'][:8]}"
        else:
            begun, worker = now, ""
        if status == "failed":
            self.failed += 1
        feasible = status == "ok" and total_violation(self.constraints, metrics) == 0
        if self.store.add_evaluation(self.exp.id, self.exp.space_id, NewEvaluation(
                job.trial, arch.to_str(), arch.key, status, feasible, metrics, self.screener.sources(),
                worker, begun, now, arch.block_mix(), reason)):
            self.evaluated += 1
        self.stored[arch] = metrics
        if status == "ok":
            values = [metrics[n] for n in self.names]
            moved = self.reference.add(values)
            self.strategy.tell(arch, metrics)
            self._note_worst(metrics)
            if feasible:
                self.feasible_points.append(values)
            if moved:
                self._new_front()  # the reference moved (the initial design is not in yet): every point again
            elif feasible:
                self.front.add(values)
            if self.reference.fixed and not self.reference_stored:
                self._store_reference()
        else:
            self.strategy.tell_failed(arch)
        if self.progress:
            self.progress.result(len(self.stored), self.config.budget, self.front.best(self.names),
                                 self.front.hypervolume())

    def tell_screened(self, arch: Arch, cheap: dict[str, float]) -> None:
        """A candidate screened out on its cheap metrics, told with them and, for the objectives
        it was never evaluated on, the worst value stored so far: it is infeasible, and no
        invented extreme (a 1e9) distorts a model. Before any result it teaches nothing."""
        missing = [n for n in self.names if n not in cheap]
        if all(n in self.worst for n in missing):
            self.strategy.tell(arch, {**cheap, **{n: self.worst[n] for n in missing}})
        else:
            self.strategy.tell_failed(arch)

    def _new_front(self) -> None:
        """The running front over the feasible results, with the reference as it stands."""
        self.front = RunningFront(list(self.reference.point()), [o.direction for o in self.objectives])
        for values in self.feasible_points:
            self.front.add(values)

    def _store_reference(self) -> None:
        self.store.set_reference(self.exp.name, self.reference.as_dict())
        self.reference_stored = True

    def _note_worst(self, metrics: dict[str, Any]) -> None:
        if not usable(self.objectives, metrics):  # a stored "ok" row from before failures were judged
            return
        for o in self.objectives:
            value, old = metrics[o.name], self.worst.get(o.name)
            self.worst[o.name] = value if old is None else (min(old, value) if o.direction == "max" else max(old, value))

    # -- the whole run ---------------------------------------------------------------------------
    def run(self, factory: Callable[..., Evaluator], payload: Any) -> SearchResult:
        budget = self.config.budget
        self.store.set_status(self.exp.name, "running")
        if self.progress:
            self.progress.started(self.exp.name, len(self.stored), budget)
        nodes: list[str] = []
        replaced = 0
        started = time.time()
        try:
            if len(self.stored) < budget:
                with open_pool(self.config, self.screener, factory, payload) as pool:
                    started = time.time()
                    while len(self.stored) < budget:
                        self.fill(pool)
                        for outcome in pool.wait(timeout=None):
                            self.record(outcome)
                    nodes = pool.nodes() if self.config.address or self.config.workers > 1 else []
                    replaced = pool.replaced
            if not self.reference_stored and self.reference.as_dict():
                self._store_reference()  # a budget smaller than the initial design: what its results gave
            self.store.set_status(self.exp.name, "finished")
        except NasError:
            # A search that stored nothing (an unsatisfiable constraint, say) leaves no empty
            # experiment behind; one that stored results keeps them, to resume.
            with contextlib.suppress(NasError):
                if not (self.created and self.store.delete_experiment_if_empty(self.exp.name)):
                    self.store.set_status(self.exp.name, "interrupted")
            raise
        except BaseException:
            # Best effort: when the store itself failed, its error is the one to report.
            with contextlib.suppress(NasError):
                self.store.set_status(self.exp.name, "interrupted")
            raise
        return self.finish(time.time() - started, nodes, replaced)

    def finish(self, wall: float, nodes: list[str], replaced: int) -> SearchResult:
        final = self.store.evaluations(self.exp.name)
        return SearchResult(self.exp.name, self.evaluated, len(final), self.screened, self.failed,
                            self.front.hypervolume(), pareto_front(final, self.objectives), wall, self.eval_seconds,
                            max(self.config.workers, 1), replaced, nodes, list(self.names))


def pareto_front(evaluations, objectives: Sequence[Objective]) -> list[dict[str, Any]]:
    """The feasible non-dominated evaluations (records), best first by the first objective."""
    rows = [{"arch": e.arch, "trial": e.trial, "status": e.status, "feasible": e.feasible, **e.metrics}
            for e in evaluations]
    return [dict(r) for r in front_rows(rows, [o.as_dict() for o in objectives])]
