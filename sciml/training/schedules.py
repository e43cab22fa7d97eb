"""Optimizers and learning-rate schedules from their configs.

Every schedule is a closed form `lr(i) = lr * factor(i)`, `i` = the number of optimizer steps already
taken (the lr used by step i+1), wrapped in `torch.optim.lr_scheduler.LambdaLR`:

- warmup (all but one-cycle): factor(i) = (i + 1) / warmup_steps for i < warmup_steps; the schedule
  below then runs on t = i − warmup_steps over T = steps − warmup_steps;
- constant: 1;
- cosine: m + (1 − m)(1 + cos(π t / T)) / 2 with m = min_lr / lr (torch's CosineAnnealingLR, T_max = T);
- step: gamma ** (t // step_size) (torch's StepLR);
- one-cycle: torch's OneCycleLR (cos annealing, two phases, no momentum cycling) with max_lr = lr:
  from lr/div_factor up to lr over the first pct_start·steps − 1 steps, then down to
  lr/(div_factor·final_div_factor) at step steps − 1.
"""
from __future__ import annotations

import math
from typing import Callable, Iterable

import torch
from torch.optim.lr_scheduler import LambdaLR

from .config import OptimizerConfig, ScheduleConfig


def build_optimizer(cfg: OptimizerConfig, params: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
    params = [p for p in params if p.requires_grad]
    if cfg.name == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay)
    if cfg.name == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay)
    if cfg.name == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
                               weight_decay=cfg.weight_decay)
    raise ValueError(f"unknown optimizer {cfg.name!r}")


def lr_factor(cfg: ScheduleConfig, steps: int, lr: float) -> Callable[[int], float]:
    """factor(i): the multiplier of the base lr for the optimizer step after i steps (closed forms above)."""
    warmup = cfg.warmup_steps
    span = max(1, steps - warmup)

    if cfg.name == "one-cycle":
        initial = 1.0 / cfg.div_factor
        final = initial / cfg.final_div_factor
        end_up = float(cfg.pct_start * steps) - 1
        end_down = float(steps - 1)

        def one_cycle(i: int) -> float:
            i = min(i, steps - 1)
            if i <= end_up:
                return _cos_anneal(initial, 1.0, i / end_up)
            return _cos_anneal(1.0, final, (i - end_up) / (end_down - end_up))

        return one_cycle

    if cfg.name == "constant":
        def main(t: int) -> float:
            return 1.0
    elif cfg.name == "cosine":
        m = cfg.min_lr / lr

        def main(t: int) -> float:
            return m + (1 - m) * (1 + math.cos(math.pi * min(t, span) / span)) / 2
    elif cfg.name == "step":
        def main(t: int) -> float:
            return cfg.gamma ** (t // cfg.step_size)
    else:
        raise ValueError(f"unknown schedule {cfg.name!r}")

    def factor(i: int) -> float:
        if i < warmup:
            return (i + 1) / warmup
        return main(i - warmup)

    return factor


def _cos_anneal(start: float, end: float, pct: float) -> float:
    return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: ScheduleConfig, steps: int) -> LambdaLR:
    """A LambdaLR stepping the closed-form schedule; call `.step()` after each `optimizer.step()`."""
    base = optimizer.param_groups[0]["lr"]
    return LambdaLR(optimizer, lr_factor(cfg, steps, base))
