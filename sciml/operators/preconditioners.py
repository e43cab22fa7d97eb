"""Preconditioners as operators (approximations of A^-1) and a by-name factory for solver configs."""
from __future__ import annotations

from typing import Any

import torch

from .base import LinearOperator
from .fourier import laplacian_inverse
from .stencil import DiffusionOperator
from .wrappers import MatrixOperator, ScipyOperator

PRECONDITIONERS = ("jacobi", "fft", "pyamg")


class DiagonalOperator(LinearOperator):
    """x -> d * x for a diagonal `d` of shape `in_shape` (real positive d: self-adjoint, definite)."""

    def __init__(self, d: torch.Tensor):
        real_positive = not d.is_complex() and bool((d > 0).all())
        super().__init__(tuple(d.shape), dtype=None, device=d.device, is_self_adjoint=not d.is_complex(),
                         is_positive_definite=real_positive)
        self.d = d

    def _d(self, x: torch.Tensor) -> torch.Tensor:
        """d in the precision of x (a float64 diagonal must not promote a float32 system)."""
        d = self.d
        if x.is_floating_point() or x.is_complex():
            real = x.dtype.to_real()
            if d.dtype.to_real() != real:
                d = d.to(real.to_complex() if d.is_complex() else real)
        return d

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        return self._d(x) * x

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return self._d(y).conj() * y


def diagonal_of(A: LinearOperator) -> torch.Tensor:
    """The diagonal of A as a tensor of `A.in_shape`, for operators that know it."""
    if hasattr(A, "diagonal"):
        return A.diagonal()
    if isinstance(A, MatrixOperator):
        m = A.matrix
        if m.shape[0] != m.shape[1]:
            raise ValueError(f"a diagonal preconditioner needs a square operator, got a {tuple(m.shape)} matrix")
        if m.layout == torch.strided:
            return m.diagonal().reshape(A.in_shape)
        coo = m.to_sparse_coo().coalesce()  # without densifying: sum the stored (i, i) entries
        (i, j), v = coo.indices(), coo.values()
        on = i == j
        return torch.zeros(m.shape[0], dtype=m.dtype, device=m.device).index_add_(0, i[on], v[on]).reshape(A.in_shape)
    raise TypeError(f"{type(A).__name__} has no known diagonal; give M as an operator instead of 'jacobi'")


def jacobi(A: LinearOperator) -> DiagonalOperator:
    """Jacobi preconditioner: `x -> x / diag(A)`; the diagonal must be non-zero."""
    d = diagonal_of(A)
    if bool((d == 0).any()):
        raise ValueError("Jacobi preconditioner: the operator has zeros on its diagonal")
    return DiagonalOperator(1 / d)


def fft_preconditioner(A: DiffusionOperator) -> LinearOperator:
    r"""Fast Poisson solve with the mean coefficients as a preconditioner for :math:`-\nabla\cdot(a\nabla u) + c u`.

    Uses :math:`(\bar a(-\Delta_h) + \max(\bar c, 0))^{-1}` with :math:`\bar a`, :math:`\bar c` the means of
    the coefficients; for an all-Neumann/periodic operator without reaction a small positive
    shift keeps it definite. Spectrally equivalent to A for smooth, bounded a.
    """
    if not isinstance(A, DiffusionOperator):
        raise TypeError(f"the 'fft' preconditioner needs a DiffusionOperator (a PDE on a grid), got {type(A).__name__}")
    a_bar = 1.0 if A.a is None else float(torch.stack([ad.mean() for ad in A.a]).mean())
    c_bar = 0.0 if A.c is None else max(float(torch.as_tensor(A.c).real.mean()), 0.0)
    shift = c_bar / a_bar
    if shift == 0 and "dirichlet" not in A.bc:
        shift = 1e-8 * sum(1 / (h * h) for h in A.spacing)
    return (1 / a_bar) * laplacian_inverse(A.in_shape, A.spacing, A.bc, shift, device=A.device)


def pyamg_preconditioner(A: LinearOperator, **options: Any) -> LinearOperator:
    """One smoothed-aggregation AMG V-cycle (pyamg, CPU) as a preconditioner; `options` go to
    `pyamg.smoothed_aggregation_solver`. Needs the assembled matrix: a sparse/dense `MatrixOperator`
    or a `DiffusionOperator` (assembled with `to_scipy()`)."""
    try:
        import pyamg
    except ImportError:
        raise ImportError("the 'pyamg' preconditioner needs pyamg: pip install pyamg") from None
    import scipy.sparse as sp

    if isinstance(A, DiffusionOperator):
        matrix = A.to_scipy()
    elif isinstance(A, MatrixOperator):
        m = A.to_dense() if A.matrix.layout == torch.strided else A.matrix.to_sparse_coo().coalesce()
        if m.layout == torch.strided:
            matrix = sp.csr_array(m.cpu().numpy())
        else:
            idx = m.indices().cpu().numpy()
            matrix = sp.csr_array((m.values().cpu().numpy(), (idx[0], idx[1])), shape=tuple(m.shape))
    else:
        raise TypeError(f"the 'pyamg' preconditioner needs an assembled operator, got {type(A).__name__}")
    ml = pyamg.smoothed_aggregation_solver(sp.csr_matrix(matrix), **options)
    P = ScipyOperator(ml.aspreconditioner(cycle="V"), in_shape=A.in_shape, is_self_adjoint=True,
                      is_positive_definite=True)
    P.dtype = None  # the V-cycle runs in float64 on the host and casts back: it serves float32 systems too
    return P


def make_preconditioner(M: Any, A: LinearOperator) -> Any:
    """Resolve a preconditioner given by name ("jacobi", "fft", "pyamg") for the operator A;
    anything else (an operator, a callable, None) is returned as is."""
    if not isinstance(M, str):
        return M
    builders = {"jacobi": jacobi, "fft": fft_preconditioner, "pyamg": pyamg_preconditioner}
    if M not in builders:
        raise ValueError(f"unknown preconditioner {M!r}; expected one of {', '.join(PRECONDITIONERS)}, or an operator")
    return builders[M](A)
