"""How numbers and runs read in figures, hover boxes and printed summaries ('1.2M', '4.0e8', 'w32 d2 D=250k')."""

from __future__ import annotations

import math
from typing import Any


def fmt_count(value: float) -> str:
    """7920 -> '7.9k', 1.2e6 -> '1.2M', 3e9 -> '3.0B'."""
    for size, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{value / size:.3g}{suffix}"
    return f"{value:.3g}"


def fmt_flops(value: float) -> str:
    """4.03e+08 -> '4.0e8'."""
    mantissa, exponent = f"{value:.1e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def run_label(row: Any) -> str:
    """'w32 d2 D=250k' for a run-table row."""
    width, depth = _get(row, "width"), _get(row, "depth")
    size = f"w{int(width)} d{int(depth)}" if finite(width) and finite(depth) else f"N={fmt_count(_get(row, 'N'))}"
    return f"{size} D={fmt_count(_get(row, 'D'))}"


def hover_lines(row: Any) -> list[str]:
    """The lines a hover box shows for a run: its id and config (width, depth, N, D, C, loss)."""
    lines = [f"run {_get(row, 'run_id')}"]
    width, depth = _get(row, "width"), _get(row, "depth")
    if finite(width):
        lines.append(f"width {int(width)} · depth {int(depth) if finite(depth) else '?'}")
    N, D, C, loss = (_get(row, k) for k in ("N", "D", "C", "loss"))
    lines.append(f"N {int(N):,} · D {int(D):,}" if finite(N) and finite(D) else f"N {N} · D {D}")
    lines.append((f"C {fmt_flops(C)}" if finite(C) else f"C {C}") + (f" · loss {loss:.4f}" if finite(loss) else ""))
    return lines


def _get(row: Any, key: str) -> Any:
    return row.get(key) if hasattr(row, "get") else getattr(row, key, None)


def finite(value: Any) -> bool:
    """Whether `value` is a finite number (None, text and NaN are not)."""
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False
