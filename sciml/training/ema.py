"""Exponential moving average of a model's weights."""
from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from ..models.registry import unwrap


class EMA:
    """A shadow copy of `model` updated after each optimizer step: ema ← decay·ema + (1 − decay)·param.

    After k updates from ema₀ with parameters p₁..p_k: ema_k = decayᵏ·ema₀ + (1 − decay)·Σⱼ decayᵏ⁻ʲ·pⱼ.
    Buffers (e.g. batch-norm statistics) are copied, not averaged. `module` is an ordinary module
    (eval mode, no gradients) to evaluate or save.
    """

    def __init__(self, model: nn.Module, decay: float):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay must be in [0, 1), got {decay}")
        self.decay = float(decay)
        self.module = copy.deepcopy(unwrap(model)).eval().requires_grad_(False)
        self.updates = 0

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        model = unwrap(model)
        ema_params = list(self.module.parameters())
        params = [p.detach() for p in model.parameters()]
        if ema_params:
            torch._foreach_lerp_(ema_params, params, 1.0 - self.decay)
        for b_ema, b in zip(self.module.buffers(), model.buffers()):
            b_ema.copy_(b)
        self.updates += 1

    def state_dict(self) -> dict[str, Any]:
        return {"decay": self.decay, "updates": self.updates, "weights": self.module.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.module.load_state_dict(state["weights"])
        self.updates = int(state["updates"])
