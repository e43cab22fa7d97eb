"""The shipped convolutional LPN as a denoiser and as a prior: denoising PSNR on held-out slices (against the
shipped DnCNN at the same noise level), the largest eigenvalue of its Jacobian (the Hessian of the convex
potential, by power iteration), and what repeated application does to a clean slice.

    python benchmarks/lpn_check.py [--model datasets/mri/lpn_mni152] [--sigma 0.05] [--threads 1]

A prox of a (nonconvex) regulariser need not be nonexpansive; a Jacobian eigenvalue above 1 means
iterating it alone, or in PnP with a weak data term, can move away from the data (see RESULTS.md). The
repeated application is also run on the slice scaled by 0.8 and 1.2 (PSNR against the scaled slice, peak
the gain): inside PnP the prox meets inputs brighter than any training image.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import h5py
import torch

from sciml import models
from sciml.metrics import psnr

ROOT = Path(__file__).resolve().parents[1]
SLICES = ROOT / "datasets" / "mri" / "mni152_slices.h5"


def max_jacobian_eigenvalue(model, x: torch.Tensor, iters: int = 30) -> float:
    """Largest eigenvalue of d prox / dx at x (symmetric PSD: the Hessian of psi), by power iteration."""
    x = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(model.psi(x).sum(), x, create_graph=True)
    v = torch.randn_like(x, generator=None)
    v = v / v.norm()
    lam = 0.0
    for _ in range(iters):
        (hv,) = torch.autograd.grad((g * v).sum(), x, retain_graph=True)
        lam = float((hv * v).sum())
        v = hv / hv.norm()
    return lam


@torch.no_grad()
def repeated(lpn, x: torch.Tensor, counts) -> dict[int, torch.Tensor]:
    """{k: the LPN applied k times to x} for each k in `counts`."""
    out = {}
    for k in range(1, max(counts) + 1):
        x = lpn(x)
        if k in counts:
            out[k] = x
    return out

def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(ROOT / "datasets" / "mri" / "lpn_mni152"))
    ap.add_argument("--dncnn", default=str(ROOT / "datasets" / "mri" / "dncnn_mni152"))
    ap.add_argument("--sigma", type=float, default=0.05)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    lpn, dncnn = models.load(args.model), models.load(args.dncnn)
    with h5py.File(SLICES, "r") as f:
        clean = torch.from_numpy(f["images"][:][f["test_index"][:]])[:, None]     # (10, 1, 128, 128)
    noisy = clean + args.sigma * torch.randn(clean.shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        rows = {"noisy": noisy, "LPN": lpn(noisy), f"DnCNN (sigma {args.sigma:g})": dncnn(noisy, args.sigma)}
    print(f"denoising the 10 held-out slices at sigma {args.sigma:g} (mean PSNR, dB):")
    for name, x in rows.items():
        print(f"  {name:<22} {float(psnr(x[:, 0], clean[:, 0], 1.0).mean()):6.2f}")
    x0 = clean[:1]
    print(f"largest Jacobian eigenvalue of the LPN at test slice 0: clean {max_jacobian_eigenvalue(lpn, x0):.2f}, "
          f"noisy {max_jacobian_eigenvalue(lpn, noisy[:1]):.2f}")
    for gain in (1.0, 0.8, 1.2):  # the slice at its own brightness, darker, and brighter than any training image
        target = gain * x0
        label = "clean slice 0" if gain == 1.0 else f"{gain:g} x clean slice 0"
        outputs = repeated(lpn, target, (1, 2, 5, 10))
        for k, x in outputs.items():
            print(f"  LPN applied {k:2d} times to {label}: PSNR {float(psnr(x[0, 0], target[0, 0], gain)):6.2f} dB, "
                  f"range [{float(x.min()):.2f}, {float(x.max()):.2f}]")
        if gain == 1.0:
            err = (outputs[2] - x0).abs()[0, 0]
            row, col = divmod(int(err.argmax()), err.shape[-1])
            window = x0[0, 0, max(row - 1, 0):row + 2, max(col - 1, 0):col + 2]
            print(f"    largest error after 2 applications: {float(err.max()):.2f} at pixel ({row}, {col}), where "
                  f"the clean slice is {float(x0[0, 0, row, col]):.2f} (its 3 x 3 neighbourhood spans "
                  f"[{float(window.min()):.2f}, {float(window.max()):.2f}])")


if __name__ == "__main__":
    main()
