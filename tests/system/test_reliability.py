"""Faults and concurrency: dying workers, killed drivers, an unreachable store, full and read-only disks,
concurrent writers with a reader. Each test names the guarantee the README lists."""

from __future__ import annotations

import functools
import os
import random
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from nas.errors import NasError
from nas.runner import SearchConfig, search
from nas.store import NewEvaluation, Store
from tests import _faults
from tests.conftest import REPO


def toy_config(db: str, name: str, budget: int, workers: int = 2, **kw) -> SearchConfig:
    return SearchConfig(strategy=kw.pop("strategy", "random"), budget=budget, workers=workers, db=db,
                        experiment=name, targets=(), **kw)


def toy_search(db: str, name: str, budget: int, factory, workers: int = 2, **kw):
    return search(toy_config(db, name, budget, workers, **kw), evaluator_factory=factory, objectives=_faults.OBJECTIVES)


def assert_complete(db: str, name: str, budget: int) -> None:
    """Exactly ``budget`` unique evaluations, each whole (status ok, every objective present)."""
    records = Store(db, readonly=True).evaluations(name)
    assert len(records) == budget
    assert len({r.arch for r in records}) == budget
    assert all(r.status == "ok" and {"score", "cost"} <= set(r.metrics) for r in records)


@pytest.fixture(scope="module", autouse=True)
def pickle_helpers_by_value():
    """Ray workers get the helper module's functions by value (they cannot import tests/)."""
    import ray.cloudpickle

    ray.cloudpickle.register_pickle_by_value(_faults)
    yield


# -- faults during a search -----------------------------------------------------------------------------


@pytest.mark.slow
def test_a_worker_killed_mid_evaluation_is_replaced_and_its_work_retried_once(tmp_path, ray_local):
    db = str(tmp_path / "w.db")
    factory = functools.partial(_faults.make_toy, 0.05, "units=64", str(tmp_path))
    result = toy_search(db, "kill-once", 20, factory)
    assert result.replaced_workers >= 1 and result.failed == 0
    assert_complete(db, "kill-once", 20)
    killed = {p.name.removeprefix("killed-") for p in tmp_path.glob("killed-*")}
    stored = {r.arch_hash: r for r in Store(db, readonly=True).evaluations("kill-once")}
    assert len(killed) == result.replaced_workers  # each victim killed its worker exactly once
    assert killed <= set(stored)  # and was then evaluated on the replacement, once, whole
    assert all(stored[k].status == "ok" and "units=64" in stored[k].arch for k in killed)


@pytest.mark.slow
def test_a_worker_that_always_dies_is_stored_once_as_failed(tmp_path, ray_local):
    db = str(tmp_path / "w2.db")
    factory = functools.partial(_faults.make_toy, 0.0, "units=128", str(tmp_path), True)
    result = toy_search(db, "kill-always", 12, factory)
    records = Store(db, readonly=True).evaluations("kill-always")
    failed = [r for r in records if r.status == "failed"]
    assert result.failed == len(failed) >= 1
    assert all("units=128" in r.arch for r in failed)
    assert len({r.arch for r in records}) == len(records) == 12


DRIVER = textwrap.dedent("""
    import functools, sys
    sys.path.insert(0, {repo!r})
    import ray.cloudpickle
    from tests import _faults
    ray.cloudpickle.register_pickle_by_value(_faults)
    from nas.runner import SearchConfig, search
    search(SearchConfig(strategy="evolution", budget={budget}, workers=2, db={db!r}, experiment="k", targets=(),
                        resume={resume}, seed=3),
           evaluator_factory=functools.partial(_faults.make_toy, {delay}), objectives=_faults.OBJECTIVES)
""")


