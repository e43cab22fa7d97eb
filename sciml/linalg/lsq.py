r"""Batched CGLS: least squares :math:`\min_x \|A x - b\|^2 + \mathrm{damp}^2\|x\|^2` for any (non-square) A.

Conjugate gradients on the normal equations :math:`(A^H A + \mathrm{damp}^2 I) x = A^H b` without
forming them: one product with :math:`A` and one with :math:`A^H` per iteration, with the residual
:math:`r = b - A x` updated in the data space, which is better conditioned numerically than CG on
`A.normal()` (Björck, *Numerical Methods for Least Squares Problems*, 1996, Alg. 7.4.1). Used by
CG-SENSE and by the data-consistency step of diffusion samplers.
"""
from __future__ import annotations

from typing import Any, Callable

import torch

from ..status import Status
from ._common import KrylovResult, check_finite, check_no_grad, check_tolerances, default_check_every, split_batch


def _adjoint_pair(A: Any, b: torch.Tensor) -> tuple[Callable, Callable, tuple[int, ...], tuple[int, ...]]:
    """`(apply, adjoint, in_shape, out_shape)` of `A` (a torch matrix is wrapped as a `MatrixOperator`);
    `b`'s precision must be `A`'s (a real `A` may meet complex data)."""
    if isinstance(A, torch.Tensor):
        from ..operators.wrappers import MatrixOperator

        if A.ndim != 2:
            raise ValueError(f"A must be a matrix, got a tensor of shape {tuple(A.shape)}")
        A = MatrixOperator(A)
    apply, adjoint = getattr(A, "apply", None), getattr(A, "adjoint", None)
    if not (callable(apply) and callable(adjoint) and hasattr(A, "in_shape")):
        raise TypeError(f"A must be a LinearOperator (with apply and adjoint) or a torch matrix, got {type(A).__name__}")
    dtype = getattr(A, "dtype", None)
    if dtype is not None and (b.real.dtype != dtype.to_real() or (dtype.is_complex and not b.is_complex())):
        raise ValueError(f"dtype mismatch: A has {dtype}, b has {b.dtype}")
    return apply, adjoint, tuple(A.in_shape), tuple(A.out_shape)


