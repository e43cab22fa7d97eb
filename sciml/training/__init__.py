"""One training stack for every learned method (trainer, checkpoints, DDP, metrics)."""
