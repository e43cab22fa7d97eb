"""sciml.linalg.cg vs scipy.sparse.linalg.cg on the 2-D Dirichlet Poisson matrix, in one run.

Both solve the same systems to the same relative tolerance. scipy uses its CSR matrix; sciml runs
matrix-free (5-point stencil) and on the same CSR matrix as a torch sparse tensor, one system and
a batch of B right-hand sides (scipy solves them one after another).

    python benchmarks/cg_vs_scipy.py [--sizes 127 255 511] [--batch 8] [--device cpu]
"""
from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch

from sciml.linalg import cg
from sciml.operators import aslinearoperator, laplacian


def poisson_csr(n: int) -> sp.csr_array:
    h2 = float(n + 1) ** 2
    t = sp.diags_array([-np.ones(n - 1), 2 * np.ones(n), -np.ones(n - 1)], offsets=[-1, 0, 1]) * h2
    eye = sp.eye_array(n)
    return sp.csr_array(sp.kron(t, eye) + sp.kron(eye, t))


def best_of(fn, repeat: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[127, 255, 511])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--rtol", type=float, default=1e-8)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    dev = args.device
    print(f"# torch {torch.__version__}, threads {torch.get_num_threads()}, {platform.processor() or platform.machine()}, device {dev}")
    print(f"{'n':>5} {'unknowns':>9} {'its':>5} {'scipy 1 (s)':>11} {'sciml stencil':>13} {'ratio':>6} "
          f"{'sciml csr':>9} {'ratio':>6} {'scipy x B':>9} {'sciml B':>8} {'ratio':>6} {'max rel diff':>12}")
    for n in args.sizes:
        A = poisson_csr(n)
        rng = np.random.default_rng(0)
        b = rng.standard_normal((args.batch, n * n))
        its = [0]

        def run_scipy(k: int = 1):
            return [spla.cg(A, b[i], rtol=args.rtol, maxiter=20 * n * n)[0] for i in range(k)]

        t_scipy, xs = best_of(lambda: run_scipy(1), args.repeat)
        spla.cg(A, b[0], rtol=args.rtol, callback=lambda _: its.__setitem__(0, its[0] + 1))
        L = laplacian((n, n), spacing=1.0 / (n + 1))
        bt = torch.from_numpy(b).to(dev).reshape(args.batch, n, n)

        def run_stencil(bb):
            r = cg(L, bb, rtol=args.rtol)
            sync(dev)
            return r

        t_st, r1 = best_of(lambda: run_stencil(bt[0]), args.repeat)
        Acsr = aslinearoperator(A, device=dev)
        t_csr, _ = best_of(lambda: (cg(Acsr, bt[0].reshape(-1), rtol=args.rtol), sync(dev)), args.repeat)
        t_scipy_b, xs_b = best_of(lambda: run_scipy(args.batch), 1)
        t_b, rb = best_of(lambda: run_stencil(bt), args.repeat)
        diff = max(np.abs(rb.x[i].reshape(-1).cpu().numpy() - xs_b[i]).max() / np.abs(xs_b[i]).max() for i in range(args.batch))
        assert bool(rb.converged.all()) and bool(r1.converged)
        print(f"{n:>5} {n * n:>9} {its[0]:>5} {t_scipy:>11.3f} {t_st:>13.3f} {t_scipy / t_st:>6.2f} "
              f"{t_csr:>9.3f} {t_scipy / t_csr:>6.2f} {t_scipy_b:>9.3f} {t_b:>8.3f} {t_scipy_b / t_b:>6.2f} {diff:>12.1e}")


if __name__ == "__main__":
    main()
