r"""One-dimensional spectral-mixture kernels and their derivatives, for GP-HM (`gp-kron`).

GP-HM (Fang et al., "Solving High Frequency and Multi-Scale PDEs with Gaussian Processes", ICLR 2024)
models the power spectrum of the solution along each axis as a mixture of Q components. By the
Wiener–Khinchin theorem the covariance is the inverse Fourier transform of the spectrum:

.. math:: k(x, x') = \sum_{q=1}^{Q} w_q\, m_q(x - x')\, \cos\!\big(2\pi\mu_q (x - x')\big)

with an envelope :math:`m_q` set by the component's shape:

- ``"student-t"`` (GP-HM-StM, the paper's default): Student-t spectral components, whose inverse
  transform is the Matérn-5/2 envelope :math:`(1 + \sqrt5 r_q|d| + \tfrac53 r_q^2 d^2)\,e^{-\sqrt5 r_q|d|}`;
- ``"gaussian"`` (GP-HM-GM, the spectral-mixture kernel): :math:`e^{-\rho_q d^2}`;
- ``"matern"``, ``"se"``: the same envelopes with every frequency fixed at 0 (the plain GP baselines).

Parameters, as in the paper's code: ``log_weight`` (:math:`\log w_q`; learning the weights in the log
domain acts as a Jeffreys prior and prunes unneeded frequencies), ``log_scale`` (:math:`\log r_q` resp.
:math:`\log\rho_q`) and ``frequency`` (:math:`\mu_q`). Initialisation: :math:`w_q = 1/Q`, scale 1,
frequencies evenly spaced in ``[0, max_frequency]``.

Derivatives with respect to the first argument are closed form (:math:`\partial_x k = k'(d)`,
:math:`\partial_x^2 k = k''(d)`, :math:`d = x - x'`); both envelopes are twice differentiable at 0.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .registry import register_model

KERNEL_KINDS = ("student-t", "gaussian", "matern", "se")
_SQRT5 = math.sqrt(5.0)


@register_model("spectral-mixture-kernel")
class SpectralMixtureKernel(nn.Module):
    """Spectral-mixture kernel on one axis; `derivatives(d)` gives k, k', k'' at lags `d`.

    Args:
        components: Q, the number of mixture components (> 0).
        kind: "student-t", "gaussian", "matern" or "se" (see the module docstring).
        max_frequency: initial frequencies are `linspace(0, max_frequency, Q)` (cycles per unit length).
        smooth: add one plain component (the envelope alone, frequency fixed at 0) with its own weight
            and scale, both starting at 1: the "extra GP" of the paper's code for multi-scale solutions,
            which captures the low-frequency part while the mixture fits the high frequencies.

    Example:
        >>> k = SpectralMixtureKernel(components=4, max_frequency=10.0)
        >>> d = torch.linspace(-1, 1, 5, dtype=torch.float64)
        >>> k0, k1, k2 = k.derivatives(d, order=2)
        >>> k0.shape, float(k0[2])  # k(0) = sum of the weights = 1
        (torch.Size([5]), 1.0)
    """

    def __init__(self, components: int = 30, kind: str = "student-t", max_frequency: float = 20.0, smooth: bool = False):
        super().__init__()
        if not isinstance(components, int) or isinstance(components, bool) or components < 1:
            raise ValueError(f"components must be a positive integer, got {components!r}")
        if kind not in KERNEL_KINDS:
            raise ValueError(f"kind must be one of {', '.join(KERNEL_KINDS)}, got {kind!r}")
        if not math.isfinite(max_frequency) or max_frequency < 0:
            raise ValueError(f"max_frequency must be a finite number >= 0, got {max_frequency!r}")
        self.kind = kind
        q = components
        self.log_weight = nn.Parameter(torch.full((q,), -math.log(q), dtype=torch.float64))
        self.log_scale = nn.Parameter(torch.zeros(q, dtype=torch.float64))
        frequency = torch.linspace(0.0, 1.0, q, dtype=torch.float64) * max_frequency
        if kind in ("matern", "se"):
            self.register_buffer("frequency", torch.zeros(q, dtype=torch.float64))
        else:
            self.frequency = nn.Parameter(frequency)
        if smooth:
            self.smooth_log_weight = nn.Parameter(torch.zeros((), dtype=torch.float64))
            self.smooth_log_scale = nn.Parameter(torch.zeros((), dtype=torch.float64))
        self.smooth = bool(smooth)

    @property
    def weights(self) -> torch.Tensor:
        return self.log_weight.exp()

    def derivatives(self, d: torch.Tensor, order: int = 2) -> list[torch.Tensor]:
        r"""`[k(d), k'(d), ..., k^{(order)}(d)]` for lags `d` of any shape (order 0, 1 or 2)."""
        if order not in (0, 1, 2):
            raise ValueError(f"order must be 0, 1 or 2, got {order!r}")
        dq = d.unsqueeze(-1)  # (..., Q)
        m = self._envelope(dq, self.log_scale.exp())
        w = self.weights
        if self.kind in ("matern", "se"):
            out = [(mi * w).sum(-1) for mi in m[: order + 1]]
        else:
            omega = 2 * math.pi * self.frequency
            cos, sin = torch.cos(omega * dq), torch.sin(omega * dq)
            c = [cos, -omega * sin, -omega * omega * cos]
            # Leibniz rule for (m c)^{(r)}.
            terms = [m[0] * c[0], m[1] * c[0] + m[0] * c[1], m[2] * c[0] + 2 * m[1] * c[1] + m[0] * c[2]]
            out = [(t * w).sum(-1) for t in terms[: order + 1]]
        if self.smooth:
            plain = self._envelope(d, self.smooth_log_scale.exp())
            out = [o + self.smooth_log_weight.exp() * p for o, p in zip(out, plain)]
        return out

    def _envelope(self, d: torch.Tensor, scale: torch.Tensor) -> list[torch.Tensor]:
        """The envelope m(d) and its first two derivatives (Matérn-5/2 or squared exponential)."""
        if self.kind in ("student-t", "matern"):
            a = _SQRT5 * scale
            s = d.abs()
            e = torch.exp(-a * s)
            return [(1 + a * s + a * a * s * s / 3) * e,
                    -(a * a / 3) * d * (1 + a * s) * e,
                    -(a * a / 3) * (1 + a * s - a * a * s * s) * e]
        e = torch.exp(-scale * d * d)
        return [e, -2 * scale * d * e, (4 * scale * scale * d * d - 2 * scale) * e]

    def matrices(self, x: torch.Tensor, y: torch.Tensor | None = None, order: int = 2) -> list[torch.Tensor]:
        r"""Cross-covariance matrices :math:`\partial_x^r k(x_i, y_j)`, `(n, m)` each, for r = 0..order.

        When `y` is None and `x` is evenly spaced, the Toeplitz structure is used: the kernel is
        evaluated on the 2n − 1 distinct lags only.
        """
        if y is None:
            n = x.numel()
            h = (x[-1] - x[0]) / max(n - 1, 1)
            if n > 2 and torch.allclose(torch.diff(x), h.expand(n - 1), rtol=1e-10, atol=0):
                lags = torch.arange(-(n - 1), n, dtype=x.dtype, device=x.device) * h
                # T[i, j] = v[i - j + n - 1]: windows of the reversed lag values, rows reversed.
                return [v.flip(0).unfold(0, n, 1).flip(0) for v in self.derivatives(lags, order)]
            y = x
        return self.derivatives(x[:, None] - y[None, :], order)

    def spectrum(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(frequencies, weights) of the components, `(Q,)` each, detached; with `smooth`, the plain
        component is appended last (frequency 0), `(Q + 1,)`."""
        freq, weight = self.frequency.detach().clone(), self.weights.detach().clone()
        if self.smooth:
            freq = torch.cat([freq, freq.new_zeros(1)])
            weight = torch.cat([weight, self.smooth_log_weight.detach().exp().reshape(1)])
        return freq, weight
