r"""Batched preconditioned BiCGStab for general (nonsymmetric, complex) systems.

The variant of van der Vorst (1992) that scipy implements (`scipy.sparse.linalg.bicgstab`),
preconditioned on the right: the recurrence residual :math:`r_k` is the unpreconditioned residual
:math:`b - A x_k` (in exact arithmetic), and the stopping test is
:math:`\|r_k\| \le \max(\mathrm{rtol}\,\|b\|, \mathrm{atol})`, checked after the half step
(:math:`s`) and after the full step, as scipy does. Each system in the batch stops on its own and
then no longer changes; the loop does no host synchronisation except one `any()` every
`check_every` iterations.

Breakdowns are detected per system, scale-free, with the threshold :math:`\varepsilon^2` (zero to
working precision; scipy uses the absolute :math:`|\rho| < \varepsilon^2`):
:math:`|\rho| = |\langle\hat r, r\rangle| \le \varepsilon^2\|\hat r\|\|r\|`,
:math:`|\langle\hat r, v\rangle| \le \varepsilon^2\|\hat r\|\|v\|` and
:math:`|\langle t, s\rangle| \le \varepsilon^2\|t\|\|s\|` (:math:`\omega = 0`). Such a system stops with
`Status.BREAKDOWN` and keeps its last iterate (never NaN). Reference: H. A. van der Vorst,
SIAM J. Sci. Stat. Comput. 13 (1992) 631-644; Barrett et al., *Templates* (1994), Fig. 2.10.
"""
from __future__ import annotations

from typing import Any, Callable

import torch

from ..status import Status
from ._common import KrylovResult, KrylovSetup

_MESSAGES = {
    Status.BREAKDOWN: "breakdown: <r0^, r> = 0, <r0^, v> = 0 or omega = 0 (BiCGStab cannot continue "
    "from this shadow residual; try gmres or another x0)",
}


