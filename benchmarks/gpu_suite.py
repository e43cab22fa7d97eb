"""GPU benchmark suite for the kernels, in one run (for a machine with CUDA; `--device cpu --quick` smoke-tests it).

Measures, against peers in the same process:
1. CG on one large 2-D Poisson system (2048², float32) and a 3-D one (256³, float32): time per
   iteration vs the memory-bandwidth floor (bytes moved per iteration / measured copy bandwidth),
   and vs cupyx.scipy.sparse.linalg.cg on the CSR matrix of the same problem (if CuPy is installed);
2. a batch of independent 128² systems: one batched sciml call vs looping cupyx CG;
3. the `check_every` sweep (host syncs every k iterations) that picks the CUDA default;
4. the fast Poisson solve (DST-I) at 2048² vs a plain torch.fft round trip of the same length;
5. DCDM with the shipped 3-D network on a held-out 128³ pressure scene (the scene of
   `benchmarks/dcdm_vs_cg.py --dim 3 --sizes 128`), network in float32 and bfloat16, against CG,
   Jacobi-PCG and FFT-PCG on the same device (pyamg-PCG and IC-PCG on the CPU: `dcdm_vs_cg.py`);
6. the shipped Darcy LSM (`datasets/darcy/lsm_r85`) on a batch of held-out 85² problems against batched
   PCG on the same device (the CPU table: `benchmarks/darcy_operators.py`): time per problem and error;
7. DDS (50 NFE, the shipped prior `datasets/mri/ddpm_mni152`, complex64) on 4x 8-coil MRI of a held-out
   MNI152 slice at 128² and upsampled to 320² (the DDS paper's fastMRI size; the issue's goal is <= 2 s
   per 320² slice on an H100): time per slice alone and in a batch of 8, and the PSNR of |x|.
Every row prints iterations and true relative residuals. Results go to stdout and, with --out DIR,
to DIR/gpu_suite.json and DIR/gpu_suite.md.

    PYTHONPATH=. python benchmarks/gpu_suite.py [--out $OUT] [--quick] [--device cuda]
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from sciml.linalg import cg, poisson_solve
from sciml.operators import laplacian

ROWS: list[dict] = []


def sync(dev: str) -> None:
    if dev == "cuda":
        torch.cuda.synchronize()


def timed(fn, dev: str, repeat: int = 3):
    best, out = float("inf"), None
    for _ in range(repeat):
        sync(dev)
        start = time.perf_counter()
        out = fn()
        sync(dev)
        best = min(best, time.perf_counter() - start)
    return best, out


def record(table: str, **row) -> None:
    ROWS.append({"table": table, **row})
    print(f"[{table}] " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))


def copy_bandwidth(dev: str, n: int) -> float:
    """Bytes per second of a device-to-device copy (read + write counted)."""
    a = torch.empty(n, dtype=torch.float32, device=dev)
    b = torch.empty_like(a)
    t, _ = timed(lambda: b.copy_(a), dev, repeat=10)
    return 2 * a.numel() * 4 / t


def cupy_cg(L, b: torch.Tensor, rtol: float, maxiter: int):
    """cupyx CG on the CSR matrix of L (None if CuPy is missing)."""
    try:
        import cupy as cp
        import cupyx.scipy.sparse as csp
        import cupyx.scipy.sparse.linalg as cspla
    except ImportError:
        return None
    A = csp.csr_matrix(L.to_scipy().astype(np.float32))
    bb = cp.asarray(b.reshape(-1).cpu().numpy())
    its = [0]

    def run():
        its[0] = 0
        x, _ = cspla.cg(A, bb, tol=rtol, maxiter=maxiter, callback=lambda _: its.__setitem__(0, its[0] + 1))
        cp.cuda.Device().synchronize()
        return x

    t, x = timed(run, "cpu", repeat=2)
    res = float(cp.linalg.norm(bb - A @ x) / cp.linalg.norm(bb))
    return t, its[0], res


def single(shape: tuple, dev: str, rtol: float, maxiter: int, bandwidth: float) -> None:
    L = laplacian(shape, spacing=[1.0 / (n + 1) for n in shape])
    b = torch.randn(shape, dtype=torch.float32, device=dev, generator=None)
    t, r = timed(lambda: cg(L, b, rtol=rtol, maxiter=maxiter), dev)
    its = int(r.iterations)
    N = b.numel()
    # bytes per iteration, fused ideal: stencil reads p, writes Ap; dot reads p, Ap; x, r updates read/write;
    # norm reads r; p update reads r, p, writes p: about 12 vectors of N float32.
    floor = 12 * N * 4 / bandwidth
    res = float(r.info["residual_norm"] / r.info["b_norm"])
    record("cg-single", shape="x".join(map(str, shape)), iterations=its, ms_per_iter=1e3 * t / its,
           floor_ms_per_iter=1e3 * floor, ratio_to_floor=(t / its) / floor, true_rel_residual=res)
    if dev == "cuda":
        peer = cupy_cg(L, b, rtol, maxiter)
        if peer is not None:
            tp, itp, resp = peer
            record("cg-single-vs-cupy", shape="x".join(map(str, shape)), cupy_iterations=itp,
                   cupy_ms_per_iter=1e3 * tp / max(itp, 1), speedup=(tp / max(itp, 1)) / (t / its), cupy_rel_residual=resp)


def batched(n: int, batch: int, dev: str, rtol: float) -> None:
    L = laplacian((n, n), spacing=1.0 / (n + 1))
    b = torch.randn(batch, n, n, dtype=torch.float32, device=dev)
    t, r = timed(lambda: cg(L, b, rtol=rtol), dev)
    res = float((r.info["residual_norm"] / r.info["b_norm"]).max())
    record("cg-batched", n=n, batch=batch, time_s=t, max_iterations=int(r.iterations.max()), worst_rel_residual=res)
    if dev == "cuda":
        total = 0.0
        for i in range(batch):
            peer = cupy_cg(L, b[i], rtol, 10 * n * n)
            if peer is None:
                return
            total += peer[0]
        record("cg-batched-vs-cupy-loop", n=n, batch=batch, cupy_loop_s=total, speedup=total / t)


def check_every_sweep(n: int, batch: int, dev: str, rtol: float) -> None:
    L = laplacian((n, n), spacing=1.0 / (n + 1))
    b = torch.randn(batch, n, n, dtype=torch.float32, device=dev)
    for k in (1, 2, 5, 10, 20, 50):
        t, r = timed(lambda: cg(L, b, rtol=rtol, check_every=k), dev)
        record("check-every", n=n, batch=batch, check_every=k, time_s=t, iterations=int(r.iterations.max()))


def fast_poisson(n: int, dev: str) -> None:
    f = torch.randn(n, n, dtype=torch.float32, device=dev)
    h = 1.0 / (n + 1)
    t, u = timed(lambda: poisson_solve(f, (h, h), ("dirichlet", "dirichlet")), dev, repeat=5)
    L = laplacian((n, n), spacing=h)
    res = float(torch.linalg.vector_norm(L @ u - f) / torch.linalg.vector_norm(f))
    m = 2 * (n + 1)
    g = torch.randn(n, m, dtype=torch.float32, device=dev)
    t_fft, _ = timed(lambda: torch.fft.irfft(torch.fft.rfft(g, dim=-1), n=m, dim=-1), dev, repeat=5)
    # the solve is two DST-I passes per axis, forward and inverse: about 4 real FFT round trips
    record("fast-poisson", n=n, time_ms=1e3 * t, fft_roundtrip_ms=1e3 * t_fft, ratio_to_4_roundtrips=t / (4 * t_fft),
           rel_residual=res)


def dcdm_scene(n: int, dev: str) -> None:
    """Wall time to relative residual 1e-4 on the held-out scene of dcdm_vs_cg.py (float64 systems)."""
    import sciml
    from dcdm_vs_cg import held_out_scene  # the benchmark's held-out scenes (benchmarks/ is on sys.path)
    from sciml.models import load
    from sciml.operators.fourier import laplacian_inverse

    _, A, b = held_out_scene(3, n, 0, device=dev)
    fluid = A.fluid
    fft = laplacian_inverse((n,) * 3, 1.0 / n, ("neumann", "neumann", "dirichlet"), dtype=torch.float64, device=dev)
    net = load(Path(__file__).resolve().parents[1] / "datasets" / "dcdm" / "pressure3d_n32").to(dev)
    runs = {"CG": dict(solver="cg"),
            "Jacobi-PCG": dict(solver="pcg", M=lambda r: r * fluid / A.diag.clamp_min(1)),
            "FFT-PCG": dict(solver="pcg", M=lambda r: fft.apply(r) * fluid),
            "DCDM k=2 float32": dict(solver="dcdm", model=net, k=2),
            "DCDM k=2 bfloat16": dict(solver="dcdm", model=net, k=2, dtype="bfloat16"),
            "DCDM k=10 float32": dict(solver="dcdm", model=net, k=10)}
    for name, opts in runs.items():
        cap = 600 if opts["solver"] == "dcdm" else 20 * n * n
        t, sol = timed(lambda: sciml.solve(sciml.LinearProblem(A, b), rtol=1e-4, maxiter=cap, **opts), dev, repeat=2)
        res = float(torch.linalg.vector_norm(A.apply(sol.x) - b) / torch.linalg.vector_norm(b))
        record("dcdm", n=n, solver=name, time_s=t, iterations=int(sol.iterations), rel_residual=res)


def darcy_operators(num: int, dev: str) -> None:
    """Time per problem of the shipped LSM and of batched PCG on `num` held-out Darcy problems (seed 1)."""
    import sciml
    from sciml.data.generators.darcy import DarcyGenerator, node_grid, solve_darcy
    from sciml.problems import PDEProblem
    from sciml.solvers import make_solver

    a = torch.from_numpy(DarcyGenerator(resolution=85).generate(range(num), seed=1)["coeff"]).to(dev)
    ref, _ = solve_darcy(a, rtol=1e-8)
    problem = PDEProblem(node_grid(85), source=1.0, a=a.float(), dtype=torch.float32)
    lsm = make_solver("lsm", model=str(Path(__file__).resolve().parents[1] / "datasets" / "darcy" / "lsm_r85"),
                      device=dev, batch_size=64)
    lsm.network()  # load once, outside the timing

    def err(u: torch.Tensor) -> float:
        return float(((u.double() - ref).flatten(1).norm(dim=1) / ref.flatten(1).norm(dim=1)).mean())

    t, sol = timed(lambda: sciml.solve(problem, lsm), dev)
    record("darcy", num=num, method="LSM float32", ms_per_problem=1e3 * t / num, rel_l2=err(sol.x))
    for rtol in (1e-2, 1e-8):
        t, (u, res) = timed(lambda: solve_darcy(a, rtol=rtol), dev)
        record("darcy", num=num, method=f"PCG rtol {rtol:g}", ms_per_problem=1e3 * t / num, rel_l2=err(u),
               iterations=int(res.iterations.max()))


def dds_mri(sizes: tuple[int, ...], batch: int, nfe: int, dev: str) -> None:
    """Seconds per slice of DDS on 4x multi-coil MRI (`mri_case`, phase refreshed as `solvers/dds-mri.toml`)."""
    import sciml
    from sciml.models import load_pretrained
    from sciml.problems.imaging import load_image, mri_case

    data = Path(__file__).resolve().parents[1] / "datasets" / "mri"
    prior = load_pretrained(data / "ddpm_mni152", device=dev)
    for n in sizes:
        image = load_image(data / "mni152_slices.h5", index=1, split="test_index")
        image = torch.nn.functional.interpolate(image[None, None], size=(n, n), mode="bilinear", align_corners=False)[0, 0]
        case = mri_case(image.clamp(0, 1).to(dev), coils=8, acceleration=4.0)
        A = case.problem.forward.to(dev, torch.complex64)
        y = case.problem.y.to(torch.complex64)
        phase = case.extras["phase"].to(torch.complex64)
        for b in (1, batch):
            yb = y if b == 1 else y.expand(b, *y.shape).contiguous()
            problem = sciml.InverseProblem(A, yb, noise_std=case.problem.noise_std)
            t, sol = timed(lambda: sciml.solve(problem, "dds", model=prior, num_inference_steps=nfe, eta=0.5, gamma=3.0,
                                               phase=phase, phase_refresh=4.0), dev, repeat=2)
            record("dds", size=n, batch=b, nfe=nfe, s_per_slice=t / b,
                   psnr_db=case.scores(sol.x.reshape(-1, n, n)[0])["psnr"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--out", default=None)
    ap.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    args = ap.parse_args()
    dev = args.device
    if dev == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: run with --device cpu --quick to smoke-test")
    name = torch.cuda.get_device_name() if dev == "cuda" else platform.processor() or platform.machine()
    header = f"# {time.strftime('%Y-%m-%d')} torch {torch.__version__} on {name}"
    print(header)
    bw = copy_bandwidth(dev, 2**20 if args.quick else 2**28)
    record("bandwidth", copy_GB_per_s=bw / 1e9)
    big2, big3, small, batch, iters = ((64, 64), (16, 16, 16), 32, 4, 50) if args.quick else ((2048, 2048), (256, 256, 256), 128, 32, 500)
    single(big2, dev, 1e-6, iters, bw)
    single(big3, dev, 1e-6, iters, bw)
    batched(small, batch, dev, 1e-6)
    check_every_sweep(small, batch, dev, 1e-6)
    fast_poisson(64 if args.quick else 2048, dev)
    dcdm_scene(16 if args.quick else 128, dev)
    darcy_operators(8 if args.quick else 512, dev)
    dds_mri((32,) if args.quick else (128, 320), 2 if args.quick else 8, 5 if args.quick else 50, dev)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "gpu_suite.json").write_text(json.dumps({"header": header, "rows": ROWS}, indent=1))
        lines = [header, ""] + [" | ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in r.items()) for r in ROWS]
        (out / "gpu_suite.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
