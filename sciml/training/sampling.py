"""Deterministic, resumable, sharded data order; seeding; RNG states that survive `weights_only` loading."""
from __future__ import annotations

import random
from typing import Any, Iterator

import numpy as np
import torch
from torch.utils.data import Sampler

_MASK63 = (1 << 63) - 1


def epoch_seed(seed: int, epoch: int) -> int:
    """The generator seed of the permutation of epoch `epoch` (a function of (seed, epoch) only)."""
    return (seed * 1_000_003 + epoch * 7_919 + 0x5EED) & _MASK63


class StreamSampler(Sampler[int]):
    """An endless stream of dataset indices, the concatenation of one permutation per epoch, cut into
    global batches of `global_batch`; process `rank` of `world_size` yields its contiguous share
    (global_batch / world_size indices) of each global batch.

    Position p of the stream is index `perm(p // n)[p % n]` with `perm(e)` depending only on
    (seed, e), so the samples of each step do not depend on the number of processes, and a run
    resumed at stream position `start` (= samples consumed, which the trainer checkpoints) sees
    exactly the batches the uninterrupted run would have seen. `shuffle=False`: perm(e) = 0..n-1.
    """

    def __init__(self, size: int, global_batch: int, *, seed: int = 0, rank: int = 0, world_size: int = 1,
                 start: int = 0, shuffle: bool = True):
        if size < 1:
            raise ValueError("the dataset is empty")
        if global_batch % world_size:
            raise ValueError(f"global batch {global_batch} is not divisible by the world size {world_size}")
        self.size, self.global_batch, self.seed = size, global_batch, seed
        self.rank, self.world_size, self.start, self.shuffle = rank, world_size, start, shuffle
        self._cache: dict[int, torch.Tensor] = {}

    @property
    def local_batch(self) -> int:
        return self.global_batch // self.world_size

    def permutation(self, epoch: int) -> torch.Tensor:
        if epoch not in self._cache:
            if len(self._cache) > 2:
                self._cache.pop(min(self._cache))
            if self.shuffle:
                g = torch.Generator().manual_seed(epoch_seed(self.seed, epoch))
                self._cache[epoch] = torch.randperm(self.size, generator=g)
            else:
                self._cache[epoch] = torch.arange(self.size)
        return self._cache[epoch]

    def index_at(self, position: int) -> int:
        epoch, offset = divmod(position, self.size)
        return int(self.permutation(epoch)[offset])

    def __iter__(self) -> Iterator[int]:
        position = self.start
        b = self.local_batch
        while True:
            first = position + self.rank * b
            for p in range(first, first + b):
                yield self.index_at(p)
            position += self.global_batch


def seed_everything(seed: int) -> None:
    """Seed python's `random`, numpy's global generator and torch (CPU and every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def seed_worker(worker_id: int) -> None:
    """DataLoader worker_init_fn: seed numpy and python from the worker's torch seed (set by the
    loader from its generator, so it follows the run's seed and position)."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def rng_state() -> dict[str, Any]:
    """The RNG states of torch (CPU, CUDA), numpy and python as tensors, lists and numbers."""
    version, mt, gauss_next = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": [s for s in torch.cuda.get_rng_state_all()] if torch.cuda.is_available() and torch.cuda.is_initialized() else [],
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": {"version": int(version), "state": list(mt), "gauss_next": gauss_next},
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what `rng_state` captured."""
    torch.set_rng_state(state["torch"].cpu())
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]][: torch.cuda.device_count()])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss_next"]))
