r"""Variational and plug-and-play (PnP) solvers for inverse problems `y = A x + noise`.

Shared pieces:

* `data_consistency(A, y, z, rho, x0, cg_options)`: the x-update of ADMM/HQS and DDS,
  :math:`(A^H A + \rho I) x = A^H y + \rho z` (:math:`\rho = 0`: :math:`A^H A x = A^H y`; optional
  :math:`\rho R^H R` in place of :math:`\rho I`), by warm-started batched CG.
* `soft_threshold(x, t)`: the exact prox of :math:`t\|x\|_1` (complex soft-threshold for complex `x`).
* `magnitude_prox(prox)`: :math:`p \mapsto \mathrm{prox}(|p|)\, e^{i\angle p}` -- a real-valued
  prox/denoiser applied to the magnitude with the phase kept (Oral & Oktem, TCI 2024).
* `power_norm2(A, like)`: an estimate of :math:`\|A\|^2 = \lambda_{\max}(A^H A)` by power iteration.

Solvers (all accept an `InverseProblem` only):

* ``"tv"``: :math:`\min_x \tfrac12\|Ax-y\|^2 + \lambda\,\mathrm{TV}(x)` (isotropic TV, 2-D images,
  real or complex) by PDHG (Chambolle & Pock 2011) with :math:`K = [A; \nabla]`, :math:`\|K\|^2 \le \|A\|^2 + 8`.
* ``"pnp-admm"``: scaled-dual ADMM, order x, z, u:
  :math:`x \leftarrow (A^HA+\rho I)^{-1}(A^Hy + \rho(z-u))`, :math:`z \leftarrow D(x+u, \sigma)`,
  :math:`u \leftarrow u + x - z`. With :math:`D = \mathrm{prox}_{(\lambda/\rho) R}` this is exact ADMM for
  :math:`\tfrac12\|Ax-y\|^2 + \lambda R(x)`. With ``epsilon`` set, the constrained C-SALSA variant
  :math:`\min R(x)` s.t. :math:`\|Ax-y\|\le\varepsilon` (splitting :math:`v_1 = x`, :math:`v_2 = Ax`):
  :math:`x \leftarrow (A^HA + \rho I)^{-1}(A^H(v_2-u_2) + \rho(v_1-u_1))`, :math:`v_1 \leftarrow D(x+u_1,\sigma)`,
  :math:`v_2 \leftarrow y + P_{\varepsilon}(Ax+u_2-y)` (projection onto the ball), :math:`u_1 \mathrel{+}= x - v_1`,
  :math:`u_2 \mathrel{+}= Ax - v_2`; here ``rho`` is the ratio :math:`\kappa` of the two penalties and
  :math:`D = \mathrm{prox}_{R/\rho_1}` (its strength ``sigma`` is the scale :math:`1/\rho_1`).
* ``"pnp-hqs"``: half-quadratic splitting, :math:`x \leftarrow (A^HA+\rho I)^{-1}(A^Hy+\rho z)`,
  :math:`z \leftarrow D(x, \sigma)`. With a fixed :math:`\rho` and :math:`D = \mathrm{prox}_{(\lambda/\rho)R}`
  it minimises :math:`\tfrac12\|Ax-y\|^2 + \lambda R(z) + \tfrac\rho2\|x-z\|^2` (alternating minimisation),
  which is *not* the plain regularised least-squares problem (it is in the limit :math:`\rho\to\infty`).
* ``"pnp-pgd"``: :math:`x \leftarrow D(x - \eta A^H(Ax-y), \sigma)`, :math:`\eta` = ``step`` (default
  :math:`1/\|A\|^2`). With :math:`D = \mathrm{prox}_{\eta\lambda R}` this is ISTA.

The returned `Solution` holds the denoiser output (`z`/`v1` for ADMM and HQS, `x` for PGD),
`residuals` is the per-iteration relative change :math:`\|x_k - x_{k-1}\|/\|x_{k-1}\|` (for ADMM the
max of the relative change of `z` and the relative primal residual :math:`\|x-z\|/\|z\|`), and a system
has converged (`Status.SUCCESS`) when that is below `rtol`; converged systems of a batch stop changing.
"""
from __future__ import annotations

