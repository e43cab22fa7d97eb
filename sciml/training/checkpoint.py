"""Training checkpoints: RUN_DIR/checkpoint/{model.safetensors, config.json, trainer_state.pt}.

A checkpoint is written into a temporary folder beside it, flushed to disk, then swapped in by two
renames (old -> .checkpoint.old, new -> checkpoint); `find_checkpoint` falls back to the old one if a
crash hit between the renames. Readers never see a half-written checkpoint. trainer_state.pt holds
only tensors, numbers, strings, lists and dicts, and is read with `torch.load(weights_only=True)`.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..models import registry

CHECKPOINT = "checkpoint"
STATE = "trainer_state.pt"


def write_checkpoint(directory: str | os.PathLike, model: nn.Module, state: dict[str, Any]) -> Path:
    """Atomically replace `directory` with model weights, config.json and `state`."""
    directory = Path(directory)
    parent = directory.parent
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", suffix=".tmp", dir=parent))
    old = parent / f".{directory.name}.old"
    moved = False
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)
        registry.write_weights(model, tmp / registry.WEIGHTS)
        (tmp / registry.CONFIG).write_text(json.dumps(_model_config(model), indent=2) + "\n")
        torch.save(state, tmp / STATE)
        for name in (registry.WEIGHTS, registry.CONFIG, STATE):
            _fsync(tmp / name)
        _fsync(tmp)
        if old.exists():
            shutil.rmtree(old)
        if directory.exists():
            os.rename(directory, old)
            moved = True
        os.rename(tmp, directory)
        moved = False
        _fsync(parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if moved and not directory.exists():
            os.rename(old, directory)
        raise
    shutil.rmtree(old, ignore_errors=True)
    return directory


def _model_config(model: nn.Module) -> dict[str, Any]:
    try:
        return registry.model_config(model)
    except TypeError:  # an in-memory model outside the registry: weights only, rebuilt by its owner
        inner = registry.unwrap(model)
        return {"class": None, "hparams": {}, "module": f"{type(inner).__module__}.{type(inner).__qualname__}"}


def _fsync(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # e.g. folders on some platforms
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def find_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    """RUN_DIR/checkpoint if complete, else the previous one left by an interrupted swap, else None."""
    run_dir = Path(run_dir)
    for candidate in (run_dir / CHECKPOINT, run_dir / f".{CHECKPOINT}.old"):
        if all((candidate / n).is_file() for n in (registry.WEIGHTS, registry.CONFIG, STATE)):
            return candidate
    return None


def remove_stale(run_dir: str | os.PathLike) -> None:
    """Delete temporary checkpoint folders left by a process killed while writing one."""
    for tmp in Path(run_dir).glob(f".{CHECKPOINT}.*.tmp"):
        shutil.rmtree(tmp, ignore_errors=True)


def read_state(directory: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """trainer_state.pt of a checkpoint, loaded with weights_only=True."""
    return torch.load(Path(directory) / STATE, map_location=map_location, weights_only=True)
