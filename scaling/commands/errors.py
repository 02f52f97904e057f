"""The one error path of every command: user errors as one line (exit 2), bugs with their traceback (exit 1)."""

from __future__ import annotations

import errno
import functools
import os
import sys
import traceback
from typing import Any, Callable, Optional

from scaling.format import one_line

USER_ERROR = 2
BUG = 1
INTERRUPTED = 130
BUG_LINE = ("error: this is a bug in scaling, not in your input; please report it (the command and the traceback "
            "above) on the project's issue tracker")
RESUME_HINT = "interrupted; run the same command again to resume"

# Domain errors that mean "your input is wrong". They are looked up only among modules already
# imported: an error cannot come from a module never loaded, and importing analysis or probes here
# would slow every command down.
DOMAIN_ERRORS = (("scaling.config", "ConfigError"), ("scaling.analysis.hygiene", "AnalysisError"),
                 ("scaling.probes.runner", "ProbeError"), ("scaling.store", "DamagedRecord"),
                 ("scaling.store", "RunBusy"), ("scaling.train.run", "DamagedCheckpoint"))

# What to do about a file system error on a path the user gave.
PATH_FIXES = {
    errno.ENOENT: "check the path",
    errno.ENOTDIR: "a file stands where a folder is needed; choose another path or move the file",
    errno.EISDIR: "a folder stands where a file is needed; choose another path",
    errno.EEXIST: "remove it or choose another path",
    errno.EACCES: "check its permissions or choose a path you can use",
    errno.EPERM: "check its permissions or choose a path you can use",
    errno.EROFS: "choose a path on a writable file system",
    errno.ENOSPC: "free some space and run the same command again",
}


class UsageError(Exception):
    """A mistake in the user's input: reported as one line on stderr, exit code 2."""


def fail(message: str) -> int:
    """Print `error: <message>` (one line) on stderr; the exit code of a user error."""
    print(f"error: {one_line(message)}", file=sys.stderr)
    return USER_ERROR


def user_message(exc: BaseException) -> Optional[str]:
    """The one-line message for a user error, or None when `exc` is a bug."""
    domain = tuple(getattr(sys.modules[module], name) for module, name in DOMAIN_ERRORS if module in sys.modules)
    if isinstance(exc, (UsageError, *domain)):
        return str(exc)
    if isinstance(exc, OSError) and exc.errno in PATH_FIXES:
        return _path_message(exc)
    if isinstance(exc, FileNotFoundError):  # raised with a message of our own, no errno
        return str(exc)
    return None


def _path_message(exc: OSError) -> str:
    where = f"{exc.filename}: " if exc.filename else ""
    return f"{where}{(exc.strerror or str(exc)).lower()}; {PATH_FIXES[exc.errno]}"


def guarded(func: Callable[..., int]) -> Callable[..., int]:
    """Run a command body; turn what it raises into the exit code and the lines the user sees.

    It wraps every command's `run` (callable on its own, as tests do) and the dispatcher (unknown
    commands, bad arguments).
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> int:
        try:
            return func(*args, **kwargs)
        except KeyboardInterrupt:
            print(f"\n{RESUME_HINT}", file=sys.stderr)
            return INTERRUPTED
        except BrokenPipeError:  # `scaling fit ... --json | head`: the reader left, nothing is wrong
            sys.stdout = open(os.devnull, "w")
            return 0
        except Exception as exc:  # noqa: BLE001 - every exception ends here, as a user error or a bug
            return _report(exc)

    return wrapper


def _report(exc: Exception) -> int:
    message = user_message(exc)
    if message is not None:
        return fail(message)
    traceback.print_exc()
    print(BUG_LINE, file=sys.stderr)
    return BUG
