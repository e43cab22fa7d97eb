r"""Fast exact Poisson/Helmholtz solver on rectangles: :math:`(-\Delta_h + \sigma) u = f`.

`poisson_solve` inverts the finite-difference negative Laplacian of `sciml.operators.laplacian`
(3-point stencil per axis, unknowns placed as there): per axis, "dirichlet" is diagonalised by
DST-I, "neumann" (cell-centred) by DCT-II and "periodic" by the DFT; see `poisson_eigenvalues`.
All-Neumann/periodic without shift is singular: the zero mode is handled explicitly (the
right-hand side is projected to zero mean and the zero-mean solution returned). This module sits
below `sciml.operators`; the operator wrapper is `sciml.operators.LaplacianInverseOperator`.
"""
from __future__ import annotations

import functools
import math
import numbers
from typing import Any, Sequence

import torch

from .fft import _blocked, _check_tensor, _dct2, _dct3, _dst1

BOUNDARY_CONDITIONS = ("dirichlet", "neumann", "periodic")


# ================================================================================================
# Fast Poisson / Helmholtz solver
# ================================================================================================
def normalize_bc(bc: Any, ndim: int) -> tuple[str, ...]:
    """One boundary condition per grid axis ("dirichlet", "neumann", "periodic"), validated."""
    bcs = (bc,) * ndim if isinstance(bc, str) else tuple(bc)
    if len(bcs) != ndim:
        raise ValueError(f"bc must be one name or {ndim} names (one per axis), got {bc!r}")
    for b in bcs:
        if b not in BOUNDARY_CONDITIONS:
            raise ValueError(f"unknown boundary condition {b!r} in bc; "
                             f"expected one of {', '.join(BOUNDARY_CONDITIONS)}")
    return bcs


def normalize_spacing(spacing: Any, ndim: int) -> tuple[float, ...]:
    """One positive grid step per axis, validated."""
    if isinstance(spacing, numbers.Real) and not isinstance(spacing, bool):
        h = (float(spacing),) * ndim
    else:
        try:
            h = tuple(float(s) for s in spacing)
        except (TypeError, ValueError):
            raise TypeError(f"spacing must be a number or a sequence of numbers, got {spacing!r}") from None
    if len(h) != ndim or not all(math.isfinite(s) and s > 0 for s in h):
        raise ValueError(f"spacing must be one positive number or {ndim} (one per axis), got {spacing!r}")
    return h


def _grid_ndim(bc: Any, spacing: Any, ndim: int | None) -> int:
    if ndim is not None:
        if not isinstance(ndim, int) or isinstance(ndim, bool) or ndim < 1:
            raise ValueError(f"ndim must be a positive int, got {ndim!r}")
        return ndim
    if not isinstance(bc, str):
        return len(tuple(bc))
    if not (isinstance(spacing, numbers.Real) and not isinstance(spacing, bool)):
        return len(tuple(spacing))
    raise ValueError("cannot tell how many trailing dimensions are grid axes: give bc or spacing per axis, or ndim=")


def _check_shift(shift: Any) -> float | complex:
    if isinstance(shift, torch.Tensor):
        if shift.numel() != 1:
            raise ValueError(f"shift must be a scalar, got a tensor of shape {tuple(shift.shape)}")
        shift = shift.item()
    if isinstance(shift, bool) or not isinstance(shift, numbers.Number):
        raise TypeError(f"shift must be a real or complex number, got {type(shift).__name__}")
    if isinstance(shift, numbers.Real):
        val: float | complex = float(shift)
    else:
        val = complex(shift)
        if val.imag == 0:
            val = val.real
    if not math.isfinite(abs(val)):
        raise ValueError(f"shift must be finite, got {shift!r}")
    return val


