"""The latency room's torch-free floor holds in practice, not only in the import contract: every
predictor kind a search, the dashboard or a kit import reads (measured, mcu, table, transfer) is
made from its profile and predicts in a process where importing torch fails."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from tests.conftest import REPO

SCRIPT = textwrap.dedent('''
    import sys

    class NoTorch:
        def find_spec(self, name, path=None, target=None):
            if name == "torch" or name.startswith("torch."):
                raise ImportError("torch is blocked in this process")

    sys.meta_path.insert(0, NoTorch())
    import random

    import nas.latency  # the package, as a search worker imports it
    from nas.latency.predictor import predictor_for
    from nas.latency.profile import assemble, load_profile
    from nas.latency.transfer import fit_transfer, reference_json
    from nas.space import load

    space = load("mcu-vision")
    archs = space.sample_unique(random.Random(0), 12)
    made = {}
    for target in ("cpu", "mcu-m7"):
        made[load_profile(target, space)[0].kind] = predictor_for(load_profile(target, space)[0], space)
    cpu = made["measured"].predict(archs)
    rows = [{"arch": a.to_str(), "median_ms": float(ms)} for a, ms in zip(archs, cpu)]
    made["table"] = predictor_for(assemble("my-table", space, "table", meta={}, archs=rows), space)
    transfer = fit_transfer(space, [(a, 2 * ms) for a, ms in zip(archs[:6], cpu[:6])],
                            {"cpu": load_profile("cpu", space)[0]}, "my-board")
    profile = assemble("my-board", space, "transfer", meta={},
                       archs=[{"arch": a.to_str(), "median_ms": ms} for a, ms in transfer.measured],
                       model={"references": {r.name: reference_json(r) for r in transfer.references}})
    made["transfer"] = predictor_for(profile, space)
    for kind, predictor in sorted(made.items()):
        values = predictor.predict(archs)
        assert len(values) == len(archs) and all(v > 0 for v in values), kind
        print(kind, "ok")
    assert "torch" not in sys.modules
''')


def test_every_predictor_kind_predicts_where_torch_cannot_be_imported():
    done = subprocess.run([sys.executable, "-c", SCRIPT], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["mcu", "ok", "measured", "ok", "table", "ok", "transfer", "ok"]
