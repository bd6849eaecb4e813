"""The Pareto explorer: every evaluation, the front, filters by latency, SRAM and flash."""

import streamlit as st

from dashboard import charts, data

MAX_POINTS = 20_000  # points drawn at most (see charts.thin); the front is always computed on all of them

st.title("Pareto explorer")
url = data.db_url()
data.store()
name = data.current_experiment(url)
if not name:
    st.stop()
info = data.experiment_info(url, name)
controls = st.container()
chart_slot = st.empty()
if not st.session_state.get("explorer_drawn"):
    # A browser fetches Plotly's JavaScript with the first chart of its session (about two seconds
    # on 2 cores): an empty chart sent now has it fetched while the evaluations are read.
    chart_slot.plotly_chart(charts.placeholder(f"{name}: reading {info['done']:,} evaluations ..."), width="stretch")
df = data.evaluations(url, name)
ok = df[(df["status"] == "ok")] if not df.empty else df
if ok.empty or "accuracy" not in ok.columns:
    chart_slot.empty()
    st.info("This experiment has no finished evaluations yet.")
    st.stop()

latencies = data.latency_columns(ok)
objective_names = [o["name"] for o in info["objectives"]]
latencies = sorted(latencies, key=lambda c: c not in objective_names)  # the searched latency first
numeric = list(dict.fromkeys(c for c in [*objective_names, "accuracy", "int8_accuracy", *latencies, "params", "macs",
                                         "sram_kb", "flash_kb", "state_kb"] if c in ok.columns))
# The quality objective on y (accuracy, or a language model's bits per byte), the first latency on x.
quality = next((o for o in objective_names if o in numeric and o not in latencies), "accuracy")
left, mid, right = controls.columns(3)
target = left.selectbox("Target", latencies or numeric, index=0, key="explorer_target")
x = mid.selectbox("x axis", numeric, index=numeric.index(target) if target in numeric else 0, key="explorer_x")
y = right.selectbox("y axis", numeric, index=numeric.index(quality), key="explorer_y")
colour_mode = controls.radio("Colour", charts.colour_modes(), horizontal=True, key="explorer_colour")

limits = controls.columns(3)
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
front = data.front_frame(shown, axes)
plotted = charts.thin(shown, x, y, front.index, MAX_POINTS)
if len(plotted) < len(shown):
    controls.caption(f"Drawing {len(plotted):,} of {len(shown):,} points: one per small cell of the plot and the whole "
                     "front (computed on all of them).")
controls.caption(f"{len(shown):,} of {len(ok):,} evaluations within the limits; {len(front)} on their front. "
                 f"Diamonds have at least one {' or '.join(charts.marked_kinds())} layer. Select points (box or lasso) to see their detail.")
event = chart_slot.plotly_chart(charts.pareto_scatter(plotted, x, y, colour_mode, front, f"{name}: {y} vs {x}"),
                                width="stretch", on_select="rerun", selection_mode=("points", "box", "lasso"),
                                key="explorer_chart")
st.session_state["explorer_drawn"] = True

selected = [p["customdata"][0] for p in (event.selection.points if event and event.selection else [])
            if p.get("customdata")]
table = front if not selected else shown[shown["arch"].isin(selected)]
st.subheader("Selected points" if selected else "Pareto front")
columns = [c for c in ["trial", *objective_names, *[c for c in numeric if c not in objective_names], "arch"] if c in table.columns]
st.dataframe(table[columns], hide_index=True, width="stretch")
if not table.empty:
    choice = st.selectbox("Open the detail of", list(table["arch"]), key="explorer_detail")
    if st.button("Open arch detail", key="explorer_open"):
        st.session_state["arch"] = choice  # the experiment is the sidebar's already
        st.switch_page("app_pages/arch.py")
