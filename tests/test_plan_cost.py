"""`scaling plan` spends nothing and writes nothing: no file anywhere (not even the packed corpus
cache), no trainer loaded, no data read beyond file sizes and headers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

# Run in a fresh interpreter; prints the heavy modules the plan loaded, then exits with its code.
PLAN = """
import sys
from scaling.cli import main
code = main(sys.argv[1:])
print(sorted(m for m in ("pytorch_lightning", "lightning", "torch._dynamo") if m in sys.modules))
sys.exit(code)
"""


def files_under(folder: Path) -> list[str]:
    """Every file and folder below `folder`."""
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*"))


def test_plan_writes_no_file_and_loads_no_trainer(tmp_path):
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    proc = subprocess.run([sys.executable, "-c", PLAN, "plan", "experiment=quickstart"], cwd=work,
                          env={**os.environ, "HOME": str(home)}, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("sweep quickstart (mode ladder): 21 runs") and lines[-1] == "[]"
    assert files_under(home) == [] and files_under(work) == []


def test_config_and_the_registries_import_no_torch():
    code = "import sys, scaling.cli, scaling.config, scaling.models, scaling.data; print('torch' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.stdout.strip() == "False", proc.stderr
