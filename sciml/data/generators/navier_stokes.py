r"""2-D incompressible Navier-Stokes in vorticity form on the torus :math:`[0,1]^2` (FNO benchmark).

.. math:: \partial_t w + u\cdot\nabla w = \nu\Delta w + f,\qquad u = (\partial_y\psi, -\partial_x\psi),\quad -\Delta\psi = w,

with :math:`f = 0.1(\sin 2\pi(x+y) + \cos 2\pi(x+y))` and :math:`w_0` from the periodic GRF with covariance
:math:`7^{3/2}(-\Delta + 49)^{-2.5}` (:math:`\alpha = 2.5`, :math:`\tau = 7`, :math:`\sigma = \tau^{(2\alpha-2)/2}`).

The scheme is FNO's `data_generation/navier_stokes/ns_2d.py`: pseudo-spectral, the nonlinear term
computed in physical space and dealiased by the 2/3 rule (:math:`|k_x|, |k_y| \le \frac23 k_{max}`), explicit
(forward Euler) for advection and forcing, Crank-Nicolson for diffusion:

.. math:: \hat w^{n+1} = \frac{(1 - \frac12\Delta t\,\nu\lambda_k)\hat w^n - \Delta t\,\widehat{u\cdot\nabla w}^n + \Delta t\,\hat f}{1 + \frac12\Delta t\,\nu\lambda_k},\qquad \lambda_k = 4\pi^2|k|^2.

Differences, none visible beyond round-off in the dealiased dynamics: real FFTs (`rfft2`), the
derivative of the Nyquist wavenumber set to zero, a time step count `T/dt` that must be a whole
multiple of the number of snapshots. FNO solved at 256^2 and subsampled to 64^2: `solver_resolution`.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import torch

from ...pde import Expression
from .base import (FieldSpec, Generator, Option, choice, integer, number, option_error, register_generator,
                   sample_generator)
from .grf import periodic_grf

FNO_FORCING = "0.1*(sin(2*pi*(x + y)) + cos(2*pi*(x + y)))"


def wavenumbers(n: int, dtype: torch.dtype = torch.float64, device: Any = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Integer wavenumbers of `rfft2` on an n x n grid: k_x `(n, 1)` (axis -2), k_y `(1, n//2+1)` (axis -1)."""
    kx = torch.fft.fftfreq(n, 1.0 / n, dtype=dtype, device=device)[:, None]
    ky = torch.fft.rfftfreq(n, 1.0 / n, dtype=dtype, device=device)[None, :]
    return kx, ky


