"""Diffusion priors (DDS, DEIS-DC, DDIM + final data consistency, DPS) vs TV and PnP on held-out
MNI152 slices: 4x multi-coil MRI and sparse-view CT.

    python benchmarks/dds_vs_pnp.py [--task mri|ct|both] [--slices 9] [--nfe 50] [--threads 1] [--views 30]
                                    [--prior datasets/mri/ddpm_mni152] [--mri-prior DIR] [--lpn DIR]
                                    [--ct-lpn DIR] [--quick] [--no-diffusion] [--no-phase-refresh]

Data: the 10 held-out test slices of datasets/mri/mni152_slices.h5 (128 x 128, [0, 1]); slice 0 tunes
the methods' free parameters (every setting printed) and is left out of the table, which is the mean
over slices 1.. The diffusion prior is the DDPM of datasets/mri/ddpm_mni152 (`sciml.models.UNet2DPrior`,
a 1 M-parameter diffusers UNet2DModel trained on random 64 x 64 patches of the 30 training slices,
configs/ddpm-mni152.toml, then configs/ddpm-mni152-stage2.toml); the PnP denoiser is datasets/mri/dncnn_mni152. Neither saw a test slice.

MRI: exactly the protocol of benchmarks/pnp_vs_tv_mri.py (its `simulate`: 8 birdcage coils, known maps,
4x random lines with an 8 % centre, complex noise of std 0.01 per k-space sample), with its tuned TV
(lam 0.01) and PnP-HQS (noise level 50/255 -> 6/255, rho 0.05, 30 iterations, phase-constrained) settings
re-used. The diffusion solvers use `--mri-prior` (default `--prior`): a 2-channel (complex) prior, e.g.
datasets/mri/ddpm_mni152_complex (configs/ddpm-mni152-complex.toml: the same network trained on the
training patches times random smooth phases), sees the complex image as (real, imag) as in the DDS paper;
a 1-channel prior sees the real image after removing the calibration phase (`phase` =
`calibration_phase(y, mask, maps)`, the same phase PnP uses), which DDS and DEIS-DC re-estimate after
every data-consistency step (`phase_refresh` = 4 pixels, `PHASE_REFRESH`; `--no-phase-refresh` keeps
it fixed). PnP-HQS is run both ways: with the calibration phase, and with the phase re-estimated at
every iteration in the same way (`phase_constrained(..., refresh=PHASE_REFRESH)`).
CT: `sciml.problems.imaging.ct_case` (parallel beam, `--views` angles over 180 degrees, Gaussian noise
of std `--ct-noise` x max|sinogram|); FBP (Shepp-Logan filter), TV (lam tuned), PnP-HQS with the same
DnCNN (rho tuned), and the diffusion solvers on the real image.

LPN (`--lpn` for MRI, default datasets/mri/lpn_mni152, trained at noise 0.05; `--ct-lpn` for CT, default
datasets/mri/lpn_mni152_s10, trained at 0.1 as the paper's CT model; '' for none): PnP-ADMM with the
learned proximal network followed by the projection onto [0, 1] (phase-constrained for MRI: with the
calibration phase, and with it refreshed as PnP-HQS's, each tuned), x0 the zero-filled image / FBP; the
penalty and the number of iterations (an early stop, as the paper's 15-20) tuned on slice 0.
Each table is printed twice when a test slice is nearly empty: over all slices, and over the slices with
at least 10 % of their pixels above 0.05 (slice 9, the top of the head, has 0.9 %).

DDS: 50 NFE (`--nfe`), `cg_iter` 5, eta and the data-consistency branch (noiseless normal equations, or
the proximal step with gamma) tuned on slice 0; also warm-started at timestep 0.3 T from 20 CG steps on
the normal equations (`start = 0.3`, SDEdit/CCDF-style, not in the DDS paper), alone and as the mean of 8
samples (a batch). DEIS-DC: the `deis` solver (tAB, order 3, quadratic
time) with the same data consistency, NFE `--deis-nfe`. DDIM: unconditional DDIM (eta 0) then 20 CG
steps of data consistency. DPS: `--dps-nfe` steps, step size tuned. PSNR/SSIM of the magnitude, data
range 1; time per slice on this machine (`--threads` CPU threads).
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch

import sciml
from sciml import models
from sciml.models.denoisers import SigmaSchedule, clipped, phase_constrained
from sciml.operators.ct import fbp
from sciml.operators.mri import calibration_phase, zero_filled
from sciml.problems.imaging import ct_case, load_image
from sciml.solvers.variational import power_norm2

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pnp_vs_tv_mri import mean_table, pnp, score, simulate, test_slices  # noqa: E402  (the MRI protocol)

ROOT = Path(__file__).resolve().parents[1]
PRIOR = ROOT / "datasets" / "mri" / "ddpm_mni152"
DENOISER = ROOT / "datasets" / "mri" / "dncnn_mni152"
SLICES = ROOT / "datasets" / "mri" / "mni152_slices.h5"
LPN = ROOT / "datasets" / "mri" / "lpn_mni152"
CT_LPN = ROOT / "datasets" / "mri" / "lpn_mni152_s10"
# LPN in PnP-ADMM, as the paper: a fixed prox (no noise level), the penalty rho and an early stop tuned.
# rho is of the order of (data noise std / the LPN's training noise level)^2, times ||A||^2 for CT
LPN_ITERATIONS = (10, 20, 40)
LPN_RHOS = {"mri": (0.01, 0.03, 0.1), "ct": (0.003, 0.01, 0.03)}
MIN_BODY = 0.1  # fraction of pixels above 0.05 that makes a slice count as a brain slice
# MRI with a 1-channel prior: the Gaussian width (pixels) of the phase re-estimate, picked among {2, 3, 4}
# on tuning slice 0 in development runs (for DDS and PnP-HQS alike); not swept here
PHASE_REFRESH = 4.0


def sweep(name: str, values, run, truth) -> object:
    """The value with the best PSNR on the tuning slice (each setting printed)."""
    best, best_v = -math.inf, None
    for v in values:
        start = time.perf_counter()
        p, s = score(run(v), truth)
        print(f"  tune {name} = {v!s:<28} PSNR {p:6.2f}  SSIM {s:.3f}  ({time.perf_counter() - start:.1f} s)", flush=True)
        if p > best:
            best, best_v = p, v
    return best_v


def diffusion_methods(prior, nfe: int, deis_nfe: int, dps_nfe: int, tuned: dict, phase_of, refresh=None) -> dict:
    """name -> fn(problem) for the diffusion solvers; `phase_of(problem)` gives the phase option (or None),
    `refresh` DDS's and DEIS's `phase_refresh`."""
    eta, gamma, zeta = tuned["eta"], tuned["gamma"], tuned["zeta"]

    def opts(p):
        return {"model": prior, "phase": phase_of(p), "seed": 0}

    def dc_opts(p):  # the samplers with data consistency every step
        return {**opts(p), "phase_refresh": refresh}

    return {
        f"DDS ({nfe} NFE, eta {eta:g}, {_branch(gamma)})":
            lambda p: sciml.solve(p, "dds", num_inference_steps=nfe, eta=eta, gamma=gamma, **dc_opts(p)).x,
        "DDS, warm start at 0.3 T":
            lambda p: sciml.solve(p, "dds", num_inference_steps=nfe, eta=eta, gamma=gamma, start=0.3, **dc_opts(p)).x,
        "DDS, warm start, mean of 8 samples":  # towards the posterior mean (the 8 samples are one batch)
            lambda p: sciml.solve(p, "dds", num_inference_steps=nfe, eta=eta, gamma=gamma, start=0.3, num_samples=8,
                                  **dc_opts(p)).x,
        f"DEIS-DC (tAB-3, {deis_nfe} NFE)":
            lambda p: sciml.solve(p, "deis", num_inference_steps=deis_nfe, gamma=gamma, **dc_opts(p)).x,
        f"DDIM + final CG ({nfe} NFE)":
            lambda p: sciml.solve(p, "ddim", num_inference_steps=nfe, **opts(p)).x,
        f"DPS ({dps_nfe} NFE, zeta {zeta:g})":
            lambda p: sciml.solve(p, "dps", num_inference_steps=dps_nfe, step_size=zeta, **opts(p)).x,
    }


def _branch(gamma) -> str:
    return "A^HA x = A^Hy" if gamma is None else f"gamma {gamma:.3g}"


def tune_diffusion(problem, truth, prior, nfe: int, dps_nfe: int, phase, gammas, quick: bool, refresh=None) -> dict:
    def run(solver, **fixed):
        return lambda v: sciml.solve(problem, solver, model=prior, phase=phase, seed=0, **fixed, **v).x

    grid = [{"eta": e, "gamma": g} for e in ((0.85,) if quick else (0.5, 0.85)) for g in gammas]
    best = sweep("DDS (eta, gamma)", grid, run(solver="dds", num_inference_steps=nfe, phase_refresh=refresh), truth)
    zetas = [{"step_size": z} for z in ((1.0,) if quick else (0.3, 1.0, 3.0))]
    zeta = sweep("DPS step size", zetas, run(solver="dps", num_inference_steps=dps_nfe), truth)
    return {"eta": best["eta"], "gamma": best["gamma"], "zeta": zeta["step_size"]}


def run_table(title: str, slices, make, methods, truth_of) -> dict:
    """Every method on every slice; prints the mean table over all slices and, when some slices are
    nearly empty, also over the slices with at least `MIN_BODY` of their pixels above 0.05 (an empty
    slice is reconstructed to 45-55 dB by every prior, and one such slice then dominates a mean of PSNRs)."""
    table, body = {}, {}
    for i in slices:
        problem, extra = make(i)
        truth = truth_of(extra)
        fraction = float((truth.abs() > 0.05).double().mean())
        for name, fn in methods.items():
            start = time.perf_counter()
            with torch.no_grad():  # DPS turns autograd on where it needs it
                x = fn(problem, extra)
            elapsed = time.perf_counter() - start
            p, s = score(x, truth)
            for rows in (table, body) if fraction >= MIN_BODY else (table,):
                row = rows.setdefault(name, {"psnr": [], "ssim": [], "time": []})
                row["psnr"].append(p), row["ssim"].append(s), row["time"].append(elapsed)
            print(f"  slice {i} ({100 * fraction:.0f}% body): {name:<44} PSNR {p:6.2f}  SSIM {s:.3f}  {elapsed:6.1f} s",
                  flush=True)
    summary = mean_table(table, f"{title}: mean over {len(slices)} held-out slices")
    count = len(next(iter(body.values()))["psnr"]) if body else 0
    if 0 < count < len(slices):
        summary = {"all": summary, "body": mean_table(body, f"{title}: mean over the {count} held-out slices with at "
                                                           f"least {100 * MIN_BODY:.0f}% body")}
    print(flush=True)
    return summary


def mri(args, prior, denoiser, lpn=None) -> dict:
    images = test_slices()
    print(f"MRI: {args.coils} coils, 4x lines, noise 0.01, 128x128 MNI152 test slices", flush=True)

    def make(i):
        truth, A, y = simulate(images[i], args.coils, 4.0, 0.01, seed=i)
        return sciml.InverseProblem(A, y, noise_std=0.01), (truth, A)

    def phase_of(p):  # a 1-channel prior sees the real image after removing the calibration phase
        return calibration_phase(p.y, p.forward.mask, p.forward.sensitivities) if prior.in_channels == 1 else None

    refresh = PHASE_REFRESH if prior.in_channels == 1 and not args.no_phase_refresh else None
    problem, (truth, A) = make(0)
    print(f"tuning on test slice 0 (not in the table); {prior.in_channels}-channel prior, phase_refresh {refresh}:",
          flush=True)
    with torch.no_grad():
        tuned = None if args.no_diffusion else tune_diffusion(problem, truth, prior, args.nfe, args.dps_nfe,
                                                                   phase_of(problem), (0.3, 1.0, 3.0), args.quick, refresh)
    methods = {
        "zero-filled": lambda p, e: zero_filled(p.y, e[1].sensitivities),
        "TV (lam 0.01)": lambda p, e: sciml.solve(sciml.InverseProblem(p.forward, p.y), "tv", lam=0.01, maxiter=300).x,
        "PnP-HQS, phase (6/255, rho 0.05)": lambda p, e: pnp(sciml.InverseProblem(p.forward, p.y), e[1], denoiser,
                                                            6 / 255, 0.05, 30),
        "PnP-HQS, phase refreshed (4 px)": lambda p, e: pnp(sciml.InverseProblem(p.forward, p.y), e[1], denoiser,
                                                           6 / 255, 0.05, 30, refresh=PHASE_REFRESH),
    }
    if lpn is not None:
        def lpn_mri(p, rho, its, refresh=None):
            D = phase_constrained(clipped(lpn), calibration_phase(p.y, p.forward.mask, p.forward.sensitivities), refresh)
            x0 = zero_filled(p.y, p.forward.sensitivities)
            return sciml.solve(sciml.InverseProblem(p.forward, p.y), "pnp-admm", denoiser=D, rho=rho, maxiter=its,
                               rtol=0.0, x0=x0).x

        grid = [(r, i) for r in LPN_RHOS["mri"] for i in LPN_ITERATIONS]
        for refresh, tag in ((None, "phase"), (PHASE_REFRESH, "phase refreshed")):
            with torch.no_grad():
                best = sweep(f"LPN PnP-ADMM, {tag} (rho, iterations)", grid, lambda v: lpn_mri(problem, *v, refresh), truth)
            methods[f"PnP-ADMM, {tag} (LPN, rho {best[0]:g}, {best[1]} it.)"] = \
                (lambda b, r: (lambda p, e: lpn_mri(p, *b, r)))(best, refresh)
    if tuned is not None:
        for name, fn in diffusion_methods(prior, args.nfe, args.deis_nfe, args.dps_nfe, tuned, phase_of, refresh).items():
            methods[name] = (lambda f: (lambda p, e: f(p)))(fn)
    slices = range(1, 1 + min(args.slices, len(images) - 1))
    return run_table("MRI, 4x, 8 coils", slices, make, methods, lambda e: e[0])


def ct(args, prior, denoiser, lpn=None) -> dict:
    print(f"CT: {args.views} views, noise {args.ct_noise} x max|sinogram|, 128x128 MNI152 test slices", flush=True)

    def make(i):
        case = ct_case(load_image(SLICES, 128, index=i, split="test_index"), views=args.views, noise=args.ct_noise, seed=i)
        return case.problem, case

    problem, case = make(0)
    A, y, truth = problem.forward, problem.y, case.truth
    norm2 = power_norm2(A, truth)
    scale = float(y.abs().max())
    print(f"tuning on test slice 0 (not in the table); ||A||^2 = {norm2:.4g}, max|y| = {scale:.4g}:", flush=True)
    with torch.no_grad():
        lams = (0.04, 0.08) if args.quick else (0.02, 0.04, 0.08, 0.16)
        lam = sweep("TV lam / max|y|", lams, lambda v: sciml.solve(problem, "tv", lam=v * scale, maxiter=300).x, truth)
        rhos = (0.02, 0.05) if args.quick else (0.005, 0.01, 0.02, 0.05, 0.1)

        def pnp_ct(p, rho, x0):
            D = SigmaSchedule(denoiser, 50 / 255, 6 / 255, 30)
            return sciml.solve(p, "pnp-hqs", denoiser=D, rho=rho * norm2, maxiter=30, rtol=0.0, x0=x0).x

        rho = sweep("PnP rho / ||A||^2", rhos, lambda v: pnp_ct(problem, v, fbp(y, A, "shepp-logan")), truth)

        def lpn_ct(p, rho, its):
            return sciml.solve(p, "pnp-admm", denoiser=clipped(lpn), rho=rho * norm2, maxiter=its, rtol=0.0,
                               x0=fbp(p.y, p.forward, "shepp-logan")).x

        if lpn is not None:
            best = sweep("LPN PnP-ADMM (rho / ||A||^2, iterations)", [(r, i) for r in LPN_RHOS["ct"] for i in LPN_ITERATIONS],
                         lambda v: lpn_ct(problem, *v), truth)
        gammas = (1.0 / norm2, 10.0 / norm2, 100.0 / norm2)
        tuned = None if args.no_diffusion else tune_diffusion(problem, truth, prior, args.nfe, args.dps_nfe, None,
                                                                   gammas, args.quick)
    methods = {
        "FBP (Shepp-Logan filter)": lambda p, e: fbp(p.y, p.forward, "shepp-logan"),
        f"TV (lam {lam:g} max|y|)": lambda p, e: sciml.solve(p, "tv", lam=lam * float(p.y.abs().max()), maxiter=300).x,
        f"PnP-HQS (DnCNN, rho {rho:g} ||A||^2)": lambda p, e: pnp_ct(p, rho, fbp(p.y, p.forward, "shepp-logan")),
    }
    if lpn is not None:
        methods[f"PnP-ADMM (LPN, rho {best[0]:g} ||A||^2, {best[1]} it.)"] = lambda p, e: lpn_ct(p, *best)
    if tuned is not None:
        for name, fn in diffusion_methods(prior, args.nfe, args.deis_nfe, args.dps_nfe, tuned, lambda p: None).items():
            methods[name] = (lambda f: (lambda p, e: f(p)))(fn)
    slices = range(1, 1 + min(args.slices, 9))
    return run_table(f"CT, {args.views} views", slices, make, methods, lambda e: e.truth)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", choices=["mri", "ct", "both"], default="both")
    ap.add_argument("--slices", type=int, default=9, help="test slices in each table (at most 9)")
    ap.add_argument("--nfe", type=int, default=50)
    ap.add_argument("--deis-nfe", type=int, default=20)
    ap.add_argument("--dps-nfe", type=int, default=100)
    ap.add_argument("--coils", type=int, default=8)
    ap.add_argument("--views", type=int, default=30)
    ap.add_argument("--ct-noise", type=float, default=0.01)
    ap.add_argument("--prior", default=str(PRIOR))
    ap.add_argument("--mri-prior", default=None, help="the diffusion prior for MRI (default --prior); a 2-channel "
                                                      "prior sees the complex image, a 1-channel one the phase-corrected real image")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="smaller sweeps")
    ap.add_argument("--no-phase-refresh", action="store_true", help="MRI, 1-channel prior: keep the calibration phase")
    ap.add_argument("--no-diffusion", action="store_true", help="only the classical and PnP rows")
    ap.add_argument("--lpn", default=str(LPN), help="learned proximal network for the MRI PnP-ADMM rows ('' for none)")
    ap.add_argument("--ct-lpn", default=str(CT_LPN), help="learned proximal network for the CT PnP-ADMM rows ('' for none)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    prior = models.load_pretrained(args.prior)
    denoiser = models.load(DENOISER)
    out = {}
    if args.task in ("mri", "both"):
        mri_prior = models.load_pretrained(args.mri_prior) if args.mri_prior else prior
        out["mri"] = mri(args, mri_prior, denoiser, models.load(args.lpn) if args.lpn else None)
    if args.task in ("ct", "both"):
        out["ct"] = ct(args, prior, denoiser, models.load(args.ct_lpn) if args.ct_lpn else None)
    return out


if __name__ == "__main__":
    main()
