"""Sparse-view CT reconstruction of the Shepp-Logan phantom: FBP, damped CG, TV, and PnP-ADMM with a TV prox.

    python examples/ct_reconstruction.py [--size 128] [--views 60] [--noise 0.01] [--device cpu] [--out out/ct.png]

Prints a PSNR/SSIM table and saves a figure with the reconstructions and error maps. A learned
denoiser for PnP (and LPN) will plug in through the same `denoiser=` option.
"""
from __future__ import annotations

import argparse
import time


import sciml
from sciml.operators.ct import fbp
from sciml.problems.imaging import ct_case, load_image



def run(size: int = 128, views: int = 60, noise: float = 0.01, device: str = "cpu", seed: int = 0,
        out: str | None = None) -> dict[str, dict[str, float]]:
    case = ct_case(load_image("shepp-logan", size, device=device), views=views, noise=noise, seed=seed)
    problem, truth = case.problem, case.truth
    A, y = problem.forward, problem.y
    recon, times = {}, {}

    def timed(name, fn):
        start = time.perf_counter()
        recon[name] = fn()
        times[name] = time.perf_counter() - start

    timed("FBP", lambda: fbp(y, A, filter="shepp-logan"))
    timed("CG (damped)", lambda: sciml.solve(problem, "cg", damp=1.0, maxiter=30).x)
    lam, rho = 0.02 * float(y.abs().max()), 1.0  # TV weight on the data scale; ADMM penalty
    timed("TV", lambda: sciml.solve(problem, "tv", lam=lam, maxiter=300).x)
    # PnP with the TV prox (lam / rho) minimises the same objective as TV: a check, and the slot for a
    # learned denoiser.
    denoiser = sciml.solvers.tv_denoiser(lam / rho)
    timed("PnP-ADMM (TV prox)",
          lambda: sciml.solve(problem, "pnp-admm", denoiser=denoiser, rho=rho, maxiter=30, x0=recon["FBP"]).x)
    table = {}
    print(f"sparse-view CT, {size}x{size}, {views} views, noise {noise}:")
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
    from pathlib import Path

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
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    print(f"wrote {out}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--views", type=int, default=60)
    ap.add_argument("--noise", type=float, default=0.01)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default="out/ct.png")
    args = ap.parse_args()
    run(args.size, args.views, args.noise, args.device, out=args.out)
