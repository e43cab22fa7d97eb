r"""Imaging forward models: FFT convolution (blur) and random compressed-sensing measurements.

Both are `LinearOperator`s with exact adjoints (the dot-product test is at round-off), batched over
leading dimensions, pure torch (any device), float32/float64 or complex64/complex128.

Blur
    `Blur(kernel, image_shape, padding)` convolves 1-, 2- or 3-D images with a fixed kernel by FFT
    (`sciml.linalg.fft_convolve`). The boundary rule `padding` follows `scipy.ndimage` (same-size
    output, kernel centre at index `m // 2` on every axis) or `scipy.signal.fftconvolve`
    ("valid", "full"); the adjoint is the correlation with the same kernel (convolution with the
    flipped, conjugated kernel) followed by the transpose of the boundary extension, so it is exact
    for every mode. Kernels: `gaussian_kernel`, `uniform_kernel`, `motion_kernel` (sum 1).

Compressed sensing
    `CompressedSensing(m, in_shape, kind)`: y = A x with a random `(m, N)` matrix, `N = prod(in_shape)`,
    scaled so that :math:`E[A^H A] = I`. Dense kinds ("gaussian", "rademacher") store the matrix;
    structured kinds ("subsampled-dct", "subsampled-fft") store only `m` row indices and `N` signs
    and cost O(N log N) per product.
"""
from __future__ import annotations

import math
from typing import Any

import torch

from ..linalg.convolve import fft_convolve
from ..linalg.fft import dct, idct
from .base import LinearOperator, _as_shape
from .mri import _generator

__all__ = ["Blur", "BLUR_PADDINGS", "CS_KINDS", "CompressedSensing", "gaussian_kernel", "motion_kernel", "uniform_kernel"]

_FLOAT = (torch.float32, torch.float64, torch.complex64, torch.complex128)

# padding name -> canonical name (scipy.ndimage mode names are accepted as aliases)
_PADDING_ALIASES = {
    "circular": "circular", "wrap": "circular", "zero": "zero", "constant": "zero", "reflect": "reflect",
    "mirror": "mirror", "nearest": "nearest", "valid": "valid", "full": "full",
}
BLUR_PADDINGS = tuple(_PADDING_ALIASES)


def _check_dtype(dtype: Any, name: str = "dtype") -> torch.dtype:
    if dtype not in _FLOAT:
        raise TypeError(f"{name} must be torch.float32, float64, complex64 or complex128, got {dtype}")
    return dtype


