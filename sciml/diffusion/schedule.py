r"""Variance-preserving (VP) noise schedules and sampling time grids.

Notation (DEIS paper, Zhang & Chen, ICLR 2023, arXiv 2204.13902):

* :math:`\alpha_t` -- the *cumulative* signal level :math:`\bar\alpha_t` of DDPM/DDIM
  (diffusers' ``alphas_cumprod``); the forward process is
  :math:`x_t = \sqrt{\alpha_t}\,x_0 + \sqrt{1-\alpha_t}\,\epsilon`.
* :math:`\rho_t = \sqrt{(1-\alpha_t)/\alpha_t}` -- the noise-to-signal ratio (the "VE time";
  diffusers' DEIS/DPM-Solver ``sigmas``). With :math:`v = x/\sqrt{\alpha}` the probability-flow ODE
  reads :math:`\mathrm dv/\mathrm d\rho = \epsilon(x, t)`.

Schedules
---------
:class:`DiscreteVPSchedule`
    A diffusers-style table :math:`\bar\alpha_0..\bar\alpha_{T-1}` made continuous on
    :math:`t \in [-1, T-1]` by *piecewise-linear interpolation of* :math:`\log\bar\alpha` between
    the integer knots, with the extra knot :math:`\log\bar\alpha_{-1} = 0` (:math:`\bar\alpha = 1`,
    the clean data, as in DDS/DDIM's ``alpha(-1) = 1``). Monotone because every
    :math:`\beta \in (0, 1)`. At integer ``t`` the values equal the table exactly.
:class:`LinearVPSchedule`
    Score-SDE linear VP: :math:`\log\alpha(t) = -\tfrac14 t^2(\beta_1-\beta_0) - \tfrac12 t\beta_0`,
    :math:`t \in [0, 1]`, default end time :math:`\varepsilon = 10^{-3}`.
:class:`CosineVPSchedule`
    Nichol & Dhariwal cosine: :math:`\alpha(t) = f(t)/f(0)`,
    :math:`f(t) = \cos^2\!\big(\tfrac{t+s}{1+s}\tfrac\pi2\big)`, :math:`s = 0.008`,
    :math:`t \in [0, t_\max]` (:math:`t_\max < 1` because :math:`\alpha(1) = 0`).

Time grids (:meth:`VPSchedule.time_grid`)
-----------------------------------------
``"uniform"`` / ``"quadratic"`` -- uniform in :math:`(t - t_0)^{1/k}` with ``k = 1`` / ``2``
(DEIS ``ts_phase="t"``, ``ts_order=k``), :math:`t_0 = \min(0, t_\mathrm{end})`;
``"logrho"`` -- uniform in :math:`\log\rho`; ``"edm"`` -- Karras et al. (2022)
:math:`\rho_i = (\rho_\max^{1/7} + \tfrac iN(\rho_\min^{1/7} - \rho_\max^{1/7}))^7`.

Everything is float64. Functions of ``t`` accept and return torch tensors (any shape, any device).
"""
from __future__ import annotations

import math
from typing import Sequence

import torch

__all__ = [
    "BETA_SCHEDULES",
    "TIME_SPACINGS",
    "betas_for_schedule",
    "alphas_cumprod",
    "VPSchedule",
    "DiscreteVPSchedule",
    "LinearVPSchedule",
    "CosineVPSchedule",
]

BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2")
TIME_SPACINGS = ("uniform", "quadratic", "logrho", "edm")

_F64 = torch.float64


