r"""Fused CPU conjugate gradients for the constant-coefficient Dirichlet Laplacian (numba).

Used by `sciml.linalg.cg` when numba is installed, for `laplacian(...)` (a `DiffusionOperator` with
a = 1, an optional scalar shift c, Dirichlet on every axis) on CPU float32/float64 tensors without a
preconditioner or callback. Each system of the batch runs its whole iteration in one thread
(`prange` over the batch), so its four vectors (x, r, p, A p: 512 KiB for a 128 x 128 float64 grid)
stay in the core's cache, and every iteration makes two passes over them: the x and p updates
fused with the stencil product and :math:`p^T A p` (the updates run a few grid rows ahead of the
stencil), and the r update fused with :math:`r^T r`.
Dot products accumulate in float64. The semantics are those of the torch path of `cg` (statuses,
per-system iteration counts, one residual replacement, residual history padded with final values).
"""
from __future__ import annotations

import math
from typing import Any

import numba
import numpy as np
import torch
from numba import njit, prange

from ..status import Status

# Reassociation lets LLVM vectorise the reductions; NaN/Inf semantics are kept (no 'nnan'/'ninf').
_FM = {"reassoc", "contract", "nsz", "arcp"}
_SUCCESS, _MAXIT, _BREAKDOWN, _NONFINITE = (int(Status.SUCCESS), int(Status.MAX_ITERATIONS),
                                            int(Status.BREAKDOWN), int(Status.NONFINITE))
# Iterations per kernel call (the residual history of one call is a (_CAP, batch) array).
_CAP = 2048


@njit(cache=True, fastmath=_FM, inline="always")
def _stencil_row(u, out, i, j, n0, n1, n2, coef):
    """Row (i, j) of out = A u on the (n0, n1, n2) grid (flat, row-major); returns its part of u . out.

    coef = (diagonal, w0, w1, w2). A missing neighbour row (Dirichlet ghost) gets weight 0 and stands
    for the row itself, so the inner loop has no branches and indexes row slices with non-negative
    indices only (which lets LLVM vectorise it)."""
    diag, w0, w1, w2 = coef[0], coef[1], coef[2], coef[3]
    zero = diag - diag
    s0 = n1 * n2
    base = i * s0 + j * n2
    a0m = w0 if i > 0 else zero
    a0p = w0 if i < n0 - 1 else zero
    a1m = w1 if j > 0 else zero
    a1p = w1 if j < n1 - 1 else zero
    b0m = base - s0 if i > 0 else base
    b0p = base + s0 if i < n0 - 1 else base
    b1m = base - n2 if j > 0 else base
    b1p = base + n2 if j < n1 - 1 else base
    c, o = u[base:base + n2], out[base:base + n2]
    m0, p0 = u[b0m:b0m + n2], u[b0p:b0p + n2]
    m1, p1 = u[b1m:b1m + n2], u[b1p:b1p + n2]
    acc = 0.0
    if n2 == 1:
        v = diag * c[0] - a0m * m0[0] - a0p * p0[0] - a1m * m1[0] - a1p * p1[0]
        o[0] = v
        return c[0] * v
    v = diag * c[0] - w2 * c[1] - a0m * m0[0] - a0p * p0[0] - a1m * m1[0] - a1p * p1[0]
    o[0] = v
    acc += c[0] * v
    if n0 == 1:  # 2-D (and 1-D): no axis-0 neighbours
        for k in range(1, n2 - 1):
            v = diag * c[k] - w2 * (c[k - 1] + c[k + 1]) - a1m * m1[k] - a1p * p1[k]
            o[k] = v
            acc += c[k] * v
    else:
        for k in range(1, n2 - 1):
            v = (diag * c[k] - w2 * (c[k - 1] + c[k + 1]) - a0m * m0[k] - a0p * p0[k]
                 - a1m * m1[k] - a1p * p1[k])
            o[k] = v
            acc += c[k] * v
    e = n2 - 1
    v = diag * c[e] - w2 * c[e - 1] - a0m * m0[e] - a0p * p0[e] - a1m * m1[e] - a1p * p1[e]
    o[e] = v
    acc += c[e] * v
    return acc


