"""Learned models by name: a registry, checkpoints (safetensors + JSON config), small reference nets.

    @register_model("unet")
    class UNet(nn.Module):
        def __init__(self, channels: int = 1, width: int = 32): ...

    model = build_model("mlp", in_features=8, out_features=4)
    save(model, "out/mlp")            # out/mlp/model.safetensors + out/mlp/config.json
    model = load("out/mlp")           # rebuilt from the config, weights read, eval mode
"""
from .dcdm import DCDMNet
from .denoisers import ImagePatches, SigmaDnCNN, SigmaSchedule
from .gp_kernels import KERNEL_KINDS, SpectralMixtureKernel
from .gphm import GPHM
from .lpn import LPN
from .nets import ACTIVATIONS, CNN2d, MLP
from .pretrained import load_pretrained
from .registry import (MODELS, available_models, build_model, load, model_config, read_config, register_model, save,
                       unwrap)
from .unet import UNet2DPrior

__all__ = ["ACTIVATIONS", "CNN2d", "DCDMNet", "GPHM", "ImagePatches", "KERNEL_KINDS", "LPN", "MLP", "MODELS",
           "SigmaDnCNN", "SigmaSchedule", "SpectralMixtureKernel", "UNet2DPrior", "available_models", "build_model",
           "load", "load_pretrained", "model_config", "read_config", "register_model", "save", "unwrap"]
