r"""Real-to-real transforms (DCT/DST I-IV) with scipy.fft semantics, built on torch.fft.

Pure tensor code built on `torch.fft` (O(n log n), no dense matrices), batched over leading
dimensions, float32/float64 (real or complex), on any device torch.fft supports.

Transforms
    `dct`, `idct`, `dst`, `idst` follow `scipy.fft` exactly: the same definitions for types 1-4,
    the same `norm` modes (None/"backward", "ortho", "forward") and the same `orthogonalize`
    default (True for "ortho"). Complex input is transformed as real and imaginary parts.

The fast Poisson solver (`sciml.linalg.poisson`) and FFT convolution (`sciml.linalg.convolve`)
are built on these kernels.

This module sits below `sciml.operators` (it must not import it); the operator wrapper is
`sciml.operators.LaplacianInverseOperator`.
"""
from __future__ import annotations

import functools
import math
from typing import Any

import torch

__all__ = ["dct", "idct", "dst", "idst"]

_NORMS = {None: 0, "backward": 0, "ortho": 1, "forward": 2}   # 0: unscaled, 1: 1/sqrt(L), 2: 1/L
_REAL = (torch.float32, torch.float64)
_COMPLEX = (torch.complex64, torch.complex128)
_SQRT2 = math.sqrt(2.0)


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


def _dst1(x: torch.Tensor, scale: float, out: torch.Tensor | None = None) -> torch.Tensor:
    # Odd extension of period 2(N+1): with U = rfft(x zero-padded to 2(N+1)),
    # y_{k-1} = -2 Im(e^{-i pi k/(N+1)} U_k) = 2 sin(theta_k) Re U_k - 2 cos(theta_k) Im U_k.
    # `x` may be strided (e.g. a block of columns): the zero padding gathers it. `out`: where to write.
    n = x.shape[-1]
    U = torch.view_as_real(torch.fft.rfft(x, n=2 * n + 2, dim=-1)[..., 1:n + 1])
    t = _table("dst1_twiddle", n, x.dtype, x.device, scale)
    if out is None:
        return torch.addcmul(U[..., 0] * t[0], U[..., 1], t[1])
    torch.mul(U[..., 0], t[0], out=out)
    return out.addcmul_(U[..., 1], t[1])


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


def _blocked(kernel: Any, x: torch.Tensor, into: bool = False, out: torch.Tensor | None = None) -> torch.Tensor:
    """`kernel(x)` for a length-preserving last-dim kernel, by blocks of rows on the CPU.

    The result is contiguous. `x` may be strided (a transposed view): when its rows can be viewed
    as one `(rows, n)` matrix, the blocks are read from it directly, so that a transform along a
    non-last axis costs no separate transposing copy. `into`: the kernel takes `out=` and writes
    each block into the result (no copy of the block). `out`: an optional contiguous buffer of
    `x.numel()` entries for the result (it may be `x` itself when `x` is contiguous: every block is
    read, by the kernel's padded copy, before it is written); a fresh large allocation costs page
    faults on the CPU."""
    n = x.shape[-1]
    rows = x.numel() // n if n else 0
    block = max(1, _BLOCK_BYTES // (x.element_size() * 2 * (n + 2)))
    if x.device.type != "cpu" or rows <= 2 * block:
        return kernel(x).contiguous()
    try:
        flat = x.view(rows, n)
    except RuntimeError:
        flat = x.reshape(rows, n)
    out = x.new_empty(rows, n) if out is None else out.view(rows, n)
    for start in range(0, rows, block):
        if into:
            kernel(flat[start:start + block], out=out[start:start + block])
        else:
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

    into = kind == 1 and sine
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
    return _blocked(kernel, x.movedim(axis, -1), into).movedim(-1, axis)


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
