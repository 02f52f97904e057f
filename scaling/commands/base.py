"""What a command declares (`Command`), its argument parser, and checks of the paths it is given."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, NoReturn, Optional, Sequence

from scaling.commands.errors import UsageError



class CommandParser(argparse.ArgumentParser):
    """argparse whose errors are one line (raised as UsageError) instead of usage text and exit."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message}; see `{self.prog} --help`")


@dataclass(frozen=True)
class Command:
    """One `scaling <name>` command: everything about it, declared in its module as COMMAND.

    `arguments` adds argparse options; commands with another front (train, plan and sweep take
    Hydra overrides) give `parse` instead. `run` gets what was parsed and returns the exit code.
    """

    name: str
    synopsis: str
    help: str
    run: Callable[[Any], int]
    arguments: Optional[Callable[[argparse.ArgumentParser], None]] = None
    parse: Optional[Callable[[Sequence[str]], Any]] = None

    def parser(self) -> argparse.ArgumentParser:
        """The argparse parser of an argparse command."""
        parser = CommandParser(prog=f"scaling {self.name}", description=self.help)
        if self.arguments:
            self.arguments(parser)
        return parser

    def parse_args(self, argv: Sequence[str]) -> Any:
        """What `run` gets from the command line (SystemExit after --help, as argparse does)."""
        return self.parse(argv) if self.parse else self.parser().parse_args(list(argv))

    def main(self, argv: Sequence[str]) -> int:
        """Parse and run; the exit code."""
        try:
            args = self.parse_args(argv)
        except SystemExit as done:  # --help printed
            return int(done.code or 0)
        return self.run(args)


def check_level(level: float) -> None:
    """A confidence level is strictly between 0 and 1 (UsageError otherwise)."""
    if not 0 < level < 1:
        raise UsageError(f"--level {level} is not a confidence level; give a number between 0 and 1, e.g. 0.95")


def existing_path(path: Path | str, what: str) -> Path:
    """`path` as a Path when it exists and can be read; else a UsageError naming `what` it should be."""
    path = Path(path)
    if not path.exists():
        raise UsageError(f"{path} does not exist; give {what}")
    if not os.access(path, os.R_OK | (os.X_OK if path.is_dir() else 0)):
        raise UsageError(f"{path} cannot be read (permission denied); check its permissions")
    return path


def writable_folder(path: Path | str, option: str) -> Path:
    """`path` as a Path when it is, or can become, a folder we can write in; writes nothing.

    `option` names where the path came from: a config key (run.root) or a flag (-o).
    """
    path = Path(path)
    _check_writable(path, f"{option} {path}" if option.startswith("-") else f"{option}={path}", option)
    return path


def writable_file(path: Path | str, option: str) -> Path:
    """`path` as a Path when a file can be written there (its folder exists or can be made); writes nothing."""
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"{option} {path} is a folder; name a file in it, e.g. {path / 'runs.parquet'}")
    _check_writable(path.parent, f"{option} {path}", option)
    return path


def _check_writable(folder: Path, given: str, option: str) -> None:
    ancestor = next(p for p in (folder, *folder.absolute().parents) if p.exists())
    if not ancestor.is_dir():
        raise UsageError(f"{given}: {ancestor} is a file, not a folder; choose another {option}")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise UsageError(f"{given}: cannot write in {ancestor} (permission denied); choose another {option}")
