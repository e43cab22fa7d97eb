"""Near-field MIMO radar imaging with plug-and-play regularisation on the magnitude (Oral & Oktem, IEEE TCI
2024): a complex 3-D reflectivity whose phase is random, a prior that acts on |x| only.

    python examples/mimo_pnp.py [--voxels 16 16 24] [--freqs 10] [--snr 30] [--seed 0] [--out out/mimo.png]
                                [--radar-denoiser DIR] [--tune]

Forward model: `sciml.operators.NearFieldMIMO.paper_setup` (the paper's cross-shaped 12 x 13 array, 4-16
GHz, on a coarser voxel grid). The scene is four extended targets (a box, two ellipsoids and a thin plate,
with smooth amplitudes) times a random phase; complex Gaussian noise at `--snr` dB (the paper's 30 dB).
All regularised methods solve the paper's constrained problem min R(|x|) s.t. ||Ax - y|| <= eps with
eps = sqrt(noise variance x number of measurements), by `pnp-admm` with `epsilon` (C-SALSA) and
`complex_mode = "magnitude"` (prox(|p|) e^{i angle p}):

- backprojection: A^H y;
- least squares: 20 CG iterations on the normal equations (`cg` with `damp = 0`);
- l1 on the magnitude: the soft threshold (the paper's l1 baseline);
- PnP: the shipped 2-D DnCNN (trained on MRI slices, datasets/mri/dncnn_mni152) applied to the
  magnitude slice by slice, after scaling by its maximum, along x, y and z with the three results averaged:
  any denoiser plugs in. Speckle leaves a positive background in |p| that a Gaussian denoiser keeps as
  signal (alone, this DnCNN falls below backprojection), so a small soft threshold runs first;
- PnP with a learned 3-D prior: the 3-D DnCNN of datasets/radar/dncnn3d_targets, trained on synthetic
  extended targets (`sciml.data.radar`, configs/dncnn3d-radar.toml) with the noise the magnitude prox
  hands it (the magnitude of the scene plus complex Gaussian noise), on the whole volume, after the same
  kind of soft threshold (without it, it falls below backprojection: a denoiser of white noise does not
  resolve what the 25 % measurements leave open). The paper trains a 3-D U-Net on synthetic targets with
  real Gaussian noise.

Score: PSNR of |x| / max|x| against |x_true| / max|x_true| (the paper's metric). The thresholds, the noise
level and the penalties were tuned on the scene of seed 1 (`--tune` prints that sweep); the default test
scene is seed 0.
"""
from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch

import sciml
from sciml import models
from sciml.data import extended_targets
from sciml.operators import NearFieldMIMO
from sciml.plots import save_figure
from sciml.solvers.variational import power_norm2, soft_threshold

DENOISER = Path(__file__).resolve().parents[1] / "datasets" / "mri" / "dncnn_mni152"
RADAR_DENOISER = Path(__file__).resolve().parents[1] / "datasets" / "radar" / "dncnn3d_targets"
L1_THRESHOLD = 0.1      # of max|p| (tuned on seed 1)
L1_RHO = 0.01           # its ADMM penalty ratio, times ||A||^2 (tuned on seed 1)
PNP_SIGMA = 0.05        # the DnCNN's noise level on the max-scaled magnitude (tuned on seed 1)
PNP_THRESHOLD = 0.15    # the soft threshold (of max|p|) before the DnCNN (tuned on seed 1)
AXES = (0, 1, 2)        # average the denoised x-, y- and z-slices; (2,): z-slices only
RHO = 0.03              # the PnP ADMM penalty ratio, times ||A||^2 (tuned on seed 1)
PNP3D_SIGMA = 0.05      # the 3-D radar denoiser's noise level (tuned on seed 1)
PNP3D_THRESHOLD = 0.1   # the soft threshold (of max|p|) before it (tuned on seed 1)
PNP3D_RHO = 0.03        # its ADMM penalty ratio, times ||A||^2 (tuned on seed 1)
ITERATIONS = {"l1": 100, "pnp": 60, "pnp3d": 60}  # the paper: 30 for its learned prior, many more for l1


def scene(voxels: tuple[int, int, int], seed: int) -> torch.Tensor:
    """A complex reflectivity `voxels`: four extended targets (a box, two ellipsoids and a thin plate at
    random positions, sizes and depths, with smooth amplitudes in [0.5, 1]; `sciml.data.extended_targets`)
    times a random phase."""
    g = torch.Generator().manual_seed(seed)
    mag = extended_targets(voxels, g, ("box", "ellipsoid", "plate", "ellipsoid"))
    phase = 2 * math.pi * torch.rand(voxels, generator=g, dtype=torch.float64)
    return torch.polar(mag, phase)


