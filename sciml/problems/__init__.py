"""The three problem kinds every solver is written against."""
from .inverse import InverseProblem
from .linear import LinearProblem
from .pde import PDEBatch, PDEProblem

__all__ = ["InverseProblem", "LinearProblem", "PDEBatch", "PDEProblem"]
