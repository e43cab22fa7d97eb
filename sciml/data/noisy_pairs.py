"""`NoisyPairs`: the base of the denoiser training sets whose item i depends only on (seed, split, i)."""
from __future__ import annotations

import torch
from torch.utils.data import Dataset

from .registry import SPLITS


class NoisyPairs(Dataset):
    """`size` items `{"clean", "noisy", "sigma"}` with sigma uniform in [sigma_min, sigma_max].

    A subclass implements `__getitem__` with `generator(i)` (a torch generator seeded from (seed, split,
    i), which also checks the index) and `sigma(g)`.
    """

    what = "items"

    def __init__(self, size: int, sigma_min: float, sigma_max: float, seed: int, split: str):
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            raise ValueError(f"size must be a positive integer, got {size!r}")
        if not 0 <= sigma_min <= sigma_max:
            raise ValueError(f"expected 0 <= sigma_min <= sigma_max, got {sigma_min}, {sigma_max}")
        self.size = size
        self.sigma_min, self.sigma_max = float(sigma_min), float(sigma_max)
        self.seed = int(seed) * len(SPLITS) + SPLITS.index(split)

    def __len__(self) -> int:
        return self.size

    def generator(self, i: int) -> torch.Generator:
        if not 0 <= i < self.size:
            raise IndexError(f"index {i} out of range for {self.size} {self.what}")
        return torch.Generator().manual_seed(self.seed * 1_000_003 + int(i))

    def sigma(self, g: torch.Generator) -> float:
        return self.sigma_min + (self.sigma_max - self.sigma_min) * float(torch.rand((), generator=g))
