"""`scaling <command>`: the registry, dispatch, help, the one error path, and fast imports."""

from __future__ import annotations

import errno
import subprocess
import sys
from pathlib import Path

import pytest

from scaling import commands
from scaling.cli import main
from scaling.commands.base import Command
from scaling.commands.errors import BUG_LINE, UsageError, guarded
from scaling.config import ConfigError

HYDRA_COMMANDS = ("train", "plan", "sweep", "coordcheck")  # coordcheck: overrides + its own flags


def test_usage_lists_every_registered_command(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: scaling <command>")
    for name in commands.NAMES:
        assert f"\n  {name} " in out


@pytest.mark.parametrize("name", commands.NAMES)
def test_every_command_declares_itself_in_one_place(name):
    command = commands.get(name)
    assert isinstance(command, Command) and command.name == name
    assert command.help and "\n" not in command.help and callable(command.run)
    assert (command.parse is not None) == (name in HYDRA_COMMANDS)
    assert (command.arguments is not None) == (name not in HYDRA_COMMANDS)


@pytest.mark.parametrize("name", commands.NAMES)
def test_every_command_has_help(name, capsys):
    assert main([name, "--help"]) == 0
    out = capsys.readouterr().out
    assert ("Config groups" in out) if name in HYDRA_COMMANDS else out.startswith(f"usage: scaling {name}")


def test_unknown_command_is_one_line(capsys):
    assert main(["trian"]) == 2
    assert capsys.readouterr().err == "error: unknown command 'trian'; run `scaling --help` for the commands\n"


def test_cfg_job_prints_the_composed_config(capsys):
    assert main(["plan", "--cfg", "job", "model.width=48"]) == 0
    assert "width: 48" in capsys.readouterr().out


def _raises(exc: BaseException):
    @guarded
    def body() -> int:
        raise exc

    return body


@pytest.mark.parametrize("exc, line", [
    (UsageError("--level 2 is not a confidence level"), "error: --level 2 is not a confidence level"),
    (ConfigError("model.width=-3 must be positive\nset it above 0"), "error: model.width=-3 must be positive; set it above 0"),
    (NotADirectoryError(errno.ENOTDIR, "Not a directory", "runs/x"), "error: runs/x: not a directory; a file stands"),
    (FileNotFoundError("runs/nope does not exist; give a sweep folder"), "error: runs/nope does not exist"),
])
def test_user_errors_are_one_line_and_exit_2(exc, line, capsys):
    assert _raises(exc)() == 2
    err = capsys.readouterr().err
    assert err.startswith(line) and err.count("\n") == 1


def test_a_bug_keeps_its_traceback_and_says_it_is_a_bug(capsys):
    assert _raises(RuntimeError("internal state broke"))() == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "RuntimeError: internal state broke" in err
    assert err.strip().splitlines()[-1] == BUG_LINE and "bug in scaling" in BUG_LINE


def test_a_bug_inside_a_command_goes_through_main(tmp_path, monkeypatch, capsys):
    def broken(path):
        raise KeyError("no column")

    monkeypatch.setattr("scaling.commands.status.status_table", broken)
    assert main(["status", str(tmp_path)]) == 1
    assert capsys.readouterr().err.strip().endswith(BUG_LINE)


def test_ctrl_c_exits_130_with_the_resume_hint(capsys):
    assert _raises(KeyboardInterrupt())() == 130
    assert "run the same command again to resume" in capsys.readouterr().err


def test_a_closed_pipe_is_silent(monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdout", sys.stdout)  # guarded() points stdout at /dev/null; restored after
    assert _raises(BrokenPipeError(errno.EPIPE, "Broken pipe"))() == 0
    assert capsys.readouterr().err == ""


def test_sweep_hands_the_plan_to_the_launcher_in_one_call(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    handed = []
    monkeypatch.setattr("scaling.launch.launch_plan", lambda plan: handed.append(plan) or 7)
    assert main(["sweep", "model=cnn", "data=digits", f"run.root={tmp_path / 'runs'}"]) == 7
    assert len(handed) == 1 and len(handed[0].runs) == 1
    assert not (tmp_path / "runs").exists()


def test_fit_report_and_status_import_no_torch_lightning_or_ray(tmp_path):
    from scaling.analysis.synthetic import isoflop_table

    table = tmp_path / "runs.csv"
    isoflop_table(seed=0).to_csv(table, index=False)
    (tmp_path / "sweep").mkdir()
    script = (f"import sys\nfrom scaling.cli import main\n"
              f"assert main(['status', {str(tmp_path / 'sweep')!r}]) == 0\n"
              f"assert main(['fit', {str(table)!r}, '--law', 'compute']) == 0\n"
              f"assert main(['report', {str(table)!r}, '-o', {str(tmp_path / 'report')!r}, '--bootstrap', '0']) == 0\n"
              "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'pytorch_lightning', 'lightning', 'ray'})\n"
              "assert not heavy, heavy\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr[-3000:]
