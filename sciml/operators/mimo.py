r"""3-D near-field MIMO radar imaging: the Born-approximation forward model and its backprojection.

Model (Born approximation, point scatterers at voxel centres, free-space Green's functions): for
frequencies :math:`f_k`, transmitters :math:`p_t`, receivers :math:`q_s` and voxels :math:`r_v` with
complex reflectivity :math:`x_v`,

.. math::
    y_{k,t,s} = \sum_v \frac{e^{-j\kappa_k (|r_v - p_t| + |r_v - q_s|)}}{4\pi\,|r_v - p_t|\,|r_v - q_s|}\, x_v,
    \qquad \kappa_k = 2\pi f_k / c.

This is the forward model of the plug-and-play magnitude-regularisation paper (Oral & Oktem, IEEE
TCI 2024) for a cross-shaped planar MIMO array; `NearFieldMIMO.paper_setup()` builds its geometry.

Computation: the kernel factorises, :math:`A_k = a_k \operatorname{diag}(x)\, b_k^T` with
:math:`a_k[t, v] = e^{-j\kappa_k R_{tv}} / (4\pi R_{tv})` and :math:`b_k[s, v] = e^{-j\kappa_k R'_{sv}} / R'_{sv}`,
so `apply` is, per frequency, one `(T, V) x (V, S)` matrix product and the full `(F, T, S, V)`
matrix is never formed. The factors take `F (T + S) V` complex numbers (cached when at most
`cache_limit`, otherwise recomputed blockwise in every product); the products run over blocks of
frequencies and voxels holding at most about `block_elements` complex numbers at a time. The
adjoint uses the same factors, conjugated, so it is exact (the dot-product test is at round-off).
Distances are computed once in float64 and kept in float64; factors are computed in float64 and
then cast to the operator's dtype.
"""
from __future__ import annotations

import math
from typing import Any

import torch

from .base import LinearOperator
from .imaging import _check_operand

__all__ = ["NearFieldMIMO", "SPEED_OF_LIGHT"]

SPEED_OF_LIGHT = 299_792_458.0


def _vector(values: Any, name: str, positive: bool = False) -> torch.Tensor:
    t = torch.as_tensor(values.detach().cpu() if isinstance(values, torch.Tensor) else values, dtype=torch.float64)
    t = t.reshape(1) if t.ndim == 0 else t
    if t.ndim != 1 or t.numel() == 0:
        raise ValueError(f"{name} must be a non-empty 1-D sequence of numbers, got shape {tuple(t.shape)}")
    if not torch.isfinite(t).all() or (positive and not bool((t > 0).all())):
        raise ValueError(f"{name} must be finite{' and positive' if positive else ''}")
    return t


def _positions(values: Any, name: str) -> torch.Tensor:
    t = torch.as_tensor(values.detach().cpu() if isinstance(values, torch.Tensor) else values, dtype=torch.float64)
    if t.ndim != 2 or t.shape[1] != 3 or t.shape[0] == 0:
        raise ValueError(f"{name} must have shape (n, 3) (antenna positions in metres), got {tuple(t.shape)}")
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} must be finite")
    return t


