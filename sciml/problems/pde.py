r"""`PDEProblem`: :math:`-\nabla\cdot(a\nabla u) + c\,u = f` on a box, with boundary data."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from ..pde import Discretization, Grid, discretize
from ..pde.discretize import Field


@dataclass
class PDEProblem:
    r"""A linear second-order PDE on a rectangular grid.

    .. math:: -\nabla\cdot(a\nabla u) + c\,u = f, \quad u = g \text{ (Dirichlet) or } \partial_n u = g \text{ (Neumann)}

    Poisson: a = 1, c = 0. Helmholtz: a = 1, c = -k^2. Fields (`source`, `a`, `c`, `boundary`, `exact`)
    are numbers, expression strings in the coordinates x, y, z (e.g. "sin(pi*x)"), callables
    `f(x, y, ...)` on broadcastable coordinate tensors, or tensors on the grid's unknowns.

    Args:
        grid: the `Grid` (box, points per axis, boundary condition per axis).
        source: f.
        a: diffusion coefficient (> 0), evaluated on cell faces.
        c: reaction coefficient.
        boundary: g, Dirichlet values or outward Neumann fluxes.
        exact: the exact solution, if known (for error reporting).
        constants: named numbers usable in expression strings.
        dtype, device: of the discretised system.
        name: used for output files.

    Example:
        >>> grid = Grid(lower=(0, 0), upper=(1, 1), points=(31, 31))
        >>> p = PDEProblem(grid, source="2*pi**2*sin(pi*x)*sin(pi*y)", exact="sin(pi*x)*sin(pi*y)")
    """

    grid: Grid
    source: Field = 0.0
    a: Field = 1.0
    c: Field = 0.0
    boundary: Field = 0.0
    exact: Field | None = None
    constants: dict[str, float] = field(default_factory=dict)
    dtype: torch.dtype = torch.float64
    device: Any = None
    name: str = "pde"

    kind = "pde"

    def __post_init__(self) -> None:
        if not isinstance(self.grid, Grid):
            raise TypeError(f"grid must be a sciml.pde.Grid, got {type(self.grid).__name__}")
        if self.dtype not in (torch.float32, torch.float64):
            raise ValueError(f"dtype must be torch.float32 or torch.float64, got {self.dtype}")

    def discretize(self) -> Discretization:
        """The finite-difference system `operator @ u = rhs` (see `sciml.pde.discretize`)."""
        return discretize(self.grid, self.source, self.a, self.c, self.boundary, self.exact, self.constants,
                          self.dtype, self.device)
