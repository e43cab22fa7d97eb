"""DCDM vs conjugate-gradient baselines on held-out 2-D or 3-D pressure-Poisson obstacle scenes.

Iterations and wall time to relative residual 1e-4 (x0 = 0) on scenes drawn with a seed the training
data never used, at the training size and larger (`--sizes`), for:

- CG: sciml `cg`;
- Jacobi-PCG: sciml `pcg` with M = 1/diag(A);
- IC-PCG: sciml `pcg` with the incomplete Cholesky factorisation IC(0) of the scene's matrix (the
  paper's baseline; `IncompleteCholesky` below, numpy, setup timed apart);
- pyamg-PCG: sciml `pcg` with one smoothed-aggregation V-cycle (pyamg) on the fluid cells (setup timed apart);
- FFT-PCG: sciml `pcg` with the fast Poisson solve of the obstacle-free box (walls on the sides, p = 0 on top),
  the preconditioner `M = "fft"` builds for a PDE on a grid (the scene operator is not one, so it is built here);
- DCDM: sciml `dcdm` with each `--model` checkpoint, for each k in `--k` (paper: 2) directions kept,
  with and without the residual safeguard (safeguard off = the paper's iteration); capped at `--maxiter`.

Right-hand sides: b = -div u* of random smooth velocity fields u* (zero normal flux at walls), unit norm,
as in a smoke simulation's pressure projection. Everything in float64 except DCDM's network (float32).

    OMP_NUM_THREADS=1 python benchmarks/dcdm_vs_cg.py [--dim 2] [--scenes 8] [--sizes 64 128] [--k 2 40] [--model DIR ...]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

import sciml
from sciml.data.generators import sample_generator
from sciml.data.generators.dcdm import PressurePoissonOperator, face_types, random_divergence, scene
from sciml.data.generators.pressure_poisson import assemble, fluid_matrix
from sciml.models import load
from sciml.operators.fourier import laplacian_inverse
from sciml.operators.preconditioners import DiagonalOperator

ROOT = Path(__file__).resolve().parents[1]
HELD_OUT_SEED = 20231


class IncompleteCholesky:
    r"""IC(0) of the scene's matrix as a preconditioner: :math:`A \approx (D + L) D^{-1} (D + L^T)`, L the
    strictly lower part of A (natural ordering), :math:`d_i = a_{ii} - \sum_{j < i} a_{ij}^2 / d_j` over
    the lower neighbours. Factor and triangular solves run plane by plane over i + j (+ k) = s, on which
    no two cells depend on each other (numpy, vectorised within a plane)."""

    def __init__(self, A: PressurePoissonOperator):
        self.shape = tuple(A.in_shape)
        fluid = A.mask.numpy().reshape(-1)
        idx = np.indices(self.shape).reshape(len(self.shape), -1)
        strides = np.cumprod((1,) + self.shape[::-1])[:-1][::-1]
        level = idx.sum(0)
        self.planes = []
        for s in range(int(level.max()) + 1):
            cells = np.flatnonzero((level == s) & fluid)
            lower = []  # fluid lower neighbours (cell, neighbour) along each axis
            for axis, stride in enumerate(strides):
                ok = idx[axis, cells] > 0
                c, nb = cells[ok], cells[ok] - stride
                keep = fluid[nb]
                lower.append((np.searchsorted(cells, c[keep]), nb[keep]))
            self.planes.append((cells, lower))
        d = np.zeros(fluid.size)
        diag = A.diag.numpy().reshape(-1)
        for cells, lower in self.planes:  # a_ij = -1 between fluid neighbours
            acc = diag[cells].copy()
            for pos, nb in lower:
                acc[pos] -= 1.0 / d[nb]  # one lower neighbour per axis: no repeated pos
            d[cells] = acc
        self.d = d

    def __call__(self, r: torch.Tensor) -> torch.Tensor:
        rf = r.reshape(-1).numpy()
        z = np.zeros_like(rf)
        for cells, lower in self.planes:  # (D + L) z = r
            acc = rf[cells].copy()
            for pos, nb in lower:
                acc[pos] += z[nb]
            z[cells] = acc / self.d[cells]
        x = np.zeros_like(rf)
        for cells, lower in reversed(self.planes):  # (D + L^T) x = D z
            x[cells] += z[cells]  # x holds the upper neighbours' contributions sum_j x_j / d_i so far
            for pos, nb in lower:
                x[nb] += x[cells[pos]] / self.d[nb]
        return torch.as_tensor(x).reshape(r.shape)


def first_step_gain(A: PressurePoissonOperator, b: torch.Tensor, net: torch.nn.Module) -> float:
    """(q^T b)^2 / (q^T A q b^T A^-1 b) for the network's direction q on b: the share of the squared
    A-norm error one exact line search along q removes (A^-1 b by CG to 1e-12)."""
    e = sciml.solve(sciml.LinearProblem(A, b), "cg", rtol=1e-12, maxiter=100 * b.numel()).x
    with torch.no_grad():
        q = net(b.float()[None, None])[0, 0].double() * A.mask
    return float((q * b).sum()) ** 2 / float((q * A.apply(q)).sum()) / float((e * b).sum())


def held_out_scene(dim: int, n: int, index: int, device=None) -> tuple[np.ndarray, PressurePoissonOperator, torch.Tensor]:
    """Scene `index` of size n^dim drawn with the held-out seed: flags, its operator, and the unit-norm
    float64 right-hand side -h div u* of a random smooth velocity field (on `device`)."""
    g = sample_generator(HELD_OUT_SEED + n, index)
    flags = scene(dim, n, g, min_solids=1, max_solids=4, min_size=0.05, max_size=0.2)
    return flags, PressurePoissonOperator(flags, device=device), random_divergence(flags, g).to(device)


def baselines(A: PressurePoissonOperator, flags: np.ndarray) -> dict:
    """name -> (solver options, setup seconds) for the PCG baselines of scene A."""
    import pyamg

    n, dim = flags.shape[0], flags.ndim
    fluid = A.mask
    flags3 = flags if dim == 3 else flags[..., None]
    inv_diag = torch.where(fluid, 1 / A.diag.clamp_min(1), 1.0)
    matrix = fluid_matrix(assemble(flags3, face_types(dim)), flags3).tocsr()
    t = time.perf_counter()
    amg = pyamg.smoothed_aggregation_solver(matrix).aspreconditioner(cycle="V")
    setup = time.perf_counter() - t
    t = time.perf_counter()
    ic = IncompleteCholesky(A)
    ic_setup = time.perf_counter() - t
    keep = fluid.reshape(-1).numpy()

    def on_fluid(apply):
        def M(r: torch.Tensor) -> torch.Tensor:
            out = np.zeros(keep.size)
            out[keep] = apply(r.reshape(-1).numpy()[keep])
            return torch.as_tensor(out).reshape(r.shape)
        return M

    t = time.perf_counter()
    fft = laplacian_inverse((n,) * dim, 1.0 / n, ("neumann",) * (dim - 1) + ("dirichlet",), dtype=torch.float64)
    fft.apply(torch.zeros((n,) * dim, dtype=torch.float64))  # the first product sets the transforms up
    fft_setup = time.perf_counter() - t
    return {"CG": (dict(solver="cg"), 0.0),
            "Jacobi-PCG": (dict(solver="pcg", M=DiagonalOperator(inv_diag)), 0.0),
            "IC-PCG": (dict(solver="pcg", M=ic), ic_setup),
            "pyamg-PCG": (dict(solver="pcg", M=on_fluid(amg.matvec)), setup),
            "FFT-PCG": (dict(solver="pcg", M=lambda r: fft.apply(r) * fluid), fft_setup)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dim", type=int, default=2, choices=(2, 3))
    parser.add_argument("--scenes", type=int, default=8)
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--model", nargs="+", default=None,
                        help="checkpoint directories (each gets its rows, labelled by the directory's name; "
                             "default: the shipped datasets/dcdm/pressure2d_n64 or pressure3d_n32)")
    parser.add_argument("--rtol", type=float, default=1e-4)
    parser.add_argument("--maxiter", type=int, default=600, help="iteration cap of DCDM")
    parser.add_argument("--k", type=int, nargs="+", default=[2, 10], help="DCDM's numbers of kept directions")
    parser.add_argument("--safeguard-only", action="store_true", help="skip the rows without the safeguard")
    parser.add_argument("--first-step", action="store_true",
                        help="instead of the table: the share of the A-norm error each network's first step removes")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.model is None:
        args.model = [str(ROOT / "datasets" / "dcdm" / ("pressure2d_n64" if args.dim == 2 else "pressure3d_n32"))]
    nets = {}
    for path in args.model:
        net = load(path)
        nets[f"DCDM ({Path(path).name})" if len(args.model) > 1 else "DCDM"] = net
    rows = []
    for n in args.sizes:
        stats: dict[str, list] = {}
        for i in range(args.scenes):
            flags, A, b = held_out_scene(args.dim, n, i)
            if args.first_step:
                for label, net in nets.items():
                    stats.setdefault(label, []).append(first_step_gain(A, b, net))
                continue
            runs = baselines(A, flags)
            for label, net in nets.items():
                for k in args.k:
                    runs[f"{label} k={k}"] = (dict(solver="dcdm", model=net, k=k), 0.0)
                    if not args.safeguard_only:
                        runs[f"{label} k={k}, no safeguard"] = (dict(solver="dcdm", model=net, k=k, safeguard=False), 0.0)
            for name, (opts, setup) in runs.items():
                cap = args.maxiter if opts["solver"] == "dcdm" else 20 * n * n
                sol = sciml.solve(sciml.LinearProblem(A, b), rtol=args.rtol, maxiter=cap, **opts)
                if not sol.converged:
                    print(f"  {name} n={n} scene {i}: {sol.info['reason']} (relative residual "
                          f"{sol.info['relative_residual']:.2g})")
                stats.setdefault(name, []).append((int(sol.iterations), sol.time, setup, sol.converged))
        if args.first_step:
            for label, gains in stats.items():
                print(f"{n}^{args.dim} {label}: first step removes {', '.join(f'{100 * g:.1f}%' for g in gains)} "
                      f"of the A-norm error")
            continue
        cg_its = np.mean([s[0] for s in stats["CG"]])
        for name, s in stats.items():
            its = np.array([v[0] for v in s])
            rows.append((f"{n}^{args.dim}", name, f"{its.mean():.1f} ({its.min()}-{its.max()})", f"{cg_its / its.mean():.1f}x",
                         f"{np.mean([v[1] for v in s]) * 1e3:.1f}", f"{np.mean([v[2] for v in s]) * 1e3:.1f}",
                         f"{sum(v[3] for v in s)}/{len(s)}"))
    if args.first_step:
        return
    head = ("grid", "solver", "iterations mean (min-max)", "CG / it.", "solve ms", "setup ms", "converged")
    print(f"held-out scenes: {args.scenes} per size, rtol {args.rtol:g}, one CPU thread, torch {torch.__version__}")
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows:
        print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    main()
