"""Data access for the dashboard: a read-only store and cached queries returning DataFrames."""

from __future__ import annotations

import os
import sys

import numpy as np
import pandas as pd
import streamlit as st

from nas.errors import NasError
from nas.pareto import ReferenceRule, front_indices, hypervolume_curve
from nas.store import Store


def db_url() -> str:
    """``--db`` after ``--`` on the streamlit command line, else $NAS_DB_URL, else ./nas.db."""
    argv = sys.argv[1:]
    for i, arg in enumerate(argv):
        if arg == "--db" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--db="):
            return arg.split("=", 1)[1]
    return os.environ.get("NAS_DB_URL") or "nas.db"


@st.cache_resource(show_spinner=False)
def _store(url: str) -> Store:
    return Store(url, readonly=True)


def store() -> Store:
    """The store, or one line on the page and a stop when it cannot be read (never a traceback)."""
    url = db_url()
    try:
        return _store(url)
    except NasError as exc:
        st.error(str(exc))
        st.stop()
        raise  # not reached: st.stop ends the script


def _safe(fn, *args):
    """Run a cached query; a store that fails mid-session is one line on the page, never a traceback."""
    try:
        return fn(*args)
    except NasError as exc:
        st.error(str(exc))
        st.stop()
        raise


def experiments(url: str) -> pd.DataFrame:
    return _safe(_experiments, url)


def experiment_info(url: str, name: str) -> dict:
    return _safe(_experiment_info, url, name)


def evaluations(url: str, name: str) -> pd.DataFrame:
    return _safe(_evaluations, url, name)


def hypervolume_over_time(url: str, name: str) -> pd.DataFrame:
    return _safe(_hypervolume_over_time, url, name)


def profiles(url: str) -> pd.DataFrame:
    return _safe(_profiles, url)


def validation_points(url: str, profile_id: int) -> pd.DataFrame:
    return _safe(_validation_points, url, profile_id)


@st.cache_data(ttl=5, show_spinner=False)
def _experiments(url: str) -> pd.DataFrame:
    rows = [{"experiment": e.name, "space": e.space_name, "targets": ", ".join(e.targets), "strategy": e.strategy,
             "status": e.status, "done": e.evaluations, "budget": e.budget,
             "progress": e.evaluations / e.budget if e.budget else 0.0,
             "constraints": ", ".join(e.constraints), "created": e.created_at, "last result": e.last_evaluation_at}
            for e in _store(url).experiments()]
    return pd.DataFrame(rows, columns=["experiment", "space", "targets", "strategy", "status", "done", "budget",
                                       "progress", "constraints", "created", "last result"])


@st.cache_data(ttl=5, show_spinner=False)
def _experiment_info(url: str, name: str) -> dict:
    e = _store(url).experiment(name)
    return {"name": e.name, "space": e.space_name, "space_yaml": e.space_yaml, "objectives": list(e.objectives),
            "constraints": list(e.constraints), "targets": list(e.targets), "reference": dict(e.reference),
            "status": e.status, "config": dict(e.config), "budget": e.budget, "done": e.evaluations}


@st.cache_data(ttl=5, show_spinner="reading evaluations ...")
def _evaluations(url: str, name: str) -> pd.DataFrame:
    df = _store(url).evaluation_frame(name)
    if df.empty:
        return df
    df["pareto"] = df.index.isin(front_frame(df, _experiment_info(url, name)["objectives"]).index)
    return df


def front_frame(df: pd.DataFrame, objectives: list[dict]) -> pd.DataFrame:
    """The feasible rows (status ok, feasible) on the Pareto front of ``objectives``, best first by
    the first one: :func:`nas.pareto.front_rows` on a DataFrame, without a dict per row."""
    names = [o["name"] for o in objectives]
    if df.empty or not all(n in df.columns for n in names):
        return df.iloc[0:0]
    values = df[names].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    usable = np.ones(len(df), dtype=bool)
    if "status" in df.columns:
        usable &= (df["status"] == "ok").to_numpy()
    if "feasible" in df.columns:
        usable &= df["feasible"].fillna(False).astype(bool).to_numpy()
    return df.iloc[front_indices(values, usable, objectives)]


