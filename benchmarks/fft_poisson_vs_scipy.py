"""sciml's fast Dirichlet Poisson solver vs scipy.fft (DST-I both ways), in one run.

The same problem on both sides: solve (-Delta_h) u = f on an n x n grid of interior nodes (zero
Dirichlet boundary, 5-point stencil, float64, CPU), exactly. scipy: a 2-D DST-I, a pointwise divide
by the eigenvalues and the inverse 2-D DST-I, `idstn(dstn(f, type=1) / lam, type=1)`, with the
eigenvalues `lam` built once outside the timed loop. sciml: `sciml.linalg.poisson_solve`, which on
the CPU for large 2-D grids takes DST-I along x only and solves the tridiagonal systems along y
(FACR(0): 2 transforms instead of 4; the few ill-conditioned low modes go through DST-I along y),
and `laplacian_inverse(...)` (the operator: always 2 + 2 transforms, eigenvalues cached). Also the
single 1-D DST-I along the rows and along the columns, `sciml.linalg.dst(x, type=1, dim=...)` vs
`scipy.fft.dst(x, type=1, axis=...)`.

Times are the best of `--repeat` runs, sciml and scipy alternating (so that both see the same
machine load); "ratio" is sciml time / scipy time (< 1: sciml faster);
"max rel diff" is max|sciml - scipy| / max|scipy|. The solver line also reports the error of the
scipy solution against the exact discrete solution (f is built as L u from a known u).

    python benchmarks/fft_poisson_vs_scipy.py [--n 1024] [--repeat 5] [--threads T] [--workers W]

On a busy machine (load average above the core count) torch's multi-threaded CPU kernels can be
many times slower than with one thread (spinning OpenMP workers); compare with `--threads 1`
there. n = 1024 makes DST-I an FFT of length 2050 = 2 * 5^2 * 41, which MKL (torch) handles
markedly slower than pocketfft (scipy); `--n 1023` (length 2048) compares the algorithms more fairly.
"""
from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
import scipy
import scipy.fft as sfft
import torch

from sciml.linalg import dst, poisson_eigenvalues, poisson_solve
from sciml.operators import laplacian, laplacian_inverse


def best_of_pair(fn_a, fn_b, repeat: int) -> tuple[float, object, float, object]:
    """Best-of-`repeat` times of two functions, alternating a and b so that both see the same load."""
    out_a, out_b = fn_a(), fn_b()  # warm-up (plans, caches)
    best_a = best_b = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        out_a = fn_a()
        best_a = min(best_a, time.perf_counter() - start)
        start = time.perf_counter()
        out_b = fn_b()
        best_b = min(best_b, time.perf_counter() - start)
    return best_a, out_a, best_b, out_b


def rel_diff(a, b) -> float:
    a = a.numpy() if isinstance(a, torch.Tensor) else a
    b = b.numpy() if isinstance(b, torch.Tensor) else b
    return float(np.abs(a - b).max() / np.abs(b).max())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1024, help="grid points per axis (interior nodes)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    ap.add_argument("--workers", type=int, default=1, help="scipy.fft workers (default 1, scipy's default)")
    args = ap.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    n, h = args.n, 1.0 / (args.n + 1)
    workers = args.workers
    print(f"# torch {torch.__version__} (threads {torch.get_num_threads()}, MKL {torch.backends.mkl.is_available()}), "
          f"scipy {scipy.__version__} (workers {workers}), {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, load avg {os.getloadavg()[0]:.2f}")
    print(f"# n = {n}: DST-I of length n is an FFT of length 2(n+1) = {2 * (n + 1)}")

    rng = np.random.default_rng(0)
    u_true = rng.standard_normal((n, n))
    f_t = laplacian((n, n), h, dtype=torch.float64) @ torch.from_numpy(u_true)
    f = f_t.numpy()
    lam = sum(poisson_eigenvalues((n, n), h, "dirichlet")).numpy()   # (n, n): lam_i + lam_j

    def scipy_solve() -> np.ndarray:
        return sfft.idstn(sfft.dstn(f, type=1, workers=workers) / lam, type=1, workers=workers)

    def sciml_solve() -> torch.Tensor:
        return poisson_solve(f_t, h, ("dirichlet", "dirichlet"))

    Linv = laplacian_inverse((n, n), h, "dirichlet")

    def sciml_op() -> torch.Tensor:
        return Linv @ f_t

    x = rng.standard_normal((n, n))
    x_t = torch.from_numpy(x)

    rows = []
    t_sm, u_sm, t_sp, u_sp = best_of_pair(sciml_solve, scipy_solve, args.repeat)
    rows.append(("Poisson solve: poisson_solve vs idstn(dstn/lam)", t_sm, t_sp, rel_diff(u_sm, u_sp)))
    t_op, u_op, t_sp2, _ = best_of_pair(sciml_op, scipy_solve, args.repeat)
    rows.append(("  same, laplacian_inverse operator", t_op, t_sp2, rel_diff(u_op, u_sp)))
    t_d2, y_sm, t_d1, y_sp = best_of_pair(lambda: dst(x_t, type=1),
                                          lambda: sfft.dst(x, type=1, workers=workers), args.repeat)
    rows.append(("DST-I along rows (n x n)", t_d2, t_d1, rel_diff(y_sm, y_sp)))
    t_c2, yc_sm, t_c1, yc_sp = best_of_pair(lambda: dst(x_t, type=1, dim=0),
                                            lambda: sfft.dst(x, type=1, axis=0, workers=workers), args.repeat)
    rows.append(("DST-I along columns (n x n)", t_c2, t_c1, rel_diff(yc_sm, yc_sp)))

    print(f"{'operation':<48} {'sciml (ms)':>10} {'scipy (ms)':>10} {'ratio':>6} {'max rel diff':>12}")
    for name, ts, tp, diff in rows:
        print(f"{name:<48} {ts * 1e3:>10.2f} {tp * 1e3:>10.2f} {ts / tp:>6.2f} {diff:>12.1e}")
    print(f"# error vs the exact discrete solution: scipy {rel_diff(u_sp, u_true):.1e}, "
          f"sciml {rel_diff(u_sm, u_true):.1e}")


if __name__ == "__main__":
    main()