@torch.no_grad()
def cgls(
    A: Any,
    b: torch.Tensor,
    *,
    x0: torch.Tensor | None = None,
    damp: float = 0.0,
    rtol: float = 1e-5,
    atol: float = 0.0,
    maxiter: int | None = None,
    callback: Callable[[torch.Tensor], None] | None = None,
    check_every: int | None = None,
) -> KrylovResult:
    r"""CGLS for :math:`\min_x \|A x - b\|^2 + \mathrm{damp}^2 \|x\|^2`, batched over leading dims.

    Args:
        A: a `LinearOperator` with `apply` and `adjoint` (`in_shape` -> `out_shape`) or a torch
            matrix `(m, n)` (dense or sparse).
        b: data, `(*batch, *out_shape)`.
        x0: initial guess `(*batch, *in_shape)` (default zeros).
        damp: Tikhonov weight (scipy.sparse.linalg.lsqr's `damp`).
        rtol, atol: stop when the normal-equation residual
            :math:`s_k = A^H r_k - \mathrm{damp}^2 x_k` satisfies
            :math:`\|s_k\| \le \max(\mathrm{rtol}\,\|A^H b\|, \mathrm{atol})`, or when the data
            residual :math:`\|r_k\| \le \max(\mathrm{rtol}\,\|b\|, \mathrm{atol})` (consistent systems).
        maxiter: iteration cap (default `2 * n`, n the number of unknowns).
        callback: `callback(x)` after every iteration.
        check_every: iterations between host-side "all done" checks (default 1 on CPU, 10 on GPU).

    Returns:
        `KrylovResult`; `residuals` is the history of :math:`\|s_k\|`, `info["residual_norm"]` the
        final data residual :math:`\|b - A x\|`, `info["normal_residual_norm"]` the final :math:`\|s\|`.
        A non-finite value stops the system with `Status.NONFINITE`.

    Example:
        >>> A = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]], dtype=torch.float64)
        >>> cgls(A, torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64), rtol=1e-12).x     # (13/9, 10/9)
        tensor([1.4444, 1.1111], dtype=torch.float64)
    """
    check_tolerances(rtol, atol, maxiter)
    if not (isinstance(damp, (int, float)) and damp >= 0):
        raise ValueError(f"damp must be a number >= 0, got {damp!r}")
    apply, adjoint, in_shape, out_shape = _adjoint_pair(A, b)
    batch = split_batch(b, out_shape)
    check_finite(b, "b")
    check_no_grad(b, "b")
    n_in = 1
    for s in in_shape:
        n_in *= s
    maxiter = 2 * n_in if maxiter is None else maxiter
    check_every = check_every or default_check_every(b.device)
    d2 = float(damp) ** 2
    ndim_in, ndim_out = len(in_shape), len(out_shape)

    def norm(v: torch.Tensor, k: int) -> torch.Tensor:  # per system over the trailing k dims
        return torch.linalg.vector_norm(v, dim=tuple(range(-k, 0)))

    def bcast(s: torch.Tensor, k: int) -> torch.Tensor:
        return s.reshape(*s.shape, *([1] * k))

    if x0 is None:
        x = torch.zeros(*batch, *in_shape, dtype=b.dtype, device=b.device)
        r = b.clone()
    else:
        if tuple(x0.shape) != (*batch, *in_shape):
            raise ValueError(f"x0 has shape {tuple(x0.shape)}, expected {(*batch, *in_shape)}")
        check_finite(x0, "x0")
        check_no_grad(x0, "x0")
        x = x0.to(b.dtype, copy=True)
        r = b - apply(x)
    s = adjoint(r) - d2 * x
    b_norm = norm(b, ndim_out)
    tol_r = torch.clamp(rtol * b_norm, min=atol)
    tol_s = torch.clamp(rtol * norm(adjoint(b), ndim_in), min=atol)
    s_norm = norm(s, ndim_in)
    history = [s_norm]
    active = (s_norm > tol_s) & (norm(r, ndim_out) > tol_r)
    status = torch.where(active, Status.MAX_ITERATIONS, Status.SUCCESS).to(torch.int64)
    iterations = torch.zeros(batch, dtype=torch.int64, device=b.device)
    p = s.clone()
    gamma = s_norm**2
    done = not bool(active.any())
    k = 0
    while not done and k < maxiter:
        q = apply(p)
        delta = norm(q, ndim_out) ** 2 + d2 * norm(p, ndim_in) ** 2
        nonfinite = active & ~torch.isfinite(delta)
        status = torch.where(nonfinite, Status.NONFINITE, status)
        active = active & ~nonfinite
        alpha = torch.where(active, gamma / torch.where(active & (delta > 0), delta, 1), 0)
        x = x + bcast(alpha, ndim_in) * p
        r = torch.where(bcast(active, ndim_out), r - bcast(alpha, ndim_out) * q, r)
        s = adjoint(r) - d2 * x
        s_norm = norm(s, ndim_in)
        history.append(s_norm)
        iterations = iterations + active
        k += 1
        converged = active & ((s_norm <= tol_s) | (norm(r, ndim_out) <= tol_r))
        nonfinite = active & ~torch.isfinite(s_norm)
        status = torch.where(converged, Status.SUCCESS, torch.where(nonfinite, Status.NONFINITE, status))
        active = active & ~(converged | nonfinite)
        gamma_new = s_norm**2
        beta = torch.where(active, gamma_new / torch.where(gamma > 0, gamma, 1), 0)
        p = torch.where(bcast(active, ndim_in), s + bcast(beta, ndim_in) * p, 0)
        gamma = gamma_new
        if callback is not None:
            callback(x)
        if k % check_every == 0:
            done = not bool(active.any())

    result = KrylovResult(x, status, iterations, torch.stack(history), {})
    final_r = b - apply(x)
    result.info.update(
        reason=result.worst.message,
        residual_norm=norm(final_r, ndim_out),
        normal_residual_norm=norm(adjoint(final_r) - d2 * x, ndim_in),
        b_norm=b_norm,
        rtol=rtol,
        atol=atol,
        maxiter=maxiter,
        damp=damp,
    )
    return result
