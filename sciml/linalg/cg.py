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
from ._common import KrylovResult, KrylovSetup


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
        `Status.BREAKDOWN`; NaN/Inf during the iteration gives `Status.NONFINITE`. A system whose
        updated residual meets the tolerance while its true residual does not is restarted once from
        its current iterate (residual replacement); if it misses again it stops with `Status.STAGNATION`.

    Raises:
        ValueError: shape, dtype or device mismatch, NaN/Inf in `b` or `x0`, invalid tolerances.

    Example:
        >>> A = torch.tensor([[4.0, 1.0], [1.0, 3.0]], dtype=torch.float64)
        >>> cg(A, torch.ones(2, dtype=torch.float64), rtol=1e-12).x
        tensor([0.0909, 0.3030], dtype=torch.float64)
    """
    P = KrylovSetup(A, b, x0=x0, M=M, rtol=rtol, atol=atol, maxiter=maxiter, check_every=check_every)
    history = [P.r_norm]
    x, r, status, iterations, used = _iterate(P, P.x.clone(), P.r.clone(), P.active, P.status, P.iterations, history,
                                              P.maxiter, callback)
    # Residual replacement: restart, once, the systems whose true residual misses the tolerance.
    true_r = P.bf - P.mv(x)
    true_norm = P.norm(true_r)
    redo = (status == Status.SUCCESS) & ~(true_norm <= P.tol)
    if used < P.maxiter and bool(redo.any()):
        r = torch.where(redo.unsqueeze(-1), true_r, r)
        status = torch.where(redo, Status.MAX_ITERATIONS, status)
        x, r, status, iterations, _ = _iterate(P, x, r, redo, status, iterations, history, P.maxiter - used, callback)
        true_norm = None
    return P.result(x, status, iterations, history, true_residual=true_norm)


def _iterate(P: KrylovSetup, x: torch.Tensor, r: torch.Tensor, active: torch.Tensor, status: torch.Tensor,
             iterations: torch.Tensor, history: list, budget: int, callback: Callable | None):
    """Run CG from `(x, r)` for the `active` systems, at most `budget` iterations; appends to `history`."""
    z = P.pre(r)
    rz = P.dot(r, z).real
    p = z.clone()
    done = not bool(active.any())
    k = 0
    while not done and k < budget:
        Ap = P.mv(p)
        pAp = P.dot(p, Ap).real
        # Breakdown: p^H A p <= 0 means A is not positive definite; NaN means non-finite values.
        nonfinite = active & ~torch.isfinite(pAp)
        broken = active & (pAp <= 0)
        status = torch.where(broken, Status.BREAKDOWN, torch.where(nonfinite, Status.NONFINITE, status))
        active = active & ~(broken | nonfinite)

        # alpha = 0 freezes a stopped system; in-place updates avoid temporaries (memory-bound loop).
        alpha = torch.where(active, rz / torch.where(active, pAp, 1), 0).unsqueeze(-1)
        x.addcmul_(alpha, p)
        r.addcmul_(alpha, Ap, value=-1)
        r_norm = P.norm(r)
        history.append(r_norm)
        iterations = iterations + active
        k += 1

        nonfinite = active & ~torch.isfinite(r_norm)
        converged = active & (r_norm <= P.tol)
        status = torch.where(converged, Status.SUCCESS, torch.where(nonfinite, Status.NONFINITE, status))
        active = active & ~(converged | nonfinite)

        if P.has_M:
            z = P.pre(r)
            rz_new = P.dot(r, z).real
        else:
            z, rz_new = r, r_norm * r_norm
        broken = active & ~(rz_new > 0)  # r^H M r <= 0: preconditioner not positive definite
        status = torch.where(broken, Status.BREAKDOWN, status)
        active = active & ~broken
        beta = torch.where(active, rz_new / torch.where(active, rz, 1), 0).unsqueeze(-1)
        # p = z + beta p in one pass; a stopped system has beta = 0 and alpha = 0 from now on, so its x
        # no longer changes (a system stopped as NONFINITE may carry NaN into its own x).
        torch.addcmul(z, beta, p, out=p)
        rz = rz_new

        if callback is not None:
            callback(x.reshape(P.b.shape))
        if k % P.check_every == 0:
            done = not bool(active.any())
    return x, r, status, iterations, k
