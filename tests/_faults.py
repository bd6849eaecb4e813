"""Helpers for fault tests: a toy evaluator that can kill its worker, and a TCP proxy that can cut a database off."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import numpy as np

from nas.objectives import Objective

OBJECTIVES = [Objective("score", "max"), Objective("cost", "min")]


def toy_metrics(values: dict) -> dict[str, float]:
    size = values["layers"] * values["units"]
    return {"score": float(1 - np.exp(-size / 150) - 0.3 * values["dropout"]), "cost": float(0.1 + size / 100)}


def make_toy(delay: float = 0.0, victim: str | None = None, marker_dir: str | None = None, always: bool = False):
    """A plain-space evaluator. With ``victim`` (a ``NAME=VALUE`` of the toy space), evaluating an arch
    containing it kills the worker process: once (a marker file remembers) or ``always``."""
    from nas.evaluate import CallableEvaluator
    from nas.space import load

    space = load("toy-choice")

    def evaluate(arch):
        if victim and victim in arch.to_str():
            marker = Path(marker_dir) / f"killed-{arch.key}"
            if always or not marker.exists():
                marker.touch()
                os._exit(1)  # the worker dies mid-evaluation
        if delay:
            time.sleep(delay)
        return toy_metrics(arch.as_dict())

    return CallableEvaluator(space, evaluate, OBJECTIVES)


def stored(db: str) -> int:
    """Evaluations in a SQLite store so far (a cheap read-only count, fine to poll every few ms)."""
    if not Path(db).is_file():
        return 0
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)) as conn:
            return conn.execute("SELECT count(*) FROM nas_evaluations").fetchone()[0]
    except sqlite3.Error:  # the schema is still being created
        return 0


def kill_after(proc: subprocess.Popen, db: str, count: int, jitter_s: float = 0.0, timeout_s: float = 240) -> int:
    """SIGKILL a driver (started with ``start_new_session``) and the Ray processes it started, once its
    store holds ``count`` evaluations and ``jitter_s`` more seconds have passed. The driver is frozen
    with SIGSTOP first, so what it had committed at that instant is exactly what the kill leaves.
    Returns the count it was killed at, or -1 when it finished first."""
    deadline = time.time() + timeout_s
    while stored(db) < count:
        if proc.poll() is not None:
            return -1
        if time.time() > deadline:
            raise TimeoutError(f"the driver did not store {count} evaluations in {timeout_s:.0f} s")
        time.sleep(0.005)
    time.sleep(jitter_s)
    if proc.poll() is not None:
        return -1
    os.kill(proc.pid, signal.SIGSTOP)
    at = stored(db)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    return at


class Proxy:
    """A TCP proxy from 127.0.0.1:port to a target; ``cut()`` drops every connection and refuses new
    ones until ``restore()``: a database that becomes unreachable for a while."""

    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.port = self._free_port()
        self.conns: list[socket.socket] = []
        self.lock = threading.Lock()
        self.listener: socket.socket | None = None
        self.restore()

    @staticmethod
    def _free_port() -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    def restore(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        with self.lock:
            if self.listener is not None:
                # close() alone does not wake a thread blocked in accept() on Linux: shut it down first
                with contextlib.suppress(OSError):
                    self.listener.shutdown(socket.SHUT_RDWR)
                self.listener.close()
                self.listener = None
            for c in self.conns:
                with contextlib.suppress(OSError):
                    c.shutdown(socket.SHUT_RDWR)
                c.close()
            self.conns.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.close()
