"""The dashboard with Streamlit's AppTest: every page, on a store seeded by a real search and on odd stores."""

from __future__ import annotations

import base64
import json

import numpy as np
import pandas as pd
import pytest

from tests.conftest import REPO
from tests.dashboard._pages import run_page  # noqa: F401 (the tests below and other packages' use it)

APP = REPO / "dashboard"
PAGES = ["experiments", "explorer", "arch", "targets"]


def plotly_specs(at) -> list[dict]:
    return [json.loads(el.proto.spec) for el in at.get("plotly_chart")]


def values(array) -> list:
    """A trace's data array as a list: Plotly sends numeric arrays as base64 ``{"dtype", "bdata"}``."""
    if isinstance(array, dict) and "bdata" in array:
        flat = np.frombuffer(base64.b64decode(array["bdata"]), dtype=np.dtype(array["dtype"]))
        return flat.reshape(array["shape"]).tolist() if "shape" in array else flat.tolist()
    return list(array)


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_a_real_search(seeded_store, monkeypatch, page):
    at = run_page(page, seeded_store, monkeypatch)
    assert not at.exception, at.exception
    assert not at.error


@pytest.mark.slow
def test_explorer_draws_evaluations_and_front_and_filters(seeded_store, monkeypatch):
    at = run_page("explorer", seeded_store, monkeypatch)
    spec = plotly_specs(at)[0]
    names = [trace.get("name") for trace in spec["data"]]
    assert names[0] == "evaluations"
    groups = [t for t in spec["data"] if t.get("name") == "evaluations"]  # one trace per colour and symbol
    assert sum(len(values(t["x"])) for t in groups) == sum(len(values(t["y"])) for t in groups) == 12
    archs = [arch for t in groups for arch, _ in t["customdata"]]  # hover shows the arch
    assert len(set(archs)) == 12 and all(archs)
    assert all(isinstance(t["marker"]["color"], str) for t in groups)  # block-mix colours, one per trace
    assert "Pareto front" in names
    front = spec["data"][names.index("Pareto front")]
    assert all(arch for arch, _ in front["customdata"])
    captions = " ".join(c.value for c in at.caption)
    assert "12 of 12 evaluations within the limits" in captions
    slider = at.slider(key="limit_mcu-m7_ms")
    low, high = slider.min, slider.max
    slider.set_value(low + (high - low) / 2).run()
    captions = " ".join(c.value for c in at.caption)
    assert "12 of 12" not in captions and "of 12 evaluations within the limits" in captions
    assert not at.exception


@pytest.mark.slow
def test_arch_detail_shows_diagram_and_metrics(seeded_store, monkeypatch):
    from nas.store import Store

    arch = Store(seeded_store, readonly=True).evaluations("seeded")[0].arch
    at = run_page("arch", seeded_store, monkeypatch, arch=arch)
    assert not at.exception
    assert at.selectbox(key="arch_select").value == arch
    dot = at.get("graphviz_chart")[0].proto.spec
    assert "stage 0" in dot and "head" in dot
    table = at.dataframe[0].value
    assert {"accuracy", "mcu-m7_ms", "sram_kb", "flash_kb"} <= set(table["metric"])
    assert at.button(key="arch_export")


@pytest.mark.slow
def test_targets_page_plots_validation(seeded_store, monkeypatch):
    at = run_page("targets", seeded_store, monkeypatch)
    assert not at.exception
    spec = plotly_specs(at)[0]
    assert any(t.get("name") == "held-out subnets" for t in spec["data"])


@pytest.mark.parametrize("page", PAGES)
def test_pages_render_on_an_empty_store(tmp_path, monkeypatch, page):
    from nas.store import Store

    db = str(tmp_path / "empty.db")
    Store(db).close()
    at = run_page(page, db, monkeypatch)
    assert not at.exception and not at.error
    assert any("No experiments" in i.value for i in at.info)


