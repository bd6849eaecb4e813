"""Losing a machine: a node of a multi-node Ray cluster on this host (Ray's own test harness,
``ray.cluster_utils.Cluster``) is removed mid-search and mid-training. The search completes its
budget with no arch evaluated twice and nothing lost; training resumes from the last checkpoint."""

from __future__ import annotations

import functools
import threading
import time

import pytest

from nas.runner import SearchConfig, search
from nas.store import Store
from tests import _faults

pytestmark = pytest.mark.slow


@pytest.fixture
def cluster():
    """A head without CPUs (it only coordinates) and three one-CPU nodes, all on 127.0.0.1."""
    import ray
    from ray.cluster_utils import Cluster

    was_up = ray.is_initialized()
    if was_up:
        ray.shutdown()
    # Health checks every 0.3 s, a node declared dead after 3 missed: a lost node is seen in about a
    # second instead of Ray's default 15 s (the test's time, and what it has to outlast).
    health = {"health_check_initial_delay_ms": 0, "health_check_period_ms": 300, "health_check_timeout_ms": 300,
              "health_check_failure_threshold": 3}
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False,
                                                       "node_ip_address": "127.0.0.1", "_system_config": health})
    nodes = [c.add_node(num_cpus=1, node_ip_address="127.0.0.1") for _ in range(3)]
    c.wait_for_nodes()
    yield c, nodes
    ray.shutdown()
    c.shutdown()
    if was_up:
        from nas.runner.ray_pool import start_ray

        start_ray(2, None)


def _remove_when(cluster, nodes, ready, pick) -> threading.Thread:
    """A thread that, once ``ready()``, removes the node ``pick(nodes)`` names (None: keep waiting)."""
    removed: list = []

    def run() -> None:
        deadline = time.time() + 240
        while time.time() < deadline:
            if ready():
                node = pick(nodes)
                if node is not None:
                    cluster.remove_node(node, allow_graceful=False)
                    removed.append(node.node_id)
                    return
            time.sleep(0.05)

    thread = threading.Thread(target=run, daemon=True)
    thread.removed = removed  # type: ignore[attr-defined]
    thread.start()
    return thread


def test_a_node_lost_mid_search_loses_nothing_and_evaluates_nothing_twice(cluster, tmp_path):
    import ray.cloudpickle

    ray.cloudpickle.register_pickle_by_value(_faults)
    c, nodes = cluster
    db = str(tmp_path / "n.db")

    def busy_node(all_nodes):
        """A node a worker has stored a result from (the store's worker column names it)."""
        if _faults.stored(db) < 6:
            return None
        hosts = {r.worker.split("@")[1] for r in Store(db, readonly=True).evaluations("lose-a-node")}
        return next((n for n in all_nodes if n.node_id[:8] in hosts), None)

    killer = _remove_when(c, nodes, lambda: True, busy_node)
    result = search(SearchConfig(strategy="evolution", budget=24, workers=2, db=db, experiment="lose-a-node",
                                 targets=(), address=c.address, seed=1),
                    evaluator_factory=functools.partial(_faults.make_toy, 0.4), objectives=_faults.OBJECTIVES)
    killer.join(timeout=5)
    assert killer.removed, "the node was never removed (the search finished first)"
    records = Store(db, readonly=True).evaluations("lose-a-node")
    assert result.total == len(records) == 24 and len({r.arch for r in records}) == 24
    assert all(r.status == "ok" for r in records)  # the lost node's work ran again elsewhere, whole
    assert result.replaced_workers >= 1


def test_a_training_node_lost_resumes_from_the_last_checkpoint(cluster, tmp_path):
    from nas.space import load
    from nas.supernet import checkpoint
    from nas.supernet.distributed import train_distributed
    from nas.supernet.train import TrainConfig

    c, nodes = cluster
    out = tmp_path / "hv.ckpt"
    storage = tmp_path / "train"

    def training_node(all_nodes):
        """Once an epoch's checkpoint is reported, a node that runs a training worker."""
        import ray._private.state as state

        if len(list(storage.glob("*/checkpoint_2*"))) < 2:  # two epochs reported: the first is registered
            return None
        workers = [a for a in state.actors().values()
                   if a.get("State") == "ALIVE" and "RayTrainWorker" in str(a.get("ActorClassName"))]
        hosts = {w["Address"]["NodeID"] for w in workers}
        return next((n for n in all_nodes if n.node_id in hosts), None)

    killer = _remove_when(c, nodes, lambda: True, training_node)
    info = train_distributed(load("hybrid-vision"), "digits", TrainConfig(epochs=5, batch_size=64), out, workers=2,
                             address=c.address, storage=storage)
    killer.join(timeout=5)
    assert killer.removed, "no training node was removed"
    assert info.epoch == 5 and [h["epoch"] for h in info.history] == list(range(1, 6))  # each epoch once
    assert info.history[0]["restarts"] == 0 and info.history[-1]["restarts"] >= 1, info.history  # came back from a checkpoint
    assert checkpoint.load(out)[1].epoch == 5
