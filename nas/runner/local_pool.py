"""The :class:`~nas.runner._pool.WorkerPool` without Ray: one job at a time in this process
(``--workers 0``; for notebooks, debugging and benchmarks of the strategies alone)."""

from __future__ import annotations

import os
import socket
import time

from nas.evaluate import Evaluator
from nas.runner._pool import Job, Outcome, failure


class LocalPool:
    def __init__(self, evaluator: Evaluator) -> None:
        self.evaluator = evaluator
        self.inflight: list[Job] = []
        self.replaced = 0
        self.worker = f"{socket.gethostname()}:{os.getpid()}"

    def free_slots(self) -> int:
        return 0 if self.inflight else 1

    def busy(self) -> int:
        return len(self.inflight)

    def submit(self, job: Job) -> None:
        self.inflight.append(job)

    def wait(self, timeout: float | None = None) -> list[Outcome]:
        out: list[Outcome] = []
        while self.inflight:
            job = self.inflight.pop(0)
            started = time.time()
            try:
                metrics = self.evaluator.evaluate(self.evaluator.space.parse(job.arch_text))
            except Exception as exc:  # noqa: BLE001 - stored as a failed evaluation, as with Ray
                out.append((job, None, failure(exc)))
                continue
            out.append((job, {"metrics": metrics, "seconds": time.time() - started, "started": started,
                              "worker": self.worker, "node": "local"}, None))
        return out

    def nodes(self) -> list[str]:
        return ["local"]

    def shutdown(self) -> None:
        self.inflight.clear()
