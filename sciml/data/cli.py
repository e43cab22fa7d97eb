"""`sciml data ...` sub-commands (filled in by the data generators)."""
from __future__ import annotations

import argparse


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Add `data` to the `sciml` command line."""
