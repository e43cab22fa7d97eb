"""The three problem kinds every solver is written against."""
from .inverse import InverseProblem
from .linear import LinearProblem
from .pde import PDEProblem

__all__ = ["InverseProblem", "LinearProblem", "PDEProblem"]
