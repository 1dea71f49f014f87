"""Seed statistics in one place: the mean with a Student-t confidence interval, paired differences (methods that
share their seeds), overlap of intervals, how many false alarms many comparisons give, and a rank correlation.

No scipy: the t quantile is found numerically from the t distribution's CDF (regularized incomplete beta,
evaluated with a continued fraction), exact to far more digits than any seed study needs.
"""

from __future__ import annotations

import math
import numbers


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction for the regularized incomplete beta function (modified Lentz)."""
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        for numerator in (m * (b - m) * x / ((a + m2 - 1) * (a + m2)),
                          -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1))):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return h


def _incomplete_beta(a: float, b: float, x: float) -> float:
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, dof: float) -> float:
    """P(T <= t) for Student's t with `dof` degrees of freedom."""
    if dof <= 0:
        raise ValueError(f"dof must be positive, got {dof}")
    tail = 0.5 * _incomplete_beta(dof / 2.0, 0.5, dof / (dof + t * t))
    return 1.0 - tail if t >= 0 else tail


def t_quantile(p: float, dof: float) -> float:
    """The t value with P(T <= t) = p (bisection on t_cdf)."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be strictly between 0 and 1, got {p}")
    if p < 0.5:
        return -t_quantile(1.0 - p, dof)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, dof) < p:
        hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if t_cdf(mid, dof) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12:
            break
    return 0.5 * (lo + hi)


def mean_ci(values, level: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): the mean of `values` and its two-sided Student-t interval (n - 1 degrees of freedom).

    One value gives a zero-width interval at the value itself (nothing is known about the spread);
    the caller who needs an interval must supply at least two seeds.
    """
    values = [float(v) for v in values]
    if not values:
        raise ValueError("mean_ci needs at least one value, got an empty sequence")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be strictly between 0 and 1, got {level}")
    if any(math.isnan(v) for v in values):
        raise ValueError(f"mean_ci got a NaN among its values: {values}")
    n = len(values)
    mean = sum(values) / n
    if n == 1:
        return mean, mean, mean
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = t_quantile(0.5 + level / 2.0, n - 1) * sd / math.sqrt(n)
    return mean, mean - half, mean + half


def intervals_overlap(a, b) -> bool:
    """Whether two intervals overlap. Each is (low, high) or (mean, low, high) as mean_ci returns."""
    def bounds(interval):
        interval = tuple(interval)
        if len(interval) not in (2, 3):
            raise ValueError(f"an interval is (low, high) or (mean, low, high), got {interval}")
        low, high = interval[-2], interval[-1]
        if low > high:
            raise ValueError(f"interval low {low} is above high {high}")
        return low, high

    (a_low, a_high), (b_low, b_high) = bounds(a), bounds(b)
    return a_low <= b_high and b_low <= a_high


def _average_ranks(values: list[float]) -> list[float]:
    """Ranks 1..n of `values`; tied values share the mean of the ranks they span."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        for i in order[start:end + 1]:
            ranks[i] = (start + end) / 2 + 1
        start = end + 1
    return ranks


def rank_correlation(x, y) -> float:
    """Spearman's rank correlation of two equally long sequences (ties get average ranks), in [-1, 1].

    It asks only whether y rises with x, not by how much; it needs at least 3 pairs and neither sequence constant.
    """
    x, y = [float(v) for v in x], [float(v) for v in y]
    if len(x) != len(y):
        raise ValueError(f"rank_correlation needs sequences of equal length, got {len(x)} and {len(y)}")
    if len(x) < 3:
        raise ValueError(f"rank_correlation needs at least 3 pairs, got {len(x)}")
    if any(math.isnan(v) for v in x + y):
        raise ValueError("rank_correlation got a NaN among its values")
    for name, values in (("x", x), ("y", y)):
        if len(set(values)) == 1:
            raise ValueError(f"rank_correlation: {name} is constant ({values[0]}), so it has no ranking")
    rx, ry = _average_ranks(x), _average_ranks(y)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    covariance = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    spread = math.sqrt(sum((a - mx) ** 2 for a in rx) * sum((b - my) ** 2 for b in ry))
    return covariance / spread


def paired_difference(a, b, level: float = 0.95) -> tuple[float, float, float]:
    """The mean of the per-seed differences a - b and its Student-t interval: how two methods that shared their
    seeds (the same head initialisation and the same batches) differ.

    `a` and `b` are {seed: value} dicts (paired on the seeds both have; at least two) or sequences in the same
    seed order. Pairing removes what the seeds have in common: two methods whose own intervals overlap can still
    differ on every seed by a similar amount, and then this interval excludes zero.
    """
    if isinstance(a, dict) or isinstance(b, dict):
        if not (isinstance(a, dict) and isinstance(b, dict)):
            raise TypeError("pass both sides as {seed: value} dicts, or both as sequences in the same seed order")
        seeds = sorted(set(a) & set(b))
        a, b = [a[s] for s in seeds], [b[s] for s in seeds]
    elif isinstance(a, (set, frozenset, str)) or isinstance(b, (set, frozenset, str)):
        raise TypeError(f"paired values must be sequences in seed order or {{seed: value}} dicts, got "
                        f"{type(a).__name__} and {type(b).__name__}")
    a, b = list(a), list(b)
    if len(a) != len(b):
        raise ValueError(f"paired values need one value per seed on both sides, got {len(a)} and {len(b)}")
    values = a + b
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values):
        bad = next(v for v in values if not (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)))
        raise ValueError(f"paired values must be finite numbers, got {bad!r}")
    if len(a) < 2:
        raise ValueError(f"a paired interval needs at least two shared seeds, got {len(a)}")
    return mean_ci([x - y for x, y in zip(a, b)], level)


def expected_false_alarms(comparisons: int, level: float = 0.95) -> float:
    """How many of `comparisons` independent tests of true no-difference would still exclude zero at `level` by
    chance alone: with 20 pairs at 95%, one "difference" is expected even if there is none."""
    if isinstance(comparisons, bool) or not isinstance(comparisons, numbers.Integral) or comparisons < 0:
        raise ValueError(f"comparisons must be a count (an int >= 0), got {comparisons!r}")
    if isinstance(level, bool) or not isinstance(level, numbers.Real) or not 0 < level < 1:
        raise ValueError(f"level must be a number in (0, 1), got {level!r}")
    return round(int(comparisons) * (1 - float(level)), 10)
