"""Batch traces (trainer.trace_batches): what the resume tests compare."""

from __future__ import annotations

from scaling.store import RunFolder

TRACE = ["trainer.trace_batches=true"]


def batch_trace(folder: RunFolder) -> dict[tuple[int, int, int], str]:
    """(step, rank, micro-batch) -> hash of the batch; for a step trained twice, the last attempt's."""
    lines = (line.split() for line in (folder.path / "batches.txt").read_text().splitlines())
    return {(int(step), int(rank), int(micro)): digest for step, rank, micro, digest in lines}


def assert_same_training(resumed: RunFolder, whole: RunFolder, rel_tol: float = 1e-5) -> None:
    """The resumed run saw the uninterrupted run's batches at every step and ended at its loss."""
    import math

    trace, reference = batch_trace(resumed), batch_trace(whole)
    assert len(trace) == len(reference) and trace == reference
    ended, expected = resumed.read_record()["loss"], whole.read_record()["loss"]
    assert math.isclose(ended, expected, rel_tol=rel_tol), (ended, expected)
