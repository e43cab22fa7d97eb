"""The CT projector (`ParallelBeamRadon`) vs scipy.sparse on the same matrix: apply and adjoint times.

    python benchmarks/ct_operator.py [--threads 1] [--repeat 5]

For each geometry (views x image size) and batch size: the time of `A @ x` and `A.adjoint(y)` for
- sciml, cached path: the Joseph system matrix and its transpose stored once as torch CSR;
- sciml, uncached path (`cache_limit = 0`, what operators above the cache limit do): compute the
  weights chunk by chunk of angles, gather the pixel values and sum them; adjoint by `index_add`;
- scipy: `scipy.sparse.csr_array` of the same matrix (exported from sciml, so the same non-zeros), one
  product per image (`A @ X.T` on the batch).
Ratios are peer time / sciml cached time (> 1: sciml faster). The largest error between the three
results is printed so speed never hides a wrong answer. Float64, CPU.
"""
from __future__ import annotations

import argparse
import platform
import sys
from pathlib import Path

import numpy as np
import scipy
import scipy.sparse as sp
import torch

from sciml.operators.ct import ParallelBeamRadon, sparse_view_angles

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import best_of  # noqa: E402

CASES = [(30, 128), (60, 128), (60, 256), (180, 256)]


def scipy_matrix(A: ParallelBeamRadon) -> sp.csr_array:
    M = A._sparse(torch.float64, torch.device("cpu"))[0]
    return sp.csr_array((M.values().numpy(), M.col_indices().numpy(), M.crow_indices().numpy()), shape=tuple(M.shape))


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"# torch {torch.__version__} ({args.threads} threads), scipy {scipy.__version__}, {platform.machine()}, "
          f"{torch.get_num_threads()} torch threads")
    print("| views | image | batch | nnz | sciml apply ms | uncached | scipy | sciml adjoint ms | uncached | scipy | "
          "uncached/sciml | scipy/sciml | max error |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    rows = []
    for views, n in CASES:
        A = ParallelBeamRadon((n, n), sparse_view_angles(views))
        B = ParallelBeamRadon((n, n), sparse_view_angles(views))
        B.cache_limit = 0
        S = scipy_matrix(A)
        St = S.T.tocsr()
        for batch in (1, 8):
            x = torch.rand(batch, n, n, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
            y = A(x)
            xn, yn = x.reshape(batch, -1).numpy(), y.reshape(batch, -1).numpy()
            t = {}
            t["apply"], ya = best_of(lambda: A(x), args.repeat)
            t["apply_chunked"], yb = best_of(lambda: B(x), args.repeat)
            t["apply_scipy"], yc = best_of(lambda: (S @ xn.T).T, args.repeat)
            t["adjoint"], xa = best_of(lambda: A.adjoint(y), args.repeat)
            t["adjoint_chunked"], xb = best_of(lambda: B.adjoint(y), args.repeat)
            t["adjoint_scipy"], xc = best_of(lambda: (St @ yn.T).T, args.repeat)
            err = max(float((ya - yb).abs().max()), float(np.abs(ya.reshape(batch, -1).numpy() - yc).max()),
                      float((xa - xb).abs().max()), float(np.abs(xa.reshape(batch, -1).numpy() - xc).max()))
            ours = t["apply"] + t["adjoint"]
            row = {"views": views, "n": n, "batch": batch, "nnz": S.nnz, **{k: 1e3 * v for k, v in t.items()},
                   "chunked_ratio": (t["apply_chunked"] + t["adjoint_chunked"]) / ours,
                   "scipy_ratio": (t["apply_scipy"] + t["adjoint_scipy"]) / ours, "max_error": err}
            rows.append(row)
            print(f"| {views} | {n}² | {batch} | {S.nnz} | {row['apply']:.2f} | {row['apply_chunked']:.2f} | "
                  f"{row['apply_scipy']:.2f} | {row['adjoint']:.2f} | {row['adjoint_chunked']:.2f} | "
                  f"{row['adjoint_scipy']:.2f} | {row['chunked_ratio']:.1f}x | {row['scipy_ratio']:.2f}x | {err:.1e} |",
                  flush=True)
    return rows


if __name__ == "__main__":
    main()
