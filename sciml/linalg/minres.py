r"""Batched MINRES for Hermitian (possibly indefinite) systems, e.g. Helmholtz.

Minimises :math:`\|b - A x_k\|` over the Krylov space with the Lanczos process and Givens
rotations (Paige & Saunders 1975; Choi, Paige & Saunders 2011). Each system in the batch stops on
its own; the residual norm used for stopping is the recurrence estimate :math:`\bar\phi_k`, which
equals :math:`\|r_k\|` in exact arithmetic (the :math:`M`-weighted norm
:math:`\sqrt{r^H M r}` when a preconditioner is given).
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


def minres(
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
    r"""MINRES, batched over leading dimensions; arguments as in `sciml.linalg.cg`.

    `A` must be Hermitian (indefinite is fine); `M`, if given, Hermitian positive definite.
    Stops when :math:`\bar\phi_k \le \max(\mathrm{rtol}\,\beta_1, \mathrm{atol})`, with
    :math:`\beta_1 = \|r_0\|` (:math:`\sqrt{r_0^H M r_0}` with a preconditioner).
    `info["residual_norm"]` is the true :math:`\|b - A x\|` of the returned `x`.

    Example:
        >>> A = torch.diag(torch.tensor([3.0, -1.0, 2.0], dtype=torch.float64))
        >>> minres(A, torch.ones(3, dtype=torch.float64), rtol=1e-12).x
        tensor([ 0.3333, -1.0000,  0.5000], dtype=torch.float64)
    """
    check_tolerances(rtol, atol, maxiter)
    matvec, in_shape = as_matvec(A, b)
    batch = split_batch(b, in_shape)
    check_finite(b, "b")
    precond = as_matvec(M, b)[0] if M is not None else None
    n = b[(0,) * len(batch)].numel() if batch else b.numel()
    maxiter = 5 * n if maxiter is None else maxiter
    check_every = check_every or default_check_every(b.device)
    real = b.real.dtype
    tiny = torch.finfo(real).tiny

    def flat(v: torch.Tensor) -> torch.Tensor:
        return v.reshape(*batch, n)

    def mv(v: torch.Tensor) -> torch.Tensor:
        return flat(matvec(v.reshape(*batch, *in_shape)))

    def pre(v: torch.Tensor) -> torch.Tensor:
        return v if precond is None else flat(precond(v.reshape(*batch, *in_shape)))

    def dot(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return torch.linalg.vecdot(u, v, dim=-1).real

    def col(s: torch.Tensor) -> torch.Tensor:
        return s.unsqueeze(-1)

    bf = flat(b)
    if x0 is None:
        x = torch.zeros_like(bf)
        r1 = bf.clone()
    else:
        if x0.shape != b.shape:
            raise ValueError(f"x0 has shape {tuple(x0.shape)}, expected {tuple(b.shape)} like b")
        check_finite(x0, "x0")
        x = flat(x0).to(b.dtype, copy=True)
        r1 = bf - mv(x)

    b_norm = torch.linalg.vector_norm(bf, dim=-1)
    y = pre(r1)
    ry = dot(r1, y)
    status = torch.full(batch, int(Status.MAX_ITERATIONS), dtype=torch.int64, device=b.device)
    status = torch.where(ry < 0, Status.BREAKDOWN, status)
    beta1 = torch.sqrt(ry.clamp_min(0))
    ref = beta1 if precond is not None else torch.linalg.vector_norm(r1, dim=-1)
    tol = torch.clamp(rtol * (b_norm if precond is None else torch.sqrt(dot(bf, pre(bf)).clamp_min(0))), min=atol)
    active = (status != Status.BREAKDOWN) & (ref > tol)
    status = torch.where((status != Status.BREAKDOWN) & ~active, Status.SUCCESS, status)
    history = [ref]
    iterations = torch.zeros(batch, dtype=torch.int64, device=b.device)

    zeros = torch.zeros_like(beta1)
    beta, oldb, dbar, epsln, phibar = beta1, zeros, zeros, zeros, beta1
    cs, sn = -torch.ones_like(beta1), zeros
    w = torch.zeros_like(bf)
    w2 = torch.zeros_like(bf)
    r2 = r1
    done = not bool(active.any())
    k = 0
    while not done and k < maxiter:
        safe_beta = torch.where(beta > 0, beta, 1)
        v = y / col(safe_beta)
        y = mv(v)
        if k > 0:
            y = y - col(beta / torch.where(oldb > 0, oldb, 1)) * r1
        alfa = dot(v, y)
        y = y - col(alfa / safe_beta) * r2
        r1, r2 = r2, y
        y = pre(r2)
        oldb = beta
        ry = dot(r2, y)
        broken = active & (ry < 0)
        beta = torch.sqrt(ry.clamp_min(0))

        # Apply the previous rotation, then make the next one (QR of the Lanczos tridiagonal).
        oldeps = epsln
        delta = cs * dbar + sn * alfa
        gbar = sn * dbar - cs * alfa
        epsln = sn * beta
        dbar = -cs * beta
        gamma = torch.hypot(gbar, beta).clamp_min(tiny)
        cs, sn = gbar / gamma, beta / gamma
        phi = torch.where(active, cs * phibar, 0)
        phibar = torch.where(active, sn * phibar, phibar)

        w1, w2 = w2, w
        w = (v - col(oldeps) * w1 - col(delta) * w2) / col(gamma)
        x = x + col(phi) * w
        history.append(phibar)
        iterations = iterations + active
        k += 1

        nonfinite = active & ~torch.isfinite(phibar)
        converged = active & ~nonfinite & (phibar <= tol)
        status = torch.where(converged, Status.SUCCESS, status)
        status = torch.where(nonfinite, Status.NONFINITE, status)
        status = torch.where(broken & ~converged, Status.BREAKDOWN, status)
        active = active & ~(converged | nonfinite | broken)

        if callback is not None:
            callback(x.reshape(b.shape))
        if k % check_every == 0:
            done = not bool(active.any())

    x = x.reshape(b.shape)
    true_residual = torch.linalg.vector_norm(bf - mv(flat(x)), dim=-1)
    result = KrylovResult(x, status, iterations, torch.stack(history), {})
    result.info.update(reason=result.worst.message, residual_norm=true_residual, b_norm=b_norm,
                       rtol=rtol, atol=atol, maxiter=maxiter)
    return result
