"""launcher=slurm: the sbatch script, the checks, and (marker `slurm`) runs through a real scheduler.

The cluster tests need the local one-node cluster (`slurm/local-cluster.sh start`, as CI does);
without it they skip with the reason. Each trains tiny GPTs (threads=1) just long enough to be
caught running.
"""

from __future__ import annotations

import io
import subprocess
import threading
import time
from pathlib import Path

import pytest

from scaling.config import ConfigError, SlurmLauncherConfig, load_config
from scaling.launch.local import launch as run_local
from scaling.launch.slurm import Tracked, check_plan, check_run, still_queued
from scaling.launch.slurm import launch as run_slurm
from scaling.launch.slurm_queue import JobInfo, cluster_answers, my_jobs, parse_show_job, parse_squeue
from scaling.launch.slurm_script import sbatch_script
from scaling.plan import plan_run, plan_sweep
from scaling.store import RunFolder, load_runs
from scaling.train import train
from tests.conftest import TINY_GPT, wait_for
from tests.traces import TRACE, assert_same_training

NO_CLUSTER = cluster_answers()
needs_cluster = pytest.mark.skipif(NO_CLUSTER is not None, reason=f"no SLURM cluster ({NO_CLUSTER}); "
                                   "start one with slurm/local-cluster.sh start")
TINY = [*TINY_GPT, "trainer.val_every=1000", "trainer.threads=1"]
ON_SLURM = ["launcher=slurm", "launcher.poll_s=1", "launcher.time_min=10"]


def _plan(runs_root: Path, *more: str):
    return plan_sweep([*TINY, f"run.root={runs_root}", *more])


class SweepThread(threading.Thread):
    """run_slurm(plan) in a thread, its output kept, so that a test can act on the jobs meanwhile."""

    def __init__(self, plan):
        super().__init__(daemon=True)
        self.plan, self.out, self.code, self.ended = plan, io.StringIO(), None, None

    def run(self) -> None:
        self.code = run_slurm(self.plan, out=self.out)
        self.ended = time.monotonic()


def _running_job(folder: RunFolder, min_step: int) -> str:
    """The job id of the run once SLURM says it is RUNNING and the run has passed `min_step`."""
    def ready():
        job_id = folder.read_job().get("job_id")
        info = my_jobs().get(job_id) if job_id else None
        step = folder.read_record().get("step") or 0
        return job_id if info and info.state == "RUNNING" and step >= min_step else None
    return wait_for(ready, 120, f"the run to pass step {min_step} in a running job")


# ---------------------------------------------------------------- without a cluster


def test_sbatch_script_has_the_resources_and_srun_line(tmp_path):
    launcher = SlurmLauncherConfig(parallel=3, nodes=2, tasks_per_node=4, gpus_per_node=4, cpus_per_task=8,
                                   mem_gb=64, time_min=120, partition="gpu", account="lab", qos="high",
                                   signal_delay_s=120, extra_sbatch=["--constraint=a100"])
    script = sbatch_script(launcher, tmp_path / "x.runs", 5, "scaling-demo", tmp_path, "/venv/bin/python")
    for option in ("--array=0-4%3", "--nodes=2", "--ntasks-per-node=4", "--gpus-per-node=4", "--cpus-per-task=8",
                   "--mem=65536M", "--time=120", "--partition=gpu", "--account=lab", "--qos=high",
                   "--signal=USR1@120", "--requeue", "--constraint=a100"):
        assert f"#SBATCH {option}\n" in script
    assert ("srun --ntasks-per-node=4 --cpus-per-task=8 --kill-on-bad-exit=1 /venv/bin/python -m "
            "scaling.launch.worker --slurm --threads 8 \"$RUN_DIR\"") in script
    assert subprocess.run(["bash", "-n"], input=script, text=True).returncode == 0


@pytest.mark.parametrize("more, words", [
    (["launcher.tasks_per_node=2"], ["trainer.devices=1", "launcher.tasks_per_node=2"]),
    (["launcher.nodes=2"], ["trainer.num_nodes=1", "launcher.nodes=2"]),
    (["launcher.time_min=10", "launcher.signal_delay_s=700"], ["launcher.signal_delay_s=700", "600s"]),
    (["launcher.gpus_per_node=1"], ["launcher.gpus_per_node=1", "trainer.accelerator=cpu"]),
    (["launcher.tasks_per_node=3", "trainer.devices=3"], ["optim.batch_size=8", "multiple of 3"]),
])
def test_a_mismatch_is_refused_in_one_line_before_submitting(tmp_path, more, words):
    plan = _plan(tmp_path, "launcher=slurm", *more)
    with pytest.raises(ConfigError) as info:
        check_plan(plan.runs)
    assert "\n" not in str(info.value) and all(word in str(info.value) for word in words)


