"""FFT convolution: linear ("full", "same", "valid", as `scipy.signal.fftconvolve`) or circular,
over the last 1-3 dimensions, batched."""
from __future__ import annotations

import torch

from .fft import _COMPLEX, _check_tensor


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
