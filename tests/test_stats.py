"""Seed statistics: the Student-t interval matches printed tables; overlap is symmetric and inclusive."""

import math

import pytest

from minitransformer.stats import intervals_overlap, mean_ci, t_quantile


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