def test_squeue_and_scontrol_output_is_parsed():
    jobs = parse_squeue("7_1|7|1|PENDING|JobArrayTaskLimit|\n8_0|7|0|RUNNING|None|vm\n9|9|N/A|CANCELLED|None|vm\n")
    assert jobs["7_1"].state == "PENDING" and not jobs["7_1"].terminal and jobs["7_1"].array_index == 1
    assert jobs["9"].terminal and jobs["9"].array_index is None and jobs["8_0"].nodes == "vm"
    fields = parse_show_job("JobId=8 ArrayJobId=7 JobState=OUT_OF_MEMORY Reason=OutOfMemory ExitCode=0:125 Restarts=0")
    assert fields["JobState"] == "OUT_OF_MEMORY" and fields["ExitCode"] == "0:125"


def test_a_job_gone_from_the_queue_marks_its_run_failed(tmp_path):
    spec = _plan(tmp_path, "launcher=slurm").runs[0]
    folder = RunFolder(spec.path)
    folder.write_record({"status": "running", "attempts": 1, "error": None})
    folder.write_job(job_id="41_0", log="/x/41_0.out")
    run = Tracked(spec, "41_0", attempts_before=0, seen=True, state="RUNNING")
    assert check_run(run, {}, settle_s=10) is None  # one missing poll is not enough
    record = check_run(run, {}, settle_s=10)
    assert record["status"] == "failed" and "41_0 vanished from the queue" in record["error"]
    assert folder.read_job()["job_state"] == "VANISHED"


def test_runs_still_in_the_queue_are_watched_not_submitted_twice(tmp_path):
    first, second = _plan(tmp_path, "launcher=slurm", "sweep=grid", "++sweep.axes={model.width:[16,32]}").runs
    RunFolder(first.path).write_job(launcher="slurm", job_id="5_0", attempts_before=1)
    RunFolder(second.path).write_job(launcher="slurm", job_id="5_1", attempts_before=0)
    queue = {"5_0": JobInfo("5_0", "5", 0, "RUNNING", "None", "vm"),
             "5_1": JobInfo("5_1", "5", 1, "CANCELLED", "None", "vm")}
    attached = still_queued([first, second], queue)
    assert [(run.spec.run_id, run.job_id, run.attempts_before) for run in attached] == [(first.run_id, "5_0", 1)]


# ---------------------------------------------------------------- on the local cluster


@pytest.mark.slurm
@needs_cluster
def test_slurm_sweep_matches_a_local_sweep(tmp_path):
    grid = ["sweep=grid", "sweep.name=four", "++sweep.axes={model.width:[16,32]}",
            "++sweep.axes={budget.tokens:[6400,12800]}"]
    plan = _plan(tmp_path / "slurm", *grid, *ON_SLURM, "launcher.parallel=2")
    sweep = SweepThread(plan)
    seen: dict[str, set] = {}
    stop = threading.Event()

    def watch_queue():
        while not stop.is_set():
            for job_id, info in my_jobs().items():
                seen.setdefault(job_id, set()).add(info.state)
            time.sleep(0.5)

    watcher = threading.Thread(target=watch_queue, daemon=True)
    sweep.start()
    watcher.start()
    assert run_local(_plan(tmp_path / "local", *grid, "launcher.parallel=2"), out=io.StringIO()) == 0  # meanwhile, here
    sweep.join(timeout=240)
    stop.set()
    assert sweep.code == 0, sweep.out.getvalue()
    slurm_table = load_runs(tmp_path / "slurm" / "four").sort_values("run_id").reset_index(drop=True)
    local_table = load_runs(tmp_path / "local" / "four").sort_values("run_id").reset_index(drop=True)
    columns = ["run_id", "N", "D", "C"]
    assert slurm_table[columns].equals(local_table[columns]) and len(slurm_table) == 4
    assert (slurm_table["loss"] - local_table["loss"]).abs().max() < 0.02
    assert set(slurm_table["status"]) == {"completed"} and set(slurm_table["job_state"]) == {"COMPLETED"}
    for job_id in slurm_table["job_id"]:  # every array task was seen in squeue, and running
        assert "RUNNING" in seen.get(job_id, set()), (job_id, seen)


