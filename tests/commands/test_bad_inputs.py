"""Bad inputs to every command (issue 14): exit 2, one line on stderr naming the problem and the fix,
no traceback, and nothing written where runs and outputs go.

Each case runs in one workspace (the current folder, with run.root's default runs/ in it) and a
fresh HOME.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from scaling.analysis.synthetic import isoflop_table
from scaling.cli import main

NO_GPU = pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="this machine has a GPU")
AS_ROOT = pytest.mark.skipif(os.geteuid() == 0, reason="root can write and read anything")
# Small enough that a case not refused (an xfail) trains in seconds.
TINY = ["model.width=8", "model.depth=1", "model.head_dim=8", "data.seq_len=16", "budget.tokens=4096",
        "optim.batch_size=4", "trainer.progress=false"]


def case(*argv: str, says: str, marks: tuple = ()) -> pytest.param:
    """One bad command line and a fragment its error line must contain."""
    return pytest.param(list(argv), says, marks=marks, id=" ".join(argv)[:60])


CASES = [
    # train: configs, numbers, paths, options
    case("train", "model.widht=64", says="did you mean 'model.width'"),
    case("train", "model.width=-3", says="model.width"),
    case("train", "model.width=abc", says="model.width"),
    case("train", "model.width=", says="model.width"),
    case("train", "model=nosuch", says="model="),
    case("train", "data=nosuch", says="data="),
    case("train", "experiment=nosuch", says="experiment="),
    case("train", "optim.batch_size=0", says="optim.batch_size"),
    case("train", "data.seq_len=-1", says="data.seq_len"),
    case("train", "budget.tokens=1", says="budget.tokens"),
    case("train", "budget.tokens=-5", says="budget.tokens"),
    case("train", "model.width=30", "model.head_dim=16", says="model.head_dim"),
    case("train", "seed=abc", says="seed"),
    case("train", "--bogus", says="unknown option --bogus"),
    case("train", "run.root=afile.txt", says="is a file; give a folder"),
    case("train", "run.root=afile.txt/runs", says="is inside a file"),
    case("train", "optim.lr=nan", says="optim.lr"),
    case("train", "trainer.accelerator=gpu", says="trainer.accelerator", marks=NO_GPU),
    # plan
    case("plan", "--bogus", says="unknown option --bogus"),
    case("plan", "run.root=afile.txt", says="is a file; give a folder"),
    case("plan", "launcher=nosuch", says="launcher="),
    case("plan", "sweep.axes=notadict", says="sweep.axes"),
    case("plan", "optim.lr=-1", says="optim.lr"),
    case("plan", "budget.flops=inf", says="budget.flops"),
    case("plan", "experiment=quickstart", "+sweep.rules.model.depth='2'", says="name the key whole"),
    case("plan", "experiment=quickstart", "sweep.rules={optim.eps:'1e-8'}", says="write ++sweep.rules={...}"),
    case("plan", "budget.flops=nan", says="budget.flops"),
    case("plan", "optim.lr=nan", says="optim.lr"),
    case("plan", "optim.beta1=1.5", says="optim.beta1"),
    case("plan", "optim.weight_decay=-1", says="optim.weight_decay"),
    case("sweep", "trainer.accelerator=gpu", says="trainer.accelerator", marks=NO_GPU),  # plan may show a GPU sweep
    case("plan", "launcher.parallel=0", says="launcher.parallel"),
    case("plan", "sweep.mode=bogus", says="isoflop"),  # the fix lists the modes
    # sweep
    case("sweep", "--json", says="unknown option --json"),
    case("sweep", "run.root=afile.txt", says="is a file; give a folder"),
    case("sweep", "launcher=nosuch", says="launcher="),
    case("sweep", "model.width=0", says="model.width"),
    # status
    case("status", says="required: sweep_dir"),
    case("status", "nowhere", says="nowhere does not exist"),
    case("status", "afile.txt", says="is a file, not a sweep folder"),
    case("status", "--bogus", "runs", says="unrecognized arguments: --bogus"),
    case("status", "runs", "runs", says="unrecognized arguments"),
    case("status", "locked", says="cannot be read", marks=AS_ROOT),
    # fit: paths, files, tables, numbers
    case("fit", "nowhere.csv", says="does not exist"),
    case("fit", "afile.txt", says="unknown file type"),
    case("fit", "garbage.csv", says="cannot read garbage.csv"),
    case("fit", "empty.csv", says="cannot read empty.csv"),
    case("fit", "nocols.csv", says="needs column(s) N, D, loss"),
    case("fit", "same.csv", says="do not vary N or D"),
    case("fit", "same.csv", "--law", "compute", says="do not vary C"),
    case("fit", "runs/s", says="needs at least 6 usable runs"),
    case("fit", "table.csv", "--law", "nosuch", says="invalid choice: 'nosuch'"),
    case("fit", "table.csv", "--bootstrap", "-1", says="--bootstrap"),
    case("fit", "table.csv", "--bootstrap", "abc", says="--bootstrap"),
    case("fit", "table.csv", "--holdout", "abc", says="--holdout"),
    case("fit", "table.csv", "--level", "2", says="--level"),
    case("fit", "table.csv", "--delta", "0", says="--delta"),
    case("fit", "table.csv", "--predict", "abc", says="--predict"),
    case("fit", "table.csv", "--where", "nope >", says="--where"),
    case("fit", "table.csv", "--columns", "N=Nope", says="--columns"),
    # report: sources and outputs
    case("report", "nowhere", says="nowhere does not exist"),
    case("report", "table.csv", "-o", "afile.txt", says="is a file, not a folder"),
    case("report", "table.csv", "-o", "afile.txt/report", says="is a file, not a folder"),
    case("report", "table.csv", "-o", "/proc/scaling-report", "--bootstrap", "0", says="/proc/scaling-report"),
    case("report", "table.csv", "-o", "locked/report", says="cannot write in", marks=AS_ROOT),
    case("report", "same.csv", says="do not vary N or D"),
    case("report", "nocols.csv", says="needs N, D, C and loss"),
    case("report", "empty.csv", says="cannot read empty.csv"),
    case("report", "table.csv", "--target-flops", "-1", says="--target-flops"),
    case("report", "table.csv", "--target-flops", "inf", says="--target-flops"),
    case("report", "table.csv", "--law", "nosuch", says="invalid choice"),
    case("report", "table.csv", "--bootstrap", "-2", says="--bootstrap"),
    # probe
    case("probe", "nowhere", says="nowhere does not exist"),
    case("probe", "afile.txt", says="is a file"),
    case("probe", "runs/s", says="has no completed runs"),
    case("probe", "runs/s/planned", says="is planned, not completed"),
    case("probe", "runs/s", "--max-samples", "3", says="--max-samples"),
    case("probe", "runs/s", "--max-samples", "abc", says="--max-samples"),
    case("probe", "runs/s", "--device", "bogus", says="--device bogus"),
    case("probe", "runs/s", "--device", "cuda", says="no CUDA GPU", marks=NO_GPU),
    # pull
    case("pull", says="required: source"),
    case("pull", "notwandb", says="wandb:ENTITY/PROJECT"),
    case("pull", "wandb:me", says="wandb:ENTITY/PROJECT"),
    case("pull", "wandb:me/p/g/x", says="wandb:ENTITY/PROJECT"),
    case("pull", "wandb:me/p", "-o", "table.txt", says=".parquet or .csv"),
    case("pull", "wandb:me/p", "-o", "afile.txt/runs.parquet", says="is a file, not a folder"),
    case("pull", "wandb:me/p", "-o", "tables.parquet/", says="is a folder"),
    case("pull", "wandb:me/p", "-o", "out/runs.parquet", says="wandb login"),
    # no such command
    case("trian", says="unknown command 'trian'"),
]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """A folder with a run root (one planned run), tables good and bad, a plain file, a locked folder."""
    root = tmp_path_factory.mktemp("bad_inputs")
    (root / "home").mkdir()
    run = root / "runs" / "s" / "planned"
    run.mkdir(parents=True)
    (run / "record.json").write_text(json.dumps({"run_id": "planned", "status": "planned"}))
    (root / "afile.txt").write_text("not a folder\n")
    table = isoflop_table(seed=0)
    table.to_csv(root / "table.csv", index=False)
    table.iloc[[5] * 8].to_csv(root / "same.csv", index=False)
    (root / "garbage.csv").write_bytes(b"\x00\x01garbage\xff\xfe\n")
    (root / "empty.csv").write_text("")
    (root / "nocols.csv").write_text("a,b\n1,2\n")
    (root / "tables.parquet").mkdir()
    (root / "locked").mkdir(mode=0o000)
    return root


@pytest.fixture
def in_workspace(workspace, monkeypatch) -> Path:
    monkeypatch.chdir(workspace)
    monkeypatch.setenv("HOME", str(workspace / "home"))
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    return workspace


def files(root: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder under root (but HOME, where caches may go), with size and mtime."""
    found = {}
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if Path(folder, d) != root / "home"]
        for name in [*dirs, *names]:
            path = Path(folder, name)
            stat = path.lstat()
            found[str(path.relative_to(root))] = (stat.st_size, stat.st_mtime_ns)
    return found


def assert_refused(code: int, err: str, says: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    assert says in err, err


@pytest.mark.parametrize("argv, says", CASES)
def test_bad_input_is_refused_in_one_line(argv, says, in_workspace, capsys):
    before = files(in_workspace)
    if argv[0] == "train":
        argv = [argv[0], *TINY, *argv[1:]]
    code = main(argv)
    assert_refused(code, capsys.readouterr().err, says)
    assert files(in_workspace) == before


@pytest.mark.parametrize("argv, says", [
    (["fit", "same.csv", "--law", "params"], "do not vary N"),
    (["report", "table.csv", "-o", "afile.txt"], "is a file, not a folder"),
])
def test_the_console_script_refuses_in_one_line(argv, says, in_workspace):
    before = files(in_workspace)
    done = subprocess.run([sys.executable, "-m", "scaling.cli", *argv], capture_output=True, text=True, timeout=120)
    assert_refused(done.returncode, done.stderr, says)
    assert files(in_workspace) == before
