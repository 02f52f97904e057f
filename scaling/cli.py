"""`scaling <command>`: dispatch only; each command lives in its module of scaling.commands."""

from __future__ import annotations

import sys
from typing import Optional, Sequence

from scaling.commands import dispatch, usage


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the `scaling` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    return dispatch(argv[0], argv[1:])


if __name__ == "__main__":
    sys.exit(main())
