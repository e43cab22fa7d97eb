r"""The exact inverse of the finite-difference (shifted) Laplacian, applied by fast transforms.

`LaplacianInverseOperator` wraps `sciml.linalg.poisson.poisson_solve` as a `LinearOperator`: it applies
:math:`(-\Delta_h + \sigma)^{-1}` for the operator `laplacian(grid_shape, spacing, bc)` of
`sciml.operators.stencil`, in O(N log N). Uses: the exact solver of constant-coefficient problems,
and a preconditioner `M` for `sciml.linalg.cg` on variable-coefficient diffusion problems (the
iteration count then no longer grows with the grid).
"""
from __future__ import annotations

from typing import Any

import torch

from ..linalg.poisson import (_check_nonsingular, _check_shift, _facr_solve, _poisson_apply, _poisson_multiplier, _use_facr,
                              poisson_eigenvalues)
from .base import LinearOperator, _as_shape
from .stencil import normalize_bc, normalize_spacing


class LaplacianInverseOperator(LinearOperator):
    r""":math:`(-\Delta_h + \sigma)^{-1}` on a grid, by DST-I / DCT-II / FFT per axis (see `poisson_solve`).

    With no Dirichlet axis and :math:`\sigma = 0` the Laplacian is singular (constants); the
    operator is then its pseudo-inverse: it returns the zero-mean solution for the zero-mean part of
    the input (self-adjoint, positive semi-definite but not definite). A shift that makes
    :math:`-\Delta_h + \sigma` singular otherwise raises ValueError at construction.

    Tags: self-adjoint for a real shift; positive definite when :math:`-\Delta_h + \sigma` is, i.e.
    when its smallest eigenvalue :math:`\lambda_{\min} + \sigma` is positive (any Dirichlet axis with
    :math:`\sigma > -\lambda_{\min}`, or :math:`\sigma > 0`). A complex shift gives a non-self-adjoint
    operator whose adjoint uses :math:`\bar\sigma`.

    Args:
        grid_shape: unknowns per axis, e.g. `(H, W)` (1, 2 or 3 axes).
        spacing: grid step, one for all axes or one per axis.
        bc: "dirichlet", "neumann" or "periodic", one for all axes or one per axis.
        shift: the constant :math:`\sigma` (real or complex; :math:`-k^2` for Helmholtz).
        dtype, device: of the tensors it acts on (None: any float/complex dtype, any device).

    Example:
        >>> from sciml.operators import laplacian
        >>> L = laplacian((31, 31), spacing=1 / 32)
        >>> Linv = LaplacianInverseOperator((31, 31), spacing=1 / 32)
        >>> u = torch.randn(31, 31, dtype=torch.float64)
        >>> bool(torch.allclose(Linv @ (L @ u), u))
        True
    """

    def __init__(self, grid_shape: Any, spacing: Any = 1.0, bc: Any = "dirichlet", shift: Any = 0.0, *,
                 dtype: torch.dtype | None = None, device: Any = None):
        grid_shape = _as_shape(grid_shape, "grid_shape")
        ndim = len(grid_shape)
        if not 1 <= ndim <= 3:
            raise ValueError(f"grid_shape must have 1, 2 or 3 axes, got {grid_shape}")
        self.spacing = normalize_spacing(spacing, ndim)
        self.bc = normalize_bc(bc, ndim)
        self.shift = _check_shift(shift)
        real = not isinstance(self.shift, complex)
        lam = poisson_eigenvalues(grid_shape, self.spacing, self.bc)
        _check_nonsingular(lam, self.shift)     # ValueError for a shift that cancels an eigenvalue
        self.singular = "dirichlet" not in self.bc and self.shift == 0
        lam_min = sum(float(t.min()) for t in lam)
        definite = real and not self.singular and lam_min + self.shift > 0
        super().__init__(grid_shape, dtype=dtype, device=device, is_self_adjoint=real, is_positive_definite=definite)
        self._multipliers: dict[tuple, torch.Tensor] = {}

    def _multiplier(self, x: torch.Tensor, shift: float | complex) -> torch.Tensor:
        complex_path = x.is_complex() or isinstance(shift, complex)
        key = (x.dtype.to_real(), x.device, complex_path, shift)
        inv = self._multipliers.get(key)
        if inv is None:
            inv = _poisson_multiplier(self.in_shape, self.spacing, self.bc, shift, complex_path, x.dtype, x.device)
            self._multipliers[key] = inv
        return inv

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        if _use_facr(x, self.in_shape, self.bc, self.shift, x.is_complex() or isinstance(self.shift, complex)):
            return _facr_solve(x, self.spacing, self.bc, float(self.shift))  # large 2-D CPU grids: 2 transforms
        return _poisson_apply(x, self.bc, self._multiplier(x, self.shift))

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        if self.is_self_adjoint:
            return self.apply(y)
        shift = self.shift.conjugate()
        return _poisson_apply(y, self.bc, self._multiplier(y, shift))

    def to(self, device: Any = None, dtype: torch.dtype | None = None) -> "LaplacianInverseOperator":
        new = super().to(device, dtype)
        new._multipliers = {}
        return new


def laplacian_inverse(grid_shape: Any, spacing: Any = 1.0, bc: Any = "dirichlet", shift: Any = 0.0, *,
                      dtype: torch.dtype | None = None, device: Any = None) -> LaplacianInverseOperator:
    r"""The exact inverse of `laplacian(grid_shape, spacing, bc)` plus `shift`: :math:`(-\Delta_h + \sigma)^{-1}`.

    A `LaplacianInverseOperator`; use it as the solver of constant-coefficient problems or as the
    preconditioner `M` of `sciml.linalg.cg` for variable-coefficient diffusion.

    Example:
        >>> from sciml.linalg import cg
        >>> from sciml.operators import DiffusionOperator
        >>> n = 31
        >>> f64 = {"dtype": torch.float64}
        >>> A = DiffusionOperator((n, n), 1 / (n + 1), a=[torch.full((n + 1, n), 2.0, **f64), torch.ones(n, n + 1, **f64)])
        >>> M = laplacian_inverse((n, n), 1 / (n + 1))
        >>> res = cg(A, torch.ones(n, n, **f64), M=M, rtol=1e-8)
        >>> res.converged.item(), res.iterations.item() < 15     # CG alone: 75 iterations
        (True, True)
    """
    return LaplacianInverseOperator(grid_shape, spacing, bc, shift, dtype=dtype, device=device)
