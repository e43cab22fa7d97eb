r"""GP-HM: a Gaussian process over the solution values on a tensor collocation grid.

Notation (Fang et al., ICLR 2024, eqs. 13–14): the unknowns are the solution values
:math:`U \in \mathbb{R}^{M_1 \times \dots \times M_d}` on the grid; the prior is
:math:`\mathrm{vec}(U) \sim \mathcal{N}(0, C)` with the product kernel :math:`C = C_1 \otimes \dots \otimes C_d`
(one `SpectralMixtureKernel` per axis). Derivatives of the GP at the grid are linear in U:

.. math:: \partial_{x_j}^{r} U = (C_j^{(r)} C_j^{-1}) \times_j U,

where :math:`\times_j` applies a matrix along axis j. The log joint (eq. 14) is

.. math:: \mathcal{L} = \log\mathcal{N}(\mathrm{vec}\,U \mid 0, C)
   + \lambda_b \log\mathcal{N}(g \mid u_b, \tau_1^{-1} I) + \log\mathcal{N}(0 \mid \mathrm{vec}\,H, \tau_2^{-1} I),

H the PDE residual at every grid point, :math:`\lambda_b` the boundary weight,
:math:`\tau_1, \tau_2` learned precisions. :math:`\log|C| = \sum_j (M/M_j) \log|C_j|` and
:math:`C^{-1}\mathrm{vec}\,U` come from per-factor Cholesky factors: O(Σ M_j³ + M Σ M_j), no low-rank
approximation.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

from ..linalg import kron_matvec
from ..plots import save_figure
from .gp_kernels import KERNEL_KINDS, SpectralMixtureKernel
from .registry import register_model


@dataclass
class GPFactors:
    """Per-axis Cholesky factors of :math:`C_j` (jitter included) and the derivative matrices :math:`C_j^{(r)}`."""

    cholesky: list[torch.Tensor]
    matrices: list[dict[int, torch.Tensor]]  # axis -> {order r: (M_j, M_j)}; order 0 is C_j itself


@register_model("gphm")
class GPHM(nn.Module):
    """The GP-HM unknowns (grid values, kernel parameters, precisions) and its log joint.

    Args:
        lower, upper: the box, one number per axis.
        points: collocation points per axis, boundary nodes included (`linspace(lower, upper, points)`).
        components: Q per axis.
        kind: kernel kind (see `sciml.models.gp_kernels`).
        max_frequency: initial frequency range per axis (a number or one per axis).
        jitter: added to the diagonal of every factor :math:`C_j`.
        batch: leading batch shape of U and the precisions (problems sharing the grid and the kernels).
        smooth: one extra plain (zero-frequency) component per axis (see `SpectralMixtureKernel`).
    """

    def __init__(self, lower: Sequence[float], upper: Sequence[float], points: Sequence[int], components: int = 30,
                 kind: str = "student-t", max_frequency: float | Sequence[float] = 20.0, jitter: float = 1e-6,
                 batch: Sequence[int] = (), smooth: bool = False):
        super().__init__()
        ndim = len(points)
        if not (len(lower) == len(upper) == ndim and 1 <= ndim <= 3):
            raise ValueError(f"lower, upper and points must give 1-3 axes each, got {lower!r}, {upper!r}, {points!r}")
        if kind not in KERNEL_KINDS:
            raise ValueError(f"kind must be one of {', '.join(KERNEL_KINDS)}, got {kind!r}")
        freqs = [float(max_frequency)] * ndim if isinstance(max_frequency, (int, float)) else [float(f) for f in max_frequency]
        if len(freqs) != ndim:
            raise ValueError(f"max_frequency must be a number or one per axis ({ndim}), got {max_frequency!r}")
        if not jitter > 0:
            raise ValueError(f"jitter must be > 0, got {jitter!r}")
        self.lower, self.upper = [float(v) for v in lower], [float(v) for v in upper]
        self.points = [int(n) for n in points]
        self.jitter = float(jitter)
        self.kernels = nn.ModuleList(SpectralMixtureKernel(components, kind, f, smooth) for f in freqs)
        self.batch = tuple(int(b) for b in batch)
        self.u = nn.Parameter(torch.zeros(*self.batch, *self.points, dtype=torch.float64))
        self.log_tau = nn.Parameter(torch.zeros(self.batch, dtype=torch.float64))  # boundary precision
        self.log_v = nn.Parameter(torch.zeros(self.batch, dtype=torch.float64))  # PDE-residual precision

    @property
    def ndim(self) -> int:
        return len(self.points)

    def nodes(self, axis: int) -> torch.Tensor:
        """Collocation coordinates along `axis`, `(M_axis,)`."""
        return torch.linspace(self.lower[axis], self.upper[axis], self.points[axis], dtype=torch.float64,
                              device=self.u.device)

    def factors(self, orders: Sequence[set[int]]) -> GPFactors:
        """Cholesky factors and the derivative matrices of the given orders (per axis) at the current kernels."""
        chols, mats = [], []
        for axis, kernel in enumerate(self.kernels):
            ks = kernel.matrices(self.nodes(axis), order=max(orders[axis], default=0))
            n = self.points[axis]
            ks[0] = ks[0] + self.jitter * torch.eye(n, dtype=ks[0].dtype, device=ks[0].device)
            L, info = torch.linalg.cholesky_ex(ks[0])
            if int(info) != 0:
                raise torch.linalg.LinAlgError(f"the kernel matrix of axis {axis} is not positive definite "
                                               f"(increase jitter, now {self.jitter:g})")
            chols.append(L)
            mats.append({r: ks[r] for r in {0, *orders[axis]}})
        return GPFactors(chols, mats)

    def weights(self, U: torch.Tensor, factors: GPFactors) -> torch.Tensor:
        r""":math:`A = C^{-1} U` (per-axis Cholesky solves), same shape as U."""
        A = U
        for j, L in enumerate(factors.cholesky):
            A = _along(A, A.ndim - self.ndim + j, lambda m, L=L: torch.cholesky_solve(m, L))
        return A

    def smooth(self, U: torch.Tensor, factors: GPFactors) -> torch.Tensor:
        r"""The posterior mean at the grid nodes, :math:`(\otimes_j (C_j - \epsilon I))\, C^{-1} U` (ε the jitter).

        Removes the components of U that the kernel all but rules out (those only the jitter allows).
        """
        out = self.weights(U, factors)
        for j, K in enumerate(factors.matrices):
            eye = torch.eye(K[0].shape[0], dtype=K[0].dtype, device=K[0].device)
            out = _along(out, out.ndim - self.ndim + j, lambda m, A=K[0] - self.jitter * eye: A @ m)
        return out

    def derivative(self, U: torch.Tensor, factors: GPFactors, alpha: Sequence[int]) -> torch.Tensor:
        r""":math:`\partial^\alpha U`: the map :math:`C_j^{(r)} C_j^{-1}` along every axis j with :math:`r = \alpha_j > 0`.

        Equal to :math:`(\otimes_j C_j^{(\alpha_j)})\, C^{-1} U` (the GP's derivative at the nodes); the
        axes without a derivative are left alone rather than multiplied by :math:`C_j C_j^{-1}`.
        """
        out = U
        for j, r in enumerate(alpha):
            if r:
                K, L = factors.matrices[j][r], factors.cholesky[j]
                out = _along(out, out.ndim - self.ndim + j, lambda m, K=K, L=L: K @ torch.cholesky_solve(m, L))
        return out

    def log_prior(self, U: torch.Tensor, A: torch.Tensor, factors: GPFactors) -> torch.Tensor:
        r""":math:`\log\mathcal{N}(\mathrm{vec}\,U \mid 0, C)` without the constant, per batch element; A = `weights(U)`."""
        total = math.prod(self.points)
        logdet = sum((total / n) * 2 * torch.log(torch.diagonal(L)).sum() for n, L in zip(self.points, factors.cholesky))
        quad = (U * A).sum(tuple(range(-self.ndim, 0)))
        return -0.5 * logdet - 0.5 * quad

    def predict(self, axes: Sequence[torch.Tensor], factors: GPFactors | None = None) -> torch.Tensor:
        r"""Posterior mean on the tensor grid `axes` (one 1-D tensor per axis): :math:`\otimes_j k_j(t_j, X_j) C_j^{-1}\, U`."""
        if len(axes) != self.ndim:
            raise ValueError(f"axes must give {self.ndim} coordinate vectors, got {len(axes)}")
        with torch.no_grad():
            factors = factors or self.factors([set()] * self.ndim)
            mats = []
            for j, (kernel, t) in enumerate(zip(self.kernels, axes)):
                t = torch.as_tensor(t, dtype=torch.float64, device=self.u.device).reshape(-1)
                cross = kernel.matrices(t, self.nodes(j), order=0)[0]
                mats.append(torch.cholesky_solve(cross.mT, factors.cholesky[j]).mT)
            return kron_matvec(mats, self.u)

    def plot_spectrum(self, path: str) -> None:
        """PNG of the learned spectrum per axis: component weights vs frequencies (log scale)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, self.ndim, figsize=(4.6 * self.ndim, 3.4), squeeze=False)
        for ax, kernel, name in zip(axes[0], self.kernels, "xyz"):
            freq, weight = kernel.spectrum()
            ax.vlines(freq.numpy(), 0, weight.numpy())
            ax.plot(freq.numpy(), weight.numpy(), "o", ms=4)
            ax.set_yscale("log")
            ax.set_xlabel(f"frequency along {name} (cycles per unit length)")
            ax.set_ylabel("weight")
            plain = " + a plain component at 0" if kernel.smooth else ""
            ax.set_title(f"learned spectrum ({kernel.kind}, Q = {kernel.frequency.numel()}{plain})", fontsize=9)
        fig.tight_layout()
        save_figure(fig, path)


def _along(x: torch.Tensor, axis: int, fn) -> torch.Tensor:
    """Apply `fn` to the matrix whose rows run along `axis` of x, `(n, rest)`, and put the axis back."""
    moved = x.movedim(axis, 0)
    out = fn(moved.reshape(moved.shape[0], -1))
    return out.reshape(out.shape[0], *moved.shape[1:]).movedim(0, axis)
