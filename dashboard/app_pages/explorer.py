"""The Pareto explorer: every evaluation, the front, filters by latency, SRAM and flash."""

import pandas as pd
import streamlit as st

from dashboard import charts, data
from nas.pareto import front_rows

MAX_POINTS = 20_000  # dominated points drawn at most; the front is always computed on all of them

st.title("Pareto explorer")
url = data.db_url()
data.store()
name = data.pick_experiment(url, "explorer_pick")
if not name:
    st.stop()
info = data.experiment_info(url, name)
df = data.evaluations(url, name)
ok = df[(df["status"] == "ok")] if not df.empty else df
if ok.empty or "accuracy" not in ok.columns:
    st.info("This experiment has no finished evaluations yet.")
    st.stop()

latencies = data.latency_columns(ok)
numeric = [c for c in ["accuracy", *latencies, "params", "macs", "sram_kb", "flash_kb"] if c in ok.columns]
objective_names = [o["name"] for o in info["objectives"]]
left, mid, right = st.columns(3)
target = left.selectbox("Target", latencies or numeric, index=0, key="explorer_target")
x = mid.selectbox("x axis", numeric, index=numeric.index(target) if target in numeric else 0, key="explorer_x")
y = right.selectbox("y axis", numeric, index=numeric.index("accuracy"), key="explorer_y")
colour_mode = st.radio("Colour", charts.COLOUR_MODES, horizontal=True, key="explorer_colour")

limits = st.columns(3)
filters = {}
for column, label, slot in ((target, f"max {target}", limits[0]), ("sram_kb", "max peak SRAM (KB)", limits[1]),
                            ("flash_kb", "max flash (KB)", limits[2])):
    if column in ok.columns and ok[column].notna().any():
        lo, hi = float(ok[column].min()), float(ok[column].max())
        if hi > lo:
            filters[column] = slot.slider(label, lo, hi, hi, key=f"limit_{column}")
shown = ok
for column, limit in filters.items():
    shown = shown[shown[column] <= limit]

directions = {o["name"]: o["direction"] for o in info["objectives"]}
axes = [{"name": c, "direction": directions.get(c, "max" if c == "accuracy" else "min")} for c in (y, x)]
front = pd.DataFrame(front_rows(shown.to_dict("records"), axes))
if front.empty:
    front = pd.DataFrame(columns=shown.columns)
plotted = shown
if len(shown) > MAX_POINTS:
    plotted = pd.concat([shown[~shown["pareto"]].sample(MAX_POINTS, random_state=0), shown[shown["pareto"]]])
    st.caption(f"Drawing {MAX_POINTS:,} of {len(shown):,} points (and the whole front); the front uses all of them.")
st.caption(f"{len(shown):,} of {len(ok):,} evaluations within the limits; {len(front)} on their front. "
           "Diamonds have at least one MoE layer. Select points (box or lasso) to see their detail.")
event = st.plotly_chart(charts.pareto_scatter(plotted, x, y, colour_mode, front, f"{name}: {y} vs {x}"),
                        width="stretch", on_select="rerun", selection_mode=("points", "box", "lasso"),
                        key="explorer_chart")

selected = [p["customdata"][0] for p in (event.selection.points if event and event.selection else [])
            if p.get("customdata")]
table = front if not selected else shown[shown["arch"].isin(selected)]
st.subheader("Selected points" if selected else "Pareto front")
columns = [c for c in ["trial", *objective_names, *[c for c in numeric if c not in objective_names], "arch"] if c in table.columns]
st.dataframe(table[columns], hide_index=True, width="stretch")
if not table.empty:
    choice = st.selectbox("Open the detail of", list(table["arch"]), key="explorer_detail")
    if st.button("Open arch detail", key="explorer_open"):
        st.session_state["arch"] = choice
        st.session_state["experiment"] = name
        st.switch_page("app_pages/arch.py")
