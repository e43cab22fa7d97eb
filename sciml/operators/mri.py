r"""Multi-coil Cartesian MRI: centred FFTs, the SENSE forward operator, sampling masks, coil maps.

Conventions (fastMRI / DDS, see `shared/papers/diffusion.md`):

- k-space is *centred*: `fft2c(x) = fftshift(fft2(ifftshift(x), norm="ortho"))` over the last two
  dims, so the DC sample sits at index `(H // 2, W // 2)`; `fft2c` is unitary.
- The forward model is :math:`y_c = M \odot F(S_c x)` per coil, the adjoint
  :math:`\sum_c \overline{S_c}\, F^H(M \odot y_c)`; images are `(*batch, H, W)` complex, k-space
  `(*batch, C, H, W)`.
- 1-D masks select *phase-encode lines*: columns, i.e. indices along the last (W) dimension; a
  `(W,)` mask is broadcast over all rows.
- Every mask returns a boolean tensor; `mask_acceleration(mask)` is the achieved acceleration
  `numel / sum` (of the 2-D mask, or of the line mask, which is the same thing).
"""
from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
import torch

from .base import LinearOperator
from .ct import shepp_logan  # noqa: F401 (test phantom, re-exported for MRI users)

__all__ = [
    "MultiCoilMRI", "birdcage_sensitivities", "calibration_phase", "estimate_sensitivities", "fft2c", "gaussian_lines_mask", "ifft2c",
    "mask_acceleration", "poisson_disc_mask", "radial_mask", "rss", "shepp_logan", "smoothed_phase", "uniform_lines_mask", "zero_filled",
]


# --------------------------------------------------------------------------------------------------
# Centred orthonormal FFTs
# --------------------------------------------------------------------------------------------------
def fft2c(x: torch.Tensor) -> torch.Tensor:
    """Centred orthonormal 2-D FFT over the last two dims: `fftshift(fft2(ifftshift(x), norm="ortho"))`.

    Unitary (preserves the 2-norm); batched over leading dims; real input returns complex. The shifts are
    phase ramps (`_centring`), not copies: `P * fft2(Q * x)`.
    """
    _need_2d(x, "x")
    Q, P = _centring(x.shape[-2], x.shape[-1], _complex(x.dtype), x.device)
    return torch.fft.fft2(Q * x, norm="ortho").mul_(P)


def ifft2c(k: torch.Tensor) -> torch.Tensor:
    """Inverse of `fft2c` (and its adjoint): `fftshift(ifft2(ifftshift(k), norm="ortho"))` = `conj(Q) * ifft2(conj(P) * k)`."""
    _need_2d(k, "k")
    Q, P = _centring(k.shape[-2], k.shape[-1], _complex(k.dtype), k.device)
    return torch.fft.ifft2(P.conj() * k, norm="ortho").mul_(Q.conj())


def _complex(dtype: torch.dtype) -> torch.dtype:
    return dtype if dtype.is_complex else (dtype if dtype.is_floating_point else torch.float32).to_complex()


