"""GP-HM (`gp-kron`) on a batch of independent problems: one batched run vs one run per problem.

A family of problems from the paper's benchmark configs, each with a different amplitude of its
low- and high-frequency parts (so the solutions differ but their spectra share the frequencies):

- 1-D: u = a sin(100x) + b sin(6x) on [0, 2π], 400 collocation points (the paper's grid for sin(100x));
- 2-D: u = a sin(6x)cos(20x) + b sin(6y)cos(20y) on [0, 2π]², 200² points (the paper's grid).

`sciml.PDEBatch` solves them in one run: U with a leading batch dimension, one spectrum learned from
all of them, the kernel factorisations and the kernel steps shared. The loop solves each problem
alone with the same options. Prints per-problem errors (nodes, worst over the batch), rounds and
wall time for both.

    python benchmarks/gphm_batch.py [--dim 1|2] [--batch 8] [--threads 1]
"""
from __future__ import annotations

import argparse
import math
import platform
import sys
import time
from datetime import date
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import sciml  # noqa: E402
from sciml.pde import Grid  # noqa: E402

TWO_PI = 2 * math.pi


def family(dim: int, batch: int) -> tuple[list[sciml.PDEProblem], dict]:
    """`batch` problems with amplitudes (a, b) spread over [0.5, 1.5] x [1.5, 0.5], and the solver options."""
    problems = []
    for i in range(batch):
        a = 0.5 + i / max(batch - 1, 1)
        b = 2.0 - a
        if dim == 1:
            exact = f"{a}*sin(100*x) + {b}*sin(6*x)"
            source = f"-{a * 1e4}*sin(100*x) - {b * 36}*sin(6*x)"
            grid = Grid((0.0,), (TWO_PI,), (398,))
            operator = "u_xx"
        else:
            exact = f"{a}*sin(6*x)*cos(20*x) + {b}*sin(6*y)*cos(20*y)"
            source = (f"{a}*(-436*sin(6*x)*cos(20*x) - 240*sin(20*x)*cos(6*x)) "
                      f"+ {b}*(-436*sin(6*y)*cos(20*y) - 240*sin(20*y)*cos(6*y))")
            grid = Grid((0.0, 0.0), (TWO_PI, TWO_PI), (198, 198))
            operator = "u_xx + u_yy"
        problems.append(sciml.PDEProblem(grid, source=source, boundary=exact, exact=exact, operator=operator))
    options = dict(components=30, max_frequency=20.0 if dim == 1 else 15.0, maxiter=100, rtol=1e-5)
    return problems, options


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dim", type=int, choices=(1, 2), default=1)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    problems, options = family(args.dim, args.batch)
    print(f"# torch {torch.__version__}, threads {torch.get_num_threads()}, {platform.machine()}, {date.today()}")
    print(f"## {args.batch} problems, {args.dim}-D, grid {problems[0].grid.points}, options {options}")

    start = time.perf_counter()
    batched = sciml.solve(sciml.PDEBatch(problems), "gp-kron", **options)
    t_batch = time.perf_counter() - start
    dims = tuple(range(-args.dim, 0))
    errors = torch.linalg.vector_norm(batched.x - batched.exact, dim=dims) / torch.linalg.vector_norm(batched.exact, dim=dims)

    start = time.perf_counter()
    alone = [sciml.solve(p, "gp-kron", **options) for p in problems]
    t_loop = time.perf_counter() - start
    loop_errors = torch.tensor([s.info["rel_l2_error"] for s in alone])
    rounds = sum(int(s.iterations) for s in alone)

    print(f"{'run':<26} {'rounds':>7} {'time (s)':>9} {'ratio':>6} {'error median':>13} {'error worst':>12} {'status'}")
    print(f"{'one run per problem':<26} {rounds:>7} {t_loop:>9.1f} {1.0:>6.2f} {float(loop_errors.median()):>13.2e} "
          f"{float(loop_errors.max()):>12.2e} {sorted({s.info['reason'] for s in alone})}")
    print(f"{'one batched run':<26} {int(batched.iterations):>7} {t_batch:>9.1f} {t_loop / t_batch:>6.2f} "
          f"{float(errors.median()):>13.2e} {float(errors.max()):>12.2e} {batched.info['reason']}")


if __name__ == "__main__":
    main()
