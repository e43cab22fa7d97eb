"""Timing helper shared by the benchmark scripts."""
from __future__ import annotations

import time
from typing import Any, Callable


def best_of(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """(best wall time over `repeat` calls in seconds, the last result)."""
    best, out = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def print_error_table(rows: list, count: int, per: str = "problem", digits: int = 2) -> None:
    """A markdown table of `(method, per-problem relative errors (tensor), total seconds)` rows: the mean and
    max error and the milliseconds per problem (`count` problems per timed call)."""
    print(f"\n| method | mean rel. L2 | max rel. L2 | ms per {per} |")
    print("|---|---|---|---|")
    for name, e, t in rows:
        print(f"| {name} | {float(e.mean()):.2e} | {float(e.max()):.2e} | {1e3 * t / count:.{digits}f} |")
