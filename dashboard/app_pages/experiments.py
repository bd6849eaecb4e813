"""Every experiment: space, targets, strategy, status, progress, and hypervolume over evaluations."""

import streamlit as st

from dashboard import charts, data

st.title("Experiments")
url = data.db_url()
data.store()


@st.fragment(run_every="5s")
def overview() -> None:
    df = data.experiments(url)
    if df.empty:
        st.info(f"No experiments in this store yet: run `nas search ... --db {url}`.")
        return
    st.dataframe(
        df, hide_index=True, width="stretch",
        column_config={"progress": st.column_config.ProgressColumn("done of budget", min_value=0.0, max_value=1.0,
                                                                   format="percent")},
    )
    running = df[df["status"] == "running"]
    if not running.empty:
        st.caption(f"{len(running)} running; this page refreshes every 5 s.")


overview()
name = data.current_experiment(url)
if name:
    info = data.experiment_info(url, name)
    curve = data.hypervolume_over_time(url, name)
    reference = data.reference(url, name)
    objectives = " and ".join(f"{o['direction']} {o['name']}" for o in info["objectives"])
    where = ", ".join(f"{o['name']} {'>' if o['direction'] == 'max' else '<'} {reference[o['name']]:.4g}"
                      for o in info["objectives"] if o["name"] in reference)
    st.caption(f"{info['done']} of {info['budget']} evaluations; objectives: {objectives}; "
               f"constraints: {', '.join(info['constraints']) or 'none'}; hypervolume counted where {where or '-'}")
    if curve.empty or not info["done"]:
        st.info("No finished evaluation yet.")
    elif curve["hypervolume"].max() == 0:
        st.info(f"Hypervolume 0: no feasible evaluation has {where} (the reference point; "
                "`nas search --reference` sets it).")
    else:
        st.plotly_chart(charts.hypervolume_figure(curve, f"Hypervolume of {name}"), width="stretch")
