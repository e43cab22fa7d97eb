"""Direct fast solvers: exact FFT/DST/DCT inverses of constant-coefficient stencils."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from ..linalg import KrylovResult
from ..operators import DiffusionOperator, laplacian_inverse
from ..problems import LinearProblem, PDEProblem
from ..solution import Solution
from ..status import Status
from .base import Solver, register
from .krylov import _solution, linear_system


def _constant(c: Any) -> float | complex | None:
    """The value of a constant coefficient, real or complex (None if it varies)."""
    if c is None:
        return 0.0
    if isinstance(c, torch.Tensor):
        flat = c.reshape(-1)
        return flat[0].item() if bool((flat == flat[0]).all()) else None
    return c


@register
@dataclass
class FFTPoisson(Solver):
    """Exact fast solve of -Δu + c u = f (Poisson, Helmholtz; constant c) by DST/DCT/FFT, O(N log N)."""

    name: ClassVar[str] = "fft-poisson"
    accepts: ClassVar[tuple[type, ...]] = (PDEProblem, LinearProblem)

    def solve(self, problem: Any) -> Solution:
        system = linear_system(problem)
        A = system.A
        shift = _constant(A.c) if isinstance(A, DiffusionOperator) else None
        if not isinstance(A, DiffusionOperator) or A.a is not None or shift is None:
            raise TypeError("fft-poisson needs a constant-coefficient operator -Δ + c (a = 1, constant c); "
                            "use cg/pcg with M=\"fft\" for variable coefficients")
        inverse = laplacian_inverse(A.in_shape, A.spacing, A.bc, shift, device=A.device)
        x = inverse.apply(system.b)
        batch = system.b.shape[: system.b.ndim - len(A.in_shape)]
        dims = tuple(range(-len(A.in_shape), 0))
        b_norm = torch.linalg.vector_norm(system.b, dim=dims)
        r_norm = torch.linalg.vector_norm(system.b - A.apply(x), dim=dims)
        # A direct solve is exact to round-off; a larger residual means b is not in the range of a
        # singular operator (all-Neumann/periodic without reaction: b needs zero mean).
        accurate = r_norm <= 1e4 * torch.finfo(b_norm.dtype).eps * b_norm
        status = torch.where(accurate, Status.SUCCESS, Status.BREAKDOWN)
        status = torch.where(torch.isfinite(r_norm), status, Status.NONFINITE).to(torch.int64)
        result = KrylovResult(x, status, torch.ones(batch, dtype=torch.int64, device=status.device), torch.stack([b_norm, r_norm]), {})
        reason = result.worst.message
        if result.worst == Status.BREAKDOWN:
            reason = "the residual is far above round-off: b is not in the range of the (singular) operator"
        result.info.update(reason=reason, residual_norm=r_norm, b_norm=b_norm)
        return _solution(result, system)