@torch.no_grad()
def bicgstab(
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
    r"""BiCGStab, batched over leading dimensions; arguments as in `sciml.linalg.cg`.

    Args:
        A: square operator (nonsymmetric and complex allowed): a `LinearOperator`, a square torch
            matrix, or a callable mapping tensors shaped like `b` to the same shape.
        b: right-hand sides, `(*batch, *in_shape)`, real or complex, float32 or float64.
        x0: initial guess, same shape as `b` (default zeros). The shadow residual is
            :math:`\hat r = r_0`.
        rtol, atol: stop when :math:`\|r_k\| \le \max(\mathrm{rtol}\|b\|, \mathrm{atol})` (scipy's rule).
        maxiter: iteration cap (default `10 * n`); one iteration is two products with `A` (and
            two with `M`), as in scipy.
        M: preconditioner approximating :math:`A^{-1}` (same kinds as `A`), any nonsingular linear map.
        callback: called as `callback(x)` after every iteration.
        check_every: iterations between host-side checks for "all systems done"
            (default 1 on CPU, 10 on accelerators).

    Returns:
        `KrylovResult` with `x`, per-system `status`/`iterations`/`converged`, the history of the
        recurrence residual norms `(k+1, *batch)` and `info["residual_norm"]`, the true residual of
        the returned `x`. An iteration that converges at the half step counts as one iteration.
        Breakdowns give `Status.BREAKDOWN`, NaN/Inf gives `Status.NONFINITE`; either way `x` is the
        last finite iterate.

    Raises:
        ValueError: shape, dtype or device mismatch, NaN/Inf in `b` or `x0`, invalid tolerances or
            `check_every`.

    Maths (iteration :math:`k`, :math:`\hat r = r_0`):

    .. math::
        \rho_k = \langle \hat r, r_{k-1}\rangle,\quad
        p_k = r_{k-1} + \frac{\rho_k}{\rho_{k-1}}\frac{\alpha_{k-1}}{\omega_{k-1}}
              (p_{k-1} - \omega_{k-1} v_{k-1})\ (p_1 = r_0),\\
        \hat p = M p_k,\ v_k = A\hat p,\ \alpha_k = \rho_k / \langle\hat r, v_k\rangle,\
        s = r_{k-1} - \alpha_k v_k,\\
        \hat s = M s,\ t = A\hat s,\ \omega_k = \langle t, s\rangle / \langle t, t\rangle,\
        x_k = x_{k-1} + \alpha_k \hat p + \omega_k \hat s,\ r_k = s - \omega_k t.

    Example:
        >>> A = torch.tensor([[3.0, 1.0], [-1.0, 2.0]], dtype=torch.float64)
        >>> bicgstab(A, torch.ones(2, dtype=torch.float64), rtol=1e-12).x
        tensor([0.1429, 0.5714], dtype=torch.float64)
    """
    P = KrylovSetup(A, b, x0=x0, M=M, rtol=rtol, atol=atol, maxiter=maxiter, check_every=check_every)
    x, r, tol = P.x, P.r, P.tol
    status, active, iterations = P.status, P.active, P.iterations
    r_norm = P.r_norm
    history = [r_norm]
    eps2 = torch.finfo(P.real).eps ** 2
    dot, norm = P.dot, P.norm

    def col(t: torch.Tensor) -> torch.Tensor:
        return t.unsqueeze(-1)

    def stop(broken: torch.Tensor, nonfinite: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Stop active systems: `broken` -> BREAKDOWN (first: a near-zero divisor makes the rest
        non-finite), else `nonfinite` -> NONFINITE."""
        broken = active & broken
        nonfinite = active & nonfinite & ~broken
        new = torch.where(broken, Status.BREAKDOWN, torch.where(nonfinite, Status.NONFINITE, status))
        return new, active & ~(broken | nonfinite)

    def converge(res_norm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        done = active & (res_norm <= tol)
        return torch.where(done, Status.SUCCESS, status), active & ~done

    r_hat = r.clone()
    threshold = eps2 * r_norm  # eps^2 ||r_hat||
    p = torch.zeros_like(r)
    v = torch.zeros_like(r)
    rho_prev = alpha = omega = torch.ones_like(r_norm, dtype=b.dtype)
    done = not bool(active.any())
    k = 0
    # Scalars and r of stopped systems may be inf/NaN (e.g. 0/0): every use is masked by a where,
    # and their p and s are zeroed, so the products with A and M see zeros and x stays finite.
    while not done and k < P.maxiter:
        rho = dot(r_hat, r)
        beta = (rho / rho_prev) * (alpha / omega)
        p = torch.where(col(active), torch.addcmul(r, col(beta), torch.addcmul(p, col(omega), v, value=-1)), 0)
        p_hat = P.pre(p)
        v = P.mv(p_hat)
        rv = dot(r_hat, v)
        alpha = rho / rv
        s = torch.addcmul(r, col(alpha), v, value=-1)
        s_norm = norm(s)
        status, active = stop(
            (rho.abs() <= threshold * r_norm) | (rv.abs() <= threshold * norm(v)), ~torch.isfinite(s_norm)
        )
        # The half step x + alpha p_hat, r = s; a system converged here stops.
        x = torch.where(col(active), torch.addcmul(x, col(alpha), p_hat), x)
        r = s  # r of a stopped system is never used again (x and r_norm are what is kept)
        r_norm = torch.where(active, s_norm, r_norm)
        iterations = iterations + active
        status, active = converge(s_norm)

        s_hat = P.pre(torch.where(col(active), s, 0))
        t = P.mv(s_hat)
        ts, tt = dot(t, s), dot(t, t).real
        omega = ts / tt
        r_new = torch.addcmul(s, col(omega), t, value=-1)
        r_new_norm = norm(r_new)
        # omega = 0 (t = A M s = 0 included)
        status, active = stop(ts.abs() <= eps2 * tt.sqrt() * s_norm, ~torch.isfinite(r_new_norm))
        x = torch.where(col(active), torch.addcmul(x, col(omega), s_hat), x)
        r = r_new
        r_norm = torch.where(active, r_new_norm, r_norm)
        history.append(r_norm)
        k += 1
        status, active = converge(r_norm)
        rho_prev = rho

        if callback is not None:
            callback(x.reshape(b.shape))
        if k % P.check_every == 0:
            done = not bool(active.any())

    return P.result(x, status, iterations, history, messages=_MESSAGES)
