r"""Batched (preconditioned) conjugate gradients for Hermitian positive definite systems.

Solves :math:`A x = b` for every system in a batch at once, each with its own stopping test
:math:`\|b - A x_k\| \le \max(\mathrm{rtol}\,\|b\|, \mathrm{atol})`. Systems that have stopped no
longer change. The loop does no host synchronisation except one `any()` every `check_every`
iterations. Reference: Hestenes & Stiefel (1952); Saad, *Iterative Methods*, Alg. 9.1.
"""
from __future__ import annotations

from typing import Any, Callable

import torch

from ..status import Status
from ._common import (
    KrylovResult,
    as_matvec,
    check_finite,
    check_tolerances,
    default_check_every,
    split_batch,
)


def cg(
    A: Any,
    b: torch.Tensor,
    *,
    x0: torch.Tensor | None = None,
    rtol: float = 1e-5,
    atol: float = 0.0,
    maxiter: int | None = None,
    M: Any = None,
    callback: Callable[[torch.Tensor], None] | None = None,
    check_every: int | None = None,
) -> KrylovResult:
    r"""Conjugate gradients, batched over leading dimensions.

    Args:
        A: Hermitian positive definite operator: a `LinearOperator`, a square torch matrix, or a
            callable mapping tensors shaped like `b` to the same shape.
        b: right-hand sides, `(*batch, *in_shape)`, real or complex, float32 or float64.
        x0: initial guess, same shape as `b` (default zeros).
        rtol, atol: stop when :math:`\|r_k\| \le \max(\mathrm{rtol}\|b\|, \mathrm{atol})` (scipy's rule).
        maxiter: iteration cap (default `10 * n`, n the size of one system).
        M: preconditioner approximating :math:`A^{-1}` (same kinds as `A`); must be HPD.
        callback: called as `callback(x)` after every iteration.
        check_every: iterations between host-side checks for "all systems done"
            (default 1 on CPU, 10 on accelerators).

    Returns:
        `KrylovResult` with `x`, per-system `status`/`iterations`/`converged`, the residual history and
        `info["residual_norm"]`, the true residual of the returned `x`. A system for which
        :math:`p^H A p \le 0` (A not positive definite) or :math:`r^H M r \le 0` stops with
        `Status.BREAKDOWN`; NaN/Inf during the iteration gives `Status.NONFINITE`.

    Raises:
        ValueError: shape, dtype or device mismatch, NaN/Inf in `b` or `x0`, invalid tolerances.

    Example:
        >>> A = torch.tensor([[4.0, 1.0], [1.0, 3.0]], dtype=torch.float64)
        >>> cg(A, torch.ones(2, dtype=torch.float64), rtol=1e-12).x
        tensor([0.0909, 0.3030], dtype=torch.float64)
    """
    check_tolerances(rtol, atol, maxiter)
    matvec, in_shape = as_matvec(A, b)
    batch = split_batch(b, in_shape)
    check_finite(b, "b")
    precond = as_matvec(M, b)[0] if M is not None else None
    n = b[(0,) * len(batch)].numel() if batch else b.numel()
    maxiter = 10 * n if maxiter is None else maxiter
    check_every = check_every or default_check_every(b.device)
    real = b.real.dtype

    def flat(v: torch.Tensor) -> torch.Tensor:  # (*batch, *in_shape) -> (*batch, n)
        return v.reshape(*batch, n)

    def mv(v: torch.Tensor) -> torch.Tensor:
        return flat(matvec(v.reshape(*batch, *in_shape)))

    def pre(v: torch.Tensor) -> torch.Tensor:
        return v if precond is None else flat(precond(v.reshape(*batch, *in_shape)))

    def dot(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:  # <u, v> = u^H v, real part
        return torch.linalg.vecdot(u, v, dim=-1).real

    bf = flat(b)
    if x0 is None:
        x = torch.zeros_like(bf)
        r = bf.clone()
    else:
        if x0.shape != b.shape:
            raise ValueError(f"x0 has shape {tuple(x0.shape)}, expected {tuple(b.shape)} like b")
        check_finite(x0, "x0")
        x = flat(x0).to(b.dtype, copy=True)
        r = bf - mv(x)

    b_norm = torch.linalg.vector_norm(bf, dim=-1)
    tol = torch.clamp(rtol * b_norm, min=atol)
    r_norm = torch.linalg.vector_norm(r, dim=-1)
    history = [r_norm]
    active = r_norm > tol
    status = torch.where(active, Status.MAX_ITERATIONS, Status.SUCCESS).to(torch.int64)
    iterations = torch.zeros(batch, dtype=torch.int64, device=b.device)

    z = pre(r)
    rz = dot(r, z)
    p = z.clone()
    done = not bool(active.any())
    k = 0
    while not done and k < maxiter:
        Ap = mv(p)
        pAp = dot(p, Ap)
        # Breakdown: p^H A p <= 0 means A is not positive definite; NaN means non-finite values.
        nonfinite = active & ~torch.isfinite(pAp)
        broken = active & (pAp <= 0)
        status = torch.where(broken, Status.BREAKDOWN, torch.where(nonfinite, Status.NONFINITE, status))
        active = active & ~(broken | nonfinite)

        alpha = torch.where(active, rz / torch.where(active, pAp, 1), 0).to(real).unsqueeze(-1)
        x = x + alpha * p
        r = torch.where(active.unsqueeze(-1), r - alpha * Ap, r)
        r_norm = torch.linalg.vector_norm(r, dim=-1)
        history.append(r_norm)
        iterations = iterations + active
        k += 1

        nonfinite = active & ~torch.isfinite(r_norm)
        status = torch.where(nonfinite, Status.NONFINITE, status)
        converged = active & (r_norm <= tol)
        status = torch.where(converged, Status.SUCCESS, status)
        active = active & ~(converged | nonfinite)

        z = pre(r)
        rz_new = dot(r, z)
        broken = active & ~(rz_new > 0)  # r^H M r <= 0: preconditioner not positive definite
        status = torch.where(broken, Status.BREAKDOWN, status)
        active = active & ~broken
        beta = torch.where(active, rz_new / torch.where(active, rz, 1), 0).to(real).unsqueeze(-1)
        p = torch.where(active.unsqueeze(-1), z + beta * p, 0)
        rz = rz_new

        if callback is not None:
            callback(x.reshape(b.shape))
        if k % check_every == 0:
            done = not bool(active.any())

    x = x.reshape(b.shape)
    true_residual = torch.linalg.vector_norm(bf - mv(flat(x)), dim=-1)
    result = KrylovResult(x, status, iterations, torch.stack(history), {})
    result.info.update(
        reason=result.worst.message,
        residual_norm=true_residual,
        b_norm=b_norm,
        rtol=rtol,
        atol=atol,
        maxiter=maxiter,
    )
    return result
