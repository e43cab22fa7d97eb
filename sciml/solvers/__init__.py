"""Solver registry and the solvers themselves (one module per method family)."""
from .base import Solver, SolverOptionError, available, get_solver, make_solver, register, solve
from .krylov import CG, MINRES, KrylovSolver, linear_system

__all__ = ["CG", "MINRES", "KrylovSolver", "Solver", "SolverOptionError", "available", "get_solver", "linear_system",
           "make_solver", "register", "solve"]
