"""A plain (non-editable) install finds its configs and experiments from any folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_carries_configs_and_runs_from_elsewhere(tmp_path):
    wheel_dir, target = tmp_path / "wheel", tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", str(ROOT),
                    "-w", str(wheel_dir)], check=True, capture_output=True, timeout=300)
    wheel = next(wheel_dir.glob("scaling-*.whl"))
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    code = ("import scaling, scaling.config as c; "
            "print(scaling.__file__); "
            "cfg = c.load_config(['experiment=digits_cnn']); print(cfg.sweep.name, cfg.model.family)")
    env = {**os.environ, "PYTHONPATH": str(target)}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=120, check=True).stdout.splitlines()
    assert out[0].startswith(str(target))  # the installed copy, not the source tree
    assert out[1] == "digits_cnn cnn"