@pytest.mark.parametrize("page", ["explorer", "arch", "targets"])
def test_pages_render_without_finished_evaluations(tmp_path, monkeypatch, page):
    from nas.store import Store

    db = str(tmp_path / "pending.db")
    store = Store(db)
    space_id = store.ensure_space("toy-choice", "h", "choice", "name: toy-choice")
    store.create_experiment("pending", space_id, "random", ["cpu"], [{"name": "accuracy", "direction": "max"},
                            {"name": "cpu_ms", "direction": "min"}], [], 10, 0, {}, {})
    at = run_page(page, db, monkeypatch)
    assert not at.exception and not at.error
    assert at.info


@pytest.mark.parametrize("make", ["missing", "junk", "foreign"])
def test_a_store_that_is_not_ours_is_one_line_on_the_page(tmp_path, monkeypatch, make):
    import sqlite3

    path = tmp_path / f"{make}.db"
    if make == "junk":
        path.write_bytes(b"certainly not sqlite" * 50)
    elif make == "foreign":
        with sqlite3.connect(path) as conn:
            conn.execute("CREATE TABLE invoices (id INTEGER)")
    at = run_page("explorer", str(path), monkeypatch)
    assert not at.exception
    assert len(at.error) == 1 and "\n" not in at.error[0].value
    assert "Traceback" not in at.error[0].value


@pytest.mark.slow
def test_a_big_experiment_renders_thinned(tmp_path, monkeypatch):
    """30,000 evaluations (above the 20,000 points drawn): the thinning path; the 100,000-evaluation
    timing is experiments/dashboard_render.py's."""
    from nas.store.synthetic import synthetic_store

    db = str(tmp_path / "big.db")
    synthetic_store(db, 30_000)
    at = run_page("explorer", db, monkeypatch, timeout=120)
    assert not at.exception
    spec = plotly_specs(at)[0]
    drawn = sum(len(values(t["x"])) for t in spec["data"] if t.get("name") == "evaluations")
    assert 1000 <= drawn <= 20_000  # thinned to one point per cell, at most MAX_POINTS
    assert any("of 30,000 points" in c.value for c in at.caption)


def test_thinning_keeps_the_front_and_the_cloud_outline():
    from dashboard.charts import thin
    from dashboard.data import front_frame

    rng = np.random.default_rng(0)
    df = pd.DataFrame({"cpu_ms": rng.lognormal(0, 0.5, 50_000), "status": "ok", "feasible": True})
    df["accuracy"] = 0.9 - 0.2 * np.exp(-df["cpu_ms"]) + rng.normal(0, 0.02, len(df))
    front = front_frame(df, [{"name": "accuracy", "direction": "max"}, {"name": "cpu_ms", "direction": "min"}])
    kept = thin(df, "cpu_ms", "accuracy", front.index, 5_000)
    assert len(kept) <= 5_000 and set(front.index) <= set(kept.index)
    for column in ("cpu_ms", "accuracy"):  # the extremes of the cloud are still drawn
        assert kept[column].min() == df[column].min() and kept[column].max() == df[column].max()
    assert thin(df.head(100), "cpu_ms", "accuracy", front.index, 5_000).equals(df.head(100))


def test_the_experiment_is_chosen_once_in_the_entry_points_sidebar(tmp_path, monkeypatch):
    """One picker, drawn by app.py for every page: the choice holds across pages."""
    from streamlit.testing.v1 import AppTest

    from nas.runner import SearchConfig, search
    from tests._faults import OBJECTIVES, make_toy

    db = str(tmp_path / "two.db")
    for name, budget in (("first", 4), ("second", 6)):
        search(SearchConfig(strategy="random", budget=budget, targets=(), workers=0, db=db, experiment=name),
               evaluator_factory=make_toy, objectives=OBJECTIVES)
    monkeypatch.setenv("NAS_DB_URL", db)
    at = AppTest.from_file(str(APP / "app.py"), default_timeout=60).run()
    assert not at.exception
    picker = at.sidebar.selectbox(key="experiment")
    assert set(picker.options) == {"first", "second"}
    at = picker.select("second").run()
    assert not at.exception
    assert any(c.value.startswith("6 of 6 evaluations") for c in at.caption), [c.value for c in at.caption]
    at = picker.select("first").run()
    assert any(c.value.startswith("4 of 4 evaluations") for c in at.caption)
