"""Datasets: built-in real data, users' own arrays and callables, clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from nas.data import load_dataset, ucr_problems
from nas.errors import NasError


def test_digits_splits_are_disjoint_and_standardised(digits):
    assert digits.input_shape == (1, 8, 8) and digits.num_classes == 10
    assert len(digits.x_train) + len(digits.x_val) + len(digits.x_test) == 1797
    assert abs(float(digits.x_train.mean())) < 1e-4 and abs(float(digits.x_train.std()) - 1) < 1e-3
    train_rows = {r.tobytes() for r in digits.x_train}
    assert not any(r.tobytes() in train_rows for r in digits.x_test[:50] if r.any())


def test_ucr_series_from_the_aeon_wheel():
    data = load_dataset("gunpoint", "sequence")
    assert data.input_shape == (1, 150) and data.num_classes == 2
    assert len(data.x_test) == 150
    assert "BasicMotions" in ucr_problems()
    multi = load_dataset("ucr:BasicMotions", "sequence")
    assert multi.input_shape == (6, 100) and multi.num_classes == 4


def test_fashion_mnist_missing_names_the_debian_package(tmp_path, monkeypatch):
    monkeypatch.setenv("NAS_FASHION_MNIST_DIR", str(tmp_path))
    with pytest.raises(NasError, match="dataset-fashion-mnist"):
        load_dataset("fashion-mnist")


def test_users_npz(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "mine.npz"
    np.savez(path, x_train=rng.standard_normal((60, 12, 12)), y_train=rng.integers(0, 3, 60),
             x_test=rng.standard_normal((20, 12, 12)), y_test=rng.integers(0, 3, 20))
    data = load_dataset(str(path), "image")
    assert data.input_shape == (1, 12, 12) and data.num_classes == 3
    assert len(data.x_train) + len(data.x_val) == 60
    seq = load_dataset(str(path), "sequence")
    assert seq.input_shape == (12, 12)


def test_users_callable(tmp_path):
    module = tmp_path / "mydata.py"
    module.write_text(
        "import numpy as np\n"
        "def load():\n"
        "    r = np.random.default_rng(1)\n"
        "    return r.standard_normal((40, 1, 30)), r.integers(0, 2, 40), r.standard_normal((10, 1, 30)), r.integers(0, 2, 10)\n"
    )
    data = load_dataset(f"{module}:load", "sequence")
    assert data.input_shape == (1, 30) and data.num_classes == 2


@pytest.mark.parametrize(
    "arrays, needle",
    [
        ({"x_train": np.zeros((4, 8)), "y_train": np.zeros(4, int)}, "lacks x_test, y_test"),
        ({"x_train": np.zeros((4, 8)), "y_train": np.array([0.5, 1, 0, 1]), "x_test": np.zeros((2, 8)), "y_test": np.zeros(2, int)},
         "integer labels"),
        ({"x_train": np.zeros((4, 8)), "y_train": np.zeros(3, int), "x_test": np.zeros((2, 8)), "y_test": np.zeros(2, int)},
         "differ in length"),
        ({"x_train": np.full((4, 8), np.nan), "y_train": np.array([0, 1, 0, 1]), "x_test": np.zeros((2, 8)), "y_test": np.zeros(2, int)},
         "NaN"),
    ],
)
def test_bad_user_arrays(tmp_path, arrays, needle):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(NasError, match=needle):
        load_dataset(str(path), "sequence")


def test_unknown_and_missing_datasets():
    with pytest.raises(NasError, match="unknown dataset 'mnist'"):
        load_dataset("mnist")
    with pytest.raises(NasError, match="does not exist"):
        load_dataset("/nonexistent/data.npz")
    with pytest.raises(NasError, match="unknown UCR problem 'Nope'"):
        load_dataset("ucr:Nope", "sequence")
