"""launcher=ray: Ray Tune trials on an embedded Ray with 2 CPUs, shared by the tests of this module."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import pytest

from tests.conftest import TINY_GPT
from tests.traces import TRACE, assert_same_training
from scaling.config import ConfigError, RayLauncherConfig, load_config
from scaling.launch.ray_session import check_fits, check_launcher, check_trainer, concurrency
from scaling.plan import plan_run, plan_sweep
from scaling.store import RunFolder, load_runs

ray = pytest.importorskip("ray")

# 4 runs of 12 steps (checkpoints every 5); the width-32 runs crash at step 7: seed 0 once
# (retried by Tune: completes), seed 1 twice (the retry crashes too: failed until the next sweep).
GRID = [*TINY_GPT, "sweep=grid", "++sweep.axes={model.width: [16, 32], seed: [0, 1]}", "budget.tokens=3072",
        "trainer.checkpoint_every=5", "trainer.val_every=6", *TRACE]
CRASHES = ['++sweep.rules={trainer.fail_at_step: "7 if width == 32 else None", '
           'trainer.fail_attempts: "2 if seed == 1 else 1"}']


@pytest.fixture(scope="module")
def ray_cpus(tmp_path_factory: pytest.TempPathFactory):
    """One embedded Ray with 2 CPUs for the whole module (start-up is the slow part)."""
    from scaling.launch.ray_session import init_arguments, ray_output_to

    log = tmp_path_factory.mktemp("ray") / "ray.log"
    with ray_output_to(log) as divert:
        ray.init(**init_arguments(RayLauncherConfig(), cpus=2))
        divert()
    yield 2
    ray.shutdown()


def ray_sweep(root: Path, overrides: list[str] = [*GRID, *CRASHES]) -> tuple[int, str]:
    """`scaling sweep launcher=ray ...` in this process: (exit code, console output)."""
    from scaling.launch.ray import launch as run_ray

    out = io.StringIO()
    code = run_ray(plan_sweep([*overrides, "launcher=ray", f"run.root={root}"]), out=out)
    return code, out.getvalue()


@pytest.fixture(scope="module")
def first_sweep(ray_cpus, tmp_path_factory: pytest.TempPathFactory):
    """The 4-run sweep on Ray, run once for the tests below."""
    root = tmp_path_factory.mktemp("ray-runs")
    code, output = ray_sweep(root)
    return root, code, output


def records(root: Path, sweep: str = "grid") -> dict[tuple[int, int], dict]:
    """(width, seed) -> record of every run of the sweep."""
    found = {}
    for path in (root / sweep).glob("*/record.json"):
        record = json.loads(path.read_text())
        found[(record["width"], record["seed"])] = record
    return found


def test_joining_no_cluster_is_a_one_line_error(tmp_path):
    from scaling.launch.ray import launch as run_ray

    if ray.is_initialized():
        pytest.skip("a Ray session is already up in this process")
    with pytest.raises(ConfigError, match="launcher.address=auto: could not join the Ray cluster"):
        run_ray(plan_sweep([*TINY_GPT, "launcher=ray", "launcher.address=auto", f"run.root={tmp_path}"]))
    assert not list(tmp_path.rglob("record.json"))  # nothing was prepared


def test_ray_sweep_trains_every_run_and_retries_a_crash(first_sweep):
    root, code, output = first_sweep
    runs = records(root)
    assert code == 1 and len(runs) == 4  # one run crashed on its retry too
    assert {key: r["status"] for key, r in runs.items()} == {
        (16, 0): "completed", (16, 1): "completed", (32, 0): "completed", (32, 1): "failed"}
    retried = runs[(32, 0)]
    assert retried["attempts"] == 2 and retried["resumes"] == [5] and retried["step"] == 12
    assert "InjectedFailure" in runs[(32, 1)]["error"] and runs[(32, 1)]["attempts"] == 2
    assert all(runs[key]["attempts"] == 1 for key in [(16, 0), (16, 1)])
    assert f"retrying {retried['run_id']} (1/1)" in output
    assert "[grid] 3/4 completed · 1 failed · 0 running · 0 remaining" in output
    assert "Configuration for experiment" not in output  # Ray's own tables went to .ray/ray.log
    assert "Configuration for experiment" in (root / "grid" / ".ray" / "ray.log").read_text()


def test_tune_results_and_job_files_name_the_trials(first_sweep):
    root, _, _ = first_sweep
    completed = records(root)[(16, 0)]
    folder = RunFolder(root / "grid" / completed["run_id"])
    job = folder.read_job()
    assert job["launcher"] == "ray" and job["job_state"] == "TERMINATED" and job["job_id"]
    results = list((root / "grid" / ".ray").glob(f"grid-*/{completed['run_id']}/result.json"))
    tune_result = json.loads(results[0].read_text().splitlines()[-1])
    assert tune_result["status"] == "completed" and tune_result["loss"] == pytest.approx(completed["loss"])
    assert RunFolder(root / "grid" / records(root)[(32, 1)]["run_id"]).read_job()["job_state"] == "ERROR"


def test_second_sweep_trains_only_the_failed_run_and_resumes_it(first_sweep):
    root, _, _ = first_sweep
    before = {key: (r["attempts"], r.get("finished")) for key, r in records(root).items()}
    code, output = ray_sweep(root)
    runs = records(root)
    assert code == 0 and "4 runs, 3 already completed, 1 to run" in output
    assert all(r["status"] == "completed" for r in runs.values())
    assert {key: (r["attempts"], r.get("finished")) for key, r in runs.items() if key != (32, 1)} == \
        {key: value for key, value in before.items() if key != (32, 1)}
    assert runs[(32, 1)]["attempts"] == 3 and runs[(32, 1)]["resumes"] == [5, 5]
    code, output = ray_sweep(root)
    assert code == 0 and "nothing to train, all 4 runs are already completed" in output


def test_run_table_is_the_local_launchers(first_sweep, tmp_path):
    from scaling.launch.local import launch as run_local

    root, _, _ = first_sweep
    local_root = tmp_path / "local"
    assert run_local(plan_sweep([*GRID, f"run.root={local_root}", "launcher.parallel=2"]), out=io.StringIO()) == 0
    columns = ["run_id", "N", "D", "C", "N_nonembed", "D_unique", "status"]
    from_ray = load_runs(root / "grid").sort_values("run_id").reset_index(drop=True)
    from_local = load_runs(local_root / "grid").sort_values("run_id").reset_index(drop=True)
    assert from_ray[columns].equals(from_local[columns])
    ray_loss, local_loss = from_ray["loss"].tolist(), from_local["loss"].tolist()
    assert all(math.isclose(a, b, rel_tol=1e-3) for a, b in zip(ray_loss, local_loss))
    retried = records(root)[(32, 0)]["run_id"]  # crashed at step 7 under Ray, retried from step 5
    assert_same_training(RunFolder(root / "grid" / retried), RunFolder(local_root / "grid" / retried))


def test_a_trial_failing_before_training_records_the_failure(ray_cpus, tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text("the quick brown fox jumps over the lazy dog\n" * 3000)
    overrides = [*TINY_GPT, "data.name=files", f"data.paths=[{corpus}]", "data.glob=*.txt", "budget.tokens=4096",
                 "data.val_tokens=1024"]
    plan = plan_sweep([*overrides, "launcher=ray", "launcher.max_failures=0", f"run.root={tmp_path / 'runs'}"])
    (corpus / "a.txt").unlink()  # the data goes away between planning and training
    from scaling.launch.ray import launch as run_ray

    out = io.StringIO()
    assert run_ray(plan, out=out) == 1
    record = RunFolder(plan.runs[0].path).read_record()
    assert record["status"] == "failed" and "matched no non-empty files" in record["error"], record
    assert "0/1 completed" in out.getvalue()


# ------------------------------------------------------------------ checks (no Ray needed)


@pytest.mark.parametrize("field, value, words", [
    ("address", "localhost", ["launcher.address", "ray://HOST:PORT"]),
    ("gpus_per_trial", 1.5, ["launcher.gpus_per_trial", "fraction"]),
    ("cpus_per_trial", 0, ["launcher.cpus_per_trial", "positive"]),
    ("workers_per_trial", 0, ["launcher.workers_per_trial"]),
    ("max_failures", -1, ["launcher.max_failures"]),
    ("tune_lr", [1e-3, -1.0], ["launcher.tune_lr", "positive"]),
])
def test_bad_launcher_settings_are_refused_in_one_line(field, value, words):
    launcher = RayLauncherConfig(**{field: value})
    with pytest.raises(ConfigError) as error:
        check_launcher(launcher)
    assert all(word in str(error.value) for word in words) and "\n" not in str(error.value)


def test_lr_search_needs_one_process_trials():
    with pytest.raises(ConfigError, match="workers_per_trial=1"):
        check_launcher(RayLauncherConfig(tune_lr=[1e-3, 3e-3], workers_per_trial=2))


def test_good_addresses_pass():
    for address in (None, "auto", "ray://head.cluster:10001", "10.0.0.1:6379"):
        check_launcher(RayLauncherConfig(address=address))


def test_trainer_devices_belong_to_the_launcher(runs_root):
    spec = plan_run(load_config([*TINY_GPT, "launcher=ray", "trainer.devices=2", f"run.root={runs_root}"]))
    with pytest.raises(ConfigError, match="workers_per_trial"):
        check_trainer(spec, spec.cfg.launcher)
    spec = plan_run(load_config([*TINY_GPT, "launcher=ray", "launcher.gpus_per_trial=0.25", f"run.root={runs_root}"]))
    with pytest.raises(ConfigError, match="trainer.accelerator=gpu"):
        check_trainer(spec, spec.cfg.launcher)


def test_an_lr_search_over_branches_is_refused(runs_root):
    plan = plan_sweep([*BRANCHES, "sweep.models=[16]", "launcher=ray", "launcher.tune_lr=[1e-3,1e-2]",
                       f"run.root={runs_root}"])
    for spec in plan.runs:  # the trunk and each branch
        with pytest.raises(ConfigError, match="launcher.tune_lr=.* with sweep.mode=branches") as error:
            check_trainer(spec, spec.cfg.launcher)
        assert "\n" not in str(error.value)


def test_a_trial_larger_than_the_cluster_is_refused_and_train_trials_are_counted():
    with pytest.raises(ConfigError, match="needs 4 CPUs but the Ray cluster has 2"):
        check_fits(RayLauncherConfig(cpus_per_trial=2, workers_per_trial=2), {"CPU": 2.0})
    check_fits(RayLauncherConfig(gpus_per_trial=0.25), {"CPU": 2.0, "GPU": 1.0})
    assert concurrency(RayLauncherConfig(workers_per_trial=2), {"CPU": 5.0}) == 2
    assert concurrency(RayLauncherConfig(gpus_per_trial=1, workers_per_trial=2), {"CPU": 64.0, "GPU": 8.0}) == 4
    assert concurrency(RayLauncherConfig(), {"CPU": 5.0}) is None  # Tune counts one-process trials itself


# ------------------------------------------------------------ Ray Train (two DDP workers)


@pytest.mark.slow
def test_two_worker_trial_trains_through_ray_train(ray_cpus, tmp_path):
    """A trial with workers_per_trial=2: Lightning's DDP over gloo under Ray Train; crashes once."""
    code, output = ray_sweep(tmp_path, [*TINY_GPT, "budget.tokens=3072", "trainer.checkpoint_every=5",
                                        "trainer.fail_at_step=7", "launcher.workers_per_trial=2"])
    record = next(iter(records(tmp_path, "default").values()))
    assert code == 0, output
    assert record["status"] == "completed" and record["hardware"]["world_size"] == 2
    assert record["attempts"] == 2 and record["resumes"] == [5]


