r"""Gaussian random fields with covariance :math:`\sigma^2(-\Delta + \tau^2)^{-\alpha}`, sampled spectrally.

Two bases, as in the FNO data generators (github.com/neuraloperator/neuraloperator,
`data_generation/darcy/GRF.m` and `data_generation/navier_stokes/random_fields.py`):

- `neumann_grf`: the Laplacian with zero Neumann conditions on :math:`[0,1]^2`, eigenfunctions
  :math:`\varphi_k(x) = \sqrt{2 - \delta_{k0}}\cos(\pi k x)`, eigenvalues :math:`\pi^2|k|^2`:
  :math:`U = \sum_{k \ne 0} \tau^{\alpha-1}(\pi^2|k|^2 + \tau^2)^{-\alpha/2}\,\xi_k\,\varphi_{k_1}(x)\varphi_{k_2}(y)`,
  :math:`\xi_k \sim N(0, 1)`, modes :math:`0 \le k_i < K` (GRF.m: `L = s*coef.*xi; L(1,1) = 0; idct2(L)`
  is this sum, evaluated at the cell centres; here it is evaluated at any points, e.g. grid nodes).
- `periodic_grf`: the torus :math:`[0,1]^d` with Fourier modes :math:`e^{2\pi i k\cdot x}`, eigenvalues
  :math:`4\pi^2|k|^2`, the mean mode removed, :math:`\sigma = \tau^{(2\alpha-d)/2}` by default
  (`GaussianRF`: `ifftn(size**d * sqrt(2) * sigma * (4 pi^2 |k|^2 + tau^2)**(-alpha/2) * randn(cfloat)).real`).
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import torch


def neumann_grf(xi: torch.Tensor, alpha: float, tau: float, points: Sequence[torch.Tensor]) -> torch.Tensor:
    r"""Cosine-series GRF from standard normal coefficients `xi` `(*batch, K1, K2)` at the points
    `points = (x, y)` (1-D tensors in [0, 1]); returns `(*batch, len(x), len(y))`.

    Covariance :math:`\tau^{2\alpha-2}(-\Delta_N + \tau^2)^{-\alpha}` without its constant mode.
    """
    K1, K2 = xi.shape[-2:]
    dtype, device = xi.dtype, xi.device
    k1 = torch.arange(K1, dtype=dtype, device=device)
    k2 = torch.arange(K2, dtype=dtype, device=device)
    coef = tau ** (alpha - 1) * (math.pi**2 * (k1[:, None] ** 2 + k2[None, :] ** 2) + tau**2) ** (-alpha / 2)
    coef[0, 0] = 0.0

    def basis(k: torch.Tensor, x: torch.Tensor) -> torch.Tensor:  # (K, n): sqrt(2 - delta_k0) cos(pi k x)
        phi = torch.cos(math.pi * k[:, None] * x.to(dtype=dtype, device=device)[None, :])
        phi[1:] *= math.sqrt(2.0)
        return phi

    phi_x, phi_y = basis(k1, points[0]), basis(k2, points[1])
    return phi_x.mT @ (coef * xi) @ phi_y


def periodic_sqrt_eigenvalues(shape: Sequence[int], alpha: float, tau: float, sigma: float | None = None,
                              dtype: torch.dtype = torch.float64, device: Any = None) -> torch.Tensor:
    r""":math:`\sigma(4\pi^2|k|^2 + \tau^2)^{-\alpha/2}` on the FFT wavenumbers of `shape`, 0 for k = 0."""
    d = len(shape)
    if sigma is None:
        sigma = tau ** (0.5 * (2 * alpha - d))
    k2 = torch.zeros(shape, dtype=dtype, device=device)
    for axis, n in enumerate(shape):
        k = torch.fft.fftfreq(n, 1.0 / n, dtype=dtype, device=device)
        view = [1] * d
        view[axis] = n
        k2 = k2 + k.reshape(view) ** 2
    sqrt_eig = sigma * (4 * math.pi**2 * k2 + tau**2) ** (-alpha / 2)
    sqrt_eig.view(-1)[0] = 0.0
    return sqrt_eig


def periodic_grf(zeta_re: torch.Tensor, zeta_im: torch.Tensor, alpha: float, tau: float,
                 sigma: float | None = None, dims: int | None = None) -> torch.Tensor:
    r"""Periodic GRF on the grid of `zeta_re.shape[-dims:]` (points :math:`i/n` per axis) from two
    independent standard normal tensors (the complex coefficients are :math:`(\zeta_{re} + i\zeta_{im})/\sqrt 2`).

    Pointwise variance :math:`\sum_{k\ne0}\sigma^2(4\pi^2|k|^2+\tau^2)^{-\alpha}` (half of each mode's
    complex variance survives the real part; the sqrt(2) restores it), as FNO's `GaussianRF.sample`.
    """
    dims = dims or zeta_re.ndim
    shape = tuple(zeta_re.shape[-dims:])
    sqrt_eig = periodic_sqrt_eigenvalues(shape, alpha, tau, sigma, zeta_re.dtype, zeta_re.device)
    n_total = math.prod(shape)
    # complex(re, im) with unit-variance parts is sqrt(2) times a standard complex normal: GaussianRF's sqrt(2)
    coeff = torch.complex(zeta_re, zeta_im) * (n_total * sqrt_eig)
    return torch.fft.ifftn(coeff, dim=tuple(range(-dims, 0))).real
