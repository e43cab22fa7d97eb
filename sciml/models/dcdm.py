r"""The DCDM network: a residual CNN at full and half resolution mapping a residual to a search direction.

Kaneda et al., "A Deep Conjugate Direction Method for Iteratively Solving Linear Systems", ICML 2023.
The network f approximates :math:`A^{-1}` up to a scale on normalised residuals; the solver
(`sciml.solvers.dcdm`) A-orthogonalises its output and takes an exact line-search step, so any scale
and any error of f only slow the iteration down.

Architecture (the paper's 64^3 model, 2-D or 3-D convolutions, all 3^d kernels, "same" zero padding):

    x (B, 1, *grid) -> conv (linear) -> ReLU conv -> `full_blocks` residual pairs    = skip
                    -> average-pool 2 -> `half_blocks` residual pairs -> nearest upsample 2
                    -> + skip -> `post_blocks` residual pairs -> 1x1 conv (linear) -> (B, 1, *grid)

A residual pair is :math:`h \leftarrow \mathrm{ReLU}(W_2\,\mathrm{ReLU}(W_1 h)) + h`. Paper: width 16, one
pair before pooling, three at half resolution, two after upsampling. The network is fully convolutional:
any grid size works (each axis is zero-padded to a multiple of 2^levels, and cropped after).

`geometry=True` (not in the paper) gives the network a second input channel, the scene's cells
(`geometry_channel`: the diagonal of A over 2d on the fluid cells, 0 elsewhere), so it can place the
solid walls and the p = 0 cells; the paper's network sees the residual only and learns one fixed map.

`input_norm = "rms"` (not in the paper) divides the residual channel by its root mean square per
sample before the first convolution, so the network is invariant to the input's scale and to the grid
size. The paper's network sees r/||r|| (entries of size 1/sqrt(n)): with biases in every layer a 3-D
network trained that way at 32^3 collapsed to a fixed output field independent of its input
(|f(r) - f(0)| / |f(r)| < 0.01, worse than steepest descent on held-out right-hand sides), and an input
2x smaller at 2x the grid shifts the operating point of the ReLUs (the 2-D network trained at 64^2 kept
15x fewer iterations than CG at 256^2 with "rms", 2.8x without). Default "none" (the paper); both shipped
checkpoints use "rms".

`levels` > 1 (not in the paper) nests further average-pool / upsample stages below the half-resolution
one, with one residual pair on the way down and one on the way up per level and a skip connection at
each: a U-Net whose receptive field doubles with every level. levels = 1 is the paper's network, and the
one the shipped checkpoints use.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .nets import Conv3d, _positive
from .registry import register_model

INPUT_NORMS = ("none", "rms")


def geometry_channel(fluid: torch.Tensor, diag: torch.Tensor, dim: int) -> torch.Tensor:
    """The scene as a field, shaped like `fluid`: diag / (2 dim) on fluid cells (1 inside, less next to a
    solid wall), 0 on solid and air cells."""
    return fluid * diag / (2 * dim)


def network_input(r: torch.Tensor, geometry: torch.Tensor | None) -> torch.Tensor:
    """The network's input `(B, C, *grid)` from residuals `(B, 1, *grid)` and, for a `geometry=True`
    network, the geometry channel (broadcast to `(B, 1, *grid)`, scaled to the root mean square of each
    residual so that neither channel drowns the other); the residual is used as given."""
    if geometry is None:
        return r
    rms = r.flatten(1).square().mean(1).sqrt().reshape(-1, *(1,) * (r.ndim - 1))
    return torch.cat([r, geometry.to(r.dtype) * rms], dim=1)


class _ResidualPair(nn.Module):
    def __init__(self, conv: type[nn.Module], width: int):
        super().__init__()
        self.conv1 = conv(width, width, 3, padding=1)
        self.conv2 = conv(width, width, 3, padding=1)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv2(F.relu(self.conv1(h)))) + h


@register_model("dcdm-cnn")
class DCDMNet(nn.Module):
    """DCDM's residual CNN (see the module docstring), `(B, 1, *grid) -> (B, 1, *grid)`, `dim` = 2 or 3.

    Args:
        dim: number of grid axes (2 or 3).
        width: feature channels (paper: 16).
        full_blocks, half_blocks, post_blocks: residual pairs before pooling, at half resolution, and
            after upsampling (paper, 64^3 model: 1, 3, 2).
        levels: number of pooling stages (paper: 1; `half_blocks` run at the coarsest).
        geometry: take `(B, 2, *grid)`: the residual and `geometry_channel` (paper: False, one channel).
        input_norm: "none" (paper) or "rms": the residual channel divided by its root mean square.

    Example:
        >>> net = DCDMNet(dim=2)
        >>> net(torch.randn(2, 1, 33, 20)).shape
        torch.Size([2, 1, 33, 20])
    """

    def __init__(self, dim: int = 2, width: int = 16, full_blocks: int = 1, half_blocks: int = 3, post_blocks: int = 2,
                 levels: int = 1, geometry: bool = False, input_norm: str = "none"):
        super().__init__()
        if dim not in (2, 3) or isinstance(dim, bool):
            raise ValueError(f"dim must be 2 or 3, got {dim!r}")
        _positive("width", width)
        _positive("full_blocks", full_blocks, 0)
        _positive("half_blocks", half_blocks, 0)
        _positive("post_blocks", post_blocks, 0)
        _positive("levels", levels)
        conv = nn.Conv2d if dim == 2 else Conv3d
        if not isinstance(geometry, bool):
            raise ValueError(f"geometry must be true or false, got {geometry!r}")
        if input_norm not in INPUT_NORMS:
            raise ValueError(f"input_norm must be one of {', '.join(INPUT_NORMS)}, got {input_norm!r}")
        self.dim, self.geometry, self.input_norm = dim, geometry, input_norm
        self.inp = conv(2 if geometry else 1, width, 3, padding=1)
        self.first = conv(width, width, 3, padding=1)
        self.full = nn.Sequential(*[_ResidualPair(conv, width) for _ in range(full_blocks)])
        self.low = nn.Sequential(*[_ResidualPair(conv, width) for _ in range(half_blocks)])
        self.post = nn.Sequential(*[_ResidualPair(conv, width) for _ in range(post_blocks)])
        self.out = conv(width, 1, 1)
        self.pool = nn.AvgPool2d(2) if dim == 2 else nn.AvgPool3d(2)
        # levels > 1: one residual pair on the way down and one on the way up at each intermediate level
        self.down = nn.ModuleList([_ResidualPair(conv, width) for _ in range(levels - 1)])
        self.up = nn.ModuleList([_ResidualPair(conv, width) for _ in range(levels - 1)])
        self.levels = levels

    def _pool(self, h: torch.Tensor) -> torch.Tensor:
        if h.dtype == torch.bfloat16 and h.device.type == "cpu" and self.dim == 3:  # no bf16 avg_pool3d kernel on CPU
            return self.pool(h.float()).to(h.dtype)
        return self.pool(h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels = 2 if self.geometry else 1
        if x.ndim != self.dim + 2 or x.shape[1] != channels:
            raise ValueError(f"DCDMNet(dim={self.dim}) expects (B, {channels}, {', '.join('*' * self.dim)}) with "
                             f"{self.dim} grid axes, got shape {tuple(x.shape)}")
        grid = x.shape[2:]
        if self.input_norm == "rms":
            r = x[:, :1]
            rms = r.flatten(1).square().mean(1).sqrt().reshape(-1, *(1,) * (x.ndim - 1))
            x = torch.cat([r / torch.where(rms > 0, rms, torch.ones_like(rms)), x[:, 1:]], dim=1)
        m = 2**self.levels
        pad = []
        for size in reversed(grid):  # F.pad lists the last axis first
            pad += [0, -size % m]
        if any(pad):
            x = F.pad(x, pad)
        h = self.full(F.relu(self.first(self.inp(x))))
        skips = [h]
        for block in self.down:
            h = block(self._pool(h))
            skips.append(h)
        h = self.low(self._pool(h))
        for block in [*reversed(self.up), None]:
            h = F.interpolate(h, scale_factor=2, mode="nearest") + skips.pop()
            if block is not None:
                h = block(h)
        y = self.out(self.post(h))
        return y[(..., *(slice(0, s) for s in grid))] if any(pad) else y
