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
from ._common import KrylovResult, KrylovSetup


@torch.no_grad()
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
    P = KrylovSetup(A, b, x0=x0, M=M, rtol=rtol, atol=atol, maxiter=maxiter, check_every=check_every,
                    maxiter_factor=5)
    tiny = torch.finfo(P.real).tiny
    x, r1 = P.x, P.r
    dot = (lambda u, v: P.dot(u, v).real)

    def col(s: torch.Tensor) -> torch.Tensor:
        return s.unsqueeze(-1)

    y = P.pre(r1)
    ry = dot(r1, y)
    beta1 = torch.sqrt(ry.clamp_min(0))
    status, active, tol = P.status, P.active, P.tol
    if P.has_M:  # the recurrence measures the residual in the M-norm: so do the tolerance and the start
        tol = torch.clamp(rtol * torch.sqrt(dot(P.bf, P.pre(P.bf)).clamp_min(0)), min=atol)
        broken = ry < 0
        active = ~broken & torch.isfinite(beta1) & (beta1 > tol)
        status = torch.where(broken, Status.BREAKDOWN, torch.where(active, Status.MAX_ITERATIONS, status))
        status = torch.where(~broken & ~active & torch.isfinite(beta1), Status.SUCCESS, status)
    history = [beta1 if P.has_M else P.r_norm]
    iterations = P.iterations

    zeros = torch.zeros_like(beta1)
    beta, oldb, dbar, epsln, phibar = beta1, zeros, zeros, zeros, beta1
    cs, sn = -torch.ones_like(beta1), zeros
    w = torch.zeros_like(P.bf)
    w2 = torch.zeros_like(P.bf)
    r2 = r1
    done = not bool(active.any())
    k = 0
    while not done and k < P.maxiter:
        safe_beta = torch.where(beta > 0, beta, 1)
        v = y / col(safe_beta)
        y = P.mv(v)
        if k > 0:
            y = y - col(beta / torch.where(oldb > 0, oldb, 1)) * r1
        alfa = dot(v, y)
        y = y - col(alfa / safe_beta) * r2
        r1, r2 = r2, y
        y = P.pre(r2)
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
        if k % P.check_every == 0:
            done = not bool(active.any())

    return P.result(x, status, iterations, history, check_true_residual=not P.has_M)
