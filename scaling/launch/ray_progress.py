"""The sweep's progress lines under Ray: a Tune callback on the driver that prints what the local
launcher prints (runs completed, failed, running, remaining, ETA) and keeps each run's job.json."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import IO, Any

from ray import tune

from scaling.launch.common import Progress, finished_line
from scaling.launch.ray_trial import stopped_error
from scaling.plan import RunSpec
from scaling.store import DONE, ENDED, RunFolder, Status


def trial_error(trial: Any) -> str:
    """The last line of a trial's error file (what Ray said when the trial died)."""
    path = getattr(trial, "error_file", None)
    try:
        lines = [line for line in Path(path).read_text().splitlines() if line.strip()] if path else []
    except OSError:
        lines = []
    return lines[-1].strip() if lines else "the Ray trial failed"


class SweepProgress(tune.Callback):
    """Prints progress lines as Tune starts, retries and ends trials; writes job.json per run."""

    def __init__(self, specs: list[RunSpec], progress: Progress, max_failures: int, out: IO):
        self.specs = {str(spec.path.resolve()): spec for spec in specs}
        self.progress, self.max_failures, self.out = progress, max_failures, out
        self.started: dict[str, float] = {}

    def __getstate__(self) -> dict[str, Any]:
        """Tune saves its callbacks with the experiment: everything but the console stream."""
        return {**self.__dict__, "out": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.out = self.out or sys.stdout

    def _spec(self, trial: Any) -> RunSpec:
        return self.specs[trial.config["folder"]]

    def _print(self, *lines: str) -> None:
        for line in lines:
            print(line, file=self.out, flush=True)

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        spec = self._spec(trial)
        RunFolder(spec.path).write_job(launcher="ray", job_id=trial.trial_id, job_state="RUNNING",
                                       trial_dir=str(getattr(trial, "path", None) or ""))
        if trial.trial_id not in self.started:  # not a retry
            self.started[trial.trial_id] = time.monotonic()
            self.progress.running += 1
            self._print(self.progress.line())

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        spec = self._spec(trial)
        RunFolder(spec.path).write_job(job_state="RETRYING")
        self._print(f"  retrying {spec.run_id} ({trial.num_failures}/{self.max_failures}): {trial_error(trial)}")

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._finish(trial, "TERMINATED")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._finish(trial, "ERROR")

    def _finish(self, trial: Any, state: str) -> None:
        spec = self._spec(trial)
        folder = RunFolder(spec.path)
        folder.write_job(job_state=state)
        record = folder.read_record()
        if state == "TERMINATED" and record.get("status") not in ENDED:
            # a scheduler (ASHA) stopped it; the search records that once the trial's process is gone
            record = {**record, "status": Status.STOPPED, "error": stopped_error(record)}
        else:  # a trial that died without train() recording why
            record = folder.end_unfinished(Status.FAILED, f"Ray trial {trial.trial_id}: {trial_error(trial)}")
        elapsed = time.monotonic() - self.started.pop(trial.trial_id, time.monotonic())
        self.progress.running = max(0, self.progress.running - 1)
        self.progress.finished(spec.C, elapsed, record)
        if record.get("status") in DONE:
            self.progress.completed += 1
        else:
            self.progress.failed += 1
        self._print(finished_line(spec, record), self.progress.line())
