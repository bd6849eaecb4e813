"""One arch: a diagram of its stages and layers, its metrics on every target, an ONNX download."""

import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import streamlit as st

from dashboard import charts, data

st.title("Arch detail")
url = data.db_url()
data.store()
name = data.current_experiment(url)
if not name:
    st.stop()
df = data.evaluations(url, name)
if df.empty:
    st.info("This experiment has no evaluations yet.")
    st.stop()
archs = list(df.sort_values(["pareto", "accuracy"] if "accuracy" in df else ["pareto"], ascending=False)["arch"])
wanted = st.query_params.get("arch") or st.session_state.get("arch")
arch = st.selectbox("Arch", archs, index=archs.index(wanted) if wanted in archs else 0, key="arch_select")
st.session_state["arch"] = arch
row = df[df["arch"] == arch].iloc[0]

st.code(arch, language=None)
if row.get("status") == "failed":
    reason = row.get("error")
    st.error(f"This evaluation failed: {reason if isinstance(reason, str) and reason else 'no reason was stored'}")
left, right = st.columns([3, 2])
with left:
    st.graphviz_chart(charts.arch_dot(arch), width="stretch")
with right:
    metrics = {k: row[k] for k in df.columns if (k.endswith("_ms") or k in ("accuracy", "int8_accuracy", "params", "macs", "sram_kb",
                                                                           "flash_kb")) and k in row and row[k] == row[k]}
    st.dataframe([{"metric": k, "value": v} for k, v in metrics.items()], hide_index=True, width="stretch")
    st.caption(f"trial {row['trial']}; {'on the Pareto front' if row['pareto'] else 'not on the front'}; "
               f"{'feasible' if row['feasible'] else 'breaks a constraint'}; evaluated by {row['worker'] or '-'}")

st.subheader("ONNX")
info = data.experiment_info(url, name)
checkpoint = info["config"].get("supernet")
if not checkpoint or not Path(checkpoint).is_file():
    st.info(f"The supernet checkpoint ({checkpoint or 'not recorded'}) is not on this machine, so this arch cannot be "
            "exported from here; run nas subnet export where it is.")
elif st.button("Export to ONNX and check it against onnxruntime", key="arch_export"):
    folder = Path(st.session_state.setdefault("export_dir", tempfile.mkdtemp(prefix="nas-dashboard-")))
    # The file name comes from a hex hash only, so nothing a user types can reach the path.
    digest = re.sub(r"[^0-9a-f]", "", str(row["hash"]))[:16] or "arch"
    out = folder / f"{digest}.onnx"
    with st.spinner("exporting ..."):
        done = subprocess.run([sys.executable, "-m", "nas", "subnet", "export", checkpoint, arch, "-o", str(out), "--json"],
                              capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        st.error((done.stderr.strip().splitlines() or ["export failed"])[-1])
    else:
        result = json.loads(done.stdout)
        st.success(f"max abs error vs PyTorch on {result['check_inputs']}: {result['max_abs_error']:.2e} "
                   f"({result['params']:,} parameters)")
        st.download_button("Download the ONNX file", out.read_bytes(), file_name=f"{info['space']}-{digest}.onnx",
                           mime="application/octet-stream", key="arch_download")
