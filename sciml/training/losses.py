"""Losses and evaluation metrics by name, so methods can add their own.

Two kinds of loss:

- pointwise, `fn(pred, target, **options) -> scalar`: the trainer computes `pred = model(batch[input])`
  and compares it with `batch[target]` (keys from [loss] input/target, default "x" and "y");
- objective (`register_loss(name, objective=True)`), `fn(model, batch, **options) -> scalar`: the method
  does everything (noise sampling for diffusion priors, unrolled solvers, ...). Call the model through
  `model(...)`: under DDP it is the DistributedDataParallel wrapper and its forward must run.

Metrics, `fn(model, batch) -> scalar` (the mean over the batch), are averaged over the val split
weighted by batch size. "loss" is always the training loss; pointwise losses double as metrics.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

LossFn = Callable[[nn.Module, Any], torch.Tensor]
MetricFn = Callable[[nn.Module, Any], "torch.Tensor | float"]


@dataclass(frozen=True)
class RegisteredLoss:
    fn: Callable[..., torch.Tensor]
    objective: bool


LOSSES: dict[str, RegisteredLoss] = {}
METRICS: dict[str, MetricFn] = {}


def register_loss(name: str, *, objective: bool = False) -> Callable:
    """Decorator: a pointwise loss `fn(pred, target, **options)`, or with `objective=True` a loss
    `fn(model, batch, **options)`; [loss] keys other than name/input/target are the options."""

    def wrap(fn: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
        if name in LOSSES:
            raise ValueError(f"loss {name!r} is already registered")
        LOSSES[name] = RegisteredLoss(fn, objective)
        return fn

    return wrap


def register_metric(name: str) -> Callable[[MetricFn], MetricFn]:
    """Decorator: an evaluation metric `fn(model, batch) -> scalar`, named in [eval] metrics."""

    def wrap(fn: MetricFn) -> MetricFn:
        if name in METRICS or name == "loss":
            raise ValueError(f"metric {name!r} is already registered")
        METRICS[name] = fn
        return fn

    return wrap


def loss_options(name: str) -> list[str] | None:
    """The option names loss `name` accepts (None: any, it takes **kwargs)."""
    params = list(inspect.signature(LOSSES[name].fn).parameters.values())[2:]
    if any(p.kind == p.VAR_KEYWORD for p in params):
        return None
    return [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def metric_names() -> set[str]:
    """Names usable in [eval] metrics: "loss", registered metrics and pointwise losses."""
    return {"loss", *METRICS, *(n for n, loss in LOSSES.items() if not loss.objective)}


def make_loss(name: str, input: str = "x", target: str = "y", **options: Any) -> LossFn:
    """The loss `name` as `fn(model, batch) -> scalar`.

    Raises:
        ValueError: unknown name or options.
    """
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; registered losses: {', '.join(sorted(LOSSES))}")
    loss = LOSSES[name]
    try:
        inspect.signature(loss.fn).bind(None, None, **options)
    except TypeError as err:
        raise ValueError(f"loss {name!r}: {err}") from None
    if loss.objective:
        def objective(model: nn.Module, batch: Any) -> torch.Tensor:
            return loss.fn(model, batch, **options)

        return objective

    def pointwise(model: nn.Module, batch: Any) -> torch.Tensor:
        return loss.fn(model(batch[input]), batch[target], **options)

    return pointwise


def make_metric(name: str, training_loss: LossFn, input: str = "x", target: str = "y") -> MetricFn:
    """The metric `name`: "loss" is `training_loss`; then registered metrics; then pointwise losses."""
    if name == "loss":
        return training_loss
    if name in METRICS:
        return METRICS[name]
    if name in LOSSES and not LOSSES[name].objective:
        return make_loss(name, input, target)
    raise ValueError(f"unknown metric {name!r}; known: {', '.join(sorted(metric_names()))}")


def matched(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """`pred` in the shape of `target` when they differ only by unit axes (a `(B, 1, H, W)` prediction of
    `(B, H, W)` items), so a loss never broadcasts one sample against another; ValueError otherwise."""
    if pred.shape == target.shape:
        return pred
    if pred.numel() == target.numel() and [s for s in pred.shape if s != 1] == [s for s in target.shape if s != 1]:
        return pred.reshape(target.shape)
    raise ValueError(f"loss: the prediction has shape {tuple(pred.shape)} but the target {tuple(target.shape)}; "
                     "check the model's out_channels and the data's target field")


@register_loss("mse")
def mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error over all elements."""
    return F.mse_loss(matched(pred, target), target)


