"""Learned models by name: a registry, checkpoints (safetensors + JSON config), small reference nets.

    @register_model("unet")
    class UNet(nn.Module):
        def __init__(self, channels: int = 1, width: int = 32): ...

    model = build_model("mlp", in_features=8, out_features=4)
    save(model, "out/mlp")            # out/mlp/model.safetensors + out/mlp/config.json
    model = load("out/mlp")           # rebuilt from the config, weights read, eval mode
"""
from .nets import ACTIVATIONS, CNN2d, MLP
from .lpn import LPN
from .registry import (MODELS, available_models, build_model, load, model_config, read_config, register_model, save,
                       unwrap)

__all__ = ["ACTIVATIONS", "CNN2d", "LPN", "MLP", "MODELS", "available_models", "build_model", "load", "model_config",
           "read_config", "register_model", "save", "unwrap"]
from .denoisers import ImagePatches, SigmaDnCNN, SigmaSchedule  # noqa: E402 (noise-conditioned denoiser, its data and loss)
from .gp_kernels import KERNEL_KINDS, SpectralMixtureKernel  # noqa: E402 (GP-HM kernels)
from .gphm import GPHM  # noqa: E402 (GP-HM model)