def simulate(voxels: tuple[int, int, int], freqs: int, snr: float, seed: int):
    """(operator, truth, data, eps): the paper's setup on a `voxels` grid with `freqs` frequencies."""
    A = NearFieldMIMO.paper_setup(n_freq=freqs, voxels=voxels)
    truth = scene(voxels, seed)
    clean = A @ truth
    noise_var = float(clean.abs().pow(2).mean()) * 10 ** (-snr / 10)
    g = torch.Generator().manual_seed(10_000 + seed)
    n = torch.complex(torch.randn(clean.shape, generator=g, dtype=torch.float64),
                      torch.randn(clean.shape, generator=g, dtype=torch.float64)) * math.sqrt(noise_var / 2)
    return A, truth, clean + n, math.sqrt(noise_var * clean.numel())


def magnitude_psnr(x: torch.Tensor, truth: torch.Tensor) -> float:
    """PSNR (dB) of |x| / max|x| against |truth| / max|truth|."""
    a, b = x.abs() / x.abs().max(), truth.abs() / truth.abs().max()
    return float(10 * torch.log10(1.0 / ((a - b) ** 2).mean()))


def slicewise(denoiser, sigma: float, axes: tuple[int, ...] = (2,)):
    """A real 3-D denoiser from a 2-D one `denoiser(images (B, H, W) in [0, 1], sigma)`: the magnitude,
    scaled by its maximum, is denoised slice by slice along each of `axes` (2: z-slices) and averaged."""

    def D(m: torch.Tensor) -> torch.Tensor:
        scale = m.max().clamp_min(1e-30)
        out = torch.zeros_like(m)
        for axis in axes:
            slices = (m / scale).movedim(axis, 0)                  # (n_axis, ., .)
            out += denoiser(slices, sigma).movedim(0, axis).clamp_min(0)
        return out * (scale / len(axes))

    return D


def volumetric(denoiser, sigma: float):
    """A 3-D denoiser `denoiser(volume (D, H, W), sigma)` on the magnitude scaled by its maximum."""

    def D(m: torch.Tensor) -> torch.Tensor:
        scale = m.max().clamp_min(1e-30)
        return denoiser(m / scale, sigma).clamp_min(0) * scale

    return D


def debiased(denoiser, threshold: float):
    """`denoiser` after a soft threshold of `threshold` x max: removes the positive background that speckle
    leaves in |p| (Rayleigh-distributed where x = 0), which a Gaussian denoiser would keep as signal."""

    def D(m: torch.Tensor) -> torch.Tensor:
        return denoiser(soft_threshold(m, threshold * float(m.max())))

    return D


def reconstructions(A, y, eps: float, methods, l1=L1_THRESHOLD, sigma=PNP_SIGMA, rho=RHO,
                    pnp_threshold=PNP_THRESHOLD, axes=AXES, l1_rho=L1_RHO, sigma3d=PNP3D_SIGMA,
                    rho3d=PNP3D_RHO, threshold3d=PNP3D_THRESHOLD, radar_denoiser=RADAR_DENOISER) -> dict:
    """name -> (complex reconstruction, seconds)."""
    problem = sciml.InverseProblem(A, y)
    x0 = A.adjoint(y)  # the start of the ADMM methods
    out = {}

    def timed(name, fn):
        start = time.perf_counter()
        with torch.no_grad():
            out[name] = (fn(), time.perf_counter() - start)

    norm2 = power_norm2(A, x0)
    opts = {"epsilon": eps, "complex_mode": "magnitude", "rtol": 0.0, "cg_maxiter": 5}
    if "backprojection" in methods:
        timed("backprojection", lambda: A.adjoint(y))
    if "ls" in methods:
        timed("least squares (CG, 20 it.)", lambda: sciml.solve(problem, "cg", maxiter=20).x)
    if "l1" in methods:
        def l1_prox(m):
            return soft_threshold(m, l1 * float(m.max()))
        timed("l1 on |x| (C-SALSA)", lambda: sciml.solve(problem, "pnp-admm", denoiser=l1_prox, x0=x0,
                                                                  maxiter=ITERATIONS["l1"], rho=l1_rho * norm2, **opts).x)
    if "pnp" in methods:
        D = debiased(slicewise(models.load(DENOISER), sigma, axes), pnp_threshold)
        timed("PnP, DnCNN on |x| (C-SALSA)", lambda: sciml.solve(problem, "pnp-admm", denoiser=D, x0=x0,
                                                                          maxiter=ITERATIONS["pnp"], rho=rho * norm2, **opts).x)
    if "pnp3d" in methods:
        D3 = debiased(volumetric(models.load(radar_denoiser), sigma3d), threshold3d)
        timed("PnP, 3-D radar DnCNN (C-SALSA)", lambda: sciml.solve(problem, "pnp-admm", denoiser=D3, x0=x0,
                                                                             maxiter=ITERATIONS["pnp3d"], rho=rho3d * norm2,
                                                                             **opts).x)
    return out