@register_loss("l1")
def l1(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute error over all elements."""
    return F.l1_loss(matched(pred, target), target)


@register_loss("relative-l2")
def relative_l2(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Mean over the batch (first axis) of ‖pred_i − target_i‖₂ / max(‖target_i‖₂, eps)."""
    n = target.shape[0] if target.ndim else 1
    diff = (matched(pred, target) - target).reshape(n, -1).norm(dim=1)
    return (diff / target.reshape(n, -1).norm(dim=1).clamp_min(eps)).mean()


@register_loss("masked-relative-l2", objective=True)
def masked_relative_l2(model: nn.Module, batch: Any, input: str = "x", target: str = "y",
                       mask: str = "mask") -> torch.Tensor:
    """`relative-l2` of the prediction multiplied by `batch[mask]` (1 inside the domain, 0 outside; the
    LSM / Geo-FNO Elasticity-G setup, where stress outside the holed unit cell is zero by definition)."""
    if mask not in batch:
        raise ValueError(f"loss masked-relative-l2: the batch has no field {mask!r} (it has {', '.join(map(repr, batch))}); "
                         "name the mask field with [loss] mask = \"...\"")
    pred = model(batch[input])
    y = batch[target]
    return relative_l2(matched(pred, y) * batch[mask].reshape(y.shape), y)


def _rollout(model: nn.Module, batch: Any, input: str, target: str) -> tuple[torch.Tensor, torch.Tensor]:
    from ..models.lsm import rollout

    y = batch[target]
    return rollout(model, batch[input], y.shape[1]), y


@register_loss("rollout-relative-l2", objective=True)
def rollout_relative_l2(model: nn.Module, batch: Any, input: str = "x", target: str = "y") -> torch.Tensor:
    """Autoregressive training (the FNO / LSM Navier-Stokes benchmark): the model maps the last T_in states
    `batch[input]` `(B, T_in, *S)` to the next one; it is rolled out `T_out` steps (`sciml.models.lsm.rollout`,
    gradients through the whole rollout, no teacher forcing) against `batch[target]` `(B, T_out, *S)`;
    the loss is the mean over the steps of each step's `relative-l2` (the papers sum it; the same up to
    the factor T_out)."""
    pred, y = _rollout(model, batch, input, target)
    return torch.stack([relative_l2(pred[:, t], y[:, t]) for t in range(y.shape[1])]).mean()


@register_metric("rollout-full-l2")
def rollout_full_l2(model: nn.Module, batch: Any) -> torch.Tensor:
    """The papers' Navier-Stokes metric: the relative L2 error of the whole T_out-step rollout (all steps
    as one vector per sample), from `batch["x"]` `(B, T_in, *S)` against `batch["y"]` `(B, T_out, *S)`."""
    pred, y = _rollout(model, batch, "x", "y")
    return relative_l2(pred, y)


def scale_invariant_residual(q: torch.Tensor, b: torch.Tensor, Aq: torch.Tensor) -> torch.Tensor:
    r"""DCDM's loss per sample (Kaneda et al., ICML 2023): :math:`\|b - \alpha A q\|^2 / \|b\|^2` with the
    exact line-search step :math:`\alpha = q^T b / q^T A q`, so scaling q by any nonzero factor changes
    nothing. `q`, `b`, `Aq`: `(B, ...)` real; returns `(B,)`. A sample with :math:`q^T A q = 0` gets
    :math:`\alpha = 0` (loss 1)."""
    qf, bf, Aqf = q.flatten(1), b.flatten(1), Aq.flatten(1)
    qAq = (qf * Aqf).sum(1)
    alpha = torch.where(qAq != 0, (qf * bf).sum(1) / torch.where(qAq != 0, qAq, 1), 0)
    r = bf - alpha.unsqueeze(1) * Aqf
    return r.square().sum(1) / bf.square().sum(1).clamp_min(torch.finfo(bf.dtype).tiny)


def energy_gain_loss(q: torch.Tensor, b: torch.Tensor, Aq: torch.Tensor, energy: torch.Tensor) -> torch.Tensor:
    r"""The log of the fraction of the A-norm error left after one exact line search along q, per sample:
    :math:`\log\|e - \alpha q\|_A^2 / \|e\|_A^2 = \log\big(1 - (q^T b)^2 / (q^T A q\; b^T A^{-1} b)\big)`,
    :math:`e = A^{-1} b`, clamped to [log 1e-6, 0]. Invariant to the scale of q and of b. `q`, `b`, `Aq`:
    `(B, ...)` real; `energy`: :math:`b^T A^{-1} b`, `(B,)`; returns `(B,)`. -2.3 is a 10x reduction."""
    qf, bf, Aqf = q.flatten(1), b.flatten(1), Aq.flatten(1)
    tiny = torch.finfo(qf.dtype).tiny
    gain = (qf * bf).sum(1).square() / ((qf * Aqf).sum(1).clamp_min(tiny) * energy.to(qf.dtype).clamp_min(tiny))
    return torch.log((1 - gain).clamp(1e-6, 1.0))


def _energies(A: Callable[[torch.Tensor], torch.Tensor], b: torch.Tensor, rtol: float = 1e-4) -> torch.Tensor:
    """:math:`b^T A^{-1} b` `(B,)` for `b` `(B, *shape)` by batched CG in float64 (error O(rtol^2) relative)."""
    from ..linalg import cg
    from ..operators import aslinearoperator

    b64 = b.detach().double()
    op = aslinearoperator(lambda v: A(v.to(b.dtype)).double(), in_shape=b.shape[1:])
    x = cg(op, b64, rtol=rtol, maxiter=10 * b[0].numel()).x
    return (x * b64).flatten(1).sum(1)


def _dcdm_terms(model: nn.Module, batch: Any, b: str, fluid: str, diag: str, unroll: int = 0,
                k: int = 2) -> tuple[Any, ...]:
    """(q, b, A q, A) for q = model(b) restricted to the fluid cells of each sample's scene; with `unroll`
    > 0, b is joined by the normalised residuals of `unroll` DCDM iterations from it (`dcdm_residuals`)."""
    from ..data.generators.dcdm import pressure_apply
    from ..models.dcdm import geometry_channel, network_input
    from ..models.registry import unwrap
    from ..linalg.conjugate_directions import dcdm_residuals

    rhs, mask, dg = batch[b], batch[fluid], batch[diag]
    dim = rhs.ndim - 2
    geometry = geometry_channel(mask, dg, dim) if getattr(unwrap(model), "geometry", False) else None
    if unroll:
        def direction(r: torch.Tensor) -> torch.Tensor:
            return model(network_input(r, geometry)) * mask

        with torch.no_grad():
            steps = dcdm_residuals(lambda v: pressure_apply(v, mask, dg, dim), rhs, direction, unroll, k)
        reps = (unroll + 1, *(1,) * (rhs.ndim - 1))
        rhs, mask, dg = torch.cat([rhs, *steps]), mask.repeat(reps), dg.repeat(reps)
        geometry = None if geometry is None else geometry.repeat(reps)
    def A(v: torch.Tensor) -> torch.Tensor:
        return pressure_apply(v, mask, dg, dim)

    q = model(network_input(rhs, geometry)) * mask
    return q, rhs, A(q), A


@register_loss("dcdm-residual", objective=True)
def dcdm_residual(model: nn.Module, batch: Any, b: str = "b", fluid: str = "fluid", diag: str = "diag") -> torch.Tensor:
    """DCDM training objective: the mean over the batch of `scale_invariant_residual` for
    q = model(b) restricted to the fluid cells, with the pressure-Poisson matrix of each sample's scene
    rebuilt from `batch[fluid]`, `batch[diag]` (`sciml.data.generators.dcdm`, dataset kind "dcdm-rhs")."""
    return scale_invariant_residual(*_dcdm_terms(model, batch, b, fluid, diag)[:3]).mean()


@register_loss("dcdm-energy", objective=True)
def dcdm_energy(model: nn.Module, batch: Any, b: str = "b", fluid: str = "fluid", diag: str = "diag",
                unroll: int = 0, k: int = 2) -> torch.Tensor:
    """DCDM objective in the energy norm (sciml's, not the paper's): the mean of `energy_gain_loss` for
    q = model(b) on the fluid cells, :math:`b^T A^{-1} b` by CG (no gradient). The paper's residual
    loss barely sees errors of q in the low modes (they are scaled by the small eigenvalues in A q),
    which are the ones that dominate the A-norm error.

    `unroll` > 0 also trains on the residuals the iteration meets: those of `unroll` DCDM steps (with
    `k` kept directions) from each b with the current network, taken without gradient. A network
    trained on b alone learns the lowest modes first and, after one step has removed them, proposes
    them again (a direction with no gain); the unrolled residuals are the cure."""
    if not isinstance(unroll, int) or isinstance(unroll, bool) or unroll < 0:
        raise ValueError(f"loss 'dcdm-energy': unroll must be an integer >= 0, got {unroll!r}")
    q, rhs, Aq, A = _dcdm_terms(model, batch, b, fluid, diag, unroll, k)
    with torch.no_grad():
        energy = _energies(A, rhs)
    return energy_gain_loss(q, rhs, Aq, energy).mean()
