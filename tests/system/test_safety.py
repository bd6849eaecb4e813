"""Safety: weights-only checkpoints, no user string to eval, a shell or raw SQL, a read-only dashboard
bound to 127.0.0.1, and exported files that stay in their folder."""

from __future__ import annotations

import ast
import pickle
import re
import zipfile
from pathlib import Path

import pytest

from nas.errors import NasError
from tests.conftest import DATA, REPO

ROOT = REPO
SOURCES = sorted(list((ROOT / "nas").rglob("*.py")) + list((ROOT / "dashboard").rglob("*.py")))


class Payload:
    """Unpickling this would run a command: a checkpoint must never be loaded with full pickle."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_malicious_checkpoint_is_refused_and_runs_nothing(tmp_path):
    import torch

    from nas.supernet import checkpoint

    marker = tmp_path / "pwned"
    path = tmp_path / "evil.ckpt"
    torch.save({"format": "nas-supernet", "version": 1, "payload": Payload(marker)}, path)
    with pytest.raises(NasError, match="corrupted or not a supernet checkpoint"):
        checkpoint.load(path)
    assert not marker.exists()
    with open(tmp_path / "raw.pkl", "wb") as f:
        pickle.dump(Payload(marker), f)
    with pytest.raises(NasError):
        checkpoint.load(tmp_path / "raw.pkl")
    assert not marker.exists()


def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield node


def _name(func: ast.AST) -> str:
    if isinstance(func, ast.Attribute):
        return f"{_name(func.value)}.{func.attr}"
    if isinstance(func, ast.Name):
        return func.id
    return ""


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_eval_shell_or_unsafe_load(path):
    tree = ast.parse(path.read_text())
    for call in _calls(tree):
        name = _name(call.func)
        assert name not in ("eval", "exec", "os.system", "os.popen", "pickle.load", "pickle.loads"), (path, name)
        for kw in call.keywords:
            if kw.arg == "shell":
                assert isinstance(kw.value, ast.Constant) and kw.value.value is False, (path, call.lineno)
        if name.endswith("torch.load"):
            flags = {kw.arg: kw.value for kw in call.keywords}
            assert isinstance(flags.get("weights_only"), ast.Constant) and flags["weights_only"].value is True, \
                (path, call.lineno)
        if name.startswith("subprocess.") and call.args:
            assert not isinstance(call.args[0], (ast.Constant, ast.JoinedStr)), (path, call.lineno, "command as a string")


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_sql_text_is_never_built_from_values(path):
    """``text()`` only with constants (or our own constant table names), never with user data."""
    tree = ast.parse(path.read_text())
    for call in _calls(tree):
        if _name(call.func) in ("sa.text", "text", "sqlalchemy.text") and call.args:
            arg = call.args[0]
            if isinstance(arg, ast.JoinedStr):
                names = {n.id for v in arg.values if isinstance(v, ast.FormattedValue) for n in ast.walk(v.value)
                         if isinstance(n, ast.Name)}
                assert names <= {"VERSION_TABLE"}, (path, call.lineno, names)
            else:
                assert isinstance(arg, ast.Constant), (path, call.lineno)


def test_hostile_names_are_stored_literally(tmp_path):
    from nas.store import Store

    store = Store(str(tmp_path / "s.db"))
    space_id = store.ensure_space("toy", "h", "choice", "name: toy")
    evil = "x'; DROP TABLE nas_experiments; --"
    store.create_experiment(evil, space_id, "random", [], [{"name": "score", "direction": "max"}], [], 5, 0, {}, {})
    assert store.experiment(evil).name == evil
    assert "nas_experiments" in store.row_counts()


def test_dashboard_binds_loopback_and_reads_only():
    from nas.cli.dashboard_cmd import streamlit_command

    command = streamlit_command("sqlite:///x.db", "127.0.0.1", 8501)
    assert command[command.index("--server.address") + 1] == "127.0.0.1"
    data_py = (ROOT / "dashboard" / "data.py").read_text()
    assert "Store(url, readonly=True)" in data_py and re.search(r"Store\((?!url, readonly=True)", data_py) is None
    for page in (ROOT / "dashboard").rglob("*.py"):
        text = page.read_text()
        assert "import torch" not in text and "add_evaluation" not in text and "save_profile" not in text


def test_the_dashboard_default_host_is_loopback(cli, tmp_path, monkeypatch):
    import nas.cli.dashboard_cmd as dash
    from nas.store import Store

    Store(str(tmp_path / "d.db")).close()
    seen = {}
    monkeypatch.setattr(dash, "_serve", lambda args: seen.setdefault("args", args) and 0)
    assert cli("dashboard", "--db", tmp_path / "d.db", "--port", "8765").code == 0
    args = seen["args"]
    assert args[args.index("--server.address") + 1] == "127.0.0.1"


def test_kit_entries_stay_inside_the_kit(tmp_path):
    from nas.latency.kit import write_kit
    from nas.space import load

    path = write_kit(load(str(DATA / "tiny-vision.yaml")), tmp_path / "k.zip", n_fit=5, n_validate=0)
    with zipfile.ZipFile(path) as z:
        for name in z.namelist():
            assert not name.startswith("/") and ".." not in Path(name).parts


@pytest.mark.parametrize("target", ["../escape", "a/b", ".hidden", "x y"])
def test_profile_names_cannot_leave_their_folder(target, tmp_path):
    from nas.latency.profile import profile_path

    with pytest.raises(NasError):
        profile_path(tmp_path, target, "space")
