"""What every data generator shares: validated options, per-sample random streams, field layouts.

A generator is a class with a `name`, a `version` (bumped whenever the samples it makes for the same
options and seed change) and `options` (the keys of the recipe's `[generator]` table). Its
`generate(indices, seed)` returns one block of samples as numpy arrays, sample `i` depending only
on `(seed, i)` and the options, never on which other samples share its block.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Sequence

import numpy as np
import torch

from ..._toml import ConfigError, _Table

_REQUIRED = object()
GENERATORS: dict[str, type["Generator"]] = {}


class GenerationError(RuntimeError):
    """A sample could not be generated (e.g. a solver did not converge); the partial file is kept."""


@dataclass(frozen=True)
class Option:
    """One key of a generator's `[generator]` table: its default, accepted TOML types and a check.

    `check(value)` returns None when the value is fine, else what was expected (the error message).
    Integers are accepted where numbers are, and stored as floats.
    """

    name: str
    default: Any
    types: tuple[type, ...]
    expected: str
    check: Callable[[Any], str | None] | None = None
    doc: str = ""


def number(name: str, default: Any, doc: str = "", *, positive: bool = False, min: float | None = None,
           max: float | None = None) -> Option:
    def check(v: float) -> str | None:
        if not np.isfinite(v) or (positive and v <= 0) or (min is not None and v < min) or (max is not None and v > max):
            return expected
        return None

    bounds = " > 0" if positive else ""
    if min is not None:
        bounds += f" >= {min:g}"
    if max is not None:
        bounds += f"{' and' if bounds else ''} <= {max:g}"
    expected = f"a finite number{bounds}"
    return Option(name, default, (int, float), expected, check, doc)


def integer(name: str, default: Any, doc: str = "", *, min: int = 1, max: int | None = None) -> Option:
    expected = f"an integer >= {min}" + (f" and <= {max}" if max is not None else "")
    return Option(name, default, (int,), expected,
                  lambda v: None if v >= min and (max is None or v <= max) else expected, doc)


def choice(name: str, default: Any, values: Sequence[str], doc: str = "") -> Option:
    expected = " or ".join(f'"{v}"' for v in values)
    return Option(name, default, (str,), expected, lambda v: None if v in values else expected, doc)


def flag(name: str, default: bool, doc: str = "") -> Option:
    return Option(name, default, (bool,), "true or false", None, doc)


@dataclass(frozen=True)
class FieldSpec:
    """Layout of one HDF5 dataset: per-sample `shape`; `dtype` "float" means the recipe's storage
    precision, otherwise a numpy dtype; `vlen` stores one variable-length 1-D array per sample."""

    shape: tuple[int, ...]
    dtype: str = "float"
    vlen: bool = False
    attrs: dict[str, Any] = field(default_factory=dict)

    def numpy_dtype(self, float_dtype: str) -> np.dtype:
        return np.dtype(float_dtype if self.dtype == "float" else self.dtype)


def sample_seed(seed: int, index: int) -> int:
    """A 63-bit seed for sample `index` of a dataset with `seed`: independent streams per sample
    (numpy SeedSequence mixing), the same on every machine, whatever the block size."""
    state = np.random.SeedSequence(entropy=seed, spawn_key=(index,)).generate_state(2, np.uint32)
    return (int(state[0]) << 31 ^ int(state[1])) & (2**63 - 1)


def sample_generator(seed: int, index: int) -> torch.Generator:
    """A CPU `torch.Generator` for sample `index` (draw on the CPU, then move: device-independent samples)."""
    return torch.Generator().manual_seed(sample_seed(seed, index))


class Generator:
    """Base class: subclasses set `name`, `version`, `description`, `options`, implement `fields()`
    and `generate()`, and may override `validate()` for checks across options.

    `Generator(**params)` fills defaults and validates (raising `ConfigError`); recipes go through
    `from_table`, which names the recipe file and key in every error.
    """

    name: ClassVar[str] = ""
    version: ClassVar[int] = 1
    description: ClassVar[str] = ""
    options: ClassVar[tuple[Option, ...]] = ()
    default_block: ClassVar[int] = 8

    def __init__(self, **params: Any):
        table = _Table(dict(params), "generator", Path("<arguments>"))
        self.params = self._read(table)
        self.device = torch.device("cpu")

    @classmethod
    def from_table(cls, table: _Table) -> "Generator":
        obj = cls.__new__(cls)
        obj.params = cls._read(table)
        obj.device = torch.device("cpu")
        return obj

    @classmethod
    def _read(cls, t: _Table) -> dict[str, Any]:
        params = {}
        for opt in cls.options:
            value = t.get(opt.name, opt.types, opt.default, expected=opt.expected)
            if value is _REQUIRED:
                raise t.error(opt.name, f"missing; expected {opt.expected}")
            if isinstance(value, int) and not isinstance(value, bool) and float in opt.types:
                value = float(value)
            if opt.check is not None and value is not None:
                problem = opt.check(value)
                if problem:
                    raise t.error(opt.name, f"expected {problem}, got {value!r}")
            params[opt.name] = value
        t.finish()
        try:
            cls.validate(params)
        except _OptionError as err:
            raise t.error(err.key, err.message) from None
        return params

    @classmethod
    def validate(cls, params: dict[str, Any]) -> None:
        """Checks across options; raise `option_error(key, message)`."""

    def __getattr__(self, name: str) -> Any:
        params = self.__dict__.get("params")
        if params is not None and name in params:
            return params[name]
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    def to(self, device: Any) -> "Generator":
        self.device = torch.device(device)
        return self

    def fields(self) -> dict[str, FieldSpec]:
        """The datasets of the output file, by name."""
        raise NotImplementedError

    def attrs(self) -> dict[str, Any]:
        """Extra file attributes (e.g. grid coordinates, snapshot times)."""
        return {}

    def generate(self, indices: Sequence[int], seed: int) -> dict[str, Any]:
        """Samples `indices`: for each field an array `(len(indices), *shape)` (a list of 1-D arrays for vlen fields)."""
        raise NotImplementedError


class _OptionError(Exception):
    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key, self.message = key, message


def option_error(key: str, message: str) -> _OptionError:
    """The error `Generator.validate` raises: blamed on `generator.<key>` in the recipe."""
    return _OptionError(key, message)


def register_generator(cls: type[Generator]) -> type[Generator]:
    """Class decorator: make a generator available to recipes under `cls.name`."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    if cls.name in GENERATORS and GENERATORS[cls.name] is not cls:
        raise ValueError(f"generator {cls.name!r} is already registered")
    GENERATORS[cls.name] = cls
    return cls


__all__ = ["ConfigError", "FieldSpec", "GENERATORS", "GenerationError", "Generator", "Option", "choice", "flag",
           "integer", "number", "option_error", "register_generator", "sample_generator", "sample_seed"]
