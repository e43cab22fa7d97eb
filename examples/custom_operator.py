"""Plug your own forward model into sciml: a periodic Gaussian blur, deblurred with CG, TV, PnP with the
shipped learned denoiser, PnP with the shipped learned proximal network (LPN) and DDS with the shipped
diffusion prior.

The operator is written once (`apply` and `adjoint` on batched tensors); sciml checks its adjoint, and
every solver takes it as it is: CG on the Tikhonov-damped normal equations (AᴴA + damp² I) x = Aᴴ y,
TV by PDHG, PnP-HQS (DnCNN, noise level annealed), PnP-ADMM with the LPN, and DDS (50 NFE). Nothing here
needs `torch.no_grad()`: the solvers run their networks without autograd themselves.

    python examples/custom_operator.py [--image mni152|phantom] [--index 4] [--size 128] [--sigma 2.0]
                                       [--noise 0.01] [--method cg,tv,pnp,lpn,dds] [--out out/deblur.png]

The learned priors were trained on MNI152 brain slices, so they belong with `--image mni152` (a test
slice, never seen in training; the default). Their settings below were tuned on test slice 0 at the
defaults (blur 2 px, noise 0.01); the default `--index 4` is another test slice.
"""
from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import Callable

import torch

import sciml
from sciml import models
from sciml.metrics import psnr, ssim
from sciml.models.denoisers import SigmaSchedule, clipped
from sciml.problems.imaging import load_image

MRI_DATA = Path(__file__).resolve().parents[1] / "datasets" / "mri"
METHODS = ("cg", "tv", "pnp", "lpn", "dds")


class PeriodicBlur(sciml.operators.LinearOperator):
    """Circular convolution with a Gaussian of width `sigma` pixels on `(*batch, H, W)` images."""

    def __init__(self, shape: tuple[int, int], sigma: float, dtype=torch.float64):
        super().__init__(shape, shape, dtype=dtype)
        fy = torch.fft.fftfreq(shape[0], dtype=dtype)
        fx = torch.fft.rfftfreq(shape[1], dtype=dtype)
        # Fourier transform of a unit-mass Gaussian: exp(-2 pi^2 sigma^2 |f|^2); real and even.
        self.transfer = torch.exp(-2 * math.pi**2 * sigma**2 * (fy[:, None] ** 2 + fx[None, :] ** 2))

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        return torch.fft.irfft2(torch.fft.rfft2(x) * self.transfer, s=self.in_shape)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return self.apply(y)  # a real, even kernel: the blur is self-adjoint


def phantom(n: int, dtype=torch.float64) -> torch.Tensor:
    """A test image in [0, 1]: two discs and a bar on a dark background, `(n, n)`."""
    y, x = torch.meshgrid(torch.linspace(-1, 1, n, dtype=dtype), torch.linspace(-1, 1, n, dtype=dtype), indexing="ij")
    img = 0.2 * ((x**2 + y**2) < 0.8**2)
    img = img + 0.6 * (((x - 0.25) ** 2 + (y + 0.2) ** 2) < 0.25**2)
    img = img + 0.8 * ((x.abs() < 0.5) & ((y - 0.45).abs() < 0.06))
    return img.to(dtype)


