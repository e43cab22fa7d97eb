r"""Batched restarted GMRES(m) for general (nonsymmetric, complex) systems, right-preconditioned.

Every system in the batch runs its own GMRES(m) (Saad & Schultz 1986): within a restart cycle,
Arnoldi builds an orthonormal basis :math:`V_{j+1}` of the Krylov space of :math:`A M` and the
Hessenberg matrix :math:`\bar H_j` with :math:`A M V_j = V_{j+1} \bar H_j`; Givens rotations keep
the QR factorisation :math:`\bar H_j = Q_j \bar R_j`, so the minimal residual norm
:math:`\min_y \|\beta e_1 - \bar H_j y\| = |g_{j+1}|`, :math:`g = \beta Q_j^H e_1`, is known after
every inner step without solving anything and without a host synchronisation. At the end of a
cycle :math:`R_j y = g_{1:j}` is solved and :math:`x \leftarrow x + M V_j y`.

Design choices:

* **Right preconditioning** (:math:`A M u = r_0`, :math:`x = x_0 + M u`): the residual of the
  preconditioned system *is* the true residual :math:`b - A x`, so the stopping test
  :math:`\|b - A x\| \le \max(\mathrm{rtol}\|b\|, \mathrm{atol})` is the same as for every other
  sciml kernel, whatever `M` is. (scipy's `gmres` preconditions on the left and monitors
  :math:`\|M(b - A x)\|` inside a cycle; without `M` the two coincide step for step.)
* **Classical Gram-Schmidt with one reorthogonalisation (CGS2)** instead of modified GS: each pass
  is two batched matrix-vector products with the basis (:math:`h = \bar V^{H} w`,
  :math:`w \leftarrow w - V h`), i.e. four BLAS-2 kernels per step whatever the step number, where
  MGS needs :math:`2(j+1)` sequential dot/axpy launches. "Twice is enough": CGS2 keeps the basis
  orthogonal to working precision (Giraud, Langou, Rozložník & van den Eshof 2005), better than
  MGS (loss :math:`O(\varepsilon\,\kappa)`); it costs twice the flops of MGS in the projections
  and reads the basis four times per step, which is what makes it slower than MGS on a CPU once
  the basis of the whole batch outgrows the cache: there, systems of :math:`n \ge 4096` are
  orthogonalised one at a time (each basis then stays in cache across the passes).
* **Givens rotations, batched and accumulated**: the product of the rotations so far,
  :math:`Q_j^H`, is kept as a small `(m+1, m+1)` matrix per system, so a new Hessenberg column is
  rotated by one batched product and each step costs a fixed number of kernel launches.
* **Masks**: a system that has converged (by the estimate), broken down or hit NaN/Inf stops
  adding columns; its basis vectors are zeroed, so its share of the batched Arnoldi work is on
  zeros (harmless, no NaN), and its `x` is only ever updated with the columns it had while active.
  At the end of each cycle the true residual is computed; a system is `SUCCESS` only if the true
  residual passes the test, otherwise it restarts.
* **Happy breakdown** (:math:`h_{j+1,j} \le \varepsilon \|A M v_j\|`, scipy's test): the Krylov
  space is invariant, so the residual estimate is set to exactly 0 and the system is treated as
  converged (checked against the true residual at the end of the cycle, which passes if it is below
  the tolerance or at the rounding floor, :math:`\|r\| \le 64\,\varepsilon \|b\|`, so that
  ``rtol = atol = 0`` does not restart a solve that is exact but for rounding). If instead the rotated
  diagonal :math:`r_{jj}` is 0 (the Hessenberg matrix is singular, which needs a singular
  :math:`A M`), the system stops with `Status.BREAKDOWN` after the update with its first
  :math:`j` columns.

References: Saad & Schultz, SIAM J. Sci. Stat. Comput. 7 (1986); Saad, *Iterative Methods for
Sparse Linear Systems*, 2nd ed., Alg. 6.9 and 9.5 (right-preconditioned GMRES); Giraud, Langou,
Rozložník & van den Eshof, Numer. Math. 101 (2005).
"""
from __future__ import annotations

from typing import Any, Callable

import torch

from ..status import Status
from ._common import KrylovResult, KrylovSetup

