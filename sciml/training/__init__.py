"""One training stack for every learned method (trainer, checkpoints, DDP, metrics).

    summary = sciml.training.train("configs/train-smoke.toml", run_dir="out/train/smoke")
    trainer = sciml.training.Trainer(config, model=my_net, train_data=ds, loss=my_loss); trainer.fit()

`sciml train CONFIG [--run-dir D] [--resume]`, `torchrun --nproc_per_node N -m sciml train CONFIG`,
`sciml plot-metrics RUN_DIR [-o PNG]`.
"""
from .batchnorm import recalibrate_batchnorm
from .checkpoint import find_checkpoint, read_state, write_checkpoint
from .config import (DataConfig, EMAConfig, EvalConfig, LossConfig, ModelConfig, OptimizerConfig, ScheduleConfig,
                     TrainConfig, load_config, parse_config)
from .ema import EMA
from .losses import LOSSES, METRICS, make_loss, make_metric, register_loss, register_metric
from .metrics import plot_metrics, read_metrics
from .sampling import StreamSampler, seed_everything
from .schedules import build_optimizer, build_scheduler, lr_factor
from .trainer import Trainer, as_config, export_normalizer, train

__all__ = ["DataConfig", "EMA", "EMAConfig", "EvalConfig", "LOSSES", "LossConfig", "METRICS", "ModelConfig",
           "OptimizerConfig", "ScheduleConfig", "StreamSampler", "TrainConfig", "Trainer", "as_config", "export_normalizer",
           "build_optimizer", "build_scheduler", "find_checkpoint", "load_config", "lr_factor", "make_loss",
           "make_metric", "parse_config", "plot_metrics", "read_metrics", "read_state", "recalibrate_batchnorm", "register_loss",
           "register_metric", "seed_everything", "train", "write_checkpoint"]