@functools.lru_cache(maxsize=32)
def _centring(H: int, W: int, dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    r"""`(Q, P)`, `(H, W)` each: the shifts of `fft2c` as phase ramps, `fft2c(x) = P * fft2(Q * x)`.

    Per axis of length n with s = n // 2, `ifftshift` then `fft` is :math:`e^{2\pi i k s/n}` times the
    transform, and `fftshift` of a transform is the transform of :math:`e^{2\pi i m s/n} x_m`; so
    :math:`Q_m = e^{2\pi i s m/n}`, :math:`P_k = e^{2\pi i s (k - s)/n}` (±1 for even n, exactly).
    """
    def ramp(n: int, offset: int) -> torch.Tensor:
        s = n // 2
        r = (s * (torch.arange(n, dtype=torch.int64) - offset)) % n  # the angle in units of 2 pi / n
        angle = 2 * math.pi * r.to(torch.float64) / n
        cos, sin = torch.cos(angle), torch.sin(angle)
        exact = (4 * r) % n == 0  # multiples of pi / 2: exactly 0 or +-1
        return torch.complex(torch.where(exact, cos.round(), cos), torch.where(exact, sin.round(), sin))

    Q = ramp(H, 0)[:, None] * ramp(W, 0)[None, :]
    P = ramp(H, H // 2)[:, None] * ramp(W, W // 2)[None, :]
    return Q.to(device=device, dtype=dtype), P.to(device=device, dtype=dtype)


def _need_2d(x: Any, name: str) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim < 2:
        raise ValueError(f"{name} must have at least 2 dims (*batch, H, W), got shape {tuple(x.shape)}")


# --------------------------------------------------------------------------------------------------
# The forward operator
# --------------------------------------------------------------------------------------------------
class MultiCoilMRI(LinearOperator):
    r"""SENSE forward model :math:`x \mapsto (M \odot F(S_c x))_c`, `(*batch, H, W) -> (*batch, C, H, W)`.

    Args:
        sensitivities: coil maps `(C, H, W)`, or `(*batch, C, H, W)` per sample (then the image batch
            must broadcast against `batch`). Complex (a real tensor is cast to the matching complex
            dtype); its dtype and device are the operator's. Single coil: `torch.ones(1, H, W)`.
        mask: `(H, W)` or `(W,)` (phase-encode lines, broadcast over rows), boolean or real 0/1.

    The adjoint is :math:`\sum_c \overline{S_c} F^H (M \odot y_c)`. With a full mask and
    :math:`\sum_c |S_c|^2 = 1`, :math:`A^H A = I`. `normal()` is the base class's lazy `A.H @ A`
    (two FFTs per coil per product). Inputs must be complex (ValueError otherwise).
    """

    def __init__(self, sensitivities: torch.Tensor, mask: torch.Tensor):
        if not isinstance(sensitivities, torch.Tensor):
            raise TypeError(f"sensitivities must be a torch.Tensor, got {type(sensitivities).__name__}")
        if sensitivities.ndim < 3:
            raise ValueError(f"sensitivities must have shape (C, H, W) or (*batch, C, H, W), got {tuple(sensitivities.shape)}")
        if not sensitivities.is_complex():
            if not sensitivities.is_floating_point():
                raise ValueError(f"sensitivities must be a complex (or real floating) tensor, got {sensitivities.dtype}")
            sensitivities = sensitivities.to(sensitivities.dtype.to_complex())
        C, H, W = sensitivities.shape[-3:]
        if not isinstance(mask, torch.Tensor):
            raise TypeError(f"mask must be a torch.Tensor, got {type(mask).__name__}")
        if mask.is_complex():
            raise ValueError("mask must be boolean or real 0/1, got a complex tensor")
        if mask.ndim == 1:
            if mask.shape[0] != W:
                raise ValueError(f"mask of shape {tuple(mask.shape)} (lines) does not match the image width W={W} "
                                 f"of sensitivities {tuple(sensitivities.shape)}")
            mask = mask.reshape(1, W).expand(H, W)
        elif mask.ndim == 2:
            if tuple(mask.shape) != (H, W):
                raise ValueError(f"mask of shape {tuple(mask.shape)} does not match the image size (H, W)=({H}, {W}) "
                                 f"of sensitivities {tuple(sensitivities.shape)}")
        else:
            raise ValueError(f"mask must have shape (H, W) or (W,), got {tuple(mask.shape)}")
        if mask.dtype != torch.bool:
            if not bool(((mask == 0) | (mask == 1)).all()):
                raise ValueError("mask must contain only 0 and 1")
        super().__init__((H, W), (C, H, W), dtype=sensitivities.dtype, device=sensitivities.device)
        self.sensitivities = sensitivities
        # A real 0/1 mask in the operator's real precision (so `to()` casts it along).
        self.mask = mask.to(device=sensitivities.device, dtype=sensitivities.dtype.to_real()).contiguous()
        self.n_coils = C
        # fft2c(v) = P * fft2(Q * v): the centring folded into the coil maps and the mask, so that a product
        # is one multiply, one FFT per coil and one multiply (no shifts)
        Q, P = _centring(H, W, sensitivities.dtype, sensitivities.device)
        self._maps_q = sensitivities * Q
        self._mask_p = self.mask * P

    def _check(self, t: torch.Tensor, name: str, shape: tuple) -> None:
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"MultiCoilMRI: {name} must be a torch.Tensor, got {type(t).__name__}")
        if not t.is_complex():
            raise ValueError(f"MultiCoilMRI: {name} must be complex (this is a complex operator), got {t.dtype}")
        k = len(shape)
        if t.ndim < k or tuple(t.shape[t.ndim - k:]) != shape:
            raise ValueError(f"MultiCoilMRI: {name} has shape {tuple(t.shape)}, expected (*batch, {', '.join(map(str, shape))})")

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x, "x", self.in_shape)
        return torch.fft.fft2(self._maps_q * x.unsqueeze(-3), norm="ortho").mul_(self._mask_p)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        self._check(y, "y", self.out_shape)
        return (self._maps_q.conj() * torch.fft.ifft2(self._mask_p.conj() * y, norm="ortho")).sum(dim=-3)

    @property
    def acceleration(self) -> float:
        """`H * W / (number of sampled k-space locations)`."""
        return mask_acceleration(self.mask)


