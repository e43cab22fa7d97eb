"""Diffusion models for inverse problems: VP noise schedules, the DEIS scheduler, exact-score test
distributions and the helpers the diffusion solvers (`dds`, `ddim`, `dps`, `deis`) share."""
from .gmm import GaussianMixture
from .prior import ImageLayout, eps_function, image_layout, tweedie
from .schedule import (CosineVPSchedule, DiscreteVPSchedule, LinearVPSchedule, VPSchedule, alphas_cumprod,
                       betas_for_schedule)

__all__ = ["CosineVPSchedule", "DEISScheduler", "DiscreteVPSchedule", "GaussianMixture", "ImageLayout", "LinearVPSchedule",
           "VPSchedule", "alphas_cumprod", "betas_for_schedule", "eps_function", "image_layout", "tweedie"]


def __getattr__(name: str):
    if name == "DEISScheduler":  # imported on first use: it subclasses diffusers' scheduler classes
        from .deis import DEISScheduler

        return DEISScheduler
    raise AttributeError(f"module 'sciml.diffusion' has no attribute {name!r}")
