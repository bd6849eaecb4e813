"""Ray actors that evaluate archs (:class:`RayPool`): each loads its evaluator once and keeps it.

Local Ray is the embedded default (all listeners on 127.0.0.1, temp files under the run
folder); ``address`` joins an existing cluster. A worker that dies is replaced by a fresh
actor and its in-flight work is resubmitted once.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from nas.evaluate import Evaluator
from nas.ray_session import start_ray, stop_ray
from nas.runner._pool import Job, Outcome, failure

__all__ = ["RayPool", "start_ray", "stop_ray"]

def _worker_class():
    import ray

    @ray.remote(num_cpus=1, max_restarts=0)
    class EvaluationWorker:
        """Holds one evaluator for its whole life; evaluates one arch per call."""

        def __init__(self, factory: Callable[..., Evaluator], threads: int, payload: Any = None) -> None:
            try:
                import torch

                torch.set_num_threads(threads)
            except ImportError:  # a plain-space evaluator may not need torch
                pass
            self.evaluator = factory() if payload is None else factory(payload)
            self.name = f"{socket.gethostname()}:{os.getpid()}"
            self.node = ray.get_runtime_context().get_node_id()

        def evaluate(self, arch_text: str) -> dict[str, Any]:
            arch = self.evaluator.space.parse(arch_text)
            started = time.time()
            metrics = self.evaluator.evaluate(arch)
            return {"metrics": metrics, "seconds": time.time() - started, "started": started,
                    "worker": self.name, "node": self.node}

        def identity(self) -> dict[str, str]:
            return {"worker": self.name, "node": self.node}

    return EvaluationWorker


@dataclass
class RayPool:
    """``workers`` actors with up to ``depth`` jobs queued on each.

    A job that was on a worker when it died runs again *alone* on an actor: nothing is queued
    behind it until it finishes. Queued calls make a death ambiguous (a finished call's reply can
    be lost when the call behind it kills the process), so only a death in isolation is proof
    that the job itself kills its worker."""

    factory: Callable[..., Evaluator]
    workers: int
    depth: int = 2
    threads: int = 1
    payload: Any = None  # put into the object store once; each actor builds its evaluator from it
    gpus: float = 0.0  # per actor: a fraction lets several actors share one GPU
    actors: list[Any] = field(default_factory=list)
    inflight: dict[Any, Job] = field(default_factory=dict)
    pending: list[Job] = field(default_factory=list)  # submitted, waiting for an actor that may take it
    replaced: int = 0

    def __post_init__(self) -> None:
        import ray

        self._cls = _worker_class()
        self._seq = itertools.count()
        self._payload_ref = ray.put(self.payload) if self.payload is not None else None
        self.actors = [self._new_actor() for _ in range(self.workers)]

    def _new_actor(self):
        cls = self._cls.options(num_gpus=self.gpus) if self.gpus else self._cls
        return cls.remote(self.factory, self.threads, self._payload_ref)

    def load(self, index: int) -> int:
        return sum(1 for job in self.inflight.values() if job.actor == index)

    def _isolating(self, index: int) -> bool:
        return any(job.actor == index and job.attempts for job in self.inflight.values())

    def _takes(self, index: int, job: Job) -> bool:
        if job.attempts:
            return self.load(index) == 0
        return self.load(index) < self.depth and not self._isolating(index)

    def busy(self) -> int:
        """Jobs submitted and not yet returned by :meth:`wait`."""
        return len(self.inflight) + len(self.pending)

    def free_slots(self) -> int:
        room = sum(self.depth - self.load(i) for i in range(len(self.actors)) if not self._isolating(i))
        return max(0, room - len(self.pending))

    def submit(self, job: Job) -> None:
        self.pending.append(job)
        self._dispatch()

    def _dispatch(self) -> None:
        """Send each pending job, in order, to the least loaded actor that may take it."""
        for job in list(self.pending):
            fits = [i for i in range(len(self.actors)) if self._takes(i, job)]
            if not fits:
                continue
            index = min(fits, key=self.load)
            self.pending.remove(job)
            job.actor = index
            job.seq = next(self._seq)
            self.inflight[self.actors[index].evaluate.remote(job.arch_text)] = job

    def wait(self, timeout: float | None = None) -> list[Outcome]:
        """Finished jobs as (job, result, error); a dead worker's jobs come back resubmitted or failed."""
        import ray
        from ray.exceptions import RayActorError, RayTaskError

        self._dispatch()
        if not self.inflight:
            return []
        ready, _ = ray.wait(list(self.inflight), num_returns=1, timeout=timeout)
        out = []
        for ref in ready:
            job = self.inflight.pop(ref)
            try:
                out.append((job, ray.get(ref), None))
            except RayTaskError as exc:  # the evaluation itself raised: not retried
                cause = exc.cause if getattr(exc, "cause", None) is not None else exc
                out.append((job, None, failure(cause)))
            except RayActorError:  # the worker died (ActorDiedError, ActorUnavailableError)
                out.extend(self._replace(job))
        self._dispatch()
        return out

    def _replace(self, job: Job) -> list[Outcome]:
        """Replace the dead actor and resubmit its unfinished jobs. The earliest unfinished one (an
        actor runs its calls in submission order) is charged an attempt and retried alone; a job
        that kills its worker while alone is reported as failed. Jobs queued behind it never ran,
        so an innocent arch never fails for its neighbour's crash."""
        import ray

        dead = job.actor
        with contextlib.suppress(Exception):  # it is gone already
            ray.kill(self.actors[dead], no_restart=True)
        self.actors[dead] = self._new_actor()
        self.replaced += 1
        orphans = [job]
        for ref, other in list(self.inflight.items()):
            if other.actor == dead and not self._finished_before_death(ref):
                orphans.append(self.inflight.pop(ref))
        orphans.sort(key=lambda j: j.seq)
        running = orphans[0]
        if running.attempts and len(orphans) == 1:  # it ran alone: the death is its own
            return [(running, None, "the worker died twice while evaluating it")]
        running.attempts += 1
        self.pending[:0] = orphans  # ahead of newer work, in their order
        return []

    @staticmethod
    def _finished_before_death(ref: Any) -> bool:
        """A result (or an evaluation's own error) the dead actor delivered before it died is kept,
        to be collected as usual."""
        import ray
        from ray.exceptions import RayActorError

        if not ray.wait([ref], timeout=0)[0]:
            return False
        try:
            ray.get(ref)
        except RayActorError:  # ActorDiedError and ActorUnavailableError are kinds of it
            return False
        except Exception:  # noqa: BLE001 - the evaluation's own error: it ran
            return True
        return True

    def nodes(self) -> list[str]:
        import ray

        return [i["node"] for i in ray.get([a.identity.remote() for a in self.actors])]

    def shutdown(self) -> None:
        import ray

        for actor in self.actors:
            with contextlib.suppress(Exception):
                ray.kill(actor, no_restart=True)
        self.actors.clear()
        self.inflight.clear()
        self.pending.clear()
