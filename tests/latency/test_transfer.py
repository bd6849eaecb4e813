"""A new device's latency from a few measurements, transferred from known devices."""

from __future__ import annotations

import csv
import random
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import spearmanr

from nas.errors import NasError
from nas.latency import MeasureConfig, build_profile, load_predictor, save_profile
from nas.latency.transfer import MIN_ROWS, fit_transfer
from nas.space import load
from tests.conftest import DATA, assert_one_line_error

FBNET = str(DATA / "fbnet.yaml")
TINY = str(DATA / "tiny-vision.yaml")


def fbnet_rows():
    space = load(FBNET)
    with open(DATA / "fbnet_sample.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    devices = [c for c in rows[0] if c != "arch"]
    archs = [space.parse(r["arch"]) for r in rows]
    return space, archs, {d: np.array([float(r[d]) for r in rows]) for d in devices}


@pytest.mark.parametrize("device", ["raspi4_ms", "pixel3_ms"])
def test_twenty_measurements_and_other_devices_rank_a_new_device(device):
    """300 real FBNet archs: 20 measured on the new device, the other five devices as tables."""
    space, archs, table = fbnet_rows()
    idx = random.Random(0).sample(range(len(archs)), 20)
    rest = [i for i in range(len(archs)) if i not in set(idx)]
    refs = {d: list(zip(archs, v, strict=True)) for d, v in table.items() if d != device}
    y = table[device]
    predictor = fit_transfer(space, [(archs[i], y[i]) for i in idx], refs, device)
    predicted = predictor.predict([archs[i] for i in rest])
    rho = spearmanr(predicted, y[rest]).statistic
    within = np.mean(np.abs(predicted - y[rest]) / y[rest] <= 0.10)
    # the same 20 rows without references: a forest on the one-hot features
    from nas.latency.predictor import TablePredictor

    alone = TablePredictor(device, space, [(archs[i], y[i]) for i in idx]).predict([archs[i] for i in rest])
    assert rho > 0.8 and within > 0.7
    assert rho > spearmanr(alone, y[rest]).statistic + 0.2


def test_bad_transfer_input_is_refused():
    space, archs, table = fbnet_rows()
    y = table["raspi4_ms"]
    refs = {"pixel3": list(zip(archs, table["pixel3_ms"], strict=True))}
    with pytest.raises(NasError, match=f"at least {MIN_ROWS} measured archs"):
        fit_transfer(space, list(zip(archs[:3], y[:3], strict=True)), refs)
    with pytest.raises(NasError, match="measured row 1: .*not allowed"):
        fit_transfer(space, [(archs[0].to_str().replace("k3_e6", "k7_e6"), 1.0)] + list(zip(archs[1:9], y[1:9], strict=True)), refs)
    with pytest.raises(NasError, match="no arch in common"):
        fit_transfer(space, list(zip(archs[:10], y[:10], strict=True)),
                     {"pixel3": list(zip(archs[10:], table["pixel3_ms"][10:], strict=True))})
    with pytest.raises(NasError, match="at least one reference"):
        fit_transfer(space, list(zip(archs[:10], y[:10], strict=True)), {})


@pytest.fixture(scope="module")
def tiny_profiles(tmp_path_factory):
    """A cpu profile of tiny-vision (quickly measured here) and its mcu-m7 model."""
    root = tmp_path_factory.mktemp("profiles")
    space = load(TINY)
    save_profile(build_profile(space, "cpu", MeasureConfig(warmup=2, repeats=8, retries=0), n_archs=8), root)
    save_profile(build_profile(space, "mcu-m7"), root)
    return root


def test_a_quick_kit_measured_and_imported_is_a_target_everywhere(cli, tiny_profiles, tmp_path, monkeypatch):
    """nas latency kit --quick, the kit's runner, nas latency import --transfer-from: the new target
    predicts, validates against its held-out runs, and round-trips through its profile."""
    import zipfile

    from nas.latency import kit_runner
    from nas.latency.targets import ImportedTarget, get_target

    monkeypatch.setenv("NAS_PROFILES", str(tiny_profiles))
    kit = tmp_path / "kit.zip"
    result = cli("latency", "kit", TINY, "--quick", "8", "--validate", "6", "--transfer-from", "cpu,mcu-m7", "-o", kit)
    assert result.code == 0, result
    assert "--transfer-from cpu,mcu-m7" in result.out
    folder = tmp_path / "kit"
    zipfile.ZipFile(kit).extractall(folder)
    assert not list((folder).glob("units/*.onnx")) and len(list(folder.glob("archs/*.onnx"))) == 14
    kit_runner.run_kit(str(folder), str(tmp_path / "results.csv"), warmup=2, repeats=8)

    result = cli("latency", "import", tmp_path / "results.csv", "--target", "my-dev", "--space", TINY,
                 "--transfer-from", "cpu,mcu-m7")
    assert result.code == 0, result
    assert "(transfer); held-out:" in result.out
    assert isinstance(get_target("my-dev"), ImportedTarget)
    space = load(TINY)
    archs = space.sample_unique(random.Random(3), 10)
    predicted = load_predictor("my-dev", space).predict(archs)
    assert np.all(np.isfinite(predicted)) and np.all(predicted > 0)
    result = cli("latency", "validate", TINY, "--target", "my-dev", "--measured", tmp_path / "results.csv", "--json")
    assert result.code == 0 and '"n": 14' in result.out


def _write(path: Path, header: list[str], rows) -> Path:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_bad_import_input_is_one_line(cli, tmp_path):
    space, archs, table = fbnet_rows()
    y = table["raspi4_ms"]
    few = _write(tmp_path / "few.csv", ["arch", "latency_ms"], [(a.to_str(), v) for a, v in zip(archs[:3], y, strict=False)])
    refs = _write(tmp_path / "refs.csv", ["arch", "pixel3_ms"],
                  [(a.to_str(), v) for a, v in zip(archs[100:], table["pixel3_ms"][100:], strict=True)])
    some = _write(tmp_path / "some.csv", ["arch", "latency_ms"], [(a.to_str(), v) for a, v in zip(archs[:20], y, strict=False)])
    outside = _write(tmp_path / "outside.csv", ["arch", "latency_ms"], [(archs[0].to_str().replace("l0=", "l99="), 1.0)])
    args = ["--target", "dev", "--space", FBNET, "--out", tmp_path / "p"]
    assert_one_line_error(cli("latency", "import", few, *args, "--reference", refs), "at least 5 measured archs")
    assert_one_line_error(cli("latency", "import", some, *args, "--reference", refs), "no arch in common")
    assert_one_line_error(cli("latency", "import", outside, *args, "--reference", refs), "outside.csv line 2")
    assert_one_line_error(cli("latency", "import", some, *args, "--transfer-from", "tpu"), "unknown target 'tpu'")
    assert_one_line_error(cli("latency", "kit", TINY, "--quick", "3", "--transfer-from", "mcu-m7", "-o", tmp_path / "k.zip"),
                          "--quick must be at least 5")
    ok = cli("latency", "import", some, *args, "--reference", _write(
        tmp_path / "all.csv", ["arch", "pixel3_ms", "eyeriss_ms"],
        [(a.to_str(), p, e) for a, p, e in zip(archs, table["pixel3_ms"], table["eyeriss_ms"], strict=True)]))
    assert ok.code == 0, ok
