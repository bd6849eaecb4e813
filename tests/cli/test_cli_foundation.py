"""The foundation's CLI: spaces, supernet training, subnet export, and bad input."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import onnx
import pytest

from tests.conftest import assert_one_line_error


def test_space_show_and_sample(cli):
    result = cli("space", "show", "hybrid-vision")
    assert result.code == 0 and "stage 2 ffns" in result.out and "subnets" in result.out
    result = cli("space", "sample", "hybrid-vision", "-n", "4", "--seed", "3")
    lines = result.out.strip().splitlines()
    assert result.code == 0 and len(lines) == 4 and len(set(lines)) == 4
    assert cli("space", "check", "hybrid-vision", lines[0]).out.strip() == lines[0]


def test_export_prints_parity_and_writes_a_checked_model(cli, digits_ckpt, tmp_path):
    out = tmp_path / "m.onnx"
    result = cli("subnet", "export", digits_ckpt, "smallest", "-o", out)
    assert result.code == 0, result
    assert "max abs error" in result.out and "digits test inputs" in result.out
    model = onnx.load(str(out))
    onnx.checker.check_model(model)
    assert model.opset_import[0].version >= 17
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["nas.space"] == "hybrid-vision" and meta["nas.dataset"] == "digits"


def _bad_yaml(tmp_path: Path) -> str:
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\nstages: [\n")
    return str(path)


@pytest.mark.parametrize(
    "make_args, needle",
    [
        (lambda tmp, ck: ["space", "show", _bad_yaml(tmp)], "YAML syntax error"),
        (lambda tmp, ck: ["space", "show", "nope"], "unknown search space"),
        (lambda tmp, ck: ["space", "check", "hybrid-vision", "16:conv9+mlp2/48:conv3+mlp2/64:conv3+mlp2"], "'conv9' is not allowed"),
        (lambda tmp, ck: ["space", "check", "hybrid-vision", "16:conv3+mlp2/32:conv3+mlp2/48:conv3+mlp2"], "stage 1 width"),
        (lambda tmp, ck: ["space", "sample", "hybrid-vision", "-n", "0"], "-n must be at least 1"),
        (lambda tmp, ck: ["subnet", "export", str(tmp / "missing.ckpt"), "largest", "-o", str(tmp / "m.onnx")], "does not exist"),
        (lambda tmp, ck: ["subnet", "export", _corrupt(tmp), "largest", "-o", str(tmp / "m.onnx")], "corrupted"),
        (lambda tmp, ck: ["subnet", "export", ck, "16:conv3+mlp2", "-o", str(tmp / "m.onnx")], "stages"),
        (lambda tmp, ck: ["subnet", "export", ck, "largest", "-o", str(tmp / "m.txt")], "must end in .onnx"),
        (lambda tmp, ck: ["subnet", "export", ck, "largest", "-o", str(tmp / "no" / "m.onnx")], "does not exist"),
        (lambda tmp, ck: ["supernet", "train", "hybrid-vision", "--dataset", "mnist", "--out", str(tmp / "x.ckpt")], "unknown dataset 'mnist'"),
        (lambda tmp, ck: ["supernet", "train", "hybrid-vision", "--dataset", str(tmp / "none.npz"), "--out", str(tmp / "x.ckpt")], "does not exist"),
        (lambda tmp, ck: ["supernet", "train", "toy-choice", "--dataset", "digits"], "no supernet"),
        (lambda tmp, ck: ["supernet", "train", "hybrid-vision", "--dataset", "digits", "--epochs", "0", "--out", str(tmp / "x.ckpt")], "epochs=0"),
        (lambda tmp, ck: ["supernet", "train", "hybrid-vision", "--dataset", "digits", "--out", ck], "already exists"),
        (lambda tmp, ck: ["supernet", "train", "hybrid-vision", "--resume", "--out", str(tmp / "none.ckpt")], "does not exist"),
        (lambda tmp, ck: ["supernet", "info", _corrupt(tmp)], "corrupted"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(cli, tmp_path, digits_ckpt, make_args, needle):
    assert_one_line_error(cli(*make_args(tmp_path, str(digits_ckpt))), needle)


def test_missing_fashion_mnist_names_the_package(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("NAS_FASHION_MNIST_DIR", str(tmp_path))
    result = cli("supernet", "train", "hybrid-vision", "--dataset", "fashion-mnist", "--out", tmp_path / "x.ckpt")
    assert_one_line_error(result, "dataset-fashion-mnist")


def _corrupt(tmp: Path) -> str:
    path = tmp / "corrupt.ckpt"
    path.write_bytes(b"\x80\x04garbage that is not a zip")
    return str(path)


@pytest.mark.slow
def test_train_and_export_from_the_real_command_line(tmp_path):
    """The README's commands, as a user types them, in a fresh process."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    nas = [sys.executable, "-m", "nas"]
    ckpt = tmp_path / "hv.ckpt"
    train = subprocess.run(nas + ["supernet", "train", "hybrid-vision", "--dataset", "digits", "--epochs", "1",
                                  "--out", str(ckpt)], capture_output=True, text=True, env=env, timeout=600)
    assert train.returncode == 0, train.stderr[-2000:]
    assert "largest" in train.stdout and "smallest" in train.stdout and ckpt.is_file()
    export = subprocess.run(nas + ["subnet", "export", str(ckpt), "largest", "-o", str(tmp_path / "m.onnx")],
                            capture_output=True, text=True, env=env, timeout=600)
    assert export.returncode == 0, export.stderr[-2000:]
    assert "max abs error" in export.stdout
    bad = subprocess.run(nas + ["subnet", "export", str(tmp_path / "nope.ckpt"), "largest", "-o", str(tmp_path / "m.onnx")],
                         capture_output=True, text=True, env=env, timeout=600)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr


def test_progress_in_a_log_is_plain_lines_at_intervals():
    """Output that is not a terminal gets whole lines (a tenth of the way each), not a bar's last frame."""
    import io

    from rich.console import Console

    from nas.cli._progress import LineProgress, TrainBar

    buf = io.StringIO()
    progress = LineProgress(Console(file=buf, width=60))
    task = progress.add_task("cpu: measuring 177 units", total=177)
    for _ in range(177):
        progress.advance(task)
    search = progress.add_task("evaluations", total=40, completed=5)
    for done in range(6, 41):
        progress.update(search, completed=done, status=f"best accuracy 0.{done:02d} HV 2.4")
    bar = TrainBar(progress)
    bar.epoch_started(0, 1, 10)
    bar.epoch_done({"epoch": 1, "loss": 0.5, "val_acc_largest": 0.9, "val_acc_smallest": 0.8, "seconds": 3})
    lines = buf.getvalue().splitlines()
    units = [line for line in lines if line.startswith("cpu: measuring")]
    assert units[0].startswith("cpu: measuring 177 units: 0/177") and units[-1].startswith("cpu: measuring 177 units: 177/177")
    assert 10 <= len(units) <= 12  # one per tenth, not one per unit
    assert any(line.startswith("evaluations: 40/40 best accuracy 0.40 HV 2.4") for line in lines)
    assert "epoch 1: loss 0.500 val largest 0.900 smallest 0.800 (3 s)" in lines
    assert all("…" not in line and "eta" not in line for line in lines)  # nothing cut to the width, no bar columns
