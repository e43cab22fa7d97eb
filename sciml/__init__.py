"""sciml: PDEs and inverse problems on one solver interface.

    sol = sciml.solve(problem, "cg", rtol=1e-8)

Problems: `LinearProblem`, `PDEProblem`, `InverseProblem`. Operators: `sciml.operators`.
Kernels: `sciml.linalg`. Every solve returns a `Solution`.
"""
from . import config, linalg, operators, pde, problems, solvers
from .pde import Grid
from .problems import InverseProblem, LinearProblem, PDEBatch, PDEProblem
from .solution import Solution
from .solvers import available, register, solve
from .status import Status

__version__ = "0.1.0"

__all__ = ["Grid", "config", "InverseProblem", "LinearProblem", "PDEBatch", "PDEProblem", "Solution", "Status", "available", "linalg",
           "operators", "pde", "problems", "register", "solve", "solvers"]
