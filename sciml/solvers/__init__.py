"""Solver registry and the solvers themselves (one module per method family)."""
from .base import Solver, SolverOptionError, available, get_solver, make_solver, register, solve
from .krylov import CG, KrylovSolver, linear_system

__all__ = ["CG", "KrylovSolver", "Solver", "SolverOptionError", "available", "get_solver", "linear_system",
           "make_solver", "register", "solve"]
