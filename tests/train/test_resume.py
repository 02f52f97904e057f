"""A resumed run sees exactly the batches, in order, of an uninterrupted one (issue 14).

Every step's batch is hashed into the run's batches.txt (trainer.trace_batches); a run is made
to fail at a step (trainer.fail_at_step, after its checkpoint when both fall on one step), then
trained again: it resumes from its last checkpoint and must see the same batches, and end with
the same loss, as the same run trained in one go.
"""

from __future__ import annotations

import math

import pytest
import torch

from scaling.plan import plan_run
from scaling.store import RunFolder
from scaling.train import InjectedFailure, train
from tests.conftest import TINY_CNN, TINY_GPT, tiny
from tests.traces import TRACE, batch_trace

RESUMABLE = [*TRACE, "trainer.checkpoint_every=5"]


def train_interrupted(base: list[str], root, fail_at: int, *more: str) -> tuple[dict, RunFolder]:
    """Train a run that fails at step `fail_at` on its first attempt, then again to the end."""
    spec = plan_run(tiny(base, root, *RESUMABLE, f"trainer.fail_at_step={fail_at}", *more))
    with pytest.raises(InjectedFailure):
        train(spec)
    assert RunFolder(spec.path).read_record()["status"] == "failed"
    return train(spec), RunFolder(spec.path)


CASES = {
    "text": (TINY_GPT, ["budget.tokens=10240"]),  # 40 steps of 8 x 32 tokens
    "image": (TINY_CNN, ["budget.samples=1280", "model.dropout=0.5"]),  # 40 steps of 32 images, dropout on
}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """Each case trained in one go: its record and batch trace."""
    results = {}
    for name, (base, more) in CASES.items():
        spec = plan_run(tiny(base, tmp_path_factory.mktemp(name), *RESUMABLE, *more))
        record = train(spec)
        results[name] = (record, batch_trace(RunFolder(spec.path)), RunFolder(spec.path).read_metrics())
    return results


@pytest.mark.parametrize("case,fail_at", [("text", 1), ("text", 13), ("text", 39), ("text", 10),
                                          ("image", 7), ("image", 20)])
def test_resume_sees_the_planned_batches(case, fail_at, tmp_path, uninterrupted):
    base, more = CASES[case]
    record, folder = train_interrupted(base, tmp_path, fail_at, *more)
    whole, whole_trace, whole_metrics = uninterrupted[case]
    assert record["status"] == "completed" and record["attempts"] == 2
    # on a validation step (every 10) the checkpoint comes after the validation: a failure just
    # before it resumes from the checkpoint before
    assert record.get("resumed_from_step", 0) == (fail_at - (fail_at % 10 == 0)) // 5 * 5
    trace = batch_trace(folder)
    assert sorted(trace) == sorted(whole_trace) and len(trace) == record["steps"]
    assert trace == whole_trace  # the same batch at every step
    assert math.isclose(record["loss"], whole["loss"], rel_tol=1e-5), (record["loss"], whole["loss"])
    validated = {int(r["step"]) for r in folder.read_metrics() if not math.isnan(r["val_loss"])}
    assert validated == {int(r["step"]) for r in whole_metrics if not math.isnan(r["val_loss"])}


def test_ddp_resume_sees_the_planned_batches_on_every_rank(tmp_path):
    """Two CPU processes (gloo); the run fails at step 13 on both ranks, resumes from 10."""
    import subprocess
    import sys

    from tests.traces import assert_same_training

    def cli_train(root, *more):
        command = [sys.executable, "-m", "scaling.cli", "train", *TINY_GPT, *RESUMABLE, f"run.root={root}",
                   "budget.tokens=10240", "trainer.devices=2", "trainer.strategy=ddp", "trainer.threads=1", *more]
        return subprocess.run(command, capture_output=True, text=True, timeout=300)

    whole = cli_train(tmp_path / "whole")
    assert whole.returncode == 0, whole.stderr[-3000:]
    failed = cli_train(tmp_path / "resumed", "trainer.fail_at_step=13")
    assert failed.returncode != 0
    resumed = cli_train(tmp_path / "resumed", "trainer.fail_at_step=13")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    [folder] = [RunFolder(p.parent) for p in (tmp_path / "resumed").glob("*/*/record.json")]
    [reference] = [RunFolder(p.parent) for p in (tmp_path / "whole").glob("*/*/record.json")]
    record = folder.read_record()
    assert record["hardware"]["world_size"] == 2 and record["resumed_from_step"] == 10
    assert {rank for _, rank, _ in batch_trace(folder)} == {0, 1}
    assert_same_training(folder, reference)


@pytest.mark.slow  # torch.compile on CPU builds C++ kernels: about a minute on 2 cores
def test_a_compiled_run_resumes_as_it_trains_in_one_go(tmp_path):
    base, more = CASES["text"]
    whole = train(plan_run(tiny(base, tmp_path / "whole", *RESUMABLE, *more, "trainer.compile=true")))
    record, folder = train_interrupted(base, tmp_path / "resumed", 13, *more, "trainer.compile=true")
    assert record["status"] == "completed" and record["attempts"] == 2 and record["resumed_from_step"] == 10
    assert math.isclose(record["loss"], whole["loss"], rel_tol=1e-5), (record["loss"], whole["loss"])
    eager = train(plan_run(tiny(base, tmp_path / "eager", *RESUMABLE, *more)))  # the same run, not compiled
    assert math.isclose(record["loss"], eager["loss"], rel_tol=1e-3), (record["loss"], eager["loss"])
    saved = torch.load(folder.last_checkpoint, map_location="cpu", weights_only=False)["state_dict"]
    assert not any("_orig_mod" in key for key in saved)  # a compiled run's checkpoint loads into an eager model
