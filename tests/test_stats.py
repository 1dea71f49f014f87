"""Seed statistics: the Student-t interval matches printed tables; overlap is symmetric and inclusive; rank
correlation sees order only."""

import math

import pytest

from minitransformer.experiments.stats import intervals_overlap, mean_ci, rank_correlation, t_quantile


@pytest.mark.parametrize("dof, table", [(1, 12.706), (2, 4.303), (4, 2.776), (9, 2.262), (29, 2.045)])
def test_t_quantile_matches_the_printed_table(dof, table):
    assert t_quantile(0.975, dof) == pytest.approx(table, abs=1e-3)


def test_mean_ci_is_mean_plus_minus_t_times_standard_error():
    mean, low, high = mean_ci([1.0, 2.0, 3.0, 4.0, 5.0])
    assert mean == 3.0
    half = 2.776445 * math.sqrt(2.5) / math.sqrt(5)
    assert (low, high) == pytest.approx((3.0 - half, 3.0 + half), abs=1e-5)
    assert mean_ci([2.0]) == (2.0, 2.0, 2.0)
    narrow = mean_ci([1.0, 2.0, 3.0, 4.0, 5.0], level=0.5)
    assert low < narrow[1] < narrow[2] < high


@pytest.mark.parametrize("bad", [[], [1.0, float("nan")]])
def test_mean_ci_refuses_empty_or_nan(bad):
    with pytest.raises(ValueError):
        mean_ci(bad)


def test_intervals_overlap():
    assert intervals_overlap((0, 1), (1, 2)) and intervals_overlap((1, 2), (0, 1))
    assert not intervals_overlap((0.5, 0, 1), (3, 2, 4))
    with pytest.raises(ValueError, match="above high"):
        intervals_overlap((2, 1), (0, 1))


def test_rank_correlation_sees_order_not_size():
    assert rank_correlation([1, 2, 3, 4], [10, 20, 300, 4000]) == pytest.approx(1.0)
    assert rank_correlation([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # one swapped neighbour among 5: Spearman's 1 - 6 * sum(d^2) / (n (n^2 - 1)) = 1 - 12 / 120
    assert rank_correlation([1, 2, 3, 4, 5], [1, 3, 2, 4, 5]) == pytest.approx(0.9)
    # ties share the average rank: x ranks (1, 2.5, 2.5, 4) against y ranks (1, 2, 3, 4)
    assert rank_correlation([1, 5, 5, 9], [1, 2, 3, 4]) == pytest.approx(4.5 / math.sqrt(4.5 * 5))


@pytest.mark.parametrize("x, y, message", [([1, 2], [1, 2], "at least 3"), ([1, 2, 3], [1, 2], "equal length"),
                                           ([1, 1, 1], [1, 2, 3], "constant"), ([1, 2, float("nan")], [1, 2, 3], "NaN")])
def test_rank_correlation_refuses_what_it_cannot_rank(x, y, message):
    with pytest.raises(ValueError, match=message):
        rank_correlation(x, y)
