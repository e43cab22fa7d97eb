"""Wrap matrices and functions as `LinearOperator`s: `aslinearoperator`."""
from __future__ import annotations

import warnings
from typing import Any, Callable

import numpy as np
import torch

from ..linalg import sparse_matmul
from .base import LinearOperator


class MatrixOperator(LinearOperator):
    """A torch matrix `(m, n)`, dense or sparse (COO/CSR), acting on the last dims of `(*batch, *in_shape)`.

    `in_shape`/`out_shape` reshape the flat n/m vectors (e.g. a matrix assembled on an (H, W) grid).
    """

    def __init__(self, matrix: torch.Tensor, in_shape: Any = None, out_shape: Any = None, **tags: bool):
        if matrix.ndim != 2:
            raise ValueError(f"matrix must be 2-D, got shape {tuple(matrix.shape)}")
        m, n = matrix.shape
        in_shape, out_shape = _default_shapes(in_shape, out_shape, m, n)
        super().__init__(in_shape, out_shape, dtype=matrix.dtype, device=matrix.device, **tags)
        if self.in_size != n or self.out_size != m:
            raise ValueError(f"in_shape {self.in_shape} / out_shape {self.out_shape} do not match a {m}x{n} matrix")
        self.matrix = matrix
        sparse = matrix.layout != torch.strided
        # A sparse adjoint is transposed once, in the matrix's layout; a dense one is a view.
        mh = matrix.mH if matrix.is_complex() else matrix.mT
        if sparse:
            mh = mh.to_sparse_csr() if matrix.layout == torch.sparse_csr else mh.coalesce()
        self.matrix_h = mh

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        return _product(self.matrix, x, self.in_shape, self.out_shape)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return _product(self.matrix_h, y, self.out_shape, self.in_shape)

    def to_dense(self) -> torch.Tensor:
        return self.matrix.to_dense() if self.matrix.layout != torch.strided else self.matrix


def _default_shapes(in_shape: Any, out_shape: Any, m: int, n: int) -> tuple[Any, Any]:
    """Default shapes of an (m, n) matrix: `(n,)` and `(m,)`; a square matrix given only `in_shape`
    maps that shape to itself (like `LinearOperator`, whose `out_shape` defaults to `in_shape`)."""
    if out_shape is None:
        out_shape = in_shape if in_shape is not None and m == n else (m,)
    return (n,) if in_shape is None else in_shape, out_shape


def _product(M: torch.Tensor, x: torch.Tensor, in_shape: tuple, out_shape: tuple) -> torch.Tensor:
    """`M @ x` over the trailing `in_shape` dims of x, for a dense or sparse matrix M; a real M acts on
    a complex x part by part (as scipy's operators do), a real x meets a complex M in M's dtype."""
    if x.is_complex() and not M.is_complex():
        return torch.complex(_product(M, x.real, in_shape, out_shape), _product(M, x.imag, in_shape, out_shape))
    if M.is_complex() and not x.is_complex():
        x = x.to(M.dtype)
    lead = x.shape[: x.ndim - len(in_shape)]
    flat = x.reshape(*lead, M.shape[1])
    y = sparse_matmul(M, flat) if M.layout != torch.strided else flat @ M.mT
    return y.reshape(*lead, *out_shape)


class FunctionOperator(LinearOperator):
    """An operator from functions: `matvec(x)` and optionally `rmatvec(y)` (the adjoint).

    Both must accept leading batch dimensions: `matvec` maps `(*batch, *in_shape) -> (*batch, *out_shape)`.
    """

    def __init__(self, matvec: Callable, rmatvec: Callable | None = None, *, in_shape: Any, out_shape: Any = None,
                 dtype: torch.dtype | None = None, device: Any = None, **tags: bool):
        if not callable(matvec) or (rmatvec is not None and not callable(rmatvec)):
            raise TypeError("matvec and rmatvec must be callables")
        super().__init__(in_shape, out_shape, dtype=dtype, device=device, **tags)
        self.matvec, self.rmatvec = matvec, rmatvec

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        return self.matvec(x)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        if self.rmatvec is not None:
            return self.rmatvec(y)
        return super().adjoint(y)


