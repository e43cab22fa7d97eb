r"""FNO: the Fourier Neural Operator (Li et al., ICLR 2021), model `"fno"` (2-D), the LSM baseline.

A minimal re-implementation of the FNO paper's 2-D Darcy setup, channels first:

1. the node coordinates (linspace 0..1 per axis) are appended and lifted pointwise to `width` channels;
2. zero padding of `padding` cells at the end of both axes (the paper pads 9 for the non-periodic
   Darcy problem; 0 for periodic data), cropped at the end;
3. `layers` Fourier layers :math:`v \leftarrow \sigma(\mathcal{K} v + W v)`, with
   :math:`\mathcal{K} v = \mathcal{F}^{-1}(R \cdot \mathcal{F} v)` keeping the lowest `modes` frequencies
   per axis (both signs along the first axis, the rfft half along the last), GELU after all but the last;
4. a pointwise projection `width -> hidden -> out_channels` (GELU).

Paper defaults (Darcy): modes 12, width 32, 4 layers, padding 9, hidden 128.

`NeuralopFNO` (`"neuralop-fno"`) wraps `neuralop.models.FNO` from the optional `neuraloperator`
package with the same hyper-parameter names, so benchmarks can compare against the reference library.
The package is not a dependency: building the model raises an ImportError saying how to install it
(`pip install --no-deps neuraloperator tensorly tensorly-torch opt_einsum` works without replacing torch).

Example:
    >>> model = FNO2d(modes=8, width=16)
    >>> model(torch.randn(2, 1, 64, 64)).shape
    torch.Size([2, 1, 64, 64])
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .registry import register_model


def _positive(name: str, value: int, minimum: int = 1) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _pair(name: str, value: int | Sequence[int], minimum: int) -> tuple[int, int]:
    vals = [value, value] if isinstance(value, int) and not isinstance(value, bool) else \
        list(value) if isinstance(value, (list, tuple)) else None
    if vals is None or len(vals) != 2 or any(not isinstance(v, int) or isinstance(v, bool) or v < minimum for v in vals):
        raise ValueError(f"{name} must be an integer >= {minimum} or a list of 2 of them (one per axis), got {value!r}")
    return vals[0], vals[1]


class SpectralConv2d(nn.Module):
    r"""`(B, in_ch, H, W) -> (B, out_ch, H, W)`: :math:`\mathcal{F}^{-1}(R\,\mathcal{F}x)` on the lowest modes.

    Keeps frequencies :math:`|k_1| < m_1` (rows `[:m1]` and `[-m1:]` of `rfft2`) and :math:`0 \le k_2 < m_2`;
    `weights` holds R for both row blocks as real `(2, in_ch, out_ch, m1, m2, 2)` (real, imaginary),
    initialised uniformly in [0, 1/(in_ch out_ch)) as the FNO code. Needs H >= 2 m1 and W // 2 + 1 >= m2.
    """

    def __init__(self, in_ch: int, out_ch: int, modes: tuple[int, int]):
        super().__init__()
        self.in_ch, self.out_ch, self.modes = in_ch, out_ch, tuple(modes)
        m1, m2 = self.modes
        self.weights = nn.Parameter(torch.rand(2, in_ch, out_ch, m1, m2, 2) / (in_ch * out_ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, _, H, W = x.shape
        m1, m2 = self.modes
        if H < 2 * m1 or W // 2 + 1 < m2:
            raise ValueError(f"modes: {self.modes} Fourier modes need a grid of at least ({2 * m1}, {2 * m2 - 2}) "
                             f"(after padding), got ({H}, {W})")
        xf = torch.fft.rfft2(x.float() if x.dtype in (torch.float16, torch.bfloat16) else x)
        w = torch.view_as_complex(self.weights.to(xf.real.dtype).contiguous())
        out = torch.zeros(B, self.out_ch, H, W // 2 + 1, dtype=xf.dtype, device=x.device)
        out[:, :, :m1, :m2] = torch.einsum("bixy,ioxy->boxy", xf[:, :, :m1, :m2], w[0])
        out[:, :, -m1:, :m2] = torch.einsum("bixy,ioxy->boxy", xf[:, :, -m1:, :m2], w[1])
        return torch.fft.irfft2(out, s=(H, W)).to(x.dtype)


@register_model("fno")
class FNO2d(nn.Module):
    """Fourier Neural Operator on 2-D grids, `(B, in_channels, H, W) -> (B, out_channels, H, W)`.

    Scalar fields may drop the channel axis (as `cnn2d`): with in_channels = out_channels = 1 a
    `(B, H, W)` input gives a `(B, H, W)` output.

    Args:
        in_channels, out_channels: field channels (coordinates are appended internally).
        modes: Fourier modes kept per axis (an integer or a list of 2); paper 12.
        width: channels of the Fourier layers; paper 32.
        layers: Fourier layers; paper 4.
        padding: zero cells appended to both axes (non-periodic problems; paper Darcy 9, periodic 0).
        hidden: width of the projection MLP; paper 128.
    """

    ndim = 2

    def __init__(self, in_channels: int = 1, out_channels: int = 1, modes: int | list = 12, width: int = 32,
                 layers: int = 4, padding: int = 9, hidden: int = 128):
        super().__init__()
        _positive("in_channels", in_channels)
        _positive("out_channels", out_channels)
        self.modes = _pair("modes", modes, 1)
        _positive("width", width)
        _positive("layers", layers)
        _positive("padding", padding, 0)
        _positive("hidden", hidden)
        self.in_channels, self.out_channels, self.padding = in_channels, out_channels, padding
        self.lift = nn.Conv2d(in_channels + 2, width, 1)
        self.spectral = nn.ModuleList(SpectralConv2d(width, width, self.modes) for _ in range(layers))
        self.pointwise = nn.ModuleList(nn.Conv2d(width, width, 1) for _ in range(layers))
        self.project = nn.Sequential(nn.Conv2d(width, hidden, 1), nn.GELU(), nn.Conv2d(hidden, out_channels, 1))

    def check_input(self, x: torch.Tensor) -> torch.Tensor:
        """x as `(B, in_channels, H, W)`; ValueError naming what is wrong otherwise."""
        if x.ndim == 3 and self.in_channels == 1:
            x = x.unsqueeze(1)
        if x.ndim != 4:
            raise ValueError(f"x: expected a (B, in_channels, H, W) input for this 2-D model, got shape {tuple(x.shape)}")
        if x.shape[1] != self.in_channels:
            raise ValueError(f"in_channels: the input has {x.shape[1]} channels (shape {tuple(x.shape)}) but the model "
                             f"expects in_channels={self.in_channels}")
        m1, m2 = self.modes
        H, W = (s + self.padding for s in x.shape[2:])
        if H < 2 * m1 or W // 2 + 1 < m2:
            raise ValueError(f"modes: {self.modes} Fourier modes need a padded grid of at least ({2 * m1}, {2 * m2 - 2}), "
                             f"got {tuple(x.shape[2:])} + padding {self.padding}")
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """`(B, in_channels, H, W)` (or `(B, H, W)` if in_channels = 1) -> `(B, out_channels, H, W)` (or `(B, H, W)`)."""
        squeeze = x.ndim == 3 and self.in_channels == 1 and self.out_channels == 1
        x = self.check_input(x)
        B, _, H, W = x.shape
        gx = torch.linspace(0, 1, H, dtype=x.dtype, device=x.device).view(1, 1, H, 1).expand(B, 1, H, W)
        gy = torch.linspace(0, 1, W, dtype=x.dtype, device=x.device).view(1, 1, 1, W).expand(B, 1, H, W)
        h = self.lift(torch.cat([x, gx, gy], dim=1))
        if self.padding:
            h = F.pad(h, [0, self.padding, 0, self.padding])
        for i, (k, w) in enumerate(zip(self.spectral, self.pointwise)):
            h = k(h) + w(h)
            if i < len(self.spectral) - 1:
                h = F.gelu(h)
        h = h[..., :H, :W]
        y = self.project(h)
        return y.squeeze(1) if squeeze else y


def neuralop_available() -> bool:
    """True when `neuralop.models.FNO` (package `neuraloperator`) can be imported."""
    import importlib

    try:
        return hasattr(importlib.import_module("neuralop.models"), "FNO")
    except Exception:  # noqa: BLE001 - missing package or a missing dependency of it
        return False


@register_model("neuralop-fno")
class NeuralopFNO(nn.Module):
    """`neuralop.models.FNO` (package `neuraloperator`, optional) with `fno`'s hyper-parameter names.

    `(B, in_channels, H, W) -> (B, out_channels, H, W)` (or `(B, H, W)` for scalar fields). The library
    appends its own coordinate channels (positional embedding) and pads by `domain_padding`, a fraction
    of the size (0.1 ~ FNO's 9 cells on the 85 x 85 Darcy grid). Its `n_modes` counts both signs, so
    `modes = m` (FNO-paper convention, as `fno`) is passed as `n_modes = (2 m, 2 m)`.
    """

    ndim = 2

    def __init__(self, in_channels: int = 1, out_channels: int = 1, modes: int | list = 12, width: int = 32,
                 layers: int = 4, hidden: int = 128, domain_padding: float | None = 0.1):
        super().__init__()
        try:
            from neuralop.models import FNO
        except Exception as err:  # noqa: BLE001
            raise ImportError(f"model 'neuralop-fno' needs the optional package neuraloperator ({err}); install it with "
                              "`pip install --no-deps neuraloperator tensorly tensorly-torch opt_einsum`") from None
        m1, m2 = _pair("modes", modes, 1)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.net = FNO(n_modes=(2 * m1, 2 * m2), hidden_channels=width, in_channels=in_channels,
                       out_channels=out_channels, n_layers=layers, projection_channel_ratio=max(1, hidden // width),
                       domain_padding=domain_padding)

    def state_dict(self, *args, **kwargs):
        """Tensors only: neuralop adds a `_metadata` dict (its constructor arguments), which safetensors
        cannot store and sciml does not need (config.json holds the hyper-parameters)."""
        state = super().state_dict(*args, **kwargs)
        for key in [k for k, v in state.items() if not isinstance(v, torch.Tensor)]:
            del state[key]
        return state

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        squeeze = x.ndim == 3 and self.in_channels == 1 and self.out_channels == 1
        if squeeze:
            x = x.unsqueeze(1)
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"in_channels: expected a (B, {self.in_channels}, H, W) input, got shape {tuple(x.shape)}")
        y = self.net(x)
        return y.squeeze(1) if squeeze else y


__all__ = ["FNO2d", "NeuralopFNO", "SpectralConv2d", "neuralop_available"]