import inspect
import math
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

import torch

from ..linalg import cg
from ..operators import IdentityOperator, LinearOperator
from ..problems import InverseProblem
from ..solution import Solution
from ..status import Status
from .base import Solver, SolverOptionError, register, solve

__all__ = ["TV", "PnPADMM", "PnPHQS", "PnPPGD", "data_consistency", "tv_denoiser", "grad2d", "grad2d_adjoint", "magnitude_prox",
           "power_norm2", "soft_threshold", "tv_norm"]


# --- shared pieces -----------------------------------------------------------------------------
def data_consistency(A: LinearOperator, y: torch.Tensor, z: torch.Tensor | None, rho: float,
                     x0: torch.Tensor | None = None, cg_options: dict[str, Any] | None = None,
                     *, Ahy: torch.Tensor | None = None, R: LinearOperator | None = None) -> torch.Tensor:
    r"""Solve :math:`(A^H A + \rho R^H R)\,x = A^H y + \rho R^H z` by CG warm-started at `x0` (batched).

    With `R = None` (the identity) this is the proximal step :math:`(A^H A + \rho I)x = A^H y + \rho z`
    of ADMM/HQS; with :math:`\rho = 0` it is the plain normal equations :math:`A^H A x = A^H y` (DDS's
    noiseless step: a few CG iterations from `x0` stay in :math:`x_0 + \mathcal K(A^HA, A^Hy - A^HAx_0)`).

    Args:
        A: forward operator; y: measurements `(*batch, *out_shape)`; z: `(*batch, *in_shape)` (or
            `(*batch, *R.out_shape)`; unused and may be None when `rho == 0`).
        rho: penalty >= 0. x0: initial guess (default `z`, or :math:`A^H y` when `rho == 0`).
        cg_options: keywords for `sciml.linalg.cg` (`rtol`, `maxiter`, ...; default rtol 1e-6, maxiter 50).
        Ahy: precomputed :math:`A^H y` (optional). R: regularisation operator (default the identity),
            e.g. finite differences along one axis for ADMM-TV.
    """
    try:
        rho = float(rho)
    except (TypeError, ValueError):
        raise ValueError(f"rho must be a finite number >= 0, got {rho!r}") from None
    if not (math.isfinite(rho) and rho >= 0):
        raise ValueError(f"rho must be a finite number >= 0, got {rho!r}")
    Ahy = A.adjoint(y) if Ahy is None else Ahy
    if rho == 0:
        op, b = A.normal(), Ahy
        start = Ahy if x0 is None else x0
    else:
        if z is None:
            raise ValueError("data_consistency: z is required when rho > 0")
        if R is None:
            b = Ahy + rho * z
            op = A.normal() + rho * IdentityOperator(A.in_shape, dtype=A.dtype, device=A.device)
        else:
            b = Ahy + rho * R.adjoint(z)
            op = A.normal() + rho * R.normal()
        start = (z if R is None else Ahy) if x0 is None else x0
    opts = {"rtol": 1e-6, "maxiter": 50, **(cg_options or {})}
    return cg(op, b, x0=start, **opts).x


def soft_threshold(x: torch.Tensor, t: float | torch.Tensor) -> torch.Tensor:
    r"""Prox of :math:`t\|x\|_1`: :math:`\mathrm{sign}(x)\max(|x|-t, 0)`; for complex `x` the complex
    soft-threshold :math:`x \max(1 - t/|x|, 0)`."""
    if x.is_complex():
        m = x.abs()
        return x * torch.clamp(1 - t / torch.where(m > 0, m, 1), min=0) * (m > 0)
    return torch.sign(x) * torch.clamp(x.abs() - t, min=0)


