"""Accelerated multi-coil MRI: zero-filled, CG-SENSE, TV, PnP-ADMM with a TV prox, PnP with the shipped
learned denoiser, PnP with the shipped learned proximal network (LPN) and DDS with the shipped diffusion
prior, on a held-out slice of the MNI152 brain
template (or a simulated phantom).

    python examples/mri_reconstruction.py [--image mni152|shepp-logan] [--size 128] [--coils 8]
                                          [--acceleration 4] [--noise 0.005] [--estimate-maps]
                                          [--method dds,tv,...] [--nfe 50] [--samples 1] [--device cpu]
                                          [--out out/mri.png]

k-space is simulated from the magnitude image (default: test slice 1 of datasets/mri/mni152_slices.h5,
a slice the denoiser never saw in training; `--image shepp-logan`: the modified Shepp-Logan phantom)
with a smooth phase and birdcage coil maps; sampling is random phase-encode lines with a fully
sampled centre. With --estimate-maps the coil maps are estimated from the calibration region instead
of taken as known. The learned PnP (PnP-HQS) uses the noise-conditioned DnCNN of
datasets/mri/dncnn_mni152/ (`sciml.models.load`) with an annealed noise level on the phase-corrected
image; DDS (`--method dds`) the diffusion prior of datasets/mri/ddpm_mni152/ (a diffusers UNet2DModel,
`sciml.models.load_pretrained`); with `--samples N` it is the mean of N samples, and a second figure
(`<out>_uncertainty.png`) puts their per-pixel standard deviation beside the actual error. Prints a
PSNR/SSIM table of the magnitude images and saves a figure with reconstructions and error maps.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

import sciml
from sciml import models
from sciml.models.denoisers import SigmaSchedule, clipped, phase_constrained
from sciml.operators.mri import zero_filled
from sciml.problems.imaging import load_image, mri_case

MRI_DATA = Path(__file__).resolve().parents[1] / "datasets" / "mri"


METHODS = ("zero-filled", "cg", "tv", "pnp-admm", "pnp-hqs", "lpn", "dds")


def run(size: int = 128, coils: int = 8, acceleration: float = 4.0, noise: float = 0.005, estimate_maps: bool = False,
        device: str = "cpu", seed: int = 0, out: str | None = None, image: str = "mni152",
        methods: tuple[str, ...] | str = METHODS, nfe: int = 50, samples: int = 1) -> dict[str, dict[str, float]]:
    if torch.device(device).type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device: {device!r} requested but no CUDA device is available")
    if image not in ("mni152", "shepp-logan"):
        raise ValueError(f"image must be 'mni152' or 'shepp-logan', got {image!r}")
    methods = tuple(methods.split(",")) if isinstance(methods, str) else tuple(methods)
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        raise ValueError(f"methods: unknown {', '.join(unknown)}; choose from {', '.join(METHODS)}")
    source = MRI_DATA / "mni152_slices.h5" if image == "mni152" else "shepp-logan"
    magnitude = load_image(source, size, index=1, split="test_index", device=device)  # a held-out slice
    case = mri_case(magnitude, coils=coils, acceleration=acceleration, noise=noise, estimate_maps=estimate_maps,
                    seed=seed)
    problem, maps = case.problem, case.extras["maps"]
    y, scale = problem.y, problem.noise_std
    recon, times = {}, {}

    def timed(name, fn):
        start = time.perf_counter()
        with torch.no_grad():
            recon[name] = fn()
        times[name] = time.perf_counter() - start

    zf = zero_filled(y, maps)
    if "zero-filled" in methods:
        timed("zero-filled", lambda: zf)
    if "cg" in methods:
        timed("CG-SENSE", lambda: sciml.solve(problem, "cg", maxiter=15).x)
    lam, rho = 0.004 * float(y.abs().max()), 1.0  # TV weight on the k-space scale (tuned at 64², 4x); ADMM penalty
    if "tv" in methods:
        timed("TV", lambda: sciml.solve(problem, "tv", lam=lam, maxiter=300).x)
    if "pnp-admm" in methods:
        denoiser = sciml.solvers.tv_denoiser(lam / rho)
        timed("PnP-ADMM (TV prox)",
              lambda: sciml.solve(problem, "pnp-admm", denoiser=denoiser, rho=rho, maxiter=30, x0=zf).x)
    if "pnp-hqs" in methods:
        # the learned prior: a noise-level-conditioned DnCNN trained on the MNI152 training slices, its noise
        # level annealed from 50/255 to 2.35 times the image-domain noise std (the ratio tuned in
        # benchmarks/pnp_vs_tv_mri.py: 6/255 at noise 0.01), applied to the real part of the image after
        # removing a smooth phase: that of the calibration lines, re-estimated at every iteration from the
        # current image smoothed over 4 pixels (refresh)
        dncnn = models.load(MRI_DATA / "dncnn_mni152", device=device)
        sigma_end = min(max(2.35 * float(scale), 2 / 255), 50 / 255)
        D = phase_constrained(SigmaSchedule(dncnn, 50 / 255, sigma_end, 20), case.extras["phase"], refresh=4.0)
        timed("PnP-HQS (DnCNN)", lambda: sciml.solve(problem, "pnp-hqs", denoiser=D, rho=0.05, maxiter=20, rtol=0.0,
                                                     cg_maxiter=20, x0=zf).x)
    if "lpn" in methods:
        # the learned proximal network of datasets/mri/lpn_mni152 (an exact prox, trained at noise 0.05) in
        # PnP-ADMM on the phase-corrected real image (the phase refreshed as PnP-HQS's), clipped to [0, 1] and
        # stopped early; penalty 200 x the k-space noise std squared and 20 iterations, chosen on this
        # example's slice with the calibration phase kept (rho 0.3 / 1 / 3 gave 23.9 / 26.8 / 24.3 dB; with the
        # refreshed phase 27.25 dB); benchmarks/dds_vs_pnp.py tunes them on another slice
        lpn = clipped(models.load(MRI_DATA / "lpn_mni152", device=device))
        D = phase_constrained(lpn, case.extras["phase"], refresh=4.0)
        timed("PnP-ADMM (LPN)", lambda: sciml.solve(problem, "pnp-admm", denoiser=D, rho=200 * float(scale) ** 2,
                                                    maxiter=20, rtol=0.0, x0=zf).x)
    if "dds" in methods:
        # the diffusion prior: a DDPM (diffusers UNet2DModel) trained on the MNI152 training slices; DDS
        # (Tweedie + 5 CG steps of data consistency + re-noising) on the phase-corrected real image, the phase
        # re-estimated after every step from the data-consistent estimate smoothed over 4 pixels
        prior = models.load_pretrained(MRI_DATA / "ddpm_mni152", device=device)
        dds = {}
        name = f"DDS ({nfe} NFE)" if samples == 1 else f"DDS ({nfe} NFE, mean of {samples})"
        timed(name, lambda: dds.setdefault("sol", sciml.solve(problem, "dds", model=prior, phase=case.extras["phase"],
                                                              phase_refresh=4.0, num_inference_steps=nfe,
                                                              num_samples=samples)).x)
    table = {}
    maps_note = "estimated" if estimate_maps else "known"
    print(f"multi-coil MRI, {image} {size}x{size}, {coils} coils ({maps_note} maps), {acceleration:g}x lines, noise {noise}:")
    print(f"{'method':<22} {'PSNR (dB)':>9} {'SSIM':>6} {'time (s)':>8}")
    for name, x in recon.items():
        table[name] = {**case.scores(x), "time": times[name]}
        print(f"{name:<22} {table[name]['psnr']:>9.2f} {table[name]['ssim']:>6.3f} {times[name]:>8.2f}")
    if out:
        from ct_reconstruction import _figure  # same figure layout as the CT example

        _figure(magnitude, {k: v.abs() for k, v in recon.items()}, table, out)
        if "dds" in methods and samples > 1:
            _uncertainty_figure(magnitude, dds["sol"], out)
    return table


def _uncertainty_figure(magnitude: torch.Tensor, sol, out: str) -> None:
    """DDS's sample mean, its actual error and the samples' per-pixel std (the model's uncertainty)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sciml.plots import save_figure

    mean = sol.x.abs().cpu()
    panels = [("DDS, mean of %d samples" % sol.info["num_samples"], mean, "gray", 1.0),
              ("|mean - truth|", (mean - magnitude.cpu()).abs(), "magma", 0.2),
              ("std of the samples", sol.info["std"].cpu(), "magma", 0.2)]
    fig, axes = plt.subplots(1, 3, figsize=(9.6, 3.4))
    for ax, (title, img, cmap, top) in zip(axes, panels):
        ax.imshow(img.numpy(), cmap=cmap, vmin=0, vmax=top)
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    path = Path(out)
    print(f"wrote {save_figure(fig, path.with_name(path.stem + '_uncertainty' + path.suffix), dpi=100)}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--image", default="mni152", choices=["mni152", "shepp-logan"])
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--coils", type=int, default=8)
    ap.add_argument("--acceleration", type=float, default=4.0)
    ap.add_argument("--noise", type=float, default=0.005)
    ap.add_argument("--estimate-maps", action="store_true")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default="out/mri.png")
    ap.add_argument("--method", default=",".join(METHODS),
                    help=f"comma-separated subset of {', '.join(METHODS)} (default: all)")
    ap.add_argument("--nfe", type=int, default=50, help="DDS model evaluations")
    ap.add_argument("--samples", type=int, default=1, help="DDS samples to average (> 1 adds an uncertainty figure)")
    args = ap.parse_args()
    run(args.size, args.coils, args.acceleration, args.noise, args.estimate_maps, args.device, out=args.out,
        image=args.image, methods=args.method, nfe=args.nfe, samples=args.samples)
