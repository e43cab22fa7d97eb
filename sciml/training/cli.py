"""`sciml train CONFIG`, `sciml plot-metrics RUN_DIR` and `sciml normalizer CONFIG [MODEL_DIR]`."""
from __future__ import annotations

import argparse
import sys


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Add `train`, `plot-metrics` and `normalizer` to the `sciml` command line."""
    t = sub.add_parser("train", help="train a learned model from a TOML config (several processes: torchrun "
                                     "--nproc_per_node N -m sciml train CONFIG)")
    t.add_argument("config", help="training config, e.g. configs/train-smoke.toml")
    t.add_argument("--run-dir", help="folder for checkpoint/, metrics.jsonl and model/ (default: [train] run_dir, "
                                     "else out/train/<config name>)")
    t.add_argument("--resume", action="store_true", help="continue from the run directory's last checkpoint")
    t.add_argument("--device", choices=["auto", "cpu", "cuda"], help="override [train] device")
    t.add_argument("--no-progress", action="store_true", help="no progress bar even on a terminal")
    t.set_defaults(func=_cmd_train)
    p = sub.add_parser("plot-metrics", help="plot the loss, eval metrics and lr of a training run to PNG")
    p.add_argument("run_dir", help="a run directory (or its metrics.jsonl)")
    p.add_argument("-o", "--output", help="PNG file (default: RUN_DIR/metrics.png)")
    p.set_defaults(func=_cmd_plot)
    n = sub.add_parser("normalizer", help="write normalizer.json (the train split's statistics) beside a trained "
                                          "model again; sciml train writes it when it exports the model")
    n.add_argument("config", help="the training config (TOML) the model was trained with")
    n.add_argument("model_dir", nargs="?", help="the model directory (default: the run's model/)")
    n.set_defaults(func=_cmd_normalizer)


def _cmd_train(args: argparse.Namespace) -> int:
    from .distributed import env_info
    from .trainer import train

    try:
        summary = train(args.config, run_dir=args.run_dir, resume=args.resume, device=args.device,
                        progress=False if args.no_progress else None)
    except FloatingPointError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if env_info().rank == 0 and summary is not None:
        parts = [f"step {summary['step']}"]
        if summary["resumed_from"] is not None:
            parts.append(f"resumed from step {summary['resumed_from']}")
        parts += [f"{k} {v:.4g}" for k, v in summary.items() if (k == "loss" or k.startswith("val_"))
                  and isinstance(v, float)]
        parts.append(f"time {summary['time']:.1f} s")
        print(f"{args.config}: {', '.join(parts)} -> {summary['run_dir']}")
    return 0


def _cmd_plot(args: argparse.Namespace) -> int:
    from .metrics import plot_metrics

    try:
        out = plot_metrics(args.run_dir, args.output)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{args.run_dir}: -> {out}")
    return 0


def _cmd_normalizer(args: argparse.Namespace) -> int:
    from .trainer import export_normalizer

    try:
        print(export_normalizer(args.config, args.model_dir))
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0
