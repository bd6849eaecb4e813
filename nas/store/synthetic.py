"""A store of synthetic evaluations of any size, for load tests of the dashboard and the store
(the metrics are made up from each arch's size; nothing here is a measurement)."""

from __future__ import annotations

import datetime as dt
import random


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
