"""DEIS vs diffusers schedulers on an exact-score Gaussian mixture: error vs NFE.

The "model" is the exact noise prediction of a Gaussian mixture (:class:`sciml.diffusion.gmm.
GaussianMixture`), so the only error left is the ODE solver's. The reference endpoint of every
trajectory is the probability-flow ODE solved by scipy's DOP853 at rtol = atol = 1e-10.

Fair comparison -- every row integrates exactly the same alpha-bar interval, from the same x_T:
  * schedule: discrete 1000-step linear VP (betas 1e-4..0.02, diffusers' default);
  * start: x_T ~ N(0, I) at t = 999 (alpha_bar_999); end: alpha_bar_0 (t = 0 of the table), i.e.
    sciml DEIS with its default ``t_end=0``; diffusers' DEIS and DPM-Solver++ with
    ``timestep_spacing="linspace"`` (first timestep 999) and final sigma = sigma(t=0)
    (DEIS always, DPM-Solver++ via ``final_sigmas_type="sigma_min"``); DDIM with
    ``timestep_spacing="trailing"`` (first timestep 999) and ``set_alpha_to_one=False`` (its last
    step lands on alpha_bar_0), ``clip_sample=False``. Diffusers' other settings are defaults
    (``lower_order_final=True``). Note: at NFE 15 DDIM's own step rule ``t - T // N`` is off the
    trailing grid by <= 1 training step; that is diffusers' behaviour and is kept.
  * so one reference solve (alpha_bar_999 -> alpha_bar_0) serves every row.

Metrics per (row, NFE):
  * ``err``: relative RMS endpoint error ``||x - x_ref||_F / ||x_ref||_F`` over the samples;
  * ``sw2``: sliced Wasserstein-2 distance between the sample sets {x} and {x_ref} (64 fixed random
    directions, exact 1-D W2 by sorting) -- the error of the sampled distribution.
NFE counts every model evaluation; rhoRK rows use ``stages * (NFE // stages)`` evaluations (the
actual count is shown when it differs, e.g. ``5->4``).

Run:  OMP_NUM_THREADS=1 python benchmarks/deis_gmm.py [--samples 1000] [--dim 8] [--seed 0]
"""
from __future__ import annotations

import argparse
import math
import time

import torch
from diffusers import DDIMScheduler, DEISMultistepScheduler, DPMSolverMultistepScheduler

from sciml.diffusion.deis import DEISScheduler
from sciml.diffusion.gmm import GaussianMixture
from sciml.diffusion.schedule import alphas_cumprod

NFES = (5, 10, 15, 20, 50)


def make_gmm(dim: int, num_modes: int, seed: int) -> GaussianMixture:
    """Well-separated modes with random full covariances, scaled like images in [-1, 1]."""
    g = torch.Generator().manual_seed(seed)
    means = (torch.rand(num_modes, dim, generator=g, dtype=torch.float64) * 1.6 - 0.8)
    a = torch.randn(num_modes, dim, dim, generator=g, dtype=torch.float64) * (0.12 / math.sqrt(dim))
    covs = a @ a.transpose(-1, -2) + 0.02 ** 2 * torch.eye(dim, dtype=torch.float64)
    w = torch.rand(num_modes, generator=g, dtype=torch.float64) + 0.5
    return GaussianMixture(w, means, covs)


def sliced_w2(x: torch.Tensor, y: torch.Tensor, num_dirs: int = 64, seed: int = 0) -> float:
    """Sliced W2 between equal-size point sets ``(n, d)``."""
    g = torch.Generator().manual_seed(seed)
    dirs = torch.randn(x.shape[1], num_dirs, generator=g, dtype=torch.float64)
    dirs = dirs / dirs.norm(dim=0, keepdim=True)
    px, _ = torch.sort(x @ dirs, dim=0)
    py, _ = torch.sort(y @ dirs, dim=0)
    return float(((px - py) ** 2).mean().sqrt())


def sciml_rows():
    rows = []
    for sp in ("quadratic", "logrho"):
        for r in (1, 2, 3):
            rows.append((f"sciml tAB r={r} {sp}", dict(method="tab", ab_order=r, time_spacing=sp)))
    for r in (0, 1, 2, 3):
        rows.append((f"sciml rhoAB(rho) r={r} quadratic", dict(method="rhoab", ab_order=r)))
    for r in (2, 3):
        rows.append((f"sciml rhoAB(logrho) r={r} quadratic",
                     dict(method="rhoab", ab_order=r, rhoab_variable="logrho")))
    for m in ("heun", "3kutta", "rk4"):
        rows.append((f"sciml rhoRK {m} quadratic", dict(method="rhork", rk_method=m)))
    return [(name, (lambda kw=kw: DEISScheduler(**kw))) for name, kw in rows]


