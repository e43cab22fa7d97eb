r"""`gp-kron`: GP-HM, the spectral-mixture Gaussian-process PDE solver on Kronecker grids.

Fang, Xu, Li, Kirby, Zhe, "Solving High Frequency and Multi-Scale PDEs with Gaussian Processes",
ICLR 2024. The model and its log joint live in `sciml.models.gphm`; this module sets up the
collocation problem from a `PDEProblem` and maximises the log joint.

Collocation: `linspace(lower, upper, n + 2)` per axis, i.e. the problem grid's unknowns plus the two
boundary nodes; Dirichlet data g on every boundary node; the residual
:math:`H = \mathcal{L}[u] - f` at every node, :math:`\mathcal{L}` given by `PDEProblem.operator`
(default :math:`-\Delta u + c u`).

Optimisers:

- ``"alternating"`` (default, sciml's): block-coordinate ascent on the log joint, in its
  large-precision limit. (1) U given the kernels: the boundary data are imposed exactly and the PDE at
  every interior node (N equations, N unknowns; the limit :math:`\tau_1, \tau_2 \to \infty`, where
  the joint's maximiser in U goes), by Newton steps with GMRES preconditioned by the exact inverse of
  the Kronecker-sum part of the Jacobian (one eigendecomposition per axis, O(N Σ n_j) per application);
  then U is replaced by the GP posterior mean at the nodes, which removes the directions only the
  jitter allows (the prior's job). (2) The precisions in closed form, :math:`\tau_1 = N_b/\|u_b - g\|^2`,
  :math:`\tau_2 = N_c/\|H\|^2`, capped at `max_precision`. (3) `kernel_steps` L-BFGS iterations on
  the kernel parameters with U and the precisions fixed (the terms of the joint that depend on them:
  the prior and the residual likelihood). Stops when the relative change of U over an outer iteration
  is below `rtol`, or by `patience` (below): the exact solution is never looked at.
- ``"adam"``: the paper's schedule: joint Adam (lr 0.01) on U, the kernels and the log-precisions,
  boundary weight `boundary_weight`; the same stopping rule, checked every `check_every` steps.

Model selection without the exact solution: after every round (check) the PDE residual of the
posterior mean is measured at the cell midpoints, off the collocation nodes (`validation_residual`;
collocation makes it vanish at the nodes, so between them it measures how well the kernels
interpolate). The round with the smallest one is returned (U with the kernels of that round), and the
run stops when it has not improved by 1 % for `patience` rounds. The paper instead reports its best
checkpoint chosen with the exact solution.

Both record the history (wall time, relative PDE residual, change, off-node residual, and the error
when the exact solution is known, for time-to-accuracy curves) in `Solution.info["history"]`.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

import torch

from ..models.gp_kernels import KERNEL_KINDS
from ..linalg import kron_matvec
from ..models.gphm import GPHM, GPFactors, _along
from ..pde.discretize import evaluate
from ..pde.expressions import Expression, derivative_names
from ..problems import PDEBatch, PDEProblem
from ..solution import Solution
from ..status import Status
from .base import Solver, SolverOptionError, register

OPTIMIZERS = ("alternating", "adam")
JITTER = {"student-t": 1e-6, "matern": 1e-6, "gaussian": 1e-4, "se": 1e-4}  # default per kernel kind


@dataclass
class Collocation:
    """A `PDEProblem` (or `PDEBatch`) on the GP-HM collocation grid (boundary nodes included)."""

    axes: list[torch.Tensor]  # collocation coordinates per axis
    source: torch.Tensor  # f at every node, (*batch, *points)
    boundary: torch.Tensor  # bool mask of the boundary nodes, (*points,)
    g: torch.Tensor  # Dirichlet data at the boundary nodes, (*batch, N_b)
    operator: Expression
    alphas: dict[str, tuple[int, ...]]  # derivative name -> multi-index
    coords: dict[str, torch.Tensor]  # broadcastable coordinates (and c) for the operator's expression
    exact: torch.Tensor | None  # exact solution at every node, (*batch, *points)
    check: "Collocation | None" = None  # the same PDE at the cell midpoints (no boundary, no exact), for validation

    @property
    def batch(self) -> tuple[int, ...]:
        return tuple(self.source.shape[: self.source.ndim - len(self.axes)])

    @property
    def dims(self) -> tuple[int, ...]:
        """The grid dimensions of a field, counted from the end."""
        return tuple(range(-len(self.axes), 0))

    def operator_value(self, derivs: dict[str, torch.Tensor]) -> torch.Tensor:
        value = self.operator(**derivs, **self.coords)
        return torch.broadcast_to(torch.as_tensor(value, dtype=self.source.dtype), self.source.shape)


def collocation(problem: PDEProblem | PDEBatch) -> Collocation:
    """The collocation set-up of `problem` (a `PDEBatch`: fields with a leading batch dimension);
    clear errors for what GP-HM does not support."""
    problems = problem.problems if isinstance(problem, PDEBatch) else [problem]
    first = problems[0]
    grid = first.grid
    if any(bc != "dirichlet" for bc in grid.bc):
        raise ValueError(f"gp-kron needs Dirichlet boundary data on every axis, got bc {grid.bc}")
    names = grid.names
    if first.operator is not None:
        text = first.operator
    else:
        if not (isinstance(first.a, (int, float)) and first.a == 1):
            raise ValueError("gp-kron supports a = 1 (give a variable-coefficient equation as operator=\"...\")")
        text = "-(" + " + ".join(f"u_{n}{n}" for n in names) + ") + c*u"
    table = derivative_names(names)
    has_c = first.operator is None
    variables = ["u", *table, *names, *(["c"] if has_c else [])]
    operator = Expression(text, variables, first.constants)
    operator = Expression(text, [v for v in variables if v in operator.names], first.constants)
    alphas = {name: table[name] for name in operator.names if name in table}
    for i, p in enumerate(problems):
        for name in operator.names - set(variables):
            if name in first.constants and p.constants.get(name) != first.constants[name]:
                raise ValueError(f"problems[{i}]: the constant {name!r} of the operator {text!r} differs from "
                                 f"problems[0]'s: a batch shares the equation")
        for key in ("source", "boundary", "exact") + (("c",) if has_c else ()):
            if isinstance(getattr(p, key), torch.Tensor):
                raise TypeError(f"gp-kron evaluates {key} on its own collocation nodes: give a number, an expression "
                                f"string or a callable, not a tensor")
    axes = [torch.linspace(lo, hi, n + 2, dtype=torch.float64) for lo, hi, n in zip(grid.lower, grid.upper, grid.points)]

    def fields(axes: list[torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        coords = dict(zip(names, grid.mesh(axes)))
        if has_c:
            coords["c"] = field_of(problem, "c", axes)
        return field_of(problem, "source", axes), coords

    midpoints = [(t[:-1] + t[1:]) / 2 for t in axes]
    check_source, check_coords = fields(midpoints)
    check = Collocation(midpoints, check_source, torch.zeros(check_source.shape[-len(axes):], dtype=torch.bool),
                        check_source.new_zeros(0), operator, alphas, check_coords, None)
    source, coords = fields(axes)
    shape = tuple(t.numel() for t in axes)
    boundary = torch.zeros(shape, dtype=torch.bool)
    for d, n in enumerate(shape):
        index = [slice(None)] * len(shape)
        for i in (0, n - 1):
            index[d] = i
            boundary[tuple(index)] = True
    g = field_of(problem, "boundary", axes)[..., boundary]
    exact = None if any(p.exact is None for p in problems) else field_of(problem, "exact", axes)
    return Collocation(axes, source, boundary, g, operator, alphas, coords, exact, check)


def field_of(problem: PDEProblem | PDEBatch, key: str, axes: list[torch.Tensor]) -> torch.Tensor:
    """The field `key` ("source", "boundary", "exact", "c") of `problem` at the tensor grid `axes`,
    `(*points)`, or `(batch, *points)` for a `PDEBatch`."""
    grid = problem.grid
    mesh, shape = grid.mesh(axes), tuple(t.numel() for t in axes)
    problems = problem.problems if isinstance(problem, PDEBatch) else [problem]
    values = [evaluate(getattr(p, key), grid, mesh, shape, key, p.constants, torch.float64) for p in problems]
    return torch.stack(values) if isinstance(problem, PDEBatch) else values[0]


@register
@dataclass
class GPKron(Solver):
    """GP-HM: spectral-mixture GP collocation on a Kronecker grid (high-frequency/multi-scale PDEs)."""

    name: ClassVar[str] = "gp-kron"
    accepts: ClassVar[tuple[type, ...]] = (PDEProblem, PDEBatch)

    kernel: str = "student-t"
    components: int = 30
    max_frequency: float | list = 20.0
    smooth_component: bool = False  # one extra plain component per axis (the paper code's "extra GP")
    boundary_weight: float = 200.0
    jitter: float | None = None  # default 1e-6 (student-t, matern; the paper's), 1e-4 (gaussian, se: smoother, worse conditioned)
    optimizer: str = "alternating"
    maxiter: int = 100
    kernel_steps: int = 20
    rtol: float = 1e-5
    lr: float = 0.01
    check_every: int = 100
    max_precision: float = 1e10
    newton_steps: int = 3
    patience: int = 5  # stop when the off-node PDE residual has not improved for this many rounds (checks)
    test_points: int = 300  # per axis (capped so the test grid has at most ~1e6 points)
    progress: bool = False

    def __post_init__(self) -> None:
        if self.kernel not in KERNEL_KINDS:
            raise SolverOptionError(f"kernel must be one of {', '.join(KERNEL_KINDS)}, got {self.kernel!r}")
        if self.optimizer not in OPTIMIZERS:
            raise SolverOptionError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        for key in ("components", "maxiter", "kernel_steps", "check_every", "newton_steps", "test_points", "patience"):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < (0 if key == "test_points" else 1):
                raise SolverOptionError(f"{key} must be a positive integer, got {value!r}")
        for key in ("boundary_weight", "jitter", "lr", "max_precision"):
            value = getattr(self, key)
            if key == "jitter" and value is None:
                continue
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not (value > 0 and math.isfinite(value)):
                raise SolverOptionError(f"{key} must be a positive number, got {value!r}")
        if not isinstance(self.smooth_component, bool):
            raise SolverOptionError(f"smooth_component must be true or false, got {self.smooth_component!r}")
        if not isinstance(self.rtol, (int, float)) or not self.rtol >= 0:
            raise SolverOptionError(f"rtol must be a number >= 0, got {self.rtol!r}")
        freqs = self.max_frequency if isinstance(self.max_frequency, (list, tuple)) else [self.max_frequency]
        if not freqs or any(not isinstance(f, (int, float)) or isinstance(f, bool) or not (f >= 0 and math.isfinite(f)) for f in freqs):
            raise SolverOptionError(f"max_frequency must be a number >= 0 or one per axis, got {self.max_frequency!r}")

    # ------------------------------------------------------------------------------------------
    def solve(self, problem: PDEProblem | PDEBatch) -> Solution:
        setup = collocation(problem)
        points = [t.numel() for t in setup.axes]
        freqs = self.max_frequency if isinstance(self.max_frequency, (list, tuple)) else [self.max_frequency] * len(points)
        if len(freqs) != len(points):
            raise SolverOptionError(f"max_frequency gives {len(freqs)} values for a {len(points)}-D problem")
        for d, (t, f) in enumerate(zip(setup.axes, freqs)):
            nyquist = (t.numel() - 1) / (2 * float(t[-1] - t[0]))
            if f > nyquist and self.kernel in ("student-t", "gaussian"):
                raise SolverOptionError(f"max_frequency {f:g} on axis {problem.grid.names[d]} is above the grid's Nyquist "
                                        f"frequency {nyquist:.4g}: refine the grid (problem.grid.points) or lower it")
        model = GPHM([float(t[0]) for t in setup.axes], [float(t[-1]) for t in setup.axes], points, self.components,
                     self.kernel, [float(f) for f in freqs], self.jitter or JITTER[self.kernel], batch=setup.batch,
                     smooth=self.smooth_component)
        run = _Run(self, model, setup)
        status = run.alternating() if self.optimizer == "alternating" else run.adam()
        run.restore_best()
        return run.solution(problem, status)


class _Run:
    """One optimisation of the GP-HM log joint; keeps the history."""

    def __init__(self, solver: GPKron, model: GPHM, setup: Collocation):
        self.s, self.m, self.c = solver, model, setup
        self.orders = [set() for _ in setup.axes]
        for alpha in setup.alphas.values():
            for j, r in enumerate(alpha):
                self.orders[j].add(r)
        self.U = torch.zeros_like(setup.source)
        self._is_linear = False
        self.iterations = 0  # outer rounds (alternating) or Adam steps
        self.reason: str | None = None
        self.tau, self.v = 1.0, 1.0
        self.start = time.perf_counter()
        self.history: dict[str, list[float]] = {"time": [], "residual": [], "change": [], "validation": []}
        self.best: tuple[float, int, torch.Tensor, list[torch.Tensor]] | None = None  # (validation, round, U, kernels)
        self.gained = 0  # the last round (check) that lowered the best validation residual by 1 % or more
        if setup.exact is not None:
            self.history["rel_l2_error"] = []
        self.f_norm = float(setup.source.norm()) or 1.0

    # --- the pieces of the log joint -------------------------------------------------------------
    def derivatives(self, U: torch.Tensor, F: GPFactors) -> dict[str, torch.Tensor]:
        out = {name: self.m.derivative(U, F, alpha) for name, alpha in self.c.alphas.items()}
        out["u"] = U
        return out

    def residual(self, U: torch.Tensor, F: GPFactors) -> torch.Tensor:
        return self.c.operator_value(self.derivatives(U, F)) - self.c.source

    def validation(self, U: torch.Tensor, F: GPFactors) -> float:
        r"""The PDE residual of the posterior mean at the cell midpoints, off the collocation nodes, relative
        to :math:`\|f\|` there (root mean square when f = 0); the mean over a batch. Collocation makes the residual vanish at the
        nodes; between them it measures how well the kernels interpolate U. It never looks at the exact
        solution, so it can choose the returned round and stop the optimisation."""
        check, m = self.c.check, self.m
        maps = []
        for j, (kernel, t) in enumerate(zip(m.kernels, check.axes)):
            orders = {0} | self.orders[j]
            cross = kernel.matrices(t, m.nodes(j), order=max(orders))
            maps.append({r: torch.cholesky_solve(cross[r].mT, F.cholesky[j]).mT for r in orders})
        alphas = {"u": (0,) * m.ndim, **check.alphas}
        derivs = {name: kron_matvec([maps[j][r] for j, r in enumerate(alpha)], U) for name, alpha in alphas.items()}
        H = check.operator_value(derivs) - check.source
        f = torch.linalg.vector_norm(check.source, dim=check.dims)
        rms = math.sqrt(math.prod(H.shape[-m.ndim:]))
        return float((torch.linalg.vector_norm(H, dim=check.dims) / torch.where(f > 0, f, rms)).mean())

    def keep_best(self, U: torch.Tensor, F: GPFactors) -> bool:
        """Record the validation residual of (U, current kernels); keep them if best. True when the last
        `patience` checks brought no improvement of at least 1 %."""
        value = self.validation(U, F)
        self.history["validation"].append(value)
        count = len(self.history["validation"])
        if self.best is None or value < 0.99 * self.best[0]:
            self.gained = count
        if self.best is None or value < self.best[0]:
            self.best = (value, count, U.clone(), _snapshot(list(self.m.kernels.parameters())))
        return count - self.gained >= self.s.patience

    def restore_best(self) -> None:
        """Return to the round (check) with the smallest validation residual: U and the kernels that go with it."""
        if self.best is not None:
            _, _, U, kernels = self.best
            self.U = U
            _restore(list(self.m.kernels.parameters()), kernels)

    def neg_log_joint(self, U, F, log_tau, log_v) -> torch.Tensor:
        A = self.m.weights(U, F)
        H = self.residual(U, F)
        rb = U[..., self.c.boundary] - self.c.g
        nb, nc = rb.shape[-1], math.prod(H.shape[-self.m.ndim:])
        boundary = 0.5 * nb * log_tau - 0.5 * log_tau.exp() * rb.pow(2).sum(-1)
        equation = 0.5 * nc * log_v - 0.5 * log_v.exp() * H.pow(2).sum(self.c.dims)
        return -(self.m.log_prior(U, A, F) + self.s.boundary_weight * boundary + equation).sum()

    # --- the U block ------------------------------------------------------------------------------
    def linearize(self, U: torch.Tensor, F: GPFactors) -> tuple[torch.Tensor, Callable, dict[str, torch.Tensor]]:
        r"""H(U), the Jacobian J of the residual as a closure, and its pointwise coefficients
        :math:`\partial\mathcal{L}/\partial(\partial^\alpha u)` (name -> tensor on the grid)."""
        derivs = {k: v.detach().requires_grad_(True) for k, v in self.derivatives(U, F).items()}
        value = self.c.operator_value(derivs)
        grads = torch.autograd.grad(value.sum(), list(derivs.values()), allow_unused=True)
        coef = {k: (g if g is not None else torch.zeros_like(U)) for k, g in zip(derivs, grads)}
        H = value.detach() - self.c.source

        def J(w: torch.Tensor) -> torch.Tensor:
            return coef["u"] * w + sum(coef[n] * self.m.derivative(w, F, alpha) for n, alpha in self.c.alphas.items())

        return H, J, coef

    def collocate(self, F: GPFactors) -> bool:
        r"""The U block in its :math:`\tau_1, \tau_2 \to \infty` limit (boundary and PDE as constraints).

        U takes the boundary data exactly and satisfies the PDE at the interior nodes (N equations,
        N unknowns). Newton steps; each linear system is solved by GMRES, preconditioned by the exact
        inverse of the Kronecker-sum part of the Jacobian with its coefficients averaged over the grid,
        :math:`\sum_j \bar c_j\, (C_j^{(r)} C_j^{-1})_{\mathrm{int}}` along axis j, applied through one
        eigendecomposition per axis in O(N Σ n_j). For a constant-coefficient operator without mixed
        derivatives (Poisson, advection) the preconditioner is the exact inverse, but for ill-conditioned
        kernels its factorisation is inexact: a linear system solved only to between 1e-8 and 1e-4 gets
        further steps on its remaining residual (iterative refinement). Returns False (and leaves U as
        it was) when GMRES cannot solve the first system to 1e-4: the collocation system is then
        numerically singular for the current kernels (for a nonlinear operator, Newton steps solved to
        1e-2 are accepted (inexact Newton); a later step that fails ends the Newton loop).
        """
        from ..linalg import gmres
        from ..operators import aslinearoperator

        c, m = self.c, self.m
        inner = (..., *(slice(1, -1) for _ in c.axes))
        U = self.U.clone()
        U[..., c.boundary] = c.g
        shape = U.shape[U.ndim - m.ndim:]
        maps = [{r: torch.cholesky_solve(F.matrices[j][r].mT, F.cholesky[j]).mT[1:-1, 1:-1] for r in self.orders[j] if r}
                for j in range(m.ndim)]
        for step in range(self.s.newton_steps):
            H, J, coef = self.linearize(U, F)
            means = {k: float(t.mean()) for k, t in coef.items()}
            solve_sum = _kronecker_sum_inverse(maps, [n - 2 for n in shape], c.alphas, means, U.dtype)

            def jacobian(d: torch.Tensor) -> torch.Tensor:
                full = torch.zeros(*d.shape[: d.ndim - m.ndim], *shape, dtype=d.dtype)
                full[inner] = d
                return J(full)[inner]

            rhs = -H[inner]
            J_int = aslinearoperator(jacobian, in_shape=tuple(n - 2 for n in shape))  # batched: one system per problem
            result = gmres(J_int, rhs, M=solve_sum, rtol=1e-9, restart=40, maxiter=200)
            rhs_norm = torch.linalg.vector_norm(rhs, dim=c.dims).clamp_min(1e-300)
            reduction = float((result.info["residual_norm"] / rhs_norm).max())  # the worst system of a batch
            if not reduction <= (1e-4 if self._is_linear else 1e-2):  # inexact Newton steps are fine
                if step == 0:
                    return False
                break
            U[inner] = U[inner] + result.x
            # a linear system solved to 1e-8 is done; a less accurate solve gets refinement steps
            if (self._is_linear and reduction <= 1e-8) or float(result.x.norm()) <= 1e-12 * float(U.norm()):
                break
        # The square collocation system leaves the directions the kernel rules out (those only the
        # jitter allows) undetermined; the prior would remove them: keep the posterior mean.
        self.U = self.m.smooth(U, F)
        return True

    # --- optimisers -------------------------------------------------------------------------------
    def alternating(self) -> Status:
        params = list(self.m.kernels.parameters())
        self._is_linear = self._check_linear()
        for it in range(self.s.maxiter):
            previous = self.U.clone()
            with torch.no_grad():
                F = self.m.factors(self.orders)
            if not self.collocate(F):
                self.reason = ("the collocation system is numerically singular for the learned kernels (GMRES did "
                               "not converge); the best completed round is returned")
                return Status.BREAKDOWN
            scale = max(float(previous.abs().max()), float(self.c.g.abs().max()))
            if it and not float(self.U.abs().max()) <= 1e3 * scale:  # also catches NaN
                self.U = previous
                self.reason = ("the solution grew a thousandfold in one round (diverging); the best completed round "
                               "is returned")
                return Status.BREAKDOWN
            with torch.no_grad():
                stalled = self.keep_best(self.U, F)
                H = self.residual(self.U, F)
                rb = self.U[..., self.c.boundary] - self.c.g
                cap = self.s.max_precision
                self.tau = (rb.shape[-1] / rb.pow(2).sum(-1).clamp_min(1e-300)).clamp(max=cap)  # per problem
                self.v = (math.prod(H.shape[-self.m.ndim:]) / H.pow(2).sum(self.c.dims).clamp_min(1e-300)).clamp(max=cap)
            moved = self._kernel_steps(params)
            self.iterations += 1
            change = float((self.U - previous).norm() / max(float(self.U.norm()), 1e-300))
            self._record(H, change)
            if not math.isfinite(change) or not torch.isfinite(self.U).all():
                return Status.NONFINITE
            if self._stops(change if moved else math.inf, stalled, "round"):
                return Status.SUCCESS
        return Status.MAX_ITERATIONS

    def _stops(self, change: float, stalled: bool, unit: str) -> bool:
        """Whether U changed by less than `rtol` over the last `unit` or the off-node residual stalled
        (then `reason` says which)."""
        if change <= self.s.rtol:
            self.reason = f"the relative change of U over a {unit} fell below rtol"
        elif stalled:
            self.reason = (f"the off-node PDE residual did not improve for {self.s.patience} {unit}s; the {unit} "
                           f"with the smallest one is returned")
        return change <= self.s.rtol or stalled

    def _kernel_steps(self, params: list[torch.nn.Parameter]) -> bool:
        """L-BFGS on the kernel parameters with U and the precisions fixed; False if no step was taken.

        A line-search trial can make a kernel matrix numerically indefinite; the step is then undone
        and replaced by small Adam steps (lr `lr`), each kept only if the factorisation succeeds.
        """
        U, v = self.U, self.v

        def objective() -> torch.Tensor:
            F = self.m.factors(self.orders)
            misfit = 0.5 * v * self.residual(U, F).pow(2).sum(self.c.dims)
            return (misfit - self.m.log_prior(U, self.m.weights(U, F), F)).sum()

        saved = _snapshot(params)
        opt = torch.optim.LBFGS(params, lr=1, max_iter=self.s.kernel_steps, history_size=20, line_search_fn="strong_wolfe")

        def closure() -> torch.Tensor:
            opt.zero_grad()
            loss = objective()
            loss.backward()
            return loss

        try:
            opt.step(closure)
            if all(bool(torch.isfinite(p).all()) for p in params):
                return True
        except torch.linalg.LinAlgError:
            pass
        _restore(params, saved)
        adam = torch.optim.Adam(params, lr=self.s.lr)
        moved = False
        for _ in range(self.s.kernel_steps):
            kept = _snapshot(params)
            try:
                adam.zero_grad()
                objective().backward()
                adam.step()
                self.m.factors(self.orders)
                moved = True
            except torch.linalg.LinAlgError:
                _restore(params, kept)
                break
        return moved

    def _check_linear(self) -> bool:
        """Whether the operator is linear in u and its derivatives (then one U solve is exact)."""
        U1 = torch.randn(self.c.source.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        derivs = {k: U1 * (i + 1.0) for i, k in enumerate(["u", *self.c.alphas])}
        zero = {k: torch.zeros_like(U1) for k in derivs}
        base = self.c.operator_value(zero)
        a = self.c.operator_value(derivs) - base
        b = self.c.operator_value({k: 2 * t for k, t in derivs.items()}) - base
        return bool(torch.allclose(b, 2 * a, rtol=1e-9, atol=1e-9 * float(a.abs().max() + 1)))

    def adam(self) -> Status:
        m = self.m
        u, log_tau, log_v = m.u, m.log_tau, m.log_v
        opt = torch.optim.Adam(m.parameters(), lr=self.s.lr)
        previous = self.U.clone()
        for step in range(1, self.s.maxiter + 1):
            opt.zero_grad()
            F = m.factors(self.orders)
            loss = self.neg_log_joint(u, F, log_tau, log_v)
            if not torch.isfinite(loss):
                return Status.NONFINITE
            loss.backward()
            opt.step()
            self.iterations = step
            if step % self.s.check_every == 0 or step == self.s.maxiter:
                self.U = u.detach().clone()
                self.tau, self.v = log_tau.detach().exp(), log_v.detach().exp()
                with torch.no_grad():
                    F = m.factors(self.orders)
                    H = self.residual(self.U, F)
                    stalled = self.keep_best(self.U, F)
                change = float((self.U - previous).norm() / max(float(self.U.norm()), 1e-300))
                previous = self.U.clone()
                self._record(H, change)
                if self._stops(change, stalled, "check"):
                    return Status.SUCCESS
        return Status.MAX_ITERATIONS

    # --- bookkeeping ------------------------------------------------------------------------------
    def _record(self, H: torch.Tensor, change: float) -> None:
        h = self.history
        h["time"].append(time.perf_counter() - self.start)
        h["residual"].append(float(H.norm()) / self.f_norm)
        h["change"].append(change)
        if self.c.exact is not None:
            h["rel_l2_error"].append(float((self.U - self.c.exact).norm() / self.c.exact.norm()))
        if self.s.progress:
            extra = f", off-node residual {h['validation'][-1]:.3e}" if h["validation"] else ""
            extra += f", error {h['rel_l2_error'][-1]:.3e}" if "rel_l2_error" in h else ""
            print(f"gp-kron {len(h['time']):5d}: residual {h['residual'][-1]:.3e}, change {change:.3e}{extra}, "
                  f"{h['time'][-1]:.1f} s", flush=True)

    def solution(self, problem: PDEProblem | PDEBatch, status: Status) -> Solution:
        m, c = self.m, self.c
        with torch.no_grad():
            m.u.copy_(self.U)
        interior = (..., *(slice(1, -1) for _ in c.axes))
        x = self.U[interior].to(problem.dtype)
        grid = problem.grid
        exact = None if c.exact is None else c.exact[interior].to(problem.dtype)
        residuals = torch.tensor(self.history["residual"] or [float("nan")], dtype=torch.float64)
        info: dict[str, Any] = {
            "reason": self.reason or status.message,
            "relative_residual": residuals[-1].item(),
            "boundary_error": float((self.U[..., c.boundary] - c.g).abs().max()),
            "validation_residual": self.best[0] if self.best else float("nan"),
            "best_round": self.best[1] if self.best else 0,
            "precisions": {"boundary": _number(self.tau), "equation": _number(self.v)},
            "operator": c.operator.text,
            "collocation_points": [t.numel() for t in c.axes],
            "spectrum": [dict(zip(("frequency", "weight"), (t.tolist() for t in k.spectrum()))) for k in m.kernels],
            "history": self.history,
        }
        if c.exact is not None and self.s.test_points:
            per_axis = min(self.s.test_points, int(round(1e6 ** (1 / len(c.axes)))))  # at most ~1e6 test points
            axes = [torch.linspace(float(t[0]), float(t[-1]), per_axis, dtype=torch.float64) for t in c.axes]
            pred, ref = m.predict(axes), field_of(problem, "exact", axes)
            err = torch.linalg.vector_norm(pred - ref, dim=c.dims) / torch.linalg.vector_norm(ref, dim=c.dims)
            info["test_rel_l2_error"] = float(err.max())  # the worst problem of a batch
        stats = {"status": torch.full(c.batch, int(status)), "iterations": torch.full(c.batch, self.iterations)}
        return Solution(x, residuals, stats, info, coords=grid.coords(problem.dtype), exact=exact, variable="u", model=m)


def _kronecker_sum_inverse(maps: list[dict[int, torch.Tensor]], sizes: list[int], alphas: dict[str, tuple[int, ...]],
                           coef: dict[str, float], dtype: torch.dtype) -> Callable[[torch.Tensor], torch.Tensor]:
    r"""The inverse of :math:`\bar c_u I + \sum_j A_j` (A_j along axis j), :math:`A_j = \sum_r \bar c_{r e_j} D_j^{(r)}`.

    Terms with mixed derivatives are left out. 1-D: one LU factorisation. 2-D: the Sylvester equation
    :math:`(A_1 + \bar c_u I) X + X A_2^\top = R` by Bartels–Stewart (real Schur forms computed once,
    stable for the non-normal first-derivative maps of advection). 3-D: one eigendecomposition per axis.
    """
    ndim = len(maps)
    factors = []
    for j in range(ndim):
        A = torch.zeros(sizes[j], sizes[j], dtype=torch.float64)  # an axis without derivatives contributes 0
        for name, alpha in alphas.items():
            if sum(1 for a in alpha if a) == 1 and alpha[j]:
                A = A + coef[name] * maps[j][alpha[j]]
        factors.append(A)
    shift = coef.get("u", 0.0)
    if ndim == 1:
        lu = torch.linalg.lu_factor(factors[0] + shift * torch.eye(sizes[0], dtype=torch.float64))
        return lambda x: torch.linalg.lu_solve(*lu, x.to(torch.float64).unsqueeze(-1)).squeeze(-1).to(dtype)
    if ndim == 2:
        import numpy as np
        from scipy.linalg import lapack, schur

        ta, za = schur((factors[0] + shift * torch.eye(sizes[0], dtype=torch.float64)).numpy(), output="real")
        tb, zb = schur(factors[1].mT.numpy(), output="real")

        def sylvester(x: torch.Tensor) -> torch.Tensor:
            rhs = za.T @ x.detach().to(torch.float64).cpu().numpy() @ zb
            y, scale, info = lapack.dtrsyl(ta, tb, np.ascontiguousarray(rhs))
            return torch.from_numpy(za @ (y / scale) @ zb.T).to(dtype=dtype, device=x.device)

        return lambda x: torch.stack([sylvester(t) for t in x.reshape(-1, *x.shape[-2:])]).reshape(x.shape)
    vecs, spectrum = [], torch.tensor(shift, dtype=torch.complex128)
    for j, A in enumerate(factors):
        lam, V = torch.linalg.eig(A)
        vecs.append((V, torch.linalg.inv(V)))
        shape = [1] * ndim
        shape[j] = lam.numel()
        spectrum = spectrum + lam.reshape(shape)

    def apply(x: torch.Tensor) -> torch.Tensor:
        y = x.to(torch.complex128)
        for j, (_, Vi) in enumerate(vecs):
            y = _along(y, y.ndim - ndim + j, lambda t, Vi=Vi: Vi @ t)
        y = y / spectrum
        for j, (V, _) in enumerate(vecs):
            y = _along(y, y.ndim - ndim + j, lambda t, V=V: V @ t)
        return y.real.to(dtype)

    return apply


def _number(value: float | torch.Tensor) -> float | list:
    """A float, or a (nested) list for a batch."""
    return value.tolist() if isinstance(value, torch.Tensor) else float(value)


def _snapshot(params: list[torch.nn.Parameter]) -> list[torch.Tensor]:
    return [p.detach().clone() for p in params]


def _restore(params: list[torch.nn.Parameter], values: list[torch.Tensor]) -> None:
    with torch.no_grad():
        for p, value in zip(params, values):
            p.copy_(value)
