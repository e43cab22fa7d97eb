r"""DCDM: the Deep Conjugate Direction Method (Kaneda et al., ICML 2023), solver `dcdm`.

A CNN proposes each search direction from the normalised residual; the direction is A-orthogonalised
against the last k directions and the step is the exact line search, so the iterate minimises the
A-norm error along every direction it takes and the network's scale does not matter.

Notation (paper -> code): :math:`r_k` `r`, :math:`f(r_k/\|r_k\|)` `q` (the network output), :math:`d_{k-j}`
`dirs[j]`, :math:`\alpha_k` `alpha`. Iteration k (batched over systems):

1. :math:`q = f(r_k / \|r_k\|)`, restricted to the operator's `mask` (its fluid cells) when it has one;
   a direction that is not finite, or orthogonal to :math:`r_k`, is replaced by :math:`r_k` for that system.
2. :math:`q \leftarrow q - \sum_{j=1}^{k} \frac{q^T A d_j}{d_j^T A d_j} d_j` over the last k directions.
3. Safeguard (`safeguard=True`, not in the paper): the residual :math:`r_k`, A-orthogonalised against
   the kept directions and q, is a second direction s of the same iteration (one more product with
   A), so each iteration minimises the A-norm error over span{q, s} and decreases it at least as much
   as a steepest-descent step whatever the network; k then keeps the directions of the last k
   iterations (2k vectors). Without it (the paper), a network whose direction has no component
   along the error left stalls the iteration.
4. :math:`\alpha = q^T r_k / q^T A q`; :math:`x_{k+1} = x_k + \alpha q`; :math:`r_{k+1} = r_k - \alpha A q`,
   then the same along s (the paper's code recomputes :math:`b - A x_{k+1}` instead; the true residual of the result is
   checked at the end: `Status.STAGNATION` if it misses the tolerance).
5. Stop when :math:`\|r_{k+1}\| \le \max(\mathrm{rtol}\|b\|, \mathrm{atol})`; :math:`q^T A q \le 0` stops
   that system with `Status.BREAKDOWN` (A not positive definite), NaN/Inf with `Status.NONFINITE`.

Without a model (`model=None`) the direction is the residual itself: with k >= 1 that is conjugate
gradients (in exact arithmetic). Whatever the network, the A-norm error never grows.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar

import torch
from torch import nn

from ..data.generators.dcdm import PressurePoissonOperator
from ..linalg._common import KrylovSetup, check_tolerances
from ..linalg.conjugate_directions import conjugate_against, dcdm_residuals
from ..models.dcdm import DCDMNet, geometry_channel, network_input
from ..models.registry import load as load_model
from ..models.registry import unwrap
from ..problems import LinearProblem, PDEProblem
from ..solution import Solution
from ..status import Status
from .base import Solver, SolverOptionError, register
from .krylov import _solution, linear_system

INFERENCE_DTYPES = {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16}
_MESSAGES = {Status.BREAKDOWN: "breakdown: q^T A q <= 0 for a search direction (the operator is not positive definite)"}


def load_dcdm_model(model: Any) -> nn.Module | None:
    """A DCDM network from a checkpoint directory (`sciml.models.save`), an `nn.Module`, or None."""
    if model is None or isinstance(model, nn.Module):
        return model
    if isinstance(model, (str, Path)):
        return load_model(model)
    raise SolverOptionError(f"dcdm: model must be a checkpoint directory, an nn.Module or None, got {type(model).__name__}")


def dcdm(A: Any, b: torch.Tensor, model: nn.Module | None, *, x0: torch.Tensor | None = None, k: int = 2,
         rtol: float = 1e-4, atol: float = 0.0, maxiter: int | None = None, dtype: torch.dtype = torch.float32,
         safeguard: bool = True, callback: Callable[[torch.Tensor], None] | None = None):
    r"""The DCDM iteration (see the module docstring) for `A x = b`, batched over the leading dims of `b`.

    Args:
        A: symmetric positive definite operator on a 2-D or 3-D grid (`in_shape` of length 2 or 3);
            its `mask` attribute, if any, restricts the directions to those cells.
        b: `(*batch, *grid)`, real, float32 or float64.
        model: the network `(B, 1, *grid) -> (B, 1, *grid)` (`dim` must match the grid), or None
            (the direction is the residual: conjugate gradients).
        k: directions kept for A-orthogonalisation (paper: 2).
        rtol, atol, maxiter: stop when :math:`\|b - A x\| \le \max(\mathrm{rtol}\|b\|, \mathrm{atol})`;
            maxiter defaults to n.
        dtype: dtype of the network's inference (the solve itself runs in b's dtype).
        callback: called as `callback(x)` (shaped like b) after every iteration.
        safeguard: also step along the A-orthogonalised residual in every iteration (step 3 of the
            module docstring).

    Returns:
        `KrylovResult`: `x`, per-system `status` (`Status.BREAKDOWN` when :math:`q^T A q \le 0`,
        `Status.NONFINITE` for NaN/Inf), `iterations`, residual history, `info["reason"]`.
    """
    if isinstance(b, torch.Tensor) and b.is_complex():
        raise ValueError("dcdm: real systems only (the network acts on real fields), got a complex b")
    P = KrylovSetup(A, b, x0=x0, M=None, rtol=rtol, atol=atol, maxiter=maxiter, check_every=1, maxiter_factor=1)
    grid = P.in_shape
    if len(grid) not in (2, 3):
        raise ValueError(f"dcdm: the operator must act on a 2-D or 3-D grid, got in_shape {grid}")
    net = None if model is None else unwrap(model)
    if net is not None:
        net_dim = getattr(net, "dim", None)
        if net_dim is not None and net_dim != len(grid):
            raise ValueError(f"dcdm: the model is {net_dim}-D (dim={net_dim}) but the problem's grid {grid} is "
                             f"{len(grid)}-D; use a checkpoint trained for {len(grid)}-D grids")
        device = next(iter(net.parameters()), torch.empty(0, device=b.device)).device
    mask = getattr(A, "mask", None)
    geometry = None
    if net is not None and getattr(net, "geometry", False):
        if mask is None or getattr(A, "diag", None) is None:
            raise ValueError("dcdm: the model takes the scene's geometry (geometry=true), so the operator must have "
                             "`mask` (fluid cells) and `diag` (its diagonal) attributes, as PressurePoissonOperator has")
        geometry = geometry_channel(mask.to(dtype), A.diag.to(dtype), len(grid)).to(device)
        geometry = geometry.expand(*P.batch, *grid).reshape(-1, 1, *grid)
    maskf = None if mask is None else P.flat(mask.to(device=b.device, dtype=b.dtype).expand(*P.batch, *grid))
    x, r, status, active, iterations = P.x, P.r, P.status, P.active, P.iterations
    history = [P.r_norm]
    dirs: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []  # (d, A d, d^T A d)
    rows = max(1, int(torch.tensor(P.batch).prod()) if P.batch else 1)
    inf = float("inf")
    it = 0
    while it < P.maxiter and bool(active.any()):
        r_norm = P.norm(r).unsqueeze(-1)
        if net is None:
            q = r.clone()
        else:
            inp = (r / torch.where(r_norm > 0, r_norm, 1)).reshape(rows, 1, *grid).to(device=device, dtype=dtype)
            with torch.no_grad():
                q = net(network_input(inp, geometry)).to(device=b.device, dtype=b.dtype).reshape(r.shape)
        if maskf is not None:
            q = q * maskf
        # A direction that is not finite, or orthogonal to r, is replaced by the residual.
        useless = ~torch.isfinite(q).all(-1) | (P.dot(q, r).real.abs() <= 1e-12 * P.norm(q) * r_norm.squeeze(-1))
        q = torch.where(useless.unsqueeze(-1), r, q)
        q, Aq = conjugate_against(q, P.mv(q), dirs, P.dot)
        qAq = P.dot(q, Aq).real
        ok = (qAq > 0) & (qAq < inf)
        status = torch.where(active & ~ok, torch.where(qAq <= 0, Status.BREAKDOWN, Status.NONFINITE), status)
        active = active & ok
        steps = [(q, Aq, torch.where(ok, qAq, 1))]
        if safeguard and net is not None:
            # The residual, A-orthogonalised against the kept directions and q (zero where degenerate):
            # exact line searches along q then s minimise the A-norm error over span{q, s}.
            Ar = P.mv(r)
            s, As = conjugate_against(r, Ar, dirs + steps, P.dot)
            sAs = P.dot(s, As).real
            s_ok = ((sAs > 1e-12 * P.dot(r, Ar).real) & (sAs < inf)).unsqueeze(-1)  # not in span{q, dirs}
            steps.append((torch.where(s_ok, s, 0), torch.where(s_ok, As, 0), torch.where(s_ok[..., 0], sAs, 1)))
        for d, Ad, dAd in steps:
            alpha = torch.where(active, P.dot(d, r).real / dAd, 0).unsqueeze(-1)
            x = x + alpha * d
            r = r - alpha * Ad
        dirs = (dirs + steps)[-k * len(steps):] if k else []
        if callback is not None:
            callback(x.reshape(b.shape))
        res = P.norm(r)
        history.append(res)
        iterations = iterations + active
        it += 1
        finite = res < inf
        go = finite & (res > P.tol)
        status = torch.where(active & ~go, torch.where(finite, Status.SUCCESS, Status.NONFINITE), status)
        active = active & go
    return P.result(x, status, iterations, history, messages=_MESSAGES)


@register
@dataclass
class DCDM(Solver):
    """Deep Conjugate Direction Method: CNN search directions, A-orthogonalised, exact line search (SPD, 2-D/3-D grids)."""

    name: ClassVar[str] = "dcdm"
    accepts: ClassVar[tuple[type, ...]] = (LinearProblem, PDEProblem)

    model: Any = None
    k: int = 2
    rtol: float = 1e-4
    atol: float = 0.0
    maxiter: int | None = None
    dtype: str = "float32"
    safeguard: bool = True
    callback: Callable | None = None

    def __post_init__(self) -> None:
        try:
            check_tolerances(self.rtol, self.atol, self.maxiter)
        except ValueError as err:
            raise SolverOptionError(f"{self.name}: {err}") from None
        if not isinstance(self.k, int) or isinstance(self.k, bool) or self.k < 0:
            raise SolverOptionError(f"{self.name}: k must be an integer >= 0, got {self.k!r}")
        if not isinstance(self.safeguard, bool):
            raise SolverOptionError(f"{self.name}: safeguard must be true or false, got {self.safeguard!r}")
        if self.dtype not in INFERENCE_DTYPES:
            raise SolverOptionError(f"{self.name}: dtype must be one of {', '.join(INFERENCE_DTYPES)}, got {self.dtype!r}")
        if not (self.model is None or isinstance(self.model, (str, Path, nn.Module))):
            raise SolverOptionError(f"{self.name}: model must be a checkpoint directory, an nn.Module or None, "
                                    f"got {type(self.model).__name__}")
        if isinstance(self.model, (str, Path)) and not Path(self.model).is_dir():
            raise SolverOptionError(f"{self.name}: model {str(self.model)!r} is not a checkpoint directory")
        self._net: nn.Module | None = None

    def network(self, device: Any = None) -> nn.Module | None:
        """The network (loaded once from a checkpoint), in eval mode with the inference dtype."""
        if self._net is None and self.model is not None:
            self._net = load_dcdm_model(self.model).eval()
        if self._net is not None:
            self._net = self._net.to(dtype=INFERENCE_DTYPES[self.dtype], device=device)
        return self._net

    def solve(self, problem: Any) -> Solution:
        system = linear_system(problem)
        result = dcdm(system.A, system.b, self.network(system.b.device), x0=system.x0, k=self.k, rtol=self.rtol,
                      atol=self.atol, maxiter=self.maxiter, dtype=INFERENCE_DTYPES[self.dtype],
                      safeguard=self.safeguard, callback=self.callback)
        return _solution(result, system)


__all__ = ["DCDM", "DCDMNet", "PressurePoissonOperator", "dcdm", "dcdm_residuals", "load_dcdm_model"]
