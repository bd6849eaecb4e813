"""Accuracy calibrated from a few stand-alone trainings: the stand-alone recipe, the calibration
file (kept after every arch, resumed), its model and check, and a search scored by it."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from nas.space import load
from nas.store import Store
from nas.supernet.calibrate import (
    CANDIDATES,
    FEATURES,
    AccuracyCalibration,
    calibrate,
    default_path,
    kind_pattern,
    stratified,
)
from nas.supernet.scoring import accuracy_and_nll
from nas.supernet.standalone import StandaloneRecipe, train_from_scratch
from tests.conftest import assert_one_line_error


def test_training_from_scratch_learns_and_one_seed_gives_one_result(digits):
    space = load("hybrid-vision")
    arch = space.smallest()
    recipe = StandaloneRecipe(steps=60)
    first = train_from_scratch(space, arch, digits.x_train, digits.y_train, 3, recipe)
    again = train_from_scratch(space, arch, digits.x_train, digits.y_train, 3, recipe)
    acc, nll = accuracy_and_nll(first, None, digits.x_test, digits.y_test)
    assert acc > 0.5 and 0 < nll < np.log(10)  # 60 steps on digits: well above chance (10%)
    assert (acc, nll) == accuracy_and_nll(again, None, digits.x_test, digits.y_test)


def test_stratified_picks_spread_over_values_and_kind_patterns():
    space = load("mcu-vision")
    pool = space.sample_unique(random.Random(0), 500)
    values = np.array([sum(1 for _ in a.layers()) + random.Random(i).random() for i, a in enumerate(pool)])
    chosen = stratified(pool, values, 12)
    assert len(set(chosen)) == 12
    picked = np.sort(values[chosen])
    assert picked[0] < np.quantile(values, 0.05) and picked[-1] > np.quantile(values, 0.95)
    assert len({kind_pattern(pool[i]) for i in chosen}) >= 8  # of 21 patterns, 12 picks


@pytest.fixture(scope="module")
def calibrated(search_env, tmp_path_factory):
    """The mcu-vision test supernet calibrated on 5 archs, 30 steps each on 600 digits (seconds)."""
    ckpt = search_env["mcu-vision"]
    out = tmp_path_factory.mktemp("calibration") / "c.json"
    calibration, path = calibrate(ckpt, k=5, steps=30, out=out, device="cpu", limit=600)
    return ckpt, calibration, path


def test_calibration_is_fitted_checked_and_resumed(calibrated):
    ckpt, calibration, path = calibrated
    assert len(calibration.rows) == 5 and tuple(calibration.features) in CANDIDATES
    assert len(calibration.coef) == len(calibration.features)
    assert {"log_synflow", "naswot", "log_grad_norm"} <= set(calibration.rows[0]["features"])  # proxies kept
    assert set(calibration.check) == {"loo_mae", "loo_kendall_tau", "supernet_kendall_tau"}
    assert all(0 <= calibration.predict(r["features"]) <= 1 for r in calibration.rows)
    saved = AccuracyCalibration.load(path)
    assert saved.rows == calibration.rows and saved.coef == calibration.coef
    # Stopped after two archs: a rerun trains only the three missing ones.
    partial = json.loads(path.read_text())
    partial["rows"], partial["coef"] = partial["rows"][:2], []
    path.write_text(json.dumps(partial))
    stages = []
    resumed, _ = calibrate(ckpt, k=5, steps=30, out=path, device="cpu", limit=600,
                           progress=lambda what, n: stages.append(n) or (lambda: None))
    assert stages == [3] and [r["arch"] for r in resumed.rows][:2] == [r["arch"] for r in calibration.rows][:2]
    assert sorted(r["arch"] for r in resumed.rows) == sorted(r["arch"] for r in calibration.rows)


def test_the_feature_set_is_chosen_by_leave_one_out_error_on_the_calibration_archs():
    """Accuracy that follows log params and nothing else: the calibration picks a set with
    log params, and its nested check ranks the archs; a file from before the choice (no
    ``features``) still predicts with the four features it was fitted on."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(10):
        f = {name: float(rng.normal()) for name in (*FEATURES, "log_synflow", "naswot", "log_grad_norm")}
        rows.append({"arch": str(i), "accuracy": 0.7 + 0.05 * f["log_params"], "features": f})
    model = AccuracyCalibration("", 0, 0, rows=rows).fit()
    assert "log_params" in model.features and model.check["loo_kendall_tau"] > 0.9
    only = AccuracyCalibration("", 0, 0, rows=rows).fit([FEATURES])
    assert only.features == list(FEATURES)
    old = only.to_json()
    del old["features"]
    assert AccuracyCalibration.from_json(old, "old").predict(rows[0]["features"]) == only.predict(rows[0]["features"])


def test_a_search_scores_by_the_calibration_and_stores_it(calibrated, tmp_path, cli):
    ckpt, calibration, path = calibrated
    db = tmp_path / "c.db"
    result = cli("search", "--supernet", str(ckpt), "--target", "mcu-m7", "--budget", "4", "--workers", "0",
                 "--db", str(db), "--experiment", "cal", "--val-examples", "100", "--accuracy", f"calibrated:{path}")
    assert result.code == 0, result.err
    store = Store(str(db), readonly=True)
    exp = store.experiment("cal")
    assert exp.config["accuracy_calibration"]["coef"] == calibration.coef  # the model, stored with the experiment
    rows = store.evaluations("cal")
    assert len(rows) == 4
    for row in rows:
        assert 0 <= row.metrics["accuracy"] <= 1 and "supernet_accuracy" in row.metrics
        assert row.metrics["accuracy"] != row.metrics["supernet_accuracy"]
    again = cli("search", "--supernet", str(ckpt), "--target", "mcu-m7", "--budget", "5", "--workers", "0",
                "--db", str(db), "--experiment", "cal", "--val-examples", "100", "--resume")
    assert_one_line_error(again, "--accuracy calibrated")


def test_a_calibration_of_another_supernet_or_a_bad_one_is_one_line(calibrated, search_env, tmp_path, cli):
    _, _, path = calibrated
    other = search_env["hybrid-vision"]
    for accuracy, needle in ((f"calibrated:{path}", "calibrates another supernet"), ("calibrated", "does not exist"),
                             ("oracle", "--accuracy must be")):
        result = cli("search", "--supernet", str(other), "--target", "mcu-m7", "--budget", "2", "--workers", "0",
                     "--db", str(tmp_path / "x.db"), "--accuracy", accuracy)
        assert_one_line_error(result, needle)
    assert default_path(other).name == "hybrid-vision.calibration.json"
    assert_one_line_error(cli("supernet", "calibrate", str(other), "--archs", "2"), "--archs must be at least 4")


def test_the_calibrate_command_trains_fits_and_says_how_it_checks(search_env, tmp_path, cli):
    out = tmp_path / "cli.json"
    result = cli("supernet", "calibrate", str(search_env["mcu-vision"]), "--archs", "4", "--steps", "10",
                 "--limit", "300", "--device", "cpu", "--out", str(out))
    assert result.code == 0, result.err
    assert "4 archs trained from scratch" in result.out and "leave-one-out" in result.out
    assert len(AccuracyCalibration.load(out).rows) == 4
