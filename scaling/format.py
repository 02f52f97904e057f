"""Human-readable numbers, times and text for what commands print (pure, no imports beyond the standard library)."""

from __future__ import annotations

import math
from typing import Any, Iterable

MISSING = "-"


def is_missing(value: Any) -> bool:
    """True for None and NaN (a table cell with nothing in it)."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def format_seconds(seconds: float) -> str:
    """1h02m, 3m05s or 12s."""
    seconds = max(0, int(round(seconds)))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


def format_int(value: Any) -> str:
    """12,345 (or '-' when missing)."""
    return MISSING if is_missing(value) else f"{int(value):,}"


def format_sci(value: Any) -> str:
    """Three significant digits: 1.78e+11 (or '-' when missing)."""
    return MISSING if is_missing(value) else f"{value:.3g}"


def format_loss(value: Any) -> str:
    """Four decimals: 2.8749 (or '-' when missing)."""
    return MISSING if is_missing(value) else f"{value:.4f}"


def first_line(text: Any, limit: int | None = None) -> str:
    """The first non-blank line of a (possibly multi-line) text, cut at `limit` characters."""
    lines = str(text or "").strip().splitlines()
    return (lines[0] if lines else "")[:limit]


def one_line(text: Any) -> str:
    """A message on one line: its non-blank lines joined by '; '."""
    return "; ".join(line.strip() for line in str(text).splitlines() if line.strip())


def format_counts(counts: Iterable[tuple[str, int]]) -> str:
    """'3 completed, 1 failed' from (name, count) pairs."""
    return ", ".join(f"{count} {name}" for name, count in counts)
