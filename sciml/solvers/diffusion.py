r"""Diffusion-prior solvers for inverse problems `y = A x + noise`: DDS and two baselines.

Notation (VP/DDPM): :math:`\bar\alpha_t` the cumulative schedule (`(T,)`), :math:`\hat\varepsilon(x_t, t)`
the ε-model, Tweedie :math:`\hat x_0(x_t) = (x_t - \sqrt{1-\bar\alpha_t}\,\hat\varepsilon)/\sqrt{\bar\alpha_t}`.
All samplers walk the grid :math:`t_N > \dots > t_1 = 0` of `timestep_grid` (skip = T // N; e.g. 980, 960,
..., 0 for N = 50), with :math:`\bar\alpha_{t_{i-1}}` the next value and :math:`\bar\alpha_{-1} = 1` after
the last step; the model sees the unknown through `sciml.diffusion.prior.ImageLayout` (real images,
complex images as two channels or one channel with a known phase, volumes as slices).

* ``"dds"`` -- Decomposed Diffusion Sampler (Chung, Lee & Ye, ICLR 2024). Per step:

  1. :math:`\hat\varepsilon = \hat\varepsilon(x_t, t)`, :math:`\hat x_0 = \hat x_0(x_t)` (1 NFE);
  2. data consistency by `cg_iter` = M CG steps (a fixed count; CG stops earlier only on a system
     solved to rounding, where more steps would amplify rounding in the null space of :math:`A^HA`)
     warm-started at :math:`\hat x_0`, through the
     shared `sciml.solvers.variational.data_consistency`: noiseless, :math:`A^HA x = A^Hy` (so
     :math:`\tilde x_0 \in \hat x_0 + \mathcal K_M(A^HA, A^Hy - A^HA\hat x_0)`); noisy, the proximal
     step :math:`(I + \gamma A^HA)x = \hat x_0 + \gamma A^Hy \iff (A^HA + \gamma^{-1}I)x = A^Hy + \gamma^{-1}\hat x_0`;
  3. re-noising with DDS's η (not DDIM's): :math:`x_{t'} = \sqrt{\bar\alpha_{t'}}\,\tilde x_0 +
     \sqrt{1-\bar\alpha_{t'}}\,(\eta z + \sqrt{1-\eta^2}\,\hat\varepsilon)`, :math:`z \sim N(0, I)`.
     With a diffusers scheduler instead: :math:`\tilde\varepsilon = (x_t - \sqrt{\bar\alpha_t}\tilde x_0)/\sqrt{1-\bar\alpha_t}`
     and :math:`x_{t'} =` ``scheduler.step(ε̃, t, x_t).prev_sample`` (e.g. DEIS) on the scheduler's grid
     (fractional times: :math:`\bar\alpha(t)` by piecewise-linear :math:`\log\bar\alpha`, `abar_at`).

  A complex unknown through a 1-channel model uses a fixed ``phase`` (module `sciml.diffusion.prior`);
  with ``phase_refresh`` = σ the phase is re-estimated after step 2 in each of the second half of the
  steps (before them the estimate is mostly prior noise) as that of the data-consistent :math:`\tilde x_0`
  smoothed by a Gaussian of σ pixels (the given phase kept where the image is dark,
  `sciml.operators.mri.smoothed_phase`): the data's full k-space sharpens a calibration phase, while the
  smoothing keeps the phase constraint (not in the DDS paper, whose MRI prior is 2-channel).

  Volumes `(Z, H, W)` with ``tv_z`` = λ: step 2 is one ADMM step of :math:`\lambda\|D_z x\|_1` (DiffusionMBIR):
  :math:`x = \mathrm{CG}_M(A^HA + \rho D_z^TD_z,\ A^Hy + \rho D_z^T(z-u))` from :math:`\hat x_0`,
  :math:`z = \mathrm{shrink}(D_zx + u, \lambda/\rho)`, :math:`u \mathrel{+}= D_zx - z` (z, u persist
  across steps; noisy problems add the :math:`\gamma^{-1}(x - \hat x_0)` term). The result is the last
  :math:`\tilde x_0`.
* ``"deis"`` -- the same data consistency on DEIS steps (Zhang & Chen, ICLR 2023): ``"dds"`` with a
  `sciml.diffusion.DEISScheduler` (tAB/ρAB/ρRK, `ab_order`, `time_spacing`) built on the model's schedule.
* ``"ddim"`` -- unconditional DDIM (Song et al. 2021; DDIM's own η: :math:`\sigma = \eta
  \sqrt{(1-\bar\alpha_{t'})/(1-\bar\alpha_t)}\sqrt{1-\bar\alpha_t/\bar\alpha_{t'}}`), then the same data
  consistency once on the final :math:`\hat x_0` (a baseline).
* ``"dps"`` -- Diffusion Posterior Sampling (Chung et al., ICLR 2023): a DDIM step from
  :math:`(\hat x_0, \hat\varepsilon)` followed by :math:`x_{t'} \mathrel{-}= \zeta\,\nabla_{x_t}\|y - A\hat x_0(x_t)\|`
  (the paper's :math:`\zeta_i = \zeta/\|y - A\hat x_0\|` on :math:`\nabla\tfrac12\|y-A\hat x_0\|^2`), with
  autograd through the model; one NFE per step.

Every solver returns a `Solution` with `x` the estimate in the problem's shape and dtype,
`residuals` the per-step relative data residual :math:`\|A\tilde x_0 - y\|/\|y\|` `(NFE, *batch)`,
`stats` (`status` SUCCESS, or NONFINITE for a system whose iterate became NaN/Inf; `iterations` = NFE),
and `info` (`nfe`, `wall_time`, `relative_residual`, `reason`). With ``num_samples`` = n every solver draws
n samples per system in one batch and returns their mean (a Monte-Carlo estimate of the posterior mean
the sampler targets) with ``info["std"]``, the per-pixel standard deviation (an uncertainty map), and
``info["samples"]``. The loops do no host synchronisation
besides the CG kernel's own and the optional progress bar; NaN/Inf is detected per system on the device
(the system's iterate is zeroed to keep the batch going) and reported at the end.
"""
from __future__ import annotations

