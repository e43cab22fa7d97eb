r"""Helpers the diffusion samplers (`dds`, `ddim`, `dps`) share: the ε-model contract, the noise
schedule, and the map between an inverse problem's unknown and the model's image tensor.

The prior contract
------------------
An ε-model is called as ``model(x, t)`` with ``x`` `(B, C, H, W)` in the model's data space
(images of the intensity range ``data_range = (lo, hi)`` mapped affinely to :math:`[-1, 1]`) and
``t`` `(B,)` train-time indices :math:`0..T-1`; it returns :math:`\varepsilon` `(B, C, H, W)`. A
diffusers model (e.g. ``UNet2DModel``) whose output has ``.sample`` works as is, and an output of
:math:`2C` channels (``learn_sigma``) gives :math:`\varepsilon` as its first :math:`C` channels.
Plain Python callables work too (the tests use the exact :math:`\varepsilon` of a Gaussian prior).

A model may carry ``alphas_cumprod`` (a `(T,)` tensor :math:`\bar\alpha_t`), ``data_range``
``(lo, hi)`` and ``in_channels`` (or diffusers' ``config.in_channels``); solver options override
them. Without either, the schedule is DDPM's linear one (:math:`\beta_t` from 1e-4 to 0.02,
:math:`T = 1000`, :math:`\bar\alpha_t = \prod_{s\le t}(1-\beta_s)`) and the data range is
:math:`(-1, 1)` (the identity map).

The VP (DDPM) forward process is :math:`x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\varepsilon`,
so Tweedie's formula gives the posterior mean :math:`\hat x_0 = (x_t - \sqrt{1-\bar\alpha_t}\,
\hat\varepsilon(x_t, t))/\sqrt{\bar\alpha_t}` (`tweedie`).

Unknown <-> model tensor (`ImageLayout`)
----------------------------------------
The unknown :math:`x` of an `InverseProblem` is `(*batch, *in_shape)` with ``in_shape`` `(H, W)`
(an image) or `(Z, H, W)` (a volume: the `Z` slices go through the 2-D prior as a batch). With
:math:`c = (lo+hi)/2`, :math:`s = (hi-lo)/2` the model sees :math:`v = (x - c)/s`:

* real :math:`x`: one channel, :math:`v`;
* complex :math:`x`, 2-channel model: channels :math:`(\mathrm{Re}\,v, \mathrm{Im}\,v)` (the affine
  map acts on the complex value: the offset moves the real part only);
* complex :math:`x`, 1-channel (real) model: needs a phase :math:`\varphi` (``phase``, real angles
  or unit complex numbers broadcastable to `(*batch, *in_shape)`, e.g. MRI's
  ``calibration_phase(y, mask, maps)``); the model sees :math:`r = (\mathrm{Re}(e^{-i\varphi}x) - c)/s`
  and :math:`x = e^{i\varphi}(c + s\,r)`: a phase-constrained image, as in
  `sciml.models.denoisers.phase_constrained`. Mapping a complex image to the model keeps the real
  part after demodulation (the projection onto the constraint). The samplers' ``phase_refresh``
  replaces `rot` by the phase of a Gaussian-smoothed estimate (`sciml.operators.mri.smoothed_phase`).

The model batch is `(N, C, H, W)` with :math:`N = \prod(\text{batch})\cdot Z` (`Z = 1` for images).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch

from .schedule import BETA_SCHEDULES
from .schedule import alphas_cumprod as _schedule_alphas_cumprod

__all__ = ["ImageLayout", "abar_at", "default_alphas_cumprod", "eps_function", "image_layout", "model_channels",
           "resolve_alphas_cumprod", "resolve_data_range", "timestep_grid", "tweedie", "BETA_SCHEDULES"]


# --- noise schedule -------------------------------------------------------------------------------
def default_alphas_cumprod(beta_schedule: str = "linear", num_train_timesteps: int = 1000) -> torch.Tensor:
    r""":math:`\bar\alpha_t` `(T,)` float64 on the CPU for a named beta schedule with DDPM's betas
    1e-4..0.02 (`sciml.diffusion.schedule.alphas_cumprod`: diffusers' values)."""
    if beta_schedule not in BETA_SCHEDULES:
        raise ValueError(f"unknown beta schedule {beta_schedule!r}; known: {', '.join(BETA_SCHEDULES)}")
    return _schedule_alphas_cumprod(num_train_timesteps, 1e-4, 0.02, beta_schedule).to("cpu", torch.float64)


def _check_schedule(ac: Any, name: str) -> torch.Tensor:
    try:
        ac = torch.as_tensor(ac).detach().to("cpu", torch.float64)
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"{name} must be a 1-D tensor of cumulative alphas, got {type(ac).__name__}") from None
    if ac.ndim != 1 or ac.numel() < 1:
        raise ValueError(f"{name} must be a 1-D tensor (T,), got shape {tuple(ac.shape)}")
    if not bool(torch.isfinite(ac).all()) or bool((ac <= 0).any()) or bool((ac > 1).any()):
        raise ValueError(f"{name} must lie in (0, 1]")
    if bool((ac[1:] > ac[:-1]).any()):
        raise ValueError(f"{name} must be non-increasing in t")
    return ac


