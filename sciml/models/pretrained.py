"""`load_pretrained(path)`: any model directory sciml can read, whatever wrote it.

- a diffusers pipeline (`model_index.json`, `unet/`, `scheduler/`) or a bare diffusers `UNet2DModel`
  directory (`config.json` with `_class_name = "UNet2DModel"` + `diffusion_pytorch_model.safetensors`)
  -> `UNet2DPrior.from_pretrained`;
- a sciml model directory (`model.safetensors` + `config.json` naming a registered model) -> `load`.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from torch import nn

from .registry import load

__all__ = ["load_pretrained"]


def _is_diffusers(path: Path) -> bool:
    if (path / "model_index.json").is_file() or (path / "unet").is_dir():
        return True
    config = path / "config.json"
    if (path / "diffusion_pytorch_model.safetensors").is_file():
        return True
    if config.is_file():
        try:
            return "_class_name" in json.loads(config.read_text())
        except (OSError, ValueError):
            return False
    return False


def load_pretrained(path: str | Path, device: Any = "cpu") -> nn.Module:
    """The model stored in directory `path` (diffusers or sciml layout), in eval mode on `device`."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"load_pretrained: no such model directory {str(path)!r}")
    if _is_diffusers(path):
        from .unet import UNet2DPrior

        return UNet2DPrior.from_pretrained(path, device=device)
    return load(path, device=device)
