"""Acceptance 1: the published refit of Chinchilla's approach 3, within tolerance and time."""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "analysis" / "chinchilla_replication.py"
DATA = REPO / "tests" / "data" / "chinchilla_svg_extracted.csv"  # shipped (tests/data/README.md)


def _script():
    spec = importlib.util.spec_from_file_location("chinchilla_replication", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def replication():
    script = _script()
    frame = script.load(DATA.parent)
    started = time.perf_counter()
    result = script.replicate(frame)
    return script, result, time.perf_counter() - started


def test_replication_matches_published_refit(replication):
    _, result, _ = replication
    p = result.params
    assert result.n_points == 240
    assert abs(p["E"] - 1.817) <= 0.01
    assert abs(p["alpha"] - 0.348) <= 0.01
    assert abs(p["beta"] - 0.366) <= 0.01
    assert abs(p["A"] / 477.8 - 1) <= 0.10
    assert abs(p["B"] / 2143.9 - 1) <= 0.10


def test_replication_is_fast_from_hoffmann_grid(replication):
    _, result, seconds = replication
    assert result.fit_info["starts"] >= 4500
    print(f"\nchinchilla replication: {result.fit_info['starts']} starts in {seconds:.2f} s "
          f"(multi-start fit {result.fit_info['seconds']:.2f} s)")
    # the issue asks for <= 10 s on 2 cores (about 1.5 s measured); loose here so a loaded CI box does not flake
    assert seconds < 20


def test_replication_allocation(replication):
    _, result, _ = replication
    assert result.a == pytest.approx(0.366 / (0.348 + 0.366), abs=0.01)
    assert result.a + result.b == pytest.approx(1.0)


def test_script_prints_estimates_beside_paper(replication, capsys):
    script, _, _ = replication
    assert script.main([str(DATA.parent)]) == 0
    out = capsys.readouterr().out
    assert "Besiroglu" in out and "Hoffmann" in out and "reproduced: yes" in out and "time:" in out


def test_replication_bootstrap_intervals_match_published(replication):
    script, _, _ = replication
    result = script.replicate(script.load(DATA.parent), bootstrap=4000, seed=0)
    for name, (lo, hi) in script.REPLICATION_CI.items():
        ours = result.ci[name]
        width = hi - lo
        assert abs(ours[0] - lo) <= 0.15 * width and abs(ours[1] - hi) <= 0.15 * width, (name, ours, (lo, hi))