def resolve_alphas_cumprod(option: Any = None, model: Any = None, scheduler: Any = None) -> torch.Tensor:
    r""":math:`\bar\alpha_t` `(T,)` float64 on the CPU: the option (a tensor, or a beta-schedule name
    from `BETA_SCHEDULES`), else the model's ``alphas_cumprod``, else the scheduler's, else DDPM's
    linear schedule (T = 1000).

    Raises:
        ValueError: an unknown schedule name, or a tensor that is not 1-D, in (0, 1], non-increasing.
    """
    if isinstance(option, str):
        return default_alphas_cumprod(option)
    if option is not None:
        return _check_schedule(option, "alphas_cumprod")
    for owner, what in ((model, "model.alphas_cumprod"), (scheduler, "scheduler.alphas_cumprod")):
        ac = getattr(owner, "alphas_cumprod", None) if owner is not None else None
        if ac is not None:
            return _check_schedule(ac, what)
    return default_alphas_cumprod("linear")


def resolve_data_range(option: Any = None, model: Any = None) -> tuple[float, float]:
    """`(lo, hi)`: the option, else the model's ``data_range``, else `(-1, 1)`."""
    dr = option if option is not None else getattr(model, "data_range", None)
    if dr is None:
        return (-1.0, 1.0)
    try:
        lo, hi = (float(v) for v in dr)
    except (TypeError, ValueError):
        raise ValueError(f"data_range must be a pair (lo, hi) of numbers, got {dr!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"data_range must be (lo, hi) with finite lo < hi, got {dr!r}")
    return lo, hi


def timestep_grid(num_inference_steps: int, num_train_timesteps: int) -> list[int]:
    """DDS/DDIM's "leading" grid, descending: with `skip = T // N`, `t = (N-1)*skip, ..., skip, 0`
    (e.g. N = 50, T = 1000: 980, 960, ..., 0; the same as diffusers' DDIMScheduler)."""
    N, T = num_inference_steps, num_train_timesteps
    if N < 1 or N > T:
        raise ValueError(f"num_inference_steps must be in [1, T={T}] (the training timesteps), got {N}")
    skip = T // N
    return [i * skip for i in reversed(range(N))]


def abar_at(abar: Sequence[float], t: float) -> float:
    r""":math:`\bar\alpha(t)` from the table `abar` (`(T,)`, a list or tensor) at a train-time `t` in
    :math:`[-1, T-1]`: the table at integers (:math:`\bar\alpha(-1) = 1`), piecewise-linear
    :math:`\log\bar\alpha` in between (as `sciml.diffusion.schedule.DiscreteVPSchedule`, for samplers
    such as DEIS that step at fractional times)."""
    t = float(t)
    if not -1.0 <= t <= len(abar) - 1:
        raise ValueError(f"timestep {t} is outside [-1, T-1] = [-1, {len(abar) - 1}]")

    def log_abar(k: int) -> float:
        return 0.0 if k < 0 else math.log(float(abar[k]))

    k = math.floor(t)
    w = t - k
    if w == 0.0:
        return 1.0 if k < 0 else float(abar[k])
    return math.exp((1 - w) * log_abar(k) + w * log_abar(k + 1))


def tweedie(x_t: torch.Tensor, eps: torch.Tensor, abar: float) -> torch.Tensor:
    r"""Tweedie's estimate :math:`\hat x_0 = (x_t - \sqrt{1-\bar\alpha}\,\varepsilon)/\sqrt{\bar\alpha}`."""
    return (x_t - math.sqrt(1 - abar) * eps) / math.sqrt(abar)


# --- the ε-model ---------------------------------------------------------------------------------
def model_channels(model: Any) -> int | None:
    """The model's input channels: ``model.in_channels`` or ``model.config.in_channels`` (None if unknown)."""
    config = getattr(model, "config", None)  # diffusers: read the config (the attribute is deprecated there)
    c = config.get("in_channels") if isinstance(config, dict) else getattr(config, "in_channels", None)
    if c is None:
        c = getattr(model, "in_channels", None)
    return int(c) if c is not None else None


def _param_like(model: Any) -> tuple[torch.dtype | None, torch.device | None]:
    if isinstance(model, torch.nn.Module):
        for p in model.parameters():
            return p.dtype, p.device
    return None, None


def eps_function(model: Any, batch_size: int | None = None) -> Callable[[torch.Tensor, Any], torch.Tensor]:
    r"""A callable ``eps(x, t)`` -> :math:`\varepsilon` `(N, C, H, W)` (dtype/device of `x`) from a model
    following the prior contract.

    `x` `(N, C, H, W)`; `t` a number, a 0-d or `(N,)` tensor of train-time indices. The model is
    called in chunks of `batch_size` samples (None: all at once) with `x` cast to the dtype/device of
    its parameters (float32 for a usual `nn.Module`; plain callables get `x` as is) and `t` as an
    `(n,)` tensor: int64 for integer-valued times, float for fractional ones (e.g. DEIS grids). Diffusers outputs (``.sample``) and tuples are
    unwrapped; a `2C`-channel output (learn_sigma) gives its first `C` channels. Autograd flows
    through (DPS differentiates it).

    Raises:
        ValueError: the output is not `(N, C or 2C, H, W)`.
    """
    dtype, device = _param_like(model)

    def eps(x: torch.Tensor, t: Any) -> torch.Tensor:
        N, C = x.shape[0], x.shape[1]
        dev = device if device is not None else x.device
        tt = torch.as_tensor(t).to(dev)
        if tt.is_floating_point() and bool((tt == tt.round()).all()):
            tt = tt.to(torch.int64)  # integer-valued times as train-time indices
        elif not tt.is_floating_point():
            tt = tt.to(torch.int64)
        tt = tt.reshape(-1).expand(N) if tt.numel() == 1 else tt
        xin = x.to(device=dev, dtype=dtype) if dtype is not None else x.to(dev)
        step = N if batch_size is None else batch_size
        outs = []
        for s in range(0, N, step):
            out = model(xin[s:s + step], tt[s:s + step])
            if hasattr(out, "sample"):
                out = out.sample
            elif isinstance(out, (tuple, list)):
                out = out[0]
            if not isinstance(out, torch.Tensor):
                raise ValueError(f"the model returned {type(out).__name__}, expected a tensor (or an output with .sample)")
            outs.append(out)
        out = outs[0] if len(outs) == 1 else torch.cat(outs)
        if out.ndim != 4 or out.shape[0] != N or tuple(out.shape[2:]) != tuple(x.shape[2:]) or out.shape[1] not in (C, 2 * C):
            raise ValueError(f"model channel/shape mismatch: for an input {tuple(x.shape)} the model returned "
                             f"{tuple(out.shape)}; expected ({N}, {C} or {2 * C} (learn_sigma), {x.shape[2]}, {x.shape[3]})")
        return out[:, :C].to(device=x.device, dtype=x.dtype)

    return eps


# --- unknown <-> model tensor --------------------------------------------------------------------
@dataclass
class ImageLayout:
    """How the unknown `(*batch, *in_shape)` of a problem maps to the model tensor `(N, C, H, W)`.

    Attributes:
        batch_shape, in_shape: of the unknown; in_shape `(H, W)` or `(Z, H, W)`.
        dtype: the unknown's dtype (real or complex); real_dtype: the model tensor's dtype here.
        channels: 1 or 2. rot: :math:`e^{i\\varphi}` `(*batch, *in_shape)` for a complex unknown with a
            1-channel model, else None. center, scale: :math:`c, s` of the data range.
    """

    batch_shape: tuple[int, ...]
    in_shape: tuple[int, ...]
    dtype: torch.dtype
    channels: int
    rot: torch.Tensor | None
    center: float
    scale: float

    @property
    def real_dtype(self) -> torch.dtype:
        return self.dtype.to_real() if self.dtype.is_complex else self.dtype

    @property
    def is_volume(self) -> bool:
        return len(self.in_shape) == 3

    @property
    def model_shape(self) -> tuple[int, int, int, int]:
        """`(N, C, H, W)`."""
        Z = self.in_shape[0] if self.is_volume else 1
        return (math.prod(self.batch_shape) * Z, self.channels, *self.in_shape[-2:])

    def to_model(self, x: torch.Tensor) -> torch.Tensor:
        """`(*batch, *in_shape)` -> `(N, C, H, W)` (real dtype)."""
        H, W = self.in_shape[-2:]
        if self.rot is not None:
            x = (x * self.rot.conj()).real
        v = (x - self.center) / self.scale
        v = v.reshape(-1, H, W)
        if self.dtype.is_complex and self.rot is None:
            return torch.stack((v.real, v.imag), dim=1)
        return v.unsqueeze(1)

    def from_model(self, v: torch.Tensor) -> torch.Tensor:
        """`(N, C, H, W)` -> `(*batch, *in_shape)` in the unknown's dtype."""
        shape = (*self.batch_shape, *self.in_shape)
        if self.dtype.is_complex and self.rot is None:
            z = torch.complex(v[:, 0], v[:, 1])
            return (self.center + self.scale * z).reshape(shape).to(self.dtype)
        r = (self.center + self.scale * v[:, 0]).reshape(shape)
        if self.rot is not None:
            return (self.rot * r).to(self.dtype)
        return r.to(self.dtype)


def image_layout(in_shape: Sequence[int], batch_shape: Sequence[int], dtype: torch.dtype, *,
                 channels: int | None = None, phase: torch.Tensor | None = None,
                 data_range: tuple[float, float] = (-1.0, 1.0), device: Any = None) -> ImageLayout:
    """Check and build the `ImageLayout` of an unknown `(*batch_shape, *in_shape)` of `dtype` for a
    model with `channels` input channels (None: 1 for real unknowns, 2 for complex ones, 1 with `phase`).

    Raises:
        ValueError: in_shape not `(H, W)` or `(Z, H, W)`; a channel count the unknown cannot use; a
            complex unknown with a 1-channel model and no `phase`; `phase` for a real unknown or of a
            shape that does not broadcast.
    """
    in_shape, batch_shape = tuple(in_shape), tuple(batch_shape)
    if len(in_shape) not in (2, 3):
        raise ValueError(f"the diffusion prior needs images (H, W) or volumes (Z, H, W); the unknown has shape {in_shape}")
    is_complex = dtype.is_complex
    if channels is not None and channels not in (1, 2):
        raise ValueError(f"model channel mismatch: the model takes {channels} channels; a real unknown needs 1, "
                         "a complex one 2 (real, imag) or 1 with option 'phase'")
    rot = None
    if not is_complex:
        if phase is not None:
            raise ValueError("option 'phase' is only for complex unknowns; the unknown is real")
        if channels not in (None, 1):
            raise ValueError(f"model channel mismatch: a real unknown needs a 1-channel model, the model takes {channels}")
        channels = 1
    elif phase is not None:
        if channels not in (None, 1):
            raise ValueError(f"option 'phase' is for a 1-channel (real) model, the model takes {channels} channels")
        if not isinstance(phase, torch.Tensor):
            raise ValueError(f"phase must be a torch.Tensor of angles (or unit complex numbers), got {type(phase).__name__}")
        full = (*batch_shape, *in_shape)
        try:
            ph = torch.broadcast_to(phase, full)
        except RuntimeError:
            raise ValueError(f"phase of shape {tuple(phase.shape)} does not broadcast to the unknown's shape {full}") from None
        ph = ph.to(device) if device is not None else ph
        if ph.is_complex():
            rot = ph / ph.abs().clamp_min(torch.finfo(ph.real.dtype).tiny)
        else:
            rot = torch.polar(torch.ones_like(ph, dtype=dtype.to_real()), ph.to(dtype.to_real()))
        rot = rot.to(dtype).contiguous()
        channels = 1
    else:
        if channels == 1:
            raise ValueError("a complex unknown with a 1-channel (real) model needs option 'phase' (the image phase, "
                             "e.g. sciml.operators.mri.calibration_phase(y, mask, maps)); or use a 2-channel model")
        channels = 2
    lo, hi = data_range
    return ImageLayout(batch_shape, in_shape, dtype, channels, rot, (lo + hi) / 2, (hi - lo) / 2)