def _check_choice(name: str, value, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise ValueError(f"`{name}` must be one of {list(allowed)}, got {value!r}")


def betas_for_schedule(
    num_train_timesteps: int = 1000,
    beta_start: float = 1e-4,
    beta_end: float = 0.02,
    beta_schedule: str = "linear",
    trained_betas: Sequence[float] | None = None,
) -> torch.Tensor:
    r"""Per-step :math:`\beta_k` of a discrete DDPM schedule, bit-for-bit as diffusers builds them.

    Diffusers builds the betas in float32; so do we, to give models trained with diffusers
    exactly their schedule.

    Args:
        num_train_timesteps: ``T``, number of training steps.
        beta_start, beta_end: first and last beta (``"linear"``, ``"scaled_linear"``).
        beta_schedule: ``"linear"`` (linspace of betas), ``"scaled_linear"`` (linspace of
            :math:`\sqrt\beta`, squared) or ``"squaredcos_cap_v2"`` (Nichol & Dhariwal cosine,
            :math:`\beta \le 0.999`).
        trained_betas: explicit betas; overrides the three above.

    Returns:
        float32 tensor ``(T,)``.

    Raises:
        ValueError: unknown ``beta_schedule`` or ``num_train_timesteps < 2``.
    """
    if trained_betas is not None:
        return torch.as_tensor(list(trained_betas) if not torch.is_tensor(trained_betas) else trained_betas,
                               dtype=torch.float32)
    if int(num_train_timesteps) < 2:
        raise ValueError(f"`num_train_timesteps` must be >= 2, got {num_train_timesteps}")
    _check_choice("beta_schedule", beta_schedule, BETA_SCHEDULES)
    T = int(num_train_timesteps)
    if beta_schedule == "linear":
        return torch.linspace(beta_start, beta_end, T, dtype=torch.float32)
    if beta_schedule == "scaled_linear":
        return torch.linspace(beta_start ** 0.5, beta_end ** 0.5, T, dtype=torch.float32) ** 2

    def f(s: float) -> float:  # cosine alpha-bar of Nichol & Dhariwal (2021), s in [0, 1]
        return math.cos((s + 0.008) / 1.008 * math.pi / 2) ** 2

    out = [min(1.0 - f((k + 1) / T) / f(k / T), 0.999) for k in range(T)]
    return torch.tensor(out, dtype=torch.float32)


def alphas_cumprod(
    num_train_timesteps: int = 1000,
    beta_start: float = 1e-4,
    beta_end: float = 0.02,
    beta_schedule: str = "linear",
    trained_betas: Sequence[float] | None = None,
) -> torch.Tensor:
    r"""Cumulative :math:`\bar\alpha_k = \prod_{j\le k}(1-\beta_j)`, equal to diffusers'
    ``scheduler.alphas_cumprod`` (computed in float32 like diffusers), returned as float64 ``(T,)``.

    Example:
        >>> a = alphas_cumprod(1000)
        >>> a.shape, a.dtype
        (torch.Size([1000]), torch.float64)
    """
    betas = betas_for_schedule(num_train_timesteps, beta_start, beta_end, beta_schedule, trained_betas)
    return torch.cumprod(1.0 - betas, dim=0).to(_F64)


class VPSchedule:
    r"""A continuous-time VP schedule: :math:`\alpha(t)` decreasing on ``[t_min, t_max]``.

    Subclasses implement :meth:`log_alpha`, :meth:`dlog_alpha_dt` and :meth:`t_from_log_alpha`.
    Attributes:
        t_min: smallest time of the domain (where :math:`\alpha = 1`, or nearly).
        t_max: largest time; the default start of sampling.
        t_end_default: the default last grid point of sampling.
    """

    t_min: float
    t_max: float
    t_end_default: float

    # -- to implement -------------------------------------------------------------------------
    def log_alpha(self, t: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def dlog_alpha_dt(self, t: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def t_from_log_alpha(self, log_alpha: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    # -- derived ------------------------------------------------------------------------------
    @staticmethod
    def _as_t(t) -> torch.Tensor:
        return torch.as_tensor(t, dtype=_F64)

    def alpha(self, t) -> torch.Tensor:
        r""":math:`\bar\alpha(t)`, same shape as ``t``."""
        return torch.exp(self.log_alpha(self._as_t(t)))

    def rho(self, t) -> torch.Tensor:
        r""":math:`\rho(t) = \sqrt{(1-\alpha)/\alpha} = \sqrt{e^{-\log\alpha} - 1}` (stable)."""
        return torch.sqrt(torch.expm1(-self.log_alpha(self._as_t(t))))

    def t_from_rho(self, rho) -> torch.Tensor:
        r"""Inverse of :meth:`rho`: :math:`\log\alpha = -\log(1+\rho^2)`."""
        rho = torch.as_tensor(rho, dtype=_F64)
        return self.t_from_log_alpha(-torch.log1p(rho * rho))

    def time_grid(self, num_steps: int, spacing: str = "quadratic", t_start: float | None = None,
                  t_end: float | None = None) -> torch.Tensor:
        r"""Decreasing step grid :math:`t_0 = t_\mathrm{start} > \dots > t_N = t_\mathrm{end}`.

        Args:
            num_steps: ``N >= 1`` steps.
            spacing: one of ``"uniform"``, ``"quadratic"``, ``"logrho"``, ``"edm"`` (module docs).
            t_start, t_end: defaults ``t_max`` and ``t_end_default``.

        Returns:
            float64 tensor ``(N + 1,)`` (CPU).

        Raises:
            ValueError: ``num_steps < 1``, unknown ``spacing``, ``t_start <= t_end``, times outside
                the domain, or ``"logrho"`` with :math:`\rho(t_\mathrm{end}) = 0`.
        """
        if int(num_steps) < 1:
            raise ValueError(f"`num_steps` must be >= 1, got {num_steps}")
        _check_choice("time_spacing", spacing, TIME_SPACINGS)
        n = int(num_steps)
        t0 = self.t_max if t_start is None else float(t_start)
        t1 = self.t_end_default if t_end is None else float(t_end)
        if not (self.t_min <= t1 < t0 <= self.t_max):
            raise ValueError(f"need t_min={self.t_min} <= t_end={t1} < t_start={t0} <= t_max={self.t_max}")
        frac = torch.arange(n + 1, dtype=_F64) / n
        if spacing in ("uniform", "quadratic"):
            k = 1.0 if spacing == "uniform" else 2.0
            origin = min(0.0, t1)
            a, b = (t0 - origin) ** (1 / k), (t1 - origin) ** (1 / k)
            grid = (a + frac * (b - a)) ** k + origin
        else:
            r0, r1 = float(self.rho(t0)), float(self.rho(t1))
            if spacing == "logrho":
                if r1 <= 0.0:
                    raise ValueError("time_spacing='logrho' needs rho(t_end) > 0 (alpha_bar < 1 at the end); "
                                     "choose a later t_end or another spacing")
                rho = torch.exp(math.log(r0) + frac * (math.log(r1) - math.log(r0)))
            else:  # edm, Karras et al. exponent 7
                p = 7.0
                rho = (r0 ** (1 / p) + frac * (r1 ** (1 / p) - r0 ** (1 / p))) ** p
            grid = self.t_from_rho(rho)
        grid[0], grid[-1] = t0, t1  # exact endpoints (no inversion round-off)
        return grid


class DiscreteVPSchedule(VPSchedule):
    r"""Discrete schedule, continuous by piecewise-linear :math:`\log\bar\alpha` on ``[-1, T-1]``.

    Args:
        alphas_cumprod: ``(T,)`` table :math:`\bar\alpha_0..\bar\alpha_{T-1}` (decreasing, in (0, 1)).

    ``t_end_default = 0`` (the sample lands on :math:`\bar\alpha_0`); ``t = -1`` gives
    :math:`\bar\alpha = 1`.

    Example:
        >>> s = DiscreteVPSchedule(alphas_cumprod(1000))
        >>> float(s.alpha(torch.tensor(0.0))) == float(alphas_cumprod(1000)[0])
        True
    """

    def __init__(self, alphas_cumprod: torch.Tensor):
        ac = torch.as_tensor(alphas_cumprod, dtype=_F64).cpu()
        if ac.ndim != 1 or ac.numel() < 2:
            raise ValueError(f"`alphas_cumprod` must be 1-D with >= 2 entries, got shape {tuple(ac.shape)}")
        if not bool(((ac > 0) & (ac < 1)).all()) or not bool((ac[1:] < ac[:-1]).all()):
            raise ValueError("`alphas_cumprod` must be strictly decreasing in (0, 1)")
        self.alphas_cumprod = ac
        # knots at t = -1, 0, ..., T-1
        self._knots = torch.cat([torch.zeros(1, dtype=_F64), torch.log(ac)])
        self.num_train_timesteps = ac.numel()
        self.t_min, self.t_max, self.t_end_default = -1.0, float(ac.numel() - 1), 0.0

    def _segment(self, t: torch.Tensor):
        knots = self._knots.to(t.device)
        pos = (t + 1.0).clamp(0.0, float(knots.numel() - 1))
        k = pos.floor().clamp(max=knots.numel() - 2).long()
        return knots, k, pos - k

    def log_alpha(self, t) -> torch.Tensor:
        t = self._as_t(t)
        knots, k, w = self._segment(t)
        return knots[k] + w * (knots[k + 1] - knots[k])

    def dlog_alpha_dt(self, t) -> torch.Tensor:
        """Piecewise constant; at a knot, the slope of the segment to its right (earlier-time side
        uses the left segment only at ``t = T-1``)."""
        t = self._as_t(t)
        knots, k, _ = self._segment(t)
        return knots[k + 1] - knots[k]

    def t_from_log_alpha(self, log_alpha) -> torch.Tensor:
        la = torch.as_tensor(log_alpha, dtype=_F64)
        desc = self._knots.to(la.device)
        asc = -desc  # increasing in t
        x = (-la).clamp(float(asc[0]), float(asc[-1]))
        k = (torch.searchsorted(asc, x.contiguous(), right=True) - 1).clamp(0, asc.numel() - 2)
        w = (x - asc[k]) / (asc[k + 1] - asc[k])
        return (k.to(_F64) - 1.0) + w

    def knot_times(self, t_hi: float, t_lo: float) -> list[float]:
        """Integer knots strictly inside ``(t_lo, t_hi)`` where the interpolant has kinks."""
        lo, hi = math.floor(t_lo) + 1, math.ceil(t_hi) - 1
        return [float(k) for k in range(max(lo, -1), min(hi, self.num_train_timesteps - 1) + 1)]


class LinearVPSchedule(VPSchedule):
    r"""Continuous linear VP (score SDE): :math:`\beta(t) = \beta_0 + t(\beta_1-\beta_0)`.

    Args:
        beta_min: :math:`\beta_0` (default 0.1). beta_max: :math:`\beta_1` (default 20).
        eps: default end time :math:`\varepsilon` (1e-3). t_max: start time (1).
    """

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0, eps: float = 1e-3, t_max: float = 1.0):
        if not (beta_max > beta_min >= 0 and beta_max > 0):
            raise ValueError(f"need 0 <= beta_min < beta_max, got beta_min={beta_min}, beta_max={beta_max}")
        self.b0, self.b1 = float(beta_min), float(beta_max)
        self.t_min, self.t_max, self.t_end_default = 0.0, float(t_max), float(eps)

    def log_alpha(self, t) -> torch.Tensor:
        t = self._as_t(t)
        return -0.5 * t * t * (self.b1 - self.b0) - t * self.b0

    def dlog_alpha_dt(self, t) -> torch.Tensor:
        t = self._as_t(t)
        return -t * (self.b1 - self.b0) - self.b0

    def t_from_log_alpha(self, log_alpha) -> torch.Tensor:
        # solve 0.5 c t^2 + b0 t + la = 0 for t >= 0 (stable root form)
        la = torch.as_tensor(log_alpha, dtype=_F64)
        c = self.b1 - self.b0
        q = torch.sqrt(self.b0 ** 2 - 2.0 * c * la)
        return (-2.0 * la) / (self.b0 + q)


class CosineVPSchedule(VPSchedule):
    r"""Continuous cosine schedule :math:`\alpha(t) = f(t)/f(0)`,
    :math:`f(t) = \cos^2(\tfrac{t+s}{1+s}\tfrac\pi2)`.

    Args:
        s: offset (0.008). eps: default end time (1e-3). t_max: start time (0.999; must be < 1).
    """

    def __init__(self, s: float = 0.008, eps: float = 1e-3, t_max: float = 0.999):
        if not (0.0 < t_max < 1.0):
            raise ValueError(f"`t_max` must be in (0, 1) for the cosine schedule, got {t_max}")
        self.s = float(s)
        self._logf0 = 2.0 * math.log(math.cos(self.s / (1 + self.s) * math.pi / 2))
        self.t_min, self.t_max, self.t_end_default = 0.0, float(t_max), float(eps)

    def log_alpha(self, t) -> torch.Tensor:
        t = self._as_t(t)
        return 2.0 * torch.log(torch.cos((t + self.s) / (1 + self.s) * math.pi / 2)) - self._logf0

    def dlog_alpha_dt(self, t) -> torch.Tensor:
        t = self._as_t(t)
        ang = (t + self.s) / (1 + self.s) * math.pi / 2
        return -math.pi / (1 + self.s) * torch.tan(ang)

    def t_from_log_alpha(self, log_alpha) -> torch.Tensor:
        la = torch.as_tensor(log_alpha, dtype=_F64)
        ang = torch.acos(torch.exp(0.5 * (la + self._logf0)).clamp(max=1.0))
        return ang * 2 * (1 + self.s) / math.pi - self.s
