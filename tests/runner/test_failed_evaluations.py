"""A failed evaluation keeps its reason (store, ``nas results --all``, the Python API), and a
live run and a resumed one tell the strategy the same things."""

from __future__ import annotations

import math

from nas.evaluate import CallableEvaluator
from nas.objectives import Objective
from nas.runner import SearchConfig, search
from nas.search import random_search
from nas.space import load
from nas.store import Store

OBJECTIVES = [Objective("score", "max"), Objective("cost", "min")]


def flaky(arch):
    """Raises for two-layer nets, returns NaN for tanh ones, else a score."""
    v = arch.as_dict()
    if v["layers"] == 2:
        raise ValueError(f"no room for {v['units']} units in two layers")
    if v["activation"] == "tanh":
        return {"score": math.nan, "cost": 1.0}
    return {"score": v["layers"] * v["units"] / 1000, "cost": v["units"] / 100}


def factory():
    return CallableEvaluator(load("toy-choice"), flaky, OBJECTIVES)


class Recorder:
    """Wraps RandomSearch's hooks to log what the strategy is told, in order."""

    log: list[tuple[str, str]] = []

    @classmethod
    def install(cls, monkeypatch):
        cls.log = []
        learn, failed = random_search.RandomSearch.learn, random_search.RandomSearch.tell_failed

        def learning(self, arch, metrics):
            cls.log.append(("learn", arch.to_str()))
            return learn(self, arch, metrics)

        def failing(self, arch):
            cls.log.append(("failed", arch.to_str()))
            return failed(self, arch)

        monkeypatch.setattr(random_search.RandomSearch, "learn", learning)
        monkeypatch.setattr(random_search.RandomSearch, "tell_failed", failing)


def test_a_failed_evaluation_keeps_its_reason_live_and_after_a_resume(tmp_path, cli, monkeypatch):
    db = str(tmp_path / "nas.db")
    Recorder.install(monkeypatch)
    config = SearchConfig(strategy="random", budget=25, workers=0, db=db, experiment="flaky", seed=3)
    first = search(config, factory, OBJECTIVES)
    live = list(Recorder.log)
    rows = Store(db, readonly=True).evaluations("flaky")
    failed = [e for e in rows if e.status == "failed"]
    assert first.failed == len(failed) > 0 and len(rows) == 25
    reasons = {e.error for e in failed}
    assert any(r.startswith("ValueError: no room for") for r in reasons), reasons
    assert "objective 'score' is nan" in reasons, reasons
    assert all(e.error is None for e in rows if e.status == "ok")
    assert all(not e.feasible for e in failed)
    # What the live run told: every ok arch learnt, every failed one told as failed, in order.
    assert [kind for kind, _ in live] == ["learn" if e.status == "ok" else "failed" for e in rows]

    # A resume replays exactly that before it goes on.
    Recorder.log = []
    search(SearchConfig(strategy="random", budget=35, workers=0, db=db, experiment="flaky", seed=3, resume=True),
           factory, OBJECTIVES)
    assert Recorder.log[:25] == live
    rows = Store(db, readonly=True).evaluations("flaky")
    assert len(rows) == 35 and len({e.arch for e in rows}) == 35
    assert sum(e.status == "failed" for e in rows) > len(failed)

    result = cli("results", "flaky", "--db", db, "--all")
    assert result.code == 0, result
    assert "failed evaluations" in result.out and "ValueError: no room for" in result.out
    assert "objective 'score' is nan" in result.out
    csv_out = cli("results", "flaky", "--db", db, "--all", "--format", "csv").out
    assert "error" in csv_out.splitlines()[0] and "no room for" in csv_out


def test_a_store_from_before_the_reason_column_is_migrated(tmp_path):
    import sqlalchemy as sa
    from alembic import command

    from nas.store._engine import Database

    db = tmp_path / "old.db"
    engine = sa.create_engine(f"sqlite:///{db}")
    cfg = Database._alembic_config(None)  # type: ignore[arg-type]
    with engine.begin() as conn:  # the schema as the last release wrote it
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001")
    with engine.begin() as conn:
        columns = {c["name"] for c in sa.inspect(conn).get_columns("nas_evaluations")}
    assert "error" not in columns
    engine.dispose()
    store = Store(str(db))  # a writer migrates it
    store.close()
    engine = sa.create_engine(f"sqlite:///{db}")
    with engine.begin() as conn:
        columns = {c["name"] for c in sa.inspect(conn).get_columns("nas_evaluations")}
    assert "error" in columns
    Store(str(db), readonly=True).close()  # and a reader accepts it
