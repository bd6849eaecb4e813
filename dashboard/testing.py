"""Running the dashboard from code, for tests and benchmarks: its server on a free port, Debian's
Chromium headless as this machine's own probe runs it, and a store of synthetic evaluations of
any size (load tests of the pages)."""

from __future__ import annotations

import datetime as dt
import os
import random
import subprocess
from contextlib import contextmanager

# Debian's Chromium, headless, as the machine's own probe runs it: no sandbox as root and no
# background networking (the network is closed).
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]


@contextmanager
def dashboard_server(db: str, timeout_s: float = 60):
    """``nas dashboard --db DB`` on a free port, up and healthy; yields its URL, stops it after."""
    import signal
    import socket
    import sys
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "nas", "dashboard", "--db", db, "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + timeout_s
        while True:
            try:
                urllib.request.urlopen(url + "/_stcore/health", timeout=2)
                break
            except OSError:
                if time.time() > deadline or proc.poll() is not None:
                    raise RuntimeError("the dashboard did not start: " + proc.stdout.read1().decode()[-2000:]) from None
                time.sleep(0.3)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def synthetic_store(db: str, n: int, seed: int = 0) -> None:
    """A store with one experiment of ``n`` evaluations of random hybrid-vision archs with synthetic metrics."""
    from nas.space import load
    from nas.store import NewEvaluation, Store

    space = load("hybrid-vision")
    store = Store(db)
    space_id = store.ensure_space(space.name, "synthetic", space.kind, space.source_text)
    exp = store.create_experiment("big", space_id, "random", ["cpu", "mcu-m7"],
                                  [{"name": "accuracy", "direction": "max"}, {"name": "cpu_ms", "direction": "min"}],
                                  ["sram_kb<=300"], n, seed, {}, {})  # the reference: by the rule, from the results
    rng = random.Random(seed)
    now = dt.datetime(2026, 1, 1)
    batch = []
    for i, arch in enumerate(space.sample_unique(rng, n)):
        size = sum(arch.widths) * sum(arch.depths)
        metrics = {"accuracy": 0.6 + 0.3 * (1 - 2.71828 ** (-size / 400)) + rng.gauss(0, 0.01),
                   "cpu_ms": 0.1 + size / 1500 + rng.random() * 0.05, "mcu-m7_ms": size / 10, "params": size * 100.0,
                   "macs": size * 1000.0, "sram_kb": size / 20, "flash_kb": size / 5}
        batch.append(NewEvaluation(i, arch.to_str(), arch.key, "ok", metrics["sram_kb"] <= 300, metrics, {}, "w", now,
                                   now, arch.block_mix()))
    store.add_evaluations(exp.id, space_id, batch)
