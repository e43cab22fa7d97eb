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

    On CPU, a sparse-times-dense-matrix product in torch is slower than one sparse matrix-vector
    product per vector for stencil-like matrices with a few non-zeros per row (measured in
    benchmarks/cg_vs_scipy.py), but reads the matrix once for the whole batch, which wins for dense
    rows such as a CT projector's (benchmarks/ct_operator.py): a CPU batch is applied one vector at a
    time when rows hold fewer than 16 non-zeros on average; accelerators always use one product.
    """
    n = S.shape[1]
    lead = x.shape[:-1]
    rows = x.reshape(-1, n)
    sparse_rows = S._nnz() < 16 * S.shape[0]
    if rows.shape[0] == 1 or (x.device.type == "cpu" and sparse_rows):
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
            f"to match the operator's shape {in_shape}"
        )
    return tuple(b.shape[: b.ndim - k])


def check_finite(t: torch.Tensor, name: str) -> None:
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} contains NaN or Inf")


def check_no_grad(t: torch.Tensor | None, name: str) -> None:
    """The Krylov kernels are not differentiable (they run under `torch.no_grad` and update their
    vectors in place): a `t` that requires grad is an error rather than a silently detached result."""
    if t is not None and t.requires_grad:
        raise ValueError(f"{name} requires grad, but the Krylov solvers are not differentiable; pass "
                         f"{name}.detach() (or build it under torch.no_grad())")


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


class KrylovSetup:
    r"""The setup and the wrap-up every batched Krylov kernel repeats, done once.

    Construction checks the tolerances, normalises `A` (and `M`) to matvecs with `as_matvec`,
    splits `b` into `(*batch, *in_shape)`, flattens each system to a vector of `n` entries, checks
    `b`/`x0`, and forms the initial iterate and residual. `result` assembles the `KrylovResult`.

    Attributes:
        b: the right-hand side as given, `(*batch, *in_shape)`.
        batch, in_shape, n: batch shape, shape of one system, unknowns per system.
        bf: `b` flattened, `(*batch, n)`.
        x: initial iterate `(*batch, n)`, a fresh tensor (zeros, or a copy of `x0`); a system with
            :math:`b = 0` starts (and, being solved exactly, ends) at :math:`x = 0`, as in scipy.
        r: initial residual :math:`b - A x`, `(*batch, n)`.
        b_norm, r_norm: :math:`\|b\|`, :math:`\|r_0\|`, `(*batch,)` real.
        tol: :math:`\max(\mathrm{rtol}\,\|b\|, \mathrm{atol})`, `(*batch,)` real.
        status, active, iterations: initial per-system state, `(*batch,)`: `Status.SUCCESS` (inactive)
            where :math:`\|r_0\| \le` tol, `Status.NONFINITE` (inactive) where :math:`\|r_0\|` is not
            finite (e.g. `A x0` overflowed), else `Status.MAX_ITERATIONS` (active); zero iterations.
        maxiter: `maxiter`, or `maxiter_factor * n` when it is None. check_every: as given or
            `default_check_every`. rtol, atol: as given. real: the real dtype of `b`.
        has_M: whether a preconditioner was given (`pre` is the identity otherwise).

    Example (the body of a kernel)::

        P = KrylovSetup(A, b, x0=x0, M=M, rtol=rtol, atol=atol, maxiter=maxiter, check_every=check_every)
        x, r, status, active, iterations = P.x, P.r, P.status, P.active, P.iterations
        history = [P.r_norm]
        ...  # iterate with P.mv, P.pre, P.dot, P.norm on (*batch, n) tensors
        return P.result(x, status, iterations, history)
    """

    def __init__(
        self,
        A: Any,
        b: torch.Tensor,
        *,
        x0: torch.Tensor | None,
        M: Any,
        rtol: float,
        atol: float,
        maxiter: int | None,
        check_every: int | None,
        maxiter_factor: int = 10,
    ):
        if not isinstance(b, torch.Tensor):
            raise TypeError(f"b must be a torch.Tensor, got {type(b).__name__}")
        check_tolerances(rtol, atol, maxiter)
        if check_every is not None and (
            not isinstance(check_every, int) or isinstance(check_every, bool) or check_every < 1
        ):
            raise ValueError(f"check_every must be a positive integer or None, got {check_every!r}")
        self._matvec, self.in_shape = as_matvec(A, b)
        self.batch = split_batch(b, self.in_shape)
        check_finite(b, "b")
        check_no_grad(b, "b")
        check_no_grad(x0 if isinstance(x0, torch.Tensor) else None, "x0")
        self._precond = as_matvec(M, b)[0] if M is not None else None
        self.has_M = M is not None
        self.b = b
        self.n = math.prod(self.in_shape)
        self.maxiter = maxiter_factor * self.n if maxiter is None else maxiter
        self.check_every = check_every or default_check_every(b.device)
        self.rtol, self.atol = rtol, atol
        self.real = b.real.dtype

        self.bf = self.flat(b)
        self.b_norm = self.norm(self.bf)
        self.tol = torch.clamp(rtol * self.b_norm, min=atol)
        if x0 is None:
            self.x = torch.zeros_like(self.bf)
            self.r = self.bf.clone()
        else:
            if not isinstance(x0, torch.Tensor) or x0.shape != b.shape:
                shape = tuple(x0.shape) if isinstance(x0, torch.Tensor) else type(x0).__name__
                raise ValueError(f"x0 has shape {shape}, expected {tuple(b.shape)} like b")
            check_finite(x0, "x0")
            zero_b = (self.b_norm == 0).unsqueeze(-1)
            self.x = torch.where(zero_b, 0, self.flat(x0).to(device=b.device, dtype=b.dtype))
            self.r = torch.where(zero_b, 0, self.bf - self.mv(self.x))
        self.r_norm = self.norm(self.r)
        finite = torch.isfinite(self.r_norm)
        self.active = finite & (self.r_norm > self.tol)
        self.status = torch.where(
            self.active, Status.MAX_ITERATIONS, torch.where(finite, Status.SUCCESS, Status.NONFINITE)
        ).to(torch.int64)
        self.iterations = torch.zeros(self.batch, dtype=torch.int64, device=b.device)

    def flat(self, v: torch.Tensor) -> torch.Tensor:
        """`(*batch, *in_shape) -> (*batch, n)`."""
        return v.reshape(*self.batch, self.n)

    def mv(self, v: torch.Tensor) -> torch.Tensor:
        """:math:`A v` for flat `v`, `(*batch, n) -> (*batch, n)`."""
        return self.flat(self._matvec(v.reshape(*self.batch, *self.in_shape)))

    def pre(self, v: torch.Tensor) -> torch.Tensor:
        """:math:`M v` for flat `v` (`v` itself without a preconditioner)."""
        return v if self._precond is None else self.flat(self._precond(v.reshape(*self.batch, *self.in_shape)))

    @staticmethod
    def dot(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """:math:`u^H v` per system, `(*batch,)`; complex for complex inputs (take `.real` for HPD methods).

        Product and sum: about 2.5x faster than `torch.linalg.vecdot` on CPU for batches (measured).
        """
        return (u.conj() * v).sum(-1)

    @staticmethod
    def norm(v: torch.Tensor) -> torch.Tensor:
        """:math:`\\|v\\|_2` per system, `(*batch,)` real."""
        return torch.linalg.vector_norm(v, dim=-1)

    def result(
        self,
        x: torch.Tensor,
        status: torch.Tensor,
        iterations: torch.Tensor,
        history: list[torch.Tensor],
        *,
        messages: dict[Status, str] | None = None,
        check_true_residual: bool = True,
        true_residual: torch.Tensor | None = None,
        **info: Any,
    ) -> KrylovResult:
        """Assemble the `KrylovResult` from the flat `x`: computes the true residual `||b - A x||`.

        `messages` overrides `Status.message` for the kernel's own meaning of a status (e.g. what
        a breakdown is); `info` entries are added to `result.info`. With `check_true_residual`, a
        system reported converged whose true residual misses `tol` gets `Status.STAGNATION`.
        `true_residual` (the norms of `b - A x` for this `x`) saves the product when already known.
        """
        if true_residual is None:
            true_residual = self.norm(self.bf - self.mv(x))
        if check_true_residual:
            missed = (status == Status.SUCCESS) & ~(true_residual <= self.tol)
            status = torch.where(missed, Status.STAGNATION, status)
        result = KrylovResult(x.reshape(self.b.shape), status, iterations, torch.stack(history), {})
        worst = result.worst
        result.info.update(
            reason=(messages or {}).get(worst, worst.message),
            residual_norm=true_residual,
            b_norm=self.b_norm,
            rtol=self.rtol,
            atol=self.atol,
            maxiter=self.maxiter,
            **info,
        )
        return result
