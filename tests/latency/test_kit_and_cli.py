"""The latency CLI end to end on a tiny space: build, validate, predict, measure, kit round trip, bad input."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import DATA, assert_one_line_error

TINY = str(DATA / "tiny-vision.yaml")


@pytest.fixture
def profiles(tmp_path, monkeypatch):
    monkeypatch.setenv("NAS_PROFILES", str(tmp_path / "profiles"))
    return tmp_path / "profiles"


def test_build_validate_predict_on_cpu(cli, profiles):
    result = cli("latency", "build", TINY, "--target", "cpu", "--archs", "8", "--repeats", "10")
    assert result.code == 0, result
    assert (profiles / "cpu" / "tiny-vision.predictor.json").is_file()
    result = cli("latency", "validate", TINY, "--target", "cpu", "-n", "8", "--json")
    assert result.code == 0, result
    summary = json.loads(result.out)
    assert {"n", "within_10pct", "kendall_tau", "mape", "rmse_ms", "noise_cv"} <= set(summary)
    assert summary["n"] == 8
    assert (profiles / "cpu" / "tiny-vision.validation.png").stat().st_size > 1000
    result = cli("latency", "predict", "8:conv3+mlp2/16:attn1+moe2k1", "--target", "cpu", "--space", TINY, "--json")
    data = json.loads(result.out)
    assert result.code == 0 and data["latency_ms"] > 0 and data["space"] == "tiny-vision"


def test_mcu_build_and_predict_arch(cli, profiles):
    assert cli("latency", "build", TINY, "--target", "mcu-m4").code == 0
    result = cli("latency", "predict", "16:ssm4x1+moe2k1,conv3+mlp2/16:conv3+mlp2", "--target", "mcu-m4", "--space", TINY, "--json")
    data = json.loads(result.out)
    assert result.code == 0 and {"latency_ms", "peak_sram_kb", "flash_kb"} <= set(data)


def test_measure_an_onnx_file(cli, tmp_path):
    from nas.latency.reference_models import reference_onnx

    path = tmp_path / "fc.onnx"
    path.write_bytes(reference_onnx("fc_autoencoder_toycar"))
    result = cli("latency", "measure", path, "--target", "cpu", "--json", "--repeats", "10")
    data = json.loads(result.out)
    assert result.code == 0 and data["median_ms"] > 0 and data["p90_ms"] >= data["median_ms"] >= data["p10_ms"]


@pytest.mark.slow
def test_kit_round_trip(cli, tmp_path, profiles):
    """kit -> run its runner (plain Python + onnxruntime) -> import -> the new target predicts what was measured."""
    kit = tmp_path / "kit.zip"
    assert cli("latency", "kit", TINY, "-o", kit, "--fit", "10", "--validate", "8").code == 0
    folder = tmp_path / "kit"
    with zipfile.ZipFile(kit) as z:
        z.extractall(folder)
    assert {"run_kit.py", "manifest.json", "README.txt"} <= {p.name for p in folder.iterdir()}
    # The runner must not need the nas package: run it from the kit folder with -I (isolated mode).
    run = subprocess.run([sys.executable, "-I", str(folder / "run_kit.py"), "--repeats", "20"],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    results = folder / "results.csv"
    with open(results, newline="") as f:
        rows = list(csv.DictReader(f))
    assert {r["kind"] for r in rows} == {"unit", "arch"}

    result = cli("latency", "import", results, "--target", "my-board")
    assert_one_line_error(result, "pass --space PATH")
    result = cli("latency", "import", results, "--target", "my-board", "--space", TINY)
    assert result.code == 0, result
    from nas.latency import load_predictor
    from nas.space import load

    space = load(TINY)
    predictor = load_predictor("my-board", space)
    fit = [r for r in rows if r["kind"] == "arch" and r["role"] == "fit"]
    predicted = predictor.predict([space.parse(r["key"]) for r in fit])
    measured = [float(r["median_ms"]) for r in fit]
    errors = sorted(abs(p - m) / m for p, m in zip(predicted, measured, strict=True))
    assert errors[len(errors) // 2] < 0.15  # median error on what the device measured
    result = cli("latency", "predict", fit[0]["key"], "--target", "my-board", "--space", TINY, "--json")
    assert result.code == 0 and json.loads(result.out)["latency_ms"] > 0
    assert "my-board" in cli("latency", "targets").out


def test_table_import_for_a_plain_space(cli, tmp_path, profiles):
    import random

    from nas.space import load

    space = load("toy-choice")
    table = tmp_path / "table.csv"
    with open(table, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["arch", "latency_ms"])
        for a in space.sample_unique(random.Random(0), 30):
            w.writerow([a.to_str(), 0.5 + a.as_dict()["layers"] * a.as_dict()["units"] / 100])
    result = cli("latency", "import", table, "--target", "my-server", "--space", "toy-choice")
    assert result.code == 0, result
    result = cli("latency", "predict", "layers=4,units=128,activation=relu,dropout=0.0", "--target", "my-server",
                 "--space", "toy-choice", "--json")
    assert result.code == 0 and json.loads(result.out)["latency_ms"] > 2


def _csv(tmp_path: Path, header: list[str], rows: list[list[str]]) -> str:
    path = tmp_path / "bad.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return str(path)


@pytest.mark.parametrize(
    "make_args, needle",
    [
        (lambda t: ["latency", "build", TINY, "--target", "tpu"], "unknown target 'tpu'"),
        (lambda t: ["latency", "build", TINY, "--target", "gpu"], "no GPU"),
        (lambda t: ["latency", "build", "toy-choice", "--target", "cpu"], "no supernet"),
        (lambda t: ["latency", "validate", TINY, "--target", "cpu"], "no cpu latency profile"),
        (lambda t: ["latency", "predict", _file(t, "x.onnx", b"not onnx"), "--target", "mcu-m7"], "not a valid ONNX model"),
        (lambda t: ["latency", "measure", _file(t, "y.onnx", b"\x08\x01garbage"), "--target", "cpu"], "not a valid ONNX model"),
        (lambda t: ["latency", "measure", str(t / "none.onnx")], "does not exist"),
        (lambda t: ["latency", "predict", "8:conv9+mlp2/16:conv3+mlp2", "--target", "mcu-m7", "--space", TINY], "'conv9' is not allowed"),
        (lambda t: ["latency", "import", _csv(t, ["space", "kind", "key"], [["tiny-vision", "unit", "x"]]), "--target", "dev"],
         "lacks the column(s) role, median_ms"),
        (lambda t: ["latency", "import", _csv(t, ["arch", "latency_ms"], [["layers=1,units=16,activation=relu,dropout=0.0", "fast"]]),
                    "--target", "dev", "--space", "toy-choice"], "'latency_ms' is not a number"),
        (lambda t: ["latency", "import", _csv(t, ["arch", "speed"], [["a", "1"]]), "--target", "dev", "--space", "toy-choice"],
         "lacks the column(s) latency_ms"),
        (lambda t: ["latency", "import", _csv(t, ["arch", "latency_ms"], [["a", "1"]]), "--target", "cpu", "--space", "toy-choice"],
         "built-in target"),
        (lambda t: ["latency", "import", str(t / "none.csv"), "--target", "dev"], "does not exist"),
        (lambda t: ["latency", "kit", TINY, "-o", str(t / "kit.tar")], "must end in .zip"),
    ],
)
def test_bad_latency_input(cli, tmp_path, profiles, make_args, needle):
    assert_one_line_error(cli(*make_args(tmp_path)), needle)


def _file(tmp: Path, name: str, content: bytes) -> str:
    path = tmp / name
    path.write_bytes(content)
    return str(path)
