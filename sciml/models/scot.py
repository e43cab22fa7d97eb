r"""scOT / Poseidon: a Swin-V2-style U-shaped operator transformer with lead-time-conditioned norms.

Poseidon (Herde et al., "Poseidon: Efficient Foundation Models for PDEs", NeurIPS 2024, arXiv 2405.19101)
maps an input field :math:`u(t_0)` of shape ``(B, C_in, H, W)`` and a lead time :math:`\tau` to
:math:`u(t_0 + \tau)` of shape ``(B, C_out, H, W)`` in one evaluation, for any :math:`\tau`.

Architecture (names in brackets are the official state-dict prefixes, so released checkpoints load):

* patch embedding ``[embeddings]``: a ``patch_size`` strided convolution to ``embed_dim`` channels, a norm;
* encoder ``[encoder.layers.{s}]``: stage ``s`` has ``depths[s]`` Swin-V2 blocks of width
  ``embed_dim * 2**s`` on a ``grid / 2**s`` token grid, then a patch merging (2x2 tokens -> 1, width x2)
  applied to ``stage output + stage input``;
* a Swin-V2 block ``[...blocks.{b}]``: windowed scaled-cosine attention
  :math:`\mathrm{softmax}(\cos(q, k)\, e^{\min(s, \log 100)} + 16\,\sigma(\mathrm{MLP}(\Delta)) + M)\, v`
  with a learnable per-head logit scale :math:`s` and a continuous relative position bias from an MLP
  (2 -> 512 -> heads) of log-spaced offsets :math:`\Delta = \mathrm{sign}(d) \log_2(1 + 8|d|/(w-1)) / 3`;
  windows of ``window_size`` (clipped to the stage resolution) shifted by half a window on odd blocks
  (with the shifted-window mask :math:`M`); res-post-norm:
  :math:`h \leftarrow h + N(\mathrm{Attn}(h)),\ h \leftarrow h + N(\mathrm{MLP}(h))`;
* skip connections ``[residual_blocks.{s}.{j}]``: every encoder stage output (before merging) goes
  through ``skip_connections[s]`` ConvNeXt blocks (0: identity); the deepest one feeds the decoder and
  the others are *added* to the decoder stream before the decoder stage of the same resolution;
* decoder ``[decoder.layers.{k}]``: the stages mirrored (``k = 0`` is the deepest), each followed by a
  patch unmerging (linear C -> 2C, 2x2 pixel shuffle to C/2, norm, linear mix-up);
* patch recovery ``[patch_recovery]``: a transposed ``patch_size`` convolution to ``num_out_channels``
  and a 5x5 "mixup" convolution.

With ``use_conditioning`` every norm is a :class:`ConditionalLayerNorm`,
:math:`N(v, \tau) = \alpha(\tau) \odot (v - \mu(v)) / \sigma(v) + \beta(\tau)` with
:math:`\alpha, \beta` affine in :math:`\tau` (``Linear(1, dim)`` each); that is the only place the lead
time enters. Inputs at another (square) resolution are resampled spectrally to ``image_size`` and the
prediction back (:func:`spectral_resample`).

Checkpoints: :meth:`ScOT.save_pretrained` / :meth:`ScOT.from_pretrained` read and write the official
layout (``config.json`` with the official field names, ``model.safetensors`` with the official parameter
names); :func:`sciml.models.save` / :func:`sciml.models.load` also work (registered as ``"scot"``).
The relative-position tables (``attention.self.relative_coords_table`` / ``relative_position_index``) are
non-persistent buffers, as in the Hugging Face Swinv2 code the official model is built on: they are
recomputed from the config, never written, and ignored if a checkpoint carries them.

Example::

    cfg = ScOTConfig.preset("T", image_size=64, num_channels=4, num_out_channels=4)
    model = ScOT.from_config(cfg)
    out = model(x, time=torch.full((x.shape[0],), 0.35)).output      # (B, 4, 64, 64)
    model.save_pretrained("poseidon-t")
    model = ScOT.from_pretrained("poseidon-t", config_overrides={"num_channels": 2, "num_out_channels": 1})
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .._io import atomic_path
from .registry import register_model

__all__ = ["ConditionalLayerNorm", "ScOT", "ScOTConfig", "ScOTOutput", "spectral_resample"]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"

#: model sizes of the official train.py (MODEL_MAP); the rest of a preset is the pretraining setup.
PRESETS: dict[str, dict[str, Any]] = {
    "T": {"embed_dim": 48, "depths": [4, 4, 4, 4]},
    "S": {"embed_dim": 48, "depths": [8, 8, 8, 8]},
    "B": {"embed_dim": 96, "depths": [8, 8, 8, 8]},
    "L": {"embed_dim": 192, "depths": [8, 8, 8, 8]},
}
_PRESET_COMMON: dict[str, Any] = {
    "num_heads": [3, 6, 12, 24], "skip_connections": [2, 2, 2, 0], "window_size": 16, "patch_size": 4,
    "mlp_ratio": 4.0,
    # pretraining data of the released models (inferred from the official code, see docs): 128x128 fields
    # [rho, u, v, p], lead-time conditioned, per-group relative L1 loss, no stochastic depth.
    "image_size": 128, "num_channels": 4, "num_out_channels": 4, "drop_path_rate": 0.0,
    "use_conditioning": True, "channel_slice_list_normalized_loss": [0, 1, 3, 4],
}

_ACTIVATIONS = {
    "gelu": nn.GELU, "relu": nn.ReLU, "silu": nn.SiLU, "swish": nn.SiLU, "tanh": nn.Tanh,
    "gelu_new": lambda: nn.GELU(approximate="tanh"), "gelu_pytorch_tanh": lambda: nn.GELU(approximate="tanh"),
}
# derived / bookkeeping keys the official config.json carries; recomputed, never read as hyper-parameters
_DERIVED = ("num_layers", "hidden_size", "pretrained_window_sizes", "model_type", "architectures", "torch_dtype")
# aliases of the Hugging Face config (attribute_map)
_ALIASES = {"num_attention_heads": "num_heads", "num_hidden_layers": "num_layers"}


# ----------------------------------------------------------------------------------------------- config
@dataclass
class ScOTConfig:
    """Hyper-parameters of :class:`ScOT`, with the official field names and defaults.

    Official defaults are kept except ``skip_connections``: the official default ``[True, True, True]``
    has 3 entries for the default 4 stages and fails there; here it is ``[True, True, True, False]``
    (one ConvNeXt block on each skip, none at the bottleneck). Entries are block counts (booleans count
    as 0/1). ``learn_residual`` is forced False without ``use_conditioning``, as in the official config.
    ``extra`` holds unknown keys of a loaded ``config.json`` (written back on save, otherwise unused).

    Derived (read-only): ``num_layers = len(depths)``, ``hidden_size = embed_dim * 2**(num_layers-1)``,
    ``pretrained_window_sizes = (0, 0, 0, 0)``.
    """

    image_size: int = 224
    patch_size: int = 4
    num_channels: int = 3
    num_out_channels: int = 1
    embed_dim: int = 96
    depths: list = field(default_factory=lambda: [2, 2, 6, 2])
    num_heads: list = field(default_factory=lambda: [3, 6, 12, 24])
    skip_connections: list = field(default_factory=lambda: [True, True, True, False])
    window_size: int = 7
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    hidden_dropout_prob: float = 0.0
    attention_probs_dropout_prob: float = 0.0
    drop_path_rate: float = 0.1
    hidden_act: str = "gelu"
    use_absolute_embeddings: bool = False
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-5
    p: int = 1
    channel_slice_list_normalized_loss: list | None = None
    residual_model: str = "convnext"
    use_conditioning: bool = False
    learn_residual: bool = False
    extra: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("depths", "num_heads", "skip_connections", "channel_slice_list_normalized_loss"):
            value = getattr(self, name)
            if isinstance(value, tuple):
                setattr(self, name, list(value))
        if not self.use_conditioning:
            self.learn_residual = False

    # derived fields of the official config
    @property
    def num_layers(self) -> int:
        return len(self.depths)

    @property
    def hidden_size(self) -> int:
        return int(self.embed_dim * 2 ** (len(self.depths) - 1))

    @property
    def pretrained_window_sizes(self) -> tuple[int, ...]:
        return (0, 0, 0, 0)

    @classmethod
    def field_names(cls) -> list[str]:
        """The official hyper-parameter names (everything but ``extra``)."""
        return [f.name for f in dataclasses.fields(cls) if f.name != "extra"]

    def hparams(self) -> dict[str, Any]:
        """The official fields as a plain dict (the keyword arguments of :class:`ScOT`)."""
        return {name: _plain(getattr(self, name)) for name in self.field_names()}

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad field and what it expects."""
        for name in ("image_size", "patch_size", "num_channels", "num_out_channels", "embed_dim", "window_size"):
            _check_int(name, getattr(self, name), 1)
        L = len(self.depths)
        if L < 1:
            raise ValueError("depths must list at least one stage, got []")
        for name in ("depths", "num_heads", "skip_connections"):
            values = getattr(self, name)
            if not isinstance(values, (list, tuple)) or len(values) != L:
                raise ValueError(f"{name} must have len(depths) = {L} entries (one per stage), got {values!r}")
        for s, (d, h, k) in enumerate(zip(self.depths, self.num_heads, self.skip_connections)):
            _check_int(f"depths[{s}]", d, 1)
            _check_int(f"num_heads[{s}]", h, 1)
            if not isinstance(k, (int, bool)) or k < 0:
                raise ValueError(f"skip_connections[{s}] must be a block count >= 0 (or a boolean), got {k!r}")
            dim = self.embed_dim * 2 ** s
            if dim % h:
                raise ValueError(f"num_heads[{s}] = {h} must divide the stage width embed_dim * 2**{s} = {dim}")
        if self.image_size % self.patch_size:
            raise ValueError(f"image_size = {self.image_size} must be a multiple of patch_size = {self.patch_size}")
        grid = self.image_size // self.patch_size
        if grid % 2 ** (L - 1):
            raise ValueError(f"the token grid image_size / patch_size = {grid} must be divisible by "
                             f"2**(len(depths) - 1) = {2 ** (L - 1)} (one halving per stage)")
        if not self.mlp_ratio > 0:
            raise ValueError(f"mlp_ratio must be > 0, got {self.mlp_ratio!r}")
        for name in ("hidden_dropout_prob", "attention_probs_dropout_prob", "drop_path_rate"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {value!r}")
        if self.hidden_act not in _ACTIVATIONS:
            raise ValueError(f"hidden_act must be one of {', '.join(_ACTIVATIONS)}, got {self.hidden_act!r}")
        if self.p not in (1, 2):
            raise ValueError(f"p must be 1 (L1 loss) or 2 (MSE), got {self.p!r}")
        if self.residual_model not in ("convnext", "resnet"):
            raise ValueError(f"residual_model must be 'convnext' or 'resnet', got {self.residual_model!r}")
        slices = self.channel_slice_list_normalized_loss
        if slices is not None:
            ok = (len(slices) >= 2 and all(isinstance(i, int) for i in slices) and slices[0] >= 0
                  and all(a < b for a, b in zip(slices[:-1], slices[1:])) and slices[-1] <= self.num_out_channels)
            if not ok:
                raise ValueError("channel_slice_list_normalized_loss must be increasing channel boundaries "
                                 f"in [0, num_out_channels = {self.num_out_channels}], e.g. [0, 1, 3, 4]; "
                                 f"got {slices!r}")

    # ---- official config.json
    def to_dict(self) -> dict[str, Any]:
        """The official ``config.json`` content: fields, derived fields, model_type and architectures."""
        out = dict(self.extra)
        out.update(self.hparams())
        out.update(num_layers=self.num_layers, hidden_size=self.hidden_size,
                   pretrained_window_sizes=list(self.pretrained_window_sizes),
                   model_type="swinv2", architectures=["ScOT"])
        out.setdefault("torch_dtype", "float32")
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ScOTConfig":
        """A config from a ``config.json`` dict: missing fields take defaults, unknown keys go to ``extra``."""
        data = dict(data)
        for alias, name in _ALIASES.items():
            if alias in data and name not in data:
                data[name] = data.pop(alias)
        names = set(cls.field_names())
        known = {k: v for k, v in data.items() if k in names}
        extra = {k: v for k, v in data.items() if k not in names and k not in _DERIVED}
        if "torch_dtype" in data:
            extra["torch_dtype"] = data["torch_dtype"]
        return cls(**known, extra=extra)

    @classmethod
    def from_json_file(cls, path: str | os.PathLike) -> "ScOTConfig":
        return cls.from_dict(json.loads(Path(path).read_text()))

    def to_json_file(self, path: str | os.PathLike) -> None:
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> "ScOTConfig":
        """Poseidon sizes ``"T"`` (~21M params), ``"S"``, ``"B"`` (~158M), ``"L"`` (~629M) of the official
        train.py, with the released models' pretraining setup (128x128, 4 channels [rho, u, v, p],
        lead-time conditioned, relative L1 per group [0, 1, 3, 4], no drop path); any field can be
        overridden (the loss grouping is dropped when ``num_out_channels`` is overridden to other than 4).
        """
        if name not in PRESETS:
            raise ValueError(f"preset must be one of {', '.join(PRESETS)}, got {name!r}")
        unknown = sorted(set(overrides) - set(cls.field_names()))
        if unknown:
            raise ValueError(f"unknown ScOTConfig field(s) {', '.join(unknown)}; expected any of "
                             f"{', '.join(cls.field_names())}")
        values = {**_PRESET_COMMON, **PRESETS[name], **overrides}
        if "channel_slice_list_normalized_loss" not in overrides and values["num_out_channels"] != 4:
            values["channel_slice_list_normalized_loss"] = None  # the [rho],[u,v],[p] grouping needs 4 outputs
        return cls(**{k: (list(v) if isinstance(v, list) else v) for k, v in values.items()})


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _check_int(name: str, value: Any, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


# ----------------------------------------------------------------------------------------------- layers
class ConditionalLayerNorm(nn.Module):
    r"""Layer norm over the last axis whose scale and shift are affine in the lead time.

    :math:`y = (W_\alpha t + b_\alpha) \odot \hat x + (W_\beta t + b_\beta)`,
    :math:`\hat x = (x - \mathrm{mean}) / \sqrt{\mathrm{E}[x^2] - \mathrm{mean}^2 + \epsilon}`.
    ``weight`` and ``bias`` are ``Linear(1, dim)`` (official names). x: ``(B, ..., dim)``; time: ``(B,)``.
    """

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Linear(1, dim)
        self.bias = nn.Linear(1, dim)

    def forward(self, x: torch.Tensor, time: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=-1, keepdim=True)
        var = (x * x).mean(dim=-1, keepdim=True) - mean * mean
        x = (x - mean) / (var + self.eps).sqrt()
        t = time.reshape(-1, 1).to(x.dtype)
        shape = (t.shape[0],) + (1,) * (x.ndim - 2) + (x.shape[-1],)
        return self.weight(t).view(shape) * x + self.bias(t).view(shape)


class _LayerNorm(nn.LayerNorm):
    """nn.LayerNorm that accepts (and ignores) the lead time."""

    def forward(self, x: torch.Tensor, time: torch.Tensor | None = None) -> torch.Tensor:  # noqa: ARG002
        return super().forward(x)


def _norm(cfg: ScOTConfig, dim: int, eps: float = 1e-5) -> nn.Module:
    return ConditionalLayerNorm(dim, eps) if cfg.use_conditioning else _LayerNorm(dim, eps=eps)


class _DropPath(nn.Module):
    """Stochastic depth: zero a sample's residual branch with probability `rate` (rescaled otherwise)."""

    def __init__(self, rate: float):
        super().__init__()
        self.rate = rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.rate == 0.0 or not self.training:
            return x
        keep = 1.0 - self.rate
        mask = torch.rand((x.shape[0],) + (1,) * (x.ndim - 1), dtype=x.dtype, device=x.device) < keep
        return x * mask / keep


def _windows(x: torch.Tensor, w: int) -> torch.Tensor:
    """(B, H, W, C) -> (B * H/w * W/w, w*w, C), windows in row-major order."""
    B, H, W, C = x.shape
    x = x.view(B, H // w, w, W // w, w, C).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, w * w, C)


def _unwindows(x: torch.Tensor, w: int, H: int, W: int) -> torch.Tensor:
    """Inverse of :func:`_windows`: (B * H/w * W/w, w*w, C) -> (B, H, W, C)."""
    C = x.shape[-1]
    x = x.view(-1, H // w, W // w, w, w, C).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, H, W, C)


def _log_spaced_offsets(w: int) -> torch.Tensor:
    """Relative offsets of a w x w window, (2w-1, 2w-1, 2) -> sign(d) log2(1 + 8|d|/(w-1)) / log2(8)."""
    d = torch.arange(-(w - 1), w, dtype=torch.float32, device="cpu")
    table = torch.stack(torch.meshgrid(d, d, indexing="ij"), dim=-1)
    if w > 1:
        table = table / (w - 1)
    table = table * 8
    return torch.sign(table) * torch.log2(table.abs() + 1.0) / math.log2(8)


def _relative_index(w: int) -> torch.Tensor:
    """(w*w, w*w) index of the offset between two tokens of a window into the flattened offset table."""
    r = torch.arange(w, device="cpu")
    ij = torch.stack(torch.meshgrid(r, r, indexing="ij")).flatten(1)  # (2, w*w)
    rel = (ij[:, :, None] - ij[:, None, :]) + (w - 1)  # (2, N, N), in [0, 2w-2]
    return rel[0] * (2 * w - 1) + rel[1]


class _SelfAttention(nn.Module):
    """Scaled cosine attention in windows with a continuous log-spaced relative position bias (Swin-V2).

    Official names: query, key (no bias), value, logit_scale (heads, 1, 1),
    continuous_position_bias_mlp (Linear(2, 512), ReLU, Linear(512, heads, bias=False)).
    """

    def __init__(self, cfg: ScOTConfig, dim: int, heads: int, window: int):
        super().__init__()
        self.heads, self.window = heads, window
        self.logit_scale = nn.Parameter(torch.log(10 * torch.ones(heads, 1, 1)))
        self.continuous_position_bias_mlp = nn.Sequential(nn.Linear(2, 512), nn.ReLU(inplace=True),
                                                          nn.Linear(512, heads, bias=False))
        here = self.logit_scale.device  # the tables are built on the CPU, then moved where the model is built
        self.register_buffer("relative_coords_table", _log_spaced_offsets(window).unsqueeze(0).to(here),
                             persistent=False)
        self.register_buffer("relative_position_index", _relative_index(window).to(here), persistent=False)
        self.query = nn.Linear(dim, dim, bias=cfg.qkv_bias)
        self.key = nn.Linear(dim, dim, bias=False)
        self.value = nn.Linear(dim, dim, bias=cfg.qkv_bias)
        self.dropout = nn.Dropout(cfg.attention_probs_dropout_prob)

    def position_bias(self) -> torch.Tensor:
        """(heads, w*w, w*w) bias 16 sigmoid(MLP(offset))."""
        table = self.continuous_position_bias_mlp(self.relative_coords_table.to(self.logit_scale.dtype))
        table = table.view(-1, self.heads)
        n = self.window * self.window
        bias = table[self.relative_position_index.view(-1)].view(n, n, self.heads).permute(2, 0, 1)
        return 16 * torch.sigmoid(bias)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """x: (B * nW, N, C) windows; mask: (nW, N, N) additive or None -> (B * nW, N, C)."""
        Bw, N, C = x.shape
        split = lambda y: y.view(Bw, N, self.heads, C // self.heads).transpose(1, 2)  # noqa: E731
        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        scores = F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).transpose(-2, -1)
        scores = scores * torch.clamp(self.logit_scale, max=math.log(100.0)).exp()
        scores = scores + self.position_bias().unsqueeze(0)
        if mask is not None:
            nW = mask.shape[0]
            m = mask.view(1, nW, 1, N, N)
            # The reference implementation (HF Swinv2, used to train the released weights) adds the
            # shifted-window mask twice; keep that so masked logits are offset by -200, not -100.
            scores = (scores.view(Bw // nW, nW, self.heads, N, N) + m + m).view(Bw, self.heads, N, N)
        probs = self.dropout(torch.softmax(scores, dim=-1))
        return (probs @ v).transpose(1, 2).reshape(Bw, N, C)


class _SelfOutput(nn.Module):
    def __init__(self, cfg: ScOTConfig, dim: int):
        super().__init__()
        self.dense = nn.Linear(dim, dim)
        self.dropout = nn.Dropout(cfg.attention_probs_dropout_prob)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.dense(x))


class _Attention(nn.Module):
    def __init__(self, cfg: ScOTConfig, dim: int, heads: int, window: int):
        super().__init__()
        self.self = _SelfAttention(cfg, dim, heads, window)
        self.output = _SelfOutput(cfg, dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        return self.output(self.self(x, mask))


class _Intermediate(nn.Module):
    def __init__(self, cfg: ScOTConfig, dim: int):
        super().__init__()
        self.dense = nn.Linear(dim, int(cfg.mlp_ratio * dim))
        self.act = _ACTIVATIONS[cfg.hidden_act]()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.dense(x))


class _Output(nn.Module):
    def __init__(self, cfg: ScOTConfig, dim: int):
        super().__init__()
        self.dense = nn.Linear(int(cfg.mlp_ratio * dim), dim)
        self.dropout = nn.Dropout(cfg.hidden_dropout_prob)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.dense(x))


def _shift_mask(size: int, window: int, shift: int) -> torch.Tensor:
    """(nW, w*w, w*w) additive mask (0 / -100) keeping shifted windows from mixing wrapped-around regions."""
    region = torch.zeros(size, size, device="cpu")
    bands = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
    label = 0
    for rows in bands:
        for cols in bands:
            region[rows, cols] = label
            label += 1
    labels = _windows(region.view(1, size, size, 1), window).squeeze(-1)  # (nW, w*w)
    diff = labels.unsqueeze(1) - labels.unsqueeze(2)
    return torch.where(diff != 0, -100.0, 0.0)


class _SwinBlock(nn.Module):
    """Swin-V2 block on a (B, res*res, C) token sequence: shifted-window attention and MLP, res-post-norm.

    The window is ``min(window_size, res)``; the shift (``window_size // 2`` when `shifted`) is dropped
    when one window covers the stage. A resolution that is not a window multiple is zero-padded.
    """

    def __init__(self, cfg: ScOTConfig, dim: int, res: int, heads: int, shifted: bool, drop_path: float):
        super().__init__()
        self.res = res
        self.window = min(res, cfg.window_size)
        self.shift = cfg.window_size // 2 if (shifted and res > cfg.window_size) else 0
        self.padded = -(-res // self.window) * self.window
        self.attention = _Attention(cfg, dim, heads, self.window)
        self.layernorm_before = _norm(cfg, dim, cfg.layer_norm_eps)
        self.drop_path = _DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.intermediate = _Intermediate(cfg, dim)
        self.output = _Output(cfg, dim)
        self.layernorm_after = _norm(cfg, dim, cfg.layer_norm_eps)
        here = self.intermediate.dense.weight.device
        mask = _shift_mask(self.padded, self.window, self.shift).to(here) if self.shift > 0 else None
        self.register_buffer("attn_mask", mask, persistent=False)

    def forward(self, x: torch.Tensor, time: torch.Tensor | None) -> torch.Tensor:
        B, N, C = x.shape
        r, w, s, P = self.res, self.window, self.shift, self.padded
        h = x.view(B, r, r, C)
        if P != r:
            h = F.pad(h, (0, 0, 0, P - r, 0, P - r))
        if s:
            h = torch.roll(h, shifts=(-s, -s), dims=(1, 2))
        mask = None if self.attn_mask is None else self.attn_mask.to(h.dtype)
        h = _unwindows(self.attention(_windows(h, w), mask), w, P, P)
        if s:
            h = torch.roll(h, shifts=(s, s), dims=(1, 2))
        h = h[:, :r, :r, :].reshape(B, N, C)
        x = x + self.drop_path(self.layernorm_before(h, time))
        return x + self.drop_path(self.layernorm_after(self.output(self.intermediate(x)), time))


class _PatchMerging(nn.Module):
    """(B, r*r, C) -> (B, r*r/4, 2C): concatenate 2x2 neighbours, Linear(4C, 2C, no bias), norm."""

    def __init__(self, cfg: ScOTConfig, dim: int, res: int):
        super().__init__()
        self.res = res
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = _norm(cfg, 2 * dim)

    def forward(self, x: torch.Tensor, time: torch.Tensor | None) -> torch.Tensor:
        B, _, C = x.shape
        h = x.view(B, self.res, self.res, C)
        # official order: (even row, even col), (odd, even), (even, odd), (odd, odd)
        h = torch.cat([h[:, 0::2, 0::2], h[:, 1::2, 0::2], h[:, 0::2, 1::2], h[:, 1::2, 1::2]], dim=-1)
        return self.norm(self.reduction(h.reshape(B, -1, 4 * C)), time)


class _PatchUnmerging(nn.Module):
    """(B, r*r, C) -> (B, 4r*r, C/2): Linear(C, 2C, no bias), 2x2 pixel shuffle, norm, Linear mix-up."""

    def __init__(self, cfg: ScOTConfig, dim: int, res: int):
        super().__init__()
        self.res = res
        self.upsample = nn.Linear(dim, 2 * dim, bias=False)
        self.mixup = nn.Linear(dim // 2, dim // 2, bias=False)
        self.norm = _norm(cfg, dim // 2)

    def forward(self, x: torch.Tensor, time: torch.Tensor | None) -> torch.Tensor:
        B, _, C = x.shape
        r = self.res
        h = self.upsample(x).view(B, r, r, 2, 2, C // 2).permute(0, 1, 3, 2, 4, 5)
        h = h.reshape(B, 4 * r * r, C // 2)
        return self.mixup(self.norm(h, time))


class _EncodeStage(nn.Module):
    def __init__(self, cfg: ScOTConfig, s: int, res: int, rates: list[float]):
        super().__init__()
        dim = cfg.embed_dim * 2 ** s
        self.blocks = nn.ModuleList(_SwinBlock(cfg, dim, res, cfg.num_heads[s], b % 2 == 1, rates[b])
                                    for b in range(cfg.depths[s]))
        self.downsample = _PatchMerging(cfg, dim, res) if s < len(cfg.depths) - 1 else None

    def forward(self, x: torch.Tensor, time: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (stage output before merging (the skip), input of the next stage)."""
        h = x
        for block in self.blocks:
            h = block(h, time)
        nxt = self.downsample(h + x, time) if self.downsample is not None else h
        return h, nxt


class _DecodeStage(nn.Module):
    def __init__(self, cfg: ScOTConfig, s: int, res: int, rates: list[float]):
        super().__init__()
        dim, depth = cfg.embed_dim * 2 ** s, cfg.depths[s]
        # official: block k is built with index depth-1-k, so the shifted blocks are those with odd depth-1-k
        self.blocks = nn.ModuleList(_SwinBlock(cfg, dim, res, cfg.num_heads[s], (depth - 1 - k) % 2 == 1, rates[k])
                                    for k in range(depth))
        self.upsample = _PatchUnmerging(cfg, dim, res) if s > 0 else None

    def forward(self, x: torch.Tensor, time: torch.Tensor | None) -> torch.Tensor:
        for block in self.blocks:
            x = block(x, time)
        return self.upsample(x, time) if self.upsample is not None else x


class _Coder(nn.Module):
    """Holds `layers` (official name) for the encoder and the decoder."""

    def __init__(self, stages: list[nn.Module]):
        super().__init__()
        self.layers = nn.ModuleList(stages)


class _ConvNeXtBlock(nn.Module):
    """ConvNeXt block on (B, r*r, C) tokens: dwconv 7x7, norm, Linear C->4C, GELU, Linear 4C->C, layer scale
    (``weight``, init 1e-6), residual."""

    def __init__(self, cfg: ScOTConfig, dim: int, res: int):
        super().__init__()
        self.res = res
        self.dwconv = nn.Conv2d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.norm = _norm(cfg, dim, cfg.layer_norm_eps)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.weight = nn.Parameter(torch.full((dim,), 1e-6))

    def forward(self, x: torch.Tensor, time: torch.Tensor | None) -> torch.Tensor:
        B, N, C = x.shape
        h = self.dwconv(x.view(B, self.res, self.res, C).permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        h = self.pwconv2(self.act(self.pwconv1(self.norm(h, time))))
        return x + (self.weight * h).reshape(B, N, C)


class _ResNetBlock(nn.Module):
    """Two 3x3 convolutions with batch norm and a leaky ReLU between, residual (``residual_model="resnet"``)."""

    def __init__(self, cfg: ScOTConfig, dim: int, res: int):  # noqa: ARG002
        super().__init__()
        self.res = res
        self.conv1 = nn.Conv2d(dim, dim, 3, padding=1)
        self.conv2 = nn.Conv2d(dim, dim, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(dim)
        self.bn2 = nn.BatchNorm2d(dim)

    def forward(self, x: torch.Tensor, time: torch.Tensor | None) -> torch.Tensor:  # noqa: ARG002
        B, N, C = x.shape
        h = x.view(B, self.res, self.res, C).permute(0, 3, 1, 2)
        h = self.bn2(self.conv2(F.leaky_relu(self.bn1(self.conv1(h)))))
        return x + h.permute(0, 2, 3, 1).reshape(B, N, C)


class _PatchEmbeddings(nn.Module):
    def __init__(self, cfg: ScOTConfig):
        super().__init__()
        self.projection = nn.Conv2d(cfg.num_channels, cfg.embed_dim, kernel_size=cfg.patch_size,
                                    stride=cfg.patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, H, W) -> (B, H/p * W/p, embed_dim)."""
        return self.projection(x).flatten(2).transpose(1, 2)


class _Embeddings(nn.Module):
    def __init__(self, cfg: ScOTConfig):
        super().__init__()
        self.patch_embeddings = _PatchEmbeddings(cfg)
        n = (cfg.image_size // cfg.patch_size) ** 2
        self.position_embeddings = (nn.Parameter(torch.zeros(1, n, cfg.embed_dim))
                                    if cfg.use_absolute_embeddings else None)
        self.norm = _norm(cfg, cfg.embed_dim)  # official: default eps 1e-5 here, not layer_norm_eps
        self.dropout = nn.Dropout(cfg.hidden_dropout_prob)

    def forward(self, x: torch.Tensor, time: torch.Tensor | None) -> torch.Tensor:
        h = self.norm(self.patch_embeddings(x), time)
        if self.position_embeddings is not None:
            h = h + self.position_embeddings
        return self.dropout(h)


class _PatchRecovery(nn.Module):
    def __init__(self, cfg: ScOTConfig):
        super().__init__()
        self.grid = cfg.image_size // cfg.patch_size
        self.projection = nn.ConvTranspose2d(cfg.embed_dim, cfg.num_out_channels, kernel_size=cfg.patch_size,
                                             stride=cfg.patch_size)
        self.mixup = nn.Conv2d(cfg.num_out_channels, cfg.num_out_channels, kernel_size=5, padding=2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, grid*grid, embed_dim) -> (B, C_out, image_size, image_size)."""
        h = x.transpose(1, 2).reshape(x.shape[0], x.shape[2], self.grid, self.grid)
        return self.mixup(self.projection(h))


# ----------------------------------------------------------------------------------------------- model
@dataclass
class ScOTOutput:
    """``output``: (B, num_out_channels, H, W) prediction; ``loss``: scalar when labels were given."""

    output: torch.Tensor
    loss: torch.Tensor | None = None


def spectral_resample(x: torch.Tensor, size: int) -> torch.Tensor:
    """Resample square fields ``(..., N, N)`` to ``(..., size, size)`` by truncating or zero-padding their
    Fourier series (frequencies :math:`-n/2 \\le k \\le n/2 - 1`, ``n = min(N, size)``, amplitudes kept:
    ``norm="forward"``), real part returned. Matches the official up/down-sampling for even sizes;
    band-limited fields go up and back down unchanged up to rounding.
    """
    N = x.shape[-1]
    if N == size:
        return x
    n = min(N, size)
    k = torch.arange(-(n // 2), n - n // 2, device=x.device)
    src, dst = k % N, k % size
    X = torch.fft.fft2(x, norm="forward")
    X = X.index_select(-2, src).index_select(-1, src)
    Y = X.new_zeros(x.shape[:-2] + (size, size))
    Y[..., dst[:, None], dst[None, :]] = X
    return torch.fft.ifft2(Y, norm="forward").real.to(x.dtype)


def _init_weights(module: nn.Module, std: float) -> None:
    """The official initialisation: Linear/Conv weights N(0, std), biases 0, LayerNorm (1, 0).

    It covers the ``Linear(1, dim)`` maps inside :class:`ConditionalLayerNorm` too (so a fresh
    conditioned model starts with :math:`\\alpha(t) = W t` small and :math:`\\alpha(0) = 0`); the logit
    scales (log 10) and ConvNeXt layer scales (1e-6) keep their construction values.
    """
    if isinstance(module, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, mean=0.0, std=std)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


@register_model("scot")
class ScOT(nn.Module):
    """Poseidon's scOT: ``(B, num_channels, H, W)`` and lead time ``(B,)`` -> ``(B, num_out_channels, H, W)``.

    Hyper-parameters are the :class:`ScOTConfig` fields (official names and defaults; see there for
    the one deviation, ``skip_connections``); ``model.config`` holds them. Inputs must be square;
    ``H != image_size`` is resampled spectrally to ``image_size`` and the prediction back.
    ``state_dict()`` keys are the official ones (see the module docstring).
    """

    def __init__(self, image_size: int = 224, patch_size: int = 4, num_channels: int = 3,
                 num_out_channels: int = 1, embed_dim: int = 96, depths: list | tuple = (2, 2, 6, 2),
                 num_heads: list | tuple = (3, 6, 12, 24), skip_connections: list | tuple = (True, True, True, False),
                 window_size: int = 7, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 hidden_dropout_prob: float = 0.0, attention_probs_dropout_prob: float = 0.0,
                 drop_path_rate: float = 0.1, hidden_act: str = "gelu", use_absolute_embeddings: bool = False,
                 initializer_range: float = 0.02, layer_norm_eps: float = 1e-5, p: int = 1,
                 channel_slice_list_normalized_loss: list | tuple | None = None, residual_model: str = "convnext",
                 use_conditioning: bool = False, learn_residual: bool = False):
        super().__init__()
        cfg = ScOTConfig(image_size=image_size, patch_size=patch_size, num_channels=num_channels,
                         num_out_channels=num_out_channels, embed_dim=embed_dim, depths=list(depths),
                         num_heads=list(num_heads), skip_connections=list(skip_connections),
                         window_size=window_size, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias,
                         hidden_dropout_prob=hidden_dropout_prob,
                         attention_probs_dropout_prob=attention_probs_dropout_prob, drop_path_rate=drop_path_rate,
                         hidden_act=hidden_act, use_absolute_embeddings=use_absolute_embeddings,
                         initializer_range=initializer_range, layer_norm_eps=layer_norm_eps, p=p,
                         channel_slice_list_normalized_loss=(None if channel_slice_list_normalized_loss is None
                                                             else list(channel_slice_list_normalized_loss)),
                         residual_model=residual_model, use_conditioning=use_conditioning,
                         learn_residual=learn_residual)
        cfg.validate()
        self.config = cfg
        L, grid = len(cfg.depths), cfg.image_size // cfg.patch_size
        rates = torch.linspace(0, cfg.drop_path_rate, 2 * sum(cfg.depths), device="cpu").tolist()
        enc_rates, dec_rates = rates[: len(rates) // 2], rates[len(rates) // 2:]
        starts = [sum(cfg.depths[:s]) for s in range(L)]
        self.embeddings = _Embeddings(cfg)
        self.encoder = _Coder([_EncodeStage(cfg, s, grid // 2 ** s, enc_rates[starts[s]:starts[s] + cfg.depths[s]])
                               for s in range(L)])
        self.decoder = _Coder([_DecodeStage(cfg, s, grid // 2 ** s,
                                            dec_rates[sum(cfg.depths[s + 1:]):sum(cfg.depths[s:])])
                               for s in reversed(range(L))])
        self.patch_recovery = _PatchRecovery(cfg)
        block = _ConvNeXtBlock if cfg.residual_model == "convnext" else _ResNetBlock
        self.residual_blocks = nn.ModuleList(
            nn.ModuleList([block(cfg, cfg.embed_dim * 2 ** s, grid // 2 ** s) for _ in range(int(n))])
            if int(n) > 0 else nn.ModuleList([nn.Identity()])
            for s, n in enumerate(cfg.skip_connections))
        self.apply(lambda m: _init_weights(m, cfg.initializer_range))

    @classmethod
    def from_config(cls, config: ScOTConfig) -> "ScOT":
        """A new (randomly initialised) model with `config`'s hyper-parameters (its ``extra`` kept)."""
        model = cls(**config.hparams())
        model.config.extra = dict(config.extra)
        return model

    # ---- forward
    def _lead_time(self, time: Any, batch: int, x: torch.Tensor) -> torch.Tensor | None:
        if time is None:
            if self.config.use_conditioning:
                raise ValueError("time (the lead time, shape (B,)) is required: the model has use_conditioning=True")
            return None
        t = torch.as_tensor(time, dtype=x.dtype, device=x.device).reshape(-1)
        if t.numel() == 1:
            t = t.expand(batch)
        if t.numel() != batch:
            raise ValueError(f"time must have one lead time per sample, shape ({batch},), got {tuple(t.shape)}")
        return t

    def forward(self, pixel_values: torch.Tensor, time: torch.Tensor | float | None = None,
                labels: torch.Tensor | None = None, pixel_mask: torch.Tensor | None = None) -> ScOTOutput:
        """Predict the field a lead time ahead.

        Args:
            pixel_values: ``(B, num_channels, H, H)`` input fields (square; any H, resampled spectrally).
            time: ``(B,)`` lead times (a scalar is broadcast); required with ``use_conditioning``,
                ignored without.
            labels: ``(B, num_out_channels, H, H)`` targets; when given, ``loss`` is the L1 (``p=1``) or
                MSE (``p=2``) loss, per channel group relative to the labels' own loss when
                ``channel_slice_list_normalized_loss`` is set (mean over groups).
            pixel_mask: boolean, ``(B, C_out)`` or ``(B, C_out, H, H)``: where True the prediction is
                replaced by the label (e.g. channels that are not predicted); needs `labels`.

        Returns:
            :class:`ScOTOutput` with ``output`` ``(B, num_out_channels, H, H)`` and ``loss``.
        """
        cfg = self.config
        if pixel_values.ndim != 4:
            raise ValueError(f"pixel_values must be (B, num_channels, H, W), got shape {tuple(pixel_values.shape)}")
        B, C, H, W = pixel_values.shape
        if C != cfg.num_channels:
            raise ValueError(f"pixel_values has {C} channels; the model expects num_channels = {cfg.num_channels}")
        if H != W:
            raise ValueError(f"pixel_values must be square (H == W), got H = {H}, W = {W}")
        t = self._lead_time(time, B, pixel_values)
        x = spectral_resample(pixel_values, cfg.image_size) if H != cfg.image_size else pixel_values

        h = self.embeddings(x, t)
        skips = []
        for stage in self.encoder.layers:
            skip, h = stage(h, t)
            skips.append(skip)
        for i, blocks in enumerate(self.residual_blocks):
            for blk in blocks:
                skips[i] = blk(skips[i]) if isinstance(blk, nn.Identity) else blk(skips[i], t)
        L = len(skips)
        h = skips[-1]
        for k, stage in enumerate(self.decoder.layers):
            if k > 0:
                h = h + skips[L - 1 - k]
            h = stage(h, t)
        pred = self.patch_recovery(h)
        if cfg.learn_residual:
            pred = pred + x[:, : cfg.num_out_channels]
        if H != cfg.image_size:
            pred = spectral_resample(pred, H)

        if labels is not None and tuple(labels.shape) != (B, cfg.num_out_channels, H, W):
            raise ValueError(f"labels must have shape {(B, cfg.num_out_channels, H, W)} "
                             f"(B, num_out_channels, H, W), got {tuple(labels.shape)}")
        if pixel_mask is not None:
            if labels is None:
                raise ValueError("pixel_mask needs labels (masked entries are copied from the labels)")
            mask = pixel_mask.to(device=pred.device, dtype=torch.bool)
            while mask.ndim < 4:
                mask = mask[..., None]
            pred = torch.where(mask, labels.to(pred.dtype), pred)
        loss = self.loss(pred, labels) if labels is not None else None
        return ScOTOutput(output=pred, loss=loss)

    def loss(self, pred: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The official training loss: L1 (p=1) / MSE (p=2), or with ``channel_slice_list_normalized_loss``
        :math:`\\frac{1}{G}\\sum_g \\ell(\\hat y_g, y_g) / (\\ell(y_g, 0) + 10^{-10})` over channel groups."""
        fn = F.l1_loss if self.config.p == 1 else F.mse_loss
        slices = self.config.channel_slice_list_normalized_loss
        if slices is None:
            return fn(pred, labels)
        terms = []
        for a, b in zip(slices[:-1], slices[1:]):
            y = labels[:, a:b]
            terms.append(fn(pred[:, a:b], y) / (fn(y, torch.zeros_like(y)) + 1e-10))
        return torch.stack(terms).mean()

    # ---- optimisation
    def param_groups(self, lr: float, lr_embedding_recovery: float | None = None,
                     lr_time_embedding: float | None = None, weight_decay: float = 0.0,
                     match_official_trainer: bool = False) -> list[dict[str, Any]]:
        """AdamW parameter groups with the fine-tuning learning rates of the paper.

        Groups (empty ones dropped), each ``{"name", "params", "lr", "weight_decay"}``:

        * ``"embedding_recovery"`` (only when `lr_embedding_recovery` is given): every parameter under
          ``embeddings.`` or ``patch_recovery.``, at `lr_embedding_recovery` with `weight_decay`;
        * ``"time_embedding"`` (only when `lr_time_embedding` is given): the other
          :class:`ConditionalLayerNorm` parameters, at `lr_time_embedding`, no decay;
        * ``"decay"``: the remaining weights at `lr` with `weight_decay`;
        * ``"no_decay"``: the remaining biases and norm parameters at `lr`, no decay.

        ``match_official_trainer=True`` reproduces a quirk of the official trainer, whose weight-decay
        filter only exempts ``nn.LayerNorm`` and names containing "bias": the ``weight.weight`` of each
        ConditionalLayerNorm then sits in ``"decay"`` (rate `lr`), not ``"time_embedding"``.
        """
        cln = {id(p) for m in self.modules() if isinstance(m, ConditionalLayerNorm) for p in m.parameters()}
        norm_types = (nn.LayerNorm, nn.BatchNorm2d, ConditionalLayerNorm)
        normp = {id(p) for m in self.modules() if isinstance(m, norm_types) for p in m.parameters()}
        lnp = {id(p) for m in self.modules() if isinstance(m, nn.LayerNorm) for p in m.parameters()}
        groups: dict[str, list[nn.Parameter]] = {"embedding_recovery": [], "time_embedding": [], "decay": [],
                                                 "no_decay": []}
        for name, p in self.named_parameters():
            if not p.requires_grad:
                continue
            official_decay = "bias" not in name and id(p) not in lnp
            if lr_embedding_recovery is not None and name.startswith(("embeddings.", "patch_recovery.")):
                groups["embedding_recovery"].append(p)
            elif match_official_trainer and official_decay:
                groups["decay"].append(p)
            elif lr_time_embedding is not None and id(p) in cln:
                groups["time_embedding"].append(p)
            elif "bias" in name or id(p) in normp:
                groups["no_decay"].append(p)
            else:
                groups["decay"].append(p)
        spec = {"embedding_recovery": (lr_embedding_recovery, weight_decay),
                "time_embedding": (lr_time_embedding, 0.0), "decay": (lr, weight_decay), "no_decay": (lr, 0.0)}
        return [{"name": k, "params": v, "lr": spec[k][0], "weight_decay": spec[k][1]}
                for k, v in groups.items() if v]

    # ---- official checkpoint layout
    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        """Write ``directory/config.json`` (official field names) and ``directory/model.safetensors``
        (official parameter names; the relative-position buffers are not written). Returns the directory."""
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        dtypes = {str(v.dtype).removeprefix("torch.") for v in state.values() if v.is_floating_point()}
        self.config.extra["torch_dtype"] = dtypes.pop() if len(dtypes) == 1 else "float32"
        with atomic_path(directory / WEIGHTS_NAME) as tmp:
            save_file(state, str(tmp), metadata={"format": "pt"})
        self.config.to_json_file(directory / CONFIG_NAME)
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, config_overrides: dict[str, Any] | None = None,
                        replace_embedding_recovery: bool = False, return_info: bool = False):
        """Load an official-layout checkpoint directory (``config.json`` + ``model.safetensors``), eval mode.

        Args:
            directory: the checkpoint folder (e.g. a download of camlab-ethz/Poseidon-T).
            config_overrides: official config fields to change (e.g. ``num_channels``,
                ``num_out_channels``, ``image_size``, ``drop_path_rate``, ``channel_slice_list_normalized_loss``).
            replace_embedding_recovery: re-initialise the patch embedding (``embeddings.patch_embeddings.*``)
                and the recovery (``patch_recovery.*``) whatever the channels (the official fine-tuning
                flag). Without it, only the part whose channel count the overrides change is re-initialised.
            return_info: also return ``{"reinitialized": [model keys given fresh values],
                "ignored": [checkpoint keys not loaded: the replaced embedding / recovery tensors and any
                stored relative-position tables]}``.

        Every other tensor is loaded and must match: missing, unexpected or mis-shaped keys raise a
        ``ValueError`` listing them. The info is also kept as ``model.loading_info``.
        """
        from safetensors.torch import load_file

        directory = Path(directory)
        for name in (CONFIG_NAME, WEIGHTS_NAME):
            if not (directory / name).is_file():
                raise FileNotFoundError(f"{directory / name}: no such file (expected an official-layout "
                                        f"checkpoint with {CONFIG_NAME} and {WEIGHTS_NAME})")
        saved = ScOTConfig.from_json_file(directory / CONFIG_NAME)
        overrides = dict(config_overrides or {})
        unknown = sorted(set(overrides) - set(ScOTConfig.field_names()))
        if unknown:
            raise ValueError(f"config_overrides: unknown field(s) {', '.join(unknown)}; expected any of "
                             f"{', '.join(ScOTConfig.field_names())}")
        cfg = dataclasses.replace(saved, **overrides, extra=dict(saved.extra))
        model = cls.from_config(cfg)
        state = load_file(str(directory / WEIGHTS_NAME))

        fresh_prefixes = []
        if replace_embedding_recovery or cfg.num_channels != saved.num_channels:
            fresh_prefixes.append("embeddings.patch_embeddings.")
        if replace_embedding_recovery or cfg.num_out_channels != saved.num_out_channels:
            fresh_prefixes.append("patch_recovery.")
        fresh = lambda k: k.startswith(tuple(fresh_prefixes))  # noqa: E731
        recomputed = ("attention.self.relative_coords_table", "attention.self.relative_position_index")
        own = model.state_dict()
        ignored = sorted(k for k in state if k.endswith(recomputed) or (fresh(k) and k in own))
        missing = sorted(k for k in own if k not in state and not fresh(k))
        unexpected = sorted(k for k in state if k not in own and not k.endswith(recomputed))
        shapes = sorted(f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(v.shape)}"
                        for k, v in own.items() if k in state and not fresh(k) and state[k].shape != v.shape)
        if missing or unexpected or shapes:
            parts = []
            if missing:
                parts.append(f"missing from the checkpoint: {', '.join(missing)}")
            if unexpected:
                parts.append(f"not in the model: {', '.join(unexpected)}")
            if shapes:
                parts.append(f"shape mismatch: {'; '.join(shapes)}")
            raise ValueError(f"{directory / WEIGHTS_NAME} does not match the model built from its config"
                             f"{' with overrides ' + repr(overrides) if overrides else ''}: " + " | ".join(parts)
                             + " (change num_channels / num_out_channels to re-initialise embedding / recovery)")
        with torch.no_grad():
            for k, v in own.items():
                if not fresh(k):
                    v.copy_(state[k])
        info = {"reinitialized": sorted(k for k in own if fresh(k)), "ignored": ignored}
        model.loading_info = info
        model.eval()
        return (model, info) if return_info else model

    def extra_repr(self) -> str:
        c = self.config
        return (f"image_size={c.image_size}, patch_size={c.patch_size}, channels={c.num_channels}->"
                f"{c.num_out_channels}, embed_dim={c.embed_dim}, depths={c.depths}, "
                f"conditioned={c.use_conditioning}")