def poisson_eigenvalues(grid_shape: Sequence[int] | int, spacing: Any = 1.0, bc: Any = "dirichlet", *,
                        dtype: torch.dtype = torch.float64, device: Any = None) -> tuple[torch.Tensor, ...]:
    r"""Per-axis eigenvalues of the finite-difference :math:`-\Delta_h`, shaped to broadcast.

    Axis d (n points, step h) contributes, in the order of its transform's coefficients:

    - "dirichlet" (DST-I): :math:`\frac{4}{h^2}\sin^2\frac{\pi k}{2(n+1)}`, :math:`k = 1..n`;
    - "neumann" (DCT-II): :math:`\frac{4}{h^2}\sin^2\frac{\pi k}{2n}`, :math:`k = 0..n-1`;
    - "periodic" (DFT, FFT order): :math:`\frac{4}{h^2}\sin^2\frac{\pi k}{n}`, :math:`k = 0..n-1`.

    The eigenvalues of :math:`-\Delta_h` are the sums over axes, `sum(poisson_eigenvalues(...))`.

    Args:
        grid_shape: points per axis, `(n_0, ..., n_{D-1})`.
        spacing: grid step, one for all axes or one per axis.
        bc: boundary condition, one for all axes or one per axis.
        dtype, device: of the returned tensors (computed in float64).

    Returns:
        A tuple of D tensors; entry d has shape `(1, ..., n_d, ..., 1)` (D dimensions).

    Example:
        >>> lam = poisson_eigenvalues((3,), spacing=0.25, bc="dirichlet")[0]
        >>> lam  # 64 sin^2(pi k / 8), k = 1..3
        tensor([ 9.3726, 32.0000, 54.6274], dtype=torch.float64)
    """
    shape = (grid_shape,) if isinstance(grid_shape, numbers.Integral) else tuple(grid_shape)
    if not shape or any(not isinstance(s, numbers.Integral) or isinstance(s, bool) or s < 1 for s in shape):
        raise ValueError(f"grid_shape must be a positive int or a non-empty sequence of them, got {grid_shape!r}")
    shape = tuple(int(s) for s in shape)
    D = len(shape)
    bcs, hs = normalize_bc(bc, D), normalize_spacing(spacing, D)
    out = []
    for d, (n, h, b) in enumerate(zip(shape, hs, bcs)):
        if b == "dirichlet":
            theta = torch.arange(1, n + 1, dtype=torch.float64) * (math.pi / (2 * (n + 1)))
        elif b == "neumann":
            theta = torch.arange(n, dtype=torch.float64) * (math.pi / (2 * n))
        else:
            theta = torch.arange(n, dtype=torch.float64) * (math.pi / n)
        lam = (4.0 / (h * h)) * torch.sin(theta) ** 2
        view = [1] * D
        view[d] = n
        out.append(lam.reshape(view).to(device=device, dtype=dtype))
    return tuple(out)


_SINGULAR_RTOL = 64 * torch.finfo(torch.float64).eps


def _check_nonsingular(lam: Sequence[torch.Tensor], shift: float | complex) -> None:
    """Raise ValueError if `shift` cancels an eigenvalue sum(lam[d][k_d]) to within round-off.

    Costs O((N / n_max) log n_max), not O(N): the sums over all axes but the longest are searched
    in the sorted eigenvalues of the longest axis for the value nearest to -Re(shift)."""
    if shift == 0:      # the eigenvalues are >= 0, and the zero mode (if any) is projected away
        return
    vecs = sorted((t.flatten() for t in lam), key=len)
    partial = torch.zeros(1, dtype=torch.float64)
    for v in vecs[:-1]:
        partial = (partial[:, None] + v[None, :]).flatten()
    last = vecs[-1].sort().values
    target = -complex(shift).real - partial
    hi = torch.searchsorted(last, target).clamp_(max=len(last) - 1)
    lo = (hi - 1).clamp_(min=0)
    cand = torch.stack([last[lo], last[hi]])       # the neighbours in `last` of every target
    nearest = (cand - target).abs().min(dim=0)
    i = int(nearest.values.argmin())
    eig = float(partial[i] + cand[int(nearest.indices[i]), i])
    dist = math.hypot(float(nearest.values[i]), complex(shift).imag)
    lam_max = sum(float(v.max()) for v in vecs)
    if dist <= _SINGULAR_RTOL * max(lam_max, abs(shift)):
        raise ValueError(
            f"shift={shift!r} makes (-Laplacian + shift) singular: -shift is, to round-off, the eigenvalue "
            f"{eig:.6g} of -Laplacian; choose another shift"
        )