class NearFieldMIMO(LinearOperator):
    r"""Born-approximation MIMO radar operator, reflectivity `(*batch, nx, ny, nz)` -> data `(*batch, F, T, S)`.

    See the module docstring for the model. The adjoint (`backprojection`) is the conjugate
    transpose :math:`x_v = \sum_{k,t,s} \overline{A_{kts,v}}\, y_{k,t,s}`.

    Args:
        frequencies: `F` frequencies in Hz (positive).
        tx_positions: `(T, 3)` transmitter positions in metres.
        rx_positions: `(S, 3)` receiver positions in metres.
        x_coords, y_coords, z_coords: voxel-centre coordinates in metres along each axis; voxel
            `(i, j, l)` sits at `(x_coords[i], y_coords[j], z_coords[l])`. No voxel may coincide with
            an antenna.
        c: propagation speed in m/s (default the speed of light).
        dtype: complex64 or complex128 (default); inputs must be complex of this dtype.
        device: of the operator (default CPU).

    Cost per product (either direction): `8 F T S V` real flops, plus `F (T + S) V` complex
    exponentials when the factors are not cached; memory `F (T + S) V` complex numbers for the cache
    (if `<= cache_limit`; set `op.cache_limit = 0` to never cache) and about `block_elements` for the
    blocks. The paper's setup (20 frequencies, 12 x 13 antennas, 25 x 25 x 49 voxels) has 3120
    measurements and 30625 unknowns; its 15.3M factor entries are cached (245 MB in complex128,
    against 1.5 GB for the dense matrix). Measured on one CPU thread: first product 0.8 s (builds the
    cache), then 0.13 s (apply) and 0.18 s (adjoint); 0.6 s each without the cache.
    """

    cache_limit = 1 << 24      # complex entries of the factors kept in memory (256 MB in complex128)
    block_elements = 1 << 22   # complex entries held by one block of a product (about)

    def __init__(self, frequencies: Any, tx_positions: Any, rx_positions: Any, x_coords: Any, y_coords: Any,
                 z_coords: Any, *, c: float = SPEED_OF_LIGHT, dtype: torch.dtype = torch.complex128, device: Any = None):
        if dtype not in (torch.complex64, torch.complex128):
            raise TypeError(f"dtype must be torch.complex64 or torch.complex128, got {dtype}")
        c = float(c)
        if not (c > 0 and math.isfinite(c)):
            raise ValueError(f"c must be a positive finite speed (m/s), got {c!r}")
        freqs = _vector(frequencies, "frequencies", positive=True)
        tx, rx = _positions(tx_positions, "tx_positions"), _positions(rx_positions, "rx_positions")
        coords = [_vector(v, n) for v, n in ((x_coords, "x_coords"), (y_coords, "y_coords"), (z_coords, "z_coords"))]
        grid = torch.stack(torch.meshgrid(*coords, indexing="ij"), -1).reshape(-1, 3)        # (V, 3)
        r_tx, r_rx = torch.cdist(tx, grid), torch.cdist(rx, grid)                            # (T, V), (S, V)
        if min(float(r_tx.min()), float(r_rx.min())) <= 0:
            raise ValueError("a voxel coincides with an antenna position (zero distance): move the scene or the array")
        shape = tuple(v.numel() for v in coords)
        super().__init__(shape, (freqs.numel(), tx.shape[0], rx.shape[0]), dtype=dtype, device=device)
        dev = self.device
        self.frequencies, self.tx_positions, self.rx_positions = freqs.to(dev), tx.to(dev), rx.to(dev)
        self.x_coords, self.y_coords, self.z_coords = (v.to(dev) for v in coords)
        self.wavenumbers = (2 * math.pi / c) * self.frequencies
        self.c = c
        self._r_tx, self._r_rx = r_tx.to(dev), r_rx.to(dev)
        self._cache: dict = {}

    @classmethod
    def paper_setup(cls, n_freq: int = 20, voxels: Any = (25, 25, 49), *, n_tx: int = 12, n_rx: int = 13,
                    aperture: float = 0.3, f_min: float = 4e9, f_max: float = 16e9,
                    x_range: tuple = (-0.15, 0.15), y_range: tuple = (-0.15, 0.15), z_range: tuple = (0.35, 0.65),
                    dtype: torch.dtype = torch.complex128, device: Any = None) -> "NearFieldMIMO":
        """The simulated setup of the PnP-magnitude paper (defaults), or a smaller grid.

        `n_freq` frequencies evenly spaced in `[f_min, f_max]` (4-16 GHz; the paper uses 5-40, 20 in
        its simulations); a cross-shaped ("X") planar MIMO array at `z = 0` of width `aperture`
        (0.3 m): `n_rx` receivers evenly spaced on the diagonal from `(-w/2, -w/2, 0)` to
        `(w/2, w/2, 0)`, `n_tx` transmitters on the other one from `(-w/2, w/2, 0)` to `(w/2, -w/2, 0)`;
        `voxels = (nx, ny, nz)` centres evenly spaced over `x_range`, `y_range`, `z_range` (ends
        included), default 25 x 25 x 49 over [-0.15, 0.15]^2 x [0.35, 0.65] m.

        Small grid (tests, quick experiments): e.g. `paper_setup(n_freq=4, voxels=(6, 6, 8))`, the same
        aperture and scene sampled coarsely.
        """
        for name, val in (("n_freq", n_freq), ("n_tx", n_tx), ("n_rx", n_rx)):
            if not isinstance(val, int) or isinstance(val, bool) or val < 1:
                raise ValueError(f"{name} must be a positive int, got {val!r}")
        try:
            nx, ny, nz = (int(v) for v in voxels)
        except (TypeError, ValueError):
            raise ValueError(f"voxels must be three positive ints (nx, ny, nz), got {voxels!r}") from None
        if min(nx, ny, nz) < 1:
            raise ValueError(f"voxels must be three positive ints (nx, ny, nz), got {voxels!r}")
        h = float(aperture) / 2

        def diagonal(start: tuple, end: tuple, n: int) -> torch.Tensor:
            t = torch.linspace(0, 1, n, dtype=torch.float64)[:, None]
            return torch.tensor(start, dtype=torch.float64) * (1 - t) + torch.tensor(end, dtype=torch.float64) * t

        def axis(lim: tuple, n: int) -> torch.Tensor:
            return torch.linspace(float(lim[0]), float(lim[1]), n, dtype=torch.float64)

        return cls(torch.linspace(float(f_min), float(f_max), n_freq, dtype=torch.float64),
                   diagonal((-h, h, 0.0), (h, -h, 0.0), n_tx), diagonal((-h, -h, 0.0), (h, h, 0.0), n_rx),
                   axis(x_range, nx), axis(y_range, ny), axis(z_range, nz), dtype=dtype, device=device)

    # --- factors and blocks --------------------------------------------------------------------
    def _factor_block(self, k0: int, k1: int, v0: int, v1: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """`a (k1-k0, T, v1-v0)` and `b (k1-k0, S, v1-v0)` in `dtype`."""
        key = (dtype, self._r_tx.device)
        if key in self._cache:
            a, b = self._cache[key]
            return a[k0:k1, :, v0:v1], b[k0:k1, :, v0:v1]
        kappa = self.wavenumbers[k0:k1, None, None]
        r_tx, r_rx = self._r_tx[None, :, v0:v1], self._r_rx[None, :, v0:v1]
        a = torch.polar((1 / (4 * math.pi * r_tx)).expand(kappa.shape[0], -1, -1), -kappa * r_tx).to(dtype)
        b = torch.polar((1 / r_rx).expand(kappa.shape[0], -1, -1), -kappa * r_rx).to(dtype)
        return a, b

    def _blocks(self, batch: int, dtype: torch.dtype):
        """Yields `(k0, k1, v0, v1, a, b)` covering all frequencies and voxels."""
        F, T, S = self.out_shape
        V = self.in_size
        key = (dtype, self._r_tx.device)
        if key not in self._cache and F * (T + S) * V <= self.cache_limit:
            self._cache[key] = self._factor_block(0, F, 0, V, dtype)
        pairs = max(1, self.block_elements // (batch * max(T, S) + T + S))    # (frequency, voxel) pairs per block
        kc, vc = (max(1, min(F, pairs // V)), V) if pairs >= V else (1, pairs)
        for k0 in range(0, F, kc):
            for v0 in range(0, V, vc):
                k1, v1 = min(F, k0 + kc), min(V, v0 + vc)
                yield (k0, k1, v0, v1, *self._factor_block(k0, k1, v0, v1, dtype))

    # --- the operator --------------------------------------------------------------------------
    def apply(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x, "x", self.in_shape)
        batch = x.shape[:-3]
        xf = x.reshape(-1, self.in_size)
        y = xf.new_zeros(xf.shape[0], *self.out_shape)
        B, (_, T, S) = xf.shape[0], self.out_shape
        for k0, k1, v0, v1, a, b in self._blocks(B, x.dtype):
            # the batch folded into the rows: one (B T, vc) x (vc, S) product per frequency
            ax = (a[:, None] * xf[None, :, None, v0:v1]).reshape(k1 - k0, B * T, v1 - v0)
            y[:, k0:k1] += (ax @ b.mT).reshape(k1 - k0, B, T, S).transpose(0, 1)
        return y.reshape(*batch, *self.out_shape)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        self._check(y, "y", self.out_shape)
        batch = y.shape[:-3]
        yf = y.reshape(-1, *self.out_shape)
        x = yf.new_zeros(yf.shape[0], self.in_size)
        B, (_, T, S) = yf.shape[0], self.out_shape
        for k0, k1, v0, v1, a, b in self._blocks(B, y.dtype):
            yk = yf[:, k0:k1].transpose(0, 1).reshape(k1 - k0, B * T, S)
            z = (yk @ b.conj()).reshape(k1 - k0, B, T, v1 - v0)
            x[:, v0:v1] += (a.conj()[:, None] * z).sum((0, 2))
        return x.reshape(*batch, *self.in_shape)

    def backprojection(self, y: torch.Tensor) -> torch.Tensor:
        """The paper's direct-inversion baseline `A^H y` (the adjoint), data `(*batch, F, T, S)` -> `(*batch, nx, ny, nz)`."""
        return self.adjoint(y)

    def _check(self, t: Any, name: str, shape: tuple) -> None:
        if isinstance(t, torch.Tensor) and not t.is_complex():
            raise ValueError(f"NearFieldMIMO: {name} must be complex ({self.dtype}; this is a complex operator), got {t.dtype}")
        _check_operand(self, t, name, shape)

    def to(self, device: Any = None, dtype: torch.dtype | None = None) -> "LinearOperator":
        new = super().to(device, dtype)
        for name in ("frequencies", "tx_positions", "rx_positions", "x_coords", "y_coords", "z_coords", "wavenumbers",
                     "_r_tx", "_r_rx"):
            setattr(new, name, getattr(self, name).to(device=device))      # geometry stays float64
        new._cache = {}
        return new
