r"""2-D computed tomography: parallel- and fan-beam X-ray transforms, filtered backprojection, phantoms.

Discretisation (both geometries): Joseph's ray-driven method
    Every ray is a straight line through the image; the image is taken as the piecewise-*linear*
    interpolant of its pixel values along one axis. A ray that is closer to horizontal
    (:math:`|u_x| \ge |u_y|`, `u` its unit direction) crosses every pixel column once: at each column
    centre the image is linearly interpolated between the two nearest rows, and the samples are summed
    with weight :math:`1/|u_x|` (the ray length per unit column step). Steeper rays step over rows.
    Values outside the image are zero. So each ray is a sparse row of the system matrix with at most
    `2 * max(H, W)` non-zeros (P. M. Joseph, IEEE TMI 1(3):192-196, 1982).

    Indices and weights are computed in float64 from the geometry, in chunks of rays (no loop over
    pixels). When the whole matrix has at most `cache_limit` non-zero slots, it is stored once per
    (device, dtype) as two CSR matrices, itself and its transpose with the *same* entries: `apply` and
    `adjoint` are sparse products. Above that, `apply` gathers the pixel values chunk by chunk and sums
    them with the weights, and `adjoint` scatters (`index_add`) the sinogram values back with the same
    indices and weights. Either way the adjoint is exact (the dot-product test is at round-off, ~1e-16
    in float64), and both are pure torch, batched over leading dimensions, autograd-friendly and
    device-agnostic.

Conventions
    Image `(*batch, H, W)`, pixel size 1: pixel `(i, j)` has centre `x = j - (W - 1)/2`,
    `y = (H - 1)/2 - i` (rows go down the image, `y` goes up), rotation centre at the image centre.
    Projection angle `theta`: detector axis `e = (cos theta, sin theta)`, ray direction
    `u = (-sin theta, cos theta)`. The parallel-beam sinogram is
    :math:`p(\theta, s) = \int f(s e + t u)\, dt` at detector positions
    `s_k = (k - (n_detectors - 1)/2) * detector_spacing`, so a centred disc of radius `r` has
    :math:`p = 2\sqrt{r^2 - s^2}`. Angles are in radians; uniform angles over `[0, pi)` match the
    sparse-view CT setup of DDS (`theta = linspace(0, 180, n_views, endpoint=False)` degrees).
"""
from __future__ import annotations

import math
from typing import Any

import torch

from .base import LinearOperator
from .wrappers import _product, csr_tensor

__all__ = ["ParallelBeamRadon", "FanBeamRadon", "fbp", "FBP_FILTERS", "sparse_view_angles", "limited_angle", "shepp_logan"]

FBP_FILTERS = ("ram-lak", "shepp-logan", "cosine", "hamming", "hann")


def _check_image_shape(image_shape: Any) -> tuple[int, int]:
    try:
        shape = tuple(int(s) for s in image_shape)
    except (TypeError, ValueError):
        raise TypeError(f"image_shape must be a pair of ints (H, W), got {image_shape!r}") from None
    if len(shape) != 2 or min(shape) < 1:
        raise ValueError(f"image_shape must be two positive ints (H, W), got {image_shape!r}")
    return shape  # type: ignore[return-value]


def _check_angles(angles: Any, device: Any) -> torch.Tensor:
    a = torch.as_tensor(angles, dtype=torch.float64, device=device) if not isinstance(angles, torch.Tensor) \
        else angles.detach().to(device=device if device is not None else angles.device, dtype=torch.float64)
    if a.ndim == 0:
        a = a.reshape(1)
    if a.ndim != 1:
        raise ValueError(f"angles must be a 1-D sequence of angles in radians, got shape {tuple(a.shape)}")
    if a.numel() == 0:
        raise ValueError("angles is empty: a CT operator needs at least one projection angle")
    if not torch.isfinite(a).all():
        raise ValueError("angles must be finite")
    return a


