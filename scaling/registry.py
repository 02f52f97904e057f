"""A registry: the one table where the entries of a concept (model families, data sources) live.

Each entry is declared in its own module, which registers it when imported; the registry imports
every module of its package on the first lookup, so adding an entry is adding a module. An entry
from elsewhere (a test, your own package) registers when you import its module.
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from typing import Generic, Iterator, Optional, TypeVar

from scaling.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Name -> entry, filled by the modules of `package` (imported on the first lookup)."""

    def __init__(self, what: str, key: str, package: Optional[str] = None, skip: tuple[str, ...] = ()) -> None:
        self.what = what  # "model family": how messages name an entry
        self.key = key  # "model.family": the config key whose value names an entry
        self.package, self.skip = package, skip
        self._entries: dict[str, T] = {}
        self._discovered = package is None

    def register(self, name: str, entry: T) -> T:
        """Add an entry; a second, different entry under the same name is refused."""
        if self._entries.get(name, entry) is not entry:
            raise ValueError(f"two {self.what} entries are named {name!r}; rename one of them")
        self._entries[name] = entry
        return entry

    def get(self, name: str) -> T:
        """The entry called `name`; a one-line ConfigError (with the names there are) if none is."""
        self.discover()
        if name not in self._entries:
            raise ConfigError(f"{self.key}={name!r} is not a {self.what}{self.did_you_mean(name)}; "
                              f"use one of {', '.join(self.names())}")
        return self._entries[name]

    def names(self) -> list[str]:
        """Every entry's name, sorted."""
        self.discover()
        return sorted(self._entries)

    def __iter__(self) -> Iterator[T]:
        self.discover()
        return iter([self._entries[name] for name in sorted(self._entries)])

    def did_you_mean(self, name: str) -> str:
        """' (did you mean 'gpt'?)' for a misspelt name, else ''."""
        close = difflib.get_close_matches(str(name), list(self._entries), n=1)
        return f" (did you mean {close[0]!r}?)" if close else ""

    def discover(self) -> None:
        """Import every public module of the package once (each registers its entries)."""
        if self._discovered:
            return
        self._discovered = True
        package = importlib.import_module(self.package)
        for module in pkgutil.iter_modules(package.__path__):
            if not module.name.startswith("_") and module.name not in self.skip:
                importlib.import_module(f"{self.package}.{module.name}")


def require_fields(schema: type, fields: tuple[str, ...], what: str) -> None:
    """Refuse (when registering) a config schema that lacks a field the framework reads itself."""
    missing = [name for name in fields if name not in getattr(schema, "__dataclass_fields__", {})]
    if missing:
        raise TypeError(f"{schema.__name__} lacks {', '.join(missing)}; every {what} schema has {', '.join(fields)}")
