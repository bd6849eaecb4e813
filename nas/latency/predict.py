"""Predicting one model or arch for the CLI: an ONNX file or an arch string, any target.

The path is target -> profile -> predictor (:mod:`nas.latency.targets`,
:mod:`nas.latency.profile`, :mod:`nas.latency.predictor`); nothing here builds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nas.errors import NasError
from nas.graph import analyze, load_model
from nas.latency.measure import Meter
from nas.latency.profile import list_profiles
from nas.latency.targets import get_target
from nas.space import Arch, SearchSpace, load, read_arch_file, shipped_spaces


def find_space(arch_text: str, target: str) -> tuple[SearchSpace, Arch]:
    """The one space (shipped, or with a profile for ``target``) that accepts ``arch_text``."""
    if arch_text.strip() in ("largest", "smallest"):
        raise NasError(f"'{arch_text.strip()}' names a subnet of a space: pass --space")
    if arch_text.strip().endswith(".json") and "{" not in arch_text:
        arch_text = read_arch_file(arch_text.strip())
    names = sorted(set(shipped_spaces()) | {s.split("@")[0] for t, s, _ in list_profiles() if t == target})
    matches = []
    for name in names:
        try:
            space = load(name)
            matches.append((space, space.resolve(arch_text)))
        except NasError:
            continue
    if len(matches) == 1:
        return matches[0]
    if not matches:
        Arch.from_str(arch_text)  # a syntax error gets its own message
        raise NasError(f"no known space accepts this arch ({', '.join(names)}); pass --space")
    raise NasError(f"several spaces accept this arch ({', '.join(s.name for s, _ in matches)}); pass --space")


def _is_file(path: Path) -> bool:
    """Whether ``path`` names a file; an arch string too long to be a file name is not one."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def predict_one(model_or_arch: str, target: str, space_name: str | None = None) -> dict[str, Any]:
    t = get_target(target)
    path = Path(model_or_arch)
    if model_or_arch.endswith(".onnx") or (_is_file(path) and path.suffix != ".json"):
        model = load_model(path)
        meta = {p.key: p.value for p in model.metadata_props}
        if t.kind == "mcu":
            est = t.cost_graph(analyze(model))
            return {"target": target, "source": "cost model on the ONNX graph", "latency_ms": round(est.latency_ms, 4),
                    "peak_sram_kb": round(est.peak_sram_kb, 3), "flash_kb": round(est.flash_kb, 3),
                    "fits": est.fits, "cycles": round(est.cycles)}
        if "nas.arch" in meta:
            model_or_arch, space_name = meta["nas.arch"], space_name or meta.get("nas.space")
        elif t.times_onnx:
            m = Meter().onnx(model.SerializeToString())
            return {"target": target, "source": "measured on this CPU (the model names no arch)",
                    "latency_ms": round(m.median_ms, 5), "cv": round(m.cv, 4)}
        else:
            raise NasError(f"{path.name} holds no nas arch in its metadata, so the {target} model cannot predict it")
    if space_name:
        space = load(space_name)
        arch = space.resolve(model_or_arch)
    else:
        space, arch = find_space(model_or_arch, target)
    metrics = t.load_predictor(space, hint=space_name).predict_metrics([arch])
    out: dict[str, Any] = {"target": target, "space": space.name, "arch": arch.to_str(), "source": "latency model"}
    out.update({k: round(float(v[0]), 5) for k, v in metrics.items()})
    return out
