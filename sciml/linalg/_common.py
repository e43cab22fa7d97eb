"""Shared plumbing for the Krylov kernels: operator normalisation, input checks, results."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from ..status import Status

Matvec = Callable[[torch.Tensor], torch.Tensor]


def sparse_matmul(S: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Apply a torch sparse (COO/CSR) matrix `S` (m, n) to `x` (..., n) -> (..., m).

    On CPU, sparse-times-dense-matrix products in torch are many times slower than sparse
    matrix-vector products (measured in benchmarks/cg_vs_scipy.py), so a batch is applied one
    vector at a time there; accelerators use one sparse-dense product.
    """
    n = S.shape[1]
    lead = x.shape[:-1]
    rows = x.reshape(-1, n)
    if rows.shape[0] == 1 or x.device.type == "cpu":
        y = torch.stack([torch.mv(S, row) for row in rows])
    else:
        y = (S @ rows.mT.contiguous()).mT
    return y.reshape(*lead, S.shape[0])


def as_matvec(A: Any, b: torch.Tensor) -> tuple[Matvec, tuple[int, ...]]:
    """Normalise `A` to `(matvec, in_shape)`.

    Accepted: a `LinearOperator` (anything with `apply` and `in_shape`), a square torch matrix
    (dense, COO or CSR; acts on the last dimension), or a plain callable, which is taken to map
    tensors shaped like `b` to tensors shaped like `b` (one unbatched system). Other matrix types
    (numpy, scipy) go through `sciml.operators.aslinearoperator` first.
    """
    if isinstance(A, torch.Tensor):
        if A.ndim != 2 or A.shape[0] != A.shape[1]:
            raise ValueError(f"A must be a square matrix, got a tensor of shape {tuple(A.shape)}")
        _check_like(A.dtype, A.device, b)
        if A.layout == torch.strided:
            return (lambda x: x @ A.mT), (A.shape[1],)
        return (lambda x: sparse_matmul(A, x)), (A.shape[1],)
    apply, in_shape = getattr(A, "apply", None), getattr(A, "in_shape", None)
    if callable(apply) and in_shape is not None:
        out_shape = getattr(A, "out_shape", in_shape)
        if tuple(out_shape) != tuple(in_shape):
            raise ValueError(
                f"A must be square: in_shape {tuple(in_shape)} != out_shape {tuple(out_shape)}; "
                "use a least-squares solver or A.normal() for rectangular operators"
            )
        _check_like(getattr(A, "dtype", None), getattr(A, "device", None), b)
        return apply, tuple(in_shape)
    if callable(A):
        return A, tuple(b.shape)
    raise TypeError(
        f"A must be a LinearOperator, a square torch matrix or a callable, got {type(A).__name__}; "
        "wrap numpy/scipy matrices with sciml.operators.aslinearoperator"
    )


def _check_like(dtype, device, b: torch.Tensor) -> None:
    if dtype is not None and dtype != b.dtype:
        raise ValueError(f"dtype mismatch: A has {dtype}, b has {b.dtype}")
    if device is not None and torch.device(device) != b.device:
        raise ValueError(f"device mismatch: A is on {device}, b is on {b.device}")


def split_batch(b: torch.Tensor, in_shape: tuple[int, ...], name: str = "b") -> tuple[int, ...]:
    """Return the batch shape of `b` = (*batch, *in_shape); raise a clear error otherwise."""
    k = len(in_shape)
    if tuple(b.shape[b.ndim - k:]) != in_shape or b.ndim < k:
        raise ValueError(
            f"{name} has shape {tuple(b.shape)}, expected (*batch, {', '.join(map(str, in_shape))}) "
            f"to match the operator's in_shape {in_shape}"
        )
    return tuple(b.shape[: b.ndim - k])


def check_finite(t: torch.Tensor, name: str) -> None:
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} contains NaN or Inf")


def check_tolerances(rtol: float, atol: float, maxiter: int | None) -> None:
    for key, val in (("rtol", rtol), ("atol", atol)):
        if not (isinstance(val, (int, float)) and math.isfinite(val) and val >= 0):
            raise ValueError(f"{key} must be a finite number >= 0, got {val!r}")
    if maxiter is not None and (not isinstance(maxiter, int) or isinstance(maxiter, bool) or maxiter < 1):
        raise ValueError(f"maxiter must be a positive integer or None, got {maxiter!r}")


def default_check_every(device: torch.device) -> int:
    """Iterations between host-side convergence checks: free on CPU, a sync on accelerators."""
    return 1 if device.type == "cpu" else 10


@dataclass
class KrylovResult:
    """Outcome of a batched Krylov solve.

    Attributes:
        x: solution, `(*batch, *in_shape)`.
        status: per-system `Status` codes, `(*batch,)` int64.
        iterations: per-system iteration counts, `(*batch,)` int64.
        residuals: history of residual 2-norms `||r_k||`, `(k+1, *batch)`.
        info: `reason` (message of the worst status), `residual_norm` (true `||b - A x||`, `(*batch,)`),
            `b_norm`, `rtol`, `atol`, `maxiter`.
    """

    x: torch.Tensor
    status: torch.Tensor
    iterations: torch.Tensor
    residuals: torch.Tensor
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def converged(self) -> torch.Tensor:
        """Per-system convergence flags, `(*batch,)` bool."""
        return self.status == Status.SUCCESS

    @property
    def worst(self) -> Status:
        return Status(int(self.status.max())) if self.status.numel() else Status.SUCCESS