# ------------------------------------------------------------ learning-rate search (ASHA)


def test_lr_variants_are_runs_of_their_own(runs_root):
    from scaling.launch.ray_lr import lr_groups

    plan = plan_sweep([*GRID, "launcher=ray", "launcher.tune_lr=[1e-3,1e-2]", f"run.root={runs_root}"])
    groups = lr_groups(plan, plan.runs[0].cfg.launcher.tune_lr)
    assert len(groups) == 4 and all(len(runs) == 2 for _, runs in groups)
    base, (low, high) = groups[0]
    assert (low.cfg.optim.lr, high.cfg.optim.lr) == (1e-3, 1e-2) and low.run_id != high.run_id
    assert (low.N, low.D, low.C) == (base.N, base.D, base.C)
    assert plan_run(low.cfg).run_id == low.run_id  # what the trial's worker checks against the folder name


def test_lr_search_stops_a_poor_learning_rate_and_marks_the_best(ray_cpus, tmp_path):
    """One trial at a time so the order is fixed: lr 3e-3 completes, then ASHA stops lr 1e-5 at step 6."""
    overrides = [*TINY_GPT, "budget.tokens=3072", "trainer.checkpoint_every=5", "trainer.val_every=6",
                 "launcher.tune_lr=[3e-3,1e-5]", "launcher.max_concurrent=1"]
    code, output = ray_sweep(tmp_path, overrides)
    by_lr = {r["lr"]: r for r in map(json.loads, map(Path.read_text, (tmp_path / "default").glob("*/record.json")))}
    assert code == 0, output
    assert by_lr[3e-3]["status"] == "completed" and by_lr[3e-3]["lr_search_best"] is True
    assert by_lr[1e-5]["status"] == "stopped" and by_lr[1e-5]["step"] == 6 and by_lr[1e-5]["lr_search_best"] is False
    assert by_lr[1e-5]["lr_search_group"] == by_lr[3e-3]["lr_search_group"]
    assert "best lr 0.003" in output
    code, output = ray_sweep(tmp_path, overrides)  # the search is final: nothing runs again
    assert code == 0 and "0 to run" in output


