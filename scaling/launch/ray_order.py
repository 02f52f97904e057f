"""Which run Ray Tune starts next: the plan's runs in order, a cooldown branch once its trunk is ready for it.

A Tune searcher on the driver makes one trial per run folder. Runs other than branches become trials
at once, in plan order (a branches plan lists its trunks first). A branch becomes a trial only when
common.startable says its trunk has kept the checkpoint at the branch's step, or has ended for good in
this sweep without it (the trial then records the branch failed, naming the trunk and its failure).

So no trial ever waits for another trial, and waiting branches hold no Ray resources: there is no
deadlock whatever max_concurrent_trials is. Trials that waited inside Ray could deadlock, because Tune
puts a retried trial behind every pending one: a trunk that crashes and is retried finds its slots
taken by its own branches, all waiting for it. Until a branch starts, its train.log says what it waits for.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Optional

from ray.tune.search import Searcher

from scaling.launch.common import startable
from scaling.plan import RunSpec

POLL_S = 1.0  # how often waiting branches look for their trunk's checkpoint


class RunsInOrder(Searcher):
    """Tune's trials: {"folder": run folder} per run, in plan order, branches as their trunks allow."""

    def __init__(self, todo: list[RunSpec], folders: list[Path], poll_s: float = POLL_S):
        super().__init__()
        self.waiting = [(spec, str(folder.resolve())) for spec, folder in zip(todo, folders)]
        self.unfinished = {spec.run_id for spec in todo}  # this sweep's runs whose trial has not ended for good
        self.live: dict[str, str] = {}  # trial_id -> run_id of trials not ended for good
        self.poll_s, self.looked = poll_s, -math.inf
        for spec, folder in self.waiting:
            if not startable(spec, self.unfinished):
                note_waiting(spec, Path(folder))

    def set_search_properties(self, metric: Optional[str], mode: Optional[str], config: dict, **spec: Any) -> bool:
        """Accept Tune's metric and mode (the learning-rate search's); the space is the run folders."""
        self._metric, self._mode = metric, mode
        return True

    def suggest(self, trial_id: str) -> Optional[dict[str, Any]]:
        """The next run that may start, None while every remaining branch waits, FINISHED when all are trials."""
        if not self.waiting:
            return Searcher.FINISHED
        ready = self._next_ready()
        if ready is None:
            return None
        self.waiting.remove(ready)
        self.live[trial_id] = ready[0].run_id
        return {"folder": ready[1]}

    def _next_ready(self) -> Optional[tuple[RunSpec, str]]:
        first = self.waiting[0]
        if not first[0].cfg.trainer.branch_of:
            return first
        if time.monotonic() - self.looked < self.poll_s:  # Tune asks many times a second
            return None
        self.looked = time.monotonic()
        ready = next((item for item in self.waiting if startable(item[0], self.unfinished)), None)
        if ready is None and not self.live:  # nothing left running can ready a branch: let it record why
            ready = first
        if ready is not None:
            self.looked = -math.inf
        return ready

    def save(self, checkpoint_path: str) -> None:
        """Nothing to save: running the sweep again plans what is left from the run folders."""

    def restore(self, checkpoint_path: str) -> None:
        """Nothing to restore (see save)."""

    def on_trial_complete(self, trial_id: str, result: Optional[dict] = None, error: bool = False) -> None:
        """A trial ended for good (Tune's retries are over): its run no longer holds its branches back."""
        self.unfinished.discard(self.live.pop(trial_id, ""))


def note_waiting(spec: RunSpec, folder: Path) -> None:
    """One line in the branch's train.log while it is not a trial yet."""
    trainer = spec.cfg.trainer
    with open(folder / "train.log", "a") as log:
        print(f"waiting for trunk {trainer.branch_of} to keep its checkpoint at step {trainer.branch_step}; "
              "launcher=ray starts this branch then", file=log, flush=True)
