r"""Matrix-free finite-difference operators on rectangular grids (1-, 2- and 3-D).

The diffusion-reaction operator :math:`L u = -\nabla\cdot(a \nabla u) + c\,u` with the standard
conservative (5-point in 2-D, 7-point in 3-D) stencil. Per axis, the boundary condition fixes the
ghost value beyond each end of the grid:

- ``"dirichlet"``: node-centred, the n unknowns are interior nodes, ghost = 0 (the boundary node);
- ``"neumann"``: cell-centred, the n unknowns are cell centres, ghost = edge value (zero flux);
- ``"periodic"``: ghost = the value at the other end.

Face coefficients ``a[d]`` live on the n+1 faces along axis d (faces 0 and n coincide for periodic).
With these rules the operator is self-adjoint, and positive definite for a > 0, c >= 0 and at least
one Dirichlet axis (or c > 0).
"""
from __future__ import annotations

from typing import Any, Sequence

import torch

from ..linalg.poisson import BOUNDARY_CONDITIONS, normalize_bc, normalize_spacing
from .base import LinearOperator, _as_shape

__all__ = ["BOUNDARY_CONDITIONS", "DiffusionOperator", "diffusion_apply", "laplacian", "laplacian_apply", "normalize_bc",
           "normalize_spacing", "pad_ghosts"]

def pad_ghosts(u: torch.Tensor, axis: int, bc: str, lo: Any = None, hi: Any = None) -> torch.Tensor:
    """Append one ghost layer at each end of `axis` by the rule of `bc`, plus optional offsets `lo`/`hi`.

    The offsets make the boundary condition inhomogeneous (affine): Dirichlet values, Neumann fluxes.
    """
    n = u.shape[axis]
    first, last = u.narrow(axis, 0, 1), u.narrow(axis, n - 1, 1)
    if bc == "dirichlet":
        g_lo, g_hi = torch.zeros_like(first), torch.zeros_like(last)
    elif bc == "neumann":
        g_lo, g_hi = first, last
    else:
        g_lo, g_hi = last, first
    if lo is not None:
        g_lo = g_lo + lo
    if hi is not None:
        g_hi = g_hi + hi
    return torch.cat([g_lo, u, g_hi], dim=axis)


def laplacian_apply(u: torch.Tensor, spacing: Sequence[float], bc: Sequence[str], c: Any = None, *,
                    out: torch.Tensor | None = None) -> torch.Tensor:
    r"""Apply :math:`-\Delta_h u + c u` (constant coefficient a = 1) on the trailing `len(spacing)` dims.

    Same result as `diffusion_apply` with `a=None`, about twice as fast: one pass for the diagonal and
    one in-place pass per neighbour term (a shifted view of the grid, no padding, no temporaries);
    Neumann/periodic ghosts add a pass over the two boundary slabs. Few kernel launches, which
    matters when an iterative solver applies it to small (cache-sized) batches.
    `out`: optional contiguous tensor shaped like the result (not overlapping `u`) to write into; an
    iterative solver passes the same buffer every iteration, which on the CPU saves the page faults
    of a fresh large allocation per product.
    """
    u = u.contiguous()
    ndim = len(spacing)
    weights = [1.0 / (h * h) for h in spacing]
    diag = 2.0 * sum(weights)
    scale = diag if c is None else diag + c
    if (out is not None and out.shape == u.shape and out.is_contiguous() and out.device == u.device
            and out.dtype == torch.result_type(u, scale)
            and (not isinstance(scale, torch.Tensor) or torch.broadcast_shapes(scale.shape, u.shape) == u.shape)):
        out = torch.mul(u, scale, out=out)
    else:
        out = u * scale
    for d, (w, kind) in enumerate(zip(weights, bc)):
        axis = u.ndim - ndim + d
        n = u.shape[axis]
        if n > 1:  # neighbours i-1 and i+1 inside the grid (the Dirichlet ghosts are 0)
            out.narrow(axis, 1, n - 1).sub_(u.narrow(axis, 0, n - 1), alpha=w)
            out.narrow(axis, 0, n - 1).sub_(u.narrow(axis, 1, n - 1), alpha=w)
        if kind != "dirichlet":
            first, last = u.narrow(axis, 0, 1), u.narrow(axis, n - 1, 1)
            lo, hi = (first, last) if kind == "neumann" else (last, first)  # neumann: ghost = edge value
            out.narrow(axis, 0, 1).sub_(lo, alpha=w)                        # periodic: the other end
            out.narrow(axis, n - 1, 1).sub_(hi, alpha=w)
    return out