# ------------------------------------------------------------ cooldown branches (sweep.mode=branches)

# Two trunks of 32 steps (checkpoints every 5, kept at the branch points 16 and 32) and four branches.
BRANCHES = [*TINY_GPT, "sweep=data", "sweep.mode=branches", "sweep.name=br", "sweep.models=[16,32]",
            "sweep.data_sizes=[5120,10240]", "trainer.checkpoint_every=5", "trainer.threads=1"]
# Width 32 crashes once at step 7 (the trunk, before its branch points) or at its first step (its branches):
# Tune retries each, the trunk from its checkpoint at step 5, the branches from the trunk's again.
CRASH_32 = ['++sweep.rules={trainer.fail_at_step: "7 if width == 32 else None"}']


def by_role(root: Path) -> tuple[dict[int, dict], list[dict]]:
    """({width: trunk record}, [branch records]) of the branches sweep in root."""
    found = [json.loads(path.read_text()) for path in (root / "br").glob("*/record.json")]
    return {r["width"]: r for r in found if r.get("trunk")}, [r for r in found if r.get("parent")]


@pytest.fixture(scope="module")
def branches_sweep(ray_cpus, tmp_path_factory: pytest.TempPathFactory):
    """The branches sweep on Ray, width 32 crashing once per run (CRASH_32)."""
    root = tmp_path_factory.mktemp("ray-branches")
    code, output = ray_sweep(root, [*BRANCHES, *CRASH_32])
    return root, code, output


