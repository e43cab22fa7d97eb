"""Trained neural operators vs classical solvers on held-out Darcy problems: error and time per problem.

    python benchmarks/darcy_operators.py [--num 64] [--threads 1] [--lsm datasets/darcy/lsm_r85]
                                         [--fno out/train/fno-darcy-cpu/model]
                                         [--curves RUN[,RUN] ...]

The problems: `--num` samples of our Darcy generator at 85 x 85 (datasets/darcy_r85.toml) with seed 1,
none of which the models saw (they train and validate on seed 0). The reference u: sciml's batched PCG
to rtol 1e-8 in float64 (the generator's own solve), checked against scipy's sparse LU on the same
5-point matrix.

Rows, each with the mean and max relative L2 error against the reference and the wall time per problem:
- the shipped LSM (and an FNO run directory if given), through `sciml.solve` with all problems batched;
- sciml PCG (`sciml.linalg.cg`, FFT Poisson preconditioner scaled per sample, batched) at rtol 1e-8 and
  at the loose tolerances 1e-2 / 1e-3, whose error is comparable to a neural operator's;
- scipy.sparse.linalg.spsolve (SuperLU), one problem at a time: the peer most users would reach for.

`--curves RUN ...` also plots the validation relative L2 of those `sciml train` runs against training wall
time (time-to-accuracy) to benchmarks/darcy_training_curves.png; `RUN1,RUN2` is one line for a run RUN2
that continued from RUN1's weights.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch

import sciml
from sciml.data.generators.darcy import DarcyGenerator, face_coefficients, node_grid, solve_darcy
from sciml.problems import PDEProblem
from sciml.solvers import make_solver

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _operators import plot_validation_curves, print_error_table, rel_l2  # noqa: E402
from _timing import best_of  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
S = 85  # nodes per axis, boundary included


def darcy_matrix(a: np.ndarray) -> sp.csr_matrix:
    """The generator's 5-point matrix of -div(a grad u) on the (S-2)^2 interior nodes (row-major, axis 0 = x)."""
    fx, fy = (f.numpy() for f in face_coefficients(torch.from_numpy(a)[None]))
    fx, fy = fx[0], fy[0]  # (n+1, n), (n, n+1)
    n, h2 = S - 2, (1.0 / (S - 1)) ** 2
    idx = np.arange(n * n).reshape(n, n)
    diag = (fx[:-1] + fx[1:] + fy[:, :-1] + fy[:, 1:]) / h2
    rows, cols, vals = [idx.ravel()], [idx.ravel()], [diag.ravel()]
    for (r, c), w in (((idx[:-1], idx[1:]), fx[1:-1]), ((idx[:, :-1], idx[:, 1:]), fy[:, 1:-1])):
        rows += [r.ravel(), c.ravel()]
        cols += [c.ravel(), r.ravel()]
        vals += [-w.ravel() / h2, -w.ravel() / h2]
    return sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n * n, n * n))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--num", type=int, default=64, help="held-out problems (seed 1)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3, help="timing: best of this many runs")
    ap.add_argument("--lsm", default=str(ROOT / "datasets" / "darcy" / "lsm_r85"), help="LSM checkpoint directory")
    ap.add_argument("--fno", default=None, help="an FNO checkpoint directory (optional)")
    ap.add_argument("--curves", nargs="*", default=[], metavar="RUN[,RUN]",
                    help="sciml train run directories to plot; RUN1,RUN2: RUN2 continued RUN1")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.curves:
        plot_validation_curves(args.curves, "loss", "validation relative L2", "Darcy 85², 1000 training samples",
                               ROOT / "benchmarks" / "darcy_training_curves.png")

    a = torch.from_numpy(DarcyGenerator(resolution=S).generate(range(args.num), seed=1)["coeff"])  # (B, S, S) float64
    ref, result = solve_darcy(a, rtol=1e-8)
    if not bool(result.converged.all()):
        raise SystemExit("reference PCG did not converge")
    print(f"Darcy 85 x 85, {args.num} held-out problems (seed 1), {torch.get_num_threads()} thread(s), "
          f"torch {torch.__version__}")
    rows = []

    problem = PDEProblem(node_grid(S), source=1.0, a=a.float(), exact=ref.float(), dtype=torch.float32)
    for name, path in (("LSM", args.lsm), ("FNO", args.fno)):
        if path is None:
            continue
        solver = make_solver("lsm" if name == "LSM" else "fno", model=path)
        n = sum(p.numel() for p in solver.network().parameters())  # loads the model once, outside the timing
        t, sol = best_of(lambda: sciml.solve(problem, solver), args.repeat)
        label = Path(path).name if Path(path).name != "model" else Path(path).parent.name  # a run's model/
        rows.append((f"{name} ({n / 1e6:.1f} M parameters, `{label}`), batched", rel_l2(sol.x.double(), ref), t))

    for rtol in (1e-8, 1e-3, 1e-2):
        t, (u, res) = best_of(lambda: solve_darcy(a, rtol=rtol), args.repeat)
        its = int(res.iterations.max())
        what = " = the reference" if rtol == 1e-8 else ""
        rows.append((f"sciml PCG, rtol {rtol:g}{what}, batched ({its} iterations)", rel_l2(u, ref), t))

    n = S - 2
    t, lu = best_of(lambda: [spla.spsolve(darcy_matrix(ai.numpy()), np.ones(n * n)) for ai in a], 1)
    u = torch.zeros_like(a)
    u[:, 1:-1, 1:-1] = torch.from_numpy(np.stack(lu)).reshape(-1, n, n)
    err = rel_l2(u, ref)
    if float(err.max()) > 1e-6:
        raise SystemExit(f"scipy's solution differs from the PCG reference by {float(err.max()):.2e}")
    rows.append(("scipy spsolve (SuperLU), one at a time, matrix assembly included", err, t))

    print_error_table(rows, args.num)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
