r"""Kronecker-product algebra without forming the product.

For factors :math:`A_i \in \mathbb{C}^{m_i \times n_i}`, :math:`(A_1 \otimes \dots \otimes A_d)\,\mathrm{vec}(X)`
with row-major (C-order) `vec` is "apply :math:`A_i` along axis i of X": O(N Σ nᵢ) work instead
of O(N²). Solves and log-determinants of Hermitian Kronecker products (plus a shift) go through
one eigendecomposition per factor, :math:`K_i = Q_i \Lambda_i Q_i^H`:

.. math:: (\otimes_i K_i + s I)^{-1} = (\otimes_i Q_i)\,(\otimes_i \Lambda_i + s I)^{-1}\,(\otimes_i Q_i)^H,
   \qquad \log\det(\otimes_i K_i + s I) = \sum \log(\otimes_i \lambda_i + s),

O(Σ nᵢ³ + N Σ nᵢ). Used by the GP-HM solver (K = K_x ⊗ K_y on collocation grids).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch


def _check_factors(factors: Sequence[torch.Tensor], square: bool = False) -> list[torch.Tensor]:
    factors = list(factors)
    if not factors:
        raise ValueError("factors must be a non-empty sequence of matrices")
    for i, A in enumerate(factors):
        if not isinstance(A, torch.Tensor) or A.ndim != 2:
            raise ValueError(f"factors[{i}] must be a 2-D tensor, got {getattr(A, 'shape', type(A).__name__)}")
        if square and A.shape[0] != A.shape[1]:
            raise ValueError(f"factors[{i}] must be square, got shape {tuple(A.shape)}")
    return factors


def kron_matvec(factors: Sequence[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    r"""Apply :math:`A_1 \otimes \dots \otimes A_d` to `x` of shape `(*batch, n_1, ..., n_d)`.

    Returns `(*batch, m_1, ..., m_d)`; flatten the trailing dims (C order) to get the matrix-vector
    product with `torch.kron(A_1, ..., A_d)`.

    Example:
        >>> A, B = torch.randn(3, 2), torch.randn(4, 5)
        >>> x = torch.randn(2, 5)
        >>> torch.allclose(kron_matvec([A, B], x).reshape(-1), torch.kron(A, B) @ x.reshape(-1), atol=1e-5)
        True
    """
    factors = _check_factors(factors)
    d = len(factors)
    want = tuple(A.shape[1] for A in factors)
    if x.ndim < d or tuple(x.shape[x.ndim - d:]) != want:
        raise ValueError(f"x has shape {tuple(x.shape)}, expected (*batch, {', '.join(map(str, want))})")
    y = x
    for i, A in enumerate(factors):
        axis = y.ndim - d + i
        y = (y.movedim(axis, -1) @ A.mT).movedim(-1, axis)
    return y


@dataclass
class KroneckerEigh:
    r"""Per-factor eigendecompositions of a Hermitian Kronecker product :math:`\otimes_i K_i`.

    Attributes:
        eigenvalues: per factor, ascending, `(n_i,)` real.
        eigenvectors: per factor, `(n_i, n_i)`, orthonormal columns.
    """

    eigenvalues: list[torch.Tensor]
    eigenvectors: list[torch.Tensor]

    @classmethod
    def of(cls, factors: Sequence[torch.Tensor]) -> "KroneckerEigh":
        """Decompose Hermitian factors with `torch.linalg.eigh` (O(Σ nᵢ³))."""
        factors = _check_factors(factors, square=True)
        pairs = [torch.linalg.eigh(K) for K in factors]
        return cls([p.eigenvalues for p in pairs], [p.eigenvectors for p in pairs])

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(lam.numel() for lam in self.eigenvalues)

    def spectrum(self, shift: float = 0.0) -> torch.Tensor:
        """All eigenvalues of :math:`\\otimes K_i + s I` as a grid, `(n_1, ..., n_d)` (outer product)."""
        grid = self.eigenvalues[0]
        for lam in self.eigenvalues[1:]:
            grid = grid.unsqueeze(-1) * lam
        return grid + shift

    def solve(self, b: torch.Tensor, shift: float = 0.0) -> torch.Tensor:
        """:math:`(\\otimes K_i + s I)^{-1} b` for `b` `(*batch, n_1, ..., n_d)`.

        Raises:
            ValueError: if an eigenvalue of the shifted product is zero (singular).
        """
        spec = self.spectrum(shift)
        if bool((spec == 0).any()):
            raise ValueError("the shifted Kronecker product is singular (an eigenvalue is 0)")
        Qh = [Q.mH for Q in self.eigenvectors]
        return kron_matvec(self.eigenvectors, kron_matvec(Qh, b) / spec)

    def logdet(self, shift: float = 0.0) -> torch.Tensor:
        """:math:`\\log\\det(\\otimes K_i + s I)` (real; the product must be positive definite)."""
        spec = self.spectrum(shift)
        if bool((spec <= 0).any()):
            raise ValueError("logdet needs a positive definite product (an eigenvalue is <= 0)")
        return torch.log(spec).sum()


def kron_solve(factors: Sequence[torch.Tensor], b: torch.Tensor, shift: float = 0.0) -> torch.Tensor:
    """:math:`(K_1 \\otimes \\dots \\otimes K_d + s I)^{-1} b` for Hermitian factors; see `KroneckerEigh`."""
    return KroneckerEigh.of(factors).solve(b, shift)
