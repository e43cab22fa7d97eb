r"""LSM: Latent Spectral Models (Wu, Hu, Luo, Wang, Long; ICML 2023, arXiv 2301.12664), model `"lsm"`.

A neural operator for fields on regular 2-D or 3-D grids. Written from the paper's description and the
facts listed in `shared/papers/operators.md` (a); no code was copied from the official repository.

Shapes (channels first, the sciml convention; the official code is channels-last):

- input `(B, in_channels, *S)` with `len(S) == ndim`; with `in_channels = 1` a `(B, *S)` input is
  read as one channel, and with `out_channels = 1` as well the output drops the channel axis too;
- output `(B, out_channels, *S)`: the same resolution as the input, whatever it is.

Pipeline (paper -> code):

1. the node coordinates (linspace 0..1 per axis, at the input resolution) are appended as `ndim`
   channels and lifted pointwise to `width` channels (`lift`, a 1x1 convolution = the paper's fc0);
2. the field is zero-padded at the end of every axis (`padding`: "auto" pads each axis to the next
   multiple of 16, as the Neural-Solver-Library version; an integer or list adds that many cells,
   as the original scripts, e.g. Darcy 85 + 11 = 96); it is cropped back after the backbone;
3. U-Net backbone of 5 scales (1, 1/2, 1/4, 1/8, 1/16): `DoubleConv` (conv3 - norm - ReLU, twice),
   max-pool down, bilinear/trilinear up (align_corners) with skip concatenation; channel widths
   w, 2w, 4w, 8w, 8w;
4. a `NeuralSpectralBlock` on every scale's features *before* they enter the decoder (the four skips
   and the bottleneck): patchify, attention into `num_token` latent tokens, a per-channel
   trigonometric-basis transition in latent space, attention back to the pixels, residuals;
5. projection MLP per point: `width -> 128 -> out_channels` with GELU (the paper's fc1, fc2).

The same `patch_size` is used at every scale, so the number of patches shrinks with the scale (the
paper chooses the padding so that the coarsest scale is one patch: Darcy 96 / 16 = 6 = patch).
`patch_size = "auto"` takes ceil(padded size / 16) per axis at every forward call (Neural-Solver-
Library). A scale whose size is not a multiple of the patch is zero-padded inside the block and
cropped back, so any input resolution (>= 1 cell) works; only `padding` + size >= 16 is required so
that the coarsest scale is not empty ("auto" guarantees it), and with `norm = "instance"` the coarsest
scale must hold more than one cell (instance statistics of a single value are undefined).
`rollout` runs a model autoregressively (the Navier-Stokes benchmark: 10 states in, 10 predicted).

Hyper-parameter defaults are the paper's (`utils/params.py`): width (d_model) 32, num_basis 12,
num_token 4, patch_size 3, 8 heads; `norm` "batch" for steady problems, "instance" for time-dependent
ones (Neural-Solver-Library: "for stability"). The Darcy script uses width 64, patch 6, padding 11.
One class serves 2-D and 3-D (`ndim` = 2 or 3, registered once as "lsm").

Example:
    >>> model = LSM(in_channels=1, out_channels=1, width=16)
    >>> model(torch.randn(2, 1, 85, 85)).shape
    torch.Size([2, 1, 85, 85])
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .nets import Conv3d
from .registry import register_model

HEADS = 8  # attention heads of every spectral block (hard-coded in the paper's code)
LEVELS = 4  # poolings: 5 scales, the coarsest 1/16
NORMS = ("batch", "instance")

_CONV = {2: nn.Conv2d, 3: Conv3d}
_POOL = {2: nn.MaxPool2d, 3: nn.MaxPool3d}
_NORM = {("batch", 2): nn.BatchNorm2d, ("batch", 3): nn.BatchNorm3d,
         ("instance", 2): nn.InstanceNorm2d, ("instance", 3): nn.InstanceNorm3d}
_INTERP = {2: "bilinear", 3: "trilinear"}


def _per_axis(name: str, value: int | Sequence[int], ndim: int, minimum: int) -> tuple[int, ...]:
    vals = [value] * ndim if isinstance(value, int) and not isinstance(value, bool) else list(value) \
        if isinstance(value, (list, tuple)) else None
    if vals is None or len(vals) != ndim or any(not isinstance(v, int) or isinstance(v, bool) or v < minimum
                                                 for v in vals):
        raise ValueError(f"{name} must be an integer >= {minimum} or a list of {ndim} of them (one per axis), "
                         f"got {value!r}")
    return tuple(vals)


def _positive(name: str, value: int, minimum: int = 1) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def pad_to_multiple(x: torch.Tensor, multiple: Sequence[int]) -> tuple[torch.Tensor, tuple[int, ...]]:
    """Zero-pad the trailing `len(multiple)` axes of x at their end to multiples of `multiple`.

    Returns the padded tensor and the original sizes (crop with `crop(x, sizes)`)."""
    sizes = tuple(x.shape[-len(multiple):])
    extra = [(-s) % m for s, m in zip(sizes, multiple)]
    if any(extra):
        x = F.pad(x, [p for e in reversed(extra) for p in (0, e)])
    return x, sizes


def crop(x: torch.Tensor, sizes: Sequence[int]) -> torch.Tensor:
    """x[..., :sizes[0], :sizes[1], ...] over the trailing `len(sizes)` axes."""
    return x[(Ellipsis, *(slice(0, s) for s in sizes))]


def patchify(x: torch.Tensor, patch: Sequence[int]) -> torch.Tensor:
    """`(B, C, n_1 p_1, ..., n_d p_d)` -> `(B n_1...n_d, C, p_1...p_d)`: one row of pixel tokens per patch."""
    B, C, *S = x.shape
    d = len(S)
    n = [s // p for s, p in zip(S, patch)]
    x = x.reshape(B, C, *[v for pair in zip(n, patch) for v in pair])
    x = x.permute(0, *[2 + 2 * i for i in range(d)], 1, *[3 + 2 * i for i in range(d)])
    return x.reshape(B * math.prod(n), C, math.prod(patch))


def unpatchify(x: torch.Tensor, batch: int, sizes: Sequence[int], patch: Sequence[int]) -> torch.Tensor:
    """Inverse of `patchify`: `(B n_1...n_d, C, p_1...p_d)` -> `(B, C, *sizes)`."""
    d = len(sizes)
    n = [s // p for s, p in zip(sizes, patch)]
    C = x.shape[1]
    x = x.reshape(batch, *n, C, *patch)
    order = [0, d + 1] + [v for i in range(d) for v in (1 + i, d + 2 + i)]
    return x.permute(*order).reshape(batch, C, *sizes)


class NeuralSpectralBlock(nn.Module):
    r"""The paper's neural spectral block on `(B, C, *S)` features (2-D or 3-D), C = `width`.

    Per patch of `patch` pixels (pixel features :math:`x \in \mathbb{R}^{N \times C}`, 8 heads of C/8):

    1. encoder: :math:`K, V = W_{kv} x` (1x1 conv C -> 2C); the learned latent tokens
       :math:`T \in \mathbb{R}^{\text{num\_token} \times C}` attend to the pixels:
       :math:`z = \mathrm{softmax}(T K^\top) V + T` (no :math:`1/\sqrt{d}` scaling, as the paper's code);
    2. transition: every latent value :math:`z_{c,t}` is expanded in the trigonometric basis
       :math:`\{\sin(\omega_k z), \cos(\omega_k z)\}_{k<K}`, :math:`\omega_k = \pi k / K`, K = `num_basis`,
       weighted per channel: :math:`z_{c,t} \leftarrow \sum_k w^s_{c,k}\sin(\omega_k z_{c,t}) + w^c_{c,k}\cos(\omega_k z_{c,t}) + z_{c,t}`;
    3. decoder: :math:`Q = W_q x` (1x1 conv C -> C); :math:`x \leftarrow \mathrm{softmax}(Q z^\top) z + x`.

    Sizes of S that are not multiples of `patch` are zero-padded for the block and cropped back.
    """

    def __init__(self, width: int, num_basis: int = 12, num_token: int = 4, ndim: int = 2, heads: int = HEADS):
        super().__init__()
        if width % heads:
            raise ValueError(f"width must be divisible by the {heads} attention heads, got {width}")
        self.width, self.num_basis, self.num_token, self.ndim, self.heads = width, num_basis, num_token, ndim, heads
        d = width // heads
        self.latent = nn.Parameter(torch.rand(heads, num_token, d) / width)
        self.encoder_attn = nn.Conv1d(width, 2 * width, 1)
        self.decoder_attn = nn.Conv1d(width, width, 1)
        self.basis_weights = nn.Parameter(torch.rand(width, 2 * num_basis) / width)
        self.register_buffer("frequencies", math.pi * torch.arange(num_basis) / num_basis, persistent=False)

    def transition(self, z: torch.Tensor) -> torch.Tensor:
        """The trigonometric-basis transition of latent tokens `z` `(P, C, T)` (per channel, residual)."""
        arg = z.unsqueeze(-1) * self.frequencies.to(z.dtype)
        basis = torch.cat([torch.sin(arg), torch.cos(arg)], dim=-1)  # (P, C, T, 2K)
        return torch.einsum("pctm,cm->pct", basis, self.basis_weights) + z

    def forward(self, x: torch.Tensor, patch: Sequence[int]) -> torch.Tensor:
        B, C, *S = x.shape
        x, sizes = pad_to_multiple(x, patch)
        padded = x.shape[2:]
        pix = patchify(x, patch)  # (P, C, N)
        P, _, N = pix.shape
        h, d = self.heads, C // self.heads
        kv = self.encoder_attn(pix).reshape(P, 2, h, d, N)
        k, v = kv[:, 0].transpose(-1, -2), kv[:, 1].transpose(-1, -2)  # (P, h, N, d)
        lat = self.latent.unsqueeze(0).expand(P, -1, -1, -1)  # (P, h, T, d)
        z = torch.softmax(lat @ k.transpose(-1, -2), dim=-1) @ v + lat  # encoder
        z = z.permute(0, 1, 3, 2).reshape(P, C, self.num_token)
        z = self.transition(z)
        z = z.reshape(P, h, d, self.num_token).transpose(-1, -2)  # (P, h, T, d)
        q = self.decoder_attn(pix).reshape(P, h, d, N).transpose(-1, -2)  # (P, h, N, d)
        y = torch.softmax(q @ z.transpose(-1, -2), dim=-1) @ z  # decoder, (P, h, N, d)
        y = y.transpose(-1, -2).reshape(P, C, N) + pix
        return crop(unpatchify(y, B, padded, patch), sizes)


class DoubleConv(nn.Module):
    """(conv 3, no bias -> norm -> ReLU) twice: `in_ch -> mid_ch -> out_ch`."""

    def __init__(self, in_ch: int, out_ch: int, mid_ch: int | None = None, ndim: int = 2, norm: str = "batch"):
        super().__init__()
        mid_ch = mid_ch or out_ch
        conv, nrm = _CONV[ndim], _NORM[(norm, ndim)]
        kw = {"affine": True} if norm == "instance" else {}
        self.net = nn.Sequential(conv(in_ch, mid_ch, 3, padding=1, bias=False), nrm(mid_ch, **kw), nn.ReLU(inplace=True),
                                 conv(mid_ch, out_ch, 3, padding=1, bias=False), nrm(out_ch, **kw), nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Up(nn.Module):
    """Upsample x2 (bilinear/trilinear, align_corners), zero-pad to the skip's size, concat [skip, x], DoubleConv."""

    def __init__(self, in_ch: int, out_ch: int, ndim: int, norm: str):
        super().__init__()
        self.mode = _INTERP[ndim]
        self.conv = DoubleConv(in_ch, out_ch, in_ch // 2, ndim, norm)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2, mode=self.mode, align_corners=True)
        diff = [s - t for s, t in zip(skip.shape[2:], x.shape[2:])]
        if any(diff):
            x = F.pad(x, [p for e in reversed(diff) for p in (e // 2, e - e // 2)])
        return self.conv(torch.cat([skip, x], dim=1))


@register_model("lsm")
class LSM(nn.Module):
    """Latent Spectral Model, `(B, in_channels, *S) -> (B, out_channels, *S)` with `len(S) = ndim` (2 or 3).

    See the module docstring for the architecture. Hyper-parameters (paper defaults):

    Args:
        in_channels, out_channels: field channels in and out (coordinates are appended internally).
        ndim: 2 or 3 spatial axes.
        width: d_model, channels of the finest scale (a multiple of 8, the number of heads); paper 32,
            Darcy/NS scripts 64.
        num_basis: K, trigonometric basis functions (sin and cos each) of the latent transition.
        num_token: latent tokens per patch.
        patch_size: pixels per patch per axis (an integer, a list of `ndim`, or "auto" =
            ceil(padded size / 16) per axis, computed at each call).
        padding: cells appended at the end of each axis before the backbone (an integer, a list of
            `ndim`, or "auto" = up to the next multiple of 16); cropped after.
        norm: "batch" (steady problems) or "instance" (time-dependent, autoregressive).
        hidden: width of the projection MLP (paper 128).

    Raises:
        ValueError: naming the hyper-parameter for a bad value; naming the input for a channel or
            spatial-rank mismatch (see `check_input`).
    """

    def __init__(self, in_channels: int = 1, out_channels: int = 1, ndim: int = 2, width: int = 32,
                 num_basis: int = 12, num_token: int = 4, patch_size: int | list | str = 3,
                 padding: int | list | str = "auto", norm: str = "batch", hidden: int = 128):
        super().__init__()
        _positive("in_channels", in_channels)
        _positive("out_channels", out_channels)
        if ndim not in (2, 3):
            raise ValueError(f"ndim must be 2 or 3, got {ndim!r}")
        _positive("width", width)
        if width % HEADS:
            raise ValueError(f"width must be a multiple of {HEADS} (the attention heads), got {width}")
        _positive("num_basis", num_basis)
        _positive("num_token", num_token)
        _positive("hidden", hidden)
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {', '.join(NORMS)}, got {norm!r}")
        self.patch = None if patch_size == "auto" else _per_axis("patch_size", patch_size, ndim, 1)
        self.pad = None if padding == "auto" else _per_axis("padding", padding, ndim, 0)
        self.in_channels, self.out_channels, self.ndim, self.width = in_channels, out_channels, ndim, width
        self.norm = norm
        conv = _CONV[ndim]
        w = width
        self.lift = conv(in_channels + ndim, w, 1)
        widths = [w, 2 * w, 4 * w, 8 * w, 8 * w]  # scales 1 .. 1/16
        self.inc = DoubleConv(w, w, ndim=ndim, norm=norm)
        self.downs = nn.ModuleList(nn.Sequential(_POOL[ndim](2), DoubleConv(a, b, ndim=ndim, norm=norm))
                                   for a, b in zip(widths[:-1], widths[1:]))
        self.blocks = nn.ModuleList(NeuralSpectralBlock(c, num_basis, num_token, ndim) for c in widths)
        # decoder: (bottleneck 8w + skip 8w) -> 4w, (4w + 4w) -> 2w, (2w + 2w) -> w, (w + w) -> w
        self.ups = nn.ModuleList([Up(16 * w, 4 * w, ndim, norm), Up(8 * w, 2 * w, ndim, norm),
                                  Up(4 * w, w, ndim, norm), Up(2 * w, w, ndim, norm)])
        self.outc = conv(w, w, 1)
        self.project = nn.Sequential(conv(w, hidden, 1), nn.GELU(), conv(hidden, out_channels, 1))

    # ---------------------------------------------------------------------------------- helpers
    def padded_shape(self, spatial: Sequence[int]) -> tuple[int, ...]:
        """The grid the backbone sees for an input of spatial size `spatial`."""
        if self.pad is None:
            return tuple(s + (-s) % 16 for s in spatial)
        return tuple(s + p for s, p in zip(spatial, self.pad))

    def patch_shape(self, spatial: Sequence[int]) -> tuple[int, ...]:
        """The patch size used for an input of spatial size `spatial`."""
        if self.patch is not None:
            return self.patch
        return tuple(max(1, -(-s // 2 ** LEVELS)) for s in self.padded_shape(spatial))

    def check_input(self, x: torch.Tensor) -> torch.Tensor:
        """x as `(B, in_channels, *S)`; ValueError naming what is wrong otherwise."""
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"x must be a tensor, got {type(x).__name__}")
        if x.ndim == self.ndim + 1 and self.in_channels == 1:
            x = x.unsqueeze(1)
        if x.ndim != self.ndim + 2:
            raise ValueError(f"x: expected a (B, in_channels, {', '.join('S' + str(i) for i in range(self.ndim))}) "
                             f"input for this ndim={self.ndim} model, got shape {tuple(x.shape)} "
                             f"({x.ndim - 2} spatial axes if channels-first)")
        if x.shape[1] != self.in_channels:
            raise ValueError(f"in_channels: the input has {x.shape[1]} channels (shape {tuple(x.shape)}) but the model "
                             f"expects in_channels={self.in_channels}")
        padded = self.padded_shape(x.shape[2:])
        if min(padded) < 2 ** LEVELS:
            raise ValueError(f"padding: the input's spatial size {tuple(x.shape[2:])} padded to {padded} is smaller "
                             f"than 16 along some axis (5 scales need >= 16 cells); use padding = \"auto\"")
        if self.norm == "instance" and math.prod(s // 2 ** LEVELS for s in padded) < 2:
            raise ValueError(f"norm: instance normalisation needs more than one cell at the coarsest scale (1/16), but "
                             f"the input's spatial size {tuple(x.shape[2:])} is padded to only {padded}; use a larger "
                             f"input or padding, or norm = \"batch\"")
        return x

    def coordinates(self, x: torch.Tensor) -> torch.Tensor:
        """`(B, ndim, *S)`: linspace(0, 1) along each axis (the paper's grid channels)."""
        B, _, *S = x.shape
        axes = [torch.linspace(0, 1, s, dtype=x.dtype, device=x.device) for s in S]
        grids = torch.meshgrid(*axes, indexing="ij")
        return torch.stack(grids).unsqueeze(0).expand(B, *([-1] * (len(S) + 1)))

    # ---------------------------------------------------------------------------------- forward
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """`(B, in_channels, *S)` (or `(B, *S)` if in_channels = 1) -> `(B, out_channels, *S)` (or `(B, *S)`)."""
        squeeze = x.ndim == self.ndim + 1 and self.in_channels == 1 and self.out_channels == 1
        x = self.check_input(x)
        sizes = x.shape[2:]
        patch = self.patch_shape(sizes)
        h = self.lift(torch.cat([x, self.coordinates(x)], dim=1))
        target = self.padded_shape(sizes)
        h = F.pad(h, [p for s, t in zip(reversed(sizes), reversed(target)) for p in (0, t - s)])
        feats = [self.inc(h)]
        for down in self.downs:
            feats.append(down(feats[-1]))
        feats = [block(f, patch) for block, f in zip(self.blocks, feats)]
        h = feats[-1]
        for up, skip in zip(self.ups, reversed(feats[:-1])):
            h = up(h, skip)
        h = crop(self.outc(h), sizes)
        y = self.project(h)
        return y.squeeze(1) if squeeze else y


def rollout(model: nn.Module, history: torch.Tensor, steps: int) -> torch.Tensor:
    """Autoregressive prediction as the paper's Navier-Stokes benchmark (10 -> 10 steps, step 1).

    `history` `(B, T_in, *S)`: the last T_in states as channels (the model has in_channels = T_in and
    out_channels = 1). Each step predicts the next state from the latest T_in ones and slides the
    window (the prediction replaces the oldest state). Returns `(B, steps, *S)`. Gradients flow through
    the whole rollout (the paper trains this way, without teacher forcing).
    """
    _positive("steps", steps)
    window, outs = history, []
    for _ in range(steps):
        y = model(window)
        y = y if y.ndim == window.ndim else y.unsqueeze(1)
        outs.append(y)
        window = torch.cat([window[:, y.shape[1]:], y], dim=1)
    return torch.cat(outs, dim=1)


__all__ = ["LSM", "rollout", "NeuralSpectralBlock", "crop", "pad_to_multiple", "patchify", "unpatchify"]
