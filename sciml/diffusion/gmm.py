r"""A Gaussian-mixture data distribution with an exact diffused score: a reference for samplers.

Under the VP forward process :math:`x_t = \sqrt{\bar\alpha}\,x_0 + \sqrt{1-\bar\alpha}\,\epsilon`, the
mixture :math:`p_0 = \sum_k w_k \mathcal N(\mu_k, \Sigma_k)` stays a mixture,

.. math:: p_t = \sum_k w_k\,\mathcal N\big(\sqrt{\bar\alpha}\mu_k,\; C_k\big),\qquad
          C_k = \bar\alpha\Sigma_k + (1-\bar\alpha) I,

so the noise prediction of an ideal model is known in closed form,

.. math:: \epsilon^*(x, \bar\alpha) = -\sqrt{1-\bar\alpha}\,\nabla\log p_t(x)
          = \sqrt{1-\bar\alpha}\sum_k \gamma_k(x)\, C_k^{-1}(x - \sqrt{\bar\alpha}\mu_k),

with responsibilities :math:`\gamma_k` computed by log-sum-exp. With :math:`\Sigma_k = U_k
\Lambda_k U_k^\top` (eigendecomposition, done once) every :math:`C_k` is diagonal in the basis
:math:`U_k`, so evaluating :math:`\epsilon^*` costs :math:`O(nKd^2)`.

The probability-flow ODE in DEIS variables :math:`v = x/\sqrt{\bar\alpha}`,
:math:`\rho = \sqrt{(1-\bar\alpha)/\bar\alpha}` is :math:`\mathrm dv/\mathrm d\rho = \epsilon^*`;
:meth:`GaussianMixture.ode_endpoint` solves it with scipy's DOP853 at tight tolerance (in
:math:`\log\rho` when the end point has :math:`\rho > 0`), the reference every scheduler is
compared with. Its answer depends only on the two :math:`\bar\alpha` values, not on any time
parametrisation.
"""
from __future__ import annotations

import math

import numpy as np
import torch

__all__ = ["GaussianMixture"]

_F64 = torch.float64


