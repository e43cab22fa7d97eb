"""Run a recipe into an HDF5 file: resumable, committed in blocks, atomic.

Protocol, for output FILE:

- samples are written to `FILE.partial`, one block at a time; after each block the attribute
  `num_done` is updated and the file flushed, so an interrupted run (Ctrl-C, a failed sample, a
  killed job) keeps every committed block;
- a rerun with the same recipe reopens `FILE.partial` and continues at `num_done` (sample i depends
  only on (seed, i), so the result equals an uninterrupted run); a partial file from a different
  recipe is an error, never silently mixed;
- when all samples are in, `complete` is set, the file is flushed and fsynced and renamed to FILE
  (`os.replace`, atomic): a reader sees either no FILE or a complete one;
- a complete FILE with the same recipe is left alone; asking for more samples (`--num`) copies it
  to `FILE.partial` and appends (FILE stays readable until the larger one replaces it); `force`
  starts over (the old FILE still stays until the new one is complete).
"""
from __future__ import annotations

import datetime
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..._toml import ConfigError
from .base import FieldSpec, GenerationError
from .recipe import Recipe

FORMAT = "sciml-generated-dataset/1"


@dataclass
class GenerateResult:
    """What a run did: `status` is "generated" (this run wrote samples) or "complete" (nothing to do)."""

    path: Path
    num: int
    new: int
    status: str
    seconds: float

    def summary(self) -> str:
        if self.status == "complete":
            return f"{self.path}: complete ({self.num} samples), nothing to do; --force regenerates it"
        rate = f", {self.seconds / self.new:.3g} s/sample" if self.new else ""
        return f"{self.path}: {self.num} samples ({self.new} new) in {self.seconds:.1f} s{rate}"


def partial_path(out: str | Path) -> Path:
    out = Path(out)
    return out.with_name(out.name + ".partial")


def _state(path: Path) -> dict[str, Any]:
    """The bookkeeping attributes of a generated file (KeyError/OSError if it is not one)."""
    import h5py

    with h5py.File(path, "r") as f:
        if f.attrs.get("format") != FORMAT:
            raise KeyError("format")
        return {"identity": str(f.attrs["identity"]), "num_done": int(f.attrs["num_done"]),
                "complete": bool(f.attrs["complete"])}


def _first_difference(old: dict, new: dict, prefix: str = "") -> tuple[str, Any, Any]:
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            found = _first_difference(a, b, f"{prefix}{key}.")
            if found[0]:
                return found
        elif a != b:
            name = f"{prefix}{key}".replace("params.", "generator.", 1)
            return name, a, b
    return "", None, None


def _mismatch(recipe: Recipe, path: Path, identity: str, what: str) -> ConfigError:
    key, old, new = _first_difference(json.loads(identity), recipe.identity())
    return ConfigError(recipe.file, key or "", f"{path} {what} {key} = {old!r}, the recipe gives {new!r}; "
                                               f"use --force to regenerate it (or another --out)")


def _create(path: Path, recipe: Recipe) -> None:
    import h5py

    import sciml

    gen = recipe.generator
    with h5py.File(path, "w-") as f:
        f.attrs["format"] = FORMAT
        f.attrs["generator"] = gen.name
        f.attrs["generator_version"] = gen.version
        f.attrs["sciml_version"] = sciml.__version__
        f.attrs["identity"] = json.dumps(recipe.identity(), sort_keys=True)
        f.attrs["recipe"] = recipe.to_json()
        f.attrs["recipe_file"] = str(recipe.file)
        f.attrs["recipe_toml"] = recipe.text
        f.attrs["seed"] = recipe.seed
        f.attrs["num_samples"] = recipe.num
        f.attrs["num_done"] = 0
        f.attrs["complete"] = False
        f.attrs["created"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        for key, value in gen.attrs().items():
            f.attrs[key] = value
        compression = None if recipe.compression == "none" else recipe.compression
        for name, spec in gen.fields().items():
            dtype = spec.numpy_dtype(recipe.dtype)
            if spec.vlen:
                dtype = h5py.vlen_dtype(dtype)
            chunks = (1, *spec.shape) if spec.shape or spec.vlen else (256,)
            ds = f.create_dataset(name, shape=(0, *spec.shape), maxshape=(None, *spec.shape), dtype=dtype,
                                  chunks=chunks, compression=compression, shuffle=bool(compression) and not spec.vlen)
            for key, value in spec.attrs.items():
                ds.attrs[key] = value


def _check_block(data: dict[str, Any], fields: dict[str, FieldSpec], count: int, name: str) -> None:
    for key, spec in fields.items():
        if key not in data:
            raise RuntimeError(f"generator {name!r} returned no field {key!r}")
        value = data[key]
        if spec.vlen:
            if len(value) != count:
                raise RuntimeError(f"generator {name!r}: field {key!r} has {len(value)} samples, expected {count}")
        elif tuple(np.shape(value)) != (count, *spec.shape):
            raise RuntimeError(f"generator {name!r}: field {key!r} has shape {np.shape(value)}, expected {(count, *spec.shape)}")
        if spec.dtype == "float" and not spec.vlen and not np.isfinite(value).all():
            raise GenerationError(f"{name}: non-finite values in field {key!r}")


def _fsync(path: Path) -> None:
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())


