"""Command line: `sciml solve FILE`, `sciml check FILE`, `sciml list`."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from . import config as config_mod
from .config import DTYPES, ConfigError
from .solvers import available, solve


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sciml", description="Solve PDEs and inverse problems from config files.")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("solve", help="solve the problem in a config file; write NetCDF and PNG")
    s.add_argument("file", help="config file, e.g. solvers/poisson2d.toml")
    s.add_argument("-o", "--outdir", help="output folder (default: [output] dir of the config, else out/)")
    s.add_argument("--device", choices=["cpu", "cuda"], help="override the config's device")
    s.add_argument("--dtype", choices=sorted(DTYPES), help="override the config's dtype")
    c = sub.add_parser("check", help="validate a config file without solving")
    c.add_argument("file")
    sub.add_parser("list", help="registered solvers and the problem kinds each accepts")
    for add_commands in _command_groups():
        add_commands(sub)
    return p


def _command_groups():
    """Sub-command groups living beside their code: each `add_commands(subparsers)` adds parsers whose
    defaults set `func(args) -> int` (exit code)."""
    from .data.cli import add_commands as data_commands
    from .training.cli import add_commands as training_commands

    return (data_commands, training_commands)


def _cmd_list() -> int:
    rows = [(name, ", ".join(k.__name__ for k in cls.accepts), cls.describe()) for name, cls in available().items()]
    width = max(len("solver"), *(len(r[0]) for r in rows))
    kinds = max(len(r[1]) for r in rows)
    print(f"{'solver':<{width}}  {'accepts':<{kinds}}  description")
    for name, acc, desc in rows:
        print(f"{name:<{width}}  {acc:<{kinds}}  {desc}")
    return 0


def _cmd_check(path: str) -> int:
    cfg = config_mod.load(path)
    p = cfg.problem_config
    if isinstance(p, config_mod.ImagingConfig):
        size = p.image["size"]
        print(f"{path}: ok ({p.kind} of a {size}x{size} image; solver {cfg.solver_name})")
        return 0
    if isinstance(p, config_mod.PressureConfig):
        grid = "x".join(map(str, p.flags.shape))
        print(f"{path}: ok (pressure Poisson on a {grid} obstacle scene, {int((p.flags == 0).sum())} fluid cells; "
              f"solver {cfg.solver_name})")
        return 0
    grid = "x".join(map(str, p.grid.points))
    print(f"{path}: ok ({p.equation} on a {grid} grid, bc {'/'.join(p.grid.bc)}; solver {cfg.solver_name})")
    return 0


def _cmd_solve(args: argparse.Namespace) -> int:
    cfg = config_mod.load(args.file)
    device = args.device or cfg.problem_config.device
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError(args.file, "--device", "cuda requested but no CUDA device is available")
    dtype = DTYPES[args.dtype] if args.dtype else None
    problem = cfg.problem(dtype=dtype, device=device)
    try:
        sol = solve(problem, cfg.solver())
    except (TypeError, ValueError) as err:
        raise ConfigError(args.file, "problem", str(err)) from None
    case = cfg.case(device)
    if case is not None:  # simulated imaging experiment: score against the known image
        sol.exact = case.truth.to(sol.x.device)
        sol.info.update(case.scores(sol.x))
    outdir = Path(args.outdir or cfg.output.dir)
    written = [outdir / f"{cfg.output.name}.nc"]
    sol.save(written[0])
    if cfg.output.plot:
        written.append(outdir / f"{cfg.output.name}.png")
        sol.plot(written[1])
        if hasattr(sol.model, "plot_spectrum"):  # learned spectra (gp-kron)
            written.append(outdir / f"{cfg.output.name}_spectrum.png")
            sol.model.plot_spectrum(written[-1])
    print(f"{cfg.output.name}: {sol.summary()} -> {', '.join(map(str, written))}")
    if not sol.converged:
        print(f"warning: {sol.status.message}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "list":
            return _cmd_list()
        if args.command == "check":
            return _cmd_check(args.file)
        if args.command == "solve":
            return _cmd_solve(args)
        return args.func(args)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # e.g. an output folder that cannot be written
        print(f"error: {err.filename or ''}: {err.strerror or err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
