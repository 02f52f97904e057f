"""The user-error type and the helpers that word it: one line naming the key, the problem and the fix.

It sits below every other module (config, the registries, families, data sources) so that each
can refuse bad input without importing the others.
"""

from __future__ import annotations

from typing import Any, NoReturn


class ConfigError(ValueError):
    """A config problem, reported to the user as one line naming the key and the fix."""


def fail(key: str, value: Any, problem: str, fix: str) -> NoReturn:
    """Raise `key=value problem; fix` as a ConfigError."""
    raise ConfigError(f"{key}={value!r} {problem}; {fix}")


def require_positive(section: Any, prefix: str, names: list[str]) -> None:
    """Refuse a field of `section` (a config dataclass) that is set but not above 0."""
    for name in names:
        value = getattr(section, name)
        if value is not None and value <= 0:
            fail(f"{prefix}.{name}", value, "must be positive", f"set {prefix}.{name} to a number above 0")
