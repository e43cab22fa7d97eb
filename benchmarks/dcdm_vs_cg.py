"""DCDM vs conjugate-gradient baselines on held-out 2-D pressure-Poisson obstacle scenes.

Iterations and wall time to relative residual 1e-4 (x0 = 0) on scenes drawn with a seed the training
data never used, at the training size (64^2) and at 2x (128^2), for:

- CG: sciml `cg`;
- Jacobi-PCG: sciml `pcg` with M = 1/diag(A);
- pyamg-PCG: sciml `pcg` with one smoothed-aggregation V-cycle (pyamg) on the fluid cells (setup timed apart);
- FFT-PCG: sciml `pcg` with the fast Poisson solve of the obstacle-free box (walls in x, p = 0 in y),
  the preconditioner `M = "fft"` builds for a PDE on a grid (the scene operator is not one, so it is built here);
- DCDM: sciml `dcdm` with the shipped 64^2 checkpoint, k = 2 (the paper) and k = 40 directions kept,
  with and without the residual safeguard (safeguard off = the paper's iteration); capped at 600 iterations.

Right-hand sides: b = -div u* of random smooth velocity fields u* (zero normal flux at walls), unit norm,
as in a smoke simulation's pressure projection. Everything in float64 except DCDM's network (float32).

    OMP_NUM_THREADS=1 python benchmarks/dcdm_vs_cg.py [--scenes 8] [--sizes 64 128] [--k 2 40] [--model DIR ...]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

import sciml
from sciml.data.generators import sample_generator
from sciml.data.generators.dcdm import PressurePoissonOperator, face_types, scene
from sciml.data.generators.grf import periodic_grf
from sciml.data.generators.pressure_poisson import assemble, divergence_rhs, fluid_matrix
from sciml.models import load
from sciml.operators.fourier import laplacian_inverse
from sciml.operators.preconditioners import DiagonalOperator

ROOT = Path(__file__).resolve().parents[1]
HELD_OUT_SEED = 20231


def divergence(flags: np.ndarray, g: torch.Generator) -> torch.Tensor:
    """-h div u* (unit norm) of a random periodic-GRF velocity field on a 2-D scene."""
    n = flags.shape[0]
    comps = []
    for d in range(2):
        z = torch.randn(2, n + 1, n + 1, dtype=torch.float64, generator=g)
        field = periodic_grf(z[0], z[1], 2.5, 3.0, 1.0, dims=2).numpy()
        comps.append((field[:n + 1, :n] if d == 0 else field[:n, :n + 1])[..., None])
    comps.append(np.zeros((n, n, 2)))
    b = divergence_rhs(flags[..., None], comps, face_types(2))[..., 0]
    return torch.as_tensor(b / np.linalg.norm(b))


def baselines(A: PressurePoissonOperator, flags: np.ndarray) -> dict:
    """name -> (solver options, setup seconds) for the PCG baselines of scene A."""
    import pyamg

    n = flags.shape[0]
    fluid = A.mask
    inv_diag = torch.where(fluid, 1 / A.diag.clamp_min(1), 1.0)
    t = time.perf_counter()
    ml = pyamg.smoothed_aggregation_solver(fluid_matrix(assemble(flags[..., None], face_types(2)), flags[..., None]).tocsr())
    amg = ml.aspreconditioner(cycle="V")
    setup = time.perf_counter() - t
    keep = fluid.reshape(-1).numpy()

    def amg_apply(r: torch.Tensor) -> torch.Tensor:
        out = np.zeros(keep.size)
        out[keep] = amg.matvec(r.reshape(-1).numpy()[keep])
        return torch.as_tensor(out).reshape(r.shape)

    t = time.perf_counter()
    fft = laplacian_inverse((n, n), 1.0 / n, ("neumann", "dirichlet"), dtype=torch.float64)
    fft.apply(torch.zeros(n, n, dtype=torch.float64))  # the first product sets the transforms up
    fft_setup = time.perf_counter() - t
    return {"CG": (dict(solver="cg"), 0.0),
            "Jacobi-PCG": (dict(solver="pcg", M=DiagonalOperator(inv_diag)), 0.0),
            "pyamg-PCG": (dict(solver="pcg", M=amg_apply), setup),
            "FFT-PCG": (dict(solver="pcg", M=lambda r: fft.apply(r) * fluid), fft_setup)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=8)
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--model", nargs="+", default=[str(ROOT / "datasets" / "dcdm" / "pressure2d_n64")],
                        help="checkpoint directories (each gets its rows, labelled by the model's levels)")
    parser.add_argument("--rtol", type=float, default=1e-4)
    parser.add_argument("--maxiter", type=int, default=600, help="iteration cap of DCDM")
    parser.add_argument("--k", type=int, nargs="+", default=[2, 40], help="DCDM's numbers of kept directions")
    args = parser.parse_args()
    torch.set_num_threads(1)
    nets = {}
    for path in args.model:
        net = load(path)
        nets[f"DCDM (levels={net.levels})" if len(args.model) > 1 else "DCDM"] = net
    rows = []
    for n in args.sizes:
        stats: dict[str, list] = {}
        for i in range(args.scenes):
            g = sample_generator(HELD_OUT_SEED + n, i)
            flags = scene(2, n, g, min_solids=1, max_solids=4, min_size=0.05, max_size=0.2)
            A = PressurePoissonOperator(flags)
            b = divergence(flags, g)
            runs = baselines(A, flags)
            for label, net in nets.items():
                for k in args.k:
                    runs[f"{label} k={k}"] = (dict(solver="dcdm", model=net, k=k), 0.0)
                    runs[f"{label} k={k}, no safeguard"] = (dict(solver="dcdm", model=net, k=k, safeguard=False), 0.0)
            for name, (opts, setup) in runs.items():
                cap = args.maxiter if opts["solver"] == "dcdm" else 20 * n * n
                sol = sciml.solve(sciml.LinearProblem(A, b), rtol=args.rtol, maxiter=cap, **opts)
                if not sol.converged:
                    print(f"  {name} n={n} scene {i}: {sol.info['reason']} (relative residual "
                          f"{sol.info['relative_residual']:.2g})")
                stats.setdefault(name, []).append((int(sol.iterations), sol.time, setup, sol.converged))
        cg_its = np.mean([s[0] for s in stats["CG"]])
        for name, s in stats.items():
            its = np.array([v[0] for v in s])
            rows.append((f"{n}^2", name, f"{its.mean():.1f} ({its.min()}-{its.max()})", f"{cg_its / its.mean():.1f}x",
                         f"{np.mean([v[1] for v in s]) * 1e3:.1f}", f"{np.mean([v[2] for v in s]) * 1e3:.1f}",
                         f"{sum(v[3] for v in s)}/{len(s)}"))
    head = ("grid", "solver", "iterations mean (min-max)", "CG / it.", "solve ms", "setup ms", "converged")
    print(f"held-out scenes: {args.scenes} per size, rtol {args.rtol:g}, one CPU thread, torch {torch.__version__}")
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows:
        print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    main()