def generate(recipe: Recipe, *, force: bool = False, progress: bool | None = True,
             echo: Callable[[str], None] | None = None) -> GenerateResult:
    """Generate `recipe.num` samples into `recipe.out` (see the module docstring for the protocol).

    Args:
        recipe: a validated `Recipe` (`load_recipe`).
        force: regenerate from sample 0 even if a complete file or a partial one exists.
        progress: show a tqdm bar on stderr (None: only on a terminal).
        echo: where to report notes (resuming, extending); default stderr.

    Raises:
        ConfigError: the output exists and was made from another recipe, or holds more samples than asked.
        GenerationError: a sample could not be generated (the committed blocks stay in FILE.partial).
    """
    import h5py
    from tqdm import tqdm

    echo = echo or (lambda msg: print(msg, file=sys.stderr))
    start = time.perf_counter()
    out, partial = Path(recipe.out), partial_path(recipe.out)
    identity = json.dumps(recipe.identity(), sort_keys=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    extended = False
    if force:
        partial.unlink(missing_ok=True)
    elif out.exists():
        try:
            state = _state(out)
        except (OSError, KeyError):
            raise ConfigError(recipe.file, recipe.key("out"), f"{out} exists and is not a complete file of `sciml data generate`; "
                                                  "remove it or use --force") from None
        if state["identity"] != identity:
            raise _mismatch(recipe, out, state["identity"], "was generated with")
        if state["num_done"] == recipe.num:
            return GenerateResult(out, recipe.num, 0, "complete", time.perf_counter() - start)
        if state["num_done"] > recipe.num:
            raise ConfigError(recipe.file, recipe.key("num"), f"{out} holds {state['num_done']} samples, more than the {recipe.num} asked "
                                                  "for; use --force to regenerate it with fewer")
        have = _partial_state(partial)
        if have is None or have["identity"] != identity or have["num_done"] < state["num_done"]:
            tmp = partial.with_name(partial.name + ".copy")
            shutil.copyfile(out, tmp)
            os.replace(tmp, partial)
            echo(f"extending {out} from {state['num_done']} to {recipe.num} samples (via {partial})")
            extended = True

    have = _partial_state(partial)
    if have is not None and have["identity"] != identity:
        raise _mismatch(recipe, partial, have["identity"], "(an unfinished run) was started with")
    if have is None:
        if partial.exists():
            echo(f"warning: {partial} is unreadable (killed while writing?); starting over")
            partial.unlink()
        _create(partial, recipe)
    elif have["num_done"] and not extended:
        echo(f"resuming {partial} at sample {min(have['num_done'], recipe.num)} of {recipe.num}")

    gen, num = recipe.generator, recipe.num
    fields = gen.fields()
    new = 0
    with h5py.File(partial, "r+") as f:
        done = min(int(f.attrs["num_done"]), num)
        f.attrs["complete"] = False
        f.attrs["num_samples"] = num
        f.attrs["recipe"] = recipe.to_json()
        disable = None if progress is None else not progress
        with tqdm(total=num, initial=done, unit="sample", desc=out.name, file=sys.stderr, disable=disable,
                  mininterval=0.5, dynamic_ncols=True) as bar:
            while done < num:
                count = min(recipe.block, num - done)
                data = gen.generate(range(done, done + count), recipe.seed)
                _check_block(data, fields, count, gen.name)
                for name, spec in fields.items():
                    ds = f[name]
                    ds.resize(done + count, axis=0)
                    if spec.vlen:
                        for k, arr in enumerate(data[name]):
                            ds[done + k] = np.asarray(arr, dtype=ds.dtype.metadata["vlen"])
                    else:
                        ds[done:done + count] = np.asarray(data[name], dtype=ds.dtype)
                f.attrs["num_done"] = done + count
                f.flush()
                done += count
                new += count
                bar.update(count)
        for name in fields:
            f[name].resize(num, axis=0)
        f.attrs["num_done"] = num
        f.attrs["complete"] = True
        f.attrs["finished"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    _fsync(partial)
    os.replace(partial, out)
    return GenerateResult(out, num, new, "generated", time.perf_counter() - start)


def _partial_state(partial: Path) -> dict[str, Any] | None:
    """The state of FILE.partial, or None if it is absent or unreadable. A file locked by another
    writer is an error (two runs on one output)."""
    if not partial.exists():
        return None
    try:
        return _state(partial)
    except KeyError:
        return None
    except OSError as err:
        if "lock" in str(err).lower():
            raise GenerationError(f"{partial} is open in another process (another run on the same output?)") from None
        return None