def test_a_branches_sweep_completes_with_branches_started_from_their_trunks(branches_sweep):
    root, code, output = branches_sweep
    trunks, branches = by_role(root)
    assert code == 0, output
    assert set(trunks) == {16, 32} and len(branches) == 4
    assert all(t["status"] == "completed" for t in trunks.values())
    assert trunks[32]["attempts"] == 2 and trunks[32]["resumes"] == [5]  # Tune queues the retry behind the rest
    assert sorted((b["width"], b["branch_step"], b["D"]) for b in branches) == \
        [(16, 16, 5120), (16, 32, 10240), (32, 16, 5120), (32, 32, 10240)]
    for branch in branches:
        trunk = RunFolder(root / "br" / trunks[branch["width"]]["run_id"])
        assert branch["parent"] == trunk.path.name and branch["status"] == "completed"
        assert branch["attempts"] == (2 if branch["width"] == 32 else 1) and "resumes" not in branch
        # a branch became a trial only once its trunk had kept the checkpoint: no trial ever waited for another
        assert branch["started"] >= trunk.kept_checkpoint(branch["branch_step"]).stat().st_mtime
        log = (root / "br" / branch["run_id"] / "train.log").read_text()
        assert log.startswith(f"waiting for trunk {trunk.path.name} to keep its checkpoint at step "
                              f"{branch['branch_step']}; launcher=ray starts this branch then")
    assert "[br] 6/6 completed · 0 failed · 0 running · 0 remaining" in output


