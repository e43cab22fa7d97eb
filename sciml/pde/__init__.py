"""PDE specifications: grids, expressions, finite-difference discretisation."""
from .discretize import Discretization, discretize
from .expressions import Expression
from .grid import Grid

__all__ = ["Discretization", "Expression", "Grid", "discretize"]
