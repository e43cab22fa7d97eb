"""sciml.linalg.gmres/bicgstab vs scipy.sparse.linalg.gmres/bicgstab on 2-D convection-diffusion, in one run.

Problem: -Δu + c (u_x + u_y) = f on the unit square, homogeneous Dirichlet, N x N interior nodes,
5-point Laplacian and first-order upwind convection (a nonsymmetric M-matrix). scipy uses the CSR
matrix; sciml runs on the same CSR matrix (`sciml.operators.aslinearoperator(csr)`, a torch sparse
CSR tensor) and matrix-free (the stencil below, on (N, N) grids). All solve to the same `rtol` with
GMRES(restart) (no preconditioner, so scipy's and sciml's GMRES are the same method) and BiCGStab.
"batch": B right-hand sides, sciml batched (stencil) vs scipy one after another.

    python benchmarks/krylov_vs_scipy.py [--sizes 128 256] [--batch 4] [--rtol 1e-8] [--device cpu]

Columns: iterations (scipy / sciml CSR / sciml stencil; GMRES counts inner iterations on both sides),
best-of-`repeat` wall times in seconds, ratio = scipy time / sciml time (> 1: sciml faster), and the
true relative residuals ||b - A x|| / ||b|| of the returned solutions.
"""
from __future__ import annotations

import argparse
import platform
import warnings

import numpy as np
import scipy
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch
import torch.nn.functional as F

from _timing import best_of
from sciml.linalg import bicgstab, gmres
from sciml.operators import aslinearoperator

warnings.filterwarnings("ignore", message=".*Sparse CSR tensor support is in beta state.*")


def convection_diffusion_csr(N: int, c: float) -> sp.csr_array:
    """C-order unknowns u[i, j] -> i * N + j; first-order upwind for c > 0 along both axes."""
    h = 1.0 / (N + 1)
    o = np.ones(N)
    T = sp.diags_array([-o[1:], 2 * o, -o[1:]], offsets=[-1, 0, 1]) / h**2
    T = T + sp.diags_array([-o[1:], o], offsets=[-1, 0]) * (c / h)
    I = sp.eye_array(N)
    return sp.csr_array(sp.kron(T, I) + sp.kron(I, T))


def convection_diffusion_stencil(N: int, c: float, dtype: torch.dtype, device: str):
    """The same operator matrix-free on (..., N, N) tensors (zero Dirichlet halo)."""
    h = 1.0 / (N + 1)
    diag = 4.0 / h**2 + 2.0 * c / h
    upwind = 1.0 / h**2 + c / h  # coefficient of u[i-1, j] and u[i, j-1]
    down = 1.0 / h**2  # coefficient of u[i+1, j] and u[i, j+1]

    def apply(u: torch.Tensor) -> torch.Tensor:
        p = F.pad(u, (1, 1, 1, 1))
        return (diag * u
                - upwind * (p[..., :-2, 1:-1] + p[..., 1:-1, :-2])
                - down * (p[..., 2:, 1:-1] + p[..., 1:-1, 2:]))

    return aslinearoperator(apply, in_shape=(N, N), dtype=dtype, device=device)



def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    ap.add_argument("--convection", type=float, default=100.0, help="c in -Δu + c (u_x + u_y)")
    ap.add_argument("--rtol", type=float, default=1e-8)
    ap.add_argument("--restart", type=int, default=20)
    ap.add_argument("--batch", type=int, default=4, help="right-hand sides for the batch columns (0: skip)")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = args.device

    def sync():
        if dev.startswith("cuda"):
            torch.cuda.synchronize()

    print(f"# torch {torch.__version__}, scipy {scipy.__version__}, "
          f"threads {torch.get_num_threads()}, {platform.processor() or platform.machine()}, device {dev}, "
          f"c = {args.convection}, rtol = {args.rtol}, GMRES({args.restart})")
    head = (f"{'N':>4} {'method':>8} {'its sp/csr/st':>15} {'scipy':>7} {'csr':>7} {'ratio':>5} {'stencil':>7} "
            f"{'ratio':>5}")
    if args.batch:
        head += f" {'scipy xB':>8} {'st B':>7} {'ratio':>5}"
    head += f" {'res scipy':>9} {'res csr':>8} {'res st':>8}"
    print(head)
    for N in args.sizes:
        S = convection_diffusion_csr(N, args.convection)
        n = N * N
        rng = np.random.default_rng(0)
        b = rng.standard_normal((max(args.batch, 1), n))
        bt = torch.from_numpy(b).to(dev)
        A_csr = aslinearoperator(S, device=dev)
        A_st = convection_diffusion_stencil(N, args.convection, torch.float64, dev)
        check = A_st.apply(bt[0].reshape(N, N)).reshape(-1).cpu().numpy()
        assert np.allclose(check, S @ b[0], rtol=1e-12, atol=1e-9 * np.abs(check).max()), "stencil != CSR"
        bnorm = np.linalg.norm(b[0])

        def true_res(x) -> float:
            x = x.reshape(-1).cpu().numpy() if isinstance(x, torch.Tensor) else x
            return float(np.linalg.norm(b[0] - S @ x) / bnorm)

        methods = {
            "gmres": (
                lambda bb: spla.gmres(S, bb, rtol=args.rtol, restart=args.restart, maxiter=100 * n)[0],
                lambda A, bb: gmres(A, bb, rtol=args.rtol, restart=args.restart),
            ),
            "bicgstab": (
                lambda bb: spla.bicgstab(S, bb, rtol=args.rtol)[0],
                lambda A, bb: bicgstab(A, bb, rtol=args.rtol),
            ),
        }
        for name, (run_scipy, run_sciml) in methods.items():
            # iteration count of scipy (a separate, untimed run with a counting callback)
            count = [0]
            if name == "gmres":
                spla.gmres(S, b[0], rtol=args.rtol, restart=args.restart, maxiter=100 * n,
                           callback=lambda _: count.__setitem__(0, count[0] + 1), callback_type="pr_norm")
            else:
                spla.bicgstab(S, b[0], rtol=args.rtol, callback=lambda _: count.__setitem__(0, count[0] + 1))
            t_sp, x_sp = best_of(lambda: run_scipy(b[0]), args.repeat)

            def timed(A, bb):
                res = run_sciml(A, bb)
                sync()
                return res

            t_csr, r_csr = best_of(lambda: timed(A_csr, bt[0]), args.repeat)
            t_st, r_st = best_of(lambda: timed(A_st, bt[0].reshape(N, N)), args.repeat)
            assert bool(r_csr.converged) and bool(r_st.converged), (r_csr.worst, r_st.worst)
            its = f"{count[0]}/{int(r_csr.iterations)}/{int(r_st.iterations)}"
            line = (f"{N:>4} {name:>8} {its:>15} {t_sp:>7.3f} {t_csr:>7.3f} {t_sp / t_csr:>5.2f} {t_st:>7.3f} "
                    f"{t_sp / t_st:>5.2f}")
            if args.batch:
                t_sp_b, _ = best_of(lambda: [run_scipy(bi) for bi in b], 1)
                t_b, r_b = best_of(lambda: timed(A_st, bt.reshape(-1, N, N)), 1)
                assert bool(r_b.converged.all())
                line += f" {t_sp_b:>8.3f} {t_b:>7.3f} {t_sp_b / t_b:>5.2f}"
            line += f" {true_res(x_sp):>9.2e} {true_res(r_csr.x):>8.2e} {true_res(r_st.x):>8.2e}"
            print(line, flush=True)


if __name__ == "__main__":
    main()
