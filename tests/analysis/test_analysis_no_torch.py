"""Fitting and reporting from a CSV need none of the training stack: `scaling fit`, `scaling report` and
`scaling.analysis.fit` run with torch, Lightning and Ray made unimportable (issue 16, item 3)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CSV = ROOT / "tests" / "data" / "isoflops_chinchilla.csv"  # see tests/data/README.md
COLUMNS = "N=params,D=tokens,C=budget"
# A meta-path finder that refuses the training stack as if it were not installed, and lists every attempt
# (an import that a library tries and forgives is still one too many).
PRELUDE = """
import atexit, sys
BLOCKED = ("torch", "torchvision", "pytorch_lightning", "lightning", "lightning_fabric", "ray")
attempts = []

class Unimportable:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            attempts.append(name)
            raise ImportError(f"{name} is not installed here (blocked by the test)")
        return None

sys.meta_path.insert(0, Unimportable())
atexit.register(lambda: print(f"blocked imports: {sorted(set(attempts))}", file=sys.stderr))
"""


def run_blocked(code: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run `code` (after the prelude) in a fresh interpreter with the training stack unimportable."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", PRELUDE + code, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.stderr.strip().endswith("blocked imports: []"), done.stderr[-3000:]
    return done


def test_python_fit_needs_no_torch(tmp_path):
    code = """
import pandas as pd
import scaling.analysis
result = scaling.analysis.fit(pd.read_csv(sys.argv[1]), "chinchilla", columns={"N": "params", "D": "tokens", "C": "budget"})
print(result.n_points, result.a)
"""
    done = run_blocked(code, str(CSV), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    n_points, a = done.stdout.split()
    assert int(n_points) == 85 and 0.3 < float(a) < 0.7


def test_fit_and_report_commands_need_no_torch(tmp_path):
    code = "from scaling.cli import main\nsys.exit(main(sys.argv[1:]))\n"
    fitted = run_blocked(code, "fit", str(CSV), "--columns", COLUMNS, "--json", cwd=tmp_path)
    assert fitted.returncode == 0, fitted.stderr
    assert json.loads(fitted.stdout)["n_points"] == 85
    reported = run_blocked(code, "report", str(CSV), "--columns", COLUMNS, "-o", str(tmp_path / "report"),
                           "--bootstrap", "10", cwd=tmp_path)
    assert reported.returncode == 0, reported.stderr
    assert (tmp_path / "report" / "report.html").exists() and (tmp_path / "report" / "isoflop.png").exists()
