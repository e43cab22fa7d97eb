r"""Batched Lanczos tridiagonalisation of Hermitian operators: Ritz values, extremal eigenvalues.

After k steps, :math:`A V_k = V_k T_k + \beta_k v_{k+1} e_k^T` with orthonormal :math:`V_k` and real
symmetric tridiagonal :math:`T_k`; the eigenvalues of :math:`T_k` (Ritz values) approximate the
extremal eigenvalues of A, which is what step sizes, preconditioner checks and spectral bounds
need. Full reorthogonalisation (default) keeps :math:`V_k` orthonormal to working precision at
O(k n) extra work per step. Reference: Golub & Van Loan, *Matrix Computations*, 4th ed., §10.1.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ._common import as_matvec, split_batch


@dataclass
class LanczosResult:
    """Outcome of `lanczos`.

    Attributes:
        alpha: diagonal of :math:`T`, `(*batch, k)` real.
        beta: off-diagonal of :math:`T`, `(*batch, k-1)` real (zeros after an invariant subspace).
        basis: Lanczos vectors :math:`V`, `(*batch, k, *in_shape)` (None with `return_basis=False`).
        steps: per-system number of meaningful steps, `(*batch,)` int64; fewer than k when an
            invariant subspace was found (:math:`\\beta_j = 0`): then the Ritz values from the first
            `steps` rows are exact eigenvalues.
    """

    alpha: torch.Tensor
    beta: torch.Tensor
    basis: torch.Tensor | None
    steps: torch.Tensor

    @property
    def T(self) -> torch.Tensor:
        """The tridiagonal matrix, `(*batch, k, k)` real."""
        return torch.diag_embed(self.alpha) + torch.diag_embed(self.beta, 1) + torch.diag_embed(self.beta, -1)

    def ritz_values(self) -> torch.Tensor:
        """Eigenvalues of :math:`T` in ascending order, `(*batch, k)`; rows past `steps` are dropped
        by repeating the extremes of the meaningful block, so `[..., 0]` and `[..., -1]` are always the
        smallest and largest estimates."""
        k = self.alpha.shape[-1]
        idx = torch.arange(k, device=self.alpha.device)
        keep = idx < self.steps.unsqueeze(-1)
        T = self.T.clone()
        # Decouple the unused trailing block and give it values inside the meaningful spectrum.
        mid = torch.where(keep, self.alpha, 0).sum(-1) / self.steps.clamp_min(1)
        diag = torch.where(keep, self.alpha, mid.unsqueeze(-1))
        off = torch.where(keep[..., 1:], self.beta, 0)
        T = torch.diag_embed(diag) + torch.diag_embed(off, 1) + torch.diag_embed(off, -1)
        return torch.linalg.eigvalsh(T)

    def extremal_eigenvalues(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(smallest, largest) Ritz values, each `(*batch,)`."""
        ev = self.ritz_values()
        return ev[..., 0], ev[..., -1]


