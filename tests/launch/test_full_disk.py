"""A full disk during a checkpoint (issue 14): the previous checkpoint stays, the partial file goes,
the run is recorded failed with "no space left", the sweep summarises; with space freed, the same
command resumes the run. Needs root to mount a small tmpfs (CI runs as root); skips otherwise."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from scaling.store import RunFolder
from tests.conftest import TINY_GPT


@pytest.fixture
def small_disk(tmp_path):
    """A 512 KiB tmpfs: room for one checkpoint of the run below (~300 KB), not for a second beside it."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.decode().strip()})")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=False)


def test_a_full_disk_keeps_the_last_checkpoint_and_resumes_later(small_disk):
    command = [sys.executable, "-m", "scaling.cli", "sweep", *TINY_GPT, f"run.root={small_disk}", "sweep.name=full",
               "budget.tokens=12800", "trainer.checkpoint_every=10", "trainer.threads=1"]
    first = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert first.returncode == 1, first.stdout + first.stderr
    [folder] = [RunFolder(p.parent) for p in (small_disk / "full").glob("*/record.json")]
    record = folder.read_record()
    assert record["status"] == "failed" and "no space left" in record["error"].lower(), record
    assert "0/1 completed" in first.stdout and "no space left" in first.stdout.lower()
    assert [p.name for p in folder.checkpoint_dir.iterdir()] == ["last.ckpt"]  # no partial file left
    kept = int(subprocess.run([sys.executable, "-c", "import torch,sys; print(torch.load(sys.argv[1], "
                               "weights_only=False)['global_step'])", str(folder.last_checkpoint)],
                              capture_output=True, text=True).stdout)
    assert kept == 10
    subprocess.run(["mount", "-o", "remount,size=4m", str(small_disk)], check=True)  # space freed
    again = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    record = folder.read_record()
    assert record["status"] == "completed" and record["resumed_from_step"] == 10 and record["attempts"] == 2
