r"""Batched (preconditioned) conjugate gradients for Hermitian positive definite systems.

Solves :math:`A x = b` for every system in a batch at once, each with its own stopping test
:math:`\|b - A x_k\| \le \max(\mathrm{rtol}\,\|b\|, \mathrm{atol})`. Systems that have stopped no
longer change. The loop does no host synchronisation except one `any()` every `check_every`
iterations. Reference: Hestenes & Stiefel (1952); Saad, *Iterative Methods*, Alg. 9.1.
"""
from __future__ import annotations

import inspect
import math
from typing import Any, Callable

import numpy as np
import torch

from ..status import Status
from ._common import KrylovResult, KrylovSetup


@torch.no_grad()
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

    Performance (CPU): the loop allocates no vector-sized temporaries (an operator whose `apply`
    takes `out=`, such as `DiffusionOperator`, writes every product into one reused buffer), and a
    large batch is solved in cache-sized chunks of systems, one chunk after another, when the
    operators are known to treat every system alike (square torch matrices, or a true
    `batch_independent` attribute, e.g. `laplacian(...)`) and no callback is given. Chunking does
    not change the per-system results (the same floating-point operations per system); the residual
    history of a chunk that stops early is padded with its final values. With numba installed
    (extra `fast`), the constant-coefficient all-Dirichlet Laplacian (`laplacian(...)`, optionally
    with a scalar shift c) on CPU float32/float64 without `M` or `callback` runs a fused kernel
    instead: each system iterates to its own convergence in one thread, in cache, with two passes
    over its vectors per iteration (dot products accumulated in float64; the same statuses, stopping
    rule and residual replacement). `info["kernel"]` says which ran: "fused-stencil" or "torch".

    Raises:
        ValueError: shape, dtype or device mismatch, NaN/Inf in `b` or `x0`, invalid tolerances.

    Example:
        >>> A = torch.tensor([[4.0, 1.0], [1.0, 3.0]], dtype=torch.float64)
        >>> cg(A, torch.ones(2, dtype=torch.float64), rtol=1e-12).x     # (2/11, 3/11)
        tensor([0.1818, 0.2727], dtype=torch.float64)
    """
    P = KrylovSetup(A, b, x0=x0, M=M, rtol=rtol, atol=atol, maxiter=maxiter, check_every=check_every)
    rows = math.prod(P.batch)
    stencil = stencil_of(A, b) if M is None and callback is None and rows > 0 and P.n > 0 else None
    fused = _fused_module() if stencil is not None else None  # numba is imported only for such operators
    if fused is not None:
        x, status, iterations, history, true_norm = fused.solve(P, stencil)
        return P.result(x, status, iterations, history, true_residual=true_norm, kernel="fused-stencil")
    chunk = _chunk_rows(P, A, M, rows, callback)
    if chunk >= rows:
        x, status, iterations, history, true_norm = _solve(P, _buffered(A, P.mv), P.pre, P.x.clone(), P.r.clone(),
                                                           P.active, P.status, P.iterations, P.tol, callback)
        return P.result(x, status, iterations, history, true_residual=true_norm, kernel="torch")

    # Cache-sized chunks: the whole iteration for `chunk` systems at a time, so that the vectors of
    # one chunk stay in cache across the dozen passes of an iteration (see `_chunk_rows`).
    n, in_shape = P.n, P.in_shape

    def mv_plain(v: torch.Tensor) -> torch.Tensor:
        return P._matvec(v.reshape(v.shape[0], *in_shape)).reshape(v.shape[0], n)

    mv = _buffered(A, mv_plain)

    def pre(v: torch.Tensor) -> torch.Tensor:
        return v if P._precond is None else P._precond(v.reshape(v.shape[0], *in_shape)).reshape(v.shape[0], n)

    def flat(t: torch.Tensor) -> torch.Tensor:
        return t.reshape(rows, *t.shape[len(P.batch):])

    bf, x0f, r0f = flat(P.bf), flat(P.x), flat(P.r)
    active, status0, iters0, tol = flat(P.active), flat(P.status), flat(P.iterations), flat(P.tol)
    x = torch.empty_like(bf)
    status, iterations, true_norm = torch.empty_like(status0), torch.empty_like(iters0), torch.empty_like(tol)
    histories = []
    for s in range(0, rows, chunk):
        e = min(s + chunk, rows)
        xc, st, it, hist, tn = _solve(P, mv, pre, x0f[s:e].clone(), r0f[s:e].clone(), active[s:e], status0[s:e],
                                      iters0[s:e], tol[s:e], None, bf=bf[s:e])
        x[s:e], status[s:e], iterations[s:e], true_norm[s:e] = xc, st, it, tn
        histories.append(hist)
    # A stopped system's residual no longer changes: pad the shorter histories with their last entry.
    length = max(len(h) for h in histories)
    history = torch.cat([torch.stack(h + [h[-1]] * (length - len(h))) for h in histories], dim=1)
    history = list(history.reshape(length, *P.batch).unbind(0))
    return P.result(x.reshape(*P.batch, n), status.reshape(P.batch), iterations.reshape(P.batch), history,
                    true_residual=true_norm.reshape(P.batch), kernel="torch")


_FUSED: list = []


def stencil_of(A: Any, b: torch.Tensor) -> tuple[tuple[int, int, int], np.ndarray] | None:
    """`((n0, n1, n2), coef)` when `A` is a constant-coefficient all-Dirichlet `DiffusionOperator`
    (optional real scalar c) and `b` a CPU float32/float64 tensor, the case of the fused kernel; None
    otherwise. coef = (diagonal, w0, w1, w2), missing leading axes padded with size 1 and weight 0."""
    from ..operators.stencil import DiffusionOperator

    if type(A) is not DiffusionOperator or A.a is not None or b.device.type != "cpu":
        return None
    if b.dtype not in (torch.float32, torch.float64) or b.requires_grad:
        return None
    c = A.c
    if c is None:
        c = 0.0
    elif isinstance(c, torch.Tensor) and c.ndim == 0 and not c.is_complex() and not c.requires_grad:
        c = float(c)
    elif not isinstance(c, (int, float)) or isinstance(c, bool):
        return None
    if any(kind != "dirichlet" for kind in A.bc):
        return None
    shape = tuple(int(s) for s in A.in_shape)
    weights = [1.0 / (h * h) for h in A.spacing]
    diag = 2.0 * sum(weights) + c
    pad = 3 - len(shape)
    dims = (1,) * pad + shape
    w = [0.0] * pad + weights
    dtype = np.float32 if b.dtype == torch.float32 else np.float64
    return dims, np.array([diag, *w], dtype=dtype)


def _fused_module():
    """The numba kernels of `_fused`, or None when numba is not installed (imported on first use)."""
    if not _FUSED:
        try:
            from . import _fused
        except ImportError:
            _fused = None
        _FUSED.append(_fused)
    return _FUSED[0]


# Per-chunk working-set budget of the chunked batch path (bytes), counted as six vectors per system
# (x, r, p, A p, the dot-product scratch, the operator's temporaries). Measured on a 2-core EPYC (2 MiB
# L2 per core, 32 MiB shared L3) with the 32 x 128^2 Poisson batch of benchmarks/cg_vs_scipy.py, one
# torch thread: no chunking 1.13 s, 24 MiB 1.07 s, 16 MiB 0.69 s, 8 MiB 0.82 s, 4 MiB 1.12 s (smaller
# chunks pay the per-kernel launch cost of the many small per-system operations more often).
_CHUNK_BYTES = 16 << 20


def _chunk_rows(P: KrylovSetup, A: Any, M: Any, rows: int, callback: Any) -> int:
    """Systems per chunk: all of them unless the batch is processed in cache-sized chunks.

    Chunking needs operators that act on every system alike (a system's result must not depend on
    its position in the batch): square torch matrices, and operators that say so with a true
    `batch_independent` attribute (e.g. `DiffusionOperator` with unbatched coefficients). It is
    used on the CPU only (accelerators want the whole batch in one kernel), and not with a callback
    (which sees the whole batch every iteration)."""
    if callback is not None or rows <= 1 or P.b.device.type != "cpu" or len(P.in_shape) == 0:
        return rows
    if not all(op is None or (isinstance(op, torch.Tensor) and op.ndim == 2) or getattr(op, "batch_independent", False)
               is True for op in (A, M)):
        return rows
    per_system = 6 * P.n * P.b.element_size()
    chunk = max(1, _CHUNK_BYTES // per_system)
    if chunk >= rows:
        return rows
    pieces = -(-rows // chunk)
    return -(-rows // pieces)  # equal chunks


def _buffered(A: Any, mv: Callable) -> Callable:
    """`mv`, or, for an operator whose `apply` takes `out=` (e.g. `DiffusionOperator`), a matvec that
    writes every product into one reused buffer: on the CPU a fresh vector-sized allocation per
    iteration costs page faults (up to ~10x the time of the product itself, measured). The returned
    product is valid until the next call."""
    apply = getattr(A, "apply", None)
    if isinstance(A, torch.Tensor) or not callable(apply):
        return mv
    try:
        params = inspect.signature(apply).parameters
    except (TypeError, ValueError):
        return mv
    if "out" not in params or params["out"].kind not in (inspect.Parameter.KEYWORD_ONLY,
                                                          inspect.Parameter.POSITIONAL_OR_KEYWORD):
        return mv
    in_shape = tuple(A.in_shape)
    buffers: dict = {}

    def mv_into(v: torch.Tensor) -> torch.Tensor:
        shaped = v.reshape(*v.shape[:-1], *in_shape)
        key = (shaped.shape, v.dtype, v.device)
        buf = buffers.get(key)
        if buf is None:
            buffers.clear()
            buf = buffers[key] = torch.empty(shaped.shape, dtype=v.dtype, device=v.device)
        return apply(shaped, out=buf).reshape(v.shape)

    return mv_into


def _solve(P: KrylovSetup, mv: Callable, pre: Callable, x: torch.Tensor, r: torch.Tensor, active: torch.Tensor,
           status: torch.Tensor, iterations: torch.Tensor, tol: torch.Tensor, callback: Callable | None,
           bf: torch.Tensor | None = None):
    """CG with one residual replacement for the systems `x, r` (flat, `(rows, n)`); returns
    `(x, status, iterations, history, true residual norm or None)`."""
    bf = P.bf if bf is None else bf
    history = [P.norm(r)]
    x, r, status, iterations, used = _iterate(P, mv, pre, x, r, active, status, iterations, tol, history,
                                              P.maxiter, callback)
    # Residual replacement: restart, once, the systems whose true residual misses the tolerance.
    true_r = bf - mv(x)
    true_norm = P.norm(true_r)
    redo = (status == Status.SUCCESS) & ~(true_norm <= tol)
    if used < P.maxiter and bool(redo.any()):
        r = torch.where(redo.unsqueeze(-1), true_r, r)
        status = torch.where(redo, Status.MAX_ITERATIONS, status)
        x, r, status, iterations, _ = _iterate(P, mv, pre, x, r, redo, status, iterations, tol, history,
                                               P.maxiter - used, callback)
        true_norm = None if bf is P.bf else P.norm(bf - mv(x))
    return x, status, iterations, history, true_norm


def _iterate(P: KrylovSetup, mv: Callable, pre: Callable, x: torch.Tensor, r: torch.Tensor, active: torch.Tensor,
             status: torch.Tensor, iterations: torch.Tensor, tol: torch.Tensor, history: list, budget: int,
             callback: Callable | None):
    """Run CG from `(x, r)` for the `active` systems, at most `budget` iterations; appends to `history`.

    No vector-sized temporaries are allocated in the loop besides the operator's output: the dot
    product goes through one preallocated scratch vector (fresh large allocations cost page faults
    on every iteration on the CPU), and the updates are in place."""
    scratch = torch.empty_like(r)
    z = pre(r)
    rz = _dot(r, z, scratch)
    p = z.clone()
    inf = float("inf")
    done = not bool(active.any())
    k = 0
    while not done and k < budget:
        Ap = mv(p)
        pAp = _dot(p, Ap, scratch)
        # Breakdown: p^H A p <= 0 means A is not positive definite; NaN/Inf means non-finite values.
        ok = (pAp > 0) & (pAp < inf)
        status = torch.where(active & ~ok, torch.where(pAp <= 0, Status.BREAKDOWN, Status.NONFINITE), status)
        active = active & ok

        # alpha = 0 freezes a stopped system; in-place updates avoid temporaries (memory-bound loop).
        alpha = torch.where(active, rz / pAp, 0).unsqueeze(-1)
        x.addcmul_(alpha, p)
        r.addcmul_(alpha, Ap, value=-1)
        del Ap
        r_norm = P.norm(r)
        history.append(r_norm)
        iterations = iterations + active
        k += 1

        # go on: finite and above the tolerance; a stopping system converged if finite, else NONFINITE
        finite = r_norm < inf
        go = finite & (r_norm > tol)
        status = torch.where(active & ~go, torch.where(finite, Status.SUCCESS, Status.NONFINITE), status)
        active = active & go

        if P.has_M:
            z = pre(r)
            rz_new = _dot(r, z, scratch)
        else:
            z, rz_new = r, r_norm * r_norm
        positive = rz_new > 0  # r^H M r <= 0: preconditioner not positive definite
        status = torch.where(active & ~positive, Status.BREAKDOWN, status)
        active = active & positive
        beta = torch.where(active, rz_new / rz, 0).unsqueeze(-1)
        # p = z + beta p in one pass; a stopped system has beta = 0 and alpha = 0 from now on, so its x
        # no longer changes (a system stopped as NONFINITE may carry NaN into its own x).
        torch.addcmul(z, beta, p, out=p)
        rz = rz_new

        if callback is not None:
            callback(x.reshape(P.b.shape))
        if k % P.check_every == 0:
            done = not bool(active.any())
    return x, r, status, iterations, k


def _dot(u: torch.Tensor, v: torch.Tensor, scratch: torch.Tensor) -> torch.Tensor:
    """Re(u^H v) per system through the preallocated `scratch` (shaped like `u`)."""
    if u.is_complex():
        return torch.mul(u.conj(), v, out=scratch).sum(-1).real
    return torch.mul(u, v, out=scratch).sum(-1)
