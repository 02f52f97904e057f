"""The registry of `scaling` commands: one module per command, each declaring a `COMMAND`.

Adding a command is one module `scaling/commands/<name>.py` that ends with
`COMMAND = Command(name=..., synopsis=..., help=..., arguments=..., run=...)` and its name below.
Command modules import only the standard library at the top (heavy imports go inside `run`), so
listing them all for `scaling --help` stays fast.
"""

from __future__ import annotations

import importlib
from typing import Sequence

from scaling.commands.base import Command
from scaling.commands.errors import UsageError, guarded

NAMES = ("train", "plan", "sweep", "status", "fit", "predict", "report", "probe", "pull", "coordcheck")


def get(name: str) -> Command:
    """The command called `name`; a UsageError for any other word."""
    if name not in NAMES:
        raise UsageError(f"unknown command '{name}'; run `scaling --help` for the commands")
    return importlib.import_module(f"scaling.commands.{name}").COMMAND


def usage() -> str:
    """`scaling --help`: every command with its synopsis and one line of help."""
    lines = ["usage: scaling <command> [options]", "", "commands:"]
    pad = max(map(len, NAMES)) + 2
    for name in NAMES:
        command = get(name)
        lines.append(f"  {command.name:<{pad}}{command.synopsis:<23}{command.help}")
    lines += ["", "`scaling <command> --help` for a command's options."]
    return "\n".join(lines)


@guarded
def dispatch(name: str, argv: Sequence[str]) -> int:
    """Run command `name` with its arguments; the exit code."""
    return get(name).main(argv)