def _check_operand(op: LinearOperator, t: Any, name: str, shape: tuple) -> None:
    """Type, shape, real/complex and device checks shared by the operators of this module."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{type(op).__name__}: {name} must be a torch.Tensor, got {type(t).__name__}")
    if t.is_complex() and not op.dtype.is_complex:
        raise ValueError(f"{type(op).__name__}: {name} is complex ({t.dtype}) but the operator is real ({op.dtype}); "
                         f"build it with dtype={op.dtype.to_complex()} to act on complex tensors")
    op._check_input(t, shape, name)


# ================================================================================================
# Blur
# ================================================================================================
def _extension_index(n: int, lo: int, hi: int, mode: str, device: Any) -> torch.Tensor:
    """Indices into an axis of length `n` for the extended axis `-lo .. n - 1 + hi` (`n` means zero)."""
    q = torch.arange(-lo, n + hi, device=device)
    if mode == "circular":
        return q % n
    if mode == "nearest":
        return q.clamp(0, n - 1)
    if mode == "reflect":                      # d c b a | a b c d | d c b a
        r = q % (2 * n)
        return torch.where(r < n, r, 2 * n - 1 - r)
    if mode == "mirror":                       # d c b | a b c d | c b a
        if n == 1:
            return torch.zeros_like(q)
        r = q % (2 * n - 2)
        return torch.where(r < n, r, 2 * n - 2 - r)
    return torch.where((q >= 0) & (q < n), q, torch.full_like(q, n))   # zero


class Blur(LinearOperator):
    r"""Convolution with a fixed kernel by FFT, `(*batch, *image_shape) -> (*batch, *out_shape)`.

    :math:`y_i = \sum_j k_j\, \tilde x_{i + c - j}` with the kernel centre :math:`c_d = m_d // 2` on
    every axis and :math:`\tilde x` the image extended beyond its borders by `padding`:

    - "circular" (alias "wrap"): periodic; `scipy.ndimage.convolve(x, k, mode="wrap")`;
    - "zero" (alias "constant"): zeros; `scipy.ndimage.convolve(x, k, mode="constant")`, which for odd
      kernels is also `scipy.signal.fftconvolve(x, k, mode="same")` (for an even kernel size scipy.signal
      centres at `(m - 1) // 2`, one sample before this operator and scipy.ndimage);
    - "reflect" (d c b a | a b c d | d c b a), "mirror" (d c b | a b c d | c b a), "nearest"
      (a a | a b c d | d d): as the `scipy.ndimage` modes of the same names;

    all with the output size of the image, and

    - "valid": only where the kernel fits inside the image, size `n - m + 1` (needs `m <= n`);
    - "full": the whole linear convolution, size `n + m - 1`; both as `scipy.signal.fftconvolve`.

    The adjoint is the correlation with the kernel (convolution with the flipped conjugate kernel)
    followed by the transpose of the extension (values that fell outside are added back onto the
    pixels they were copied from), so it is exact for every padding. Any kernel size works, even
    sizes and kernels larger than the image included (except "valid").

    Args:
        kernel: `(*m)` with 1-3 dims (the number of dims convolved over); float or complex.
        image_shape: the image size `(*n)`, as many dims as the kernel.
        padding: the boundary rule, see above (default "circular").
        dtype: of the images (default the kernel's dtype); the kernel is cast to it. A real dtype with a
            complex kernel is an error; a complex dtype with a real kernel blurs complex images.
        device: default the kernel's.

    Cost: one FFT convolution of the extended image (size `n + m - 1` per axis) per product.
    """

    def __init__(self, kernel: torch.Tensor, image_shape: Any, padding: str = "circular", *,
                 dtype: torch.dtype | None = None, device: Any = None):
        if not isinstance(kernel, torch.Tensor):
            raise TypeError(f"kernel must be a torch.Tensor, got {type(kernel).__name__}")
        if not 1 <= kernel.ndim <= 3 or kernel.numel() == 0:
            raise ValueError(f"kernel must be a non-empty 1-, 2- or 3-D tensor, got shape {tuple(kernel.shape)}")
        dtype = _check_dtype(kernel.dtype if dtype is None else dtype)
        _check_dtype(kernel.dtype, "kernel dtype")
        if kernel.is_complex() and not dtype.is_complex:
            raise ValueError(f"kernel is complex ({kernel.dtype}) but dtype={dtype} is real: pass a complex dtype")
        shape = _as_shape(image_shape, "image_shape")
        if len(shape) != kernel.ndim:
            raise ValueError(f"image_shape {shape} must have as many dims as the kernel {tuple(kernel.shape)}")
        if padding not in _PADDING_ALIASES:
            raise ValueError(f"padding must be one of {', '.join(map(repr, BLUR_PADDINGS))}, got {padding!r}")
        mode = _PADDING_ALIASES[padding]
        m = tuple(kernel.shape)
        if mode == "valid" and any(a > b for a, b in zip(m, shape)):
            raise ValueError(f"padding='valid' needs the kernel {m} no larger than image_shape {shape} on every axis")
        out = {"valid": tuple(b - a + 1 for a, b in zip(m, shape)),
               "full": tuple(a + b - 1 for a, b in zip(m, shape))}.get(mode, shape)
        device = kernel.device if device is None else torch.device(device)
        super().__init__(shape, out, dtype=dtype, device=device)
        self.kernel = kernel.detach().to(device=device, dtype=dtype)
        self.padding = mode
        self.dims = kernel.ndim

    def _kernels(self) -> tuple[torch.Tensor, torch.Tensor]:
        flipped = self.kernel.flip(tuple(range(self.dims))).conj()
        return self.kernel, flipped.resolve_conj()

    def _extension_axes(self, t: torch.Tensor):
        """Yields `(axis, n, idx)` per convolved axis: the image is extended by `m - 1 - c` samples before
        and `c = m // 2` after (`idx` from `_extension_index`)."""
        for d, (n, m) in enumerate(zip(self.in_shape, self.kernel.shape)):
            yield t.ndim - self.dims + d, n, _extension_index(n, m - 1 - m // 2, m // 2, self.padding, t.device)

    def _extend(self, x: torch.Tensor) -> torch.Tensor:
        for axis, n, idx in self._extension_axes(x):
            if self.padding == "zero":      # index n reads an appended zero
                x = torch.cat([x, x.new_zeros(x.shape[:axis] + (1,) + x.shape[axis + 1:])], axis)
            x = x.index_select(axis, idx)
        return x

    def _extend_adjoint(self, z: torch.Tensor) -> torch.Tensor:
        for axis, n, idx in self._extension_axes(z):
            acc = z.new_zeros(z.shape[:axis] + (n + (self.padding == "zero"),) + z.shape[axis + 1:])
            z = acc.index_add(axis, idx, z).narrow(axis, 0, n)
        return z

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        _check_operand(self, x, "x", self.in_shape)
        k, _ = self._kernels()
        if self.padding in ("valid", "full"):
            return fft_convolve(x, k, self.padding, dims=self.dims)
        return fft_convolve(self._extend(x), k, "valid", dims=self.dims)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        _check_operand(self, y, "y", self.out_shape)
        _, kf = self._kernels()
        if self.padding == "valid":
            return fft_convolve(y, kf, "full", dims=self.dims)
        if self.padding == "full":
            return fft_convolve(y, kf, "valid", dims=self.dims)
        return self._extend_adjoint(fft_convolve(y, kf, "full", dims=self.dims))


# --- kernels ------------------------------------------------------------------------------------
def _per_axis(value: Any, ndim: int, name: str) -> tuple:
    vals = tuple(value) if isinstance(value, (tuple, list)) else (value,) * ndim
    if len(vals) != ndim:
        raise ValueError(f"{name} must be a number or a sequence of {ndim} numbers, got {value!r}")
    return vals


def _check_ndim(ndim: Any) -> int:
    if not isinstance(ndim, int) or isinstance(ndim, bool) or not 1 <= ndim <= 3:
        raise ValueError(f"ndim must be 1, 2 or 3, got {ndim!r}")
    return ndim


def _outer(factors: list[torch.Tensor]) -> torch.Tensor:
    out = factors[0]
    for f in factors[1:]:
        out = out[..., None] * f
    return out


def gaussian_kernel(sigma: Any, size: Any = None, *, ndim: int = 2, truncate: float = 4.0,
                    dtype: torch.dtype = torch.float64, device: Any = None) -> torch.Tensor:
    r"""Sampled Gaussian :math:`\propto \exp(-\sum_d x_d^2 / (2\sigma_d^2))`, normalised to sum 1.

    Args:
        sigma: standard deviation in pixels, a number or one per axis (> 0).
        size: odd kernel size, a number or one per axis (default `2 * int(truncate * sigma + 0.5) + 1`,
            the support of `scipy.ndimage.gaussian_filter`, so that `Blur(gaussian_kernel(s), shape,
            "reflect")` reproduces `gaussian_filter(x, s)`).
        ndim: number of axes when `sigma` and `size` are numbers (1-3).
    Returns: a `dtype` tensor of shape `size`, centred at index `size // 2`.
    """
    ndim = len(sigma) if isinstance(sigma, (tuple, list)) else _check_ndim(ndim)
    sigmas = [float(s) for s in _per_axis(sigma, ndim, "sigma")]
    if not all(s > 0 and math.isfinite(s) for s in sigmas):
        raise ValueError(f"sigma must be positive and finite, got {sigma!r}")
    sizes = [2 * int(truncate * s + 0.5) + 1 for s in sigmas] if size is None else _per_axis(size, ndim, "size")
    factors = []
    for s, n in zip(sigmas, sizes):
        if not isinstance(n, int) or isinstance(n, bool) or n < 1 or n % 2 == 0:
            raise ValueError(f"size must be a positive odd int (per axis), got {size!r}")
        t = torch.arange(n, dtype=torch.float64) - n // 2
        g = torch.exp(-0.5 * (t / s) ** 2)
        factors.append(g / g.sum())
    return _outer(factors).to(device=device, dtype=dtype)


def uniform_kernel(size: Any, *, ndim: int = 2, dtype: torch.dtype = torch.float64, device: Any = None) -> torch.Tensor:
    """Box kernel of `size` (a number or one per axis, positive ints), every entry `1 / prod(size)`.

    With an odd size, `Blur(uniform_kernel(s), shape, "reflect")` is `scipy.ndimage.uniform_filter(x, s)`.
    """
    ndim = len(size) if isinstance(size, (tuple, list)) else _check_ndim(ndim)
    sizes = _per_axis(size, ndim, "size")
    if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in sizes):
        raise ValueError(f"size must be a positive int or a sequence of positive ints, got {size!r}")
    return torch.full(sizes, 1.0 / math.prod(sizes), dtype=dtype, device=device)


def motion_kernel(length: float, angle: float = 0.0, *, dtype: torch.dtype = torch.float64,
                  device: Any = None) -> torch.Tensor:
    """Linear motion blur: a line segment of `length` pixels through the centre, normalised to sum 1.

    `angle` is in radians, counter-clockwise from the +x axis (along a row, to the right) with y up
    (rows go down the image, as in `sciml.operators.ct`). The segment is sampled at 16 points per pixel,
    each splatted bilinearly onto the grid. The kernel is square of odd size `2 * ceil(length / 2) + 1`
    and point-symmetric about its centre; a `length` of 1 or less stays within the centre pixel and its neighbours.
    """
    length, angle = float(length), float(angle)
    if not (length > 0 and math.isfinite(length)):
        raise ValueError(f"length must be a positive finite number of pixels, got {length!r}")
    if not math.isfinite(angle):
        raise ValueError(f"angle must be finite (radians), got {angle!r}")
    half = math.ceil(length / 2)
    n = 2 * half + 1
    n_pts = max(2, int(math.ceil(16 * length)) + 1)
    t = torch.linspace(-length / 2, length / 2, n_pts, dtype=torch.float64)
    col = half + t * math.cos(angle)
    row = half - t * math.sin(angle)
    k = torch.zeros(n + 1, n + 1, dtype=torch.float64)          # one spare row/column for the splat
    r0, c0 = row.floor(), col.floor()
    fr, fc = row - r0, col - c0
    r0, c0 = r0.long(), c0.long()
    for dr, wr in ((0, 1 - fr), (1, fr)):
        for dc, wc in ((0, 1 - fc), (1, fc)):
            k.index_put_(((r0 + dr).clamp(0, n), (c0 + dc).clamp(0, n)), wr * wc, accumulate=True)
    k = k[:n, :n]
    k = 0.5 * (k + k.flip((0, 1)))                                 # exact point symmetry
    return (k / k.sum()).to(device=device, dtype=dtype)


# ================================================================================================
# Compressed sensing
# ================================================================================================
CS_KINDS = ("gaussian", "rademacher", "subsampled-dct", "subsampled-fft")


class CompressedSensing(LinearOperator):
    r"""Random measurements `y = A x`, `(*batch, *in_shape) -> (*batch, m)`, with :math:`E[A^H A] = I`.

    `x` is flattened (row-major) to a vector of length `N = prod(in_shape)`. Kinds:

    - "gaussian": i.i.d. :math:`A_{ij} \sim N(0, 1/m)` (real dtype) or complex normal with
      :math:`E|A_{ij}|^2 = 1/m` (independent real and imaginary parts of variance `1/(2m)`);
    - "rademacher": i.i.d. :math:`\pm 1/\sqrt{m}` (real entries for either dtype);
    - "subsampled-dct": :math:`A = \sqrt{N/m}\, R\, C\, D`, with `D` random signs, `C` the orthonormal
      DCT-II of length `N` and `R` a random set of `m` distinct rows (sorted); real or complex dtype;
    - "subsampled-fft": the same with the unitary DFT in place of `C` (complex dtype only).

    In every case each column has :math:`E\|a_j\|^2 = 1` and distinct columns are uncorrelated, so
    :math:`E[A^H A] = I` and :math:`\|A x\| \approx \|x\|` for `m` large enough. The subsampled kinds
    satisfy `A A^H = (N/m) I` exactly; "subsampled-fft" has `diag(A^H A) = 1` exactly. Dense kinds store
    `m * N` entries (`matrix`) and cost `O(m N)` per product; subsampled kinds store `m + N` numbers
    and cost one length-`N` transform (`O(N log N)`). Use them for large `N`.

    Randomness: drawn on the CPU in float64 from `generator`, or from `torch.Generator().manual_seed(seed)`
    (default seed 0), then cast, so the same seed gives the same operator on every device and dtype.

    Args:
        m: number of measurements, a positive int (at most `N` for the subsampled kinds).
        in_shape: shape of one unknown, e.g. `(H, W)`.
        kind: one of `CS_KINDS`.
        seed, generator: the randomness (give at most one).
        dtype, device: of the operator (default float64; "subsampled-fft" needs a complex dtype).
    """

    def __init__(self, m: int, in_shape: Any, kind: str = "gaussian", *, seed: int | None = None,
                 generator: torch.Generator | None = None, dtype: torch.dtype | None = None, device: Any = None):
        if not isinstance(m, int) or isinstance(m, bool) or m < 1:
            raise ValueError(f"m (the number of measurements) must be a positive int, got {m!r}")
        if kind not in CS_KINDS:
            raise ValueError(f"kind must be one of {', '.join(map(repr, CS_KINDS))}, got {kind!r}")
        shape = _as_shape(in_shape, "in_shape")
        N = math.prod(shape)
        if dtype is None:
            dtype = torch.complex128 if kind == "subsampled-fft" else torch.float64
        dtype = _check_dtype(dtype)
        if kind == "subsampled-fft" and not dtype.is_complex:
            raise ValueError(f"kind='subsampled-fft' needs a complex dtype, got dtype={dtype}")
        if kind.startswith("subsampled") and m > N:
            raise ValueError(f"m={m} exceeds N={N} (the size of in_shape {shape}): kind={kind!r} selects m distinct rows")
        super().__init__(shape, (m,), dtype=dtype, device=device)
        self.kind, self.m, self.n = kind, m, N
        gen = _generator(generator, seed)
        if kind == "gaussian":
            if dtype.is_complex:
                A = torch.complex(torch.randn(m, N, dtype=torch.float64, generator=gen),
                                  torch.randn(m, N, dtype=torch.float64, generator=gen)) / math.sqrt(2 * m)
            else:
                A = torch.randn(m, N, dtype=torch.float64, generator=gen) / math.sqrt(m)
            self.matrix = A.to(device=device, dtype=dtype)
        elif kind == "rademacher":
            signs = 2.0 * torch.randint(0, 2, (m, N), generator=gen, dtype=torch.float64) - 1.0
            self.matrix = (signs / math.sqrt(m)).to(device=device, dtype=dtype)
        else:
            signs = 2.0 * torch.randint(0, 2, (N,), generator=gen, dtype=torch.float64) - 1.0
            self.signs = signs.to(device=device, dtype=dtype.to_real())
            self.rows = torch.randperm(N, generator=gen)[:m].sort().values.to(device)
            self.scale = math.sqrt(N / m)

    def _transform(self, v: torch.Tensor, inverse: bool) -> torch.Tensor:
        if self.kind == "subsampled-dct":
            return (idct if inverse else dct)(v, type=2, dim=-1, norm="ortho")
        return (torch.fft.ifft if inverse else torch.fft.fft)(v, dim=-1, norm="ortho")

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        _check_operand(self, x, "x", self.in_shape)
        v = x.reshape(*x.shape[:x.ndim - len(self.in_shape)], self.n)
        if self.kind in ("gaussian", "rademacher"):
            return v.to(self.dtype) @ self.matrix.mT
        return self.scale * self._transform(self.signs * v, False)[..., self.rows].to(self.dtype)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        _check_operand(self, y, "y", self.out_shape)
        batch = y.shape[:-1]
        if self.kind in ("gaussian", "rademacher"):
            v = y.to(self.dtype) @ self.matrix.conj()
        else:
            full = y.new_zeros(*batch, self.n, dtype=self.dtype)
            full[..., self.rows] = y.to(self.dtype)
            v = self.signs * self._transform(full, True) * self.scale
        return v.reshape(*batch, *self.in_shape)

