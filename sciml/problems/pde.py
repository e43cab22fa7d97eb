r"""`PDEProblem`: :math:`-\nabla\cdot(a\nabla u) + c\,u = f`, or a general :math:`\mathcal{L}[u] = f`, on a box."""
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

    Poisson: a = 1, c = 0. Helmholtz: a = 1, c = -k^2. Any other (nonlinear, first-order, ...)
    equation :math:`\mathcal{L}[u] = f` is given by `operator`, an expression in u, its derivatives
    u_x, u_xx, u_y, u_yy, u_xy, ... and the coordinates, e.g. "u_xx + u*(u**2 - 1)" (Allen–Cahn) or
    "200*u_x + u_y" (advection); such problems are solved by collocation solvers (`gp-kron`). Fields (`source`, `a`, `c`, `boundary`, `exact`)
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
        operator: :math:`\mathcal{L}[u]` as an expression string (then a and c must keep their defaults).

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
    operator: str | None = None

    kind = "pde"

    def __post_init__(self) -> None:
        if not isinstance(self.grid, Grid):
            raise TypeError(f"grid must be a sciml.pde.Grid, got {type(self.grid).__name__}")
        if self.dtype not in (torch.float32, torch.float64):
            raise ValueError(f"dtype must be torch.float32 or torch.float64, got {self.dtype}")
        if self.operator is not None:
            if not isinstance(self.operator, str):
                raise TypeError(f"operator must be an expression string, got {type(self.operator).__name__}")
            if not (isinstance(self.a, (int, float)) and self.a == 1 and isinstance(self.c, (int, float)) and self.c == 0):
                raise ValueError("give either operator or the coefficients a and c, not both")

    def discretize(self) -> Discretization:
        """The finite-difference system `operator @ u = rhs` (see `sciml.pde.discretize`)."""
        if self.operator is not None:
            raise TypeError(f"the equation {self.operator!r} = f has no finite-difference discretisation in sciml; "
                            "solve it with a collocation solver (\"gp-kron\")")
        return discretize(self.grid, self.source, self.a, self.c, self.boundary, self.exact, self.constants,
                          self.dtype, self.device)


@dataclass
class PDEBatch:
    """Independent PDE problems on one grid with one equation, solved in one batched run.

    The problems may differ in `source`, `boundary`, `exact` and `c`, and in constants used by those
    fields only. `gp-kron` solves them together: U gets a leading batch dimension, the kernels (one
    spectrum, learned from all of them) and their factorisations are shared, and every problem has its
    own precisions, statuses and errors.

    Args:
        problems: a non-empty sequence of `PDEProblem`s with the same grid, operator, a, dtype and device.

    Example:
        >>> grid = Grid(lower=(0,), upper=(1,), points=(62,))
        >>> batch = PDEBatch([PDEProblem(grid, source=f"{k}**2*sin({k}*x)", exact=f"sin({k}*x)") for k in (3, 4)])
        >>> len(batch), batch.grid is grid
        (2, True)
    """

    problems: list[PDEProblem]

    kind = "pde"

    def __post_init__(self) -> None:
        self.problems = list(self.problems) if isinstance(self.problems, (list, tuple)) else self.problems
        if not isinstance(self.problems, list) or not self.problems:
            raise TypeError("problems must be a non-empty list of PDEProblem")
        first = self.problems[0]
        for i, p in enumerate(self.problems):
            if not isinstance(p, PDEProblem):
                raise TypeError(f"problems[{i}] must be a PDEProblem, got {type(p).__name__}")
            for key in ("grid", "operator", "a", "dtype", "device"):
                if getattr(p, key) != getattr(first, key):
                    raise ValueError(f"problems[{i}].{key} = {getattr(p, key)!r} differs from problems[0].{key} = "
                                     f"{getattr(first, key)!r}: a batch shares the grid and the equation")

    def __len__(self) -> int:
        return len(self.problems)

    @property
    def grid(self) -> Grid:
        return self.problems[0].grid

    @property
    def dtype(self) -> torch.dtype:
        return self.problems[0].dtype

    @property
    def name(self) -> str:
        return self.problems[0].name