def lanczos(A: Any, k: int, v0: torch.Tensor | None = None, *, in_shape: tuple[int, ...] | None = None,
            batch_shape: tuple[int, ...] = (), dtype: torch.dtype | None = None, device: Any = None,
            reorthogonalize: bool = True, return_basis: bool = True,
            generator: torch.Generator | None = None) -> LanczosResult:
    r"""k steps of Lanczos on a Hermitian operator, batched over the leading dims of `v0`.

    Args:
        A: Hermitian operator: `LinearOperator`, square torch matrix, or callable (then `v0` or
            `in_shape` fixes the shape of one vector).
        k: number of steps (the size of :math:`T`), 1 <= k <= n.
        v0: starting vectors `(*batch, *in_shape)` (normalised here); default: random normal,
            drawn with `generator`, of shape `(*batch_shape, *in_shape)`.
        in_shape, batch_shape, dtype, device: shape/type of the random start when `v0` is None
            (`in_shape` defaults to the operator's).
        reorthogonalize: full reorthogonalisation against all previous vectors (twice, "twice is
            enough"); without it the basis loses orthogonality and spurious copies of converged
            Ritz values appear.
        return_basis: keep the basis (memory `k * n` per system).

    Returns:
        `LanczosResult` with `alpha`, `beta`, `basis`, `steps`, and `T`, `ritz_values()`,
        `extremal_eigenvalues()`.

    Example:
        >>> A = torch.diag(torch.arange(1.0, 101.0, dtype=torch.float64))
        >>> lo, hi = lanczos(A, 40, generator=torch.Generator().manual_seed(0)).extremal_eigenvalues()
        >>> round(float(lo), 4), round(float(hi), 4)
        (1.0, 100.0)
    """
    if v0 is None:
        shape = in_shape if in_shape is not None else getattr(A, "in_shape", None)
        if shape is None and isinstance(A, torch.Tensor):
            shape = (A.shape[-1],)
        if shape is None:
            raise ValueError("give v0 or in_shape for a callable operator")
        dtype = dtype or getattr(A, "dtype", None) or torch.float64
        device = device if device is not None else getattr(A, "device", None)
        real = torch.randn(*batch_shape, *shape, dtype=dtype.to_real(), device=device, generator=generator)
        v0 = torch.complex(real, torch.randn_like(real)) if dtype.is_complex else real
    matvec, shape = as_matvec(A, v0)
    batch = split_batch(v0, shape, "v0")
    n = 1
    for s in shape:
        n *= s
    if not (isinstance(k, int) and 1 <= k <= n):
        raise ValueError(f"k must be an integer in [1, n={n}], got {k!r}")
    if not bool(torch.isfinite(v0).all()):
        raise ValueError("v0 contains NaN or Inf")
    v = v0.reshape(*batch, n)
    v_norm = torch.linalg.vector_norm(v, dim=-1, keepdim=True)
    if bool((v_norm == 0).any()):
        raise ValueError("v0 must be non-zero")
    v = v / v_norm
    real_dtype = v.real.dtype
    V = torch.zeros(*batch, k, n, dtype=v.dtype, device=v.device)
    alpha = torch.zeros(*batch, k, dtype=real_dtype, device=v.device)
    beta = torch.zeros(*batch, max(k - 1, 0), dtype=real_dtype, device=v.device)
    alive = torch.ones(batch, dtype=torch.bool, device=v.device)
    steps = torch.zeros(batch, dtype=torch.int64, device=v.device)
    scale = torch.zeros(batch, dtype=real_dtype, device=v.device)
    eps = torch.finfo(real_dtype).eps
    v_prev = torch.zeros_like(v)
    b_prev = torch.zeros(batch, dtype=real_dtype, device=v.device)
    for j in range(k):
        V[..., j, :] = v
        steps = steps + alive
        w = matvec(v.reshape(*batch, *shape)).reshape(*batch, n)
        a = torch.linalg.vecdot(v, w, dim=-1).real
        alpha[..., j] = torch.where(alive, a, 0)
        w = w - a.unsqueeze(-1) * v - b_prev.unsqueeze(-1) * v_prev
        if reorthogonalize:
            basis = V[..., : j + 1, :]
            for _ in range(2):
                coef = torch.einsum("...jn,...n->...j", basis.conj(), w)
                w = w - torch.einsum("...jn,...j->...n", basis, coef)
        if j == k - 1:
            break
        b = torch.linalg.vector_norm(w, dim=-1)
        scale = torch.maximum(scale, a.abs() + b)
        # An invariant subspace: beta is zero to working precision relative to ||A|| seen so far.
        alive = alive & (b > 10 * eps * scale)
        b = torch.where(alive, b, 0)
        beta[..., j] = b
        v_prev, v = v, torch.where(alive.unsqueeze(-1), w / torch.where(alive, b, 1).unsqueeze(-1), 0)
        b_prev = b
    basis = V.reshape(*batch, k, *shape) if return_basis else None
    return LanczosResult(alpha, beta, basis, steps)