class VorticitySolver:
    """The pseudo-spectral stepper on an n x n periodic grid, batched over leading dimensions.

    Args:
        n: grid points per axis (x_i = i/n); even.
        visc: viscosity nu.
        dt: time step.
        forcing: f on the grid `(n, n)` (or broadcastable to the batch), or None.
        dealias: apply the 2/3 rule to the nonlinear term.
        dtype, device: of the computation (float32 as FNO, or float64).
    """

    def __init__(self, n: int, visc: float, dt: float, forcing: torch.Tensor | None = None, *, dealias: bool = True,
                 dtype: torch.dtype = torch.float64, device: Any = None):
        self.n, self.visc, self.dt = n, visc, dt
        self.dtype = dtype
        kx, ky = wavenumbers(n, dtype, device)
        lam = 4 * math.pi**2 * (kx**2 + ky**2)  # symbol of -Laplacian
        self.lam = lam
        psi_div = lam.clone()
        psi_div[0, 0] = 1.0  # the mean of psi is irrelevant (velocity is its gradient)
        self.inv_lam = 1.0 / psi_div
        self.inv_lam[0, 0] = 0.0
        kx_d, ky_d = kx.clone(), ky.clone()
        if n % 2 == 0:  # the derivative of the Nyquist mode is not a real field: drop it
            kx_d[n // 2] = 0.0
            ky_d[..., n // 2] = 0.0
        cdtype = torch.complex128 if dtype == torch.float64 else torch.complex64
        self.dx = (2j * math.pi * kx_d).to(cdtype)
        self.dy = (2j * math.pi * ky_d).to(cdtype)
        k_max = n // 2
        mask = (kx.abs() <= 2.0 / 3.0 * k_max) & (ky.abs() <= 2.0 / 3.0 * k_max)
        self.dealias = mask.to(dtype) if dealias else torch.ones_like(lam)
        denom = 1.0 + 0.5 * dt * visc * lam
        self.amplification = (1.0 - 0.5 * dt * visc * lam) / denom  # Crank-Nicolson factor per step
        self.gain = dt / denom
        self.f_h = None if forcing is None else torch.fft.rfft2(forcing.to(dtype=dtype, device=device))

    def velocity(self, w_h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Velocity (u, v) = (psi_y, -psi_x) in physical space from the vorticity in Fourier space."""
        psi_h = w_h * self.inv_lam
        n = self.n
        return (torch.fft.irfft2(self.dy * psi_h, s=(n, n)), torch.fft.irfft2(-self.dx * psi_h, s=(n, n)))

    def nonlinear(self, w_h: torch.Tensor) -> torch.Tensor:
        """The dealiased Fourier transform of u . grad w."""
        n = self.n
        psi_h = w_h * self.inv_lam
        stacked = torch.stack([self.dy * psi_h, -self.dx * psi_h, self.dx * w_h, self.dy * w_h])
        u, v, w_x, w_y = torch.fft.irfft2(stacked, s=(n, n))
        return torch.fft.rfft2(u * w_x + v * w_y) * self.dealias

    def step(self, w_h: torch.Tensor) -> torch.Tensor:
        rhs = -self.nonlinear(w_h)
        if self.f_h is not None:
            rhs = rhs + self.f_h
        return self.amplification * w_h + self.gain * rhs

    def run(self, w0: torch.Tensor, steps: int, record_every: int, stride: int = 1) -> torch.Tensor:
        """Advance `w0` `(*batch, n, n)` by `steps` steps; the vorticity every `record_every` steps,
        `(*batch, n/stride, n/stride, steps // record_every)` (every `stride`-th point per axis)."""
        w_h = torch.fft.rfft2(w0.to(self.dtype))
        out = []
        for j in range(1, steps + 1):
            w_h = self.step(w_h)
            if j % record_every == 0:
                out.append(torch.fft.irfft2(w_h, s=(self.n, self.n))[..., ::stride, ::stride])
        return torch.stack(out, dim=-1)


def navier_stokes_2d(w0: torch.Tensor, forcing: torch.Tensor | None, visc: float, T: float, dt: float = 1e-4,
                     record_steps: int = 1, **options: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Solve up to time T from `w0` `(*batch, n, n)`; the `record_steps` snapshots at t = T/record_steps, ...,
    T `(*batch, n, n, record_steps)` and their times (FNO's `navier_stokes_2d` signature)."""
    steps = _step_count(T, dt, record_steps)
    solver = VorticitySolver(w0.shape[-1], visc, dt, forcing, dtype=options.pop("dtype", w0.dtype),
                             device=w0.device, **options)
    sol = solver.run(w0, steps, steps // record_steps)
    times = torch.arange(1, record_steps + 1, dtype=torch.float64) * (steps // record_steps) * dt
    return sol, times


def _step_count(T: float, dt: float, record_steps: int) -> int:
    steps = round(T / dt)
    if steps < 1 or abs(steps * dt - T) > 1e-9 * max(T, 1.0) or steps % record_steps:
        raise ValueError(f"T/dt = {T / dt:g} must be a whole number of steps divisible by record_steps = {record_steps}")
    return steps


def _forcing_check(v: Any) -> str | None:
    if v in ("none", "fno"):
        return None
    try:
        Expression(v, ("x", "y"))(x=torch.tensor(0.5, dtype=torch.float64), y=torch.tensor(0.5, dtype=torch.float64))
    except Exception as err:  # noqa: BLE001
        return f'"fno", "none" or an expression in x, y ({err})'
    return None


@register_generator
class NavierStokesGenerator(Generator):
    name = "navier-stokes"
    version = 1
    description = "2-D vorticity Navier-Stokes on the torus, GRF initial vorticity (FNO benchmark): a, u"
    default_block = 20
    options = (
        integer("resolution", 64, "stored grid points per axis (x_i = i/n)", min=4),
        integer("solver_resolution", 0, "grid of the solver, a multiple of resolution (0: resolution; FNO: 256)", min=0),
        number("viscosity", 1e-3, "nu (FNO: 1e-3, 1e-4, 1e-5)", positive=True),
        number("T", 50.0, "final time", positive=True),
        number("dt", 1e-4, "time step", positive=True),
        integer("record_steps", 50, "snapshots at t = T/record_steps, ..., T"),
        number("alpha", 2.5, "initial GRF: covariance sigma^2 (-Laplacian + tau^2)^(-alpha)", positive=True),
        number("tau", 7.0, "initial GRF", min=0.0),
        number("sigma", 0.0, "initial GRF amplitude (0: tau^((2 alpha - 2)/2), FNO's 7^1.5)", min=0.0),
        Option("forcing", "fno", (str,), '"fno", "none" or an expression in x, y', _forcing_check,
               f'"fno" = {FNO_FORCING}'),
        choice("precision", "float32", ("float32", "float64"), "arithmetic of the solver (FNO: float32)"),
    )

    @classmethod
    def validate(cls, params: dict[str, Any]) -> None:
        n, m = params["resolution"], params["solver_resolution"] or params["resolution"]
        if m % n or m % 2:
            raise option_error("solver_resolution", f"expected an even multiple of resolution = {n}, got {m}")
        try:
            _step_count(params["T"], params["dt"], params["record_steps"])
        except ValueError as err:
            raise option_error("record_steps", str(err)) from None

    @property
    def steps(self) -> int:
        return _step_count(self.T, self.dt, self.record_steps)

    def times(self) -> np.ndarray:
        return np.arange(1, self.record_steps + 1) * (self.steps // self.record_steps) * self.dt

    def fields(self) -> dict[str, FieldSpec]:
        n, r = self.resolution, self.record_steps
        grid = f"x_i = i/{n}, i = 0..{n - 1} on both axes (axis 0 = x, axis 1 = y), periodic"
        return {
            "a": FieldSpec((n, n), attrs={"description": "initial vorticity w0", "grid": grid}),
            "u": FieldSpec((n, n, r), attrs={"description": "vorticity at the times in attribute t (last axis)",
                                             "grid": grid, "t": self.times()}),
        }

    def attrs(self) -> dict[str, Any]:
        return {"t": self.times(), "x": np.arange(self.resolution) / self.resolution}

    def forcing_field(self, m: int) -> torch.Tensor | None:
        text = {"fno": FNO_FORCING, "none": None}.get(self.forcing, self.forcing)
        if text is None:
            return None
        x = torch.arange(m, dtype=torch.float64) / m
        f = Expression(text, ("x", "y"))(x=x[:, None], y=x[None, :])
        return torch.broadcast_to(torch.as_tensor(f, dtype=torch.float64), (m, m)).contiguous()

    def initial_vorticity(self, indices: Sequence[int], seed: int) -> torch.Tensor:
        """w0 `(B, m, m)` on the solver grid (float64, CPU)."""
        m = self.solver_resolution or self.resolution
        draws = []
        for i in indices:
            g = sample_generator(seed, i)
            draws.append(torch.randn(2, m, m, dtype=torch.float64, generator=g))
        z = torch.stack(draws)
        return periodic_grf(z[:, 0], z[:, 1], self.alpha, self.tau, self.sigma or None, dims=2)

    def generate(self, indices: Sequence[int], seed: int) -> dict[str, Any]:
        m = self.solver_resolution or self.resolution
        stride = m // self.resolution
        dtype = torch.float64 if self.precision == "float64" else torch.float32
        w0 = self.initial_vorticity(indices, seed).to(device=self.device, dtype=dtype)
        forcing = self.forcing_field(m)
        solver = VorticitySolver(m, self.viscosity, self.dt, None if forcing is None else forcing.to(self.device),
                                 dtype=dtype, device=self.device)
        steps = self.steps
        u = solver.run(w0, steps, steps // self.record_steps, stride)
        return {"a": w0[:, ::stride, ::stride].cpu().numpy(), "u": u.cpu().numpy()}
