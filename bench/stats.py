"""Order statistics used by the figures (kept apart so every module uses the same definitions)."""

from __future__ import annotations

import statistics


def median(values: list[float]) -> float:
    """Median, NaN for an empty sample (a missing figure shows as n/a, never as zero)."""
    return float(statistics.median(values)) if values else float("nan")


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sample: p99 of 200 = 198th value."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), -(-int(q * len(ordered)) // 100)))
    return ordered[rank - 1]
