"""What the search driver needs of a set of workers: the :class:`WorkerPool` protocol.

Two pools implement it: :class:`nas.runner.ray_pool.RayPool` (Ray actors, locally or on a
cluster) and :class:`nas.runner.local_pool.LocalPool` (this process, ``--workers 0``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass
class Job:
    arch_text: str
    trial: int
    attempts: int = 0  # times a worker died while running it
    actor: int = -1
    seq: int = -1  # submission order, which is the order an actor runs its calls in


# (job, result, error): result holds metrics, seconds, started, worker and node; error is one line.
Outcome = tuple[Job, dict[str, Any] | None, str | None]


class WorkerPool(Protocol):
    replaced: int  # workers that died and were replaced

    def free_slots(self) -> int:
        """How many more jobs it takes now."""

    def busy(self) -> int:
        """Jobs submitted and not yet returned by :meth:`wait`."""

    def submit(self, job: Job) -> None: ...

    def wait(self, timeout: float | None = None) -> list[Outcome]:
        """Finished jobs (at least one, unless nothing is in flight or the timeout passes)."""

    def nodes(self) -> list[str]:
        """The node each worker runs on."""

    def shutdown(self) -> None: ...


def failure(exc: BaseException) -> str:
    """An evaluation's exception as the one line stored with a failed evaluation."""
    from nas.errors import first_line

    return f"{type(exc).__name__}: {first_line(exc) if str(exc) else ''}"