# --------------------------------------------------------------------------------------------------
# Sampling masks
# --------------------------------------------------------------------------------------------------
def mask_acceleration(mask: torch.Tensor) -> float:
    """Achieved acceleration `numel / count_nonzero` of a mask (inf for an empty mask)."""
    n = int(torch.count_nonzero(mask))
    return math.inf if n == 0 else mask.numel() / n


def _generator(generator: torch.Generator | None, seed: int | None) -> torch.Generator:
    if generator is not None and seed is not None:
        raise ValueError("pass either generator or seed, not both")
    if generator is not None:
        return generator
    return torch.Generator().manual_seed(0 if seed is None else int(seed))


def _shape2(shape: Any) -> tuple[int, ...]:
    if isinstance(shape, int):
        shape = (shape,)
    shape = tuple(int(s) for s in shape)
    if len(shape) not in (1, 2) or any(s < 1 for s in shape):
        raise ValueError(f"shape must be W or (H, W) with positive sizes, got {shape}")
    return shape


def _line_budget(W: int, acceleration: float, center_fraction: float) -> tuple[int, int]:
    if not acceleration >= 1:
        raise ValueError(f"acceleration must be >= 1, got {acceleration}")
    if not 0 <= center_fraction <= 1:
        raise ValueError(f"center_fraction must be in [0, 1], got {center_fraction}")
    n_total = max(1, round(W / acceleration))
    n_center = round(W * center_fraction)
    if n_center > n_total:
        raise ValueError(f"the {n_center} centre (ACS) lines exceed the budget of {n_total} lines for acceleration "
                         f"{acceleration} on width {W}: lower center_fraction or the acceleration")
    return n_total, n_center


def _center_slice(n: int, size: int) -> slice:
    start = size // 2 - n // 2
    return slice(start, start + n)