class ScipyOperator(LinearOperator):
    """A `scipy.sparse.linalg.LinearOperator` (host NumPy code); `rmatvec` gives the adjoint.

    Each product copies to NumPy and back, so prefer torch operators on accelerators.
    """

    def __init__(self, op: Any, in_shape: Any = None, out_shape: Any = None, **tags: bool):
        m, n = op.shape
        dtype = torch.from_numpy(np.zeros(0, dtype=op.dtype)).dtype
        in_shape, out_shape = _default_shapes(in_shape, out_shape, m, n)
        super().__init__(in_shape, out_shape, dtype=dtype, **tags)
        self.op = op

    def _run(self, fn: Callable, x: torch.Tensor, shape_in: tuple, shape_out: tuple) -> torch.Tensor:
        lead = x.shape[: x.ndim - len(shape_in)]
        cols = x.reshape(-1, int(np.prod(shape_in))).detach().cpu().numpy().T
        y = np.asarray(fn(cols)).T
        return torch.from_numpy(np.ascontiguousarray(y)).to(x.device, x.dtype).reshape(*lead, *shape_out)

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        return self._run(self.op.matmat, x, self.in_shape, self.out_shape)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        if self.is_self_adjoint:
            return self.apply(y)
        return self._run(self.op.rmatmat, y, self.out_shape, self.in_shape)


def aslinearoperator(obj: Any, *, in_shape: Any = None, out_shape: Any = None, dtype: torch.dtype | None = None,
                     device: Any = None, is_self_adjoint: bool = False, is_positive_definite: bool = False) -> LinearOperator:
    """Turn a matrix, an operator or functions into a `LinearOperator`.

    Args:
        obj: one of
            - a `LinearOperator` (returned as is);
            - a torch tensor `(m, n)`, dense or sparse COO/CSR;
            - a NumPy array `(m, n)` or a SciPy sparse matrix/array (converted to torch, CSR for sparse);
            - a `scipy.sparse.linalg.LinearOperator` (its `rmatvec` is the adjoint);
            - a callable `matvec`, or a pair `(matvec, rmatvec)` of torch functions; these need `in_shape`.
        in_shape, out_shape: shapes of one input/output (default: the matrix's `(n,)` and `(m,)`).
        dtype, device: for matrices, cast/move; for functions, the dtype/device they expect (optional).
        is_self_adjoint, is_positive_definite: declared tags (not verified).

    Example:
        >>> import scipy.sparse as sp
        >>> A = aslinearoperator(sp.eye(3, format="csr"), is_self_adjoint=True)
        >>> A @ torch.ones(2, 3, dtype=torch.float64)
        tensor([[1., 1., 1.],
                [1., 1., 1.]], dtype=torch.float64)
    """
    tags = dict(is_self_adjoint=is_self_adjoint, is_positive_definite=is_positive_definite)
    if isinstance(obj, LinearOperator):
        return obj
    matrix = _as_torch_matrix(obj)
    if matrix is not None:
        if dtype is not None or device is not None:
            matrix = matrix.to(device=device, dtype=dtype)
        return MatrixOperator(matrix, in_shape, out_shape, **tags)
    if _is_scipy_operator(obj):
        return ScipyOperator(obj, in_shape, out_shape, **tags)
    if isinstance(obj, tuple) and len(obj) == 2 and all(callable(f) for f in obj):
        matvec, rmatvec = obj
    elif callable(obj):
        matvec, rmatvec = obj, None
    else:
        raise TypeError(
            f"cannot make a LinearOperator from {type(obj).__name__}: expected a LinearOperator, a torch/NumPy "
            "matrix, a SciPy sparse matrix or LinearOperator, a callable, or a (matvec, rmatvec) pair"
        )
    if in_shape is None:
        raise ValueError("in_shape is required when wrapping a function (and out_shape if it differs)")
    return FunctionOperator(matvec, rmatvec, in_shape=in_shape, out_shape=out_shape, dtype=dtype, device=device, **tags)


def _is_scipy_operator(obj: Any) -> bool:
    import scipy.sparse.linalg as spla

    return isinstance(obj, spla.LinearOperator)


def is_function(obj: Any) -> bool:
    """True for a plain callable (not an operator or a matrix): it needs shapes to become an operator."""
    return callable(obj) and not isinstance(obj, (LinearOperator, torch.Tensor, np.ndarray)) and not _is_scipy_operator(obj)


def _as_torch_matrix(obj: Any) -> torch.Tensor | None:
    if isinstance(obj, torch.Tensor):
        return obj
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(obj))
    import scipy.sparse as sp

    if sp.issparse(obj):
        csr = sp.csr_array(obj)
        csr.sort_indices()
        return csr_tensor(torch.from_numpy(csr.indptr), torch.from_numpy(csr.indices), torch.from_numpy(csr.data), csr.shape)
    return None


def csr_tensor(crow: torch.Tensor, col: torch.Tensor, values: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """A torch CSR matrix from valid CSR arrays (columns sorted within each row), with int32 indices where
    they fit (faster CPU products) and without torch's "beta" warning."""
    index = torch.int32 if values.numel() < 2**31 - 1 else torch.int64
    with warnings.catch_warnings():  # torch flags CSR support as beta on every construction
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(crow.to(index), col.to(index), values, size=tuple(shape), check_invariants=False)
