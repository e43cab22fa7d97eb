r"""Training pairs, rollouts and the error metric of Poseidon / scOT (arXiv 2405.19101).

* :func:`all2all_pairs` — the "all2all" training pairs of a trajectory: every (input, target) snapshot
  pair with the target not before the input (lead time 0 included), so K + 1 snapshots give
  (K + 1)(K + 2) / 2 pairs.
* :func:`rollout` — a prediction a lead time ahead, directly (one call with the whole lead time) or
  autoregressively (``steps`` calls of ``lead_time / steps``, feeding each prediction back).
* :func:`median_relative_l1` — the paper's error: per sample and channel group
  :math:`\|\hat u_g - u_g\|_1 / \|u_g\|_1`, median over samples, mean over groups, in percent.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import torch

__all__ = ["all2all_pairs", "median_relative_l1", "relative_l1", "rollout"]


def all2all_pairs(n_snapshots: int, step: int = 1, max_steps: int | None = None,
                  allowed_transitions: Sequence[int] | None = None) -> list[tuple[int, int]]:
    """All (i, j) snapshot-index pairs with i <= j, as the official all2all training set.

    The trajectory's snapshots ``0, step, 2*step, ..., max_steps*step`` are used (``max_steps`` defaults
    to as many as fit in ``n_snapshots`` stored snapshots); the pairs are ``(step*a, step*b)`` with
    ``0 <= a <= b <= max_steps``, in lexicographic order. ``allowed_transitions`` keeps only pairs with
    ``b - a`` in it (e.g. ``[1]``: consecutive snapshots only). The lead time of a pair is
    ``(t_j - t_i)`` in the dataset's time unit (the official code divides by a per-dataset constant).

    Example: 8 snapshots (t = 0..7) -> 8 * 9 / 2 = 36 pairs; the official fluids setting
    (15 stored snapshots, step 2, max_steps 7) uses snapshots 0, 2, ..., 14 -> 36 pairs.
    """
    if not isinstance(n_snapshots, int) or n_snapshots < 1:
        raise ValueError(f"n_snapshots must be an integer >= 1, got {n_snapshots!r}")
    if not isinstance(step, int) or step < 1:
        raise ValueError(f"step must be an integer >= 1, got {step!r}")
    fit = (n_snapshots - 1) // step
    if max_steps is None:
        max_steps = fit
    if not isinstance(max_steps, int) or not 0 <= max_steps <= fit:
        raise ValueError(f"max_steps must be an integer in [0, {fit}] ((n_snapshots - 1) // step), got {max_steps!r}")
    allowed = None if allowed_transitions is None else set(allowed_transitions)
    return [(step * a, step * b) for a in range(max_steps + 1) for b in range(a, max_steps + 1)
            if allowed is None or (b - a) in allowed]


def _prediction(out: Any) -> torch.Tensor:
    return out.output if hasattr(out, "output") else out


def rollout(model: Callable[..., Any], x0: torch.Tensor, lead_time: torch.Tensor | float, steps: int = 1,
            return_all: bool = False) -> torch.Tensor:
    """Predict ``lead_time`` ahead of ``x0`` in ``steps`` equal model calls.

    ``steps = 1`` is the direct (one-shot) prediction; ``steps = n`` calls ``model(x, lead_time / n)``
    n times, feeding each prediction back. When the input has more channels than the model predicts
    (static inputs such as a coefficient field), the input's trailing channels ``x0[:, C_out:]`` are
    appended to every prediction before it is fed back, as the official trainer does.

    Args:
        model: called as ``model(x, t)`` with ``x`` ``(B, C_in, H, W)`` and ``t`` ``(B,)``; returns a
            tensor ``(B, C_out, H, W)`` or an object with ``.output`` (e.g. :class:`ScOT`).
        x0: ``(B, C_in, H, W)`` initial state.
        lead_time: ``(B,)`` or a scalar, the total lead time.
        steps: number of autoregressive steps (>= 1).
        return_all: return every step's prediction stacked ``(steps, B, C_out, H, W)``.

    Returns:
        ``(B, C_out, H, W)`` prediction at ``lead_time`` (or all steps, see `return_all`).
    """
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    B, C_in = x0.shape[:2]
    t = torch.as_tensor(lead_time, dtype=x0.dtype, device=x0.device).reshape(-1)
    if t.numel() == 1:
        t = t.expand(B)
    if t.numel() != B:
        raise ValueError(f"lead_time must be a scalar or have shape ({B},), got {tuple(t.shape)}")
    dt = t / steps
    x, outs = x0, []
    for _ in range(steps):
        y = _prediction(model(x, dt))
        outs.append(y)
        C_out = y.shape[1]
        if C_out > C_in:
            raise ValueError(f"the model predicts {C_out} channels but its input x0 has only {C_in}")
        x = torch.cat([y, x0[:, C_out:]], dim=1) if C_in > C_out else y
    return torch.stack(outs) if return_all else outs[-1]


def relative_l1(pred: torch.Tensor, target: torch.Tensor, channel_slices: Sequence[int] | None = None,
                percent: bool = True) -> torch.Tensor:
    """Per-sample, per-group relative L1 errors ``(B, G)``: ``sum |pred - target| / sum |target|`` over
    a group's channels and all pixels (a zero denominator counts as 1e-10).

    ``channel_slices`` are group boundaries (``[0, 1, 3, 4]``: channels {0}, {1, 2}, {3}); None treats
    every channel as its own group. ``percent`` multiplies by 100 (the official convention).
    """
    if pred.shape != target.shape or pred.ndim < 3:
        raise ValueError(f"pred and target must have the same shape (B, C, ...), got {tuple(pred.shape)} "
                         f"and {tuple(target.shape)}")
    B, C = pred.shape[:2]
    bounds = list(range(C + 1)) if channel_slices is None else list(channel_slices)
    if len(bounds) < 2 or bounds[0] < 0 or bounds[-1] > C or any(a >= b for a, b in zip(bounds[:-1], bounds[1:])):
        raise ValueError(f"channel_slices must be increasing boundaries in [0, C = {C}], got {channel_slices!r}")
    err = (pred - target).abs().reshape(B, C, -1).sum(-1)
    ref = target.abs().reshape(B, C, -1).sum(-1)
    out = []
    for a, b in zip(bounds[:-1], bounds[1:]):
        den = ref[:, a:b].sum(-1)
        out.append(err[:, a:b].sum(-1) / torch.where(den == 0, torch.full_like(den, 1e-10), den))
    rel = torch.stack(out, dim=1)
    return rel * 100 if percent else rel


def median_relative_l1(pred: torch.Tensor, target: torch.Tensor, channel_slices: Sequence[int] | None = None,
                       percent: bool = True) -> torch.Tensor:
    """The paper's error: median over samples of :func:`relative_l1`, then the mean over channel groups
    (the official "mean_over_median_relative_l1_error"; with one group, the median relative L1).

    The median of an even number of samples is the mean of the two middle values (as numpy's).
    Returns a 0-d tensor, in percent unless ``percent=False``.
    """
    rel = relative_l1(pred, target, channel_slices, percent)
    return torch.quantile(rel.to(torch.float64), 0.5, dim=0).mean().to(rel.dtype)
