"""`KroneckerOperator`: A_1 ⊗ ... ⊗ A_d acting on `(*batch, n_1, ..., n_d)` tensors, never formed."""
from __future__ import annotations

from typing import Sequence

import torch

from ..linalg.kron import _check_factors, kron_matvec
from .base import LinearOperator


class KroneckerOperator(LinearOperator):
    """The Kronecker product of matrix factors, applied axis by axis in O(N Σ nᵢ).

    Tags are declared by the caller (e.g. `is_self_adjoint=True` for Hermitian factors).
    """

    def __init__(self, factors: Sequence[torch.Tensor], *, is_self_adjoint: bool = False,
                 is_positive_definite: bool = False):
        self.factors = _check_factors(factors)
        first = self.factors[0]
        super().__init__(tuple(A.shape[1] for A in self.factors), tuple(A.shape[0] for A in self.factors),
                         dtype=first.dtype, device=first.device, is_self_adjoint=is_self_adjoint,
                         is_positive_definite=is_positive_definite)

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        return kron_matvec(self.factors, x)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return kron_matvec([A.mH for A in self.factors], y)

    def to(self, device=None, dtype=None) -> "KroneckerOperator":
        new = super().to(device, dtype)
        new.factors = [A.to(device=device, dtype=dtype) for A in self.factors]
        return new
