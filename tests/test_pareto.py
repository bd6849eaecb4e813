"""Pareto fronts and hypervolume against hand counts and brute force."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from nas.pareto import front_rows, hypervolume, hypervolume_curve, nondominated_ranks, pareto_mask


def brute_mask(points, directions):
    signs = np.array([-1 if d == "max" else 1 for d in directions])
    p = points * signs
    return np.array([not any(np.all(q <= x) and np.any(q < x) for q in p) for x in p])


@pytest.mark.parametrize("m", [2, 3, 4])
def test_pareto_mask_matches_brute_force(m):
    rng = np.random.default_rng(m)
    for _ in range(20):
        points = rng.integers(0, 6, size=(25, m)).astype(float)
        directions = ["max"] + ["min"] * (m - 1)
        assert np.array_equal(pareto_mask(points, directions), brute_mask(points, directions))


def test_hypervolume_hand_counted():
    # Minimise both: boxes [1,4]x[3,4] (3) and [2,4]x[1,4] (6) overlap in [2,4]x[3,4] (2): 7.
    assert hypervolume(np.array([[1, 3], [2, 1]]), [4, 4], ["min", "min"]) == pytest.approx(7)
    # Accuracy up, latency down, reference (0, 10): 0.9 up to 5 ms, 0.5 up to 2 ms.
    assert hypervolume(np.array([[0.9, 5], [0.5, 2]]), [0, 10], ["max", "min"]) == pytest.approx(0.9 * 5 + 0.5 * 3)
    # Points outside the reference box add nothing.
    assert hypervolume(np.array([[5, 5]]), [4, 4], ["min", "min"]) == 0


def test_hypervolume_3d_matches_monte_carlo():
    rng = np.random.default_rng(0)
    points = rng.random((12, 3))
    exact = hypervolume(points, [1, 1, 1], ["min"] * 3)
    samples = rng.random((200_000, 3))
    dominated = np.zeros(len(samples), dtype=bool)
    for p in points:
        dominated |= np.all(samples >= p, axis=1)
    assert exact == pytest.approx(dominated.mean(), abs=0.005)


def test_hypervolume_3d_hand_counted():
    # Two unit-reference boxes in 3-D: [0,1]^2 x [0.5,1] and [0.5,1] x [0,1]^2 overlap in [0.5,1]^3.
    points = np.array([[0, 0, 0.5], [0.5, 0, 0]])
    assert hypervolume(points, [1, 1, 1], ["min"] * 3) == pytest.approx(0.5 + 0.5 - 0.25)


def test_curve_is_monotone_and_ignores_infeasible():
    points = np.array([[0.5, 5], [0.9, 9], [0.95, 1], [0.7, 3]])
    curve = hypervolume_curve(points, [0, 10], ["max", "min"], feasible=np.array([True, True, False, True]))
    assert np.all(np.diff(curve) >= 0) and curve[2] == curve[1]


@pytest.mark.parametrize("m", [2, 3])
def test_curve_equals_the_hypervolume_of_each_prefix(m):
    """The curve skips points the front already dominates; it must still equal a recount at every step."""
    rng = np.random.default_rng(10 + m)
    directions = ["max"] + ["min"] * (m - 1)
    reference = [-1] + [6] * (m - 1)
    for _ in range(30):
        points = rng.integers(0, 5, size=(20, m)).astype(float)
        feasible = rng.random(20) > 0.2
        expected = [hypervolume(points[: i + 1][feasible[: i + 1]], reference, directions) if feasible[: i + 1].any()
                    else 0.0 for i in range(20)]
        assert np.allclose(hypervolume_curve(points, reference, directions, feasible), expected)


def test_constrained_ranks_put_feasible_first():
    points = np.array([[0.9, 1.0], [0.5, 2.0], [0.99, 0.5], [0.1, 9.0]])
    ranks = nondominated_ranks(points, ["max", "min"], violation=np.array([0, 0, 0.3, 0]))
    assert ranks[0] == 0 and ranks[2] > max(ranks[0], ranks[1], ranks[3])


def test_front_rows_skip_failed_and_infeasible():
    rows = [
        {"arch": "a", "accuracy": 0.9, "cpu_ms": 2.0, "feasible": True, "status": "ok"},
        {"arch": "b", "accuracy": 0.95, "cpu_ms": 1.0, "feasible": False, "status": "ok"},
        {"arch": "c", "accuracy": 0.8, "cpu_ms": 1.0, "feasible": True, "status": "ok"},
        {"arch": "d", "feasible": False, "status": "failed"},
        {"arch": "e", "accuracy": 0.7, "cpu_ms": 3.0, "feasible": True, "status": "ok"},
    ]
    front = front_rows(rows, [{"name": "accuracy", "direction": "max"}, {"name": "cpu_ms", "direction": "min"}])
    assert [r["arch"] for r in front] == ["a", "c"]


def test_duplicated_points_all_stay_on_the_front():
    points = np.array([[1.0, 1.0], [1.0, 1.0], [2.0, 2.0]])
    assert list(pareto_mask(points, ["min", "min"])) == [True, True, False]
    for perm in itertools.permutations(range(3)):
        assert pareto_mask(points[list(perm)], ["min", "min"]).sum() == 2
