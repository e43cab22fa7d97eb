"""Conjugate-direction kernels of the Deep Conjugate Direction Method (DCDM): A-orthogonalising a proposed
direction against the last few, and the residual sequence of the iteration for a given direction
generator (what the DCDM network is trained on). Pure tensor code; `sciml.solvers.dcdm` is the solver."""
from __future__ import annotations

from typing import Any, Callable

import torch


def conjugate_against(q: torch.Tensor, Aq: torch.Tensor, dirs: list, dot: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """q (and A q) A-orthogonalised against the stored directions `(d, A d, d^T A d)` (classical Gram-Schmidt
    in the A inner product: the coefficients all use the incoming q)."""
    coefs = [(dot(q, Ad).real / dAd).unsqueeze(-1) for d, Ad, dAd in dirs]
    for c, (d, Ad, _) in zip(coefs, dirs):
        q, Aq = q - c * d, Aq - c * Ad
    return q, Aq


def dcdm_residuals(A: Callable[[torch.Tensor], torch.Tensor], b: torch.Tensor,
                   direction: Callable[[torch.Tensor], torch.Tensor], steps: int, k: int = 2) -> list[torch.Tensor]:
    r"""The normalised residuals :math:`r_1/\|r_1\|, \dots` of `steps` DCDM iterations from x = 0 for
    `b` `(B, 1, *grid)`, with directions `direction(r / ||r||)` A-orthogonalised against the last `k`
    (no safeguard): the inputs the network meets inside the solver (used to train it, see the loss
    "dcdm-energy"). `A` maps `(B, 1, *grid)` to the same; returns `steps` tensors shaped like b."""
    def dot(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return (u * v).sum(1)

    tiny = torch.finfo(b.dtype).tiny
    r, dirs, out = b.flatten(1), [], []
    for _ in range(steps):
        unit = (r / r.norm(dim=1, keepdim=True).clamp_min(tiny)).reshape(b.shape)
        q = direction(unit)
        q, Aq = conjugate_against(q.flatten(1), A(q).flatten(1), dirs, dot)
        qAq = dot(q, Aq)
        ok = (qAq > 0) & torch.isfinite(qAq)
        alpha = torch.where(ok, dot(q, r) / torch.where(ok, qAq, 1), 0)
        r = r - alpha.unsqueeze(1) * Aq
        dirs = (dirs + [(q, Aq, torch.where(ok, qAq, 1))])[-k:] if k else []
        out.append((r / r.norm(dim=1, keepdim=True).clamp_min(tiny)).reshape(b.shape))
    return out
