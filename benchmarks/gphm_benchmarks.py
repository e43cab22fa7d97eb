"""GP-HM (`gp-kron`) on the paper's benchmarks: accuracy, wall time, baselines, time to accuracy.

For each `solvers/gphm-*.toml` config this prints one row: sciml's alternating optimiser (relative l2
error at the grid nodes and at 300 test points per axis, the paper's metric; iterations; wall time),
the same GP with a plain Matérn-5/2 kernel (no spectral mixture; twice sciml's rounds), second-order finite differences on
the same grid with sciml's fast solver (Poisson configs only), and the paper's optimiser, joint Adam
with lr 0.01, run for `--adam-factor` times sciml's wall time: its best error over that budget (the
paper's own oracle selection) shows how much longer the official schedule needs.

    python benchmarks/gphm_benchmarks.py                       # every config
    python benchmarks/gphm_benchmarks.py poisson1d-sin100      # configs whose name contains a pattern
"""
from __future__ import annotations

import argparse
import glob
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
from sciml import config  # noqa: E402
from sciml.plots import save_figure  # noqa: E402


def finite_differences(problem: sciml.PDEProblem) -> float | None:
    """Relative l2 error of the 5-point finite-difference solution (Poisson configs only)."""
    names = problem.grid.names
    if problem.operator.replace(" ", "") != "+".join(f"u_{n}{n}" for n in names):
        return None
    fd = sciml.PDEProblem(problem.grid, source=f"-({problem.source})", boundary=problem.boundary, exact=problem.exact)
    return sciml.solve(fd, "fft-poisson").info["rel_l2_error"]


def adam_within(problem: sciml.PDEProblem, options: dict, budget: float, check_every: int) -> sciml.Solution:
    """The paper's schedule (joint Adam, lr 0.01) run for about `budget` seconds."""
    per_step = _adam_step_time(problem, options)
    steps = max(check_every, int(budget / per_step) // check_every * check_every)
    return sciml.solve(problem, "gp-kron", **{**options, "optimizer": "adam", "maxiter": steps, "rtol": 0.0,
                                               "check_every": check_every})


def plot_curves(curves: dict[str, tuple[sciml.Solution, sciml.Solution]], path: str) -> None:
    """Error vs wall time of sciml's optimiser and the paper's Adam schedule, one panel per problem."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(curves), figsize=(5 * len(curves), 3.8), squeeze=False)
    for ax, (name, (ours, adam)) in zip(axes[0], curves.items()):
        for sol, label in ((ours, "sciml (alternating)"), (adam, "paper schedule (Adam, lr 0.01)")):
            h = sol.info["history"]
            ax.loglog(h["time"], h["rel_l2_error"], "o-" if label.startswith("sciml") else "-", ms=3, label=label)
        ax.xaxis.set_minor_formatter(plt.NullFormatter())  # no overlapping labels on the minor ticks
        ax.set_xlabel("wall time (s)")
        ax.set_ylabel("relative l2 error")
        ax.set_title(name, fontsize=9)
        ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)


def _adam_step_time(problem: sciml.PDEProblem, options: dict) -> float:
    start = time.perf_counter()
    sciml.solve(problem, "gp-kron", **{**options, "optimizer": "adam", "maxiter": 20, "rtol": 0.0, "check_every": 20})
    return (time.perf_counter() - start) / 20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("patterns", nargs="*", help="substrings of config names (default: all)")
    parser.add_argument("--adam-factor", type=float, default=10.0, help="Adam budget / sciml wall time")
    parser.add_argument("--no-adam", action="store_true", help="skip the paper-schedule comparison")
    parser.add_argument("--no-matern", action="store_true", help="skip the plain Matérn-kernel baseline")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--progress", action="store_true", help="print every round of sciml's optimiser")
    parser.add_argument("--plot", help="PNG of error vs time, sciml vs the paper's schedule (needs Adam)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    files = sorted(glob.glob(str(ROOT / "solvers" / "gphm-*.toml")))
    files = [f for f in files if not args.patterns or any(p in Path(f).stem for p in args.patterns)]
    print(f"# torch {torch.__version__}, threads {args.threads}, {platform.machine()}, {date.today()}")
    print("| problem | grid | sciml error (nodes / test) | status | its | time (s) | Matérn GP error | FD error | "
          "Adam best error in 10x time (steps) |")
    print("|---|---|---|---|---|---|---|---|---|")
    curves = {}
    for file in files:
        cfg = config.load(file)
        problem = cfg.problem()
        options = dict(cfg.solver_options)
        start = time.perf_counter()
        sol = sciml.solve(problem, cfg.solver(), progress=args.progress)
        wall = time.perf_counter() - start
        # The plain-kernel baseline gets twice sciml's rounds (it rarely meets rtol: it cannot fit the data).
        plain = None if args.no_matern else sciml.solve(
            problem, "gp-kron", **{**options, "kernel": "matern", "components": 1, "maxiter": 2 * max(sol.iterations, 5)})
        fd = finite_differences(problem)
        adam = "-"
        if not args.no_adam:
            paper = adam_within(problem, options, args.adam_factor * wall, check_every=50)
            adam = f"{min(paper.info['history']['rel_l2_error']):.2e} ({paper.iterations})"
            curves[Path(file).stem.removeprefix("gphm-")] = (sol, paper)
        grid = "x".join(str(n + 2) for n in problem.grid.points)
        print(f"| {Path(file).stem.removeprefix('gphm-')} | {grid} | {sol.info['rel_l2_error']:.2e} / "
              f"{sol.info['test_rel_l2_error']:.2e} | {sol.status.name.lower()} | {sol.iterations} | {wall:.1f} | "
              f"{'-' if plain is None else format(plain.info['rel_l2_error'], '.2e')} | "
              f"{'-' if fd is None else f'{fd:.2e}'} | {adam} |", flush=True)
        if not math.isfinite(sol.info["rel_l2_error"]):
            print(f"warning: {file}: non-finite error", file=sys.stderr)
    if args.plot and curves:
        plot_curves(curves, args.plot)


if __name__ == "__main__":
    main()