_MESSAGES = {
    Status.BREAKDOWN: "breakdown: the Hessenberg matrix became singular (A M singular on the Krylov "
    "space); x is the least-squares iterate before it",
}
ROUNDING_FLOOR = 64  # after a happy breakdown a true residual below 64 eps ||b|| is convergence


@torch.no_grad()
def gmres(
    A: Any,
    b: torch.Tensor,
    *,
    x0: torch.Tensor | None = None,
    rtol: float = 1e-5,
    atol: float = 0.0,
    restart: int = 20,
    maxiter: int | None = None,
    M: Any = None,
    callback: Callable[[torch.Tensor], None] | None = None,
    check_every: int | None = None,
) -> KrylovResult:
    r"""Restarted GMRES(`restart`), right-preconditioned, batched over leading dimensions.

    Args:
        A: square operator (any, nonsymmetric and complex included): a `LinearOperator`, a square
            torch matrix, or a callable mapping tensors shaped like `b` to the same shape.
        b: right-hand sides, `(*batch, *in_shape)`, real or complex, float32 or float64.
        x0: initial guess, same shape as `b` (default zeros).
        rtol, atol: stop when :math:`\|b - A x_k\| \le \max(\mathrm{rtol}\|b\|, \mathrm{atol})`
            (scipy's rule, on the true unpreconditioned residual; see the module notes).
        restart: Krylov dimension :math:`m` of a cycle (scipy's `restart`, default 20; capped at
            `n`). Memory is :math:`(m+1)\,n` entries per system.
        maxiter: cap on the **total number of inner (Arnoldi) iterations** over all cycles, i.e. of
            products with `A` besides one residual per restart (default `10 * n`). This differs
            from scipy, where `maxiter` counts restart cycles: scipy's `maxiter=c` is
            `maxiter=c * restart` here. `iterations` in the result counts the same inner steps.
        M: right preconditioner approximating :math:`A^{-1}` (same kinds as `A`); any nonsingular
            linear operator, it need not be symmetric. It must not change between calls.
        callback: called as `callback(x)` at the end of every restart cycle, when `x` is formed
            (GMRES does not form `x` inside a cycle; the per-step residual estimates are in
            `result.residuals`).
        check_every: inner iterations between host-side checks for "all systems done" (default 1
            on CPU, 10 on accelerators); there is also one check at the end of every cycle.

    Returns:
        `KrylovResult`: `x`, per-system `status`/`iterations`/`converged`, `residuals` of shape
        `(k+1, *batch)` (the Givens estimate :math:`|g_{j+1}|` after each inner step, the true
        :math:`\|b - A x\|` at the last step of each cycle), and `info` with `residual_norm` (true
        residual of the returned `x`), `restart` and `cycles`. Per system: `Status.SUCCESS` when the
        true residual passed the test, `Status.MAX_ITERATIONS`, `Status.BREAKDOWN` (singular
        Hessenberg matrix), or `Status.NONFINITE` (NaN/Inf; `x` is the last finite iterate).

    Raises:
        ValueError: shape, dtype or device mismatch, NaN/Inf in `b` or `x0`, invalid tolerances,
            `restart` or `check_every`.

    Maths: cycle with :math:`r_0 = b - A x_0`, :math:`\beta = \|r_0\|`, :math:`v_1 = r_0/\beta`;
    for :math:`j = 1..m`: :math:`w = A M v_j`, :math:`h_{1:j,j} = V_j^H w` (twice),
    :math:`h_{j+1,j} = \|w - V_j h_{1:j,j}\|`, :math:`v_{j+1} = w / h_{j+1,j}`; then
    :math:`x = x_0 + M V_j y_j` with :math:`y_j = \arg\min_y \|\beta e_1 - \bar H_j y\|`.

    Example:
        >>> A = torch.tensor([[3.0, 1.0], [-1.0, 2.0]], dtype=torch.float64)
        >>> gmres(A, torch.ones(2, dtype=torch.float64), rtol=1e-12).x
        tensor([0.1429, 0.5714], dtype=torch.float64)
    """
    if not isinstance(restart, int) or isinstance(restart, bool) or restart < 1:
        raise ValueError(f"restart must be a positive integer, got {restart!r}")
    P = KrylovSetup(A, b, x0=x0, M=M, rtol=rtol, atol=atol, maxiter=maxiter, check_every=check_every)
    batch, n, dev, dtype = P.batch, P.n, b.device, b.dtype
    m = min(restart, n)
    eps = torch.finfo(P.real).eps
    x, r, tol = P.x, P.r, P.tol
    status, active, iterations = P.status, P.active, P.iterations
    beta = P.r_norm
    history = [beta]

    V = torch.empty(*batch, m + 1, n, dtype=dtype, device=dev)  # Arnoldi basis, one row per vector
    R = torch.empty(*batch, m, m, dtype=dtype, device=dev)  # rotated Hessenberg: upper triangular
    G = torch.empty(*batch, m + 1, m + 1, dtype=dtype, device=dev)  # product of the rotations, Q^H
    eye = torch.eye(m + 1, dtype=dtype, device=dev)
    col_index = torch.arange(m, device=dev)

    k = 0  # inner iterations so far (host counter, the same for every system)
    cycles = 0
    done = not bool(active.any())
    while not done and k < P.maxiter:
        cycles += 1
        in_cycle = active
        V[..., 0, :] = torch.where(active.unsqueeze(-1), r / torch.where(active, beta, 1).unsqueeze(-1), 0)
        G.copy_(eye)
        est = beta
        steps = torch.zeros(batch, dtype=torch.int64, device=dev)  # valid columns in this cycle
        happy = torch.zeros(batch, dtype=torch.bool, device=dev)  # the Krylov space became invariant
        J = 0
        for j in range(min(m, P.maxiter - k)):
            J = j + 1
            w = P.mv(P.pre(V[..., j, :]))
            h0 = P.norm(w)
            h, w = _orthogonalise(V[..., : j + 1, :], w)  # CGS2
            h1 = P.norm(w)
            h1 = torch.where(h1 <= eps * h0, 0, h1)  # happy breakdown: the Krylov space is invariant
            happy = happy | (active & (h1 == 0))

            # Rotate the new column by the previous rotations, then annihilate h_{j+1,j}:
            # rows j, j+1 of Q^H become (c, s; -conj(s), c) times themselves (row j+1 is still e_{j+1}).
            # Stopped systems need no mask here: their basis rows are 0, so c = s = rho = 0, and
            # their columns/rows from `steps` on are discarded at the end of the cycle.
            hr = (G[..., : j + 1, : j + 1] @ h.unsqueeze(-1)).squeeze(-1)
            c, s, rho = _givens(hr[..., j], h1)
            R[..., : j + 1, j] = hr
            R[..., j, j] = rho
            Gj = G[..., j, : j + 1]
            G[..., j + 1, : j + 1] = -s.conj().unsqueeze(-1) * Gj
            G[..., j + 1, j + 1] = c
            G[..., j, j + 1] = s
            Gj.mul_(c.unsqueeze(-1))
            est_new = beta * G[..., j + 1, 0].abs()  # |g_{j+1}|, g = beta Q^H e_1

            nonfinite = active & ~torch.isfinite(rho)
            singular = active & (rho == 0)
            ok = active & ~(nonfinite | singular)
            status = torch.where(nonfinite, Status.NONFINITE, torch.where(singular, Status.BREAKDOWN, status))
            est = torch.where(ok, est_new, est)
            history.append(est)
            steps = steps + ok
            iterations = iterations + ok
            k += 1

            active = ok & ~(est <= tol)  # converged by the estimate: verified at the end of the cycle
            scale = torch.where(active, h1, 1).unsqueeze(-1)
            V[..., j + 1, :] = torch.where(active.unsqueeze(-1), w / scale, 0)

            if k % P.check_every == 0 and not bool(active.any()):
                break

        # End of the cycle: y = R^{-1} g over each system's valid columns, x += M V y.
        valid = col_index[:J] < steps.unsqueeze(-1)  # (*batch, J)
        R_eff = torch.where(valid.unsqueeze(-2), R[..., :J, :J].triu(), eye[:J, :J])
        g_eff = torch.where(valid, beta.unsqueeze(-1) * G[..., :J, 0], 0)
        y = torch.linalg.solve_triangular(R_eff, g_eff.unsqueeze(-1), upper=True).squeeze(-1)
        dx = P.pre(_combine(y, V[..., :J, :]))
        x_new = torch.where(in_cycle.unsqueeze(-1), x + dx, x)
        r_new = P.bf - P.mv(x_new)
        r_norm = P.norm(r_new)
        finite = torch.isfinite(r_norm)
        # A non-finite update (e.g. from M) is rolled back: x stays the last finite iterate.
        blown = in_cycle & ~finite
        status = torch.where(blown, Status.NONFINITE, status)
        keep = finite.unsqueeze(-1)
        x = torch.where(keep, x_new, x)
        r = torch.where(keep, r_new, r)
        beta = torch.where(finite, r_norm, beta)
        history[-1] = torch.where(in_cycle & finite, r_norm, history[-1])

        floor = torch.where(happy, ROUNDING_FLOOR * eps * P.b_norm, 0)
        passed = in_cycle & finite & (status != Status.NONFINITE) & (r_norm <= torch.maximum(tol, floor))
        status = torch.where(passed, Status.SUCCESS, status)
        # Systems still "running" (active or converged by the estimate only) go on to another cycle.
        active = in_cycle & ~passed & (status == Status.MAX_ITERATIONS)
        if callback is not None:
            callback(x.reshape(b.shape))
        done = not bool(active.any())

    # every SUCCESS was granted on the true residual at the end of its cycle (with the rounding floor)
    return P.result(x, status, iterations, history, messages=_MESSAGES, check_true_residual=False,
                    restart=m, cycles=cycles)


