"""A seeded synthetic regression dataset: smoke tests and examples that need no files."""
from __future__ import annotations

import inspect

from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from .registry import SPLITS, register_dataset


class RandomRegression(Dataset):
    """Pairs (x, y = W x + noise) with a fixed random linear map W, `x` of shape `(in_features,)`.

    Deterministic: item i of a split is the same on every call, process and rank.
    """

    def __init__(self, size: int = 256, in_features: int = 8, out_features: int = 4, noise: float = 0.01,
                 seed: int = 0, split: str = "train"):
        if size < 1 or in_features < 1 or out_features < 1:
            raise ValueError("size, in_features and out_features must be positive")
        g = torch.Generator().manual_seed(seed)
        self.W = torch.randn(out_features, in_features, generator=g) / in_features**0.5
        g.manual_seed(seed + 1 + SPLITS.index(split))
        self.x = torch.randn(size, in_features, generator=g)
        self.y = self.x @ self.W.T + noise * torch.randn(size, out_features, generator=g)

    def __len__(self) -> int:
        return self.x.shape[0]

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"x": self.x[i], "y": self.y[i]}


def laplace_denoising_batch(batch: int, n: int = 1, b: float = 1.0, sigma: float = 1.0,
                            generator: torch.Generator | None = None,
                            dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    """The paper's toy: x ~ Laplace(0, b) iid in R^n, y = x + sigma N(0, I). Returns {"x", "y"} of shape (batch, n).

    The MAP denoiser is the soft-threshold with threshold sigma^2/b, R(x) = (sigma^2/b)|x|_1.
    """
    u = torch.rand(batch, n, generator=generator, dtype=dtype) - 0.5
    x = -b * torch.sign(u) * torch.log1p(-2 * u.abs())
    y = x + sigma * torch.randn(batch, n, generator=generator, dtype=dtype)
    return {"x": x, "y": y}


class LaplaceDenoising(Dataset):
    """`size` pairs {"x": clean, "y": noisy} of the LPN paper's 1-D toy (see `laplace_denoising_batch`),
    drawn once from `seed` (split-dependent), so item i is the same on every call, process and rank."""

    def __init__(self, size: int = 10000, n: int = 1, b: float = 1.0, sigma: float = 1.0, seed: int = 0,
                 split: str = "train"):
        if size < 1 or n < 1 or b <= 0 or sigma < 0:
            raise ValueError("laplace-denoising: size and n must be positive, b > 0, sigma >= 0")
        g = torch.Generator().manual_seed(seed + 1 + SPLITS.index(split))
        self.data = laplace_denoising_batch(size, n, b, sigma, generator=g)

    def __len__(self) -> int:
        return self.data["x"].shape[0]

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {k: v[i] for k, v in self.data.items()}



def _register(kind: str, cls: type) -> None:
    """Register `cls` as dataset `kind`; its constructor's keyword arguments (but `split`) are the options."""
    allowed = sorted(p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "split"))

    def build(options: dict[str, Any], split: str, base_dir: Path) -> Dataset:
        unknown = set(options) - set(allowed)
        if unknown:
            raise ValueError(f"{kind}: unknown option(s) {sorted(unknown)}; expected {allowed}")
        return cls(split=split, **options)

    register_dataset(kind)(build)


_register("random-regression", RandomRegression)
_register("laplace-denoising", LaplaceDenoising)
