"""The store on SQLite and PostgreSQL: schema, uniqueness, read-only readers, clear errors."""

from __future__ import annotations

import datetime as dt

import pytest

from nas.errors import NasError
from nas.store import NewEvaluation, Store


def _eval(trial: int, arch: str, acc: float = 0.5) -> NewEvaluation:
    now = dt.datetime(2026, 1, 1)
    return NewEvaluation(trial, arch, f"h-{arch}", "ok", True, {"accuracy": acc, "cpu_ms": 1.0 + trial}, {},
                         "w", now, now, {"conv": 1.0})


def _experiment(store: Store, name: str = "exp"):
    space_id = store.ensure_space("toy", "hash-toy", "choice", "name: toy")
    return store.create_experiment(name, space_id, "random", ["cpu"],
                                   [{"name": "accuracy", "direction": "max"}, {"name": "cpu_ms", "direction": "min"}],
                                   ["cpu_ms<=5"], 10, 0, {}, {"accuracy": 0.0, "cpu_ms": 10.0})


def test_round_trip_and_uniqueness(store_url):
    store = Store(store_url)
    exp = _experiment(store)
    assert store.add_evaluation(exp.id, exp.space_id, _eval(0, "a"))
    assert store.add_evaluation(exp.id, exp.space_id, _eval(1, "b", 0.7))
    assert not store.add_evaluation(exp.id, exp.space_id, _eval(2, "a"))  # never twice in one experiment
    records = store.evaluations("exp")
    assert [r.arch for r in records] == ["a", "b"] and records[1].accuracy == 0.7
    assert store.experiment("exp").evaluations == 2
    rows = store.evaluation_rows("exp")
    assert rows[0]["cpu_ms"] == 1.0 and rows[0]["mix_conv"] == 1.0
    # the same arch in another experiment is stored once as an architecture, twice as evaluations
    other = _experiment(store, "exp2")
    assert store.add_evaluation(other.id, other.space_id, _eval(0, "a"))
    assert store.row_counts()["nas_architectures"] == 2


def test_existing_experiment_needs_resume(store_url):
    store = Store(store_url)
    _experiment(store)
    with pytest.raises(NasError, match="already exists.*--resume"):
        _experiment(store)
    with pytest.raises(NasError, match="no experiment 'nope'"):
        store.experiment("nope")


def test_readers_cannot_write(store_url):
    store = Store(store_url)
    exp = _experiment(store)
    reader = Store(store_url, readonly=True)
    assert reader.experiment("exp").name == "exp"
    before = reader.row_counts()
    with pytest.raises(NasError, match="read-only"):
        reader.add_evaluation(exp.id, exp.space_id, _eval(5, "z"))
    assert reader.row_counts() == before


def test_reopening_migrates_nothing_and_keeps_data(store_url):
    store = Store(store_url)
    exp = _experiment(store)
    store.add_evaluation(exp.id, exp.space_id, _eval(0, "a"))
    again = Store(store_url)
    assert again.experiment("exp").evaluations == 1


def test_nan_metrics_are_stored_as_null(store_url):
    store = Store(store_url)
    exp = _experiment(store)
    bad = NewEvaluation(0, "n", "h-n", "ok", False, {"accuracy": float("nan"), "cpu_ms": float("inf")}, {}, "w",
                        dt.datetime(2026, 1, 1), dt.datetime(2026, 1, 1))
    assert store.add_evaluation(exp.id, exp.space_id, bad)
    assert store.evaluations("exp")[0].metrics == {"accuracy": None, "cpu_ms": None}


def test_sqlite_uses_wal(tmp_path):
    store = Store(str(tmp_path / "s.db"))
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


@pytest.mark.parametrize(
    "url, needle",
    [
        ("postgresql://postgres@127.0.0.1:5999/test", "cannot reach the store"),
        ("mysql://root@127.0.0.1/test", "unsupported database 'mysql'"),
        ("/nonexistent/folder/nas.db", "folder '/nonexistent/folder' does not exist"),
    ],
)
def test_unusable_urls(url, needle):
    with pytest.raises(NasError, match=needle):
        Store(url)


def test_files_that_are_not_stores(tmp_path):
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database" * 100)
    with pytest.raises(NasError, match="file is not a database"):
        Store(str(junk))
    with pytest.raises(NasError, match="does not exist"):
        Store(str(tmp_path / "missing.db"), readonly=True)
    import sqlite3

    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE invoices (id INTEGER)")
    with pytest.raises(NasError, match="not a nas store"):
        Store(str(other), readonly=True)
    with pytest.raises(NasError, match="database of something else"):
        Store(str(other))