@pytest.mark.slow
def test_driver_killed_at_random_points_resumes_to_exactly_the_budget(tmp_path):
    db, budget = str(tmp_path / "k.db"), 24
    rng = random.Random(0)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    kills = []
    for attempt in range(3):
        resume = attempt > 0  # every kill lands after the experiment and some evaluations exist
        script = DRIVER.format(repo=str(REPO), budget=budget, db=db, resume=resume, delay=0.12)
        proc = subprocess.Popen([sys.executable, "-c", script], env=env, start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # a random point: after a few more evaluations, then a random fraction of the next one
        at = _faults.kill_after(proc, db, _faults.stored(db) + rng.randint(2, 5), jitter_s=rng.uniform(0, 0.12))
        if at >= 0:
            kills.append(at)
        records = Store(db, readonly=True).evaluations("k")
        assert len({r.arch for r in records}) == len(records)  # never twice, even mid-kill
        assert all(r.status == "ok" for r in records)  # never half a row
    assert len(kills) == 3 and kills == sorted(kills) and kills[-1] < budget, kills
    final = subprocess.run([sys.executable, "-c", DRIVER.format(repo=str(REPO), budget=budget, db=db, resume=True,
                                                                 delay=0.0)],
                           env=env, capture_output=True, text=True, timeout=600)
    assert final.returncode == 0, final.stderr[-2000:]
    assert_complete(db, "k", budget)


@pytest.mark.postgres
def test_store_unreachable_for_a_few_seconds_loses_nothing(pg_url, monkeypatch):
    monkeypatch.setattr(Store, "retries", 5)
    monkeypatch.setattr(Store, "backoff_s", 0.2)
    proxy = _faults.Proxy(5432)
    url = pg_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    timer = threading.Timer(1.0, proxy.cut)
    restore = threading.Timer(2.5, proxy.restore)
    timer.start()
    restore.start()
    toy_search(url, "outage", 30, functools.partial(_faults.make_toy, 0.1), workers=0)
    restore.join()
    assert_complete(pg_url, "outage", 30)


@pytest.mark.postgres
def test_store_gone_for_good_is_one_clear_error_and_keeps_what_was_committed(pg_url, monkeypatch):
    monkeypatch.setattr(Store, "retries", 3)
    monkeypatch.setattr(Store, "backoff_s", 0.1)
    proxy = _faults.Proxy(5432)
    url = pg_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    threading.Timer(1.5, proxy.cut).start()
    with pytest.raises(NasError, match="stayed unreachable") as info:
        toy_search(url, "gone", 140, functools.partial(_faults.make_toy, 0.05), workers=0)  # the toy space has 144
    assert "\n" not in str(info.value)
    records = Store(pg_url, readonly=True).evaluations("gone")
    assert 0 < len(records) < 140 and all(r.status == "ok" for r in records)


def _mount_tmpfs(path: Path, size: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True).returncode == 0


def test_a_full_disk_is_one_clear_error(tmp_path, cli):
    folder = tmp_path / "tiny"
    if not _mount_tmpfs(folder, "1m"):
        pytest.skip("cannot mount a tmpfs here (needs root)")
    store = None
    try:
        db = str(folder / "nas.db")
        store = Store(db)
        space_id = store.ensure_space("toy", "h", "choice", "name: toy")
        exp = store.create_experiment("full", space_id, "random", [], [{"name": "score", "direction": "max"}], [], 10**6,
                                      0, {}, {})
        with pytest.raises(NasError, match="disk is full|disk I/O|No space") as info:
            for i in range(100_000):
                blob = {"score": 0.5, "pad": "x" * 20_000}
                store.add_evaluation(exp.id, space_id, NewEvaluation(i, f"a{i}", f"h{i}", "ok", True, blob, {}, "w",
                                                                     _now(), _now()))
        assert "\n" not in str(info.value)
        with Store(db, readonly=True) as reader:
            kept = reader.evaluations("full")
        assert kept and all(r.metrics["score"] == 0.5 for r in kept)  # what was committed is whole
    finally:
        if store is not None:
            store.close()  # open connections would keep the tmpfs busy
        if subprocess.run(["umount", str(folder)], capture_output=True).returncode:
            subprocess.run(["umount", "--lazy", str(folder)], capture_output=True)


def _now():
    import datetime as dt

    return dt.datetime(2026, 1, 1)


def test_a_read_only_database_file_is_one_clear_error(tmp_path, cli):
    db = tmp_path / "ro.db"
    store = Store(str(db))
    space_id = store.ensure_space("toy", "h", "choice", "name: toy")
    store.create_experiment("ro", space_id, "random", [], [{"name": "score", "direction": "max"}], [], 5, 0, {}, {})
    store.close()
    if subprocess.run(["chattr", "+i", str(db)], capture_output=True).returncode != 0:
        pytest.skip("cannot make a file immutable here (needs root and chattr)")
    try:
        with pytest.raises(NasError, match="read-only|readonly|cannot") as info:
            s = Store(str(db))
            s.add_evaluation(1, space_id, NewEvaluation(0, "a", "h", "ok", True, {"score": 1.0}, {}, "w", _now(), _now()))
        assert "\n" not in str(info.value)
        assert cli("results", "ro", "--db", db).code == 0  # still readable
    finally:
        subprocess.run(["chattr", "-i", str(db)], capture_output=True)


def test_sqlite_waits_for_a_short_lock_and_reports_a_long_one(tmp_path, monkeypatch):
    import sqlite3

    db = str(tmp_path / "lock.db")
    store = Store(db)
    space_id = store.ensure_space("toy", "h", "choice", "name: toy")
    exp = store.create_experiment("lock", space_id, "random", [], [{"name": "score", "direction": "max"}], [], 5, 0, {}, {})
    store.close()

    def hold(seconds: float) -> threading.Thread:
        ready = threading.Event()

        def run() -> None:
            conn = sqlite3.connect(db, timeout=1)
            conn.execute("BEGIN EXCLUSIVE")
            ready.set()
            time.sleep(seconds)
            conn.rollback()
            conn.close()

        thread = threading.Thread(target=run)
        thread.start()
        ready.wait()
        return thread

    monkeypatch.setattr(Store, "sqlite_busy_ms", 3000)
    writer = Store(db)
    t = hold(1.0)
    assert writer.add_evaluation(exp.id, space_id, NewEvaluation(0, "a", "ha", "ok", True, {"score": 1.0}, {}, "w", _now(), _now()))
    t.join()
    monkeypatch.setattr(Store, "sqlite_busy_ms", 200)
    monkeypatch.setattr(Store, "retries", 2)
    monkeypatch.setattr(Store, "backoff_s", 0.1)
    writer = Store(db)
    t = hold(4.0)
    with pytest.raises(NasError, match="database is locked"):
        writer.add_evaluation(exp.id, space_id, NewEvaluation(1, "b", "hb", "ok", True, {"score": 1.0}, {}, "w", _now(), _now()))
    t.join()
    assert len(Store(db, readonly=True).evaluations("lock")) == 1


# -- concurrency ---------------------------------------------------------------------------------------------------

CONCURRENT = textwrap.dedent("""
    import functools, sys
    sys.path.insert(0, {repo!r})
    import ray.cloudpickle
    from tests import _faults
    ray.cloudpickle.register_pickle_by_value(_faults)
    from nas.runner import SearchConfig, search
    search(SearchConfig(strategy="nsga2", budget={budget}, workers=1, db={db!r}, experiment={name!r}, targets=(), seed={seed}),
           evaluator_factory=functools.partial(_faults.make_toy, 0.02), objectives=_faults.OBJECTIVES)
""")


def _concurrent(db: str, budget: int) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    Store(db).close()  # the schema exists before the race
    procs = [subprocess.Popen([sys.executable, "-c", CONCURRENT.format(repo=str(REPO), budget=budget, db=db, name=n, seed=i)],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
             for i, n in enumerate(("first", "second"))]
    reads, errors = 0, []
    reader = Store(db, readonly=True)
    while any(p.poll() is None for p in procs):
        try:
            for e in reader.experiments():  # what the dashboard does, while they write
                reader.evaluation_rows(e.name)
            reads += 1
        except NasError as exc:  # the experiments may not exist yet
            errors.append(str(exc))
        time.sleep(0.2)
    for p in procs:
        assert p.wait(timeout=600) == 0, p.stderr.read().decode()[-2000:]
    assert reads > 3
    for name in ("first", "second"):
        assert_complete(db, name, budget)
    counts = Store(db, readonly=True).row_counts()
    assert counts["nas_evaluations"] == 2 * budget
    assert counts["nas_spaces"] == 1  # the shared space was not duplicated by the race


@pytest.mark.slow
@pytest.mark.postgres
def test_two_searches_and_a_reader_on_postgresql(pg_url):
    _concurrent(pg_url, 30)


@pytest.mark.slow
def test_two_searches_and_a_reader_on_sqlite_wal(tmp_path):
    _concurrent(str(tmp_path / "c.db"), 30)
