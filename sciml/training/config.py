"""Training configs: a TOML file validated into dataclasses; every error names the file and the key.

    [model]     name = "mlp", the other keys are its hyper-parameters
    [data]      passed to sciml.data.build_dataset; `val = true` or a [data.val] table adds a val split
    [loss]      name = "mse" | "l1" | "relative-l2" | registered; input/target keys; other keys: options
    [optimizer] name = "adamw" | "adam" | "sgd"; lr, weight_decay, betas, eps (momentum, nesterov: sgd)
    [schedule]  name = "constant" | "cosine" | "step" | "one-cycle"; warmup_steps and per-schedule keys
    [ema]       decay (the table turns EMA on); eval = true evaluates with the EMA weights
    [eval]      every (steps; 0 = never), metrics, batch_size, max_batches
    [train]     steps, batch_size (global), seed, log_every, checkpoint_every, max_grad_norm, precise_bn, amp,
                device, dtype, num_workers, cpu_threads, shuffle, deterministic, run_dir, init (a model
                directory, relative to the config, whose weights start the run: fine-tuning/curricula)
"""
from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


from .._toml import ConfigError, _Table, read_toml
from ..models.registry import WEIGHTS
from . import losses as losses_mod

OPTIMIZERS = ("adamw", "adam", "sgd")
SCHEDULES = ("constant", "cosine", "step", "one-cycle")
DEVICES = ("auto", "cpu", "cuda")
DTYPES = ("float32", "float64", "bfloat16")
_SCHEDULE_KEYS = {
    "constant": ("warmup_steps",),
    "cosine": ("warmup_steps", "min_lr"),
    "step": ("warmup_steps", "step_size", "gamma"),
    "one-cycle": ("warmup_steps", "pct_start", "div_factor", "final_div_factor"),
}
_OPTIMIZER_KEYS = {
    "adamw": ("lr", "weight_decay", "betas", "eps"),
    "adam": ("lr", "weight_decay", "betas", "eps"),
    "sgd": ("lr", "weight_decay", "momentum", "nesterov"),
}


@dataclass
class ModelConfig:
    name: str | None = None  # None: the Trainer is given a model
    hparams: dict[str, Any] = field(default_factory=dict)


@dataclass
class DataConfig:
    spec: dict[str, Any] | None = None  # the [data] table without `val`; None: the Trainer is given data
    val: dict[str, Any] | None = None  # the val split's spec (train spec + overrides), None: no val split


@dataclass
class LossConfig:
    name: str = "mse"
    input: str = "x"  # batch key fed to the model (pointwise losses)
    target: str = "y"  # batch key compared with the prediction
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class OptimizerConfig:
    name: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    momentum: float = 0.0
    nesterov: bool = False


@dataclass
class ScheduleConfig:
    name: str = "constant"
    warmup_steps: int = 0
    min_lr: float = 0.0  # cosine: the lr reached at the last step
    step_size: int = 0  # step: multiply by gamma every step_size steps (after warmup)
    gamma: float = 0.1
    pct_start: float = 0.3  # one-cycle: fraction of steps rising (warmup_steps / steps if given)
    div_factor: float = 25.0
    final_div_factor: float = 1e4


@dataclass
class EMAConfig:
    decay: float | None = None  # None: no EMA
    eval: bool = True  # evaluate (and export) the EMA weights


@dataclass
class EvalConfig:
    every: int = 0  # steps between evaluations on the val split; 0: never
    metrics: list[str] = field(default_factory=lambda: ["loss"])
    batch_size: int | None = None  # per process; default: the per-process training batch
    max_batches: int | None = None  # per process; default: the whole split