@pytest.mark.slurm
@needs_cluster
def test_two_process_ddp_run_under_srun(tmp_path):
    plan = _plan(tmp_path, *ON_SLURM, "launcher.tasks_per_node=2", "trainer.devices=2", "budget.tokens=6400")
    out = io.StringIO()
    assert run_slurm(plan, out=out) == 0, out.getvalue()
    record = RunFolder(plan.runs[0].path).read_record()
    assert record["status"] == "completed" and record["hardware"]["world_size"] == 2
    assert record["step"] == plan.runs[0].steps and record["loss"] < 5.0


def uninterrupted(root: Path, *overrides: str) -> RunFolder:
    """The same run trained here in one go: the reference a resumed run must match."""
    spec = plan_run(load_config([*TINY, f"run.root={root}", *overrides]))
    train(spec)
    return RunFolder(spec.path)


RESUMABLE = [*TRACE, "budget.tokens=102400", "trainer.checkpoint_every=25"]  # 400 steps


def sweep_caught_running(tmp_path: Path, min_step: int, *overrides: str) -> tuple[RunFolder, SweepThread, str]:
    """A one-run SLURM sweep started in a thread and caught running past `min_step`: (folder, sweep, job id)."""
    plan = _plan(tmp_path, *ON_SLURM, *overrides)
    folder = RunFolder(plan.runs[0].path)
    sweep = SweepThread(plan)
    sweep.start()
    return folder, sweep, _running_job(folder, min_step=min_step)


@pytest.mark.slurm
@needs_cluster
def test_preempted_job_checkpoints_requeues_and_resumes(tmp_path):
    folder, sweep, job_id = sweep_caught_running(tmp_path, 30, *RESUMABLE)
    seen = folder.read_record()["step"]  # progress already recorded when the signal is sent
    subprocess.run(["scancel", "--signal=USR1", job_id], check=True)  # what SLURM sends before the time limit
    sweep.join(timeout=240)
    assert sweep.code == 0, sweep.out.getvalue()
    record = folder.read_record()
    assert record["status"] == "completed" and record["step"] == 400 and record["attempts"] == 2
    # The signal's own checkpoint: at least the step reached when it was sent (the periodic one,
    # every 25 steps, can be behind it; the signal may also land exactly on a multiple of 25).
    assert record["resumed_from_step"] >= max(30, seen)
    log = Path(folder.read_job()["log"]).read_text()
    assert "(restart 0)" in log and "(restart 1)" in log and "DUE TO JOB REQUEUE" in log
    assert_same_training(folder, uninterrupted(tmp_path / "whole", *RESUMABLE))


@pytest.mark.slurm
@needs_cluster
def test_scancel_marks_the_run_failed_within_a_minute(tmp_path):
    folder, sweep, job_id = sweep_caught_running(tmp_path, 5, "budget.tokens=1024000")  # far longer than the test
    cancelled = time.monotonic()
    subprocess.run(["scancel", job_id], check=True)
    sweep.join(timeout=90)
    assert sweep.ended is not None and sweep.ended - cancelled < 60
    assert sweep.code == 1
    record = folder.read_record()
    assert record["status"] == "failed" and f"SLURM job {job_id} ended CANCELLED" in record["error"]
    assert folder.read_job()["job_state"] == "CANCELLED"
    assert "1 not completed" in sweep.out.getvalue()


@pytest.mark.slurm
@needs_cluster
def test_operator_requeue_resumes_from_the_checkpoint(tmp_path):
    folder, sweep, job_id = sweep_caught_running(tmp_path, 30, *RESUMABLE)
    subprocess.run(["scontrol", "requeue", job_id], check=True)  # SIGTERM: no USR1, SLURM requeues
    sweep.join(timeout=240)
    assert sweep.code == 0, sweep.out.getvalue()
    record = folder.read_record()
    assert record["status"] == "completed" and record["step"] == 400 and record["attempts"] == 2
    assert_same_training(folder, uninterrupted(tmp_path / "whole", *RESUMABLE))
    assert record["resumed_from_step"] >= 25  # not a restart from step 0


@pytest.mark.slurm
@needs_cluster
def test_branches_sweep_under_slurm(tmp_path):
    """Trunk first in the array; its branches wait for their step's checkpoint, then cool down."""
    plan = _plan(tmp_path, *ON_SLURM, "sweep=data", "sweep.mode=branches", "sweep.models=[32]",
                 "sweep.data_sizes=[5120,10240]", "trainer.checkpoint_every=5")
    out = io.StringIO()
    assert run_slurm(plan, out=out) == 0, out.getvalue()
    trunk, *branches = (RunFolder(r.path).read_record() for r in plan.runs)
    assert trunk["trunk"] is True and trunk["status"] == "completed"
    assert [b["parent"] for b in branches] == [trunk["run_id"]] * 2
    assert all(b["status"] == "completed" and b["attempts"] == 1 for b in branches)