def magnitude_prox(prox: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    r"""Turn a real-valued prox/denoiser into one acting on the magnitude, keeping the phase:
    :math:`p \mapsto \mathrm{prox}(|p|, \dots)\, e^{i\angle p}` (extra arguments are passed on).

    For a real input the "phase" is its sign (+1 at 0); for real nonnegative inputs this is `prox`.
    """

    def wrapped(p: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        m = p.abs()
        d = prox(m, *args, **kwargs)
        if p.is_complex():
            return torch.polar(d.to(m.dtype), p.angle())
        return d * torch.where(p < 0, -1.0, 1.0).to(d.dtype)

    wrapped.__wrapped__ = prox  # type: ignore[attr-defined]
    return wrapped


def tv_denoiser(lam: float, maxiter: int = 50) -> Callable[[torch.Tensor], torch.Tensor]:
    """The prox of `lam * TV` as a denoiser `D(z)` for the PnP solvers: TV denoising of `z` `(*batch, H, W)`
    (real or complex) by this module's `tv` solver on the identity, `maxiter` PDHG steps."""
    def denoise(z: torch.Tensor) -> torch.Tensor:
        eye = IdentityOperator(z.shape[-2:], dtype=z.dtype, device=z.device)
        return solve(InverseProblem(eye, z), "tv", lam=lam, maxiter=maxiter).x

    return denoise


def power_norm2(A: LinearOperator, like: torch.Tensor, iters: int = 50, seed: int = 0) -> float:
    r"""Estimate :math:`\|A\|^2 = \lambda_{\max}(A^H A)` by `iters` power iterations from a random start
    shaped/typed like one unknown (`like`: `(*batch, *in_shape)`, only its dtype/device are used)."""
    g = torch.Generator(device="cpu").manual_seed(seed)
    v = torch.randn(A.in_shape, generator=g, dtype=like.real.dtype).to(like.device)
    if like.is_complex():
        v = torch.complex(v, torch.randn(A.in_shape, generator=g, dtype=like.real.dtype).to(like.device))
    v = v / torch.linalg.vector_norm(v)
    lam = 0.0
    for _ in range(iters):
        w = A.adjoint(A.apply(v))
        lam = float(torch.linalg.vector_norm(w))
        if lam == 0 or not math.isfinite(lam):
            break
        v = w / lam
    return lam


def grad2d(x: torch.Tensor) -> torch.Tensor:
    """Forward differences of `(*batch, H, W)` (Neumann: zero at the last row/column) -> `(*batch, 2, H, W)`."""
    g = x.new_zeros(*x.shape[:-2], 2, *x.shape[-2:])
    g[..., 0, :-1, :] = x[..., 1:, :] - x[..., :-1, :]
    g[..., 1, :, :-1] = x[..., :, 1:] - x[..., :, :-1]
    return g


def grad2d_adjoint(g: torch.Tensor) -> torch.Tensor:
    """The adjoint of `grad2d` (minus the divergence)."""
    gx, gy = g[..., 0, :, :], g[..., 1, :, :]
    out = gx.new_zeros(gx.shape)
    out[..., :-1, :] -= gx[..., :-1, :]
    out[..., 1:, :] += gx[..., :-1, :]
    out[..., :, :-1] -= gy[..., :, :-1]
    out[..., :, 1:] += gy[..., :, :-1]
    return out


def tv_norm(x: torch.Tensor) -> torch.Tensor:
    """Isotropic TV of `(*batch, H, W)`: sum of pixelwise |grad x|, `(*batch,)`."""
    g = grad2d(x)
    return torch.sqrt((g.abs() ** 2).sum(-3)).sum((-2, -1))


# --- helpers ----------------------------------------------------------------------------------
def _nspace(A: LinearOperator) -> tuple[int, ...]:
    return tuple(range(-len(A.in_shape), 0))


def _rel_change(new: torch.Tensor, old: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
    num = torch.linalg.vector_norm(new - old, dim=dims)
    den = torch.linalg.vector_norm(old, dim=dims)
    return torch.where(den > 0, num / torch.where(den > 0, den, 1), torch.where(num > 0, math.inf, 0.0))


def _check_int(solver: str, name: str, value: Any, minimum: int = 1) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise SolverOptionError(f"{solver}: {name} must be an integer >= {minimum}, got {value!r}")


def _check_pos(solver: str, name: str, value: Any, allow_none: bool = False, allow_zero: bool = False) -> None:
    if value is None and allow_none:
        return
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (value == 0 and not allow_zero):
        raise SolverOptionError(f"{solver}: {name} must be a number {'>=' if allow_zero else '>'} 0, got {value!r}")


class _Tracker:
    """Per-system stopping bookkeeping for a batch: relative change history, status, iterations."""

    def __init__(self, batch: tuple[int, ...], device: Any, rtol: float):
        self.active = torch.ones(batch, dtype=torch.bool, device=device)
        self.status = torch.full(batch, int(Status.MAX_ITERATIONS), dtype=torch.int64, device=device)
        self.iterations = torch.zeros(batch, dtype=torch.int64, device=device)
        self.history: list[torch.Tensor] = [torch.full(batch, math.inf, dtype=torch.float64, device=device)]
        self.rtol = rtol

    def mask(self, t: torch.Tensor) -> torch.Tensor:
        return self.active.reshape(self.active.shape + (1,) * (t.ndim - self.active.ndim))

    def keep(self, new: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
        """`new` for active systems, `old` for stopped ones."""
        return torch.where(self.mask(new), new, old)

    def update(self, change: torch.Tensor) -> bool:
        """Record one iteration's relative change; returns True when every system has stopped."""
        change = change.to(torch.float64)
        prev = self.history[-1]
        self.history.append(torch.where(self.active, change, prev))
        self.iterations = self.iterations + self.active
        nonfinite = self.active & ~torch.isfinite(change)
        conv = self.active & (change <= self.rtol)
        self.status = torch.where(conv, int(Status.SUCCESS), torch.where(nonfinite, int(Status.NONFINITE), self.status))
        self.active = self.active & ~(conv | nonfinite)
        return not bool(self.active.any())

    def solution(self, x: torch.Tensor, info: dict[str, Any]) -> Solution:
        res = torch.stack(self.history[1:]) if len(self.history) > 1 else torch.zeros((0, *self.active.shape))
        worst = Status(int(self.status.max())) if self.status.numel() else Status.SUCCESS
        last = res[-1] if len(res) else torch.zeros(self.active.shape, dtype=torch.float64)
        info = {"reason": worst.message if worst != Status.SUCCESS else "converged: relative change below rtol",
                "relative_change": float(last.max()) if last.numel() else 0.0, **info}
        return Solution(x, res, {"status": self.status, "iterations": self.iterations}, info)


def _denoiser_signature(D: Callable) -> tuple[bool, bool]:
    """`(takes_sigma, sigma_required)`: whether `D` can be called as `D(x, sigma)` (else only `D(x)`),
    and whether its second positional parameter has no default."""
    try:
        sig = inspect.signature(D)
    except (TypeError, ValueError):
        return True, False
    params = []
    for p in sig.parameters.values():
        if p.kind == p.VAR_POSITIONAL:
            return True, False
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            params.append(p)
    if len(params) < 2:
        return False, False
    return True, params[1].default is inspect.Parameter.empty


def _data_residual(A: LinearOperator, y: torch.Tensor, x: torch.Tensor) -> float:
    """max over the batch of ||A x - y|| / ||y||."""
    dims = tuple(range(-len(A.out_shape), 0))
    r = torch.linalg.vector_norm(A.apply(x) - y, dim=dims)
    n = torch.linalg.vector_norm(y, dim=dims)
    rel = r / torch.where(n > 0, n, 1)
    return float(rel.max()) if rel.numel() else 0.0


# --- TV ---------------------------------------------------------------------------------------
@register
@dataclass
class TV(Solver):
    r"""Isotropic TV-regularised least squares min ½||Ax-y||² + lam·TV(x) for 2-D images, by PDHG.

    Options: `lam` (>= 0), `maxiter`, `rtol` (relative change of x), `tau`/`sigma` (primal/dual steps;
    default both :math:`0.99/\|K\|`), `x0` (initial image; default :math:`A^H y` scaled by :math:`1/\|A\|^2`).
    The gradient block is balanced against the data block: :math:`K = [A;\ s\nabla]` with
    :math:`s = \max(1, \|A\|/\sqrt 8)` (:math:`\|A\|^2` by power iteration), so :math:`\|K\|^2 \le \|A\|^2 + 8s^2`, and the
    dual of :math:`s\nabla x` is projected onto :math:`|q| \le \lambda/s` -- the same minimiser, with steps that
    suit both blocks (CT's :math:`\|A\|^2` is in the thousands, a gradient's is 8).
    """

    name: ClassVar[str] = "tv"
    accepts: ClassVar[tuple[type, ...]] = (InverseProblem,)

    lam: float = 0.1
    maxiter: int = 500
    rtol: float = 1e-5
    tau: float | None = None
    sigma: float | None = None
    x0: torch.Tensor | None = None

    def __post_init__(self) -> None:
        _check_pos(self.name, "lam", self.lam, allow_zero=True)
        _check_int(self.name, "maxiter", self.maxiter)
        _check_pos(self.name, "rtol", self.rtol, allow_zero=True)
        _check_pos(self.name, "tau", self.tau, allow_none=True)
        _check_pos(self.name, "sigma", self.sigma, allow_none=True)

    def solve(self, problem: InverseProblem) -> Solution:
        A, y = problem.forward, problem.y
        if len(A.in_shape) != 2:
            raise SolverOptionError(f"{self.name}: TV needs 2-D images, the forward operator takes {A.in_shape}")
        Ahy = A.adjoint(y)
        L2 = power_norm2(A, Ahy) * 1.02
        scale = max(1.0, math.sqrt(L2 / 8.0))  # s: the gradient block weighted like a large A
        normK = math.sqrt(L2 + 8.0 * scale**2)
        tau = self.tau if self.tau is not None else 0.99 / normK
        sigma = self.sigma if self.sigma is not None else 0.99 / normK
        if self.tau is not None and self.sigma is None:
            sigma = 0.99 / (tau * normK**2)
        if self.sigma is not None and self.tau is None:
            tau = 0.99 / (sigma * normK**2)
        x = (Ahy / L2 if self.x0 is None else self.x0.to(Ahy.dtype).expand_as(Ahy)).clone()
        xbar = x.clone()
        p = torch.zeros_like(y)
        q = torch.zeros(*x.shape[:-2], 2, *x.shape[-2:], dtype=x.dtype, device=x.device)
        dims = _nspace(A)
        track = _Tracker(problem.batch_shape, x.device, self.rtol)
        lam = self.lam
        for _ in range(self.maxiter):
            p_new = (p + sigma * (A.apply(xbar) - y)) / (1 + sigma)
            q_new = q + (sigma * scale) * grad2d(xbar)
            mag = torch.sqrt((q_new.abs() ** 2).sum(-3, keepdim=True))
            q_new = q_new / torch.clamp(mag * (scale / lam), min=1) if lam > 0 else torch.zeros_like(q_new)
            x_new = x - tau * (A.adjoint(p_new) + scale * grad2d_adjoint(q_new))
            change = _rel_change(x_new, x, dims)
            p, q = track.keep(p_new, p), track.keep(q_new, q)
            xbar = track.keep(2 * x_new - x, xbar)
            x = track.keep(x_new, x)
            if track.update(change):
                break
        r = A.apply(x) - y
        obj = 0.5 * torch.linalg.vector_norm(r, dim=tuple(range(-len(A.out_shape), 0))) ** 2 + lam * tv_norm(x)
        return track.solution(x, {"objective": obj, "tau": tau, "sigma": sigma, "opnorm2": L2, "grad_scale": scale,
                                  "relative_residual": _data_residual(A, y, x)})


# --- PnP --------------------------------------------------------------------------------------
@dataclass
class _PnP(Solver):
    """Shared options and denoiser handling of the PnP solvers."""

    accepts: ClassVar[tuple[type, ...]] = (InverseProblem,)

    denoiser: Callable | None = None
    sigma: float | None = None
    rho: float = 1.0
    maxiter: int = 100
    rtol: float = 1e-4
    complex_mode: str = "none"
    cg_maxiter: int = 50
    cg_rtol: float = 1e-6
    x0: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.denoiser is None:
            raise SolverOptionError(f"{self.name}: option 'denoiser' is required (a callable D(x, sigma) or D(x))")
        if not callable(self.denoiser):
            raise SolverOptionError(f"{self.name}: denoiser must be callable, got {type(self.denoiser).__name__}")
        if _denoiser_signature(self.denoiser)[1] and self.sigma is None:
            raise SolverOptionError(f"{self.name}: the denoiser takes a strength D(x, sigma) but option 'sigma' is not set")
        _check_pos(self.name, "sigma", self.sigma, allow_none=True, allow_zero=True)
        _check_pos(self.name, "rho", self.rho)
        _check_int(self.name, "maxiter", self.maxiter)
        _check_pos(self.name, "rtol", self.rtol, allow_zero=True)
        _check_int(self.name, "cg_maxiter", self.cg_maxiter)
        _check_pos(self.name, "cg_rtol", self.cg_rtol)
        if self.complex_mode not in ("none", "magnitude"):
            raise SolverOptionError(f"{self.name}: complex_mode must be 'none' or 'magnitude', got {self.complex_mode!r}")

    def _D(self) -> Callable[[torch.Tensor], torch.Tensor]:
        """The denoiser as x -> z, run without autograd (a network's weights need no graph here; an
        LPN turns autograd on for its own gradient)."""
        D, with_sigma = self.denoiser, _denoiser_signature(self.denoiser)[0]

        @torch.no_grad()
        def base(x: torch.Tensor) -> torch.Tensor:
            return D(x, self.sigma) if with_sigma else D(x)

        return magnitude_prox(base) if self.complex_mode == "magnitude" else base

    def _cg(self) -> dict[str, Any]:
        return {"rtol": self.cg_rtol, "maxiter": self.cg_maxiter}

    def _start(self, problem: InverseProblem) -> tuple[LinearOperator, torch.Tensor, torch.Tensor, torch.Tensor]:
        A, y = problem.forward, problem.y
        Ahy = A.adjoint(y)
        x = Ahy.clone() if self.x0 is None else self.x0.to(Ahy.dtype).expand_as(Ahy).clone()
        return A, y, Ahy, x


@register
@dataclass
class PnPADMM(_PnP):
    r"""Plug-and-play ADMM (scaled dual; x, z, u order); optional constraint ||Ax-y|| <= epsilon (C-SALSA).

    Options: `denoiser` D(x, sigma) or D(x) (required), `sigma`, `rho` (penalty; with `epsilon` the
    ratio of the regulariser and data penalties), `epsilon` (None: unconstrained), `maxiter`, `rtol`,
    `complex_mode` ("none" | "magnitude"), `cg_maxiter`, `cg_rtol`, `x0` (default :math:`A^H y`).
    """

    name: ClassVar[str] = "pnp-admm"
    epsilon: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_pos(self.name, "epsilon", self.epsilon, allow_none=True, allow_zero=True)

    def solve(self, problem: InverseProblem) -> Solution:
        A, y, Ahy, x = self._start(problem)
        D, rho, dims = self._D(), self.rho, _nspace(A)
        track = _Tracker(problem.batch_shape, x.device, self.rtol)
        z, u = x.clone(), torch.zeros_like(x)
        constrained = self.epsilon is not None
        if constrained:
            odims = tuple(range(-len(A.out_shape), 0))
            Ax = A.apply(x)
            v2, u2 = Ax.clone(), torch.zeros_like(Ax)
        for _ in range(self.maxiter):
            if constrained:
                x_new = data_consistency(A, v2 - u2, z - u, rho, x0=x, cg_options=self._cg())
            else:
                x_new = data_consistency(A, y, z - u, rho, x0=x, cg_options=self._cg(), Ahy=Ahy)
            z_new = D(x_new + u)
            u_new = u + x_new - z_new
            if constrained:
                Ax = A.apply(x_new)
                w = Ax + u2 - y
                nw = torch.linalg.vector_norm(w, dim=odims)
                scale = torch.clamp(self.epsilon / torch.where(nw > 0, nw, 1), max=1)
                v2_new = y + w * scale.reshape(scale.shape + (1,) * len(odims))
                u2_new = u2 + Ax - v2_new
                v2, u2 = track.keep(v2_new, v2), track.keep(u2_new, u2)
            change = torch.maximum(_rel_change(z_new, z, dims), _rel_change(x_new, z_new, dims))
            x, z, u = track.keep(x_new, x), track.keep(z_new, z), track.keep(u_new, u)
            if track.update(change):
                break
        return track.solution(z, {"relative_residual": _data_residual(A, y, z)})


@register
@dataclass
class PnPHQS(_PnP):
    r"""Plug-and-play half-quadratic splitting: x = (AᴴA+ρI)⁻¹(Aᴴy+ρz), z = D(x, sigma).

    Options as pnp-admm (no `epsilon`). With a fixed ρ and D the prox of (λ/ρ)R, the fixed point
    minimises ½||Ax-y||² + λR(z) + ρ/2||x-z||² (the solution returned is z).
    """

    name: ClassVar[str] = "pnp-hqs"

    def solve(self, problem: InverseProblem) -> Solution:
        A, y, Ahy, x = self._start(problem)
        D, dims = self._D(), _nspace(A)
        track = _Tracker(problem.batch_shape, x.device, self.rtol)
        z = x.clone()
        for _ in range(self.maxiter):
            x_new = data_consistency(A, y, z, self.rho, x0=x, cg_options=self._cg(), Ahy=Ahy)
            z_new = D(x_new)
            change = _rel_change(z_new, z, dims)
            x, z = track.keep(x_new, x), track.keep(z_new, z)
            if track.update(change):
                break
        return track.solution(z, {"relative_residual": _data_residual(A, y, z)})


@register
@dataclass
class PnPPGD(_PnP):
    r"""Plug-and-play proximal gradient: x = D(x - step·Aᴴ(Ax - y), sigma); step defaults to 1/||A||².

    Options: `denoiser` (required), `sigma`, `step`, `maxiter`, `rtol`, `complex_mode`, `x0`
    (`rho`, `cg_maxiter`, `cg_rtol` are unused).
    """

    name: ClassVar[str] = "pnp-pgd"
    step: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_pos(self.name, "step", self.step, allow_none=True)

    def solve(self, problem: InverseProblem) -> Solution:
        A, y, Ahy, x = self._start(problem)
        D, dims = self._D(), _nspace(A)
        step = self.step if self.step is not None else 1.0 / (power_norm2(A, Ahy) * 1.01)
        track = _Tracker(problem.batch_shape, x.device, self.rtol)
        for _ in range(self.maxiter):
            x_new = D(x - step * (A.adjoint(A.apply(x)) - Ahy))
            change = _rel_change(x_new, x, dims)
            x = track.keep(x_new, x)
            if track.update(change):
                break
        return track.solution(x, {"step": step, "relative_residual": _data_residual(A, y, x)})
