"""scaling.format: the text of numbers and times that commands print."""

from __future__ import annotations

import math

import pytest

from scaling.format import first_line, format_counts, format_int, format_loss, format_sci, format_seconds, one_line


@pytest.mark.parametrize("seconds, text", [(0, "0s"), (12.4, "12s"), (185, "3m05s"), (3720, "1h02m"), (-3, "0s")])
def test_format_seconds(seconds, text):
    assert format_seconds(seconds) == text


def test_table_cells_show_a_dash_when_missing():
    assert [format_int(12345), format_sci(1.78e11), format_loss(2.87491)] == ["12,345", "1.78e+11", "2.8749"]
    assert {format_int(None), format_sci(math.nan), format_loss(None)} == {"-"}


def test_lines_and_counts():
    assert first_line("\n  CUDA out of memory\nmore") == "CUDA out of memory"
    assert first_line("abcdef", 3) == "abc" and first_line(None) == ""
    assert one_line("a\n\n  b \n") == "a; b"
    assert format_counts([("completed", 3), ("failed", 1)]) == "3 completed, 1 failed"
