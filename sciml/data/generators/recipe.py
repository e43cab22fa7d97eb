"""Dataset recipes: `datasets/NAME.toml` validated into a `Recipe` (every error names the file and key).

```toml
num = 1200                   # samples (required)
out = "data/darcy_r85.h5"    # output file, relative to the working directory (required)
seed = 0                     # sample i is drawn from (seed, i)
block = 16                   # samples per batch and per committed block (default: the generator's)
dtype = "float32"            # storage precision of floating-point fields ("float32" | "float64")
compression = "none"         # "none" | "gzip" | "lzf"
device = "cpu"               # "cpu" | "cuda"

[generator]
name = "darcy"               # `sciml data list` shows the generators and their options
resolution = 85
```
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any


from ..._toml import _MISSING, ConfigError, _Table, read_toml
from .base import GENERATORS, Generator

DTYPES = ("float32", "float64")
COMPRESSIONS = ("none", "gzip", "lzf")


@dataclass
class Recipe:
    """A validated recipe. `identity()` is what fixes the samples (a file made with another identity
    is never resumed or extended); `num`, `out`, `block` and `device` are not part of it."""

    file: Path
    generator: Generator
    num: int
    seed: int
    out: Path
    block: int
    dtype: str
    compression: str
    device: str
    text: str = ""
    overridden: tuple[str, ...] = ()  # keys given as command-line options (errors blame "--num", not "num")

    def key(self, name: str) -> str:
        return f"--{name}" if name in self.overridden else name

    def identity(self) -> dict[str, Any]:
        return {"generator": self.generator.name, "generator_version": self.generator.version,
                "params": self.generator.params, "seed": self.seed, "dtype": self.dtype,
                "compression": self.compression}

    def to_dict(self) -> dict[str, Any]:
        return {"generator": {"name": self.generator.name, **self.generator.params}, "num": self.num,
                "seed": self.seed, "out": str(self.out), "block": self.block, "dtype": self.dtype,
                "compression": self.compression, "device": self.device}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)


def _int(t: _Table, key: str, default: Any, minimum: int) -> int:
    value = t.get(key, (int,), default, expected=f"an integer >= {minimum}")
    if value is not default and value < minimum:
        raise t.error(key, f"expected an integer >= {minimum}, got {value!r}")
    return value


def load_recipe(path: str | Path, *, num: int | None = None, seed: int | None = None, out: str | Path | None = None,
                block: int | None = None, device: str | None = None) -> Recipe:
    """Read and validate a recipe; keyword arguments override its keys (the command-line options).

    Raises:
        ConfigError: naming the file and the key (`generator.resolution: expected an integer >= 5, got 'big'`).
    """
    file, data = read_toml(path)
    text = file.read_text()
    root = _Table(data, "", file)
    g = root.table("generator")
    name = g.get("name", (str,), expected="a generator name, one of " + ", ".join(f'"{n}"' for n in sorted(GENERATORS)))
    if name not in GENERATORS:
        raise g.error("name", f"unknown generator {name!r}; expected one of {', '.join(sorted(GENERATORS))}")
    params = _Table({k: v for k, v in g.data.items() if k != "name"}, "generator", file)
    generator = GENERATORS[name].from_table(params)

    n = _int(root, "num", _MISSING if num is None else 0, 1)
    n = num if num is not None else n
    s = root.get("seed", (int,), 0, expected="an integer >= 0")
    if s < 0:
        raise root.error("seed", f"expected an integer >= 0, got {s!r}")
    if seed is not None:
        if seed < 0:
            raise ConfigError(file, "--seed", f"expected an integer >= 0, got {seed!r}")
        s = seed
    out_value = root.get("out", (str,), _MISSING if out is None else "", expected='an output file path, e.g. "data/x.h5"')
    if out is None and (not out_value.strip() or out_value.endswith(("/", "\\"))):
        raise root.error("out", f"expected a file path, got {out_value!r}")
    out_path = Path(out) if out is not None else Path(out_value)
    b = _int(root, "block", generator.default_block, 1)
    b = block if block is not None else b
    dtype = root.get("dtype", (str,), "float32", expected=" or ".join(f'"{d}"' for d in DTYPES))
    if dtype not in DTYPES:
        raise root.error("dtype", f"expected {' or '.join(repr(d) for d in DTYPES)}, got {dtype!r}")
    compression = root.get("compression", (str,), "none", expected=" or ".join(f'"{c}"' for c in COMPRESSIONS))
    if compression not in COMPRESSIONS:
        raise root.error("compression", f"expected one of {', '.join(COMPRESSIONS)}, got {compression!r}")
    dev = root.get("device", (str,), "cpu", expected='"cpu" or "cuda"')
    key = "device"
    if device is not None:
        dev, key = device, "--device"
    if dev not in ("cpu", "cuda") and not dev.startswith("cuda:"):
        raise ConfigError(file, key, f'expected "cpu" or "cuda", got {dev!r}')
    root.finish()
    if dev != "cpu":
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(file, key, f"{dev} requested but no CUDA device is available")
    generator.to(dev)
    given = {"num": num, "seed": seed, "out": out, "block": block, "device": device}
    overridden = tuple(k for k, v in given.items() if v is not None)
    return Recipe(file, generator, n, s, out_path, b, dtype, compression, dev, text, overridden)

