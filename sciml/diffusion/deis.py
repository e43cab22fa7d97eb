r"""DEIS: diffusion exponential integrator sampler, in the diffusers scheduler API.

Zhang & Chen, "Fast Sampling of Diffusion Models with Exponential Integrator", ICLR 2023
(arXiv 2204.13902). Covers what diffusers' ``DEISMultistepScheduler`` (log-:math:`\rho` AB only)
lacks: tAB-DEIS, :math:`\rho`AB-DEIS of orders 0-3 and :math:`\rho`RK-DEIS, on discrete or
continuous VP schedules, with quadratic/uniform-:math:`t`, log-:math:`\rho` or EDM time grids.

Notation map (paper -> code)
----------------------------
==========================  ==============================================================
:math:`\alpha_t`            cumulative signal level :math:`\bar\alpha` (``schedule.alpha``)
:math:`\rho_t`              :math:`\sqrt{(1-\alpha_t)/\alpha_t}` (``schedule.rho``)
:math:`v = x/\sqrt{\alpha}` scaled state; the ODE is :math:`\mathrm dv/\mathrm d\rho = \epsilon_\theta`
:math:`t_0 > \dots > t_N`   step grid ``step_grid`` (sampling goes from noise to data)
:math:`r`                   ``ab_order``: past :math:`\epsilon` values used besides the current
==========================  ==============================================================

Exponential-integrator multistep step (paper Eq. 14; all three AB variants share it)
------------------------------------------------------------------------------------
1. Convert the model output to :math:`\epsilon_i` (``prediction_type``).
2. Extrapolate :math:`\epsilon` over :math:`[t_{i+1}, t_i]` by the Lagrange polynomial
   :math:`P(s) = \sum_{j=0}^{r_i} \epsilon_{i-j} L_j(s)` through
   :math:`(s_{i-j}, \epsilon_{i-j})`, :math:`r_i = \min(i, r)` (lower orders on the first steps),
   in the variable :math:`s = t` (tAB), :math:`s = \rho` or :math:`s = \log\rho` (:math:`\rho`AB).
3. Integrate exactly in :math:`v`:

   .. math:: x_{i+1} = \sqrt{\tfrac{\alpha_{i+1}}{\alpha_i}}\,x_i + \sum_j C_{ij}\epsilon_{i-j},\qquad
             C_{ij} = \sqrt{\alpha_{i+1}}\int_{\rho_i}^{\rho_{i+1}} L_j(s(\rho))\,\mathrm d\rho .

   (Changing variables :math:`\rho \to t` gives the paper's
   :math:`\int \Psi(t_{i+1},\tau)\,\tfrac{-1}{2}\tfrac{\mathrm d\log\alpha}{\mathrm d\tau}
   (1-\alpha_\tau)^{-1/2} L_j(\tau)\,\mathrm d\tau`.) The coefficients are computed once in
   ``set_timesteps``, in float64: composite Gauss-Legendre in :math:`\rho` on geometrically graded
   pieces split at the kinks of the discrete schedule (tAB, :math:`\rho`AB in :math:`\rho`;
   accurate to round-off), Gauss-Legendre in :math:`\log\rho` or the closed form
   :math:`\int q(u)e^u\mathrm du = e^u\sum_m(-1)^m q^{(m)}(u)` (log-:math:`\rho` AB).
   With :math:`r = 0` every variant is DDIM (:math:`\eta = 0`).

:math:`\rho`RK-DEIS applies an explicit Runge-Kutta tableau to :math:`\mathrm dv/\mathrm d\rho =
\epsilon` on the :math:`\rho`-images of the step grid; each stage is one ``step`` call.

Example:
    >>> import torch
    >>> from sciml.diffusion.deis import DEISScheduler
    >>> sched = DEISScheduler(method="tab", ab_order=3, time_spacing="quadratic")
    >>> sched.set_timesteps(10)
    >>> x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    >>> for t in sched.timesteps:
    ...     eps = torch.zeros_like(x)  # a model: eps = unet(x, t)
    ...     x = sched.step(eps, t, x).prev_sample
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.schedulers.scheduling_utils import SchedulerMixin, SchedulerOutput

from .schedule import (BETA_SCHEDULES, TIME_SPACINGS, CosineVPSchedule, DiscreteVPSchedule, LinearVPSchedule,
                       VPSchedule, alphas_cumprod)

__all__ = ["DEISScheduler", "RK_TABLEAUX", "METHODS", "SCHEDULE_TYPES", "PREDICTION_TYPES"]

METHODS = ("tab", "rhoab", "rhork")
SCHEDULE_TYPES = ("discrete", "continuous_linear", "continuous_cosine")
PREDICTION_TYPES = ("epsilon", "sample", "v_prediction")
RHOAB_VARIABLES = ("rho", "logrho")
MAX_AB_ORDER = 3


@dataclass(frozen=True)
class _Tableau:
    """Explicit Runge-Kutta tableau: nodes ``c`` (s,), lower-triangular ``a`` (rows), weights ``b``."""

    c: tuple
    a: tuple
    b: tuple

    @property
    def stages(self) -> int:
        return len(self.b)


RK_TABLEAUX = {
    "euler": _Tableau((0.0,), ((),), (1.0,)),
    "heun": _Tableau((0.0, 1.0), ((), (1.0,)), (0.5, 0.5)),
    "midpoint": _Tableau((0.0, 0.5), ((), (0.5,)), (0.0, 1.0)),
    "ralston": _Tableau((0.0, 2 / 3), ((), (2 / 3,)), (0.25, 0.75)),
    "3kutta": _Tableau((0.0, 0.5, 1.0), ((), (0.5,), (-1.0, 2.0)), (1 / 6, 2 / 3, 1 / 6)),
    "rk4": _Tableau((0.0, 0.5, 0.5, 1.0), ((), (0.5,), (0.0, 0.5), (0.0, 0.0, 1.0)),
                    (1 / 6, 1 / 3, 1 / 3, 1 / 6)),
}

_GL_NODES = 12
_GEOM_RATIO = 1.25


def _choice(name: str, value, allowed) -> None:
    if value not in allowed:
        raise ValueError(f"`{name}` must be one of {list(allowed)}, got {value!r}")


def _lagrange_basis(nodes: np.ndarray, s: np.ndarray) -> np.ndarray:
    """``L[j, q] = prod_{k != j} (s_q - nodes_k) / (nodes_j - nodes_k)``; nodes ``(m,)``, s ``(Q,)``."""
    m = nodes.size
    out = np.ones((m, s.size))
    for j in range(m):
        for k in range(m):
            if k != j:
                out[j] *= (s - nodes[k]) / (nodes[j] - nodes[k])
    return out


def _gl_pieces(breaks: np.ndarray):
    """Gauss-Legendre nodes/weights on consecutive pieces ``[breaks[p], breaks[p+1]]`` (any order)."""
    x, w = np.polynomial.legendre.leggauss(_GL_NODES)
    a, b = breaks[:-1, None], breaks[1:, None]
    nodes = 0.5 * (a + b) + 0.5 * (b - a) * x
    weights = 0.5 * (b - a) * w
    return nodes.ravel(), weights.ravel()


def _geometric_breaks(r_hi: float, r_lo: float) -> np.ndarray:
    """Breakpoints from ``r_hi`` down to ``r_lo >= 0``, consecutive ratio <= ``_GEOM_RATIO``."""
    floor = max(r_lo, r_hi * 1e-8)
    n = max(1, math.ceil(math.log(r_hi / floor) / math.log(_GEOM_RATIO)))
    pts = list(np.exp(np.linspace(math.log(r_hi), math.log(floor), n + 1)))
    if r_lo < floor:
        pts.append(r_lo)
    pts[0], pts[-1] = r_hi, r_lo
    return np.array(pts)


class DEISScheduler(SchedulerMixin, ConfigMixin):
    r"""DEIS sampler for VP diffusion models (tAB, :math:`\rho`AB orders 0-3, :math:`\rho`RK).

    Constructor arguments (all keyword, stored in the config):

    Args:
        num_train_timesteps: ``T`` of the discrete training schedule (default 1000).
        beta_start, beta_end: betas of the discrete schedule (1e-4, 0.02).
        beta_schedule: ``"linear"`` | ``"scaled_linear"`` | ``"squaredcos_cap_v2"`` (as diffusers).
        trained_betas: explicit list of betas (overrides the three above).
        schedule_type: ``"discrete"`` (the diffusers table made continuous by piecewise-linear
            :math:`\log\bar\alpha` on ``t`` in ``[-1, T-1]``, see :mod:`sciml.diffusion.schedule`;
            the model is called with float times on the training scale), ``"continuous_linear"``
            (score-SDE VP, ``t`` in ``[0, 1]``) or ``"continuous_cosine"``.
        continuous_beta_min, continuous_beta_max: :math:`\beta_0, \beta_1` of
            ``"continuous_linear"`` (0.1, 20).
        continuous_t_eps: default final time of the continuous schedules (1e-3).
        prediction_type: what the model predicts: ``"epsilon"`` | ``"sample"`` | ``"v_prediction"``.
        method: ``"tab"`` (polynomial in ``t``, the paper's default), ``"rhoab"`` (polynomial in
            :math:`\rho` or :math:`\log\rho`) or ``"rhork"`` (Runge-Kutta in :math:`\rho`).
        ab_order: ``r`` in 0..3 for the AB methods: the number of *previous* :math:`\epsilon`
            values used besides the current one (global order ``r + 1``; ``r = 0`` is DDIM). The
            first steps use ``min(i, r)``. Diffusers' ``solver_order`` equals ``r + 1``.
        rhoab_variable: interpolation variable of ``"rhoab"``: ``"rho"`` (official DEIS) or
            ``"logrho"`` (what diffusers' ``DEISMultistepScheduler`` implements).
        rk_method: tableau of ``"rhork"``: ``"euler"``, ``"heun"``, ``"midpoint"``, ``"ralston"``,
            ``"3kutta"`` (default, the paper's) or ``"rk4"``.
        time_spacing: step grid: ``"quadratic"`` (default) | ``"uniform"`` (in ``t``) |
            ``"logrho"`` | ``"edm"`` (Karras :math:`\rho^{1/7}`).
        t_start: first time (default: ``T - 1``, resp. the schedule's ``t_max``).
        t_end: last grid point, where the returned sample lands. Default: ``0`` for discrete
            schedules (:math:`\bar\alpha_0` of the table, like diffusers' DEIS / DPM-Solver with
            ``final_sigmas_type="sigma_min"``) and ``continuous_t_eps`` for continuous ones. ``-1``
            (discrete) or ``0`` (continuous) lands on :math:`\bar\alpha = 1`; the AB methods never
            evaluate the model at ``t_end``, but RK tableaux with a node ``c = 1`` (``"heun"``,
            ``"3kutta"``, ``"rk4"``) do, so prefer :math:`\bar\alpha < 1` there.
        round_timesteps: discrete schedules only: round the step grid to integer training steps
            (duplicates removed, as the official DEIS code does for discrete models), for callers
            that index tables with ``int(t)``. The coefficients are computed for the rounded grid,
            so AB methods stay exact; ``len(timesteps)`` can then be below the requested NFE.
            :math:`\rho`RK stage times in between stay fractional.

    Attributes (after ``set_timesteps``):
        timesteps: float64 ``(NFE,)`` model-evaluation times, in ``step`` call order.
        step_grid: float64 ``(M + 1,)`` step grid ``t_0 > ... > t_M``.
        schedule: the :class:`~sciml.diffusion.schedule.VPSchedule`.
        num_inference_steps: the number of model evaluations ``len(timesteps)``.

    Raises:
        ValueError: an unknown choice (the message names the key and lists the allowed values),
            ``ab_order`` outside 0..3, or ``time_spacing="logrho"`` with :math:`\bar\alpha = 1` at
            the end.
    """

    _compatibles: list = []
    _deprecated_kwargs: list = []

    @register_to_config
    def __init__(
        self,
        num_train_timesteps: int = 1000,
        beta_start: float = 0.0001,
        beta_end: float = 0.02,
        beta_schedule: str = "linear",
        trained_betas: list | None = None,
        schedule_type: str = "discrete",
        continuous_beta_min: float = 0.1,
        continuous_beta_max: float = 20.0,
        continuous_t_eps: float = 1e-3,
        prediction_type: str = "epsilon",
        method: str = "tab",
        ab_order: int = 3,
        rhoab_variable: str = "rho",
        rk_method: str = "3kutta",
        time_spacing: str = "quadratic",
        t_start: float | None = None,
        t_end: float | None = None,
        round_timesteps: bool = False,
    ):
        _choice("schedule_type", schedule_type, SCHEDULE_TYPES)
        _choice("prediction_type", prediction_type, PREDICTION_TYPES)
        _choice("method", method, METHODS)
        _choice("rhoab_variable", rhoab_variable, RHOAB_VARIABLES)
        _choice("rk_method", rk_method, tuple(RK_TABLEAUX))
        _choice("time_spacing", time_spacing, TIME_SPACINGS)
        if trained_betas is None:
            _choice("beta_schedule", beta_schedule, BETA_SCHEDULES)
        if isinstance(ab_order, bool) or int(ab_order) != ab_order or not 0 <= int(ab_order) <= MAX_AB_ORDER:
            raise ValueError(f"`ab_order` must be an integer in 0..{MAX_AB_ORDER}, got {ab_order!r}")

        if schedule_type == "discrete":
            self.alphas_cumprod = alphas_cumprod(num_train_timesteps, beta_start, beta_end, beta_schedule,
                                                 trained_betas)
            self.schedule: VPSchedule = DiscreteVPSchedule(self.alphas_cumprod)
        elif schedule_type == "continuous_linear":
            self.schedule = LinearVPSchedule(continuous_beta_min, continuous_beta_max, continuous_t_eps)
        else:
            self.schedule = CosineVPSchedule(eps=continuous_t_eps, t_max=0.999 if t_start is None else t_start)
        self._t_start = self.schedule.t_max if t_start is None else float(t_start)
        self._t_end = self.schedule.t_end_default if t_end is None else float(t_end)
        s = self.schedule
        if not (s.t_min <= self._t_end < self._t_start <= s.t_max):
            raise ValueError(f"need {s.t_min} <= t_end ({self._t_end}) < t_start ({self._t_start}) <= {s.t_max} "
                             f"for schedule_type={schedule_type!r}")
        if round_timesteps and schedule_type != "discrete":
            raise ValueError("`round_timesteps`=True needs schedule_type='discrete'")
        if time_spacing == "logrho" and float(s.rho(self._t_end)) == 0.0:
            raise ValueError("`time_spacing`='logrho' cannot reach alpha_bar = 1 (rho = 0); use t_end with "
                             "alpha_bar < 1 or time_spacing in ['quadratic', 'uniform', 'edm']")

        self.init_noise_sigma = 1.0
        self.num_inference_steps = None
        self.timesteps = torch.empty(0, dtype=torch.float64)
        self.step_grid = torch.empty(0, dtype=torch.float64)
        self._plan: list = []
        self._step_index = None

    # ------------------------------------------------------------------------------------------
    @property
    def order(self) -> int:
        """``step`` calls per solver step: the number of RK stages for ``"rhork"``, else 1."""
        if self.config.method == "rhork":
            return RK_TABLEAUX[self.config.rk_method].stages
        return 1

    @property
    def step_index(self):
        """Index of the next ``step`` call (``None`` before ``set_timesteps``)."""
        return self._step_index

    @property
    def ab_coefficients(self) -> list:
        r"""For the AB methods after ``set_timesteps``: per step ``i`` the pair
        ``(psi_i, (C_i0, ..., C_ir_i))`` of :math:`x_{i+1} = \psi_i x_i + \sum_j C_{ij}\epsilon_{i-j}`
        (float64 Python floats); empty for ``"rhork"``."""
        if self.config.method == "rhork":
            return []
        return [(p["psi"], p["coef"]) for p in self._plan]

    def __len__(self) -> int:
        return self.config.num_train_timesteps

    def scale_model_input(self, sample: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        """Identity (VP models take the sample unscaled)."""
        return sample

    def add_noise(self, original_samples: torch.Tensor, noise: torch.Tensor, timesteps) -> torch.Tensor:
        r""":math:`\sqrt{\bar\alpha(t)}\,x_0 + \sqrt{1-\bar\alpha(t)}\,\epsilon`; ``timesteps`` scalar or
        ``(B,)`` (broadcast over the trailing dims of ``original_samples`` ``(B, ...)``)."""
        t = torch.as_tensor(timesteps, dtype=torch.float64, device=original_samples.device)
        la = self.schedule.log_alpha(t)
        shape = la.shape + (1,) * (original_samples.ndim - la.ndim)
        sa = torch.exp(0.5 * la).reshape(shape).to(original_samples.dtype)
        sb = torch.sqrt(-torch.expm1(la)).reshape(shape).to(original_samples.dtype)
        return sa * original_samples + sb * noise

    # ------------------------------------------------------------------------------------------
    def set_timesteps(self, num_inference_steps: int | None = None, device: str | torch.device | None = None,
                      time_grid: Sequence[float] | None = None) -> None:
        """Build the step grid and all coefficients (float64, once).

        Args:
            num_inference_steps: the number of model evaluations (NFE) >= 1. For ``"rhork"`` with
                ``s`` stages the grid has ``NFE // s`` steps (``len(timesteps) = s * (NFE // s)``;
                needs ``NFE >= s``).
            device: where ``timesteps`` live.
            time_grid: optional custom decreasing step grid ``t_0 > ... > t_M`` (``M + 1`` values,
                last = landing time); overrides ``time_spacing``/``t_start``/``t_end``, and
                ``num_inference_steps`` may be omitted.

        Raises:
            ValueError: ``num_inference_steps < 1`` (or fewer than the RK stages), or a bad grid.
        """
        cfg = self.config
        stages = self.order
        if time_grid is not None:
            grid = torch.as_tensor(list(time_grid), dtype=torch.float64).cpu()
            s = self.schedule
            if grid.ndim != 1 or grid.numel() < 2 or not bool((grid[1:] < grid[:-1]).all()):
                raise ValueError("`time_grid` must be a strictly decreasing 1-D sequence of >= 2 times")
            if float(grid[-1]) < s.t_min or float(grid[0]) > s.t_max:
                raise ValueError(f"`time_grid` must lie in [{s.t_min}, {s.t_max}]")
        else:
            if num_inference_steps is None or int(num_inference_steps) < 1:
                raise ValueError(f"`num_inference_steps` must be an integer >= 1, got {num_inference_steps!r}")
            n_steps = int(num_inference_steps) // stages
            if n_steps < 1:
                raise ValueError(f"`num_inference_steps` must be >= {stages} (the stages of "
                                 f"rk_method={cfg.rk_method!r}), got {num_inference_steps}")
            grid = self.schedule.time_grid(n_steps, cfg.time_spacing, self._t_start, self._t_end)
            if cfg.round_timesteps:
                grid = torch.unique(torch.round(grid), sorted=True).flip(0)
        rho = self.schedule.rho(grid).numpy()
        alpha = self.schedule.alpha(grid).numpy()
        if cfg.method == "rhork":
            plan, times = self._rk_plan(grid.numpy(), rho)
        else:
            plan, times = self._ab_plan(grid.numpy(), rho, alpha)
        self._plan = plan
        self.step_grid = grid
        self.timesteps = torch.tensor(times, dtype=torch.float64, device=device)
        self.num_inference_steps = len(times)
        self._history: list = []
        self._stage_eps: list = []
        self._v_start = None
        self._step_index = 0

    # -- coefficient construction (host, float64) ---------------------------------------------
    def _rho_breaks(self, t_hi: float, t_lo: float, r_hi: float, r_lo: float) -> np.ndarray:
        """Quadrature breakpoints in rho (decreasing): geometric grading + kinks of the schedule."""
        pts = set(_geometric_breaks(r_hi, r_lo).tolist())
        if isinstance(self.schedule, DiscreteVPSchedule):
            knots = self.schedule.knot_times(t_hi, t_lo)
            if knots:
                pts.update(self.schedule.rho(torch.tensor(knots, dtype=torch.float64)).tolist())
        pts.discard(r_hi)
        pts.discard(r_lo)
        inner = sorted((p for p in pts if r_lo < p < r_hi), reverse=True)
        return np.array([r_hi] + inner + [r_lo])

    def _ab_coefficients(self, t_hi, t_lo, r_hi, r_lo, node_rho: np.ndarray, node_t: np.ndarray) -> np.ndarray:
        r""":math:`\int_{\rho_i}^{\rho_{i+1}} L_j(s(\rho))\,\mathrm d\rho` for the interpolation
        nodes (``node_rho``/``node_t``, current point first)."""
        use_log = self.config.method == "rhoab" and self.config.rhoab_variable == "logrho"
        if use_log and node_rho.size > 1:
            u_nodes = np.log(node_rho)
            u0 = u_nodes[0]  # = log r_hi
            if r_lo > 0.0:  # Gauss-Legendre in u = log(rho): smooth integrand q(u) e^u
                breaks = np.linspace(u0, math.log(r_lo), 9)
                u, w = _gl_pieces(breaks)
                return _lagrange_basis(u_nodes - u0, u - u0) @ (w * np.exp(u))
            # closed form to rho = 0: int_{-inf}^{u0} q(u) e^u du = e^{u0} sum_m (-1)^m q^(m)(u0), negated
            out = np.empty(node_rho.size)
            z = u_nodes - u0
            for j in range(node_rho.size):
                others = np.delete(z, j)
                poly = np.polynomial.Polynomial.fromroots(others) / np.prod(z[j] - others)
                total, sign, p = 0.0, 1.0, poly
                for _ in range(node_rho.size):
                    total += sign * p(0.0)
                    p, sign = p.deriv(), -sign
                out[j] = -r_hi * total
            return out
        if node_rho.size == 1:
            return np.array([r_lo - r_hi])
        breaks = self._rho_breaks(t_hi, t_lo, r_hi, r_lo)
        q, w = _gl_pieces(breaks)
        tab = self.config.method == "tab"
        s_nodes = node_t if tab else node_rho
        s_q = self.schedule.t_from_rho(torch.from_numpy(q)).numpy() if tab else q
        shift = s_nodes[0]  # centre the Lagrange variable for conditioning
        return _lagrange_basis(s_nodes - shift, s_q - shift) @ w

    def _ab_plan(self, grid: np.ndarray, rho: np.ndarray, alpha: np.ndarray):
        r = int(self.config.ab_order)
        plan = []
        for i in range(grid.size - 1):
            ri = min(i, r)
            nodes = rho[i - ri:i + 1][::-1].copy()  # rho_i, rho_{i-1}, ..., rho_{i-ri}
            node_t = grid[i - ri:i + 1][::-1].copy()
            integ = self._ab_coefficients(grid[i], grid[i + 1], rho[i], rho[i + 1], nodes, node_t)
            psi = math.sqrt(alpha[i + 1] / alpha[i])
            coef = tuple(float(math.sqrt(alpha[i + 1]) * c) for c in integ)
            plan.append({"alpha": float(alpha[i]), "psi": psi, "coef": coef})
        return plan, grid[:-1].tolist()

    def _rk_plan(self, grid: np.ndarray, rho: np.ndarray):
        tab = RK_TABLEAUX[self.config.rk_method]
        plan, times = [], []
        for i in range(grid.size - 1):
            h = float(rho[i + 1] - rho[i])
            stage_rho = [float(rho[i]) + c * h for c in tab.c]
            stage_t = self.schedule.t_from_rho(torch.tensor(stage_rho, dtype=torch.float64)).tolist()
            stage_t[0] = float(grid[i])
            stage_alpha = [1.0 / (1.0 + x * x) for x in stage_rho]
            alpha_next = 1.0 / (1.0 + float(rho[i + 1]) ** 2)
            for k in range(tab.stages):
                if k + 1 < tab.stages:  # next stage input: v_i + h sum_l a[k+1][l] K_l
                    weights = tuple(h * a for a in tab.a[k + 1]) + (0.0,) * (k + 1 - len(tab.a[k + 1]))
                    out_alpha = stage_alpha[k + 1]
                else:
                    weights = tuple(h * b for b in tab.b)
                    out_alpha = alpha_next
                plan.append({"alpha": stage_alpha[k], "stage": k, "weights": weights,
                             "out_scale": math.sqrt(out_alpha)})
                times.append(stage_t[k])
        return plan, times

    # -- stepping -------------------------------------------------------------------------------
    def _to_eps(self, model_output: torch.Tensor, sample: torch.Tensor, alpha: float) -> torch.Tensor:
        kind = self.config.prediction_type
        if kind == "epsilon":
            return model_output
        sa, sb = math.sqrt(alpha), math.sqrt(1.0 - alpha)
        if kind == "sample":
            return (sample - sa * model_output) / sb
        return sb * sample + sa * model_output  # v_prediction: v = sqrt(a) eps - sqrt(1-a) x0

    def step(self, model_output: torch.Tensor, timestep, sample: torch.Tensor,
             return_dict: bool = True) -> SchedulerOutput | tuple:
        r"""Advance by one model evaluation.

        Args:
            model_output: ``(B, ...)`` model prediction at ``timestep`` (per ``prediction_type``).
            timestep: ``timesteps[step_index]``; calls must follow ``timesteps`` in order (the
                value is not looked up, so no host synchronisation happens).
            sample: ``(B, ...)`` current state :math:`x_t` (any float dtype; coefficients are
                float64 scalars).
            return_dict: return :class:`SchedulerOutput` (else a 1-tuple).

        Returns:
            ``SchedulerOutput(prev_sample)``: the state at the next evaluation time (for
            :math:`\rho`RK the next stage's input), or at the landing time after the last call.

        Raises:
            ValueError: before ``set_timesteps`` or after all ``len(timesteps)`` calls.
        """
        if self._step_index is None:
            raise ValueError("`set_timesteps` must be called before `step`")
        if self._step_index >= len(self._plan):
            raise ValueError(f"all {len(self._plan)} steps are done; call `set_timesteps` again")
        p = self._plan[self._step_index]
        eps = self._to_eps(model_output, sample, p["alpha"]).to(sample.dtype)
        if self.config.method == "rhork":
            if p["stage"] == 0:
                self._v_start = sample / math.sqrt(p["alpha"])
                self._stage_eps = []
            self._stage_eps.append(eps)
            v = self._v_start
            for w, k in zip(p["weights"], self._stage_eps):
                if w != 0.0:
                    v = v + w * k
            prev = p["out_scale"] * v
        else:
            self._history.insert(0, eps)
            del self._history[int(self.config.ab_order) + 1:]
            prev = p["psi"] * sample
            for c, e in zip(p["coef"], self._history):
                prev = prev + c * e
        self._step_index += 1
        if not return_dict:
            return (prev,)
        return SchedulerOutput(prev_sample=prev)
