r"""FFT kernels: real-to-real transforms (DCT/DST I-IV), fast Poisson/Helmholtz solvers, FFT convolution.

Pure tensor code built on `torch.fft` (O(n log n), no dense matrices), batched over leading
dimensions, float32/float64 (real or complex), on any device torch.fft supports.

Transforms
    `dct`, `idct`, `dst`, `idst` follow `scipy.fft` exactly: the same definitions for types 1-4,
    the same `norm` modes (None/"backward", "ortho", "forward") and the same `orthogonalize`
    default (True for "ortho"). Complex input is transformed as real and imaginary parts.

Fast Poisson solver
    `poisson_solve` solves :math:`(-\Delta_h + \sigma) u = f` exactly for the finite-difference
    negative Laplacian of `sciml.operators.laplacian` (3-point stencil per axis, unknowns placed as
    there): per axis, "dirichlet" is diagonalised by DST-I, "neumann" (cell-centred) by DCT-II and
    "periodic" by the DFT; see `poisson_eigenvalues` for the eigenvalues.

Convolution
    `fft_convolve`: linear ("full", "same", "valid", as `scipy.signal.fftconvolve`) or circular
    convolution over the last 1-3 dimensions.

This module sits below `sciml.operators` (it must not import it); the operator wrapper is
`sciml.operators.LaplacianInverseOperator`.
"""
from __future__ import annotations

import functools
import math
import numbers
from typing import Any, Sequence

import torch

__all__ = [
    "dct", "idct", "dst", "idst",
    "poisson_eigenvalues", "poisson_solve",
    "fft_convolve",
]

_NORMS = {None: 0, "backward": 0, "ortho": 1, "forward": 2}   # 0: unscaled, 1: 1/sqrt(L), 2: 1/L
_REAL = (torch.float32, torch.float64)
_COMPLEX = (torch.complex64, torch.complex128)
_SQRT2 = math.sqrt(2.0)
BOUNDARY_CONDITIONS = ("dirichlet", "neumann", "periodic")


