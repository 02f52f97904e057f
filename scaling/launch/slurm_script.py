"""The sbatch script of a sweep's job array: one array task trains one run folder.

The script is plain text that a person can read, rerun and edit: `sbatch SCRIPT` resubmits it
(slurm/job-array.sbatch is the same script for use by hand). Task i trains the run folder on
line i+1 of the runs file, through `srun --ntasks-per-node=<devices per node>` so that
Lightning's SLURMEnvironment sets up DDP from SLURM's variables (SLURM_PROCID, SLURM_NTASKS, ...).
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any


def sbatch_options(launcher: Any, count: int, job_name: str, log_dir: Path) -> list[str]:
    """The #SBATCH options for an array of `count` runs with the launcher's resources."""
    options = [f"--job-name={job_name}", f"--array=0-{count - 1}%{max(1, launcher.parallel)}",
               f"--nodes={launcher.nodes}", f"--ntasks-per-node={launcher.tasks_per_node}",
               f"--cpus-per-task={launcher.cpus_per_task}", f"--time={launcher.time_min}",
               f"--signal=USR1@{launcher.signal_delay_s}", "--requeue", "--open-mode=append",
               f"--output={log_dir}/%A_%a.out"]
    if launcher.gpus_per_node:
        options.append(f"--gpus-per-node={launcher.gpus_per_node}")
    if launcher.mem_gb:
        options.append(f"--mem={int(round(launcher.mem_gb * 1024))}M")
    for key in ("partition", "account", "qos"):
        value = getattr(launcher, key)
        if value:
            options.append(f"--{key}={value}")
    return options + [str(extra) for extra in launcher.extra_sbatch]


def task_command(launcher: Any, python: str) -> str:
    """The srun line that trains "$RUN_DIR" (output appended to the run's train.log)."""
    srun = ["srun", f"--ntasks-per-node={launcher.tasks_per_node}", f"--cpus-per-task={launcher.cpus_per_task}",
            "--kill-on-bad-exit=1"]
    worker = [python, "-m", "scaling.launch.worker", "--slurm", "--threads", str(launcher.cpus_per_task)]
    return " ".join(shlex.quote(part) for part in srun + worker) + ' "$RUN_DIR" >> "$RUN_DIR/train.log" 2>&1'


BODY = """\
set -euo pipefail
RUNS_FILE={runs_file}
RUN_DIR=$(sed -n "$((SLURM_ARRAY_TASK_ID + 1))p" "$RUNS_FILE")
if [ -z "$RUN_DIR" ]; then echo "no run on line $((SLURM_ARRAY_TASK_ID + 1)) of $RUNS_FILE" >&2; exit 2; fi
echo "[$(date +%FT%T)] job $SLURM_JOB_ID = ${{SLURM_ARRAY_JOB_ID}}_${{SLURM_ARRAY_TASK_ID}} \
(restart ${{SLURM_RESTART_COUNT:-0}}) on $(hostname -s): $RUN_DIR"
{command}
"""


def sbatch_script(launcher: Any, runs_file: Path, count: int, job_name: str, log_dir: Path, python: str) -> str:
    """The whole script: header, #SBATCH options, and the body that trains one run per task."""
    header = ["#!/bin/bash", f"# {job_name}: written by scaling (launcher=slurm); "
              f"array task i trains the run folder on line i+1 of {runs_file}"]
    header += [f"#SBATCH {option}" for option in sbatch_options(launcher, count, job_name, log_dir)]
    body = BODY.format(runs_file=shlex.quote(str(runs_file)), command=task_command(launcher, python))
    return "\n".join(header) + "\n" + body
