"""Chart functions: a DataFrame in, a Plotly figure out (no data access here)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

MIXER_COLOURS = {"conv": (214, 39, 40), "attention": (44, 160, 44), "ssm": (31, 119, 180)}
COLOUR_MODES = ("block mix (red conv, green attention, blue SSM)", "conv share", "attention share", "ssm share", "moe share")


def mix_colours(df: pd.DataFrame, mode: str) -> list[str] | np.ndarray:
    """One colour per row: an RGB blend of the mixer shares, or one share on a colour scale."""
    if mode == COLOUR_MODES[0]:
        shares = np.stack([df.get(f"mix_{k}", pd.Series(0.0, index=df.index)).fillna(0).to_numpy()
                           for k in MIXER_COLOURS], axis=1)
        rgb = shares @ np.array(list(MIXER_COLOURS.values()), dtype=float)
        total = shares.sum(axis=1, keepdims=True)
        rgb = np.where(total > 0, rgb / np.maximum(total, 1e-9), 150)
        return [f"rgb({r:.0f},{g:.0f},{b:.0f})" for r, g, b in rgb]
    column = "mix_" + mode.split()[0]
    return df.get(column, pd.Series(0.0, index=df.index)).fillna(0).to_numpy()


def pareto_scatter(df: pd.DataFrame, x: str, y: str, colour_mode: str, front: pd.DataFrame, title: str) -> go.Figure:
    """Every evaluation (WebGL), the Pareto front drawn on top; hover shows the arch."""
    fig = go.Figure()
    colours = mix_colours(df, colour_mode)
    marker: dict = {"size": 6, "opacity": 0.75, "line": {"width": 0}}
    if colour_mode == COLOUR_MODES[0]:
        marker["color"] = colours
    else:
        marker.update(color=colours, colorscale="Viridis", cmin=0, cmax=1, showscale=True,
                      colorbar={"title": colour_mode})
    symbols = np.where(df.get("mix_moe", pd.Series(0.0, index=df.index)).fillna(0).to_numpy() > 0, "diamond", "circle")
    marker["symbol"] = symbols
    fig.add_trace(go.Scattergl(
        x=df[x], y=df[y], mode="markers", name="evaluations", marker=marker, customdata=df[["arch", "trial"]].to_numpy(),
        hovertemplate=f"%{{customdata[0]}}<br>{x}=%{{x:.4g}}<br>{y}=%{{y:.4g}}<br>trial %{{customdata[1]}}<extra></extra>",
    ))
    if not front.empty:
        ordered = front.sort_values(x)
        fig.add_trace(go.Scatter(
            x=ordered[x], y=ordered[y], mode="lines+markers", name="Pareto front", line={"color": "#111", "width": 2,
                                                                                          "shape": "hv"},
            marker={"size": 11, "color": "rgba(0,0,0,0)", "line": {"color": "#111", "width": 2}},
            customdata=ordered[["arch", "trial"]].to_numpy(),
            hovertemplate=f"<b>front</b> %{{customdata[0]}}<br>{x}=%{{x:.4g}}<br>{y}=%{{y:.4g}}<extra></extra>",
        ))
    fig.update_layout(title=title, xaxis_title=x, yaxis_title=y, height=560, legend={"orientation": "h"},
                      margin={"l": 40, "r": 20, "t": 50, "b": 40}, dragmode="select")
    return fig


def hypervolume_figure(curve: pd.DataFrame, title: str) -> go.Figure:
    fig = go.Figure(go.Scatter(x=curve["evaluation"], y=curve["hypervolume"], mode="lines", line={"width": 2}))
    fig.update_layout(title=title, xaxis_title="evaluations", yaxis_title="hypervolume", height=320,
                      margin={"l": 40, "r": 20, "t": 50, "b": 40})
    return fig


def predicted_vs_measured(points: pd.DataFrame, title: str) -> go.Figure:
    lo = float(min(points["measured_ms"].min(), points["predicted_ms"].min())) * 0.9
    hi = float(max(points["measured_ms"].max(), points["predicted_ms"].max())) * 1.1
    line = np.linspace(lo, hi, 20)
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=np.r_[line, line[::-1]], y=np.r_[line * 1.1, line[::-1] * 0.9], fill="toself",
                             fillcolor="rgba(74,111,165,0.15)", line={"width": 0}, name="within 10%", hoverinfo="skip"))
    fig.add_trace(go.Scatter(x=line, y=line, mode="lines", line={"color": "#4a6fa5"}, name="y = x", hoverinfo="skip"))
    fig.add_trace(go.Scatter(x=points["measured_ms"], y=points["predicted_ms"], mode="markers", name="held-out subnets",
                             customdata=points[["arch"]].to_numpy(),
                             hovertemplate="%{customdata[0]}<br>measured %{x:.4f} ms<br>predicted %{y:.4f} ms<extra></extra>"))
    fig.update_layout(title=title, xaxis_title="measured (ms)", yaxis_title="predicted (ms)", height=460,
                      margin={"l": 40, "r": 20, "t": 50, "b": 40})
    return fig


def targets_parallel(df: pd.DataFrame, columns: list[str]) -> go.Figure:
    dims = [{"label": c, "values": df[c]} for c in columns]
    colour = df.get("accuracy")
    fig = go.Figure(go.Parcoords(dimensions=dims, line={"color": colour, "colorscale": "Viridis", "showscale": colour is not None}))
    fig.update_layout(height=420, margin={"l": 60, "r": 60, "t": 40, "b": 30})
    return fig


def arch_dot(arch_text: str) -> str:
    """Graphviz DOT of a network arch: stages as boxes, layers with mixer and ffn, coloured by mixer."""
    from nas.space import Arch

    arch = Arch.from_str(arch_text)
    fill = {"conv": "#f4c7c3", "attention": "#c8e6c9", "ssm": "#c5dcf2"}
    lines = ['digraph arch {', 'rankdir=LR; node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=11];',
             'input [label="input", fillcolor="#eeeeee"]; stem [label="stem", fillcolor="#eeeeee"]; input -> stem;']
    previous = "stem"
    for i, stage in enumerate(arch.stages):
        lines.append(f'subgraph cluster_{i} {{ label="stage {i} - width {stage.width}, depth {stage.depth}"; '
                     'style="rounded"; color="#999999";')
        for j, layer in enumerate(stage.layers):
            node = f"s{i}l{j}"
            lines.append(f'{node} [label="{layer.mixer.token}\\n{layer.ffn.token}", fillcolor="{fill[layer.mixer.kind]}"'
                         + (', penwidth=2.5' if layer.ffn.kind == "moe" else "") + "];")
        lines.append("}")
        for j in range(stage.depth):
            lines.append(f"{previous} -> s{i}l{j};")
            previous = f"s{i}l{j}"
    lines.append(f'head [label="head", fillcolor="#eeeeee"]; {previous} -> head;')
    lines.append("}")
    return "\n".join(lines)