import inspect
import math
import time
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

import torch

from ..diffusion.prior import (abar_at, eps_function, image_layout, model_channels, resolve_alphas_cumprod, resolve_data_range,
                               timestep_grid, tweedie)
from ..operators import LinearOperator
from ..operators.mri import smoothed_phase
from ..problems import InverseProblem
from ..solution import Solution
from ..status import Status
from .base import Solver, SolverOptionError, register
from .variational import data_consistency, soft_threshold

__all__ = ["DDIM", "DDS", "DEIS", "DPS"]


# --- option checks --------------------------------------------------------------------------------
def _int(solver: str, name: str, value: Any, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise SolverOptionError(f"{solver}: {name} must be an integer >= {minimum}, got {value!r}")


def _num(solver: str, name: str, value: Any, lo: float | None = None, hi: float | None = None,
         strict_lo: bool = False, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok and lo is not None:
        ok = value > lo if strict_lo else value >= lo
    if ok and hi is not None:
        ok = value <= hi
    if not ok:
        rng = f"{'(' if strict_lo else '['}{lo}, {'inf)' if hi is None else f'{hi}]'}"
        raise SolverOptionError(f"{solver}: {name} must be a number in {rng}{' or None' if allow_none else ''}, got {value!r}")


# --- small operators --------------------------------------------------------------------------------
class _DiffZ(LinearOperator):
    """Forward differences along z, `(*batch, Z, H, W) -> (*batch, Z-1, H, W)`, optionally stacked with
    `c * I` (`(*batch, 2Z-1, H, W)`) so that `rho R^H R = rho Dz^T Dz + rho c^2 I`."""

    def __init__(self, in_shape: tuple[int, int, int], c: float = 0.0):
        Z, H, W = in_shape
        super().__init__(in_shape, (Z - 1 + (Z if c else 0), H, W))
        self.c = c

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        d = x[..., 1:, :, :] - x[..., :-1, :, :]
        return torch.cat((d, self.c * x), dim=-3) if self.c else d

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        Z = self.in_shape[0]
        d = y[..., :Z - 1, :, :]
        out = torch.zeros(*y.shape[:-3], Z, *y.shape[-2:], dtype=y.dtype, device=y.device)
        out[..., 1:, :, :] += d
        out[..., :-1, :, :] -= d
        return out + self.c * y[..., Z - 1:, :, :] if self.c else out


def _cg_rtol(x: torch.Tensor) -> float:
    """The CG tolerance of the fixed-count data-consistency solves: 16 machine epsilons, i.e. "run all
    `cg_iter` steps unless the system is solved to rounding" (rtol 0 would keep iterating past
    convergence on the singular normal equations A^H A and amplify rounding errors in its null space)."""
    return 16 * torch.finfo(x.real.dtype if x.is_complex() else x.dtype).eps


def _randn(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device, gen: torch.Generator) -> torch.Tensor:
    if gen.device == torch.device(device) or (gen.device.type == torch.device(device).type == "cpu"):
        return torch.randn(shape, dtype=dtype, device=device, generator=gen)
    return torch.randn(shape, dtype=dtype, device=gen.device, generator=gen).to(device)


def _progress(iterable: Any, on: bool, desc: str) -> Any:
    if not on:
        return iterable
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm ships with the dependencies
        return iterable
    return tqdm(iterable, desc=desc, leave=False)


@dataclass
class _Setup:
    """Everything a sampler needs, resolved once from the options and the problem."""

    A: LinearOperator
    y: torch.Tensor
    Ahy: torch.Tensor
    layout: Any
    eps: Callable[[torch.Tensor, Any], torch.Tensor]
    abar: list[float]
    gen: torch.Generator
    odims: tuple[int, ...]
    ynorm: torch.Tensor
    xdims: tuple[int, ...]


def _sample_mean(sol: Solution, problem: InverseProblem, start: float) -> Solution:
    """The `Solution` of the mean of the samples `sol.x` `(n, *batch, *in_shape)` of `problem`: `x` the mean,
    `info["std"]` the per-entry standard deviation (of the magnitude of the deviations for complex
    unknowns; n - 1 in the denominator) and `info["samples"]`; `residuals` the per-step mean over the
    samples, `info["relative_residual"]` that of the mean; a system is NONFINITE if any of its samples is."""
    samples = sol.x
    x, std = samples.mean(0), samples.std(0)
    status, iterations = sol.stats["status"].amax(0), sol.stats["iterations"].amax(0)
    A, y = problem.forward, problem.y
    odims = tuple(range(-len(A.out_shape), 0))
    ynorm = torch.linalg.vector_norm(y, dim=odims).to(torch.float64)
    final = torch.linalg.vector_norm(A.apply(x) - y, dim=odims).to(torch.float64) / torch.where(ynorm > 0, ynorm, 1)
    finite = final[torch.isfinite(final)]
    residuals = sol.residuals.mean(1)
    info = {**sol.info, "num_samples": samples.shape[0], "std": std, "samples": samples, "residual_history": residuals,
            "relative_residual": float(finite.max()) if finite.numel() else math.nan,
            "wall_time": time.perf_counter() - start}
    if int(status.max()) == int(Status.NONFINITE):
        info["reason"] = (f"NaN or Inf in some samples of {int((status == int(Status.NONFINITE)).sum())} of "
                          f"{status.numel()} systems (their x is NaN); lower the step size or check the model")
    return Solution(x, residuals, {"status": status, "iterations": iterations}, info)


# --- shared base --------------------------------------------------------------------------------
@dataclass
class _Diffusion(Solver):
    """Options every diffusion sampler shares (see the module docstring)."""

    accepts: ClassVar[tuple[type, ...]] = (InverseProblem,)

    model: Any = None
    num_inference_steps: int = 50
    data_range: tuple[float, float] | None = None
    alphas_cumprod: Any = None
    phase: torch.Tensor | None = None
    seed: int | None = 0
    generator: torch.Generator | None = None
    batch_size: int | None = None
    progress: bool = False
    num_samples: int = 1

    def __post_init__(self) -> None:
        n = self.name
        _int(n, "num_samples", self.num_samples, 1)
        if self.model is None:
            raise SolverOptionError(f"{n}: option 'model' is required (an ε-model model(x, t), e.g. a diffusers UNet2DModel)")
        if not callable(self.model):
            raise SolverOptionError(f"{n}: model must be callable as model(x, t), got {type(self.model).__name__}")
        _int(n, "num_inference_steps", self.num_inference_steps, 1)
        try:
            resolve_data_range(self.data_range)
            if self.alphas_cumprod is not None:
                resolve_alphas_cumprod(self.alphas_cumprod)
        except ValueError as e:
            raise SolverOptionError(f"{n}: {e}") from None
        if self.phase is not None and not isinstance(self.phase, torch.Tensor):
            raise SolverOptionError(f"{n}: phase must be a torch.Tensor (angles or unit complex numbers), got {type(self.phase).__name__}")
        if self.seed is not None and (not isinstance(self.seed, int) or isinstance(self.seed, bool)):
            raise SolverOptionError(f"{n}: seed must be an integer or None, got {self.seed!r}")
        if self.generator is not None and not isinstance(self.generator, torch.Generator):
            raise SolverOptionError(f"{n}: generator must be a torch.Generator or None, got {type(self.generator).__name__}")
        if self.batch_size is not None:
            _int(n, "batch_size", self.batch_size, 1)
        if not isinstance(self.progress, bool):
            raise SolverOptionError(f"{n}: progress must be True or False, got {self.progress!r}")

    def solve(self, problem: InverseProblem) -> Solution:
        """One sample per system, or with `num_samples` = n the mean of n samples (a Monte-Carlo estimate of
        the posterior mean the sampler targets) and their per-pixel standard deviation (`info["std"]`)."""
        n = self.num_samples
        if n == 1:
            return self._sample(problem)
        start = time.perf_counter()
        y = problem.y
        sol = self._sample(InverseProblem(problem.forward, y.expand(n, *y.shape).contiguous(), noise_std=problem.noise_std))
        return _sample_mean(sol, problem, start)

    def _sample(self, problem: InverseProblem) -> Solution:
        raise NotImplementedError

    # --- setup --------------------------------------------------------------------------------
    def _setup(self, problem: InverseProblem, scheduler: Any = None) -> _Setup:
        n = self.name
        A, y = problem.forward, problem.y
        Ahy = A.adjoint(y)
        try:
            abar = resolve_alphas_cumprod(self.alphas_cumprod, self.model, scheduler)
            data_range = resolve_data_range(self.data_range, self.model)
            layout = image_layout(A.in_shape, problem.batch_shape, Ahy.dtype, channels=model_channels(self.model),
                                  phase=self.phase, data_range=data_range, device=Ahy.device)
        except ValueError as e:
            raise SolverOptionError(f"{n}: {e}") from None
        T = abar.numel()
        if self.num_inference_steps > T:
            raise SolverOptionError(f"{n}: num_inference_steps must be <= the number of training timesteps T={T}, "
                                    f"got {self.num_inference_steps}")
        if self.generator is not None:
            gen = self.generator
        else:
            gen = torch.Generator(device=Ahy.device)  # noise drawn where it is used: no host-to-device copies
            if self.seed is None:
                gen.seed()
            else:
                gen.manual_seed(self.seed)
        odims = tuple(range(-len(A.out_shape), 0))
        ynorm = torch.linalg.vector_norm(y, dim=odims).to(torch.float64)
        xdims = tuple(range(-len(A.in_shape), 0))
        return _Setup(A, y, Ahy, layout, eps_function(self.model, self.batch_size), abar.tolist(), gen, odims,
                      torch.where(ynorm > 0, ynorm, 1), xdims)

    def _residual(self, S: _Setup, x: torch.Tensor) -> torch.Tensor:
        """||A x - y|| / ||y|| per system, `(*batch,)` float64 (on the device, no sync)."""
        return torch.linalg.vector_norm(S.A.apply(x) - S.y, dim=S.odims).to(torch.float64) / S.ynorm

    def _finite(self, S: _Setup, x: torch.Tensor, bad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Flag systems of `x` `(*batch, *in_shape)` with NaN/Inf in `bad` and zero them."""
        nonfinite = ~torch.isfinite(x).reshape(*x.shape[:x.ndim - len(S.xdims)], -1).all(-1)
        bad = bad | nonfinite
        mask = bad.reshape(bad.shape + (1,) * len(S.xdims))
        return torch.where(mask, torch.zeros((), dtype=x.dtype, device=x.device), x), bad

    def _solution(self, S: _Setup, x: torch.Tensor, bad: torch.Tensor, history: list[torch.Tensor], nfe: int,
                  start: float, extra: dict[str, Any] | None = None) -> Solution:
        mask = bad.reshape(bad.shape + (1,) * len(S.xdims))
        x = torch.where(mask, torch.full((), math.nan, dtype=x.dtype, device=x.device), x)
        res = torch.stack(history) if history else torch.zeros((0, *bad.shape), dtype=torch.float64)
        status = torch.where(bad, int(Status.NONFINITE), int(Status.SUCCESS)).to(torch.int64)
        iterations = torch.full(bad.shape, nfe, dtype=torch.int64, device=bad.device)
        worst = Status(int(status.max())) if status.numel() else Status.SUCCESS
        final = res[-1] if len(res) else torch.zeros(bad.shape, dtype=torch.float64)
        finite = final[torch.isfinite(final)]
        reason = (f"completed {nfe} model evaluations" if worst == Status.SUCCESS else
                  f"NaN or Inf in the sampler's iterate for {int(bad.sum())} of {bad.numel()} systems "
                  "(their x is NaN); lower the step size or check the model")
        info = {"reason": reason, "nfe": nfe, "wall_time": time.perf_counter() - start,
                "relative_residual": float(finite.max()) if finite.numel() else math.nan, "residual_history": res,
                **(extra or {})}
        return Solution(x, res, {"status": status, "iterations": iterations}, info)

    def _grid(self, S: _Setup, start: float = 1.0) -> list[tuple[int, float, float]]:
        """`(t, abar_t, abar_next)` per step on the leading grid over the first `start` fraction of the
        training timesteps (abar after the last step is 1)."""
        T = max(self.num_inference_steps, int(round(start * len(S.abar))))
        ts = timestep_grid(self.num_inference_steps, T)
        return [(t, S.abar[t], S.abar[ts[i + 1]] if i + 1 < len(ts) else 1.0) for i, t in enumerate(ts)]


@dataclass
class _DataConsistent(_Diffusion):
    """Adds the CG data-consistency options (`cg_iter`, `gamma`)."""

    cg_iter: int = 5
    gamma: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        _int(self.name, "cg_iter", self.cg_iter, 0)
        _num(self.name, "gamma", self.gamma, lo=0, strict_lo=True, allow_none=True)

    def _gamma(self, problem: InverseProblem) -> float | None:
        """γ of the proximal branch, or None for the noiseless normal equations."""
        if self.gamma is not None:
            return float(self.gamma)
        return 1.0 if problem.noise_std else None

    def _dc(self, S: _Setup, x0: torch.Tensor, gamma: float | None, iters: int) -> torch.Tensor:
        """`iters` CG steps (a fixed count, see `_cg_rtol`) from `x0` on the noiseless or proximal system."""
        if iters == 0:
            return x0
        opts = {"rtol": _cg_rtol(x0), "maxiter": iters, "check_every": iters + 1}
        if gamma is None:
            return data_consistency(S.A, S.y, None, 0.0, x0=x0, cg_options=opts, Ahy=S.Ahy)
        return data_consistency(S.A, S.y, x0, 1.0 / gamma, x0=x0, cg_options=opts, Ahy=S.Ahy)


# --- DDS --------------------------------------------------------------------------------------------
@register
@dataclass
class DDS(_DataConsistent):
    r"""Decomposed Diffusion Sampler: Tweedie, M CG steps of data consistency from it, DDS re-noising.

    Options: `model` (required; ε-model, see `sciml.diffusion.prior`), `num_inference_steps` = NFE (50),
    `eta` (DDS's η in [0, 1], 0.85), `cg_iter` (M >= 0, 5), `gamma` (None: noiseless normal equations
    when `noise_std` is None/0, else the proximal step with γ = 1; a number forces the proximal step),
    `data_range` (lo, hi), `alphas_cumprod` (tensor or a beta-schedule name), `phase` (for a complex
    unknown with a 1-channel model), `phase_refresh` (σ in pixels: over the second half of the steps,
    re-estimate that phase from each data-consistent estimate smoothed over σ; None: keep `phase`),
    `scheduler` (a diffusers scheduler; None: DDS's own update),
    `tv_z` (λ of TV along z for volumes; None: off), `rho` (ADMM penalty, 10), `start` (1: sample from pure
    noise; s < 1: start at timestep s·T from `x_init` diffused to that noise level -- a warm start in the
    manner of SDEdit/CCDF, not in the DDS paper; `x_init` defaults to 4·`cg_iter` CG steps on the normal
    equations from zero), `seed` (0), `generator`, `batch_size` (model chunk), `progress` (tqdm bar),
    `num_samples` (1; n: x is the mean of n samples, `info["std"]` their per-pixel spread).

    Example (a mask on 16x16 images; `model` any ε-model, e.g. a diffusers ``UNet2DModel``)::

        >>> import sciml
        >>> mask = (torch.rand(16, 16) < 0.3).double()
        >>> A = sciml.operators.FunctionOperator(lambda x: x * mask, lambda y: y * mask, in_shape=(16, 16))
        >>> prob = sciml.InverseProblem(A, A.apply(torch.rand(4, 16, 16, dtype=torch.float64)))
        >>> sol = sciml.solve(prob, "dds", model=lambda x, t: torch.zeros_like(x), num_inference_steps=10)
        >>> sol.x.shape, sol.iterations, sol.residual < 1e-12
        (torch.Size([4, 16, 16]), 10, True)
    """

    name: ClassVar[str] = "dds"

    eta: float = 0.85
    scheduler: Any = None
    tv_z: float | None = None
    rho: float = 10.0
    start: float = 1.0
    x_init: torch.Tensor | None = None
    phase_refresh: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        _num(self.name, "eta", self.eta, lo=0, hi=1)
        _num(self.name, "phase_refresh", self.phase_refresh, lo=0, strict_lo=True, allow_none=True)
        if self.phase_refresh is not None and self.phase is None:
            raise SolverOptionError(f"{self.name}: phase_refresh re-estimates option 'phase' (a complex unknown with a "
                                    "1-channel model); set phase, or drop phase_refresh")
        _num(self.name, "tv_z", self.tv_z, lo=0, allow_none=True)
        _num(self.name, "rho", self.rho, lo=0, strict_lo=True)
        _num(self.name, "start", self.start, lo=0, hi=1, strict_lo=True)
        if self.x_init is not None and not isinstance(self.x_init, torch.Tensor):
            raise SolverOptionError(f"{self.name}: x_init must be a torch.Tensor shaped like the unknown, "
                                    f"got {type(self.x_init).__name__}")
        if self.scheduler is not None and self.start != 1.0:
            raise SolverOptionError(f"{self.name}: start < 1 is for DDS's own update; the scheduler sets its own grid")
        if self.scheduler is not None and not all(callable(getattr(self.scheduler, m, None)) for m in ("set_timesteps", "step")):
            raise SolverOptionError(f"{self.name}: scheduler must be a diffusers-style scheduler with set_timesteps() and "
                                    f"step(), got {type(self.scheduler).__name__}")

    def _sample(self, problem: InverseProblem) -> Solution:
        start = time.perf_counter()
        sch = self._scheduler()
        S = self._setup(problem, sch)
        L = S.layout
        if self.tv_z is not None and not L.is_volume:
            raise SolverOptionError(f"{self.name}: tv_z is for volumes (Z, H, W); the unknown has shape {L.in_shape}")
        if self.tv_z is not None and L.in_shape[0] < 2:
            raise SolverOptionError(f"{self.name}: tv_z needs at least 2 slices, the volume has Z={L.in_shape[0]}")
        gamma = self._gamma(problem)
        rot0 = L.rot  # the given phase (set whenever phase_refresh is: __post_init__ and image_layout check)
        steps, step_fn = self._steps(S, sch)
        x = _randn(L.model_shape, L.real_dtype, S.Ahy.device, S.gen) * float(getattr(sch, "init_noise_sigma", 1.0))
        if self.start < 1.0:  # warm start: the initial estimate diffused to the first step's noise level
            init = self.x_init if self.x_init is not None else self._dc(S, torch.zeros_like(S.Ahy), None, 4 * self.cg_iter)
            try:
                init = L.to_model(init.to(S.Ahy.dtype).to(S.Ahy.device).expand_as(S.Ahy))
            except RuntimeError:
                raise SolverOptionError(f"{self.name}: x_init of shape {tuple(self.x_init.shape)} does not match the "
                                        f"unknown {tuple(S.Ahy.shape)}") from None
            a0 = steps[0][1]
            x = math.sqrt(a0) * init + math.sqrt(1 - a0) * x
        bad = torch.zeros(problem.batch_shape, dtype=torch.bool, device=S.Ahy.device)
        tv = self._tv_state(S) if self.tv_z is not None else None
        history: list[torch.Tensor] = []
        x0p = S.Ahy
        with torch.no_grad():
            for i, (t, a, a_next) in enumerate(_progress(steps, self.progress, self.name)):
                eps = S.eps(x, t)
                x0p, bad = self._finite(S, L.from_model(tweedie(x, eps, a)), bad)
                x0p = self._dc(S, x0p, gamma, self.cg_iter) if tv is None else self._admm_tv(S, x0p, gamma, tv)
                if self.phase_refresh is not None and i >= len(steps) // 2:
                    L.rot = smoothed_phase(x0p, self.phase_refresh, rot0)
                history.append(self._residual(S, x0p))
                x0 = L.to_model(x0p)
                x = step_fn(x, x0, eps, t, a, a_next)
        return self._solution(S, x0p, bad, history, len(steps), start, {"gamma": gamma})

    def _scheduler(self) -> Any:
        """The diffusers-style scheduler the steps follow (None: DDS's own update)."""
        return self.scheduler

    def _steps(self, S: _Setup, sch: Any) -> tuple[list[tuple[int, float, float]], Callable]:
        """The step list and the update `(x_t, x0_refined, eps, t, abar, abar_next) -> x_next`."""
        if sch is None:
            eta = self.eta

            def dds_update(x, x0, eps, t, a, a_next):
                if a_next >= 1.0:
                    return x0
                z = _randn(x.shape, x.dtype, x.device, S.gen)
                return math.sqrt(a_next) * x0 + math.sqrt(1 - a_next) * (eta * z + math.sqrt(1 - eta * eta) * eps)

            return self._grid(S, self.start), dds_update

        sch_ac = getattr(sch, "alphas_cumprod", None)
        if sch_ac is not None:
            sch_ac = torch.as_tensor(sch_ac).detach().to("cpu", torch.float64)
            ours = torch.tensor(S.abar, dtype=torch.float64)
            if sch_ac.shape != ours.shape or float((sch_ac - ours).abs().max()) > 1e-5:
                raise SolverOptionError(f"{self.name}: the scheduler's alphas_cumprod ({tuple(sch_ac.shape)}) differs from "
                                        "the model's schedule; build the scheduler with the same betas")
        sch.set_timesteps(self.num_inference_steps)
        ts = torch.as_tensor(sch.timesteps).reshape(-1).tolist()  # ints, or floats for fractional grids
        if not ts or max(ts) > len(S.abar) - 1 or min(ts) < -1:
            raise SolverOptionError(f"{self.name}: the scheduler's timesteps {ts[:3]}... are outside [-1, T-1={len(S.abar) - 1}]")
        params = inspect.signature(sch.step).parameters
        kwargs = {"generator": S.gen} if "generator" in params and S.gen.device.type == S.Ahy.device.type else {}
        scale = getattr(sch, "scale_model_input", None)

        def scheduler_update(x, x0, eps, t, a, a_next):
            eps_tilde = (x - math.sqrt(a) * x0) / math.sqrt(1 - a)
            return sch.step(eps_tilde, t, x, return_dict=True, **kwargs).prev_sample.to(x.dtype)

        steps = [(t, abar_at(S.abar, t), math.nan) for t in ts]
        if callable(scale):
            # scale_model_input is the identity for VP schedulers (DDIM, DEIS, DPM-Solver); keep the call for others
            base = S.eps
            S.eps = lambda x, t: base(scale(x, t), t)  # noqa: E731
        return steps, scheduler_update

    # --- volumes: one ADMM step of TV along z ---------------------------------------------------
    def _tv_state(self, S: _Setup) -> dict[str, torch.Tensor]:
        Z, H, W = S.layout.in_shape
        z = torch.zeros(*S.layout.batch_shape, Z - 1, H, W, dtype=S.Ahy.dtype, device=S.Ahy.device)
        return {"z": z, "u": torch.zeros_like(z)}

    def _admm_tv(self, S: _Setup, x0: torch.Tensor, gamma: float | None, st: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.cg_iter == 0:
            return x0
        rho, lam = float(self.rho), float(self.tv_z)
        opts = {"rtol": _cg_rtol(x0), "maxiter": self.cg_iter, "check_every": self.cg_iter + 1}
        Dz = _DiffZ(S.layout.in_shape)
        if gamma is None:
            x = data_consistency(S.A, S.y, st["z"] - st["u"], rho, x0=x0, cg_options=opts, Ahy=S.Ahy, R=Dz)
        else:
            c = math.sqrt(1.0 / (gamma * rho))
            R = _DiffZ(S.layout.in_shape, c)
            x = data_consistency(S.A, S.y, torch.cat((st["z"] - st["u"], c * x0), dim=-3), rho, x0=x0,
                                 cg_options=opts, Ahy=S.Ahy, R=R)
        d = Dz.apply(x)
        st["z"] = soft_threshold(d + st["u"], lam / rho)
        st["u"] = st["u"] + d - st["z"]
        return x


# --- DDIM baseline -----------------------------------------------------------------------------------
@register
@dataclass
class DEIS(DDS):
    r"""DDS data consistency on DEIS steps: Tweedie, `cg_iter` CG steps, then a DEIS exponential-integrator
    step (`sciml.diffusion.DEISScheduler`) on :math:`\tilde\varepsilon` of the refined estimate.

    Options: as `dds` (its `eta` and `scheduler` are not used: the update is the deterministic DEIS
    step), plus `method` ("tab" | "rhoab" | "rhork"), `ab_order` (0-3; 0 = DDIM) and `time_spacing`
    ("quadratic" | "uniform" | "logrho" | "edm"), the scheduler's keys of the same names. The
    scheduler is built on the model's own schedule (betas recovered from its `alphas_cumprod`).
    """

    name: ClassVar[str] = "deis"

    method: str = "tab"
    ab_order: int = 3
    time_spacing: str = "quadratic"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.scheduler is not None:
            raise SolverOptionError(f"{self.name}: builds its own DEIS scheduler; use solver 'dds' with scheduler= for others")
        if self.start != 1.0:
            raise SolverOptionError(f"{self.name}: start < 1 is for DDS's own update; the DEIS scheduler sets its own grid")
        try:
            self._make_scheduler(torch.tensor([0.999, 0.99], dtype=torch.float64))  # validates the DEIS keys
        except ValueError as e:
            raise SolverOptionError(f"{self.name}: {e}") from None

    def _make_scheduler(self, abar: torch.Tensor) -> Any:
        from ..diffusion.deis import DEISScheduler

        previous = torch.cat([abar.new_ones(1), abar[:-1]])
        betas = (1 - abar / previous).tolist()
        return DEISScheduler(num_train_timesteps=len(betas), trained_betas=betas, method=self.method,
                             ab_order=self.ab_order, time_spacing=self.time_spacing)

    def _scheduler(self) -> Any:
        try:
            abar = resolve_alphas_cumprod(self.alphas_cumprod, self.model, None)
        except ValueError as e:
            raise SolverOptionError(f"{self.name}: {e}") from None
        return self._make_scheduler(abar)


def _ddim_update(x0: torch.Tensor, eps: torch.Tensor, a: float, a_next: float, eta: float,
                 gen: torch.Generator) -> torch.Tensor:
    r"""DDIM: :math:`\sqrt{\bar\alpha'}\hat x_0 + \sqrt{1-\bar\alpha'-\sigma^2}\hat\varepsilon + \sigma z`."""
    if a_next >= 1.0:
        return x0
    sigma = eta * math.sqrt((1 - a_next) / (1 - a)) * math.sqrt(max(1 - a / a_next, 0.0))
    out = math.sqrt(a_next) * x0 + math.sqrt(max(1 - a_next - sigma * sigma, 0.0)) * eps
    if sigma > 0:
        out = out + sigma * _randn(x0.shape, x0.dtype, x0.device, gen)
    return out


@register
@dataclass
class DDIM(_DataConsistent):
    r"""Unconditional DDIM sampling from the prior, then data consistency once on the result (baseline).

    Options: as `dds` (no `scheduler`, `tv_z`, `rho`), with `eta` DDIM's own η (0: deterministic) and
    `cg_iter` (20) the CG steps of the final data-consistency solve. `residuals` row i is the data
    residual of the step's Tweedie estimate; the last row is after the data-consistency solve.
    """

    name: ClassVar[str] = "ddim"

    eta: float = 0.0
    cg_iter: int = 20

    def __post_init__(self) -> None:
        super().__post_init__()
        _num(self.name, "eta", self.eta, lo=0, hi=1)

    def _sample(self, problem: InverseProblem) -> Solution:
        start = time.perf_counter()
        S = self._setup(problem)
        L = S.layout
        gamma = self._gamma(problem)
        steps = self._grid(S)
        x = _randn(L.model_shape, L.real_dtype, S.Ahy.device, S.gen)
        bad = torch.zeros(problem.batch_shape, dtype=torch.bool, device=S.Ahy.device)
        history: list[torch.Tensor] = []
        with torch.no_grad():
            for i, (t, a, a_next) in enumerate(_progress(steps, self.progress, self.name)):
                eps = S.eps(x, t)
                x0 = tweedie(x, eps, a)
                x0p, bad = self._finite(S, L.from_model(x0), bad)
                if i + 1 == len(steps):
                    x0p = self._dc(S, x0p, gamma, self.cg_iter)
                history.append(self._residual(S, x0p))
                x = _ddim_update(L.to_model(x0p), eps, a, a_next, self.eta, S.gen)
        return self._solution(S, x0p, bad, history, len(steps), start, {"gamma": gamma})


# --- DPS baseline -------------------------------------------------------------------------------------
@register
@dataclass
class DPS(_Diffusion):
    r"""Diffusion Posterior Sampling: a DDIM step, then :math:`x \mathrel{-}= \zeta\nabla_{x_t}\|y - A\hat x_0(x_t)\|`.

    Options: `model` (required), `num_inference_steps` (1000; = NFE), `step_size` ζ (1.0; in the
    model's data space), `eta` (DDIM's η, 1.0: DDPM-like ancestral noise), `data_range`,
    `alphas_cumprod`, `phase`, `seed`, `generator`, `batch_size`, `progress`, `num_samples`. Needs a differentiable
    model and operator (autograd through both).
    """

    name: ClassVar[str] = "dps"

    num_inference_steps: int = 1000
    step_size: float = 1.0
    eta: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        _num(self.name, "step_size", self.step_size, lo=0)
        _num(self.name, "eta", self.eta, lo=0, hi=1)

    def _sample(self, problem: InverseProblem) -> Solution:
        start = time.perf_counter()
        S = self._setup(problem)
        L = S.layout
        steps = self._grid(S)
        x = _randn(L.model_shape, L.real_dtype, S.Ahy.device, S.gen)
        bad = torch.zeros(problem.batch_shape, dtype=torch.bool, device=S.Ahy.device)
        history: list[torch.Tensor] = []
        zeta = float(self.step_size)
        for t, a, a_next in _progress(steps, self.progress, self.name):
            x = x.detach().requires_grad_(True)
            with torch.enable_grad():
                eps = S.eps(x, t)
                x0 = tweedie(x, eps, a)
                r = torch.linalg.vector_norm(S.A.apply(L.from_model(x0)) - S.y, dim=S.odims)
                (grad,) = torch.autograd.grad(r.sum(), x)
            with torch.no_grad():
                history.append(r.detach().to(torch.float64) / S.ynorm)
                x = _ddim_update(x0.detach(), eps.detach(), a, a_next, self.eta, S.gen) - zeta * grad
                xp, bad = self._finite(S, L.from_model(x), bad)
                x = L.to_model(xp)
        with torch.no_grad():
            history.append(self._residual(S, xp))
        return self._solution(S, xp, bad, history, len(steps), start)
