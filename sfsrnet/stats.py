"""Summary statistics for tables: means with 95 % confidence intervals."""

from __future__ import annotations

import numpy as np
from scipy import stats


def mean_ci(values: np.ndarray | list[float], level: float = 0.95) -> tuple[float, float]:
    """Mean and half-width of its Student-t confidence interval (``nan`` width for n < 2).

    >>> mean, half = mean_ci([1.0, 2.0, 3.0])
    >>> round(mean, 3), round(half, 3)
    (2.0, 2.484)
    """
    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return float("nan"), float("nan")
    if x.size < 2:
        return float(x.mean()), float("nan")
    half = stats.t.ppf(0.5 + level / 2, x.size - 1) * x.std(ddof=1) / np.sqrt(x.size)
    return float(x.mean()), float(half)
