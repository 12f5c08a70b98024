"""Summary statistics for tables: means with 95 % confidence intervals and paired tests."""

from __future__ import annotations

import numpy as np
from scipy import stats

# Fixed, so that a table rebuilt from the same per-utterance numbers (from the cell folders or
# from MLflow) has the same intervals to the last digit.
BOOTSTRAP_SEED = 0
N_BOOTSTRAP = 2000


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


def bootstrap_ci(
    values: np.ndarray,
    level: float = 0.95,
    n_boot: int = N_BOOTSTRAP,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[float, float, float]:
    """Mean and percentile bootstrap interval over seeds and utterances.

    Args:
        values: ``(n_seeds, n_utterances)`` (or ``(n_utterances,)`` for one seed); NaN marks a
            missing value and is left out of every mean.
    Returns:
        ``(mean, low, high)``. With several seeds the resampling is two-stage: seeds with
        replacement, then utterances within each drawn seed, so the interval widens with the
        spread between seeds as well as between utterances. ``low``/``high`` are NaN when there
        are fewer than two values.

    >>> mean, low, high = bootstrap_ci(np.arange(10.0))
    >>> mean, bool(low < mean < high)
    (4.5, True)
    """
    x = np.atleast_2d(np.asarray(values, dtype=np.float64))
    finite = np.isfinite(x)
    if not finite.any():
        return float("nan"), float("nan"), float("nan")
    mean = float(np.nanmean(x))
    if finite.sum() < 2:
        return mean, float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    n_seeds, n_utt = x.shape
    seeds = rng.integers(0, n_seeds, size=(n_boot, n_seeds)) if n_seeds > 1 else None
    utts = rng.integers(0, n_utt, size=(n_boot, n_seeds, n_utt))
    rows = seeds[:, :, None] if seeds is not None else np.zeros((n_boot, 1, 1), dtype=int)
    draws = x[rows, utts]  # (n_boot, n_seeds, n_utt)
    with np.errstate(invalid="ignore"):
        means = np.nanmean(draws.reshape(n_boot, -1), axis=1)
    means = means[np.isfinite(means)]
    tail = (1 - level) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return mean, float(low), float(high)


def paired_p_value(on: np.ndarray, off: np.ndarray) -> float:
    """Two-sided p-value of the Wilcoxon signed-rank test of ``on - off`` (paired samples).

    Per-utterance differences of SI-SNR are heavy-tailed, so a rank test rather than a t-test.
    Pairs with a NaN are dropped; NaN when fewer than two pairs remain or all differences are 0.

    >>> round(paired_p_value(np.arange(10.0) + 1, np.arange(10.0)), 4)
    0.002
    """
    a, b = np.asarray(on, dtype=np.float64), np.asarray(off, dtype=np.float64)
    keep = np.isfinite(a) & np.isfinite(b)
    d = a[keep] - b[keep]
    if d.size < 2 or not np.any(d):
        return float("nan")
    return float(stats.wilcoxon(d).pvalue)


def holm(p_values: np.ndarray | list[float]) -> np.ndarray:
    """Holm's step-down adjustment of a family of p-values (``(n,)`` in, ``(n,)`` out).

    The ``k``-th smallest of the ``m`` finite p-values becomes ``max_{j <= k} (m - j + 1) p_(j)``
    (capped at 1), which keeps the family-wise error rate at the level without assuming the
    tests independent. NaN stays NaN and does not count in ``m``.

    >>> holm([0.01, 0.04, 0.03, float("nan")]).round(2).tolist()
    [0.03, 0.06, 0.06, nan]
    """
    p = np.asarray(p_values, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    finite = np.flatnonzero(np.isfinite(p))
    order = finite[np.argsort(p[finite], kind="stable")]
    m = order.size
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[index]))
        out[index] = running
    return out
