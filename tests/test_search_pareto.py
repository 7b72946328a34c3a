"""Constrained domination, non-dominated sorting, crowding distance, hypervolume (hand examples and
brute-force invariants)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from nas.search.guided_pareto import distance_to_front_2d, hypervolume_improvement_2d
from nas.search.pareto import (
    constrained_dominates,
    crowding_distance,
    dominance_matrix,
    feasible_front_mask,
    hypervolume_2d,
    non_dominated_sort,
    nondominated_mask,
    pareto_dominance_matrix,
    rank_and_crowding,
)


def test_constrained_domination_rules() -> None:
    good, bad = np.array([0.0, 0.0]), np.array([5.0, 5.0])
    # feasible beats infeasible even with worse objectives
    assert constrained_dominates(bad, 0.0, good, 0.1)
    assert not constrained_dominates(good, 0.1, bad, 0.0)
    # two infeasible: the smaller total violation wins, objectives ignored
    assert constrained_dominates(bad, 0.1, good, 0.2)
    assert not constrained_dominates(bad, 0.2, bad, 0.2)
    # two feasible: Pareto dominance
    assert constrained_dominates(np.array([1.0, 2.0]), 0.0, np.array([1.0, 3.0]), 0.0)
    assert not constrained_dominates(np.array([1.0, 3.0]), 0.0, np.array([2.0, 2.0]), 0.0)
    assert not constrained_dominates(np.array([1.0, 2.0]), 0.0, np.array([1.0, 2.0]), 0.0)


def test_non_dominated_sort_hand_example() -> None:
    f = np.array([
        [1.0, 5.0],  # front 0
        [2.0, 3.0],  # front 0
        [4.0, 1.0],  # front 0
        [3.0, 4.0],  # dominated by [2, 3] -> front 1
        [5.0, 5.0],  # dominated by [3, 4] -> front 2
        [0.0, 0.0],  # best objectives but infeasible (0.5) -> after all feasible
        [9.0, 9.0],  # infeasible (0.1) -> beats the 0.5 one
    ])
    v = np.array([0, 0, 0, 0, 0, 0.5, 0.1])
    assert non_dominated_sort(f, v).tolist() == [0, 0, 0, 1, 2, 4, 3]
    assert non_dominated_sort(f).tolist() == [1, 1, 1, 2, 3, 0, 4]
    assert feasible_front_mask(f, v).tolist() == [True, True, True, False, False, False, False]


def test_crowding_distance_hand_example() -> None:
    f = np.array([[0.0, 4.0], [1.0, 2.0], [2.0, 1.0], [4.0, 0.0]])
    d = crowding_distance(f)
    assert np.isinf(d[0]) and np.isinf(d[3])
    # interior: (2 - 0) / 4 + (4 - 1) / 4 and (4 - 1) / 4 + (2 - 0) / 4
    np.testing.assert_allclose(d[1:3], [2 / 4 + 3 / 4, 3 / 4 + 2 / 4])
    assert np.isinf(crowding_distance(f[:2])).all()
    ranks, crowd = rank_and_crowding(np.vstack([f, [[5.0, 5.0]]]))
    assert ranks.tolist() == [0, 0, 0, 0, 1]
    assert np.isinf(crowd[4])


def test_hypervolume_hand_examples() -> None:
    ref = np.array([4.0, 4.0])
    assert hypervolume_2d(np.array([[1.0, 1.0]]), ref) == 9.0
    # staircase: [1,3] and [3,1] -> 3*1 + 1*3 ... = area of union of [1,4]x[3,4] and [3,4]x[1,4]
    assert hypervolume_2d(np.array([[1.0, 3.0], [3.0, 1.0]]), ref) == 3.0 + 3.0 - 1.0
    # a dominated point, a duplicate and a point outside the box change nothing
    pts = np.array([[1.0, 3.0], [3.0, 1.0], [3.5, 3.5], [1.0, 3.0], [5.0, 0.0]])
    assert hypervolume_2d(pts, ref) == 5.0
    assert hypervolume_2d(np.zeros((0, 2)), ref) == 0.0
    assert hypervolume_2d(np.array([[4.0, 0.0]]), ref) == 0.0  # on the reference: no volume
    with pytest.raises(ValueError):
        hypervolume_2d(np.zeros((2, 3)), np.zeros(3))


def test_hypervolume_improvement_hand_example() -> None:
    ref = np.array([4.0, 4.0])
    front = np.array([[1.0, 3.0], [3.0, 1.0]])
    cand = np.array([[2.0, 2.0], [1.0, 3.0], [0.0, 0.0], [3.5, 3.5], [5.0, 0.0]])
    np.testing.assert_allclose(hypervolume_improvement_2d(cand, front, ref), [1.0, 0.0, 11.0, 0.0, 0.0])
    np.testing.assert_allclose(hypervolume_improvement_2d(cand[:1], np.zeros((0, 2)), ref), [4.0])
    # behind the front by 0.5 in both objectives -> must gain 0.5 to stop being dominated
    np.testing.assert_allclose(distance_to_front_2d(np.array([[3.5, 3.5], [0.0, 9.0]]), front),
                               [0.5, 0.0])


points = arrays(np.float64, st.tuples(st.integers(1, 25), st.just(2)), elements=st.integers(0, 6).map(float))


@settings(max_examples=60, deadline=None)
@given(f=points, v=arrays(np.float64, st.just(25), elements=st.sampled_from([0.0, 0.0, 0.3, 1.0])))
def test_sort_matches_brute_force(f: np.ndarray, v: np.ndarray) -> None:
    v = v[: len(f)]
    d = dominance_matrix(f, v)
    for i, j in itertools.product(range(len(f)), repeat=2):
        assert d[i, j] == constrained_dominates(f[i], v[i], f[j], v[j])
    ranks = non_dominated_sort(f, v)
    for i, j in itertools.product(range(len(f)), repeat=2):
        if d[i, j]:
            assert ranks[i] < ranks[j]
    for i in range(len(f)):  # each point of front r > 0 is dominated by one in front r - 1
        if ranks[i] > 0:
            assert d[ranks == ranks[i] - 1, i].any()
    np.testing.assert_array_equal(nondominated_mask(f), ~pareto_dominance_matrix(f).any(axis=0))


@settings(max_examples=60, deadline=None)
@given(f=points, extra=points)
def test_hypervolume_invariants(f: np.ndarray, extra: np.ndarray) -> None:
    ref = np.array([7.0, 7.0])
    hv = hypervolume_2d(f, ref)
    front = f[nondominated_mask(f)]
    assert hypervolume_2d(front, ref) == pytest.approx(hv)
    both = np.vstack([f, extra])
    assert hypervolume_2d(both, ref) >= hv - 1e-12
    # the improvement of one point equals the difference of hypervolumes
    gain = hypervolume_improvement_2d(extra[:1], f, ref)[0]
    assert gain == pytest.approx(hypervolume_2d(np.vstack([f, extra[:1]]), ref) - hv)
    # brute force on the integer grid: count unit cells dominated by some point
    cells = sum(
        1 for x, y in itertools.product(range(7), repeat=2)
        if ((f[:, 0] <= x) & (f[:, 1] <= y)).any()
    )
    assert hv == pytest.approx(cells)


def test_three_objectives_nondominated() -> None:
    f = np.array([[1.0, 2.0, 3.0], [2.0, 2.0, 3.0], [0.0, 5.0, 5.0], [1.0, 2.0, 3.0]])
    assert nondominated_mask(f).tolist() == [True, False, True, True]


@settings(max_examples=80, deadline=None)
@given(front=points, cand=points)
def test_distance_to_front_matches_brute_force(front: np.ndarray, cand: np.ndarray) -> None:
    gap = cand[:, None, :] - front[None, :, :]
    brute = np.where((gap >= 0).all(axis=2), gap.min(axis=2), 0.0).max(axis=1)
    np.testing.assert_allclose(distance_to_front_2d(cand, front), brute)
