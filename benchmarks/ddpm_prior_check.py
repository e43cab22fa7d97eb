"""How good is the shipped DDPM prior? Its Tweedie denoiser vs the shipped DnCNN, and unconditional samples.

    python benchmarks/ddpm_prior_check.py [--prior datasets/mri/ddpm_mni152] [--out benchmarks/ddpm_prior_samples.png]

On held-out test slice 0 of datasets/mri/mni152_slices.h5: for timesteps t, x_t = sqrt(abar) x0 + sqrt(1-abar) eps
(model space [-1, 1]); prints the PSNR of the noisy image, of the prior's Tweedie estimate and of the DnCNN
(datasets/mri/dncnn_mni152) at the same image-domain noise level (where it was trained: sigma <= 50/255).
Then draws 4 unconditional 128 x 128 samples (DDIM, 50 steps, `ddim` with no data consistency) and saves
them next to the test slice.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

import sciml
from sciml.metrics import psnr
from sciml.models import load, load_pretrained
from sciml.operators import IdentityOperator

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pnp_vs_tv_mri import test_slices  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def tweedie_table(prior, dncnn, x0: torch.Tensor, ts=(20, 50, 100, 200, 400, 700), seed: int = 0) -> list[dict]:
    """Per timestep t: the image-domain noise std and the PSNRs of x_t, of the prior's Tweedie estimate and
    of the DnCNN at the same noise level (None above 50/255, where it was not trained); x0 `(1, 1, H, W)`."""
    lo, hi = prior.data_range
    abar = prior.alphas_cumprod
    g = torch.Generator().manual_seed(seed)
    rows = []
    for t in ts:
        a = float(abar[t])
        xt = a**0.5 * (2 * (x0 - lo) / (hi - lo) - 1) + (1 - a) ** 0.5 * torch.randn(x0.shape, generator=g)
        with torch.no_grad():
            eps = prior(xt, torch.tensor([t]))
        to_image = lambda m: lo + (hi - lo) * (m + 1) / 2  # noqa: E731
        tweedie = to_image((xt - (1 - a) ** 0.5 * eps) / a**0.5)
        noisy = to_image(xt / a**0.5)
        sigma = (hi - lo) / 2 * ((1 - a) / a) ** 0.5
        dn = None
        if sigma <= 50 / 255:
            with torch.no_grad():
                dn = float(psnr(dncnn(noisy, torch.tensor([sigma])).clamp(lo, hi), x0, 1.0))
        rows.append({"t": t, "sigma": sigma, "noisy": float(psnr(noisy, x0, 1.0)),
                     "tweedie": float(psnr(tweedie.clamp(lo, hi), x0, 1.0)), "dncnn": dn})
    return rows


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prior", default=str(ROOT / "datasets" / "mri" / "ddpm_mni152"))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "ddpm_prior_samples.png"))
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    prior, dncnn = load_pretrained(args.prior), load(ROOT / "datasets" / "mri" / "dncnn_mni152")
    lo, hi = prior.data_range
    x0 = test_slices()[0].float()[None, None]
    print("| t | noise std (image) | noisy PSNR | Tweedie PSNR | DnCNN PSNR |")
    print("|---|---|---|---|---|")
    for r in tweedie_table(prior, dncnn, x0):
        dn = "-" if r["dncnn"] is None else f"{r['dncnn']:.2f}"
        print(f"| {r['t']} | {r['sigma']:.3f} | {r['noisy']:.2f} | {r['tweedie']:.2f} | {dn} |")
    eye = IdentityOperator((128, 128), dtype=torch.float64)
    samples = sciml.solve(sciml.InverseProblem(eye, torch.zeros(4, 128, 128, dtype=torch.float64)), "ddim",
                          model=prior, num_inference_steps=50, cg_iter=0).x
    print(f"unconditional samples: range [{float(samples.min()):.2f}, {float(samples.max()):.2f}] "
          f"(images lie in [{lo:g}, {hi:g}])")
    if args.out:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 5, figsize=(12.5, 2.8))
        for ax, (img, title) in zip(axes, [(x0[0, 0], "test slice"), *((s, f"sample {i}") for i, s in enumerate(samples))]):
            ax.imshow(img.cpu().numpy(), cmap="gray", vmin=lo, vmax=hi)
            ax.set_title(title, fontsize=9)
            ax.axis("off")
        fig.tight_layout()
        fig.savefig(args.out, dpi=80)
        plt.close(fig)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
