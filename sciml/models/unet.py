r"""A diffusion prior: a diffusers `UNet2DModel` noise predictor with its DDPM noise schedule.

`UNet2DPrior` (registered "unet2d") wraps a diffusers `UNet2DModel` :math:`\epsilon_\theta(x_t, t)` and
the DDPM schedule it was trained with (Ho et al., NeurIPS 2020): betas :math:`\beta_t` from
`beta_start` to `beta_end` (`beta_schedule`, as diffusers' `DDPMScheduler`), :math:`\bar\alpha_t =
\prod_{s\le t}(1-\beta_s)`, and the forward process

.. math::  x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\epsilon, \qquad \epsilon\sim\mathcal N(0, I).

The network works in [-1, 1]; image intensities in `data_range` (e.g. [0, 1] for the MNI152 slices)
are mapped there linearly by `normalize` and back by `denormalize`.

`model(x_t, t)`: `x_t` `(B, C, H, W)` in the model's [-1, 1] space, `t` an integer, a 0-d tensor or
`(B,)` timesteps in [0, num_train_timesteps) (floats are passed to the sinusoidal embedding as they
are); returns the predicted noise `(B, C, H, W)`.
The UNet is fully convolutional: any H, W divisible by 2^(levels - 1) works (trained on 64 x 64
patches, applied to 128 x 128 slices).

Attributes used by the samplers: `alphas_cumprod` (float64 `(T,)`, equal to
`DDPMScheduler(...).alphas_cumprod`, on the model's device), `data_range` (tuple), `in_channels`,
`num_train_timesteps`, `unet` (the diffusers model).

Checkpoints:

- `sciml.models.save(prior, dir)` / `sciml.models.load(dir)`: sciml's model.safetensors + config.json;
- `prior.save_pretrained(dir)`: diffusers' DDPMPipeline layout (`model_index.json`, `unet/`,
  `scheduler/`) plus `sciml_prior.json` (data_range), readable by `diffusers.DDPMPipeline.from_pretrained`;
- `UNet2DPrior.from_pretrained(path)`: that layout, a bare diffusers UNet2DModel directory
  (`config.json` + `diffusion_pytorch_model.safetensors`, schedule from a sibling `scheduler/` or the
  defaults), or a sciml model directory. Weights are read from safetensors only (never pickle).

Loss "ddpm-eps" (objective, registered on import): the simple DDPM loss
:math:`\mathbb E_{t,\epsilon}\|\epsilon_\theta(x_t, t) - \epsilon\|^2` on clean images `batch[key]`,
t uniform in [0, T). Training config: `configs/ddpm-mni152.toml`.

    prior = UNet2DPrior.from_pretrained("datasets/mri/ddpm_mni152")
    x0 = prior.normalize(images)                                   # [0, 1] -> [-1, 1]
    eps = prior(x_t, torch.full((B,), 500))                        # predicted noise
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .registry import register_model

PRIOR_FILE = "sciml_prior.json"
UNET_WEIGHTS = "diffusion_pytorch_model.safetensors"
SCHEDULE_KEYS = ("num_train_timesteps", "beta_start", "beta_end", "beta_schedule")


def _default_blocks(n: int, attention: bool) -> tuple[list[str], list[str]]:
    """Down/up block types: plain ResNet blocks, attention at the lowest resolution if `attention`."""
    down = ["DownBlock2D"] * n
    if attention and n > 1:
        down[-1] = "AttnDownBlock2D"
    up = ["AttnUpBlock2D" if d.startswith("Attn") else "UpBlock2D" for d in reversed(down)]
    return down, up


def _ddpm_scheduler(num_train_timesteps: int, beta_start: float, beta_end: float, beta_schedule: str) -> Any:
    from diffusers import DDPMScheduler

    return DDPMScheduler(num_train_timesteps=num_train_timesteps, beta_start=beta_start, beta_end=beta_end,
                         beta_schedule=beta_schedule, prediction_type="epsilon")


@register_model("unet2d")
class UNet2DPrior(nn.Module):
    """A DDPM noise predictor: a diffusers UNet2DModel plus its noise schedule (see the module docstring).

    Args:
        sample_size: image side the UNet is nominally built for (diffusers' `sample_size`; other
            sizes divisible by 2^(len(block_out_channels) - 1) work as well).
        in_channels: image channels (1 for grey / magnitude images); the output has as many.
        block_out_channels: feature channels per resolution level.
        layers_per_block: ResNet blocks per level.
        attention: self-attention at the lowest resolution level and in the mid block (ignored for
            the levels when `down_block_types`/`up_block_types` are given).
        down_block_types, up_block_types: diffusers block names, one per level (default: from `attention`).
        norm_num_groups: GroupNorm groups (must divide every entry of `block_out_channels`).
        attention_head_dim: channels per attention head.
        dropout: dropout in the ResNet blocks.
        num_train_timesteps, beta_start, beta_end, beta_schedule: the DDPM schedule (as `DDPMScheduler`).
        data_range: (low, high) intensities mapped to the model's [-1, 1].
        unet_config: a full diffusers UNet2DModel config (its `config.json` keys); when given it
            replaces every UNet argument above (used to wrap checkpoints made elsewhere).
    """

    def __init__(self, sample_size: int = 128, in_channels: int = 1, block_out_channels: list = (32, 64, 64, 128),
                 layers_per_block: int = 1, attention: bool = False, down_block_types: list | None = None,
                 up_block_types: list | None = None, norm_num_groups: int = 8, attention_head_dim: int = 8,
                 dropout: float = 0.0, num_train_timesteps: int = 1000, beta_start: float = 1e-4,
                 beta_end: float = 0.02, beta_schedule: str = "linear", data_range: list = (0.0, 1.0),
                 unet_config: dict | None = None):
        super().__init__()
        from diffusers import UNet2DModel

        if unet_config is not None:
            config = _unet_kwargs(unet_config)
        else:
            channels = [int(c) for c in block_out_channels]
            if not channels or any(c < 1 for c in channels):
                raise ValueError(f"block_out_channels must be positive integers, got {block_out_channels!r}")
            if norm_num_groups < 1 or any(c % norm_num_groups for c in channels):
                raise ValueError(f"norm_num_groups ({norm_num_groups}) must divide every entry of "
                                 f"block_out_channels {channels}")
            if in_channels < 1:
                raise ValueError(f"in_channels must be >= 1, got {in_channels}")
            if layers_per_block < 1:
                raise ValueError(f"layers_per_block must be >= 1, got {layers_per_block}")
            down, up = _default_blocks(len(channels), attention)
            down = list(down_block_types) if down_block_types is not None else down
            up = list(up_block_types) if up_block_types is not None else up
            if len(down) != len(channels) or len(up) != len(channels):
                raise ValueError(f"down_block_types/up_block_types need one entry per level ({len(channels)}), got "
                                 f"{len(down)} and {len(up)}")
            config = dict(sample_size=sample_size, in_channels=in_channels, out_channels=in_channels,
                          block_out_channels=tuple(channels), layers_per_block=layers_per_block,
                          down_block_types=tuple(down), up_block_types=tuple(up), norm_num_groups=norm_num_groups,
                          attention_head_dim=attention_head_dim, dropout=dropout, add_attention=bool(attention))
        if config.get("out_channels", 3) != config.get("in_channels", 3):
            raise ValueError(f"unet_config: out_channels ({config.get('out_channels')}) must equal in_channels "
                             f"({config.get('in_channels')}) for a noise predictor")
        if len(data_range) != 2 or not float(data_range[1]) > float(data_range[0]):
            raise ValueError(f"data_range must be (low, high) with high > low, got {data_range!r}")
        if num_train_timesteps < 1:
            raise ValueError(f"num_train_timesteps must be >= 1, got {num_train_timesteps}")
        try:
            scheduler = _ddpm_scheduler(num_train_timesteps, beta_start, beta_end, beta_schedule)
        except NotImplementedError:
            raise ValueError(f"beta_schedule {beta_schedule!r} is not one of diffusers' DDPMScheduler schedules "
                             "('linear', 'scaled_linear', 'squaredcos_cap_v2', 'sigmoid')") from None
        self.unet = UNet2DModel(**config)
        self.in_channels = int(self.unet.config.in_channels)
        self.data_range = (float(data_range[0]), float(data_range[1]))
        self.num_train_timesteps = int(num_train_timesteps)
        self.schedule = {"num_train_timesteps": int(num_train_timesteps), "beta_start": float(beta_start),
                         "beta_end": float(beta_end), "beta_schedule": str(beta_schedule)}
        # not a buffer: model.to(float32) must not round the schedule; moved to the weights' device on access
        self._alphas_cumprod = scheduler.alphas_cumprod.to(torch.float64)

    @property
    def alphas_cumprod(self) -> torch.Tensor:
        r""":math:`\bar\alpha_t`, float64 `(T,)`, on the weights' device (equal to DDPMScheduler's)."""
        device = next(self.unet.parameters()).device
        if self._alphas_cumprod.device != device:
            self._alphas_cumprod = self._alphas_cumprod.to(device)
        return self._alphas_cumprod

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """Intensities in `data_range` -> the model's [-1, 1]."""
        lo, hi = self.data_range
        return (x - lo) * (2.0 / (hi - lo)) - 1.0

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        """The model's [-1, 1] -> intensities in `data_range`."""
        lo, hi = self.data_range
        return (x + 1.0) * ((hi - lo) / 2.0) + lo

    def forward(self, x: torch.Tensor, t: Any) -> torch.Tensor:
        """Predicted noise for `x` `(B, C, H, W)` (model space) at timesteps `t` (a number, 0-d or `(B,)`;
        integer train-time indices, or fractional ones for continuous-time samplers)."""
        if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[1] != self.in_channels:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"unet2d: expected an input (B, {self.in_channels}, H, W), got {shape}")
        weight = next(self.unet.parameters())
        t = torch.as_tensor(t, device=x.device)
        if not t.is_floating_point():  # fractional (continuous-time) steps pass through to the embedding
            t = t.to(torch.long)
        if t.ndim == 0:
            t = t.expand(x.shape[0])
        out = self.unet(x.to(weight.dtype), t, return_dict=False)[0]
        return out.to(x.dtype)

    # ------------------------------------------------------------------------------ checkpoints
    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        """Write diffusers' DDPMPipeline layout (model_index.json, unet/, scheduler/) plus sciml_prior.json.

        `diffusers.DDPMPipeline.from_pretrained(directory)` reads it; so does `UNet2DPrior.from_pretrained`.
        Returns the directory.
        """
        import diffusers

        from .._io import atomic_dir

        directory = Path(directory)
        with atomic_dir(directory) as tmp:  # diffusers writes file by file: build the folder aside, then swap
            self.unet.save_pretrained(tmp / "unet", safe_serialization=True)
            _ddpm_scheduler(**self.schedule).save_pretrained(tmp / "scheduler")
            index = {"_class_name": "DDPMPipeline", "_diffusers_version": diffusers.__version__,
                     "scheduler": ["diffusers", "DDPMScheduler"], "unet": ["diffusers", "UNet2DModel"]}
            _write_json(tmp / "model_index.json", index)
            _write_json(tmp / PRIOR_FILE, {"format": 1, "class": "unet2d", "data_range": list(self.data_range),
                                           "prediction_type": "epsilon"})
        return directory

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, *, device: str | torch.device = "cpu",
                        dtype: torch.dtype | None = None) -> "UNet2DPrior":
        """Load a prior (eval mode) from `path`, one of:

        - a DDPMPipeline-style directory (`model_index.json` or `unet/`; schedule from `scheduler/`,
          data range from `sciml_prior.json`, default (0, 1));
        - a bare diffusers UNet2DModel directory (`config.json` + `diffusion_pytorch_model.safetensors`;
          schedule from a sibling `../scheduler/` or the defaults);
        - a sciml model directory (`model.safetensors` + `config.json` of model "unet2d").

        Raises:
            FileNotFoundError: nothing loadable at `path` (the message names it).
            ValueError: a checkpoint of another kind (a sciml model other than "unet2d", a UNet that
                does not predict noise).
        """
        path = Path(path)
        if not path.is_dir():
            raise FileNotFoundError(f"{path}: no such directory (expected a diffusers pipeline/UNet2DModel "
                                    "directory or a sciml model directory)")
        if (path / "unet").is_dir():
            model = cls._from_diffusers(path / "unet", path / "scheduler", path / PRIOR_FILE)
        elif (path / "config.json").is_file() and (path / "model.safetensors").is_file() \
                and "class" in _read_json(path / "config.json"):
            from .registry import load

            model = load(path)
            if not isinstance(model, cls):
                raise ValueError(f"{path}: holds sciml model {type(model).model_name!r}, not 'unet2d'")
        elif (path / "config.json").is_file() and ((path / UNET_WEIGHTS).is_file()
                                                   or any(path.glob("diffusion_pytorch_model*.safetensors*"))):
            model = cls._from_diffusers(path, path.parent / "scheduler", path.parent / PRIOR_FILE)
        else:
            raise FileNotFoundError(
                f"{path}: nothing loadable: expected a diffusers pipeline directory (model_index.json, unet/), a "
                f"UNet2DModel directory (config.json + {UNET_WEIGHTS}) or a sciml model directory "
                "(model.safetensors + config.json)")
        if dtype is not None:
            model = model.to(dtype)
        return model.to(device).eval()

    @classmethod
    def _from_diffusers(cls, unet_dir: Path, scheduler_dir: Path, prior_file: Path) -> "UNet2DPrior":
        from diffusers import UNet2DModel

        config_file = unet_dir / "config.json"
        if not config_file.is_file():
            raise FileNotFoundError(f"{config_file}: no such file (not a diffusers UNet2DModel directory)")
        raw = _read_json(config_file)
        if raw.get("_class_name", "UNet2DModel") != "UNet2DModel":
            raise ValueError(f"{config_file}: a {raw['_class_name']}, not a UNet2DModel")
        schedule: dict[str, Any] = {}
        scheduler_file = scheduler_dir / "scheduler_config.json"
        if scheduler_file.is_file():
            sched = _read_json(scheduler_file)
            if sched.get("prediction_type", "epsilon") != "epsilon":
                raise ValueError(f"{scheduler_file}: prediction_type {sched['prediction_type']!r}; only noise "
                                 "('epsilon') prediction is supported")
            if sched.get("trained_betas") is not None:
                raise ValueError(f"{scheduler_file}: trained_betas are not supported (use beta_schedule)")
            schedule = {k: sched[k] for k in SCHEDULE_KEYS if k in sched}
        extra: dict[str, Any] = {}
        if prior_file.is_file():
            info = _read_json(prior_file)
            if "data_range" in info:
                extra["data_range"] = [float(v) for v in info["data_range"]]
        unet = UNet2DModel.from_pretrained(str(unet_dir), use_safetensors=True, low_cpu_mem_usage=False)
        config = _unet_kwargs(dict(unet.config))
        model = cls(unet_config=_jsonable(config), **schedule, **extra)  # diffusers converted old key names
        model.unet.load_state_dict(unet.state_dict(), strict=True)
        return model


