"""Sparse-view CT: FBP, damped CG, TV, PnP-ADMM with a TV prox, PnP with the shipped learned denoiser, PnP with
the shipped learned proximal network (LPN) and DDS with the shipped diffusion prior, on the Shepp-Logan phantom, a held-out MNI152 brain slice or a real CT
slice.

    python examples/ct_reconstruction.py [--image shepp-logan|mni152|ct] [--index I] [--size 128] [--views 60]
                                         [--noise 0.01] [--method dds,tv,...] [--nfe 50] [--device cpu]
                                         [--out out/ct.png]

Prints a PSNR/SSIM table and saves a figure with the reconstructions and error maps. The learned priors
(`pnp-hqs`: the DnCNN of datasets/mri/dncnn_mni152/; `dds`: the DDPM of datasets/mri/ddpm_mni152/) were
trained on MNI152 brain slices, so they belong with `--image mni152` (test slice 1, never seen in training);
on the phantom they run out of distribution. `--image ct` reconstructs real CT slice `--index` (default 0:
spine) of datasets/ct/ct_slices.h5 (see datasets/ct/README.md); the learned priors were trained on
MNI152 MRI slices, so on real CT they are out of distribution too.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

import sciml
from sciml import models
from sciml.models.denoisers import SigmaSchedule, clipped
from sciml.operators.ct import fbp
from sciml.plots import save_figure
from sciml.problems.imaging import ct_case, load_image
from sciml.solvers.variational import power_norm2

MRI_DATA = Path(__file__).resolve().parents[1] / "datasets" / "mri"
CT_DATA = Path(__file__).resolve().parents[1] / "datasets" / "ct" / "ct_slices.h5"
METHODS = ("fbp", "cg", "tv", "pnp-admm", "pnp-hqs", "lpn", "dds")


def run(size: int = 128, views: int = 60, noise: float = 0.01, device: str = "cpu", seed: int = 0,
        out: str | None = None, image: str = "shepp-logan", methods: tuple[str, ...] | str = METHODS,
        nfe: int = 50, index: int | None = None) -> dict[str, dict[str, float]]:
    """`index`: the slice of ``image="ct"`` (default 0) or the test slice of ``image="mni152"`` (default 1)."""
    if torch.device(device).type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device: {device!r} requested but no CUDA device is available")
    if image not in ("mni152", "shepp-logan", "ct"):
        raise ValueError(f"image must be 'mni152', 'shepp-logan' or 'ct', got {image!r}")
    methods = tuple(methods.split(",")) if isinstance(methods, str) else tuple(methods)
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        raise ValueError(f"methods: unknown {', '.join(unknown)}; choose from {', '.join(METHODS)}")
    if image == "ct":
        index = 0 if index is None else index
        truth = load_image(CT_DATA, size, index=index, device=device)
    elif image == "mni152":
        index = 1 if index is None else index
        truth = load_image(MRI_DATA / "mni152_slices.h5", size, index=index, split="test_index", device=device)
    else:
        index, truth = None, load_image("shepp-logan", size, device=device)
    case = ct_case(truth, views=views, noise=noise, seed=seed)
    problem, truth = case.problem, case.truth
    A, y = problem.forward, problem.y
    recon, times = {}, {}

    def timed(name, fn):
        start = time.perf_counter()
        with torch.no_grad():
            recon[name] = fn()
        times[name] = time.perf_counter() - start

    x_fbp = fbp(y, A, filter="shepp-logan")
    if "fbp" in methods:
        timed("FBP", lambda: x_fbp)
    if "cg" in methods:
        timed("CG (damped)", lambda: sciml.solve(problem, "cg", damp=1.0, maxiter=30).x)
    lam, rho = 0.04 * float(y.abs().max()), 1.0  # TV weight on the data scale; ADMM penalty
    if "tv" in methods:
        timed("TV", lambda: sciml.solve(problem, "tv", lam=lam, maxiter=300).x)
    if "pnp-admm" in methods:
        # PnP with the TV prox (lam / rho) minimises the same objective as TV: a check of the PnP machinery
        denoiser = sciml.solvers.tv_denoiser(lam / rho)
        timed("PnP-ADMM (TV prox)",
              lambda: sciml.solve(problem, "pnp-admm", denoiser=denoiser, rho=rho, maxiter=30, x0=x_fbp).x)
    if "pnp-hqs" in methods:
        # the DnCNN with its noise level annealed 50/255 -> 6/255; the penalty on the operator's scale
        # (0.02 ||A||^2, tuned in benchmarks/dds_vs_pnp.py at 30 views)
        dncnn = models.load(MRI_DATA / "dncnn_mni152", device=device)
        rho_pnp = 0.02 * power_norm2(A, x_fbp)
        D = SigmaSchedule(dncnn, 50 / 255, 6 / 255, 30)
        timed("PnP-HQS (DnCNN)", lambda: sciml.solve(problem, "pnp-hqs", denoiser=D, rho=rho_pnp, maxiter=30, rtol=0.0,
                                                     x0=x_fbp).x)
    if "lpn" in methods:
        # the learned proximal network of datasets/mri/lpn_mni152_s10 (trained at noise 0.1, the paper's CT
        # setting) in PnP-ADMM, clipped to [0, 1]; the penalty 0.01 ||A||^2 and 20 iterations as tuned in
        # benchmarks/dds_vs_pnp.py (10, 20 and 40 iterations gave the same PSNR there)
        lpn = clipped(models.load(MRI_DATA / "lpn_mni152_s10", device=device))
        timed("PnP-ADMM (LPN)", lambda: sciml.solve(problem, "pnp-admm", denoiser=lpn, rho=0.01 * power_norm2(A, x_fbp),
                                                    maxiter=20, rtol=0.0, x0=x_fbp).x)
    if "dds" in methods:
        prior = models.load_pretrained(MRI_DATA / "ddpm_mni152", device=device)
        timed(f"DDS ({nfe} NFE)", lambda: sciml.solve(problem, "dds", model=prior, num_inference_steps=nfe).x)
    table = {}
    label = image if index is None else f"{image} slice {index}"
    print(f"sparse-view CT, {label} {size}x{size}, {views} views, noise {noise}:")
    print(f"{'method':<22} {'PSNR (dB)':>9} {'SSIM':>6} {'time (s)':>8}")
    for name, x in recon.items():
        table[name] = {**case.scores(x), "time": times[name]}
        print(f"{name:<22} {table[name]['psnr']:>9.2f} {table[name]['ssim']:>6.3f} {times[name]:>8.2f}")
    if out:
        _figure(truth, recon, table, out)
    return table


def _figure(truth, recon, table, out: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(recon) + 1, figsize=(3 * (len(recon) + 1), 6))
    axes[0, 0].imshow(truth.cpu().numpy(), cmap="gray", vmin=0, vmax=1)
    axes[0, 0].set_title("truth")
    axes[1, 0].axis("off")
    for i, (name, x) in enumerate(recon.items(), start=1):
        axes[0, i].imshow(x.cpu().numpy(), cmap="gray", vmin=0, vmax=1)
        axes[0, i].set_title(f"{name}\n{table[name]['psnr']:.1f} dB", fontsize=9)
        axes[1, i].imshow((x - truth).abs().cpu().numpy(), cmap="magma", vmin=0, vmax=0.3)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    print(f"wrote {save_figure(fig, out, dpi=100)}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--image", default="shepp-logan", choices=["shepp-logan", "mni152", "ct"])
    ap.add_argument("--index", type=int, default=None,
                    help="slice of --image ct (default 0, the spine) or test slice of --image mni152 (default 1)")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--views", type=int, default=60)
    ap.add_argument("--noise", type=float, default=0.01)
    ap.add_argument("--method", default=",".join(METHODS),
                    help=f"comma-separated subset of {', '.join(METHODS)} (default: all)")
    ap.add_argument("--nfe", type=int, default=50, help="DDS model evaluations")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default="out/ct.png")
    args = ap.parse_args()
    run(args.size, args.views, args.noise, args.device, out=args.out, image=args.image, methods=args.method,
        nfe=args.nfe, index=args.index)
