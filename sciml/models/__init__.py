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
from .fno import FNO2d, NeuralopFNO, SpectralConv2d
from .gphm import GPHM
from .lpn import LPN, ConvLPN
from .lsm import LSM, NeuralSpectralBlock
from .nets import ACTIVATIONS, CNN2d, MLP
from .pretrained import load_pretrained
from .registry import (MODELS, available_models, build_model, load, model_config, read_config, register_model, save,
                       unwrap)
from .scot import ConditionalLayerNorm, ScOT, ScOTConfig, ScOTOutput, spectral_resample
from .scot_data import all2all_pairs, median_relative_l1, relative_l1, rollout
from .scot_train import (All2AllTrajectories, evaluate_median_rel_l1, finetune_model, read_trajectories, scot_loss,
                         use_param_groups)
from .unet import UNet2DPrior

__all__ = ["ACTIVATIONS", "All2AllTrajectories", "CNN2d", "ConditionalLayerNorm", "DCDMNet", "FNO2d", "GPHM",
           "ConvLPN", "ImagePatches", "KERNEL_KINDS", "LPN", "LSM", "MLP", "MODELS", "NeuralSpectralBlock", "NeuralopFNO",
           "ScOT", "ScOTConfig", "ScOTOutput", "SigmaDnCNN", "SigmaSchedule", "SpectralConv2d",
           "SpectralMixtureKernel", "UNet2DPrior", "all2all_pairs", "available_models", "build_model",
           "evaluate_median_rel_l1", "finetune_model", "load", "load_pretrained", "median_relative_l1",
           "model_config", "read_config", "read_trajectories", "register_model", "relative_l1", "rollout", "save",
           "scot_loss", "spectral_resample", "unwrap", "use_param_groups"]
