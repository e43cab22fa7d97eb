"""`InverseProblem`: recover x from y = A x + noise."""
from __future__ import annotations

from typing import Any

import torch

from ..linalg._common import split_batch
from ..operators import LinearOperator, aslinearoperator


class InverseProblem:
    """Measurements `y` `(*batch, *forward.out_shape)` of an unknown through a forward operator.

    Args:
        forward: the forward model, a `LinearOperator` (or anything `aslinearoperator` accepts).
        y: the measurements.
        noise_std: standard deviation of additive Gaussian noise, if known (used by regularised
            and sampling solvers; `None` means unknown).
    """

    kind = "inverse"

    def __init__(self, forward: Any, y: torch.Tensor, noise_std: float | None = None):
        if not isinstance(y, torch.Tensor):
            raise TypeError(f"y must be a torch.Tensor, got {type(y).__name__}")
        self.forward: LinearOperator = aslinearoperator(forward)
        split_batch(y, self.forward.out_shape, "y")
        if noise_std is not None and not (isinstance(noise_std, (int, float)) and noise_std >= 0):
            raise ValueError(f"noise_std must be a number >= 0 or None, got {noise_std!r}")
        self.y, self.noise_std = y, noise_std

    @property
    def batch_shape(self) -> tuple[int, ...]:
        return tuple(self.y.shape[: self.y.ndim - len(self.forward.out_shape)])

    def __repr__(self) -> str:
        return f"InverseProblem(forward={self.forward!r}, y: {tuple(self.y.shape)}, noise_std={self.noise_std})"
