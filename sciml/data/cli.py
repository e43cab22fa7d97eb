"""`sciml data ...` sub-commands: `generate` a dataset from a recipe, `list` the generators."""
from __future__ import annotations

import argparse
import sys


def _int_at_least(minimum: int, what: str):
    """An argparse type: an integer >= `minimum`, with a message naming what was expected."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    return parse


_positive = _int_at_least(1, "a positive integer")
_seed = _int_at_least(0, "an integer >= 0")


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Add `data` to the `sciml` command line."""
    data = sub.add_parser("data", help="generate datasets from recipes (datasets/*.toml)")
    dsub = data.add_subparsers(dest="data_command", required=True)
    g = dsub.add_parser("generate", help="generate (or resume) the HDF5 dataset of a recipe",
                        description="Generate the dataset of a recipe into HDF5. Resumable: a rerun continues "
                                    "from FILE.partial; the final rename to FILE makes it complete.")
    g.add_argument("recipe", help="recipe file, e.g. datasets/darcy_r85.toml")
    g.add_argument("--num", type=_positive, help="number of samples (overrides the recipe's num)")
    g.add_argument("--out", help="output file (overrides the recipe's out)")
    g.add_argument("--seed", type=_seed, help="seed (overrides the recipe's seed)")
    g.add_argument("--block", type=_positive, help="samples per batch and per committed block")
    g.add_argument("--device", help='"cpu" or "cuda" (overrides the recipe\'s device)')
    g.add_argument("--force", action="store_true", help="regenerate even if FILE or FILE.partial exists")
    g.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    g.set_defaults(func=_cmd_generate)
    ls = dsub.add_parser("list", help="the generators and their recipe options")
    ls.set_defaults(func=_cmd_list)


def _cmd_generate(args: argparse.Namespace) -> int:
    from .generators import GenerationError, generate, load_recipe, partial_path

    recipe = load_recipe(args.recipe, num=args.num, seed=args.seed, out=args.out, block=args.block, device=args.device)
    try:
        result = generate(recipe, force=args.force, progress=not args.quiet)
    except GenerationError as err:
        print(f"error: {args.recipe}: {err}; committed samples are kept in {partial_path(recipe.out)}, "
              "rerun to continue", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\ninterrupted: committed samples are kept in {partial_path(recipe.out)}; rerun to continue",
              file=sys.stderr)
        return 130
    print(result.summary())
    return 0


def _cmd_list(args: argparse.Namespace) -> int:
    from .generators import GENERATORS

    for name, cls in sorted(GENERATORS.items()):
        print(f"{name} (version {cls.version}): {cls.description}")
        rows = [(f"{opt.name} = {_toml(opt.default)}", opt.doc) for opt in cls.options]
        width = max(len(r[0]) for r in rows)
        for setting, doc in rows:
            print(f"    {setting:<{width}}  # {doc}" if doc else f"    {setting}")
    return 0


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    return repr(value)