def solvers(damp: float, nfe: int) -> dict[str, tuple[str, Callable]]:
    """method -> (row name, fn(problem, y) -> x); the learned priors are loaded when first used."""
    return {
        "cg": ("CG (damped)", lambda p, y: sciml.solve(p, "cg", damp=damp, rtol=1e-8, maxiter=500).x),
        "tv": ("TV", lambda p, y: sciml.solve(p, "tv", lam=0.002, maxiter=300).x),
        # DnCNN with its noise level annealed 50/255 -> 0.02 over 30 iterations, penalty 0.05
        "pnp": ("PnP-HQS (DnCNN)", lambda p, y: sciml.solve(
            p, "pnp-hqs", denoiser=SigmaSchedule(models.load(MRI_DATA / "dncnn_mni152"), 50 / 255, 0.02, 30),
            rho=0.05, maxiter=30, rtol=0.0).x),
        # the LPN (a prox, no noise level) projected onto [0, 1], penalty 0.1, 20 iterations from the data
        "lpn": ("PnP-ADMM (LPN)", lambda p, y: sciml.solve(
            p, "pnp-admm", denoiser=clipped(models.load(MRI_DATA / "lpn_mni152")), rho=0.1, maxiter=20, rtol=0.0,
            x0=y).x),
        # the DDPM prior, DDS's eta 0.85, the proximal data-consistency step with gamma 10
        "dds": (f"DDS ({nfe} NFE)", lambda p, y: sciml.solve(
            p, "dds", model=models.load_pretrained(MRI_DATA / "ddpm_mni152"), num_inference_steps=nfe, eta=0.85,
            gamma=10.0).x),
    }


def run(size: int = 128, sigma: float = 2.0, noise: float = 0.01, damp: float = 0.1, seed: int = 0,
        out: str | None = None, image: str = "mni152", index: int = 4,
        methods: tuple[str, ...] | str = METHODS, nfe: int = 50) -> dict[str, dict[str, float]]:
    """PSNR/SSIM/time per method (and of the blurred data, row "blurred"); `index` is the MNI152 test slice."""
    methods = tuple(methods.split(",")) if isinstance(methods, str) else tuple(methods)
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        raise ValueError(f"methods: unknown {', '.join(unknown)}; choose from {', '.join(METHODS)}")
    if image == "mni152":
        truth = load_image(MRI_DATA / "mni152_slices.h5", size, index=index, split="test_index")
    elif image == "phantom":
        truth = phantom(size)
    else:
        raise ValueError(f"image must be 'mni152' or 'phantom', got {image!r}")
    A = PeriodicBlur((size, size), sigma)
    print(f"adjoint test: {sciml.operators.check_adjoint(A):.1e}")
    gen = torch.Generator().manual_seed(seed)
    y = A @ truth + noise * torch.randn(truth.shape, generator=gen, dtype=truth.dtype)
    problem = sciml.InverseProblem(A, y, noise_std=noise)

    recon, times = {"blurred": y}, {"blurred": 0.0}
    table = {}
    for method in methods:
        name, fn = solvers(damp, nfe)[method]
        start = time.perf_counter()
        recon[name] = fn(problem, y)
        times[name] = time.perf_counter() - start
    print(f"deblurring, {image} {size}x{size}, Gaussian blur {sigma} px, noise {noise}:")
    print(f"{'method':<20} {'PSNR (dB)':>9} {'SSIM':>6} {'time (s)':>8}")
    for name, x in recon.items():
        table[name] = {"psnr": float(psnr(x, truth, 1.0)), "ssim": float(ssim(x, truth, 1.0)), "time": times[name]}
        print(f"{name:<20} {table[name]['psnr']:>9.2f} {table[name]['ssim']:>6.3f} {times[name]:>8.2f}")
    if out:
        from ct_reconstruction import _figure  # the CT example's figure: reconstructions and error maps

        _figure(truth, recon, table, out)
    return table


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description="Deblur with a user-defined operator and every kind of sciml solver.")
    ap.add_argument("--image", default="mni152", choices=["mni152", "phantom"])
    ap.add_argument("--index", type=int, default=4, help="MNI152 test slice (0 tuned the settings)")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--sigma", type=float, default=2.0, help="blur width in pixels")
    ap.add_argument("--noise", type=float, default=0.01)
    ap.add_argument("--damp", type=float, default=0.1, help="CG's Tikhonov weight")
    ap.add_argument("--method", default=",".join(METHODS), help=f"comma-separated subset of {', '.join(METHODS)}")
    ap.add_argument("--nfe", type=int, default=50, help="DDS model evaluations")
    ap.add_argument("--out", default="out/deblur.png")
    args = ap.parse_args()
    run(args.size, args.sigma, args.noise, args.damp, out=args.out, image=args.image, index=args.index,
        methods=args.method, nfe=args.nfe)
