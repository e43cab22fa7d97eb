"""TOML validation primitives shared by every config reader (solver, training and dataset configs).

`read_toml(path)` parses a file; `_Table` reads one table key by key, so that every error names the
file and the dotted key and says what was expected (`ConfigError`), and leftovers are reported.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

_MISSING = object()


def read_toml(path: str | Path) -> tuple[Path, dict[str, Any]]:
    """`(file, data)` of a TOML file; `ConfigError` if it is missing or not valid TOML."""
    file = Path(path)
    if not file.is_file():
        raise ConfigError(file, "", "no such file")
    try:
        return file, tomllib.loads(file.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(file, "", f"not valid TOML: {err}") from None


class ConfigError(ValueError):
    """A bad config: `file: key: what was expected`."""

    def __init__(self, file: Any, key: str, message: str):
        self.file, self.key = str(file), key
        super().__init__(f"{file}: {key}: {message}" if key else f"{file}: {message}")


class _Table:
    """Reads one TOML table, remembering which keys were used so leftovers can be reported."""

    def __init__(self, data: Any, key: str, file: Path):
        if not isinstance(data, dict):
            raise ConfigError(file, key, f"expected a table, got {_kind(data)}")
        self.data, self.key, self.file, self.used = data, key, file, set()

    def path(self, name: str) -> str:
        return f"{self.key}.{name}" if self.key else name

    def error(self, name: str, message: str) -> ConfigError:
        return ConfigError(self.file, self.path(name), message)

    def get(self, name: str, types: tuple[type, ...], default: Any = _MISSING, expected: str = "") -> Any:
        self.used.add(name)
        if name not in self.data:
            if default is _MISSING:
                raise self.error(name, f"missing; expected {expected or _names(types)}")
            return default
        value = self.data[name]
        if isinstance(value, bool) and bool not in types or not isinstance(value, types):
            raise self.error(name, f"expected {expected or _names(types)}, got {_kind(value)} {value!r}")
        return value

    def table(self, name: str, required: bool = True) -> "_Table":
        self.used.add(name)
        if name not in self.data:
            if required:
                raise self.error(name, "missing table")
            return _Table({}, self.path(name), self.file)
        return _Table(self.data[name], self.path(name), self.file)

    def finish(self) -> None:
        unknown = [k for k in self.data if k not in self.used]
        if unknown:
            raise self.error(unknown[0], f"unknown key; expected one of: {', '.join(sorted(self.used))}")


def _kind(v: Any) -> str:
    return {dict: "a table", list: "an array", str: "a string", bool: "a boolean", int: "an integer",
            float: "a number"}.get(type(v), type(v).__name__)


def _names(types: tuple[type, ...]) -> str:
    return " or ".join(_kind(t()) if t is not dict else "a table" for t in types)
