"""Export the DDPM training run to the shipped diffusers layout.

    python datasets/mri/export_ddpm.py [SOURCE] [OUT_DIR]

SOURCE defaults to out/train/ddpm-mni152/model, the model directory `sciml train
configs/ddpm-mni152.toml` writes at the end (with [ema] it holds the EMA weights). A checkpoint
directory (out/train/ddpm-mni152/checkpoint, written every 250 steps) works too: its EMA weights are
read from trainer_state.pt (torch.load with weights_only=True). OUT_DIR defaults to
datasets/mri/ddpm_mni152 (DDPMPipeline layout: model_index.json, unet/, scheduler/, sciml_prior.json).
Run from the repository root.
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch

from sciml.models.unet import UNet2DPrior


def main(argv: list[str]) -> int:
    source = Path(argv[0]) if argv else Path("out/train/ddpm-mni152/model")
    target = Path(argv[1]) if len(argv) > 1 else Path("datasets/mri/ddpm_mni152")
    prior = UNet2DPrior.from_pretrained(source)  # a sciml model directory (model.safetensors + config.json)
    what = "weights"
    if (source / "trainer_state.pt").is_file():  # a training checkpoint: take its EMA weights
        from sciml.training.checkpoint import read_state

        ema = read_state(source).get("ema")
        if ema is not None:
            prior.load_state_dict(ema["weights"], strict=True)
            what = f"EMA weights after {ema['updates']} updates"
    prior.save_pretrained(target)
    check = UNet2DPrior.from_pretrained(target)
    x = torch.randn(1, prior.in_channels, 128, 128, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        same = torch.equal(prior.eval()(x, 500), check(x, 500))
    if not same:
        print(f"error: {target} does not reproduce {source}", file=sys.stderr)
        return 1
    size = sum(f.stat().st_size for f in target.rglob("*") if f.is_file())
    print(f"{source} ({what}) -> {target} ({size / 1e6:.1f} MB, round trip exact)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