def latency_columns(df: pd.DataFrame) -> list[str]:
    return [c for c in df.columns if c.endswith("_ms")]


@st.cache_data(ttl=5, show_spinner=False)
def _reference(url: str, name: str) -> dict[str, float]:
    """The experiment's hypervolume reference: as stored, and where its initial design is not in
    yet, by the search's own rule over its results so far (:class:`nas.pareto.ReferenceRule`)."""
    df = _evaluations(url, name)
    info = _experiment_info(url, name)
    names = [o["name"] for o in info["objectives"]]
    rows: list[list[float]] = []
    if not df.empty and all(n in df.columns for n in names):
        values = df.loc[df["status"] == "ok", names].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
        rows = [list(r) for r in values if np.all(np.isfinite(r))]
    rule = ReferenceRule.from_stored(names, [o["direction"] for o in info["objectives"]], info["reference"], rows)
    return rule.as_dict()


def reference(url: str, name: str) -> dict[str, float]:
    return _safe(_reference, url, name)


@st.cache_data(ttl=5, show_spinner=False)
def _hypervolume_over_time(url: str, name: str) -> pd.DataFrame:
    df = _evaluations(url, name)
    info = _experiment_info(url, name)
    names = [o["name"] for o in info["objectives"]]
    ref = _reference(url, name)
    if df.empty or not all(n in df.columns for n in names) or not all(n in ref for n in names):
        return pd.DataFrame(columns=["evaluation", "hypervolume"])
    ok = (df["status"] == "ok") & df["feasible"]
    points = df[names].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    curve = hypervolume_curve(points, [ref[n] for n in names], [o["direction"] for o in info["objectives"]],
                              feasible=ok.to_numpy() & np.all(np.isfinite(points), axis=1))
    return pd.DataFrame({"evaluation": np.arange(1, len(df) + 1), "hypervolume": curve})


@st.cache_data(ttl=30, show_spinner=False)
def _profiles(url: str) -> pd.DataFrame:
    rows = []
    for p in _store(url).profiles():
        v = p["validation"] or {}
        rows.append({"id": p["id"], "target": p["target"], "space": p["space"], "kind": p["kind"],
                     "device": p["meta"].get("device", ""), "n": v.get("n"), "within 10%": v.get("within_10pct"),
                     "Kendall tau": v.get("kendall_tau"), "MAPE %": v.get("mape"), "RMSE ms": v.get("rmse_ms"),
                     "built": p["meta"].get("date", "")})
    return pd.DataFrame(rows)


@st.cache_data(ttl=30, show_spinner=False)
def _validation_points(url: str, profile_id: int) -> pd.DataFrame:
    return pd.DataFrame(_store(url).validation_points(profile_id))


def experiment_picker(url: str) -> None:
    """The experiment every page shows: one selectbox in the sidebar, drawn by the entry point
    (``app.py``) on every run, so the choice holds across pages (Streamlit's multipage guidance:
    common elements in the entry point)."""
    df = experiments(url)
    if not df.empty:
        names = list(df["experiment"])
        if st.session_state.get("experiment") not in names:
            st.session_state["experiment"] = names[0]
        st.sidebar.selectbox("Experiment", names, key="experiment")


def current_experiment(url: str) -> str | None:
    """The experiment chosen in the sidebar (the store's first when a page runs on its own, as in
    tests); None, with a line saying how to make one, when the store holds none."""
    df = experiments(url)
    if df.empty:
        st.info(f"No experiments in {store().display_url} yet: run `nas search ... --db {url}`.")
        return None
    names = list(df["experiment"])
    chosen = st.session_state.get("experiment")
    return chosen if chosen in names else names[0]
