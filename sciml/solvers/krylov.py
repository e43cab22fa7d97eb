"""Krylov solvers on the solver interface: linear systems, discretised PDEs, inverse problems."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, ClassVar

import torch

from ..linalg import KrylovResult, bicgstab, cg, cgls, gmres, minres
from ..linalg._common import check_tolerances
from ..operators import IdentityOperator, LinearOperator, aslinearoperator
from ..operators.preconditioners import PRECONDITIONERS, make_preconditioner
from ..problems import InverseProblem, LinearProblem, PDEProblem
from ..solution import Solution
from .base import Solver, SolverOptionError, register


@dataclass
class LinearSystem:
    """What a Krylov kernel sees: `A x = b`, plus what the solution needs to carry."""

    A: LinearOperator
    b: torch.Tensor
    x0: torch.Tensor | None = None
    coords: dict[str, torch.Tensor] | None = None
    exact: torch.Tensor | None = None
    nullspace: bool = False
    variable: str = "x"


def linear_system(problem: Any, damp: float = 0.0) -> LinearSystem:
    """Reduce a problem to one linear system.

    `LinearProblem`: as is. `PDEProblem`: its finite-difference discretisation. `InverseProblem`:
    the (damped) normal equations :math:`(A^H A + \\mathrm{damp}^2 I) x = A^H y`.
    """
    if damp and not isinstance(problem, InverseProblem):
        raise SolverOptionError("option 'damp' applies only to an InverseProblem (Tikhonov-damped normal equations)")
    if isinstance(problem, LinearProblem):
        return LinearSystem(problem.A, problem.b, problem.x0)
    if isinstance(problem, PDEProblem):
        d = problem.discretize()
        return LinearSystem(d.operator, d.rhs, None, d.coords, d.exact, d.nullspace, "u")
    if isinstance(problem, InverseProblem):
        F = problem.forward
        A = F.normal()
        if damp:
            A = A + damp**2 * IdentityOperator(F.in_shape, dtype=F.dtype, device=F.device)
        return LinearSystem(A, F.adjoint(problem.y))
    raise TypeError(f"cannot make a linear system from {type(problem).__name__}")


@dataclass
class KrylovSolver(Solver):
    """Shared options and driver of the Krylov solvers; subclasses implement `kernel`."""

    accepts: ClassVar[tuple[type, ...]] = (LinearProblem, PDEProblem, InverseProblem)

    rtol: float = 1e-5
    atol: float = 0.0
    maxiter: int | None = None
    M: Any = None
    callback: Callable | None = None
    check_every: int | None = None
    damp: float = 0.0

    def __post_init__(self) -> None:
        try:
            check_tolerances(self.rtol, self.atol, self.maxiter)
        except ValueError as err:
            raise SolverOptionError(f"{self.name}: {err}") from None
        if not (isinstance(self.damp, (int, float)) and self.damp >= 0):
            raise SolverOptionError(f"{self.name}: damp must be a number >= 0, got {self.damp!r}")
        if self.check_every is not None and (not isinstance(self.check_every, int) or self.check_every < 1):
            raise SolverOptionError(f"{self.name}: check_every must be a positive integer, got {self.check_every!r}")
        if isinstance(self.M, str):
            if self.M not in PRECONDITIONERS:
                raise SolverOptionError(f"{self.name}: unknown preconditioner M={self.M!r}; expected one of "
                                        f"{', '.join(PRECONDITIONERS)}, or an operator")
        elif self.M is not None and not callable(self.M) and not isinstance(self.M, torch.Tensor):
            self.M = aslinearoperator(self.M)

    def kernel(self, A: LinearOperator, b: torch.Tensor, x0: torch.Tensor | None, M: Any) -> KrylovResult:
        raise NotImplementedError

    def _controls(self) -> dict[str, Any]:
        return dict(rtol=self.rtol, atol=self.atol, maxiter=self.maxiter, callback=self.callback,
                    check_every=self.check_every)

    def solve(self, problem: Any) -> Solution:
        system = linear_system(problem, self.damp)
        result = self.kernel(system.A, system.b, system.x0, make_preconditioner(self.M, system.A))
        return _solution(result, system)


def _solution(result: KrylovResult, system: LinearSystem) -> Solution:
    """Wrap a kernel result as a `Solution`, with the problem's coordinates and exact solution."""
    x, exact = result.x, system.exact
    if system.nullspace:  # the solution is defined up to a constant: report the zero-mean one
        x = x - x.mean(dim=tuple(range(-x.ndim + result.status.ndim, 0)), keepdim=True)
        exact = None if exact is None else exact - exact.mean()
    b_norm = result.info["b_norm"]
    rel = result.info["residual_norm"] / torch.where(b_norm > 0, b_norm, 1)
    info = {"reason": result.info["reason"], "relative_residual": float(rel.max()) if rel.numel() else 0.0}
    stats = {"status": result.status, "iterations": result.iterations}
    return Solution(x, result.residuals, stats, info, coords=system.coords, exact=exact, variable=system.variable)