def _positive(value: Any, name: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number, got {value!r}") from None
    if not (v > 0 and math.isfinite(v)):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return v


def _csr(rows: torch.Tensor, cols: torch.Tensor, vals: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """A CSR matrix from distinct `(rows, cols)` entries (sorted here by row, then column, as CSR requires)."""
    order = torch.argsort(rows * shape[1] + cols)
    crow = torch.cat([rows.new_zeros(1), torch.bincount(rows, minlength=shape[0]).cumsum(0)])
    return csr_tensor(crow, cols[order], vals[order], shape)


class _RayOperator(LinearOperator):
    """Joseph-method projector for an arbitrary set of lines, given by an origin and a unit direction each.

    Subclasses implement `_rays(angles) -> (origin, direction)`, each `(n_angles, n_detectors, 2)` float64.
    """

    cache_limit = 1 << 25  # non-zero slots of a matrix kept as CSR (two copies with int32 indices: <= 0.8 GB in float64)

    def __init__(self, image_shape: Any, angles: Any, n_detectors: int, *, dtype: torch.dtype | None,
                 device: Any):
        H, W = _check_image_shape(image_shape)
        self.angles = _check_angles(angles, device)
        if not isinstance(n_detectors, int) or isinstance(n_detectors, bool) or n_detectors < 1:
            raise ValueError(f"n_detectors must be a positive int, got {n_detectors!r}")
        if dtype is not None and dtype not in (torch.float32, torch.float64):
            raise TypeError(f"dtype must be torch.float32, torch.float64 or None, got {dtype}")
        super().__init__((H, W), (self.angles.numel(), n_detectors), dtype=dtype, device=device)
        self.n_angles, self.n_detectors = self.angles.numel(), n_detectors
        self._cache: dict = {}

    # --- geometry -> sparse rows -------------------------------------------------------------
    def _rays(self, angles: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def _chunks(self) -> list[tuple[int, int]]:
        """Angle ranges processed at once (about 2M non-zero slots each)."""
        H, W = self.in_shape
        per_angle = self.n_detectors * max(H, W) * 2
        step = max(1, (1 << 21) // per_angle)
        return [(a, min(a + step, self.n_angles)) for a in range(0, self.n_angles, step)]

    @torch.no_grad()
    def _weights(self, a0: int, a1: int, dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Flat pixel indices and weights `(a1 - a0, n_detectors, K, 2)`, K = max(H, W), for angles a0:a1."""
        H, W = self.in_shape
        K = max(H, W)
        o, u = self._rays(self.angles[a0:a1].to(device))
        ox, oy, ux, uy = o[..., 0, None], o[..., 1, None], u[..., 0, None], u[..., 1, None]
        k = torch.arange(K, dtype=torch.float64, device=device)
        xdriven = ux.abs() >= uy.abs()                                   # (A, D, 1)
        # x-driven rays: sample at column centres x_k, interpolate between rows
        safe_ux = torch.where(xdriven, ux, torch.ones_like(ux))
        y_at = oy + (k - (W - 1) / 2 - ox) / safe_ux * uy                # y at column k
        row = (H - 1) / 2 - y_at                                          # fractional row index
        # y-driven rays: sample at row centres y_k, interpolate between columns
        safe_uy = torch.where(xdriven, torch.ones_like(uy), uy)
        x_at = ox + ((H - 1) / 2 - k - oy) / safe_uy * ux                 # x at row k
        col = x_at + (W - 1) / 2                                          # fractional column index
        frac_pos = torch.where(xdriven, row, col)
        base = torch.floor(frac_pos)
        frac = frac_pos - base
        base = base.to(torch.int64)
        n_lines, n_across = torch.where(xdriven, W, H), torch.where(xdriven, H, W)   # samples / interp axis
        scale = 1.0 / torch.where(xdriven, ux.abs(), uy.abs())
        kk = torch.arange(K, device=device).expand_as(base)
        idx, wts = [], []
        for shift, w in ((0, 1.0 - frac), (1, frac)):
            across = base + shift
            ok = (kk < n_lines) & (across >= 0) & (across < n_across)
            flat = torch.where(xdriven, across * W + kk, kk * W + across)
            idx.append(torch.where(ok, flat, torch.zeros_like(flat)))
            wts.append(torch.where(ok, w * scale, torch.zeros_like(w)))
        return torch.stack(idx, -1), torch.stack(wts, -1).to(dtype)

    def _sparse(self, dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The matrix and its transpose as CSR, built once per (device, dtype); None when the matrix has more
        than `cache_limit` non-zero slots (then `apply`/`adjoint` work chunk by chunk)."""
        H, W = self.in_shape
        if self.n_angles * self.n_detectors * max(H, W) * 2 > self.cache_limit:
            return None
        key = (device, dtype)
        if key not in self._cache:
            D = self.n_detectors
            rows, cols, vals = [], [], []
            for a0, a1 in self._chunks():
                idx, w = self._weights(a0, a1, dtype, device)
                ray = torch.arange(a0 * D, a1 * D, device=device).reshape(a1 - a0, D, 1, 1).expand_as(idx)
                keep = w != 0  # zero slots: samples outside the image
                rows.append(ray[keep]), cols.append(idx[keep]), vals.append(w[keep])
            rows, cols, vals = torch.cat(rows), torch.cat(cols), torch.cat(vals)
            self._cache[key] = (_csr(rows, cols, vals, (self.out_size, self.in_size)),
                                _csr(cols, rows, vals, (self.in_size, self.out_size)))
        return self._cache[key]

    # --- the operator ------------------------------------------------------------------------
    def apply(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input(x, self.in_shape, "image")
        wdtype = x.dtype.to_real() if x.is_complex() else x.dtype
        csr = self._sparse(wdtype, x.device)
        if csr is not None:
            return _product(csr[0], x, self.in_shape, self.out_shape)
        batch = x.shape[:-2]
        xf = x.reshape(-1, self.in_size)
        out = []
        for a0, a1 in self._chunks():
            idx, w = self._weights(a0, a1, wdtype, x.device)
            out.append((xf[:, idx] * w).sum((-1, -2)))                 # (B, a1 - a0, D)
        return torch.cat(out, 1).reshape(*batch, *self.out_shape)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        self._check_input(y, self.out_shape, "sinogram")
        wdtype = y.dtype.to_real() if y.is_complex() else y.dtype
        csr = self._sparse(wdtype, y.device)
        if csr is not None:
            return _product(csr[1], y, self.out_shape, self.in_shape)
        batch = y.shape[:-2]
        yf = y.reshape(-1, *self.out_shape)
        out = torch.zeros(yf.shape[0], self.in_size, dtype=y.dtype, device=y.device)
        for a0, a1 in self._chunks():
            idx, w = self._weights(a0, a1, wdtype, y.device)
            vals = yf[:, a0:a1, :, None, None] * w                        # (B, a1 - a0, D, K, 2)
            out = out.index_add(1, idx.reshape(-1), vals.reshape(yf.shape[0], -1))
        return out.reshape(*batch, *self.in_shape)

    def to(self, device: Any = None, dtype: torch.dtype | None = None) -> "LinearOperator":
        new = super().to(device, dtype)
        new.angles = self.angles.to(device=device) if device is not None else self.angles  # geometry stays float64
        new._cache = {}
        return new


class ParallelBeamRadon(_RayOperator):
    r"""Parallel-beam X-ray (Radon) transform, image `(*batch, H, W)` -> sinogram `(*batch, n_angles, n_detectors)`.

    :math:`p(\theta, s) = \int f(s\,e_\theta + t\,u_\theta)\,dt`, Joseph's ray-driven discretisation with an
    exact matched adjoint (see the module docstring for conventions).

    Args:
        image_shape: `(H, W)`; pixel size 1.
        angles: projection angles in radians (1-D, non-empty), e.g. `sparse_view_angles(n)`.
        n_detectors: detector bins (default `ceil(hypot(H, W) / detector_spacing)`: covers the whole image).
        detector_spacing: bin width in pixels; bins are centred on the rotation centre.
        dtype, device: optional; `None` dtype accepts float32 and float64 inputs.
    """

    def __init__(self, image_shape: Any, angles: Any, n_detectors: int | None = None, detector_spacing: float = 1.0,
                 *, dtype: torch.dtype | None = None, device: Any = None):
        H, W = _check_image_shape(image_shape)
        self.detector_spacing = _positive(detector_spacing, "detector_spacing")
        if n_detectors is None:
            n_detectors = math.ceil(math.hypot(H, W) / self.detector_spacing)
        super().__init__((H, W), angles, n_detectors, dtype=dtype, device=device)

    def detector_positions(self, device: Any = None) -> torch.Tensor:
        """Signed detector-bin centres `s_k` in pixel units, float64."""
        d = self.n_detectors
        return (torch.arange(d, dtype=torch.float64, device=device) - (d - 1) / 2) * self.detector_spacing

    def _rays(self, angles: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c, s = torch.cos(angles)[:, None], torch.sin(angles)[:, None]
        pos = self.detector_positions(angles.device)[None, :]
        origin = torch.stack(torch.broadcast_tensors(pos * c, pos * s), -1)           # s * e
        direction = torch.stack(torch.broadcast_tensors(-s, c), -1).expand_as(origin)  # u
        return origin, direction


class FanBeamRadon(_RayOperator):
    r"""Fan-beam X-ray transform (point source, rotating), image `(*batch, H, W)` -> `(*batch, n_angles, n_detectors)`.

    At angle :math:`\beta` the source sits at :math:`S = -D_s u_\beta` and the detector centre at
    :math:`D_d u_\beta` (`u`, `e` as in the module docstring: the central ray is parallel to the
    parallel-beam ray at the same angle). Detector bins are centred at
    `s_k = (k - (n_detectors - 1)/2) * detector_spacing`:

    - `detector="flat"` (default): a line detector through :math:`D_d u_\beta` along `e`, bin `k` at
      :math:`D_d u + s_k e`;
    - `detector="arc"`: an arc centred on the source of radius :math:`D_s + D_d`, bin `k` at fan angle
      :math:`\gamma_k = s_k / (D_s + D_d)` (so `detector_spacing` is arc length).

    Each bin measures the line integral along the full line from the source through the bin centre
    (Joseph's method, exact matched adjoint). Rays are not weighted by any detector-cosine factor.

    Args:
        image_shape: `(H, W)`, pixel size 1.
        angles: source angles in radians (full scan: `[0, 2 pi)`).
        source_distance: source to rotation centre; must exceed the image's half-diagonal.
        detector_distance: rotation centre to detector (>= 0).
        n_detectors, detector_spacing: bin count and width (pixels).
    """

    def __init__(self, image_shape: Any, angles: Any, source_distance: float, detector_distance: float,
                 n_detectors: int, detector_spacing: float = 1.0, *, detector: str = "flat",
                 dtype: torch.dtype | None = None, device: Any = None):
        H, W = _check_image_shape(image_shape)
        self.source_distance = _positive(source_distance, "source_distance")
        if self.source_distance <= math.hypot(H, W) / 2:
            raise ValueError(f"source_distance={source_distance} puts the source inside the image's circumcircle "
                             f"(radius {math.hypot(H, W) / 2:.2f} pixels)")
        try:
            self.detector_distance = float(detector_distance)
        except (TypeError, ValueError):
            raise TypeError(f"detector_distance must be a number, got {detector_distance!r}") from None
        if not (self.detector_distance >= 0 and math.isfinite(self.detector_distance)):
            raise ValueError(f"detector_distance must be >= 0, got {detector_distance!r}")
        self.detector_spacing = _positive(detector_spacing, "detector_spacing")
        if detector not in ("flat", "arc"):
            raise ValueError(f"detector must be 'flat' or 'arc', got {detector!r}")
        self.detector = detector
        super().__init__((H, W), angles, n_detectors, dtype=dtype, device=device)

    def _rays(self, angles: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c, s = torch.cos(angles)[:, None], torch.sin(angles)[:, None]
        ex, ey, ux, uy = c, s, -s, c
        d = self.n_detectors
        pos = ((torch.arange(d, dtype=torch.float64, device=angles.device) - (d - 1) / 2) * self.detector_spacing)[None, :]
        Ds, Dd = self.source_distance, self.detector_distance
        if self.detector == "flat":
            # direction from S = -Ds u to Dd u + s e, i.e. (Ds + Dd) u + s e, normalised
            dx, dy = (Ds + Dd) * ux + pos * ex, (Ds + Dd) * uy + pos * ey
            norm = torch.sqrt(dx**2 + dy**2)
            dx, dy = dx / norm, dy / norm
        else:
            g = pos / (Ds + Dd)
            dx, dy = torch.cos(g) * ux + torch.sin(g) * ex, torch.cos(g) * uy + torch.sin(g) * ey
        ox, oy, _ = torch.broadcast_tensors(-Ds * ux, -Ds * uy, pos)                 # the source S
        return torch.stack((ox, oy), -1), torch.stack((dx, dy), -1)


# ================================================================================================
# Filtered backprojection
# ================================================================================================
def _fbp_filter(n: int, name: str, dtype: torch.dtype, device: Any) -> tuple[torch.Tensor, int]:
    """Frequency response (rfft layout) of the windowed ramp on a zero-padded length P >= 2n."""
    P = max(64, 1 << (2 * n - 1).bit_length())
    k = torch.arange(P, dtype=torch.float64, device=device)
    k = torch.where(k > P // 2, k - P, k)
    # Band-limited ramp sampled in space (Kak & Slaney, eq. 3.61): h[0] = 1/4, h[odd] = -1/(pi k)^2.
    # Its DFT approximates |f| (f in cycles per detector bin) without the DC error of sampling |f| directly.
    h = torch.where(k == 0, torch.full_like(k, 0.25),
                    torch.where(k.remainder(2) == 1, -1.0 / (math.pi * k) ** 2, torch.zeros_like(k)))
    H = torch.fft.rfft(h).real
    f = torch.fft.rfftfreq(P, dtype=torch.float64, device=device)         # [0, 0.5]
    if name == "shepp-logan":
        H = H * torch.sinc(f)
    elif name == "cosine":
        H = H * torch.cos(math.pi * f)
    elif name == "hamming":
        H = H * (0.54 + 0.46 * torch.cos(2 * math.pi * f))
    elif name == "hann":
        H = H * (0.5 + 0.5 * torch.cos(2 * math.pi * f))
    return H.to(dtype), P


def fbp(sinogram: torch.Tensor, op: ParallelBeamRadon, filter: str = "ram-lak") -> torch.Tensor:
    r"""Filtered backprojection for a parallel-beam sinogram `(*batch, n_angles, n_detectors)` -> image.

    Each projection is filtered along the detector with the ramp :math:`|\omega|` (times the window
    `filter`: "ram-lak" none, "shepp-logan" sinc, "cosine", "hamming", "hann") in the Fourier domain,
    zero-padded to at least twice its length (no wrap-around); then backprojected with `op.adjoint`
    scaled by :math:`\pi / n_{angles}`, the quadrature weight of uniform angles over :math:`[0, \pi)`.
    (The Joseph adjoint spreads each bin with total weight :math:`1/\Delta s`, which cancels the
    :math:`\Delta s` of the ramp; so the result is an estimate of the image for any detector spacing.)
    For non-uniform or limited angles the same weight is used: it is an approximation there.
    """
    if not isinstance(op, ParallelBeamRadon):
        raise TypeError(f"fbp needs a ParallelBeamRadon operator, got {type(op).__name__}")
    if filter not in FBP_FILTERS:
        raise ValueError(f"filter must be one of {', '.join(map(repr, FBP_FILTERS))}, got {filter!r}")
    op._check_input(sinogram, op.out_shape, "sinogram")
    n = op.n_detectors
    H, P = _fbp_filter(n, filter, sinogram.dtype, sinogram.device)
    filtered = torch.fft.irfft(torch.fft.rfft(sinogram, n=P, dim=-1) * H, n=P, dim=-1)[..., :n]
    return op.adjoint(filtered) * (math.pi / op.n_angles)


# ================================================================================================
# Geometry helpers and phantoms
# ================================================================================================
def sparse_view_angles(n_views: int, dtype: torch.dtype = torch.float64, device: Any = None) -> torch.Tensor:
    """`n_views` angles uniform over `[0, pi)`: `pi * k / n_views` (DDS SV-CT: linspace(0, 180, n, endpoint=False) degrees)."""
    if not isinstance(n_views, int) or isinstance(n_views, bool) or n_views < 1:
        raise ValueError(f"n_views must be a positive int, got {n_views!r}")
    return torch.arange(n_views, dtype=dtype, device=device) * (math.pi / n_views)


def limited_angle(n_views: int, max_angle: float, dtype: torch.dtype = torch.float64, device: Any = None) -> torch.Tensor:
    """`n_views` angles uniform over `[0, max_angle)` (radians, `0 < max_angle <= pi`): `max_angle * k / n_views`.

    DDS LA-CT uses `theta = arange(120)` degrees, i.e. `limited_angle(120, 120 * pi / 180)`: a 60-degree missing wedge.
    """
    if not isinstance(n_views, int) or isinstance(n_views, bool) or n_views < 1:
        raise ValueError(f"n_views must be a positive int, got {n_views!r}")
    m = float(max_angle)
    if not (0 < m <= math.pi + 1e-12):
        raise ValueError(f"max_angle must be in (0, pi] radians, got {max_angle!r}")
    return torch.arange(n_views, dtype=dtype, device=device) * (m / n_views)


# Modified Shepp-Logan (Toft, "The Radon Transform: Theory and Implementation", 1996; the table of
# MATLAB's phantom('Modified Shepp-Logan')): intensity, semi-axes a, b, centre x0, y0, rotation (degrees).
_MODIFIED_SHEPP_LOGAN = (
    (1.0, 0.69, 0.92, 0.0, 0.0, 0.0),
    (-0.8, 0.6624, 0.8740, 0.0, -0.0184, 0.0),
    (-0.2, 0.1100, 0.3100, 0.22, 0.0, -18.0),
    (-0.2, 0.1600, 0.4100, -0.22, 0.0, 18.0),
    (0.1, 0.2100, 0.2500, 0.0, 0.35, 0.0),
    (0.1, 0.0460, 0.0460, 0.0, 0.1, 0.0),
    (0.1, 0.0460, 0.0460, 0.0, -0.1, 0.0),
    (0.1, 0.0460, 0.0230, -0.08, -0.605, 0.0),
    (0.1, 0.0230, 0.0230, 0.0, -0.606, 0.0),
    (0.1, 0.0230, 0.0460, 0.06, -0.605, 0.0),
)


def shepp_logan(n: int, dtype: torch.dtype = torch.float64, device: Any = None) -> torch.Tensor:
    """The modified Shepp-Logan phantom, `(n, n)`, values in [0, 1] (standard Toft / MATLAB ellipse table).

    The square `[-1, 1]^2` is sampled at pixel centres, `y` pointing up the image (row 0 is the top).
    """
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    c = (torch.arange(n, dtype=torch.float64, device=device) + 0.5) * (2.0 / n) - 1.0
    y, x = torch.meshgrid(c.flip(0), c, indexing="ij")
    img = torch.zeros(n, n, dtype=torch.float64, device=device)
    for A, a, b, x0, y0, phi in _MODIFIED_SHEPP_LOGAN:
        p = math.radians(phi)
        xr = (x - x0) * math.cos(p) + (y - y0) * math.sin(p)
        yr = -(x - x0) * math.sin(p) + (y - y0) * math.cos(p)
        img = img + A * ((xr / a) ** 2 + (yr / b) ** 2 <= 1.0).to(torch.float64)
    return img.clamp(min=0.0).to(dtype)   # clamp: 1 - 0.8 - 0.2 rounds to -6e-17
