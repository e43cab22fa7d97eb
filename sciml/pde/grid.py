"""Tensor-product grids on boxes, with per-axis boundary conditions deciding where unknowns sit."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch

from ..operators.stencil import normalize_bc

AXIS_NAMES = ("x", "y", "z")


@dataclass(frozen=True)
class Grid:
    """A box `[lower, upper]` with `points[d]` unknowns along axis d.

    Where the unknowns sit depends on the boundary condition of the axis (see
    `sciml.operators.stencil`): Dirichlet: interior nodes, `h = L/(n+1)`; Neumann: cell centres,
    `h = L/n`; periodic: `lower + i h`, `h = L/n`.

    Example:
        >>> Grid(lower=(0, 0), upper=(1, 1), points=(63, 63), bc="dirichlet").spacing
        (0.015625, 0.015625)
    """

    lower: tuple[float, ...]
    upper: tuple[float, ...]
    points: tuple[int, ...]
    bc: tuple[str, ...] | str = "dirichlet"

    def __post_init__(self) -> None:
        points = (self.points,) if isinstance(self.points, int) else tuple(self.points)
        ndim = len(points)
        if not 1 <= ndim <= 3:
            raise ValueError(f"points must give 1, 2 or 3 axes, got {self.points!r}")
        if any(not isinstance(p, int) or isinstance(p, bool) or p < 2 for p in points):
            raise ValueError(f"points must be integers >= 2, got {self.points!r}")
        lower = _floats(self.lower, ndim, "lower")
        upper = _floats(self.upper, ndim, "upper")
        if any(lo >= hi for lo, hi in zip(lower, upper)):
            raise ValueError(f"lower must be < upper on every axis, got lower={lower}, upper={upper}")
        object.__setattr__(self, "points", points)
        object.__setattr__(self, "lower", lower)
        object.__setattr__(self, "upper", upper)
        object.__setattr__(self, "bc", normalize_bc(self.bc, ndim))

    @property
    def ndim(self) -> int:
        return len(self.points)

    @property
    def names(self) -> tuple[str, ...]:
        return AXIS_NAMES[: self.ndim]

    @property
    def spacing(self) -> tuple[float, ...]:
        return tuple((hi - lo) / (n + 1 if bc == "dirichlet" else n)
                     for lo, hi, n, bc in zip(self.lower, self.upper, self.points, self.bc))

    def nodes(self, d: int, dtype: torch.dtype = torch.float64, device: Any = None) -> torch.Tensor:
        """Coordinates of the unknowns along axis d, `(points[d],)`."""
        h, n = self.spacing[d], self.points[d]
        offset = {"dirichlet": 1.0, "neumann": 0.5, "periodic": 0.0}[self.bc[d]]
        return self.lower[d] + (torch.arange(n, dtype=dtype, device=device) + offset) * h

    def faces(self, d: int, dtype: torch.dtype = torch.float64, device: Any = None) -> torch.Tensor:
        """Coordinates of the n+1 faces (midpoints between an unknown and its neighbour/ghost) along axis d."""
        nodes = self.nodes(d, dtype, device)
        return torch.cat([nodes[:1] - self.spacing[d] / 2, nodes + self.spacing[d] / 2])

    def coords(self, dtype: torch.dtype = torch.float64, device: Any = None) -> dict[str, torch.Tensor]:
        return {name: self.nodes(d, dtype, device) for d, name in enumerate(self.names)}

    def mesh(self, axes: Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        """Per-axis coordinate vectors reshaped to broadcast against each other, e.g. (n0,1), (1,n1)."""
        out = []
        for d, t in enumerate(axes):
            shape = [1] * self.ndim
            shape[d] = t.numel()
            out.append(t.reshape(shape))
        return tuple(out)


def _floats(v: Any, ndim: int, name: str) -> tuple[float, ...]:
    vals = (v,) * ndim if isinstance(v, (int, float)) else tuple(v)
    if len(vals) != ndim or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in vals):
        raise ValueError(f"{name} must be {ndim} numbers (one per axis), got {v!r}")
    return tuple(float(x) for x in vals)
