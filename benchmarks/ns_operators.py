"""Trained neural operators vs the numerical solver on held-out Navier-Stokes trajectories (nu = 1e-5, 64²):
error and time per trajectory of the 10-step prediction t = 11..20 from the states at t = 1..10.

    python benchmarks/ns_operators.py [--data out/datasets/ns_v1e-5_n240.h5] [--val 200 240] [--threads 1]
                                      [--lsm datasets/ns/lsm_v1e-5] [--fno out/train/fno-ns-cpu/model]
                                      [--curves RUN[,RUN] ...]

The problems: trajectories `--val` of the data file (by default 200..239 of `sciml data generate
datasets/ns_v1e-5.toml --num 240`, the validation split of configs/lsm-ns-cpu.toml: never trained on).
The reference: the stored states at t = 11..20, made by the pseudo-spectral solver of the generator
(`sciml.data.generators.navier_stokes.VorticitySolver`, 64², float32, dt = 1e-4).

Rows, each with the mean and max relative L2 error of the whole 10-state prediction (the papers' metric)
and the wall time per trajectory:
- the shipped LSM (and an FNO run if given), rolled out 10 steps through `sciml.solve(..., rollout_steps=10)`
  with all trajectories batched;
- the pseudo-spectral solver itself restarted from the stored state at t = 10, batched, with its own time
  step 1e-4 (reproduces the data) and with larger steps 5e-4 / 1e-3 / 2e-3 (explicit advection: larger
  steps diverge), whose cost and error are the classical alternative to a learned model.

`--curves RUN[,RUN] ...` also plots the validation rollout error of those `sciml train` runs against
training wall time to benchmarks/ns_training_curves.png; `RUN1,RUN2` is one line for a run RUN2 that
continued from RUN1's weights.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import h5py
import torch

import sciml
from sciml.data.generators.navier_stokes import NavierStokesGenerator, VorticitySolver
from sciml.pde import Grid
from sciml.problems import PDEProblem
from sciml.solvers import make_solver

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _operators import plot_validation_curves, print_error_table, rel_l2  # noqa: E402
from _timing import best_of  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
N, VISC = 64, 1e-5


def solver_rollout(w10: torch.Tensor, dt: float) -> torch.Tensor:
    """The pseudo-spectral solver from w(t = 10) `(B, N, N)` to t = 11..20 with step dt: `(B, 10, N, N)`."""
    forcing = NavierStokesGenerator(resolution=N).forcing_field(N).float()
    solver = VorticitySolver(N, VISC, dt, forcing, dtype=torch.float32)
    per_unit = round(1.0 / dt)
    return solver.run(w10, 10 * per_unit, per_unit).movedim(-1, 1)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT / "out" / "datasets" / "ns_v1e-5_n240.h5"))
    ap.add_argument("--val", type=int, nargs=2, default=[200, 240], metavar=("START", "STOP"),
                    help="held-out trajectories of the data file")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3, help="timing of the models: best of this many runs")
    ap.add_argument("--lsm", default=str(ROOT / "datasets" / "ns" / "lsm_v1e-5"), help="LSM checkpoint directory")
    ap.add_argument("--fno", default=None, help="an FNO checkpoint directory (optional)")
    ap.add_argument("--dts", type=float, nargs="*", default=[1e-4, 5e-4, 1e-3, 2e-3], help="solver time steps")
    ap.add_argument("--curves", nargs="*", default=[], metavar="RUN[,RUN]",
                    help="sciml train run directories to plot; RUN1,RUN2: RUN2 continued RUN1")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.curves:
        plot_validation_curves(args.curves, "rollout-full-l2", "validation rollout relative L2",
                               "Navier-Stokes ν = 1e-5, 64², 200 training trajectories",
                               ROOT / "benchmarks" / "ns_training_curves.png")
    if not Path(args.data).is_file():
        raise SystemExit(f"{args.data}: no such file; make it with `sciml data generate datasets/ns_v1e-5.toml "
                         "--num 240 --out out/datasets/ns_v1e-5_n240.h5`")
    with h5py.File(args.data, "r") as f:
        u = torch.from_numpy(f["u"][args.val[0]:args.val[1]]).movedim(-1, 1)  # (B, 20, N, N) float32
    if u.shape[1] != 20:
        raise SystemExit(f"{args.data}: expected 20 states per trajectory, got u of shape {tuple(u.shape)}")
    history, ref = u[:, :10].contiguous(), u[:, 10:].contiguous()
    B = len(u)
    print(f"Navier-Stokes nu = {VISC:g}, {N} x {N}, {B} held-out trajectories ({args.val[0]}..{args.val[1] - 1} of "
          f"{Path(args.data).name}), {torch.get_num_threads()} thread(s), torch {torch.__version__}")
    rows = []

    grid = Grid(lower=(0.0, 0.0), upper=(1.0, 1.0), points=(N, N), bc="periodic")
    problem = PDEProblem(grid, source=history, exact=ref, dtype=torch.float32)
    for name, path in (("LSM", args.lsm), ("FNO", args.fno)):
        if path is None:
            continue
        solver = make_solver(name.lower(), model=path, inputs=["source"], rollout_steps=10)
        n = sum(p.numel() for p in solver.network().parameters())  # loads the model once, outside the timing
        t, sol = best_of(lambda: sciml.solve(problem, solver), args.repeat)
        label = Path(path).name if Path(path).name != "model" else Path(path).parent.name  # a run's model/
        rows.append((f"{name} ({n / 1e6:.2f} M parameters, `{label}`), 10-step rollout, batched",
                     rel_l2(sol.x.float(), ref), t))

    for dt in args.dts:
        t, pred = best_of(lambda: solver_rollout(u[:, 9], dt), 1)
        what = " (the data's own solver and step)" if dt == 1e-4 else ""
        what += "" if bool(torch.isfinite(pred).all()) else " -- diverged"
        rows.append((f"pseudo-spectral solver, dt = {dt:g}{what}, {round(10 / dt)} steps, batched",
                     rel_l2(pred, ref), t))

    print_error_table(rows, B, "trajectory", digits=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
