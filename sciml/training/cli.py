"""`sciml train` and `sciml plot-metrics` (filled in by the trainer)."""
from __future__ import annotations

import argparse


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Add `train` and `plot-metrics` to the `sciml` command line."""