# ================================================================================================
# Input checks
# ================================================================================================
def _check_tensor(x: Any, name: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dtype not in _REAL + _COMPLEX:
        raise TypeError(f"{name} must be float32, float64, complex64 or complex128, got {x.dtype}")
    return x


def _check_dim(dim: Any, ndim: int, name: str = "dim") -> int:
    if not isinstance(dim, int) or isinstance(dim, bool):
        raise TypeError(f"{name} must be an int, got {type(dim).__name__}")
    if not -ndim <= dim < ndim:
        raise ValueError(f"{name}={dim} is out of range for a tensor with {ndim} dimensions")
    return dim % ndim


# ================================================================================================
# Cached twiddles and index maps (computed in float64 on the CPU once, then cached per device/dtype)
# ================================================================================================
@functools.lru_cache(maxsize=256)
def _table(kind: str, n: int, dtype: torch.dtype, device: torch.device, *params: float) -> torch.Tensor:
    """Small per-length constant tensors, cached. Never modify the result in place."""
    if kind in ("dct2_perm_in", "dct3_perm_out"):
        # v = [x0, x2, x4, ..., x5, x3, x1]: position of x_n in v (dct3_perm_out) / x index of v_m (dct2_perm_in)
        m = torch.arange(n)
        src = torch.where(m < (n + 1) // 2, 2 * m, 2 * (n - 1 - m) + 1)      # v_m = x_src[m]
        if kind == "dct2_perm_in":
            return src.to(device)
        pos = torch.empty(n, dtype=torch.long)
        pos[src] = m
        return pos.to(device)
    if kind in ("dct2_perm_out", "dst2_perm_out"):
        # from view_as_real(conj(Z)) flattened, (Re Z_0, -Im Z_0, Re Z_1, -Im Z_1, ...):
        # y_k = Re Z_k (k < M), y_{N-k} = -Im Z_k (k = 1..N-M)
        M = n // 2 + 1
        out = torch.empty(n, dtype=torch.long)
        out[:M] = 2 * torch.arange(M)
        k = torch.arange(1, n - M + 1)
        out[n - k] = 2 * k + 1
        return (out if kind == "dct2_perm_out" else out.flip(0)).to(device)
    if kind in ("dct3_perm_in", "dst3_perm_in"):
        # G[k] = (X_k, X_{N-k}) interleaved, k = 0..M-1 (X_N is a placeholder; its slot is zeroed later)
        M = n // 2 + 1
        k = torch.arange(M)
        re, im = k, (n - k) % n
        if kind == "dst3_perm_in":       # the same for X' = flip(X): X'_j = X_{N-1-j}
            re, im = n - 1 - re, (n - 1 - im) % n
        return torch.stack([re, im], dim=-1).reshape(-1).to(device)
    k = torch.arange(n, dtype=torch.float64)
    if kind == "dct2_twiddle":       # conj(scale * 2 e^{-i pi k / 2N}), k < M; entry 0 times post
        scale, post = params
        M = n // 2 + 1
        w = torch.polar(torch.full((M,), 2.0 * scale, dtype=torch.float64), k[:M] * (math.pi / (2 * n)))
        w[0] = w[0] * post
        return w.to(device=device, dtype=dtype)
    if kind == "dct3_twiddle":       # scale * N e^{+i pi k / 2N}, k < M; entry 0 times pre
        scale, pre = params
        M = n // 2 + 1
        u = torch.polar(torch.full((M,), n * scale, dtype=torch.float64), k[:M] * (math.pi / (2 * n)))
        u[0] = u[0] * pre
        return u.to(device=device, dtype=dtype)
    if kind == "dct4_pre":           # e^{-i pi n / 2N}
        return torch.polar(torch.ones(n, dtype=torch.float64), k * (-math.pi / (2 * n))).to(device=device, dtype=dtype)
    if kind in ("dct4_post", "dst4_post"):   # scale * 2 e^{-i pi (2k+1) / 4N} (times (-1)^k for DST-IV)
        (scale,) = params
        mag = torch.full((n,), 2.0 * scale, dtype=torch.float64)
        if kind == "dst4_post":
            mag[1::2] = -mag[1::2]
        return torch.polar(mag, (2 * k + 1) * (-math.pi / (4 * n))).to(device=device, dtype=dtype)
    if kind == "dst1_twiddle":       # (2 scale sin(pi k/M), -2 scale cos(pi k/M)), k = 1..N, M = N+1
        (scale,) = params
        t = torch.arange(1, n + 1, dtype=torch.float64) * (math.pi / (n + 1))
        return torch.stack([2 * scale * torch.sin(t), -2 * scale * torch.cos(t)]).to(device=device, dtype=dtype)
    raise AssertionError(kind)


# ================================================================================================
# Unnormalised kernels along the last dimension, real input. `scale` multiplies the output;
# `pre`/`post` are scipy's `orthogonalize` factors on the end samples of the input/output.
# ================================================================================================
def _dct1(x: torch.Tensor, scale: float, pre: float, post: float) -> torch.Tensor:
    # Even extension of period 2(N-1): [x0 .. x_{N-1}, x_{N-2} .. x1]; y = Re rfft.
    n = x.shape[-1]
    ext = torch.cat([x, x[..., 1:n - 1].flip(-1)], dim=-1)
    if pre != 1.0:
        ext[..., 0] *= pre
        ext[..., n - 1] *= pre
    y = torch.fft.rfft(ext, dim=-1).real * scale
    if post != 1.0:
        y[..., 0] *= post
        y[..., n - 1] *= post
    return y


def _dst1(x: torch.Tensor, scale: float) -> torch.Tensor:
    # Odd extension of period 2(N+1): with U = rfft(x zero-padded to 2(N+1)),
    # y_{k-1} = -2 Im(e^{-i pi k/(N+1)} U_k) = 2 sin(theta_k) Re U_k - 2 cos(theta_k) Im U_k.
    n = x.shape[-1]
    U = torch.view_as_real(torch.fft.rfft(x, n=2 * n + 2, dim=-1)[..., 1:n + 1])
    t = _table("dst1_twiddle", n, x.dtype, x.device, scale)
    return torch.addcmul(U[..., 0] * t[0], U[..., 1], t[1])


def _dct2(x: torch.Tensor, scale: float, post: float, sine: bool = False) -> torch.Tensor:
    # Makhoul: v = [x0, x2, ..., x3, x1], V = rfft(v), y_k = 2 Re(e^{-i pi k/2N} V_k) and, by Hermitian
    # symmetry, y_{N-k} = -2 Im(e^{-i pi k/2N} V_k). DST-II(x)_k = DCT-II((-1)^n x_n)_{N-1-k}.
    n = x.shape[-1]
    v = x.index_select(-1, _table("dct2_perm_in", n, None, x.device))
    if sine:
        v[..., (n + 1) // 2:] *= -1            # the odd-indexed samples
    V = torch.fft.rfft(v, dim=-1)
    Zc = V.conj() * _table("dct2_twiddle", n, V.dtype, x.device, scale, post)
    flat = torch.view_as_real(Zc).flatten(-2)  # (Re Z_0, -Im Z_0, Re Z_1, -Im Z_1, ...)
    return flat.index_select(-1, _table("dst2_perm_out" if sine else "dct2_perm_out", n, None, x.device))


def _dct3(x: torch.Tensor, scale: float, pre: float, sine: bool = False) -> torch.Tensor:
    # Inverse of _dct2 (DCT-III = 2N * DCT-II^{-1}): V_k = N (X_k - i X_{N-k}) e^{i pi k/2N} (X_N = 0),
    # v = irfft(V), then undo the even/odd reordering. DST-III(X) = (-1)^n DCT-III(flip X)_n.
    n = x.shape[-1]
    G = x.index_select(-1, _table("dst3_perm_in" if sine else "dct3_perm_in", n, None, x.device))
    G = torch.view_as_complex(G.unflatten(-1, (-1, 2)))
    V = G.conj() * _table("dct3_twiddle", n, G.dtype, x.device, scale, pre)
    torch.view_as_real(V)[..., 0, 1] = 0.0      # the X_N slot of V_0 (X_N = 0)
    v = torch.fft.irfft(V, n=n, dim=-1)
    if sine:
        v[..., (n + 1) // 2:] *= -1
    return v.index_select(-1, _table("dct3_perm_out", n, None, x.device))


def _dct4(x: torch.Tensor, scale: float, sine: bool = False) -> torch.Tensor:
    # y_k = 2 Re(e^{-i pi (2k+1)/4N} sum_n (x_n e^{-i pi n/2N}) e^{-2 pi i n k/2N}): one complex FFT of
    # length 2N. DST-IV(x)_k = (-1)^k DCT-IV(flip x)_k.
    n = x.shape[-1]
    if sine:
        x = x.flip(-1)
    cdtype = torch.complex128 if x.dtype == torch.float64 else torch.complex64
    z = x * _table("dct4_pre", n, cdtype, x.device)
    Z = torch.fft.fft(z, n=2 * n, dim=-1)[..., :n]
    return (Z * _table("dst4_post" if sine else "dct4_post", n, cdtype, x.device, scale)).real.contiguous()


# On the CPU the kernels run on blocks of rows whose working set (about 1 MiB) stays in cache: the
# FFT and the pre/post-processing passes are memory-bound, and for large batches this is faster than
# one call over the whole tensor (DST-I of 1023 x 1023 rows, 1 thread: 11 ms -> 6 ms).
_BLOCK_BYTES = 1 << 20


def _blocked(kernel: Any, x: torch.Tensor) -> torch.Tensor:
    """`kernel(x)` for a length-preserving last-dim kernel, by blocks of rows on the CPU."""
    n = x.shape[-1]
    rows = x.numel() // n if n else 0
    block = max(1, _BLOCK_BYTES // (x.element_size() * 2 * (n + 2)))
    if x.device.type != "cpu" or rows <= 2 * block:
        return kernel(x)
    flat = x.reshape(rows, n)
    out = x.new_empty(rows, n)
    for start in range(0, rows, block):
        out[start:start + block] = kernel(flat[start:start + block])
    return out.reshape(x.shape)


def _r2r(x: torch.Tensor, type: int, dim: int, norm: Any, orthogonalize: Any, forward: bool,
         sine: bool) -> torch.Tensor:
    name = ("i" if not forward else "") + ("dst" if sine else "dct")
    x = _check_tensor(x, "x")
    if x.ndim == 0:
        raise ValueError(f"{name}: x must have at least one dimension")
    if type not in (1, 2, 3, 4) or isinstance(type, bool):
        raise ValueError(f"{name}: type must be 1, 2, 3 or 4, got {type!r}")
    if norm not in _NORMS:
        raise ValueError(f"{name}: norm must be None, 'backward', 'ortho' or 'forward', got {norm!r}")
    if orthogonalize is not None and not isinstance(orthogonalize, bool):
        raise TypeError(f"{name}: orthogonalize must be None, True or False, got {orthogonalize!r}")
    axis = _check_dim(dim, x.ndim)
    n = x.shape[axis]
    if type == 1 and not sine and n < 2:
        raise ValueError(f"{name}: type 1 needs at least 2 points along dim {dim}, got {n}")
    if n < 1:
        raise ValueError(f"{name}: x has no points along dim {dim}")
    if x.is_complex():
        def part(t: torch.Tensor) -> torch.Tensor:
            return _r2r(t, type, dim, norm, orthogonalize, forward, sine)
        return torch.complex(part(x.real), part(x.imag))

    inorm = _NORMS[norm] if forward else 2 - _NORMS[norm]
    ortho = (inorm == 1) if orthogonalize is None else orthogonalize
    kind = type if forward else {2: 3, 3: 2}.get(type, type)
    length = 2 * (n - 1) if (kind == 1 and not sine) else 2 * (n + 1) if kind == 1 else 2 * n
    scale = (1.0, 1.0 / math.sqrt(length), 1.0 / length)[inorm]
    pre, post = (_SQRT2, 1.0 / _SQRT2) if ortho else (1.0, 1.0)

    if kind == 1 and sine:
        kernel = functools.partial(_dst1, scale=scale)
    elif kind == 1:
        kernel = functools.partial(_dct1, scale=scale, pre=pre, post=post)
    elif kind == 2:
        kernel = functools.partial(_dct2, scale=scale, post=post, sine=sine)
    elif kind == 3:
        kernel = functools.partial(_dct3, scale=scale, pre=pre, sine=sine)
    else:
        kernel = functools.partial(_dct4, scale=scale, sine=sine)
    return _blocked(kernel, x.movedim(axis, -1)).movedim(-1, axis)


_TRANSFORM_DOC = r"""

    Args:
        x: input `(..., n, ...)`, float32/float64, or complex (real and imaginary parts are
            transformed separately).
        type: 1, 2, 3 or 4 (see below).
        dim: the dimension to transform (any; the others are batch dimensions).
        norm: None or "backward" (the forward transform is unscaled), "ortho" (both directions
            scaled by :math:`1/\sqrt{L}`) or "forward" (the forward transform is scaled by
            :math:`1/L`), with :math:`L = 2(n-1)` for DCT-I, :math:`2(n+1)` for DST-I, :math:`2n` otherwise.
        orthogonalize: scipy's option: rescale the end samples so that the transform matrix is
            orthogonal with norm="ortho" (types 1-3; types 4 and DST-I are orthogonal anyway).
            Default: True exactly when norm="ortho".

    Returns:
        The transform, same shape and dtype as `x`.

    Raises:
        TypeError: `x` not a float32/float64/complex tensor, bad `orthogonalize`.
        ValueError: bad `type`, `norm` or `dim`; DCT-I of fewer than 2 points.
"""


def dct(x: torch.Tensor, type: int = 2, dim: int = -1, norm: str | None = None, *,
        orthogonalize: bool | None = None) -> torch.Tensor:
    r"""Discrete cosine transform along `dim`, as `scipy.fft.dct` (without its `n`, `workers` options).

    Unnormalised definitions, :math:`k = 0..n-1`:

    - I:   :math:`y_k = x_0 + (-1)^k x_{n-1} + 2\sum_{j=1}^{n-2} x_j \cos(\pi k j/(n-1))`
    - II:  :math:`y_k = 2\sum_{j=0}^{n-1} x_j \cos(\pi k(2j+1)/(2n))`
    - III: :math:`y_k = x_0 + 2\sum_{j=1}^{n-1} x_j \cos(\pi j(2k+1)/(2n))`
    - IV:  :math:`y_k = 2\sum_{j=0}^{n-1} x_j \cos(\pi(2k+1)(2j+1)/(4n))`

    Computed with one real FFT (type I: of length 2(n-1); II, III: of length n; IV: one complex
    FFT of length 2n).
    """ + _TRANSFORM_DOC + r"""
    Example:
        >>> dct(torch.tensor([1.0, 2.0, 3.0]), norm="ortho")
        tensor([ 3.4641, -1.4142,  0.0000])
    """
    return _r2r(x, type, dim, norm, orthogonalize, True, False)


def idct(x: torch.Tensor, type: int = 2, dim: int = -1, norm: str | None = None, *,
         orthogonalize: bool | None = None) -> torch.Tensor:
    r"""Inverse of `dct` with the same `type` and `norm`, as `scipy.fft.idct`: `idct(dct(x)) == x`.

    The inverse of type II is type III and vice versa; types I and IV are their own inverses up to
    scaling.
    """ + _TRANSFORM_DOC + r"""
    Example:
        >>> idct(dct(torch.tensor([1.0, 2.0, 3.0]), type=3), type=3)
        tensor([1.0000, 2.0000, 3.0000])
    """
    return _r2r(x, type, dim, norm, orthogonalize, False, False)


def dst(x: torch.Tensor, type: int = 2, dim: int = -1, norm: str | None = None, *,
        orthogonalize: bool | None = None) -> torch.Tensor:
    r"""Discrete sine transform along `dim`, as `scipy.fft.dst` (without its `n`, `workers` options).

    Unnormalised definitions, :math:`k = 0..n-1`:

    - I:   :math:`y_k = 2\sum_{j=0}^{n-1} x_j \sin(\pi(k+1)(j+1)/(n+1))`
    - II:  :math:`y_k = 2\sum_{j=0}^{n-1} x_j \sin(\pi(k+1)(2j+1)/(2n))`
    - III: :math:`y_k = (-1)^k x_{n-1} + 2\sum_{j=0}^{n-2} x_j \sin(\pi(2k+1)(j+1)/(2n))`
    - IV:  :math:`y_k = 2\sum_{j=0}^{n-1} x_j \sin(\pi(2k+1)(2j+1)/(4n))`

    DST-I is one real FFT of length 2(n+1) (the odd extension); II-IV reduce to the DCTs by
    :math:`\mathrm{DST}_{II}(x)_k = \mathrm{DCT}_{II}((-1)^j x_j)_{n-1-k}` and the like.
    """ + _TRANSFORM_DOC + r"""
    Example:
        >>> dst(torch.tensor([1.0, 2.0, 3.0]), type=1)
        tensor([ 9.6569, -4.0000,  1.6569])
    """
    return _r2r(x, type, dim, norm, orthogonalize, True, True)


def idst(x: torch.Tensor, type: int = 2, dim: int = -1, norm: str | None = None, *,
         orthogonalize: bool | None = None) -> torch.Tensor:
    r"""Inverse of `dst` with the same `type` and `norm`, as `scipy.fft.idst`: `idst(dst(x)) == x`.
    """ + _TRANSFORM_DOC + r"""
    Example:
        >>> x = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
        >>> idst(dst(x, type=1, norm="ortho"), type=1, norm="ortho")
        tensor([1.0000, 2.0000, 3.0000], dtype=torch.float64)
    """
    return _r2r(x, type, dim, norm, orthogonalize, False, True)


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
    """Solve with a multiplier from `_poisson_multiplier` (built with complex_path = f or shift complex)."""
    D = len(bcs)
    axes = [f.ndim - D + d for d in range(D)]
    periodic = [a for a, b in zip(axes, bcs) if b == "periodic"]
    forward = {"dirichlet": _dst1_raw, "neumann": _dct2_raw}
    inverse = {"dirichlet": _dst1_raw, "neumann": _dct3_raw}
    g = f
    for a, b in zip(axes, bcs):
        if b != "periodic":
            g = _r2r_raw(g, a, forward[b])
    complex_path = g.is_complex() or inv.is_complex()
    if periodic:
        g = torch.fft.fftn(g, dim=periodic) if complex_path else torch.fft.rfftn(g, dim=periodic)
    g = g * inv
    if periodic:
        s = [f.shape[a] for a in periodic]
        g = torch.fft.ifftn(g, dim=periodic) if complex_path else torch.fft.irfftn(g, s=s, dim=periodic)
    for a, b in zip(axes, bcs):
        if b != "periodic":
            g = _r2r_raw(g, a, inverse[b])
    return g


def _dst1_raw(t: torch.Tensor) -> torch.Tensor:
    return _dst1(t, 1.0)


def _dct2_raw(t: torch.Tensor) -> torch.Tensor:
    return _dct2(t, 1.0, 1.0)


def _dct3_raw(t: torch.Tensor) -> torch.Tensor:
    return _dct3(t, 1.0, 1.0)


def _r2r_raw(x: torch.Tensor, axis: int, kernel: Any) -> torch.Tensor:
    """Apply a last-dim real kernel along `axis`; complex tensors part by part."""
    if x.is_complex():
        return torch.complex(_r2r_raw(x.real, axis, kernel), _r2r_raw(x.imag, axis, kernel))
    return _blocked(kernel, x.movedim(axis, -1)).movedim(-1, axis)


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
    inv = _poisson_multiplier(grid, hs, bcs, sigma, complex_path, f.dtype, f.device)
    return _poisson_apply(f, bcs, inv)


# ================================================================================================
# FFT convolution
# ================================================================================================
def _next_fast_len(n: int) -> int:
    """Smallest 5-smooth integer (factors 2, 3, 5) >= n: fast for MKL, pocketfft and cuFFT."""
    best = 1 << max(n - 1, 0).bit_length()
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            m = p35
            while m < n:
                m *= 2
            best = min(best, m)
            p35 *= 3
        p5 *= 5
    return best


_MODES = ("full", "same", "valid", "circular")


def fft_convolve(x: torch.Tensor, kernel: torch.Tensor, mode: str = "full", dims: int | None = None) -> torch.Tensor:
    r"""Convolution over the last `dims` dimensions by FFT, batched: :math:`y = x * k`.

    Linear modes match `scipy.signal.fftconvolve(x, kernel, mode, axes=last dims)`:

    - "full": :math:`y_i = \sum_j x_j k_{i-j}`, size `n + m - 1` per axis;
    - "same": the centre of "full" with the size `n` of `x` (scipy's centring);
    - "valid": the part that needs no zero padding, size `|n - m| + 1`; as in scipy, one input must be
      at least as large as the other on every axis.

    "circular": :math:`y_i = \sum_j x_{(i-j) \bmod n} k_j` on the periodic grid of `x`, size `n`
    (needs `m <= n` on every axis).

    Args:
        x: `(*batch_x, *n)`, float32/float64 or complex.
        kernel: `(*batch_k, *m)`; the batch dimensions of `x` and `kernel` broadcast.
        mode: "full", "same", "valid" or "circular".
        dims: how many trailing dimensions to convolve over, 1-3 (default `kernel.ndim`, which must
            then be 1-3; give `dims` for a batched kernel).

    Returns:
        y, `(*broadcast(batch_x, batch_k), *out)`, in the promoted dtype of `x` and `kernel`.

    Raises:
        TypeError: non-tensor or non-float inputs.
        ValueError: bad `mode`/`dims`, device mismatch, sizes incompatible with "valid"/"circular".

    Example:
        >>> x = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
        >>> fft_convolve(x, torch.tensor([1.0, 1.0, 0.5], dtype=torch.float64)).round(decimals=12)
        tensor([1.0000, 3.0000, 5.5000, 4.0000, 1.5000], dtype=torch.float64)
    """
    x, kernel = _check_tensor(x, "x"), _check_tensor(kernel, "kernel")
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {', '.join(map(repr, _MODES))}, got {mode!r}")
    if dims is None:
        dims = kernel.ndim
        if not 1 <= dims <= 3:
            raise ValueError(f"kernel has {kernel.ndim} dimensions: pass dims= "
                             "(1, 2 or 3 trailing dimensions to convolve over)")
    if not isinstance(dims, int) or isinstance(dims, bool) or not 1 <= dims <= 3:
        raise ValueError(f"dims must be 1, 2 or 3 (trailing dimensions to convolve over), got {dims!r}")
    if x.ndim < dims or kernel.ndim < dims:
        raise ValueError(f"x {tuple(x.shape)} and kernel {tuple(kernel.shape)} need at least dims={dims} dimensions")
    if x.device != kernel.device:
        raise ValueError(f"x is on {x.device} but kernel is on {kernel.device}")
    n, m = tuple(x.shape[-dims:]), tuple(kernel.shape[-dims:])
    if any(s < 1 for s in n + m):
        raise ValueError(f"empty convolution axes: x {n}, kernel {m}")
    dtype = torch.promote_types(x.dtype, kernel.dtype)
    x, kernel = x.to(dtype), kernel.to(dtype)
    axes = tuple(range(-dims, 0))

    if mode == "circular":
        if any(b > a for a, b in zip(n, m)):
            raise ValueError(f"circular mode needs the kernel no larger than x on every axis, got x {n}, kernel {m}")
        size = n
    elif mode == "valid":
        if not (all(a >= b for a, b in zip(n, m)) or all(b >= a for a, b in zip(n, m))):
            raise ValueError("valid mode needs x or kernel at least as large as the other on every axis, "
                             f"got x {n}, kernel {m}")
        # a circular convolution of length >= max(n, m) is exact on the valid part
        size = tuple(_next_fast_len(max(a, b)) for a, b in zip(n, m))
    else:
        size = tuple(_next_fast_len(a + b - 1) for a, b in zip(n, m))

    if dtype in _COMPLEX:
        y = torch.fft.ifftn(torch.fft.fftn(x, s=size, dim=axes) * torch.fft.fftn(kernel, s=size, dim=axes), dim=axes)
    else:
        y = torch.fft.irfftn(torch.fft.rfftn(x, s=size, dim=axes) * torch.fft.rfftn(kernel, s=size, dim=axes),
                             s=size, dim=axes)

    if mode == "circular":
        return y
    full = tuple(a + b - 1 for a, b in zip(n, m))
    if mode == "full":
        out, start = full, (0,) * dims
    elif mode == "same":
        out = n
        start = tuple((f - o) // 2 for f, o in zip(full, out))
    else:
        out = tuple(abs(a - b) + 1 for a, b in zip(n, m))
        start = tuple(min(a, b) - 1 for a, b in zip(n, m))
    for d, (s0, o) in enumerate(zip(start, out)):
        y = y.narrow(y.ndim - dims + d, s0, o)
    return y.contiguous()
