"""Latency across targets: the same archs side by side, and each latency model's validation."""

import streamlit as st

from dashboard import charts, data

st.title("Targets")
url = data.db_url()
data.store()

profiles = data.profiles(url)
st.subheader("Latency models")
if profiles.empty:
    st.info("No latency profiles in this store yet (a search stores the ones it uses).")
else:
    st.dataframe(profiles.drop(columns=["id"]), hide_index=True, width="stretch")
    validated = profiles[profiles["n"].notna()]
    if validated.empty:
        st.info("No profile here has been validated (nas latency validate SPACE --target T).")
    else:
        labels = [f"{r.target} on {r.space}" for r in validated.itertuples()]
        pick = st.selectbox("Predicted vs measured for", labels, key="targets_profile")
        chosen = validated.iloc[labels.index(pick)]
        points = data.validation_points(url, int(chosen["id"]))
        if points.empty:
            st.info("This profile keeps its summary but not its held-out points.")
        else:
            title = (f"{pick}: {100 * chosen['within 10%']:.0f}% within 10%, tau {chosen['Kendall tau']:.3f}, "
                     f"MAPE {chosen['MAPE %']:.2f}%")
            st.plotly_chart(charts.predicted_vs_measured(points, title), width="stretch")

st.subheader("The same archs on every target")
name = data.current_experiment(url)
if name:
    df = data.evaluations(url, name)
    ok = df[df["status"] == "ok"] if not df.empty else df
    columns = data.latency_columns(ok) if not ok.empty else []
    if not columns:
        st.info("No finished evaluations with latencies yet.")
    else:
        front = ok[ok["pareto"]]
        st.caption(f"{len(columns)} targets; the Pareto front of {name} first, then every evaluation.")
        st.dataframe(front[["trial", "accuracy", *columns, "arch"]], hide_index=True, width="stretch")
        st.plotly_chart(charts.targets_parallel(ok, ["accuracy", *columns] if "accuracy" in ok else columns),
                        width="stretch")
