"""Chart functions: a DataFrame in, a Plotly figure out (no data access here)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from nas.space import kinds


def _rgb(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


def mixer_colours() -> dict[str, tuple[int, int, int]]:
    """Each mixer kind's colour from the block-kind table (nas.space), as RGB."""
    return {k.name: _rgb(k.colour) for k in kinds("mixer")}


def colour_modes() -> tuple[str, ...]:
    """The explorer's colourings: the mixer blend, then the share of each block kind."""
    blend = ", ".join(k.name for k in kinds("mixer"))
    return (f"block mix (mixer colours: {blend})", *(f"{k.name} share" for k in kinds()))


def marked_kinds() -> tuple[str, ...]:
    """Ffn kinds drawn with a distinct symbol (MoE)."""
    return tuple(k.name for k in kinds() if k.marked)


def _share(df: pd.DataFrame, column: str) -> np.ndarray:
    return df.get(column, pd.Series(0.0, index=df.index)).fillna(0).to_numpy(dtype=float)


def _blend(df: pd.DataFrame, steps: int | None = None) -> np.ndarray:
    """(n, 3) RGB of the mixer shares; with ``steps``, shares rounded to multiples of 1/steps first."""
    colours = mixer_colours()
    shares = np.stack([_share(df, f"mix_{k}") for k in colours], axis=1)
    total = shares.sum(axis=1, keepdims=True)
    shares = np.where(total > 0, shares / np.maximum(total, 1e-9), np.nan)
    if steps:
        shares = np.round(shares * steps) / steps
    rgb = np.nan_to_num(shares, nan=0.0) @ np.array(list(colours.values()), dtype=float)
    return np.where(np.isnan(shares).any(axis=1, keepdims=True), 150.0, np.round(rgb))


def thin(df: pd.DataFrame, x: str, y: str, keep: pd.Index, limit: int, cells: tuple[int, int] = (220, 80)) -> pd.DataFrame:
    """At most ``limit`` rows that look like all of them: the rows in ``keep`` (the front) and the
    extremes of both axes, then one row per cell of a ``cells`` grid over the plot, a cell about the
    size of a marker on a 1,400-pixel-wide chart (so the cloud, its outline and its outliers look
    as with every point drawn), randomly sampled down if still too many. Fewer points is what makes
    a big store's first render fast in the browser: WebGL without a GPU draws in software."""
    if len(df) <= limit:
        return df
    xy = df[[x, y]].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    finite = np.isfinite(xy).all(axis=1)
    df, xy = df[finite], xy[finite]
    must = df.index.isin(keep)
    for column in range(2):
        must[[xy[:, column].argmin(), xy[:, column].argmax()]] = True
    rest, rest_xy = df[~must], xy[~must]
    lo, span = xy.min(axis=0), np.ptp(xy, axis=0)
    grid = np.floor((rest_xy - lo) / np.where(span > 0, span, 1) * (np.array(cells) - 1)).astype(np.int64)
    order = np.random.default_rng(0).permutation(len(rest))
    _, first = np.unique(grid[order, 0] * cells[1] + grid[order, 1], return_index=True)
    picked = rest.iloc[np.sort(order[first])]
    room = max(0, limit - int(must.sum()))
    if len(picked) > room:
        picked = picked.sample(room, random_state=0)
    return pd.concat([picked, df[must]])


def pareto_scatter(df: pd.DataFrame, x: str, y: str, colour_mode: str, front: pd.DataFrame, title: str) -> go.Figure:
    """Every evaluation (WebGL), the Pareto front drawn on top; hover shows the arch.

    Points are drawn in one trace per (colour, MoE or not) group, each with one colour and one
    symbol: per-point colour and symbol arrays cost Plotly a second of validation per 20,000
    points. The block-mix blend is rounded to eighths of each mixer share for this."""
    fig = go.Figure()
    moe = np.zeros(len(df), dtype=bool)
    for kind in marked_kinds():
        moe |= _share(df, f"mix_{kind}") > 0
    hover = f"%{{customdata[0]}}<br>{x}=%{{x:.4g}}<br>{y}=%{{y:.4g}}<br>trial %{{customdata[1]}}<extra></extra>"
    blend = colour_mode == colour_modes()[0]
    if blend:
        rgb = _blend(df, steps=4)
        keys = (rgb @ np.array([65536.0, 256.0, 1.0])).astype(np.int64) * 2 + moe
    else:
        keys = moe.astype(np.int64)
    first = True
    for key in np.unique(keys):
        rows = df[keys == key]
        marker: dict = {"size": 6, "opacity": 0.75, "line": {"width": 0},
                        "symbol": "diamond" if key % 2 else "circle"}
        if blend:
            code = int(key) // 2
            marker["color"] = f"rgb({code >> 16},{(code >> 8) & 255},{code & 255})"
        else:
            marker.update(color=_share(rows, "mix_" + colour_mode.split()[0]), colorscale="Viridis", cmin=0, cmax=1,
                          showscale=first, colorbar={"title": colour_mode})
        fig.add_trace(go.Scattergl(x=rows[x], y=rows[y], mode="markers", name="evaluations", legendgroup="evaluations",
                                   showlegend=first, marker=marker, customdata=rows[["arch", "trial"]].to_numpy(),
                                   hovertemplate=hover))
        first = False
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


def placeholder(message: str) -> go.Figure:
    """An empty chart the size of :func:`pareto_scatter`'s, saying what is coming."""
    fig = go.Figure()
    fig.update_layout(height=560, margin={"l": 40, "r": 20, "t": 50, "b": 40}, xaxis={"visible": False},
                      yaxis={"visible": False}, annotations=[{"text": message, "showarrow": False, "font": {"size": 16}}])
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
    # Each mixer's table colour, blended three quarters of the way to white.
    fill = {k: "#" + "".join(f"{round(c + 0.75 * (255 - c)):02x}" for c in rgb) for k, rgb in mixer_colours().items()}
    marked = marked_kinds()
    lines = ['digraph arch {', 'rankdir=LR; node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=11];',
             'input [label="input", fillcolor="#eeeeee"]; stem [label="stem", fillcolor="#eeeeee"]; input -> stem;']
    previous = "stem"
    for i, stage in enumerate(arch.stages):
        lines.append(f'subgraph cluster_{i} {{ label="stage {i} - width {stage.width}, depth {stage.depth}"; '
                     'style="rounded"; color="#999999";')
        for j, layer in enumerate(stage.layers):
            node = f"s{i}l{j}"
            lines.append(f'{node} [label="{layer.mixer.token}\\n{layer.ffn.token}", fillcolor="{fill[layer.mixer.kind]}"'
                         + (', penwidth=2.5' if layer.ffn.kind in marked else "") + "];")
        lines.append("}")
        for j in range(stage.depth):
            lines.append(f"{previous} -> s{i}l{j};")
            previous = f"s{i}l{j}"
    lines.append(f'head [label="head", fillcolor="#eeeeee"]; {previous} -> head;')
    lines.append("}")
    return "\n".join(lines)