def diffusion_apply(u: torch.Tensor, spacing: Sequence[float], bc: Sequence[str], a: Sequence[Any] | None = None,
                    c: Any = None, ghosts: Sequence[tuple[Any, Any]] | None = None) -> torch.Tensor:
    r"""Apply :math:`-\nabla\cdot(a\nabla u) + c u` on the trailing `len(spacing)` dims of `u` `(*batch, *grid)`.

    `a[d]`: face coefficients along axis d, shape broadcastable to the grid with n+1 along axis d, or None (a = 1).
    `c`: scalar or tensor broadcastable to the grid, or None. `ghosts[d] = (lo, hi)`: ghost offsets (see `pad_ghosts`).
    """
    ndim = len(spacing)
    out = None if c is None else c * u
    for d, (h, kind) in enumerate(zip(spacing, bc)):
        axis = u.ndim - ndim + d
        lo, hi = ghosts[d] if ghosts is not None else (None, None)
        flux = torch.diff(pad_ghosts(u, axis, kind, lo, hi), dim=axis)
        if a is not None and a[d] is not None:
            flux = a[d] * flux
        term = torch.diff(flux, dim=axis) / (-h * h)
        out = term if out is None else out + term
    return out


class DiffusionOperator(LinearOperator):
    r"""Matrix-free :math:`-\nabla\cdot(a\nabla u) + c u` on a grid; see the module docstring for the stencil.

    Args:
        grid_shape: unknowns per axis, e.g. `(H, W)`.
        spacing: grid step per axis (or one for all).
        bc: boundary condition per axis (or one for all): "dirichlet", "neumann", "periodic".
        a: per-axis face coefficients (tensors with n+1 entries along their axis), or None for a = 1.
        c: reaction coefficient, scalar or tensor of `grid_shape`, or None.
        dtype, device: of the tensors it acts on (None: any).
    """

    def __init__(self, grid_shape: Any, spacing: Any = 1.0, bc: Any = "dirichlet", *, a: Sequence[torch.Tensor] | None = None,
                 c: Any = None, dtype: torch.dtype | None = None, device: Any = None):
        grid_shape = _as_shape(grid_shape, "grid_shape")
        ndim = len(grid_shape)
        if not 1 <= ndim <= 3:
            raise ValueError(f"grid_shape must have 1, 2 or 3 axes, got {grid_shape}")
        self.spacing = normalize_spacing(spacing, ndim)
        self.bc = self_bc = normalize_bc(bc, ndim)
        if a is not None:
            a = tuple(a)
            for d, ad in enumerate(a):
                want = list(grid_shape)
                want[d] += 1
                if tuple(ad.shape) != tuple(want):
                    raise ValueError(f"a[{d}] must have shape {tuple(want)} (faces along axis {d}), got {tuple(ad.shape)}")
                if self_bc[d] == "periodic" and not torch.equal(ad.narrow(d, 0, 1), ad.narrow(d, want[d] - 1, 1)):
                    raise ValueError(f"a[{d}]: on a periodic axis the first and last faces are the same face "
                                     "and must hold equal coefficients")
        self.a, self.c = a, c
        coeffs = [t for t in (*(a or ()), c) if isinstance(t, torch.Tensor)]
        real = all(not t.is_complex() for t in coeffs) and not isinstance(c, complex)
        positive = real and (a is None or all(bool((ad > 0).all()) for ad in a))
        c_min = 0.0 if c is None else (float(c.real.min()) if isinstance(c, torch.Tensor) else float(c.real if isinstance(c, complex) else c))
        definite = positive and c_min >= 0 and ("dirichlet" in self.bc or c_min > 0)
        super().__init__(grid_shape, dtype=dtype, device=device, is_self_adjoint=real, is_positive_definite=definite)

    @property
    def batch_independent(self) -> bool:
        """True when every system of a batch sees the same operator (coefficients without batch
        dimensions), so that a batch may be split into chunks (`sciml.linalg.cg` does on the CPU)."""
        c = self.c
        return not (isinstance(c, torch.Tensor) and c.ndim > len(self.in_shape))

    def apply(self, x: torch.Tensor, *, out: torch.Tensor | None = None) -> torch.Tensor:
        """A x; `out` (optional) is a buffer the result may be written into (see `laplacian_apply`):
        use the returned tensor, which is `out` only where the fast path could use it."""
        if self.a is None:
            return laplacian_apply(x, self.spacing, self.bc, self.c, out=out)
        return diffusion_apply(x, self.spacing, self.bc, self.a, self.c)

    def _face_pairs(self, d: int) -> tuple[torch.Tensor | float, torch.Tensor | float]:
        """Coefficients of the low and high face of every unknown along axis d, `grid_shape` each
        (floats 1.0 when a = 1); a face whose flux the boundary condition zeroes (Neumann) gives 0."""
        n = self.in_shape[d]
        if self.a is None:
            lo = torch.ones(self.in_shape, dtype=torch.float64)
            hi = torch.ones(self.in_shape, dtype=torch.float64)
        else:
            lo, hi = self.a[d].narrow(d, 0, n).clone(), self.a[d].narrow(d, 1, n).clone()
        if self.bc[d] == "neumann":
            lo.narrow(d, 0, 1).zero_()
            hi.narrow(d, n - 1, 1).zero_()
        return lo, hi

    def diagonal(self) -> torch.Tensor:
        """The diagonal of the stencil matrix, `grid_shape` (for Jacobi preconditioning)."""
        diag = torch.zeros(self.in_shape, dtype=self.dtype or torch.float64, device=self.device)
        for d, h in enumerate(self.spacing):
            if self.bc[d] == "periodic" and self.in_shape[d] == 1:
                continue  # one unknown on a periodic axis is its own neighbour: the terms cancel
            lo, hi = self._face_pairs(d)
            diag = diag + (lo.to(diag) + hi.to(diag)) / (h * h)
        return diag if self.c is None else diag + self.c

    def to_scipy(self):
        """The stencil as a `scipy.sparse.csr_array` `(N, N)`, N = prod(grid_shape), row-major order.

        For peers that need an assembled matrix (scipy solvers, pyamg) and for checks.
        """
        import numpy as np
        import scipy.sparse as sp

        N = self.in_size
        index = np.arange(N).reshape(self.in_shape)
        rows, cols, vals = [index.ravel()], [index.ravel()], [self.diagonal().cpu().numpy().ravel()]
        for d, h in enumerate(self.spacing):
            if self.bc[d] == "periodic" and self.in_shape[d] == 1:
                continue  # no coupling along this axis (see diagonal())
            lo, _ = self._face_pairs(d)
            lo = lo.cpu().numpy()
            n = self.in_shape[d]
            for shift in (1, -1):  # neighbour i-1 couples through face lo[i]; i+1 through lo[i+1]
                nbr = np.roll(index, shift, axis=d)
                weight = lo if shift == 1 else np.roll(lo, -1, axis=d)
                keep = np.ones(self.in_shape, dtype=bool)
                if self.bc[d] != "periodic":
                    edge = [slice(None)] * len(self.in_shape)
                    edge[d] = slice(0, 1) if shift == 1 else slice(n - 1, n)
                    keep[tuple(edge)] = False
                rows.append(index[keep])
                cols.append(nbr[keep])
                vals.append(-weight[keep] / (h * h))
        matrix = sp.coo_array((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(N, N))
        return sp.csr_array(matrix)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        if self.is_self_adjoint:
            return self.apply(y)
        conj = (lambda t: t.conj() if isinstance(t, torch.Tensor) else (t.conjugate() if t is not None else None))
        a = None if self.a is None else tuple(conj(t) for t in self.a)
        return diffusion_apply(y, self.spacing, self.bc, a, conj(self.c))


def laplacian(grid_shape: Any, spacing: Any = 1.0, bc: Any = "dirichlet", *, dtype: torch.dtype | None = None,
              device: Any = None) -> DiffusionOperator:
    r"""Matrix-free negative Laplacian :math:`-\Delta` (5-point in 2-D, 7-point in 3-D), batched.

    SPD for Dirichlet; positive semi-definite with the constants as null space for all-Neumann or
    all-periodic. `bc` is one of "dirichlet", "neumann", "periodic", or one per axis.

    Example:
        >>> L = laplacian((3,), bc="dirichlet")
        >>> L @ torch.ones(3)
        tensor([1., 0., 1.])
    """
    return DiffusionOperator(grid_shape, spacing, bc, dtype=dtype, device=device)
