"""The dot-product (adjointness) test, public API for every operator."""
from __future__ import annotations

import torch

from .base import LinearOperator


def _random(shape: tuple, dtype: torch.dtype, device, generator: torch.Generator | None) -> torch.Tensor:
    if dtype.is_complex:
        re = torch.randn(shape, dtype=dtype.to_real(), device=device, generator=generator)
        im = torch.randn(shape, dtype=dtype.to_real(), device=device, generator=generator)
        return torch.complex(re, im)
    return torch.randn(shape, dtype=dtype, device=device, generator=generator)


def check_adjoint(A: LinearOperator, n_trials: int = 3, generator: torch.Generator | None = None,
                  dtype: torch.dtype | None = None) -> float:
    r"""Relative mismatch of the dot-product test, the worst over `n_trials` random pairs:

    .. math:: \frac{|\langle A x, y\rangle - \langle x, A^H y\rangle|}{\|A x\|\,\|y\|}

    Round-off level (~1e-15 in float64, ~1e-7 in float32) means `adjoint` is the exact adjoint of
    `apply`. `dtype` defaults to the operator's (float64 for dtype-agnostic operators); pass a
    `generator` for reproducible draws.
    """
    if n_trials < 1:
        raise ValueError(f"n_trials must be >= 1, got {n_trials}")
    dtype = dtype or A.dtype or torch.float64
    worst = 0.0
    for _ in range(n_trials):
        x = _random(A.in_shape, dtype, A.device, generator)
        y = _random(A.out_shape, dtype, A.device, generator)
        Ax, AHy = A.apply(x), A.adjoint(y)
        # A real-typed operator scaled by a complex number returns complex values: compare in a common dtype.
        common = torch.promote_types(torch.promote_types(Ax.dtype, y.dtype), torch.promote_types(x.dtype, AHy.dtype))
        lhs = torch.vdot(Ax.flatten().to(common), y.flatten().to(common))
        rhs = torch.vdot(x.flatten().to(common), AHy.flatten().to(common))
        scale = torch.linalg.vector_norm(Ax) * torch.linalg.vector_norm(y)
        worst = max(worst, float(abs(lhs - rhs) / scale) if scale > 0 else float(abs(lhs - rhs)))
    return worst