def _poisson_multiplier(grid: tuple[int, ...], spacing: tuple[float, ...], bcs: tuple[str, ...],
                        shift: float | complex, complex_path: bool, dtype: torch.dtype, device: Any) -> torch.Tensor:
    """1 / (eigenvalues of -Delta_h + shift) in the layout of the transformed data, divided by the
    transforms' normalisation (the unnormalised pairs compose to 2(n+1), 2n and 1 times the identity),
    with 0 at the zero mode of the singular all-Neumann/periodic case (which projects it away).
    `complex_path`: periodic axes use fftn (full length) instead of rfftn (last periodic axis halved).
    Two passes over the grid (a broadcast sum and an in-place reciprocal), plus a cast for float32."""
    lam = poisson_eigenvalues(grid, spacing, bcs)
    _check_nonsingular(lam, shift)
    periodic = [d for d, b in enumerate(bcs) if b == "periodic"]
    if periodic and not complex_path:
        last = periodic[-1]
        lam = tuple(t.narrow(last, 0, grid[last] // 2 + 1) if d == last else t for d, t in enumerate(lam))
    norm = math.prod(2 * (n + 1) if b == "dirichlet" else 2 * n if b == "neumann" else 1 for n, b in zip(grid, bcs))
    vecs = [t.to(device) * norm for t in lam]          # fresh tensors: in-place below is safe
    vecs[0] = vecs[0] + shift * norm
    denom = functools.reduce(torch.add, vecs)
    zero_mode = "dirichlet" not in bcs and shift == 0
    if zero_mode:
        denom.view(-1)[0] = 1.0
    inv = denom.reciprocal_()
    if zero_mode:
        inv.view(-1)[0] = 0.0
    real = dtype.to_real()
    return inv.to(dtype=real.to_complex() if inv.is_complex() else real)


def _poisson_apply(f: torch.Tensor, bcs: tuple[str, ...], inv: torch.Tensor) -> torch.Tensor:
    """Solve with a multiplier from `_poisson_multiplier` (built with complex_path = f or shift complex).

    The real-to-real transforms run along the last dimension of a contiguous array: a transform
    along another axis reads that axis as the rows of a transposed view (the reads gather it, see
    `_blocked`) and leaves its result with that axis last. The data are never transposed by a
    separate copy: for two Dirichlet/Neumann axes the forward pass ends in transposed layout, the
    multiplier is applied there (a transposed view of it), and the inverse pass, taking the axes in
    the reverse order, ends back in the original layout."""
    D = len(bcs)
    lead = f.ndim - D
    axes = [lead + d for d in range(D)]
    periodic = [a for a, b in zip(axes, bcs) if b == "periodic"]
    forward = {"dirichlet": _dst1_raw, "neumann": _dct2_raw}
    inverse = {"dirichlet": _dst1_raw, "neumann": _dct3_raw}
    order = list(range(f.ndim))     # g's dimension i holds original axis order[i]
    g = f
    r2r = [(a, b) for a, b in zip(axes, bcs) if b != "periodic"]
    spare = None                    # a buffer of ours that is free again (saves fresh allocations)
    for a, b in reversed(r2r):      # the last axis first: no transposition for it
        prev = g
        g, order = _r2r_raw(g, order, a, forward[b], b == "dirichlet", spare)
        spare = prev if prev is not f and prev.is_contiguous() and not prev.is_complex() else None
    if periodic:  # the FFTs run in the original layout
        g = g.permute([order.index(i) for i in range(f.ndim)])
        order = list(range(f.ndim))
    complex_path = g.is_complex() or inv.is_complex()
    if periodic:
        g = torch.fft.fftn(g, dim=periodic) if complex_path else torch.fft.rfftn(g, dim=periodic)
    mult = inv.reshape((1,) * lead + tuple(inv.shape)).permute(order) if inv.ndim == D else inv
    g = g.mul_(mult) if (g.dtype == torch.result_type(g, mult) and g is not f
                        and torch.broadcast_shapes(g.shape, mult.shape) == g.shape) else g * mult
    if periodic:
        s = [f.shape[a] for a in periodic]
        g = torch.fft.ifftn(g, dim=periodic) if complex_path else torch.fft.irfftn(g, s=s, dim=periodic)
    for a, b in r2r:                # the reverse order: ends in the original layout
        prev = g
        g, order = _r2r_raw(g, order, a, inverse[b], b == "dirichlet", spare)
        spare = prev if prev is not f and prev.is_contiguous() and not prev.is_complex() else None
    return g.permute([order.index(i) for i in range(f.ndim)])


def _dst1_raw(t: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    return _dst1(t, 1.0, out=out)


def _dct2_raw(t: torch.Tensor) -> torch.Tensor:
    return _dct2(t, 1.0, 1.0)


def _dct3_raw(t: torch.Tensor) -> torch.Tensor:
    return _dct3(t, 1.0, 1.0)


def _r2r_raw(x: torch.Tensor, order: list, axis: int, kernel: Any, into: bool,
             spare: torch.Tensor | None = None) -> tuple[torch.Tensor, list]:
    """Apply a last-dim real kernel along original axis `axis` of `x`, whose dimension i holds
    original axis `order[i]`; complex tensors part by part. Returns the (contiguous) result with
    that axis last, and its order. `spare`: a free contiguous buffer for the result, used when it
    fits (see `_blocked`)."""
    if x.is_complex():
        re, new = _r2r_raw(x.real, order, axis, kernel, into)
        im, _ = _r2r_raw(x.imag, order, axis, kernel, into)
        return torch.complex(re, im), new
    i = order.index(axis)
    new = order[:i] + order[i + 1:] + [axis]
    if not (into and spare is not None and spare.numel() == x.numel() and spare.dtype == x.dtype
            and spare.device == x.device and spare.is_contiguous()):
        spare = None
    return _blocked(kernel, x.movedim(i, -1), into, spare), new


def poisson_solve(f: torch.Tensor, spacing: Any = 1.0, bc: Any = "dirichlet", shift: Any = 0.0, *,
                  ndim: int | None = None) -> torch.Tensor:
    r"""Solve :math:`(-\Delta_h + \sigma)\,u = f` exactly on a grid, batched, in O(N log N).

    :math:`-\Delta_h` is the finite-difference negative Laplacian of `sciml.operators.laplacian`
    (the 3-point stencil :math:`(-u_{i-1} + 2u_i - u_{i+1})/h^2` on every axis) with, per axis:

    - "dirichlet": node-centred interior unknowns, ghost value 0 -> diagonalised by DST-I;
    - "neumann": cell-centred unknowns, ghost = edge value -> diagonalised by DCT-II;
    - "periodic": -> diagonalised by the DFT.

    So :math:`u = T^{-1} (\Lambda + \sigma)^{-1} T f` with the separable transform T and the
    eigenvalues of `poisson_eigenvalues`. (The transforms are used unnormalised and their
    normalisation is folded into the divisor: the same result as orthonormal transforms, with no
    extra scaling passes.)

    Singular cases. Without Dirichlet axis and with `shift == 0`, :math:`-\Delta_h` has the
    constants as null space: the solver then returns the zero-mean solution for the zero-mean
    (compatible) part of `f`, i.e. :math:`u = L^{+} f` (pseudo-inverse); `f - mean(f)` is what
    :math:`L u` reproduces. Any other `shift` that cancels an eigenvalue (to within round-off, a
    resonant Helmholtz shift :math:`\sigma = -k^2`) raises ValueError.

    Args:
        f: right-hand sides `(*batch, *grid)`, float32/float64 or complex; the last `D` dimensions
            are the grid.
        spacing: grid step, one for all axes or one per axis.
        bc: "dirichlet", "neumann" or "periodic", one for all axes or one per axis.
        shift: the constant :math:`\sigma` (e.g. :math:`-k^2` for Helmholtz); a complex shift gives a
            complex solution.
        ndim: number D of grid dimensions. Default: `len(bc)` if `bc` is a sequence, else
            `len(spacing)` if `spacing` is; with a single `bc` and `spacing`, `ndim` is required
            (a batch dimension and a grid axis cannot be told apart).

    Returns:
        u, same shape as `f`; dtype of `f` (complex if `f` or `shift` is complex).

    Raises:
        TypeError: `f` not a float/complex tensor, `shift` not a number.
        ValueError: bad `bc`/`spacing`/`ndim`, `f` with fewer than D dimensions, singular shift.

    Example:
        >>> f = torch.ones(3, 3, dtype=torch.float64)
        >>> u = poisson_solve(f, spacing=0.25, bc=("dirichlet", "dirichlet"))
        >>> u[1, 1]  # the discrete solution of -Delta u = 1 at the centre of the unit square
        tensor(0.0703, dtype=torch.float64)
    """
    f = _check_tensor(f, "f")
    D = _grid_ndim(bc, spacing, ndim)
    bcs, hs = normalize_bc(bc, D), normalize_spacing(spacing, D)
    sigma = _check_shift(shift)
    if f.ndim < D:
        raise ValueError(f"f has shape {tuple(f.shape)}, expected (*batch, *grid) with {D} grid dimensions")
    grid = tuple(f.shape[f.ndim - D:])
    if any(n < 1 for n in grid):
        raise ValueError(f"f has an empty grid {grid}")
    complex_path = f.is_complex() or isinstance(sigma, complex)
    if _use_facr(f, grid, bcs, sigma, complex_path):
        _check_nonsingular(poisson_eigenvalues(grid, hs, bcs), sigma)
        return _facr_solve(f, hs, bcs, float(sigma))
    inv = _poisson_multiplier(grid, hs, bcs, sigma, complex_path, f.dtype, f.device)
    return _poisson_apply(f, bcs, inv)


# ================================================================================================
# FACR(0) for large 2-D grids on the CPU: transform along x only, tridiagonal solves along y
# ================================================================================================
# A 2-D solve by transforms takes 4 real-to-real transforms; this takes 2 and replaces the other
# pair by one tridiagonal (Thomas) solve per x-mode, all modes at once (Hockney's "Fourier analysis"
# method). A Thomas sweep is 2 n_y in-place row updates, far cheaper than two transforms whose FFT
# length is awkward (DST-I of n is an FFT of 2(n+1): 2050 = 2 * 5^2 * 41 for n = 1024). Thomas on
# the modes whose 1-D system is ill-conditioned (the lowest x-modes, small h_y^2 mu) would lose
# digits (cond * eps), so those few modes still go through the exact DST-I along y.
_FACR_MIN_POINTS = 256 * 256   # smaller grids: the transforms are cheap, Python-level sweeps are not
_FACR_TAU = 0.05               # modes with h_y^2 mu < tau (1-D condition number > ~80) use DST-I along y


def _use_facr(f: torch.Tensor, grid: tuple[int, ...], bcs: tuple[str, ...], sigma: Any, complex_path: bool) -> bool:
    return (f.device.type == "cpu" and not complex_path and len(grid) == 2 and bcs[0] == "dirichlet"
            and bcs[1] != "periodic" and sigma >= 0 and grid[0] >= 64 and math.prod(grid) >= _FACR_MIN_POINTS)


@functools.lru_cache(maxsize=8)
def _facr_tables(ny: int, nx: int, hy: float, hx: float, bcx: str, sigma: float, dtype: torch.dtype):
    """(m, Minv, scaled Minv, low): Minv (ny, nx - m) the reciprocal Thomas pivots of
    tridiag(-1, 2 + hy^2 mu_i, -1) for the modes i >= m; scaled Minv = Minv hy^2 / norm_x (the
    right-hand side scaling, with the x-transform pair's factor); low (m, ny) the DST-I divisor
    2(ny+1) norm_x (lambda_y + mu_i) of the m ill-conditioned modes."""
    lam_y, lam_x = poisson_eigenvalues((ny, nx), (hy, hx), ("dirichlet", bcx))
    mu = lam_x.flatten() + sigma                          # ascending (DST-I and DCT-II order)
    m = int((hy * hy * mu < _FACR_TAU).sum())
    d = 2.0 + hy * hy * mu[m:]
    piv = torch.empty(ny, nx - m, dtype=torch.float64)
    piv[0] = d
    for j in range(1, ny):
        piv[j] = d - 1.0 / piv[j - 1]
    norm_x = 2 * (nx + 1) if bcx == "dirichlet" else 2 * nx   # the x-transform pair's factor, folded in
    low = (2.0 * (ny + 1) * norm_x) * (lam_y.flatten()[None, :] + mu[:m, None])
    Minv = piv.reciprocal_()
    return m, Minv.to(dtype), (Minv * (hy * hy / norm_x)).to(dtype), low.to(dtype)


def _facr_solve(f: torch.Tensor, spacing: tuple[float, ...], bcs: tuple[str, ...], sigma: float) -> torch.Tensor:
    ny, nx = f.shape[-2:]
    hy, hx = spacing
    forward, inverse = (_dst1_raw, _dst1_raw) if bcs[1] == "dirichlet" else (_dct2_raw, _dct3_raw)
    into = bcs[1] == "dirichlet"
    m, Minv, Minv_scaled, low = _facr_tables(ny, nx, hy, hx, bcs[1], sigma, f.dtype)
    g = _blocked(forward, f, into)                       # x-modes, (..., ny, nx), a fresh tensor
    if m:  # the ill-conditioned modes: exact, by DST-I along y (g[..., :, :m] read as rows of its transpose)
        lo = _blocked(_dst1_raw, g[..., :, :m].transpose(-1, -2), True)
        lo.div_(low)
        g[..., :, :m] = _blocked(_dst1_raw, lo, True).transpose(-1, -2)
    z = g[..., :, m:]
    z.mul_(Minv_scaled)                                   # z_j = Minv_j r_j + Minv_j z_{j-1}, r = hy^2 g / norm_x
    rows, piv = z.unbind(-2), Minv.unbind(0)              # the views made once: one kernel per step
    for j in range(1, ny):
        rows[j].addcmul_(piv[j], rows[j - 1])
    for j in range(ny - 2, -1, -1):                       # u_j = z_j + Minv_j u_{j+1}
        rows[j].addcmul_(piv[j], rows[j + 1])
    return _blocked(inverse, g, into, g if into else None)  # in place: every block is read before written