@register
@dataclass
class CG(KrylovSolver):
    """Conjugate gradients (preconditioned with M) for Hermitian positive definite systems."""

    name: ClassVar[str] = "cg"

    def kernel(self, A: LinearOperator, b: torch.Tensor, x0: torch.Tensor | None, M: Any) -> KrylovResult:
        return cg(A, b, x0=x0, M=M, **self._controls())


@register
@dataclass
class MINRES(KrylovSolver):
    """MINRES for Hermitian systems, definite or not (Helmholtz); M must be positive definite."""

    name: ClassVar[str] = "minres"

    def kernel(self, A: LinearOperator, b: torch.Tensor, x0: torch.Tensor | None, M: Any) -> KrylovResult:
        return minres(A, b, x0=x0, M=M, **self._controls())


@register
@dataclass
class PCG(CG):
    """Preconditioned conjugate gradients; M defaults to Jacobi ("jacobi", "fft", "pyamg" or an operator)."""

    name: ClassVar[str] = "pcg"
    M: Any = "jacobi"


@register
@dataclass
class GMRES(KrylovSolver):
    """Restarted GMRES(restart) for general square systems, right-preconditioned."""

    name: ClassVar[str] = "gmres"
    restart: int = 20

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.restart, int) or isinstance(self.restart, bool) or self.restart < 1:
            raise SolverOptionError(f"{self.name}: restart must be a positive integer, got {self.restart!r}")

    def kernel(self, A: LinearOperator, b: torch.Tensor, x0: torch.Tensor | None, M: Any) -> KrylovResult:
        return gmres(A, b, x0=x0, M=M, restart=self.restart, **self._controls())


@register
@dataclass
class BiCGStab(KrylovSolver):
    """BiCGStab for general square systems (two products with A per iteration)."""

    name: ClassVar[str] = "bicgstab"

    def kernel(self, A: LinearOperator, b: torch.Tensor, x0: torch.Tensor | None, M: Any) -> KrylovResult:
        return bicgstab(A, b, x0=x0, M=M, **self._controls())


@register
@dataclass
class CGLS(KrylovSolver):
    """CGLS least squares min ||A x - b||² + damp²||x||² for any (non-square) operator; no preconditioner."""

    name: ClassVar[str] = "cgls"
    accepts: ClassVar[tuple[type, ...]] = (LinearProblem, InverseProblem)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.M is not None:
            raise SolverOptionError(f"{self.name}: takes no preconditioner M")

    def solve(self, problem: Any) -> Solution:
        if isinstance(problem, InverseProblem):
            A, b, x0 = problem.forward, problem.y, None
        else:
            A, b, x0 = problem.A, problem.b, problem.x0
        result = cgls(A, b, x0=x0, damp=self.damp, **self._controls())
        return _solution(result, LinearSystem(A, b))