def _unet_kwargs(config: dict[str, Any]) -> dict[str, Any]:
    """The UNet2DModel constructor arguments among `config`'s keys (drops _class_name, _diffusers_version...)."""
    import inspect

    from diffusers import UNet2DModel

    names = set(list(inspect.signature(UNet2DModel.__init__).parameters)[1:])
    return {k: v for k, v in config.items() if k in names}


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _read_json(file: Path) -> dict[str, Any]:
    try:
        data = json.loads(file.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{file}: not valid JSON ({err})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{file}: expected a JSON object")
    return data


def _write_json(file: Path, data: dict[str, Any]) -> None:
    from .._io import atomic_path

    with atomic_path(file) as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n")


def ddpm_eps_loss(model: nn.Module, batch: Any, key: str = "clean",
                  generator: torch.Generator | None = None) -> torch.Tensor:
    r"""The simple DDPM loss: clean images `batch[key]` `(B, C, H, W)` (or `(B, H, W)` for one
    channel) in the prior's `data_range` are mapped to [-1, 1], t ~ U{0..T-1}, ε ~ N(0, I),
    :math:`x_t = \sqrt{\bar\alpha_t}x_0 + \sqrt{1-\bar\alpha_t}\epsilon`; returns
    MSE(model(x_t, t), ε). Draws use `generator` (on the batch's device) or torch's global RNG (which
    the trainer seeds and checkpoints). `model` may be wrapped (DDP); it is called, not unwrapped.
    """
    from .registry import unwrap

    prior = unwrap(model)
    if not hasattr(prior, "alphas_cumprod") or not hasattr(prior, "normalize"):
        raise TypeError(f"ddpm-eps: expected a diffusion prior (e.g. UNet2DPrior), got {type(prior).__name__}")
    if isinstance(batch, torch.Tensor):
        x = batch
    else:
        if key not in batch:
            raise KeyError(f"ddpm-eps: the batch has no key {key!r} (keys: {', '.join(map(str, batch))})")
        x = batch[key]
    if x.ndim == 3:
        x = x.unsqueeze(1)
    x0 = prior.normalize(x)
    ac = prior.alphas_cumprod.to(x0.device)
    t = torch.randint(0, ac.shape[0], (x0.shape[0],), device=x0.device, generator=generator)
    noise = torch.randn(x0.shape, device=x0.device, dtype=x0.dtype, generator=generator)
    a = ac[t].reshape(-1, *([1] * (x0.ndim - 1)))
    xt = a.sqrt().to(x0.dtype) * x0 + (1.0 - a).sqrt().to(x0.dtype) * noise
    return F.mse_loss(model(xt, t).float(), noise.float())


def _register_loss() -> None:
    from ..training.losses import LOSSES, register_loss

    if "ddpm-eps" not in LOSSES:
        register_loss("ddpm-eps", objective=True)(ddpm_eps_loss)


_register_loss()

__all__ = ["UNet2DPrior", "ddpm_eps_loss"]
