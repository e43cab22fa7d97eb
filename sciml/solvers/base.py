"""Solvers: small configured objects, registered by name, driven by `sciml.solve`."""
from __future__ import annotations

import dataclasses
import time
from typing import Any, ClassVar

import torch

from ..problems import InverseProblem, LinearProblem, PDEProblem
from ..solution import Solution

PROBLEM_KINDS = {"linear": LinearProblem, "pde": PDEProblem, "inverse": InverseProblem}
_REGISTRY: dict[str, type["Solver"]] = {}


class SolverOptionError(TypeError, ValueError):
    """An unknown or invalid solver option (a TypeError like a bad keyword, and a ValueError)."""


class Solver:
    """Base class: a dataclass of options plus `solve(problem) -> Solution`.

    Subclasses set `name` (the registry key) and `accepts` (problem classes), and are registered
    with `@register`. Options are validated in `__post_init__`, so a bad value fails at construction.
    """

    name: ClassVar[str] = ""
    accepts: ClassVar[tuple[type, ...]] = ()

    def solve(self, problem: Any) -> Solution:
        raise NotImplementedError

    def options(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def option_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def describe(cls) -> str:
        return (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""


def register(cls: type[Solver]) -> type[Solver]:
    """Class decorator adding a solver dataclass to the registry under `cls.name`."""
    if not cls.name or not dataclasses.is_dataclass(cls):
        raise TypeError("a registered solver must be a dataclass with a non-empty `name`")
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"a solver named {cls.name!r} is already registered")
    _REGISTRY[cls.name] = cls
    return cls


def available() -> dict[str, type[Solver]]:
    """Registered solvers by name."""
    return dict(sorted(_REGISTRY.items()))


def get_solver(name: str) -> type[Solver]:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown solver {name!r}; registered solvers: {', '.join(sorted(_REGISTRY))}") from None


def make_solver(solver: str | Solver, **options: Any) -> Solver:
    """A solver object from a registered name (or an existing solver) and options."""
    if not isinstance(solver, (str, Solver)):
        raise TypeError(f"solver must be a registered name or a Solver object, got {type(solver).__name__}")
    cls = get_solver(solver) if isinstance(solver, str) else type(solver)
    valid = cls.option_names()
    for key in options:
        if key not in valid:
            raise SolverOptionError(f"unknown option {key!r} for solver {cls.name!r}; valid options: {', '.join(valid)}")
    if isinstance(solver, str):
        return cls(**options)
    return dataclasses.replace(solver, **options) if options else solver


def solve(problem: Any, solver: str | Solver = "cg", **options: Any) -> Solution:
    """Solve `problem` with `solver` (a registered name or a solver object) and return a `Solution`.

    Keyword options configure the solver (e.g. `rtol=1e-8`); an unknown option is an error that
    lists the valid ones. The wall time covers discretisation and solve; when the problem has an
    exact solution, `info["rel_l2_error"]` is the worst relative l2 error over the batch.

    Example:
        >>> import sciml, torch
        >>> A = sciml.operators.laplacian((50,))
        >>> sol = sciml.solve(sciml.LinearProblem(A, torch.ones(50, dtype=torch.float64)), "cg", rtol=1e-10)
        >>> sol.converged, sol.iterations
        (True, 25)
    """
    solver = make_solver(solver, **options)
    if not isinstance(problem, solver.accepts):
        kinds = ", ".join(c.__name__ for c in solver.accepts)
        raise TypeError(f"solver {solver.name!r} does not accept a {type(problem).__name__}; it accepts: {kinds}")
    start = time.perf_counter()
    sol = solver.solve(problem)
    if sol.x.is_cuda:
        torch.cuda.synchronize(sol.x.device)
    sol.time = time.perf_counter() - start
    sol.info = {"solver": solver.name, "options": solver.options(), **sol.info}
    if sol.exact is not None:
        sol.info["rel_l2_error"] = relative_error(sol.x, sol.exact, sol.x.ndim - sol.stats["status"].ndim)
    return sol


def relative_error(x: torch.Tensor, ref: torch.Tensor, nspace: int) -> float:
    """max over the batch of ||x - ref|| / ||ref|| over the trailing `nspace` dims."""
    dims = tuple(range(-nspace, 0))
    err = torch.linalg.vector_norm(x - ref, dim=dims) / torch.linalg.vector_norm(ref, dim=dims)
    return float(err.max())