class GaussianMixture:
    r"""Mixture :math:`\sum_k w_k \mathcal N(\mu_k, \Sigma_k)` in :math:`\mathbb R^d`.

    Args:
        weights: ``(K,)`` nonnegative, normalised internally.
        means: ``(K, d)``.
        covariances: ``(K, d, d)`` symmetric positive semi-definite, or ``(K, d)`` diagonals.

    Example:
        >>> g = GaussianMixture([0.5, 0.5], [[-1.0], [1.0]], [[0.01], [0.01]])
        >>> x = g.sample(4, generator=torch.Generator().manual_seed(0))
        >>> g.eps(x, 0.5).shape
        torch.Size([4, 1])
    """

    def __init__(self, weights, means, covariances):
        w = torch.as_tensor(weights, dtype=_F64)
        mu = torch.as_tensor(means, dtype=_F64)
        cov = torch.as_tensor(covariances, dtype=_F64)
        if mu.ndim != 2:
            raise ValueError(f"`means` must be (K, d), got shape {tuple(mu.shape)}")
        K, d = mu.shape
        if w.shape != (K,) or bool((w < 0).any()) or float(w.sum()) <= 0:
            raise ValueError(f"`weights` must be (K,) = ({K},) nonnegative with positive sum")
        if cov.shape == (K, d):
            evals, evecs = cov.clone(), torch.eye(d, dtype=_F64).expand(K, d, d).clone()
            self.diagonal = True
        elif cov.shape == (K, d, d):
            evals, evecs = torch.linalg.eigh(0.5 * (cov + cov.transpose(-1, -2)))
            self.diagonal = False
        else:
            raise ValueError(f"`covariances` must be (K, d, d) or (K, d) with K={K}, d={d}, got {tuple(cov.shape)}")
        if bool((evals < -1e-12).any()):
            raise ValueError("`covariances` must be positive semi-definite")
        self.weights = w / w.sum()
        self.means = mu
        self.covariances = cov if cov.ndim == 3 else torch.diag_embed(cov)
        self._evals = evals.clamp(min=0.0)  # (K, d)
        self._evecs = evecs  # (K, d, d), columns are eigenvectors
        self.dim, self.num_components = d, K

    def to_dict(self) -> dict:
        return {"weights": self.weights, "means": self.means, "covariances": self.covariances}

    # ---------------------------------------------------------------------------------------
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw ``n`` samples of the clean data, float64 ``(n, d)``."""
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        z = torch.randn(n, self.dim, dtype=_F64, generator=generator)
        scaled = z * self._evals[k].sqrt()
        return self.means[k] + torch.einsum("nij,nj->ni", self._evecs[k], scaled)

    def _parts(self, x: torch.Tensor, alpha_bar):
        """Responsibilities (n, K) and whitened residuals C^{-1}(x - m) in the eigenbasis."""
        x = x.to(_F64)
        a = torch.as_tensor(alpha_bar, dtype=_F64, device=x.device)
        a = a[..., None, None]  # scalar or (...) broadcast against (..., K, d)
        mu, U, lam = (t.to(x.device) for t in (self.means, self._evecs, self._evals))
        r = x[..., None, :] - a.sqrt() * mu  # (..., K, d)
        y = torch.einsum("...kd,kde->...ke", r, U)  # coordinates in each eigenbasis
        c = a * lam + (1.0 - a)  # (..., K, d) eigenvalues of C_k
        logp = (-0.5 * (y * y / c).sum(-1) - 0.5 * torch.log(c).sum(-1)
                - 0.5 * self.dim * math.log(2 * math.pi) + torch.log(self.weights.to(x.device)))
        return logp, y / c, U

    def log_prob(self, x: torch.Tensor, alpha_bar=1.0) -> torch.Tensor:
        r""":math:`\log p_t(x)` of the diffused mixture, ``x`` ``(..., d)`` -> ``(...)``."""
        logp, _, _ = self._parts(x, alpha_bar)
        return torch.logsumexp(logp, dim=-1)

    def score(self, x: torch.Tensor, alpha_bar) -> torch.Tensor:
        r""":math:`\nabla_x \log p_t(x)`, ``(..., d)``; ``alpha_bar`` scalar or broadcastable to
        ``x.shape[:-1]``, must be < 1 unless all covariances are positive definite."""
        logp, yc, U = self._parts(x, alpha_bar)
        gamma = torch.softmax(logp, dim=-1)  # (..., K)
        g = torch.einsum("...ke,kde->...kd", yc, U)  # C^{-1} (x - m) in the original basis
        return -(gamma[..., None] * g).sum(-2)

    def eps(self, x: torch.Tensor, alpha_bar) -> torch.Tensor:
        r"""Exact noise prediction :math:`\epsilon^*(x,\bar\alpha) = -\sqrt{1-\bar\alpha}\,
        \nabla\log p_t(x)`, float64 ``(..., d)``."""
        a = torch.as_tensor(alpha_bar, dtype=_F64, device=x.device)
        s = self.score(x, a)
        return -torch.sqrt(1.0 - a)[..., None] * s

    # ---------------------------------------------------------------------------------------
    def ode_endpoint(self, x_start: torch.Tensor, alpha_bar_start: float, alpha_bar_end: float,
                     rtol: float = 1e-10, atol: float = 1e-10, method: str = "DOP853") -> torch.Tensor:
        r"""Solve the probability-flow ODE from :math:`\bar\alpha_\mathrm{start}` (noisy) to
        :math:`\bar\alpha_\mathrm{end}` accurately.

        Integrates :math:`\mathrm dv/\mathrm du = \rho\,\epsilon^*(\sqrt{\bar\alpha} v, \bar\alpha)`,
        :math:`u = \log\rho` (or :math:`\mathrm dv/\mathrm d\rho = \epsilon^*` if
        :math:`\bar\alpha_\mathrm{end} = 1`), all samples as one system, with
        ``scipy.integrate.solve_ivp``.

        Args:
            x_start: ``(n, d)`` states at :math:`\bar\alpha_\mathrm{start}`.
            alpha_bar_start, alpha_bar_end: floats in (0, 1]; ``start < end``.
            rtol, atol: tolerances of the adaptive solver (on :math:`v`).
            method: a ``solve_ivp`` method (``"DOP853"``, ``"Radau"``, ...).

        Returns:
            float64 ``(n, d)`` states at :math:`\bar\alpha_\mathrm{end}`.

        Raises:
            ValueError: if the alphas are out of order or range; RuntimeError if the solver fails.
        """
        from scipy.integrate import solve_ivp

        a0, a1 = float(alpha_bar_start), float(alpha_bar_end)
        if not (0.0 < a0 < a1 <= 1.0):
            raise ValueError(f"need 0 < alpha_bar_start < alpha_bar_end <= 1, got {a0}, {a1}")
        x0 = x_start.detach().to(_F64).cpu()
        shape = x0.shape
        r0, r1 = math.sqrt((1 - a0) / a0), math.sqrt((1 - a1) / a1)
        use_log = r1 > 0.0

        def rhs(s, vflat):
            rho = math.exp(s) if use_log else s
            a = 1.0 / (1.0 + rho * rho)
            v = torch.from_numpy(vflat).reshape(shape)
            e = self.eps(v * math.sqrt(a), a)
            if use_log:
                e = e * rho
            return e.reshape(-1).numpy()

        span = (math.log(r0), math.log(r1)) if use_log else (r0, r1)
        v0 = (x0 / math.sqrt(a0)).reshape(-1).numpy()
        sol = solve_ivp(rhs, span, v0, method=method, rtol=rtol, atol=atol)
        if not sol.success:
            raise RuntimeError(f"reference ODE solve failed: {sol.message}")
        v1 = torch.from_numpy(np.ascontiguousarray(sol.y[:, -1])).reshape(shape)
        return (v1 * math.sqrt(a1)).to(x_start.device)