@njit(cache=True, fastmath=_FM, inline="always")
def _update_xp(x, p, r, lo, hi, alpha, beta, first):
    """x += alpha p, then p = r + beta p (p = r when `first`), on entries lo:hi."""
    xs, ps, rs = x[lo:hi], p[lo:hi], r[lo:hi]  # loops from 0: no negative-index handling, vectorised
    if first:
        for k in range(ps.shape[0]):
            ps[k] = rs[k]
    elif alpha == 0:
        for k in range(ps.shape[0]):
            ps[k] = rs[k] + beta * ps[k]
    else:
        for k in range(ps.shape[0]):
            xs[k] += alpha * ps[k]
            ps[k] = rs[k] + beta * ps[k]


@njit(cache=True, fastmath=_FM)
def _step(x, p, r, Ap, alpha, beta, first, n0, n1, n2, coef):
    """One fused pass: x += alpha p; p = r + beta p; Ap = A p; returns p . Ap (float64).

    The updates run a few grid rows ahead of the stencil rows that read them (cache-hot)."""
    rows = n0 * n1
    ahead = n1 if n0 > 1 else 1
    done = 0
    acc = 0.0
    for q in range(rows):
        need = min(q + ahead, rows - 1) + 1
        if need > done:
            _update_xp(x, p, r, done * n2, need * n2, alpha, beta, first)
            done = need
        acc += _stencil_row(p, Ap, q // n1, q % n1, n0, n1, n2, coef)
    return acc


@njit(cache=True, fastmath=_FM)
def _update_r(r, Ap, alpha):
    """r -= alpha A p; returns r . r (float64)."""
    acc = 0.0
    for i in range(r.shape[0]):
        ri = r[i] - alpha * Ap[i]
        r[i] = ri
        acc += ri * ri
    return acc


@njit(cache=True, parallel=True, fastmath=_FM)
def _cg_batch(x, r, p, rz, beta, rnorm, tol, status, active, iters, hist, budget, n0, n1, n2, coef):
    """Up to `budget` (<= hist.shape[0]) CG iterations of every active system; each system's column
    of `hist` (cap, batch) gets its residual norms, padded with the last one. Returns the steps taken.

    On return x is up to date; a system still active keeps `beta[s]` pending for its next direction
    (`p = r + beta p`); `beta[s] = -1` marks a system (re)starting with `p = r`."""
    batch, n = x.shape
    cap = hist.shape[0]
    steps = np.zeros(batch, np.int64)
    for s in prange(batch):
        xs, rs, ps = x[s], r[s], p[s]
        Ap = np.empty(n, x.dtype)
        scalar = np.zeros(2, x.dtype)  # alpha (pending for x), beta, in the vectors' dtype
        first = beta[s] < 0
        if not first:
            scalar[1] = beta[s]
        k = 0
        while active[s] and k < budget:
            pAp = _step(xs, ps, rs, Ap, scalar[0], scalar[1], first, n0, n1, n2, coef)
            first = False
            scalar[0] = 0
            k += 1
            if not (pAp > 0.0 and pAp < np.inf):  # A not positive definite, or NaN/Inf
                status[s] = _BREAKDOWN if pAp <= 0.0 else _NONFINITE
                active[s] = False
                hist[k - 1, s] = rnorm[s]
                break
            scalar[0] = rz[s] / pAp
            rr = _update_r(rs, Ap, scalar[0])
            rn = math.sqrt(rr)
            rnorm[s] = rn
            hist[k - 1, s] = rn
            iters[s] += 1
            if not (rn < np.inf):
                status[s] = _NONFINITE
                active[s] = False
            elif not (rn > tol[s]):
                status[s] = _SUCCESS
                active[s] = False
            elif not (rr > 0.0):
                status[s] = _BREAKDOWN
                active[s] = False
            else:
                scalar[1] = rr / rz[s]
                rz[s] = rr
                beta[s] = scalar[1]
        if scalar[0] != 0:  # the last step's x update
            alpha = scalar[0]
            for i in range(n):
                xs[i] += alpha * ps[i]
        for j in range(k, cap):
            hist[j, s] = rnorm[s]
        steps[s] = k
    return steps


@njit(cache=True, parallel=True, fastmath=_FM)
def _residual(b, x, r, n0, n1, n2, coef):
    """r = b - A x for every system; returns the norms."""
    batch, n = x.shape
    norms = np.empty(batch, np.float64)
    for s in prange(batch):
        rs, bs = r[s], b[s]
        for q in range(n0 * n1):
            _stencil_row(x[s], rs, q // n1, q % n1, n0, n1, n2, coef)
        acc = 0.0
        for i in range(n):
            v = bs[i] - rs[i]
            rs[i] = v
            acc += v * v
        norms[s] = math.sqrt(acc)
    return norms


def solve(P: Any, stencil: tuple[tuple[int, int, int], np.ndarray]):
    """CG with one residual replacement on the fused kernel for the set-up problem `P`
    (`KrylovSetup`); returns `(x, status, iterations, history, true residual norm)` like `cg._solve`."""
    (n0, n1, n2), coef = stencil
    threads = torch.get_num_threads()
    numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))
    if torch.get_num_threads() != threads:  # numba's OpenMP layer, on starting, resets the shared count
        torch.set_num_threads(threads)
    rows, n = math.prod(P.batch), P.n
    x = P.x.reshape(rows, n).contiguous().numpy()  # fresh tensors of the setup: updated in place
    r = P.r.reshape(rows, n).contiguous().numpy()
    bf = P.bf.reshape(rows, n).contiguous().numpy()
    p = np.empty_like(r)
    beta = np.full(rows, -1.0)  # every system starts with p = r
    rnorm = P.r_norm.reshape(rows).to(torch.float64).numpy().copy()
    rz = rnorm * rnorm
    tol = P.tol.reshape(rows).to(torch.float64).numpy().copy()
    status = P.status.reshape(rows).numpy().copy()
    active = P.active.reshape(rows).numpy().copy()
    iters = P.iterations.reshape(rows).numpy().copy()
    pieces: list[np.ndarray] = []

    def run(budget: int) -> int:
        k = 0
        while k < budget and active.any():
            hist = np.empty((min(_CAP, budget - k), rows), np.float64)
            m = int(_cg_batch(x, r, p, rz, beta, rnorm, tol, status, active, iters, hist, hist.shape[0],
                              n0, n1, n2, coef).max())
            pieces.append(hist[:m])
            k += m
        return k

    used = run(P.maxiter)
    # Residual replacement: restart, once, the systems whose true residual misses the tolerance.
    true_r = np.empty_like(r)
    true_norm = _residual(bf, x, true_r, n0, n1, n2, coef)
    redo = (status == _SUCCESS) & ~(true_norm <= tol)
    if used < P.maxiter and redo.any():
        r[redo] = true_r[redo]
        beta[redo] = -1.0
        rnorm[redo] = true_norm[redo]
        rz[redo] = true_norm[redo] ** 2
        status[redo] = _MAXIT
        active[:] = redo
        run(P.maxiter - used)
        true_norm = _residual(bf, x, true_r, n0, n1, n2, coef)

    real = P.real
    hist = np.concatenate(pieces) if pieces else np.empty((0, rows))
    history = [P.r_norm] + list(torch.from_numpy(hist).to(real).reshape(len(hist), *P.batch).unbind(0))
    shape = (*P.batch, n)
    return (torch.from_numpy(x).reshape(shape), torch.from_numpy(status).reshape(P.batch),
            torch.from_numpy(iters).reshape(P.batch), history,
            torch.from_numpy(true_norm).to(real).reshape(P.batch))
