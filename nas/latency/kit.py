"""Bring your own device, the first half: export a self-contained measurement kit.

``write_kit`` zips every unit of a space and a set of whole subnets as ONNX files, a
manifest and ``run_kit.py`` (:mod:`nas.latency.kit_runner`, which needs only numpy and
onnxruntime). What the kit measured comes back through :mod:`nas.latency.kit_import`.
"""

from __future__ import annotations

import datetime as _dt
import io
import json
import random
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from nas.atomic import atomic_write, check_writable
from nas.errors import NasError
from nas.latency import kit_runner
from nas.latency.build import build_archs, random_supernet, unit_record, versions
from nas.latency.measure import probe_graph
from nas.latency.predictor import require_net_space
from nas.latency.profile import space_hash
from nas.latency.transfer import MIN_ROWS, spread_archs, transfer_references
from nas.space import SearchSpace
from nas.supernet.to_onnx import to_onnx
from nas.supernet.units import all_units, unit_module

KIT_README = """nas latency kit for space {space}
==========================================

1. Copy this folder to the device and install numpy and onnxruntime there
   (pip install numpy onnxruntime).
2. Run:  python run_kit.py            (options: --threads N --repeats N --batch N --out FILE)
3. Bring results.csv back and run:   nas latency import results.csv --target NAME

{units} unit graphs and {archs} whole subnets ({fit} to fit the overhead, {validate} held out).
"""

QUICK_README = """nas latency quick kit for space {space}
================================================

1. Copy this folder to the device and install numpy and onnxruntime there
   (pip install numpy onnxruntime).
2. Run:  python run_kit.py            (options: --threads N --repeats N --batch N --out FILE)
3. Bring results.csv back and run:
   nas latency import results.csv --target NAME --space {space} --transfer-from {references}

{fit} whole subnets spread over what {references} predict, and {validate} held out to check the
transfer: the new device is learned from how it differs from those targets.
"""


def _check_out(out: str | Path) -> Path:
    out = Path(out)
    if out.suffix != ".zip":
        raise NasError(f"kit output {str(out)!r} must end in .zip")
    return check_writable(out, "kit output")


def write_kit(space: SearchSpace, out: str | Path, n_fit: int = 30, n_validate: int = 20, seed: int = 0,
              progress=None, quick: int | None = None, references: Sequence[str] = ()) -> Path:
    """Write a kit zip to ``out``: every unit + ``n_fit`` + ``n_validate`` whole subnets; or, with
    ``quick=K``, only ``K`` whole subnets spread over what the ``references`` (known targets)
    predict, plus ``n_validate`` held out, for a transfer (``nas latency import --transfer-from``)."""
    space = require_net_space(space)
    out = _check_out(out)
    if n_validate < 0:
        raise NasError(f"--validate must not be negative, got {n_validate}")
    if quick is None:
        if n_fit < 5:
            raise NasError("a kit needs at least 5 subnets to fit the overhead")
        units, fit = all_units(space), build_archs(space, n_fit, seed)
    else:
        if quick < MIN_ROWS:
            raise NasError(f"--quick must be at least {MIN_ROWS} (the fewest measured subnets a transfer fits), got {quick}")
        units, fit = [], spread_archs(space, transfer_references(space, references), quick, seed)
    held = space.sample_unique(random.Random(seed + 1), n_validate, exclude=set(fit))
    net = random_supernet(space, seed)
    shape = space.task.input_shape
    manifest: dict[str, Any] = {
        "space": space.name, "space_hash": space_hash(space), "input_shape": list(shape),
        "created": _dt.date.today().isoformat(), "versions": versions(), "units": [], "archs": [],
        "quick": quick is not None, "references": list(references),
    }
    total = len(units) + len(fit) + len(held)
    advance = progress(f"writing a kit of {total} graphs", total) if progress else (lambda: None)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        for i, unit in enumerate(units):
            module, example = unit_module(net, unit)
            name = f"units/{i:04d}.onnx"  # names are ours, never derived from user strings
            data = to_onnx(module, torch.zeros(example))
            z.writestr(name, data)
            record = unit_record(unit, module, data)
            manifest["units"].append({"file": name, "key": unit.key, **{k: record[k] for k in kit_runner.UNIT_STATS}})
            advance()
        for role, archs in (("fit", fit), ("validate", held)):
            for j, arch in enumerate(archs):
                name = f"archs/{role}-{j:04d}.onnx"
                z.writestr(name, to_onnx(net.extract(arch, shape), torch.zeros(1, *shape)))
                manifest["archs"].append({"file": name, "arch": arch.to_str(), "role": role})
                advance()
        z.writestr("manifest.json", json.dumps(manifest, indent=1))
        z.writestr("run_kit.py", Path(kit_runner.__file__).read_text())
        z.writestr("probe.onnx", probe_graph())
        readme = QUICK_README if quick is not None else KIT_README
        z.writestr("README.txt", readme.format(space=space.name, units=len(units), archs=len(fit) + len(held),
                                               fit=len(fit), validate=len(held),
                                               references=",".join(references) or "cpu"))
    atomic_write(out, buffer.getvalue())  # an existing kit stays whole until the new one is complete
    return out
