"""`load_pretrained(path)`: any model directory sciml can read, whatever wrote it.

- a diffusers pipeline (`model_index.json`, `unet/`, `scheduler/`) or a bare diffusers `UNet2DModel`
  directory (`config.json` with `_class_name = "UNet2DModel"` + `diffusion_pytorch_model.safetensors`)
  -> `UNet2DPrior.from_pretrained`;
- an official Poseidon/scOT checkpoint (`config.json` with `model_type = "swinv2"` + `model.safetensors`)
  -> `ScOT.from_pretrained`;
- a sciml model directory (`model.safetensors` + `config.json` naming a registered model) -> `load`.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from torch import nn

from .registry import load

__all__ = ["load_pretrained"]


def _config(path: Path) -> dict:
    try:
        config = json.loads((path / "config.json").read_text())
    except (OSError, ValueError):
        return {}
    return config if isinstance(config, dict) else {}


def _is_diffusers(path: Path) -> bool:
    if (path / "model_index.json").is_file() or (path / "unet").is_dir():
        return True
    return (path / "diffusion_pytorch_model.safetensors").is_file() or "_class_name" in _config(path)


def load_pretrained(path: str | Path, device: Any = "cpu") -> nn.Module:
    """The model stored in directory `path` (diffusers or sciml layout), in eval mode on `device`."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"load_pretrained: no such model directory {str(path)!r}")
    if _is_diffusers(path):
        from .unet import UNet2DPrior

        model = UNet2DPrior.from_pretrained(path, device=device)
    elif _config(path).get("model_type") == "swinv2":
        from .scot import ScOT

        model = ScOT.from_pretrained(path).to(device).eval()
    else:
        model = load(path, device=device)
    model.sciml_checkpoint = str(path)  # where files stored beside the weights (normalizer.json) are found
    return model
