r"""Finite-difference discretisation of :math:`-\nabla\cdot(a\nabla u) + c u = f` on a `Grid`.

Second-order conservative stencil (`sciml.operators.DiffusionOperator`). Inhomogeneous boundary
data moves to the right-hand side: with ghost offsets from the boundary values, the discrete
operator is affine, :math:`L u = A u + L(0)`, so the system is :math:`A u = f - L(0)`.
Dirichlet ghosts are the boundary values; Neumann ghosts are edge + h g for an outward flux g.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Union

import torch

from ..operators.stencil import DiffusionOperator, diffusion_apply, pad_ghosts
from .expressions import Expression
from .grid import Grid

Field = Union[float, int, complex, str, Callable[..., Any], torch.Tensor]


@dataclass
class Discretization:
    """A discretised PDE: `operator @ u = rhs` on the grid's unknowns.

    `nullspace` is True when the constants are in the kernel (no Dirichlet axis and c = 0); the
    right-hand side is then projected to zero mean and `compatibility_defect` records what was removed.
    """

    operator: DiffusionOperator
    rhs: torch.Tensor
    coords: dict[str, torch.Tensor]
    exact: torch.Tensor | None
    nullspace: bool
    compatibility_defect: float = 0.0


def evaluate(field: Field, grid: Grid, coords: tuple[torch.Tensor, ...], shape: tuple[int, ...], name: str,
             constants: dict[str, float], dtype: torch.dtype) -> torch.Tensor:
    """Evaluate a field (number, expression string, callable or tensor) at broadcastable `coords`."""
    if isinstance(field, bool):
        raise TypeError(f"{name}: expected a number, expression, callable or tensor, got a bool")
    if isinstance(field, (int, float, complex)):
        value = torch.as_tensor(field, device=coords[0].device)
    elif isinstance(field, str):
        value = Expression(field, grid.names, constants)(**dict(zip(grid.names, coords)))
    elif isinstance(field, torch.Tensor):
        if tuple(field.shape) != shape:
            raise ValueError(f"{name}: tensor has shape {tuple(field.shape)}, expected the grid shape {shape}")
        value = field
    elif callable(field):
        value = field(*coords)
    else:
        raise TypeError(f"{name}: expected a number, expression string, callable or tensor, got {type(field).__name__}")
    value = torch.as_tensor(value, device=coords[0].device)
    target = dtype.to_complex() if value.is_complex() else dtype
    return torch.broadcast_to(value.to(target), shape).contiguous()


def _is_constant(field: Field, value: float) -> bool:
    return isinstance(field, (int, float)) and not isinstance(field, bool) and field == value


def face_coefficients(a: Field, grid: Grid, nodes: list[torch.Tensor], constants: dict, dtype) -> tuple | None:
    """a on the n+1 faces along each axis: evaluated there for expressions/callables, averaged for node tensors."""
    if _is_constant(a, 1.0):
        return None
    faces = []
    for d in range(grid.ndim):
        shape = list(grid.points)
        shape[d] += 1
        if isinstance(a, torch.Tensor):
            node_a = evaluate(a, grid, grid.mesh(nodes), grid.points, "a", constants, dtype)
            ext = pad_ghosts(node_a, d, "periodic" if grid.bc[d] == "periodic" else "neumann")
            faces.append(0.5 * (ext[(slice(None),) * d + (slice(1, None),)] + ext[(slice(None),) * d + (slice(None, -1),)]))
        else:
            axes = list(nodes)
            axes[d] = grid.faces(d, dtype, nodes[0].device)
            faces.append(evaluate(a, grid, grid.mesh(axes), tuple(shape), "a", constants, dtype))
    return tuple(faces)


def boundary_ghosts(g: Field, grid: Grid, nodes: list[torch.Tensor], constants: dict, dtype) -> list:
    """Ghost offsets (lo, hi) per axis from boundary data g (Dirichlet value or Neumann outward flux)."""
    ghosts = []
    for d, kind in enumerate(grid.bc):
        if kind == "periodic" or _is_constant(g, 0.0):
            ghosts.append((None, None))
            continue
        pair = []
        for side in (grid.lower[d], grid.upper[d]):
            axes = list(nodes)
            axes[d] = torch.tensor([side], dtype=dtype, device=nodes[0].device)
            shape = list(grid.points)
            shape[d] = 1
            if isinstance(g, torch.Tensor):
                raise TypeError("boundary: give a number, an expression or a callable, not a tensor")
            value = evaluate(g, grid, grid.mesh(axes), tuple(shape), "boundary", constants, dtype)
            pair.append(value if kind == "dirichlet" else grid.spacing[d] * value)
        ghosts.append(tuple(pair))
    return ghosts


def discretize(grid: Grid, source: Field, a: Field = 1.0, c: Field = 0.0, boundary: Field = 0.0,
               exact: Field | None = None, constants: dict | None = None, dtype: torch.dtype = torch.float64,
               device: Any = None) -> Discretization:
    """Assemble the matrix-free operator and the right-hand side; see the module docstring."""
    constants = constants or {}
    nodes = [grid.nodes(d, dtype, device) for d in range(grid.ndim)]
    mesh = grid.mesh(nodes)
    f = evaluate(source, grid, mesh, grid.points, "source", constants, dtype)
    a_faces = face_coefficients(a, grid, nodes, constants, dtype)
    c_val = None if _is_constant(c, 0.0) else evaluate(c, grid, mesh, grid.points, "c", constants, dtype)
    ghosts = boundary_ghosts(boundary, grid, nodes, constants, dtype)
    operator = DiffusionOperator(grid.points, grid.spacing, grid.bc, a=a_faces, c=c_val, device=device)
    lift = diffusion_apply(torch.zeros(grid.points, dtype=dtype, device=device), grid.spacing, grid.bc, a_faces, None, ghosts)
    rhs = f - lift
    nullspace = "dirichlet" not in grid.bc and c_val is None
    defect = 0.0
    if nullspace:
        mean = rhs.mean()
        defect = float(abs(mean) / rhs.abs().max().clamp_min(torch.finfo(rhs.real.dtype).tiny))
        rhs = rhs - mean
    u_exact = None if exact is None else evaluate(exact, grid, mesh, grid.points, "exact", constants, dtype)
    return Discretization(operator, rhs, dict(zip(grid.names, nodes)), u_exact, nullspace, defect)