def diffusers_rows():
    return [
        ("diffusers DEIS order 2", lambda: DEISMultistepScheduler(solver_order=2)),
        ("diffusers DEIS order 3", lambda: DEISMultistepScheduler(solver_order=3)),
        ("diffusers DPM-Solver++ 2M", lambda: DPMSolverMultistepScheduler(
            solver_order=2, algorithm_type="dpmsolver++", final_sigmas_type="sigma_min")),
        ("diffusers DPM-Solver++ 3M", lambda: DPMSolverMultistepScheduler(
            solver_order=3, algorithm_type="dpmsolver++", final_sigmas_type="sigma_min")),
        ("diffusers DDIM", lambda: DDIMScheduler(timestep_spacing="trailing", set_alpha_to_one=False,
                                                 clip_sample=False)),
    ]


def run_scheduler(sched, gmm: GaussianMixture, x_T: torch.Tensor, nfe: int, alpha_of_t):
    """Drive ``sched`` with the exact GMM noise prediction; returns (endpoint, model evaluations)."""
    sched.set_timesteps(nfe)
    x = x_T.clone()
    for t in sched.timesteps:
        eps = gmm.eps(x, alpha_of_t(sched, t))
        x = sched.step(eps, t, x).prev_sample
    return x, len(sched.timesteps)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--dim", type=int, default=8)
    ap.add_argument("--modes", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    t0 = time.perf_counter()

    gmm = make_gmm(args.dim, args.modes, args.seed)
    ac = alphas_cumprod(1000)
    a_start, a_end = float(ac[999]), float(ac[0])
    x_T = torch.randn(args.samples, args.dim, generator=torch.Generator().manual_seed(args.seed + 1),
                      dtype=torch.float64)
    tr = time.perf_counter()
    x_ref = gmm.ode_endpoint(x_T, a_start, a_end, rtol=1e-10, atol=1e-10)
    t_ref = time.perf_counter() - tr
    x_true = gmm.sample(args.samples, torch.Generator().manual_seed(args.seed + 2))
    sw_floor = sliced_w2(x_ref, x_true)

    def alpha_sciml(s, t):
        return s.schedule.alpha(t)

    def alpha_diffusers(s, t):
        return ac[int(t)]  # integer training timesteps: the table value

    results = {}
    rows = [(n, f, alpha_sciml) for n, f in sciml_rows()] + [(n, f, alpha_diffusers) for n, f in diffusers_rows()]
    for name, factory, alpha_of_t in rows:
        results[name] = {}
        for nfe in NFES:
            try:
                x, used = run_scheduler(factory(), gmm, x_T, nfe, alpha_of_t)
            except ValueError:  # e.g. rhoRK with fewer evaluations than stages
                results[name][nfe] = None
                continue
            err = float((x - x_ref).norm() / x_ref.norm())
            results[name][nfe] = (err if math.isfinite(err) else float("inf"), sliced_w2(x, x_ref), used)

    print(f"GMM: dim={args.dim}, modes={args.modes}, samples={args.samples}, seed={args.seed}; "
          f"alpha_bar {a_start:.3e} (t=999) -> {a_end:.6f} (t=0); reference DOP853 rtol=1e-10 ({t_ref:.1f} s)")
    print(f"sliced-W2(reference endpoints, fresh GMM samples) = {sw_floor:.3e} (sampling-noise floor)\n")
    for metric, idx in (("relative RMS endpoint error vs reference ODE", 0), ("sliced W2 to reference endpoints", 1)):
        print(f"### {metric}\n")
        print("| scheduler | " + " | ".join(f"NFE {n}" for n in NFES) + " |")
        print("|---|" + "---:|" * len(NFES))
        for name in results:
            cells = []
            for nfe in NFES:
                r = results[name][nfe]
                if r is None:
                    cells.append("n/a")
                else:
                    tag = "" if r[2] == nfe else f" ({r[2]})"
                    cells.append(f"{r[idx]:.2e}{tag}")
            print(f"| {name} | " + " | ".join(cells) + " |")
        print()

    def best(prefix, nfe):
        vals = [(results[n][nfe][0], n) for n in results if n.startswith(prefix) and results[n][nfe] is not None]
        return min(vals)

    ours, ours_name = best("sciml", 10)
    theirs, theirs_name = best("diffusers DEIS", 10)
    ok = ours < theirs
    print(f"Target at NFE 10: best sciml = {ours:.3e} ({ours_name}) vs best diffusers DEIS = {theirs:.3e} "
          f"({theirs_name}): {'HOLDS' if ok else 'DOES NOT HOLD'} (ratio {theirs / ours:.2f}x)")
    print(f"total time {time.perf_counter() - t0:.1f} s")
    return {"results": results, "target_holds": ok}


if __name__ == "__main__":
    main()