@dataclass
class TrainConfig:
    """A validated training config; build one from TOML with `load_config` or from a dict with `parse_config`."""

    steps: int = 1000
    batch_size: int = 32  # global: split evenly over the processes
    seed: int = 0
    log_every: int = 10
    checkpoint_every: int = 0  # 0: only at the end
    max_grad_norm: float | None = None
    precise_bn: int = 0  # training batches that recompute BatchNorm statistics at the end (0: off)
    amp: bool = True  # bf16 autocast on CUDA; no effect on CPU
    device: str = "auto"
    dtype: str | None = None  # cast the model (and floating batch tensors) to this dtype
    num_workers: int = 0
    cpu_threads: int | None = None  # torch.set_num_threads for the process (train()/CLI); None: torch's default
    shuffle: bool = True
    deterministic: bool = False
    run_dir: str | None = None
    init: Path | None = None  # a model directory whose weights start the run (not used when resuming)
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    ema: EMAConfig = field(default_factory=EMAConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    file: Path | None = None  # where it was read from (error messages, data paths)
    name: str = "train"

    @property
    def source(self) -> str:
        return str(self.file) if self.file is not None else "<config>"

    def error(self, key: str, message: str) -> ConfigError:
        return ConfigError(self.source, key, message)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["file"] = str(self.file) if self.file is not None else None
        return d


def load_config(path: str | Path) -> TrainConfig:
    """Read and validate a training config; raises `ConfigError` naming the file and key."""
    file, data = read_toml(path)
    return parse_config(data, file=file)


def parse_config(data: dict[str, Any], file: str | Path | None = None) -> TrainConfig:
    """Validate a config given as nested dicts (the TOML tables)."""
    source = Path(file) if file is not None else Path("<config>")
    root = _Table(copy.deepcopy(data), "", source)
    cfg = TrainConfig(file=Path(file) if file is not None else None, name=source.stem if file is not None else "train")
    t = root.table("train", required=False)
    cfg.steps = _int(t, "steps", cfg.steps, 1)
    cfg.batch_size = _int(t, "batch_size", cfg.batch_size, 1)
    cfg.seed = _int(t, "seed", cfg.seed, 0)
    cfg.log_every = _int(t, "log_every", cfg.log_every, 1)
    cfg.checkpoint_every = _int(t, "checkpoint_every", cfg.checkpoint_every, 0)
    cfg.max_grad_norm = _number(t, "max_grad_norm", None, positive=True)
    cfg.precise_bn = _int(t, "precise_bn", cfg.precise_bn, 0)
    cfg.amp = t.get("amp", (bool,), cfg.amp)
    cfg.device = _choice(t, "device", cfg.device, DEVICES)
    cfg.dtype = _choice(t, "dtype", None, DTYPES)
    cfg.num_workers = _int(t, "num_workers", cfg.num_workers, 0)
    cfg.cpu_threads = _int(t, "cpu_threads", None, 1)
    cfg.shuffle = t.get("shuffle", (bool,), cfg.shuffle)
    cfg.deterministic = t.get("deterministic", (bool,), cfg.deterministic)
    cfg.run_dir = t.get("run_dir", (str,), None, expected="a folder for checkpoints and metrics")
    init = t.get("init", (str,), None, expected=f"a model directory ({WEIGHTS} + config.json, or a diffusers pipeline)")
    if init is not None:
        cfg.init = (source.parent / init).resolve() if file is not None else Path(init)
        if not ((cfg.init / WEIGHTS).is_file() or (cfg.init / "model_index.json").is_file()):
            raise t.error("init", f"expected a model directory with {WEIGHTS} (or a diffusers pipeline directory with "
                                  f"model_index.json), got {str(cfg.init)!r}")
    t.finish()

    cfg.model = _model(root.table("model", required=False), source)
    cfg.data = _data(root.table("data", required=False))
    cfg.loss = _loss(root.table("loss", required=False))
    cfg.optimizer = _optimizer(root.table("optimizer", required=False))
    cfg.schedule = _schedule(root.table("schedule", required=False), cfg.steps)
    cfg.ema = _ema(root.table("ema", required=False))
    cfg.eval = _eval(root.table("eval", required=False))
    if cfg.eval.every and cfg.data.spec is not None and cfg.data.val is None:
        raise ConfigError(source, "eval.every", "evaluation needs a validation split: set [data] val = true "
                                                "or add a [data.val] table (its keys override [data])")
    root.finish()
    return cfg


def _int(t: _Table, key: str, default: Any, minimum: int) -> Any:
    value = t.get(key, (int,), default, expected=f"an integer >= {minimum}")
    if value is not None and value < minimum:
        raise t.error(key, f"expected an integer >= {minimum}, got {value}")
    return value


def _number(t: _Table, key: str, default: Any, positive: bool = False, unit: bool = False,
            nonneg: bool = False) -> Any:
    want = "a number in [0, 1)" if unit else "a positive number" if positive else \
        "a number >= 0" if nonneg else "a number"
    value = t.get(key, (int, float), default, expected=want)
    if value is None:
        return None
    value = float(value)
    if not math.isfinite(value) or (positive and value <= 0) or (nonneg and value < 0) or (unit and not 0 <= value < 1):
        raise t.error(key, f"expected {want}, got {value!r}")
    return value


def _choice(t: _Table, key: str, default: Any, choices: tuple[str, ...]) -> Any:
    want = " or ".join(f'"{c}"' for c in choices)
    value = t.get(key, (str,), default, expected=want)
    if value is not None and value not in choices:
        raise t.error(key, f"expected {want}, got {value!r}")
    return value


def _model(t: _Table, file: Path) -> ModelConfig:
    from ..models import registry

    if not t.data:
        return ModelConfig()
    name = t.get("name", (str,), expected='a registered model name, e.g. "mlp"')
    if name not in registry.MODELS:
        raise t.error("name", f"unknown model {name!r}; registered models: {', '.join(sorted(registry.MODELS))}")
    hparams = {k: v for k, v in t.data.items() if k != "name"}
    problem = registry.hparam_errors(name, hparams)
    if problem:
        raise t.error(*problem)
    return ModelConfig(name, hparams)


def _data(t: _Table) -> DataConfig:
    if not t.data:
        return DataConfig()
    t.get("kind", (str,), expected='a dataset kind, e.g. "random-regression"')
    spec = {k: v for k, v in t.data.items() if k != "val"}
    val = t.get("val", (bool, dict), False, expected="true or a table of keys overriding [data] for the val split")
    if val is True:
        val = dict(spec)
    elif isinstance(val, dict):
        val = {**spec, **val}
    else:
        val = None
    return DataConfig(spec, val)


def _loss(t: _Table) -> LossConfig:
    cfg = LossConfig()
    cfg.name = t.get("name", (str,), cfg.name, expected="a loss name")
    if cfg.name not in losses_mod.LOSSES:
        raise t.error("name", f"unknown loss {cfg.name!r}; registered losses: {', '.join(sorted(losses_mod.LOSSES))}")
    cfg.input = t.get("input", (str,), cfg.input, expected="the batch key fed to the model")
    cfg.target = t.get("target", (str,), cfg.target, expected="the batch key of the target")
    cfg.options = {k: v for k, v in t.data.items() if k not in ("name", "input", "target")}
    accepted = losses_mod.loss_options(cfg.name)
    for key in cfg.options:
        if accepted is not None and key not in accepted:
            raise t.error(key, f"unknown option for loss {cfg.name!r}; expected one of: "
                               f"{', '.join(['name', 'input', 'target', *accepted])}")
    return cfg


def _reject_foreign_keys(t: _Table, what: str, name: str, keys_by_name: dict[str, tuple[str, ...]]) -> tuple[str, ...]:
    """The keys of choice `name`; a key that belongs only to another choice is an error naming it."""
    allowed = keys_by_name[name]
    for key in t.data:
        if key != "name" and key not in allowed and key in sum(keys_by_name.values(), ()):
            raise t.error(key, f"not used by {what} {name!r} (its keys: {', '.join(allowed)})")
    return allowed


def _optimizer(t: _Table) -> OptimizerConfig:
    cfg = OptimizerConfig()
    cfg.name = _choice(t, "name", cfg.name, OPTIMIZERS)
    allowed = _reject_foreign_keys(t, "optimizer", cfg.name, _OPTIMIZER_KEYS)
    cfg.lr = _number(t, "lr", cfg.lr, positive=True)
    cfg.weight_decay = _number(t, "weight_decay", cfg.weight_decay, nonneg=True)
    if "betas" in allowed:
        betas = t.get("betas", (list,), list(cfg.betas), expected="an array of two numbers in [0, 1)")
        if len(betas) != 2 or not all(isinstance(b, (int, float)) and not isinstance(b, bool) and 0 <= b < 1 for b in betas):
            raise t.error("betas", f"expected an array of two numbers in [0, 1), got {betas!r}")
        cfg.betas = (float(betas[0]), float(betas[1]))
        cfg.eps = _number(t, "eps", cfg.eps, positive=True)
    else:
        cfg.momentum = _number(t, "momentum", cfg.momentum, nonneg=True)
        cfg.nesterov = t.get("nesterov", (bool,), cfg.nesterov)
        if cfg.nesterov and cfg.momentum == 0:
            raise t.error("nesterov", "needs momentum > 0")
    t.finish()
    return cfg


def _schedule(t: _Table, steps: int) -> ScheduleConfig:
    cfg = ScheduleConfig()
    cfg.name = _choice(t, "name", cfg.name, SCHEDULES)
    _reject_foreign_keys(t, "schedule", cfg.name, _SCHEDULE_KEYS)
    cfg.warmup_steps = _int(t, "warmup_steps", cfg.warmup_steps, 0)
    if cfg.warmup_steps >= steps:
        raise t.error("warmup_steps", f"must be less than train.steps ({steps}), got {cfg.warmup_steps}")
    if cfg.name == "cosine":
        cfg.min_lr = _number(t, "min_lr", cfg.min_lr, nonneg=True)
    elif cfg.name == "step":
        cfg.step_size = _int(t, "step_size", None, 1)
        if cfg.step_size is None:
            raise t.error("step_size", "missing; expected the number of steps between lr drops (an integer >= 1)")
        cfg.gamma = _number(t, "gamma", cfg.gamma, positive=True)
    elif cfg.name == "one-cycle":
        if "pct_start" in t.data and "warmup_steps" in t.data:
            raise t.error("pct_start", "give either pct_start or warmup_steps, not both")
        cfg.pct_start = _number(t, "pct_start", cfg.pct_start, positive=True)
        if cfg.warmup_steps:
            cfg.pct_start = cfg.warmup_steps / steps
        if not 0 < cfg.pct_start < 1 or cfg.pct_start * steps - 1 <= 0 or steps - cfg.pct_start * steps < 1:
            raise t.error("pct_start", f"expected a fraction of the {steps} steps leaving at least one step in "
                                       f"each phase, got {cfg.pct_start!r}")
        cfg.warmup_steps = 0  # one-cycle's own rising phase is its warmup
        cfg.div_factor = _number(t, "div_factor", cfg.div_factor, positive=True)
        cfg.final_div_factor = _number(t, "final_div_factor", cfg.final_div_factor, positive=True)
    t.finish()
    return cfg


def _ema(t: _Table) -> EMAConfig:
    cfg = EMAConfig()
    if not t.data:
        return cfg
    cfg.decay = _number(t, "decay", None, unit=True)
    if cfg.decay is None:
        raise t.error("decay", "missing; expected a number in [0, 1), e.g. 0.999")
    cfg.eval = t.get("eval", (bool,), cfg.eval)
    t.finish()
    return cfg


def _eval(t: _Table) -> EvalConfig:
    cfg = EvalConfig()
    cfg.every = _int(t, "every", cfg.every, 0)
    metrics = t.get("metrics", (list, str), cfg.metrics, expected="a metric name or an array of them")
    metrics = [metrics] if isinstance(metrics, str) else metrics
    if not metrics or not all(isinstance(m, str) for m in metrics):
        raise t.error("metrics", f"expected an array of metric names, got {metrics!r}")
    known = losses_mod.metric_names()
    for m in metrics:
        if m not in known:
            raise t.error("metrics", f"unknown metric {m!r}; known: {', '.join(sorted(known))}")
    cfg.metrics = list(metrics)
    cfg.batch_size = _int(t, "batch_size", None, 1)
    cfg.max_batches = _int(t, "max_batches", None, 1)
    t.finish()
    return cfg