def _lines_to_shape(lines: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    return lines if len(shape) == 1 else lines.reshape(1, -1).expand(shape).clone()


def uniform_lines_mask(shape: Any, acceleration: float, center_fraction: float = 0.08, *, equispaced: bool = False,
                       generator: torch.Generator | None = None, seed: int | None = None) -> torch.Tensor:
    """fastMRI-style random 1-D phase-encode lines plus a fully sampled centre (ACS) block.

    Exactly `n = round(W / acceleration)` distinct columns are sampled in total: the
    `round(W * center_fraction)` centre columns (around index `W // 2`) plus `n - n_center` others
    drawn uniformly without replacement. So the achieved acceleration is `W / n`, within
    `acceleration / n` of the request (rounding only). (DDS `uniform1d` draws with replacement, so
    it may undershoot its nominal line count; this version hits it.)

    `equispaced=True` (fastMRI `EquispacedMaskFractionFunc`): instead of random lines, every
    `s`-th line from a random offset is added to the ACS block, with the spacing
    `s = acceleration (W - n_center) / (W - n_center acceleration)` chosen so the total is about
    `W / acceleration` (it may differ by a line or two: overlaps with the ACS block).
    Regular spacing is what SENSE unfolds best (CG-SENSE with smooth coil maps cannot fill the wide
    gaps that random lines leave at high frequencies).

    Args:
        shape: `W` (returns a `(W,)` line mask) or `(H, W)` (returns the mask broadcast over rows).
        generator / seed: randomness (default seed 0): the same seed gives the same mask.
    Returns: a boolean tensor of `shape`.
    """
    shape = _shape2(shape)
    W = shape[-1]
    n_total, n_center = _line_budget(W, acceleration, center_fraction)
    gen = _generator(generator, seed)
    lines = torch.zeros(W, dtype=torch.bool)
    lines[_center_slice(n_center, W)] = True
    if equispaced:
        if n_total > n_center:
            step = acceleration * (W - n_center) / max(W - n_center * acceleration, 1e-12)
            offset = int(torch.randint(0, max(1, round(step)), (1,), generator=gen))
            pick = torch.round(torch.arange(offset, W, step, dtype=torch.float64)).long()
            lines[pick[pick < W]] = True
        return _lines_to_shape(lines, shape)
    free = torch.nonzero(~lines).flatten()
    pick = free[torch.randperm(free.numel(), generator=gen)[: n_total - n_center]]
    lines[pick] = True
    return _lines_to_shape(lines, shape)


def gaussian_lines_mask(shape: Any, acceleration: float, center_fraction: float = 0.08, std: float | None = None, *,
                        generator: torch.Generator | None = None, seed: int | None = None) -> torch.Tensor:
    """Random 1-D phase-encode lines with a Gaussian density around the centre, plus the ACS block.

    The `n - n_center` non-centre lines (`n = round(W / acceleration)`, as in `uniform_lines_mask`)
    are drawn without replacement with probability proportional to `exp(-(k - W//2)^2 / (2 std^2))`;
    `std` defaults to `W * 15 / 128` (the DDS `gaussian1d` width). Achieved acceleration: `W / n`.
    """
    shape = _shape2(shape)
    W = shape[-1]
    n_total, n_center = _line_budget(W, acceleration, center_fraction)
    std = W * 15 / 128 if std is None else float(std)
    if not std > 0:
        raise ValueError(f"std must be > 0, got {std}")
    gen = _generator(generator, seed)
    lines = torch.zeros(W, dtype=torch.bool)
    lines[_center_slice(n_center, W)] = True
    free = torch.nonzero(~lines).flatten()
    if n_total > n_center:
        k = free.to(torch.float64) - W // 2
        weights = torch.exp(-0.5 * (k / std) ** 2).clamp_min(1e-300)
        pick = free[torch.multinomial(weights, n_total - n_center, replacement=False, generator=gen)]
        lines[pick] = True
    return _lines_to_shape(lines, shape)


def _calib_box(calib: Any, H: int, W: int) -> tuple[int, int]:
    ch, cw = (calib, calib) if isinstance(calib, int) else tuple(int(c) for c in calib)
    if not (0 <= ch <= H and 0 <= cw <= W):
        raise ValueError(f"calibration size ({ch}, {cw}) does not fit the shape ({H}, {W})")
    return ch, cw


def poisson_disc_mask(shape: Any, acceleration: float, calib: Any = 16, density_power: float = 1.0, *,
                      tol: float = 0.05, max_iter: int = 12,
                      generator: torch.Generator | None = None, seed: int | None = None) -> torch.Tensor:
    r"""2-D variable-density Poisson-disc-like mask by dart throwing, with a fully sampled calibration box.

    Method (simple, not Bridson's algorithm): every k-space location is visited once in a random order
    and accepted unless an already accepted location lies closer than
    :math:`r(p) = r_0 (1 + \alpha\, d(p))`, where `d` is the distance to the centre normalised to
    1 at the edge midpoints and :math:`\alpha` = `density_power`. The central `calib` box (int or
    `(ch, cw)`) is pre-filled. `r_0` is tuned by fixed-point iterations
    (:math:`r_0 \leftarrow r_0 \sqrt{n/n_{target}}`, the sample count scaling like :math:`r_0^{-2}`)
    until the achieved acceleration is within `tol` (relative) of the request, or the best of
    `max_iter` tries is returned. All tries use the same visiting order (derived from the seed).
    Cost: one Python pass over H*W locations per try (~0.1 s for 64x64).
    """
    shape = _shape2(shape)
    if len(shape) != 2:
        raise ValueError(f"poisson_disc_mask needs a 2-D shape (H, W), got {shape}")
    H, W = shape
    if not acceleration >= 1:
        raise ValueError(f"acceleration must be >= 1, got {acceleration}")
    ch, cw = _calib_box(calib, H, W)
    target = H * W / acceleration
    if ch * cw > target:
        raise ValueError(f"the calibration box {ch}x{cw} exceeds the sample budget {target:.0f} for acceleration {acceleration}")
    gen = _generator(generator, seed)
    order = torch.randperm(H * W, generator=gen).numpy()
    yy, xx = np.meshgrid(np.arange(H) - H // 2, np.arange(W) - W // 2, indexing="ij")
    dist = np.sqrt((yy / max(H / 2, 1)) ** 2 + (xx / max(W / 2, 1)) ** 2).ravel()
    calib_mask = np.zeros((H, W), dtype=bool)
    calib_mask[_center_slice(ch, H), _center_slice(cw, W)] = True

    def throw(r0: float) -> np.ndarray:
        radius = r0 * (1 + density_power * dist)
        R = int(math.ceil(radius.max()))
        acc = np.zeros((H + 2 * R, W + 2 * R), dtype=bool)  # padded: windows never leave the array
        acc[R:R + H, R:R + W] = calib_mask
        off = np.arange(-R, R + 1)
        d2 = off[:, None] ** 2 + off[None, :] ** 2
        for p in order:
            i, j = divmod(int(p), W)
            if acc[R + i, R + j]:
                continue
            r = radius[p]
            win = acc[i:i + 2 * R + 1, j:j + 2 * R + 1]
            if not (win & (d2 < r * r)).any():
                acc[R + i, R + j] = True
        return acc[R:R + H, R:R + W]

    r0 = math.sqrt(acceleration) / (1 + 0.5 * density_power)
    best, best_err = None, math.inf
    for _ in range(max_iter):
        m = throw(r0)
        n = int(m.sum())
        err = abs(H * W / max(n, 1) - acceleration) / acceleration
        if err < best_err:
            best, best_err = m, err
        if err <= tol:
            break
        r0 = max(r0 * math.sqrt(n / target), 1e-3)
    return torch.from_numpy(best.copy())


def radial_mask(shape: Any, n_spokes: int, golden_angle: bool = False) -> torch.Tensor:
    """Radial-like mask on the Cartesian grid: `n_spokes` lines through the k-space centre `(H//2, W//2)`.

    Spoke angles are `pi * k / n_spokes` (or golden-angle increments, `golden_angle=True`); each
    spoke is rasterised by rounding points spaced half a pixel along it to the nearest grid
    location. Deterministic (no randomness). The achieved acceleration is `mask_acceleration(mask)`
    (about `H * W / (n_spokes * max(H, W))` for few spokes; less, due to overlap at the centre).
    """
    shape = _shape2(shape)
    if len(shape) != 2:
        raise ValueError(f"radial_mask needs a 2-D shape (H, W), got {shape}")
    if not (isinstance(n_spokes, int) and n_spokes >= 1):
        raise ValueError(f"n_spokes must be a positive int, got {n_spokes!r}")
    H, W = shape
    k = torch.arange(n_spokes, dtype=torch.float64)
    theta = k * (math.pi * (math.sqrt(5) - 1) / 2 if golden_angle else math.pi / n_spokes)
    L = math.hypot(H, W)
    t = torch.arange(-L / 2, L / 2 + 0.5, 0.5, dtype=torch.float64)
    rows = torch.round(H // 2 + t[None, :] * torch.sin(theta)[:, None]).long().flatten()
    cols = torch.round(W // 2 + t[None, :] * torch.cos(theta)[:, None]).long().flatten()
    keep = (rows >= 0) & (rows < H) & (cols >= 0) & (cols < W)
    mask = torch.zeros(H, W, dtype=torch.bool)
    mask[rows[keep], cols[keep]] = True
    return mask


# --------------------------------------------------------------------------------------------------
# Coil sensitivities, phantoms, combinations
# --------------------------------------------------------------------------------------------------
def birdcage_sensitivities(shape: Any, n_coils: int, coil_radius: float = 1.5, *, dtype: torch.dtype = torch.complex128,
                           device: Any = None) -> torch.Tensor:
    r"""Simulated birdcage-like coil maps `(n_coils, H, W)`, normalised so :math:`\sum_c |S_c|^2 = 1` everywhere.

    The field of view is `[-1, 1]^2`; coil `c` sits at angle :math:`2\pi c / C` on a circle of radius
    `coil_radius`. Before normalisation, :math:`S_c(p) = e^{i(\varphi_c(p) + 2\pi c / C)} / |p - q_c|`
    (the 1/distance falloff of the field of a long straight wire, Biot–Savart in 2-D), with
    :math:`\varphi_c(p)` the angle of `p - q_c` (the field direction rotates around the wire). The maps
    are then divided by their root-sum-of-squares at every pixel (so the normalisation holds in and
    outside the object), which keeps their relative magnitudes and phases.
    """
    shape = _shape2(shape)
    if len(shape) != 2:
        raise ValueError(f"birdcage_sensitivities needs a 2-D shape (H, W), got {shape}")
    if not (isinstance(n_coils, int) and n_coils >= 1):
        raise ValueError(f"n_coils must be a positive int, got {n_coils!r}")
    if not coil_radius > 1:
        raise ValueError(f"coil_radius must exceed 1 (outside the inscribed circle of the field of view), got {coil_radius}")
    H, W = shape
    real = dtype.to_real()
    y, x = torch.meshgrid(torch.linspace(-1, 1, H, dtype=torch.float64), torch.linspace(-1, 1, W, dtype=torch.float64),
                          indexing="ij")
    ang = 2 * math.pi * torch.arange(n_coils, dtype=torch.float64) / n_coils
    dx = x[None] - coil_radius * torch.cos(ang)[:, None, None]
    dy = y[None] - coil_radius * torch.sin(ang)[:, None, None]
    r = torch.sqrt(dx**2 + dy**2)
    phase = torch.atan2(dy, dx) + ang[:, None, None]
    S = torch.polar(1 / r, phase)
    S = S / rss(S, dim=0)
    return S.to(device=device, dtype=real.to_complex())


def estimate_sensitivities(kspace: torch.Tensor, calib_size: Any = 24, *, mask: torch.Tensor | None = None,
                           eps: float = 1e-8) -> torch.Tensor:
    r"""Coil maps from the fully sampled centre of multi-coil k-space `(*batch, C, H, W)`.

    Estimator (a simple low-resolution "ratio" method, not ESPIRiT): keep the central `calib_size`
    box (int or `(ch, cw)`) of k-space, multiply it by a separable Hann window (so the low-resolution
    coil images do not ring), zero-pad, `ifft2c`, and divide each coil image by the
    root-sum-of-squares over coils (`+ eps * max`, so the maps stay finite where there is no signal).
    Output `(*batch, C, H, W)`, with :math:`\sum_c |S_c|^2 \approx 1` where there is signal. The maps
    carry the object's low-resolution phase (zero for a real positive object) and are meaningless
    outside the object.

    If `mask` `(H, W)` or `(W,)` is given, raise ValueError unless the box is fully sampled.
    """
    _need_2d(kspace, "kspace")
    if kspace.ndim < 3 or not kspace.is_complex():
        raise ValueError(f"kspace must be complex (*batch, C, H, W), got {tuple(kspace.shape)} {kspace.dtype}")
    H, W = kspace.shape[-2:]
    ch, cw = _calib_box(calib_size, H, W)
    if ch < 1 or cw < 1:
        raise ValueError(f"calib_size must be positive, got {calib_size}")
    sh, sw = _center_slice(ch, H), _center_slice(cw, W)
    if mask is not None:
        m = mask.reshape(1, W).expand(H, W) if mask.ndim == 1 else mask
        if tuple(m.shape) != (H, W):
            raise ValueError(f"mask of shape {tuple(mask.shape)} does not match k-space ({H}, {W})")
        if not bool(m[sh, sw].bool().all()):
            raise ValueError(f"the calibration box {ch}x{cw} is not fully sampled by the mask")
    real = kspace.real.dtype
    win = (torch.hann_window(ch + 2, periodic=False, dtype=real, device=kspace.device)[1:-1, None]
           * torch.hann_window(cw + 2, periodic=False, dtype=real, device=kspace.device)[None, 1:-1])
    low = torch.zeros_like(kspace)
    low[..., sh, sw] = kspace[..., sh, sw] * win
    imgs = ifft2c(low)
    norm = rss(imgs, dim=-3).unsqueeze(-3)
    return imgs / (norm + eps * norm.amax(dim=(-2, -1), keepdim=True))


def rss(coil_images: torch.Tensor, dim: int = -3) -> torch.Tensor:
    """Root-sum-of-squares over the coil dim: `sqrt(sum_c |x_c|^2)` (real)."""
    return torch.sqrt((coil_images.abs() ** 2).sum(dim=dim))


def zero_filled(kspace: torch.Tensor, sensitivities: torch.Tensor | None = None) -> torch.Tensor:
    """Zero-filled reconstruction of (already masked) k-space `(*batch, C, H, W)`.

    With `sensitivities`, the complex coil combination `sum_c conj(S_c) ifft2c(y_c)` (= A^H y);
    without, the magnitude `rss(ifft2c(y))`.
    """
    imgs = ifft2c(kspace)
    if sensitivities is None:
        return rss(imgs, dim=-3)
    return (sensitivities.conj() * imgs).sum(dim=-3)

def calibration_phase(kspace: torch.Tensor, mask: torch.Tensor, sensitivities: torch.Tensor) -> torch.Tensor:
    """Low-resolution phase of a multi-coil MRI image from its fully sampled centre (calibration) lines:
    the angle of the coil-combined zero-filled image of the contiguous run of sampled columns
    around `W // 2` (the auto-calibration block of `uniform_lines_mask`), for `phase_constrained`.

    `kspace` `(*batch, C, H, W)` (already masked), `mask` broadcastable to it with sampled columns
    along the last axis, `sensitivities` `(C, H, W)`.
    """
    cols = mask.reshape(-1, mask.shape[-1]).amax(dim=0) > 0
    centre = lo = hi = cols.shape[0] // 2
    if not cols[centre]:
        raise ValueError("calibration_phase: the centre column W // 2 is not sampled (no calibration block)")
    while lo > 0 and cols[lo - 1]:
        lo -= 1
    while hi + 1 < cols.shape[0] and cols[hi + 1]:
        hi += 1
    acs = torch.zeros_like(cols)
    acs[lo:hi + 1] = True
    return zero_filled(kspace * acs.to(kspace.device), sensitivities).angle()


def smoothed_phase(x: torch.Tensor, sigma: float, fallback: torch.Tensor, weight: float = 0.05) -> torch.Tensor:
    """Unit complex phase :math:`e^{i\\varphi}` `(*batch, H, W)` of the image `x` `(*batch, H, W)` smoothed by a
    Gaussian of `sigma` pixels ("reflect" borders), blended with the unit complex `fallback` (e.g. the
    `calibration_phase`, broadcastable to `x`) at `weight` times each image's largest smoothed magnitude:
    where the image is bright the phase follows `x`, where it is dark (background, whose phase is noise)
    it stays the smooth fallback. Refreshing a phase constraint with it as the estimate improves uses the
    whole of k-space, not only the calibration lines."""
    from .imaging import Blur, gaussian_kernel

    real = x.real.dtype
    blur = Blur(gaussian_kernel(sigma, dtype=real, device=x.device), tuple(x.shape[-2:]), "reflect", dtype=x.dtype)
    z = blur.apply(x)
    peak = z.abs().amax(dim=(-2, -1), keepdim=True)
    z = z + weight * peak * fallback
    return z / z.abs().clamp_min(torch.finfo(real).tiny)
