r"""Image patches for denoiser training: clean patches cut from an image file, and noisy copies.

Sample i: a `patch` x `patch` window at a random position of the image (intensities in [0, 1]),
optionally one of the 8 flips/rotations (the DnCNN-style augmentation), and
:math:`y = x + \sigma\,n`, :math:`n \sim N(0, I)`, :math:`\sigma` uniform in [sigma_min, sigma_max] (blind
denoising; DnCNN-B: [0, 55/255]). Fields: `clean` and `noisy` `(N, C, patch, patch)` (C = 1 grey, 3
RGB) and `sigma` `(N,)`. Noise is not clipped.

`image` is a path relative to the recipe file, or `matplotlib:NAME` for a file of matplotlib's
bundled sample data (e.g. `matplotlib:grace_hopper.jpg`, a 512 x 600 photograph): sciml ships no
image of its own, and nothing is downloaded. The file's SHA-256 is part of the recipe's identity.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ..._toml import _Table
from .base import FieldSpec, Generator, Option, _REQUIRED, flag, integer, number, option_error, register_generator, sample_generator


def resolve_image(spec: str, base: Path) -> Path:
    """The file an `image` option names: `matplotlib:NAME` or a path relative to `base`."""
    if spec.startswith("matplotlib:"):
        import matplotlib

        return Path(matplotlib.get_data_path()) / "sample_data" / spec.split(":", 1)[1]
    path = Path(spec)
    return path if path.is_absolute() else base / path


def load_image(path: Path, grayscale: bool) -> np.ndarray:
    """`(C, H, W)` float32 in [0, 1]."""
    from PIL import Image

    with Image.open(path) as im:
        arr = np.asarray(im.convert("L" if grayscale else "RGB"), dtype=np.float32) / 255.0
    return arr[None] if arr.ndim == 2 else np.ascontiguousarray(arr.transpose(2, 0, 1))


@register_generator
class PatchGenerator(Generator):
    name = "image-patches"
    version = 1
    description = "clean/noisy patch pairs from an image file for denoiser training: clean, noisy, sigma"
    default_block = 256
    options = (
        Option("image", _REQUIRED, (str,), 'an image file (relative to the recipe) or "matplotlib:NAME"', None,
               "the source image"),
        integer("patch", 64, "patch size in pixels", min=2),
        flag("grayscale", True, "convert to one channel (else RGB)"),
        number("sigma_min", 0.0, "smallest noise standard deviation (intensities in [0, 1])", min=0.0),
        number("sigma_max", 55.0 / 255.0, "largest noise standard deviation", min=0.0),
        flag("augment", True, "random flips and 90-degree rotations"),
    )

    @classmethod
    def from_table(cls, table: _Table) -> "PatchGenerator":
        obj = super().from_table(table)
        obj._attach(resolve_image(obj.image, table.file.parent), table)
        return obj

    def __init__(self, **params: Any):
        super().__init__(**params)
        self._attach(resolve_image(self.image, Path.cwd()), _Table({}, "generator", Path("<arguments>")))

    def _attach(self, path: Path, table: _Table) -> None:
        if not path.is_file():
            raise table.error("image", f"no such file {str(path)!r}")
        try:
            self._image = load_image(path, self.grayscale)
        except Exception as err:  # noqa: BLE001 - an unreadable image is a recipe error
            raise table.error("image", f"cannot read {path.name} as an image: {err}") from None
        _, H, W = self._image.shape
        if min(H, W) < self.patch:
            raise table.error("patch", f"expected at most the image size {H} x {W}, got {self.patch}")
        self.params["image_sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
        self.path = path

    @classmethod
    def validate(cls, params: dict[str, Any]) -> None:
        if params["sigma_max"] < params["sigma_min"]:
            raise option_error("sigma_max", f"expected >= sigma_min = {params['sigma_min']}, got {params['sigma_max']}")

    def fields(self) -> dict[str, FieldSpec]:
        c, p = self._image.shape[0], self.patch
        return {
            "clean": FieldSpec((c, p, p), attrs={"description": "patch of the image, intensities in [0, 1]"}),
            "noisy": FieldSpec((c, p, p), attrs={"description": "clean + sigma * N(0, 1), not clipped"}),
            "sigma": FieldSpec((), attrs={"description": "noise standard deviation of each sample"}),
        }

    def attrs(self) -> dict[str, Any]:
        return {"image_file": self.path.name, "image_shape": np.array(self._image.shape)}

    def generate(self, indices: Sequence[int], seed: int) -> dict[str, Any]:
        img = torch.from_numpy(self._image)
        _, H, W = img.shape
        p = self.patch
        clean, noisy, sigmas = [], [], []
        for i in indices:
            g = sample_generator(seed, i)
            top = int(torch.randint(0, H - p + 1, (1,), generator=g))
            left = int(torch.randint(0, W - p + 1, (1,), generator=g))
            mode = int(torch.randint(0, 8, (1,), generator=g))
            sigma = self.sigma_min + (self.sigma_max - self.sigma_min) * float(torch.rand((), dtype=torch.float64, generator=g))
            x = img[:, top:top + p, left:left + p]
            if self.augment:
                x = torch.rot90(x, mode % 4, dims=(-2, -1))
                if mode >= 4:
                    x = x.flip(-1)
            noise = torch.randn(x.shape, dtype=torch.float32, generator=g)
            clean.append(x)
            noisy.append(x + sigma * noise)
            sigmas.append(sigma)
        return {"clean": torch.stack(clean).numpy(), "noisy": torch.stack(noisy).numpy(), "sigma": np.array(sigmas)}