def test_a_branches_run_table_is_the_local_launchers(branches_sweep, tmp_path):
    from scaling.launch.local import launch as run_local

    root, _, _ = branches_sweep
    local_root = tmp_path / "local"
    assert run_local(plan_sweep([*BRANCHES, f"run.root={local_root}", "launcher.parallel=2"]), out=io.StringIO()) == 0
    columns = ["run_id", "N", "D", "C", "status", "parent", "branch_step", "cost", "trunk"]
    from_ray = load_runs(root / "br").sort_values("run_id").reset_index(drop=True)
    from_local = load_runs(local_root / "br").sort_values("run_id").reset_index(drop=True)
    assert len(from_ray) == 6 and from_ray[columns].equals(from_local[columns])
    assert all(math.isclose(a, b, rel_tol=1e-3) for a, b in zip(from_ray["loss"], from_local["loss"]))


def test_a_diverged_trunk_fails_its_branches_with_the_reason(ray_cpus, tmp_path):
    """lr 1e3 makes the trunk's loss NaN at step 4, long before its branch points 16 and 32."""
    code, output = ray_sweep(tmp_path, [*BRANCHES, "sweep.models=[16]", "optim.lr=1e3"])
    trunks, branches = by_role(tmp_path)
    trunk = trunks[16]
    assert code == 1 and trunk["status"] == "diverged" and trunk["step"] == 4
    assert len(branches) == 2
    for branch in branches:
        assert branch["status"] == "failed" and not branch.get("attempts")  # never trained
        assert branch["error"] == (f"trunk {trunk['run_id']} is diverged at step 4 without its checkpoint at step "
                                   f"{branch['branch_step']}, where this branch starts: {trunk['error']}; "
                                   "fix the trunk and run the sweep again")
        assert not (tmp_path / "br" / branch["run_id"] / "metrics.csv").exists()
    assert f"failed    {branches[0]['run_id']}" in output and "0/3 completed" in output


def test_a_failed_trunk_resumes_in_the_next_sweep_and_its_branches_train_once(ray_cpus, tmp_path):
    """Sweep 1: the trunk crashes at step 7 (no retry), its branches fail naming it. Sweep 2: the trunk, still
    `failed` on disk from sweep 1, is this sweep's to train, so its branches wait for it and train once."""
    once = [*BRANCHES, "sweep.models=[16]", "launcher.max_failures=0"]
    code, output = ray_sweep(tmp_path, [*once, "trainer.fail_at_step=7"])
    trunks, branches = by_role(tmp_path)
    assert code == 1 and trunks[16]["status"] == "failed" and {b["status"] for b in branches} == {"failed"}
    assert all(b["error"].startswith(f"trunk {trunks[16]['run_id']} is failed at step 7") for b in branches)
    code, output = ray_sweep(tmp_path, once)
    trunks, branches = by_role(tmp_path)
    assert code == 0 and "3 runs, 0 already completed, 3 to run" in output, output
    assert trunks[16]["attempts"] == 2 and trunks[16]["resumes"] == [5]
    assert len(branches) == 2 and all(b["status"] == "completed" and b["attempts"] == 1 for b in branches)
    code, output = ray_sweep(tmp_path, once)
    assert code == 0 and "nothing to train, all 3 runs are already completed" in output


def test_a_branch_becomes_a_trial_only_when_its_trunk_is_ready(runs_root):
    """RunsInOrder (the driver's searcher): trunk first; a branch at its trunk's checkpoint; the rest once the
    trunk's trial has ended for good (they then record why they cannot train)."""
    from scaling.launch.common import prepare
    from scaling.launch.ray_order import RunsInOrder
    from scaling.store import Status

    plan = plan_sweep([*BRANCHES, "sweep.models=[16]", f"run.root={runs_root}"])
    trunk, short, long = plan.runs
    order = RunsInOrder(plan.runs, [prepare(spec).path for spec in plan.runs], poll_s=0)
    folder = lambda spec: {"folder": str(spec.path.resolve())}  # noqa: E731
    assert order.suggest("t1") == folder(trunk) and order.suggest("t2") is None
    RunFolder(trunk.path).kept_checkpoint(16).parent.mkdir(parents=True)
    RunFolder(trunk.path).kept_checkpoint(16).write_bytes(b"")  # the trunk passed step 16
    assert order.suggest("t2") == folder(short) and order.suggest("t3") is None
    RunFolder(trunk.path).finish(Status.FAILED, error="boom")  # a failed attempt that Tune may still retry
    assert order.suggest("t3") is None
    order.on_trial_complete("t1", error=True)  # Tune's retries are over
    assert order.suggest("t3") == folder(long) and order.suggest("t4") == RunsInOrder.FINISHED
