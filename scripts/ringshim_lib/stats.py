"""Report maths: medians, spread, bootstrap confidence intervals of ratios.

Everything is deterministic: the bootstrap uses its own random.Random with
a fixed seed, so the same runs always give the same report."""

import random
from typing import Dict, List, Optional, Sequence, Tuple

BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 20240611
NOISY_SPREAD = 0.10


def median(xs: Sequence[float]) -> Optional[float]:
    s = sorted(xs)
    n = len(s)
    if n == 0:
        return None
    mid = n // 2
    return float(s[mid]) if n % 2 else (s[mid - 1] + s[mid]) / 2.0


def percentile(sorted_xs: Sequence[float], pct: float) -> Optional[float]:
    """Linear interpolation between closest ranks (numpy's default)."""
    n = len(sorted_xs)
    if n == 0:
        return None
    if n == 1:
        return float(sorted_xs[0])
    pos = (n - 1) * pct / 100.0
    lo = int(pos)
    hi = min(lo + 1, n - 1)
    frac = pos - lo
    return sorted_xs[lo] + (sorted_xs[hi] - sorted_xs[lo]) * frac


def spread(xs: Sequence[float]) -> Optional[float]:
    """(max - min) / median, or None."""
    med = median(xs)
    if med is None or med == 0:
        return None
    return (max(xs) - min(xs)) / med


def is_noisy(xs: Sequence[float], limit: float = NOISY_SPREAD) -> bool:
    s = spread(xs)
    return s is not None and s > limit


def summary(xs: Sequence[float]) -> Dict[str, Optional[float]]:
    xs = [x for x in xs if x is not None]
    if not xs:
        return {"n": 0, "median": None, "min": None, "max": None, "spread": None}
    return {"n": len(xs), "median": median(xs), "min": float(min(xs)),
            "max": float(max(xs)), "spread": spread(xs)}


def ratio_ci(a: Sequence[float], b: Sequence[float], resamples: int = BOOTSTRAP_RESAMPLES,
             seed: int = BOOTSTRAP_SEED, level: float = 95.0
             ) -> Tuple[Optional[float], Optional[float], Optional[float]]:
    """median(a)/median(b) and its bootstrap percentile confidence interval.

    a and b are resampled independently with replacement (runs of two
    variants are independent measurements).  Returns (ratio, low, high);
    all None when either side is empty or b's median is zero."""
    a = [x for x in a if x is not None]
    b = [x for x in b if x is not None]
    if not a or not b:
        return None, None, None
    mb = median(b)
    if not mb:
        return None, None, None
    point = median(a) / mb
    rng = random.Random(seed)
    ratios: List[float] = []
    for _ in range(resamples):
        ra = [a[rng.randrange(len(a))] for _ in a]
        rb = [b[rng.randrange(len(b))] for _ in b]
        m = median(rb)
        if m:
            ratios.append(median(ra) / m)
    if not ratios:
        return point, None, None
    ratios.sort()
    tail = (100.0 - level) / 2.0
    return point, percentile(ratios, tail), percentile(ratios, 100.0 - tail)