def _orthogonalise(V: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Classical Gram-Schmidt, twice: `(h, w')` with :math:`h = V^H w` (both passes summed) and
    :math:`w' = w - V^T h` orthogonal to the rows of `V` `(*batch, j, n)`; `w` is `(*batch, n)`.

    Four batched BLAS-2 products whatever `j`. On CPU a batch of systems with `n >= 4096` is done
    one system at a time, so that each system's basis stays in cache across the four passes (the
    whole batch's basis often does not: measured 2x faster for 4 systems of 256^2 unknowns).
    """
    n = w.shape[-1]
    if V.device.type == "cpu" and w.ndim > 1 and n >= _CPU_LOOP_MIN_N and w[..., 0].numel() > 1:
        Vf, wf = V.reshape(-1, *V.shape[-2:]), w.reshape(-1, n)
        hs, ws = zip(*(_cgs2(Vi, wi) for Vi, wi in zip(Vf, wf)))
        return torch.stack(hs).reshape(*w.shape[:-1], -1), torch.stack(ws).reshape(w.shape)
    return _cgs2(V, w)


_CPU_LOOP_MIN_N = 4096


def _cgs2(V: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    h = _project(V, w)
    w = w - _combine(h, V)
    h2 = _project(V, w)
    return h + h2, w - _combine(h2, V)


def _project(V: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """:math:`V^H w` for the rows of `V` `(*batch, j, n)` and `w` `(*batch, n)`: `(*batch, j)`.

    Computed as :math:`\\overline{V \\bar w}` so that no conjugate copy of `V` is made."""
    return (V @ w.conj().unsqueeze(-1)).squeeze(-1).conj()


def _combine(y: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
    """:math:`\\sum_i y_i V_i` for `y` `(*batch, j)` and the rows of `V` `(*batch, j, n)`: `(*batch, n)`."""
    return (y.unsqueeze(-2) @ V).squeeze(-2)


def _givens(a: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""Rotation with real `c` and `s` of `a`'s dtype, such that
    :math:`\begin{pmatrix} c & s \\ -\bar s & c \end{pmatrix}\begin{pmatrix} a \\ h \end{pmatrix}
    = \begin{pmatrix} \rho \\ 0 \end{pmatrix}`, for `a` (real or complex) and real `h >= 0`.

    :math:`c = |a|/\nu`, :math:`s = (a/|a|)\,h/\nu`, :math:`\rho = (a/|a|)\,\nu`,
    :math:`\nu = \sqrt{|a|^2 + h^2}`; `a = 0` gives `c = 0, s = 1`, and `a = h = 0` gives `rho = 0`.
    """
    abs_a = a.abs()
    nu = torch.hypot(abs_a, h)
    safe_nu = torch.where(nu > 0, nu, 1)
    phase = torch.where(abs_a > 0, a / torch.where(abs_a > 0, abs_a, 1), 1)
    c = abs_a / safe_nu
    s = phase * (h / safe_nu)
    rho = phase * nu
    return c, s, rho
