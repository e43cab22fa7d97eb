r"""Darcy flow with piecewise-constant permeability: the FNO/LSM benchmark data.

:math:`-\nabla\cdot(a\nabla u) = f` on :math:`[0,1]^2`, :math:`u = 0` on the boundary, f = 1, with
:math:`a = \psi(U)`, :math:`U` a Gaussian random field with covariance :math:`\tau^{2\alpha-2}(-\Delta + \tau^2)^{-\alpha}`
(Neumann Laplacian; FNO: :math:`\alpha = 2`, :math:`\tau = 3`), :math:`\psi = 12` where :math:`U \ge 0`, 3 where
:math:`U < 0` (FNO paper, "Darcy flow": :math:`\mu = \psi_\#N(0, (-\Delta + 9I)^{-2})`; FNO's `demo.m` uses 4 for
the negative part; both are options here).

Discretisation (documented, not FNO's MATLAB pipeline): s nodes per axis including the boundary,
:math:`x_i = i/(s-1)`; U is the cosine series evaluated at the nodes (`grf.neumann_grf`, s modes per
axis), a is thresholded there; the s-2 interior nodes per axis are the unknowns of the conservative
5-point stencil with face coefficients the arithmetic mean of the two adjacent nodes (as FNO's
`solve_gwf.m`; "harmonic" is an option), solved by sciml's batched PCG (`sciml.linalg.cg`) with the
FFT Poisson preconditioner scaled by each sample's mean coefficient. Stored on the full s x s grid:
`coeff` (a, exactly two-valued) and `sol` (u, zero on the boundary), axis 0 = x, axis 1 = y.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from ...linalg import cg
from ...operators import LinearOperator
from ...operators.fourier import laplacian_inverse
from ...operators.stencil import diffusion_apply
from ...pde import Expression, Grid
from .base import FieldSpec, GenerationError, Generator, Option, choice, integer, number, register_generator, sample_generator
from .grf import neumann_grf


def _source_check(v: Any) -> str | None:
    if isinstance(v, str):
        try:
            Expression(v, ("x", "y"))(x=torch.tensor(0.5, dtype=torch.float64), y=torch.tensor(0.5, dtype=torch.float64))
        except Exception as err:  # noqa: BLE001 - any failure of a user expression is a recipe error
            return f"a number or an expression in x, y ({err})"
    elif not np.isfinite(v):
        return "a finite number or an expression in x, y"
    return None


def face_coefficients(a: torch.Tensor, mean: str = "arithmetic") -> tuple[torch.Tensor, torch.Tensor]:
    """Face coefficients of the interior unknowns from node values `a` `(*batch, s, s)` (boundary included):
    `(*batch, s-1, s-2)` along x and `(*batch, s-2, s-1)` along y, the mean of the two nodes of each face."""
    pairs = ((a[..., :-1, 1:-1], a[..., 1:, 1:-1]), (a[..., 1:-1, :-1], a[..., 1:-1, 1:]))
    if mean == "arithmetic":
        return tuple(0.5 * (p + q) for p, q in pairs)  # type: ignore[return-value]
    return tuple(2 * p * q / (p + q) for p, q in pairs)  # type: ignore[return-value]


class BatchedDiffusion(LinearOperator):
    r""":math:`-\nabla\cdot(a\nabla u)` on an n x n Dirichlet grid with a different a per system:
    face coefficients `(B, n+1, n)` and `(B, n, n+1)`, applied to `(B, n, n)` (the kernel is
    `sciml.operators.stencil.diffusion_apply`, the one `DiffusionOperator` uses)."""

    def __init__(self, faces: tuple[torch.Tensor, torch.Tensor], h: float):
        n = faces[0].shape[-1]
        super().__init__((n, n), is_self_adjoint=True, is_positive_definite=True)
        self.faces, self.h = faces, h

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        return diffusion_apply(x, (self.h, self.h), ("dirichlet", "dirichlet"), self.faces)


class ScaledPoissonInverse(LinearOperator):
    r"""Preconditioner :math:`(\bar a_b(-\Delta_h))^{-1}` per system b: the FFT Poisson solve (DST-I)
    divided by the system's mean face coefficient (sciml's "fft" preconditioner, batched)."""

    def __init__(self, faces: tuple[torch.Tensor, torch.Tensor], h: float):
        n = faces[0].shape[-1]
        super().__init__((n, n), is_self_adjoint=True, is_positive_definite=True)
        self.inverse = laplacian_inverse((n, n), h, "dirichlet")
        self.scale = (1.0 / (0.5 * (faces[0].mean((-2, -1)) + faces[1].mean((-2, -1)))))[:, None, None]

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        return self.inverse.apply(x) * self.scale


def node_grid(resolution: int) -> Grid:
    """The 2-D `Grid` whose unknowns sit on the generator's `resolution`² nodes x_i = i/(resolution-1),
    boundary included (Dirichlet unknowns lie at lower + (i+1) h, so lower = -h, upper = 1 + h): the grid
    of a `PDEProblem` carrying stored `coeff`/`sol` fields, e.g. for the `lsm`/`fno` solvers."""
    h = 1.0 / (resolution - 1)
    return Grid(lower=(-h, -h), upper=(1.0 + h, 1.0 + h), points=(resolution, resolution), bc="dirichlet")


def solve_darcy(a: torch.Tensor, source: float | str = 1.0, *, rtol: float = 1e-8, maxiter: int | None = None,
                mean: str = "arithmetic") -> tuple[torch.Tensor, Any]:
    """Solve :math:`-\\nabla\\cdot(a\\nabla u) = f`, u = 0 on the boundary, for node coefficients `a`
    `(B, s, s)` (boundary nodes included); returns u `(B, s, s)` with zero boundary and the `KrylovResult`."""
    B, s = a.shape[0], a.shape[-1]
    n, h = s - 2, 1.0 / (s - 1)
    faces = face_coefficients(a, mean)
    if isinstance(source, str):
        x = torch.arange(1, s - 1, dtype=a.dtype, device=a.device) * h
        f = Expression(source, ("x", "y"))(x=x[:, None], y=x[None, :])
        f = torch.broadcast_to(torch.as_tensor(f, dtype=a.dtype, device=a.device), (n, n))
    else:
        f = torch.full((n, n), float(source), dtype=a.dtype, device=a.device)
    b = f.expand(B, n, n).contiguous()
    result = cg(BatchedDiffusion(faces, h), b, M=ScaledPoissonInverse(faces, h), rtol=rtol, maxiter=maxiter)
    u = torch.zeros_like(a)
    u[:, 1:-1, 1:-1] = result.x
    return u, result


def _solve(a: torch.Tensor, gen: "DarcyGenerator") -> tuple[torch.Tensor, Any]:
    """The solve step of `DarcyGenerator.generate` (a seam for tests that simulate a failure)."""
    return solve_darcy(a, gen.source, rtol=gen.rtol, maxiter=gen.maxiter, mean=gen.face_mean)


@register_generator
class DarcyGenerator(Generator):
    name = "darcy"
    version = 1
    description = "2-D Darcy flow, piecewise-constant a from a thresholded GRF (FNO/LSM benchmark): coeff, sol"
    default_block = 16
    options = (
        integer("resolution", 85, "nodes per axis including the boundary (FNO: 421, LSM: 421 subsampled to 85)", min=5),
        number("alpha", 2.0, "GRF smoothness: covariance (-Laplacian + tau^2)^(-alpha)", positive=True),
        number("tau", 3.0, "GRF inverse length scale", min=0.0),
        integer("modes", 0, "cosine modes per axis (0: resolution)", min=0),
        number("threshold", 0.0, "a = a_pos where the GRF >= threshold, else a_neg"),
        number("a_pos", 12.0, "coefficient where the GRF >= threshold", positive=True),
        number("a_neg", 3.0, "coefficient where the GRF < threshold", positive=True),
        Option("source", 1.0, (int, float, str), "a number or an expression in x, y", _source_check, "f"),
        choice("face_mean", "arithmetic", ("arithmetic", "harmonic"), "coefficient on a face from its two nodes"),
        number("rtol", 1e-8, "PCG relative residual tolerance", positive=True, max=0.1),
        integer("maxiter", 2000, "PCG iteration cap"),
    )

    def fields(self) -> dict[str, FieldSpec]:
        s = self.resolution
        grid = f"nodes x_i = i/{s - 1}, i = 0..{s - 1} on both axes (axis 0 = x, axis 1 = y)"
        return {
            "coeff": FieldSpec((s, s), attrs={"description": "permeability a (two-valued)", "grid": grid}),
            "sol": FieldSpec((s, s), attrs={"description": "pressure u, -div(a grad u) = f, u = 0 on the boundary",
                                            "grid": grid}),
        }

    def attrs(self) -> dict[str, Any]:
        return {"x": np.linspace(0.0, 1.0, self.resolution)}

    def random_field(self, indices: Sequence[int], seed: int) -> torch.Tensor:
        """The GRF U `(B, s, s)` at the nodes for samples `indices` (float64)."""
        s = self.resolution
        K = self.modes or s
        xi = torch.stack([torch.randn(K, K, dtype=torch.float64, generator=sample_generator(seed, i)) for i in indices])
        x = torch.linspace(0.0, 1.0, s, dtype=torch.float64, device=self.device)
        return neumann_grf(xi.to(self.device), self.alpha, self.tau, (x, x))

    def generate(self, indices: Sequence[int], seed: int) -> dict[str, Any]:
        U = self.random_field(indices, seed)
        a = torch.where(U >= self.threshold, self.a_pos, self.a_neg).to(torch.float64)
        u, result = _solve(a, self)
        if not bool(result.converged.all()):
            bad = [int(indices[k]) for k in torch.nonzero(~result.converged).flatten().tolist()]
            raise GenerationError(f"darcy: PCG did not reach rtol {self.rtol:g} for samples {bad} "
                                  f"({result.info['reason']}); raise maxiter or rtol")
        return {"coeff": a.cpu().numpy(), "sol": u.cpu().numpy()}
