"""Small reference networks (a multilayer perceptron, a 2-D convolutional net) and `Conv3d`."""
from __future__ import annotations

import torch
from torch import nn

from .registry import register_model

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
    "elu": nn.ELU,
    "softplus": nn.Softplus,
}
PADDING_MODES = ("zeros", "circular", "reflect", "replicate")


def _activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}, got {name!r}")
    return ACTIVATIONS[name]()


class Conv3d(nn.Conv3d):
    """`nn.Conv3d` that takes the oneDNN (mkldnn) kernel on CPU whatever the batch size.

    torch picks its kernel for 3-D inputs with a rule written for 2-D ones: a single volume with
    B * C * D * H <= 20480 (e.g. `(1, 16, 32, 32, 32)`) goes to the unblocked im2col kernel, about 10x
    slower than oneDNN at that size on one thread. This class calls oneDNN directly for float32/bfloat16
    CPU inputs with zero padding (same result, same parameters and state-dict keys, differentiable) and
    defers to `nn.Conv3d` otherwise (CUDA, float64, other padding modes).
    """

    def _conv_forward(self, input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        if (input.device.type == "cpu" and input.dtype in (torch.float32, torch.bfloat16) and input.ndim == 5
                and self.padding_mode == "zeros" and not isinstance(self.padding, str)
                and torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled):
            return torch.mkldnn_convolution(input.contiguous(), weight.contiguous(), bias, self.padding, self.stride,
                                            self.dilation, self.groups)
        return super()._conv_forward(input, weight, bias)


def _positive(name: str, value: int, minimum: int = 1) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


@register_model("mlp")
class MLP(nn.Module):
    """x of shape (..., in_features) -> (..., out_features) through `depth` hidden layers of width `hidden`.

    depth = 0 is a single linear map.
    """

    def __init__(self, in_features: int, out_features: int, hidden: int = 64, depth: int = 2,
                 activation: str = "gelu"):
        super().__init__()
        _positive("in_features", in_features)
        _positive("out_features", out_features)
        _positive("hidden", hidden)
        _positive("depth", depth, 0)
        _activation(activation)
        widths = [in_features] + [hidden] * depth + [out_features]
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
            layers.append(nn.Linear(a, b))
            if i < depth:
                layers.append(_activation(activation))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@register_model("cnn2d")
class CNN2d(nn.Module):
    """(B, in_channels, H, W) -> (B, out_channels, H, W): `depth` convolutions ("same" padding), the
    hidden ones `width` channels wide with an activation after each; depth = 1 is one convolution.

    Scalar fields may drop the channel axis: with in_channels = 1 a `(B, H, W)` input is read as one
    channel, and with out_channels = 1 as well the output is `(B, H, W)` too.
    `padding_mode = "circular"` suits periodic domains.
    """

    def __init__(self, in_channels: int = 1, out_channels: int = 1, width: int = 32, depth: int = 4,
                 kernel_size: int = 3, activation: str = "gelu", padding_mode: str = "zeros"):
        super().__init__()
        _positive("in_channels", in_channels)
        _positive("out_channels", out_channels)
        _positive("width", width)
        _positive("depth", depth)
        _positive("kernel_size", kernel_size)
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd (for 'same' padding), got {kernel_size}")
        if padding_mode not in PADDING_MODES:
            raise ValueError(f"padding_mode must be one of {', '.join(PADDING_MODES)}, got {padding_mode!r}")
        _activation(activation)
        channels = [in_channels] + [width] * (depth - 1) + [out_channels]
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(channels[:-1], channels[1:])):
            layers.append(nn.Conv2d(a, b, kernel_size, padding=kernel_size // 2, padding_mode=padding_mode))
            if i < depth - 1:
                layers.append(_activation(activation))
        self.net = nn.Sequential(*layers)
        self.in_channels, self.out_channels = in_channels, out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 3 and self.in_channels == 1:  # (B, H, W) scalar fields
            y = self.net(x.unsqueeze(1))
            return y.squeeze(1) if self.out_channels == 1 else y
        return self.net(x)