METHODS = ("backprojection", "ls", "l1", "pnp", "pnp3d")


def run(voxels=(16, 16, 24), freqs: int = 10, snr: float = 30.0, seed: int = 0, out: str | None = None,
        methods=METHODS, **settings) -> dict[str, dict[str, float]]:
    """Simulate, reconstruct, print and return `{method: {"psnr", "time"}}`; save a figure to `out`."""
    voxels = tuple(int(v) for v in voxels)
    A, truth, y, eps = simulate(voxels, freqs, snr, seed)
    recon = reconstructions(A, y, eps, methods, **settings)
    print(f"near-field MIMO, {voxels} voxels, {freqs} frequencies x 12 x 13 antennas "
          f"({y.numel()} measurements, {truth.numel()} unknowns), SNR {snr:g} dB, scene seed {seed}:")
    print(f"{'method':<30} {'PSNR (dB)':>9} {'time (s)':>8}")
    table = {}
    for name, (x, t) in recon.items():
        table[name] = {"psnr": magnitude_psnr(x, truth), "time": t}
        print(f"{name:<30} {table[name]['psnr']:>9.2f} {t:>8.2f}")
    if out:
        _figure(truth, {k: v[0] for k, v in recon.items()}, table, out)
    return table


def tune(voxels=(16, 16, 24), freqs: int = 10, snr: float = 30.0, seed: int = 1) -> None:
    """The sweep behind the module's settings, on the scene of `seed`."""
    for l1 in (0.1, 0.15, 0.25):
        for rho in (0.01, 0.03):
            print(f"l1 {l1}, rho {rho}:", run(voxels, freqs, snr, seed, methods=("l1",), l1=l1, l1_rho=rho))
    for t in (0.1, 0.15):
        for sigma in (0.05, 0.1):
            for rho in (0.03, 0.1):
                print(f"threshold {t}, sigma {sigma}, rho {rho}:",
                      run(voxels, freqs, snr, seed, methods=("pnp",), pnp_threshold=t, sigma=sigma, rho=rho))
    for t in (0.0, 0.05, 0.1, 0.15):  # 0: the denoiser alone
        for sigma in (0.05, 0.1):
            for rho in (0.03, 0.1):
                print(f"3-D denoiser: threshold {t}, sigma {sigma}, rho {rho}:",
                      run(voxels, freqs, snr, seed, methods=("pnp3d",), threshold3d=t, sigma3d=sigma, rho3d=rho))


def _figure(truth, recon, table, out: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    images = {"truth": truth, **recon}
    fig, axes = plt.subplots(2, len(images), figsize=(2.6 * len(images), 5.2))
    for i, (name, x) in enumerate(images.items()):
        m = (x.abs() / x.abs().max()).cpu().numpy()
        axes[0, i].imshow(m.max(axis=2).T, cmap="hot", vmin=0, vmax=1, origin="lower")   # top view (x, y)
        axes[1, i].imshow(m.max(axis=1).T, cmap="hot", vmin=0, vmax=1, origin="lower")   # side view (x, z)
        title = name if name == "truth" else f"{name}\n{table[name]['psnr']:.1f} dB"
        axes[0, i].set_title(title, fontsize=8)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    print(f"wrote {save_figure(fig, out, dpi=100)}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--voxels", type=int, nargs=3, default=(16, 16, 24), metavar=("NX", "NY", "NZ"))
    ap.add_argument("--freqs", type=int, default=10)
    ap.add_argument("--snr", type=float, default=30.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tune", action="store_true", help="print the sweep on scene seed 1 instead")
    ap.add_argument("--radar-denoiser", default=str(RADAR_DENOISER), metavar="DIR",
                    help="the 3-D denoiser checkpoint of the pnp3d row (default: the shipped one)")
    ap.add_argument("--out", default="out/mimo.png")
    args = ap.parse_args()
    if args.tune:
        tune(args.voxels, args.freqs, args.snr)
    else:
        run(args.voxels, args.freqs, args.snr, args.seed, out=args.out, radar_denoiser=args.radar_denoiser)
