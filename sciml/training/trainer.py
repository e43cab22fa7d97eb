"""The training loop shared by every learned method: step-based, resumable, data-parallel."""
from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import sys
import time
import warnings
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from .. import models
from .._io import atomic_path
from ..data.normalization import normalises, normalizer_document, write_normalizer
from ..models import registry
from . import distributed
from .checkpoint import CHECKPOINT, find_checkpoint, read_state, remove_stale, write_checkpoint
from .batchnorm import batchnorm_layers, recalibrate_batchnorm
from .config import TrainConfig, load_config, parse_config
from .ema import EMA
from .losses import LossFn, MetricFn, make_loss, make_metric
from .metrics import METRICS_FILE, MetricsLog
from .sampling import StreamSampler, epoch_seed, rng_state, seed_everything, seed_worker, set_rng_state
from .schedules import build_optimizer, build_scheduler


def as_config(config: Any) -> TrainConfig:
    """A TrainConfig from a TrainConfig, a dict of TOML tables, a path to a TOML file, or None (defaults)."""
    if config is None:
        return TrainConfig()
    if isinstance(config, TrainConfig):
        return config
    if isinstance(config, Mapping):
        return parse_config(dict(config))
    if isinstance(config, (str, os.PathLike)):
        return load_config(config)
    raise TypeError(f"expected a TrainConfig, a dict or a path, got {type(config).__name__}")


class Trainer:
    """Trains one model by the config: AdamW (or Adam/SGD), lr schedule with warmup, gradient
    clipping, EMA, bf16 autocast on CUDA, checkpoints and metrics under `run_dir`, DDP when a process
    group is running (torchrun).

    Anything the config would build can be given instead: `model` (any nn.Module), `train_data` /
    `val_data` (map-style datasets whose items are dicts of tensors, or tensors/tuples), `loss`
    (a registered name or `fn(model, batch) -> scalar`), `metrics` ({name: fn(model, batch)}).
    `run_dir=None` (and no [train] run_dir) writes nothing.
    """

    def __init__(self, config: Any = None, *, model: nn.Module | None = None, train_data: Dataset | None = None,
                 val_data: Dataset | None = None, loss: str | LossFn | None = None,
                 metrics: Mapping[str, MetricFn] | None = None, run_dir: str | os.PathLike | None = None,
                 progress: bool | None = None):
        self.config = cfg = as_config(config)
        self.dist = distributed.current()
        self.device = self._device(cfg.device)
        if cfg.batch_size % self.dist.world_size:
            raise cfg.error("train.batch_size", f"the global batch {cfg.batch_size} must be divisible by the number "
                                                f"of processes ({self.dist.world_size})")
        if cfg.deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True)
            torch.backends.cudnn.benchmark = False
        self.amp = bool(cfg.amp and self.device.type == "cuda" and torch.cuda.is_bf16_supported())
        self.dtype = getattr(torch, cfg.dtype) if cfg.dtype else None

        seed_everything(cfg.seed)  # the same initial weights on every process
        self.model = (model if model is not None else self._build_model()).to(self.device)
        if cfg.init is not None:
            self._init_weights(cfg.init)
        if self.dtype is not None:
            self.model.to(self.dtype)
        self.train_data = train_data if train_data is not None else self._build_data(cfg.data.spec, "train", "data")
        if val_data is None and cfg.data.val is not None:
            val_data = self._build_data(cfg.data.val, "val", "data.val")
        self.val_data = val_data
        if cfg.eval.every and self.val_data is None:
            raise cfg.error("eval.every", "evaluation needs a validation split: set [data] val = true, add a "
                                          "[data.val] table, or pass val_data")
        if not hasattr(self.train_data, "__len__") or len(self.train_data) == 0:
            raise cfg.error("data", "the training set must be a non-empty map-style dataset (with __len__)")
        self.loss_fn = self._make_loss(loss)
        self.metric_fns = self._make_metrics(metrics or {})
        if self.dist.rank:
            seed_everything(cfg.seed + 104_729 * self.dist.rank)  # distinct noise/dropout per process

        self.ema = EMA(self.model, cfg.ema.decay) if cfg.ema.decay is not None else None
        if self.dist.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.train_model: nn.Module = nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        else:
            self.train_model = self.model
        self.optimizer = build_optimizer(cfg.optimizer, self.model.parameters())
        self.scheduler = build_scheduler(self.optimizer, cfg.schedule, cfg.steps)

        if run_dir is None and cfg.run_dir is not None:
            run_dir = cfg.run_dir
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.progress = progress
        self.step = 0
        self.samples_seen = 0  # position in the sample stream (global samples consumed)
        self.elapsed = 0.0  # training seconds, over all resumed segments
        self.grad_norm: torch.Tensor | None = None  # before clipping, of the last step
        self.last_record: dict[str, Any] = {}
        self.last_eval: dict[str, float] = {}
        self._loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        self._loss_count = 0
        self._log: MetricsLog | None = None

    # ----------------------------------------------------------------------------------- setup
    def _device(self, name: str) -> torch.device:
        if name == "auto":
            name = "cuda" if torch.cuda.is_available() else "cpu"
        if name == "cuda":
            if not torch.cuda.is_available():
                raise self.config.error("train.device", "cuda requested but no CUDA device is available")
            index = self.dist.local_rank if self.dist.enabled else torch.cuda.current_device()
            return torch.device("cuda", index)
        return torch.device("cpu")

    def _build_model(self) -> nn.Module:
        cfg = self.config
        if cfg.model.name is None:
            raise cfg.error("model.name", "missing; name a registered model in [model] or pass model=...")
        try:
            return models.build_model(cfg.model.name, **cfg.model.hparams)
        except (TypeError, ValueError) as err:
            first = re.match(r"\w+", str(err))
            key = first.group(0) if first and first.group(0) in registry.hparam_names(cfg.model.name) else ""
            raise cfg.error(f"model.{key}" if key else "model", str(err)) from None

    def _build_data(self, spec: dict[str, Any] | None, split: str, key: str) -> Dataset:
        from ..data import DATASET_KINDS, build_dataset

        cfg = self.config
        if spec is None:
            raise cfg.error("data", "missing; describe the data in a [data] table or pass train_data=...")
        base = cfg.file.parent if cfg.file is not None else Path.cwd()
        try:
            return build_dataset(spec, split=split, base_dir=base)
        except (TypeError, ValueError, KeyError, OSError) as err:
            raise cfg.error(*_data_error_key(err, spec, key, DATASET_KINDS)) from None

    def _make_loss(self, loss: str | LossFn | None) -> LossFn:
        cfg = self.config
        if callable(loss):
            return loss
        name = loss if isinstance(loss, str) else cfg.loss.name
        options = cfg.loss.options if name == cfg.loss.name else {}
        try:
            return make_loss(name, cfg.loss.input, cfg.loss.target, **options)
        except ValueError as err:
            raise cfg.error("loss.name" if isinstance(loss, str) or "unknown loss" in str(err) else "loss", str(err)) from None

    def _make_metrics(self, extra: Mapping[str, MetricFn]) -> dict[str, MetricFn]:
        cfg = self.config
        fns: dict[str, MetricFn] = {}
        for name in list(cfg.eval.metrics) + [n for n in extra if n not in cfg.eval.metrics]:
            if name in extra:
                fns[name] = extra[name]
                continue
            try:
                fns[name] = make_metric(name, self.loss_fn, cfg.loss.input, cfg.loss.target)
            except ValueError as err:
                raise cfg.error("eval.metrics", str(err)) from None
        return fns

    def _train_loader(self) -> DataLoader:
        cfg = self.config
        sampler = StreamSampler(len(self.train_data), cfg.batch_size, seed=cfg.seed, rank=self.dist.rank,
                                world_size=self.dist.world_size, start=self.samples_seen, shuffle=cfg.shuffle)
        # worker seeds follow (seed, rank, stream position), so a resumed run seeds its workers the same way
        g = torch.Generator().manual_seed(epoch_seed(cfg.seed + 1 + self.dist.rank, self.samples_seen))
        return DataLoader(self.train_data, batch_size=sampler.local_batch, sampler=sampler,
                          num_workers=cfg.num_workers, pin_memory=self.device.type == "cuda", generator=g,
                          worker_init_fn=seed_worker if cfg.num_workers else None)

    def _val_loader(self) -> DataLoader:
        cfg = self.config
        assert self.val_data is not None
        shard = Subset(self.val_data, range(self.dist.rank, len(self.val_data), self.dist.world_size))
        batch = cfg.eval.batch_size or cfg.batch_size // self.dist.world_size
        return DataLoader(shard, batch_size=batch, shuffle=False, num_workers=cfg.num_workers,
                          pin_memory=self.device.type == "cuda", generator=torch.Generator().manual_seed(cfg.seed),
                          worker_init_fn=seed_worker if cfg.num_workers else None)

    def _to_device(self, batch: Any) -> Any:
        if isinstance(batch, torch.Tensor):
            batch = batch.to(self.device, non_blocking=True)
            return batch.to(self.dtype) if self.dtype is not None and batch.is_floating_point() else batch
        if isinstance(batch, Mapping):
            return {k: self._to_device(v) for k, v in batch.items()}
        if isinstance(batch, (list, tuple)) and not hasattr(batch, "_fields"):
            return type(batch)(self._to_device(v) for v in batch)
        return batch

    def _autocast(self):
        return torch.autocast("cuda", dtype=torch.bfloat16) if self.amp else nullcontext()

    @property
    def eval_model(self) -> nn.Module:
        """The weights evaluated and exported: the EMA copy if [ema] eval, else the trained model."""
        return self.ema.module if self.ema is not None and self.config.ema.eval else self.model

    # ------------------------------------------------------------------------------- training
    def train_step(self, batch: Any) -> torch.Tensor:
        """One optimizer step on `batch` (this process's share); returns the detached loss."""
        cfg = self.config
        self.train_model.train()
        batch = self._to_device(batch)
        with self._autocast():
            loss = self.loss_fn(self.train_model, batch)
        if not isinstance(loss, torch.Tensor) or loss.ndim != 0:
            raise ValueError(f"the loss must be a scalar tensor, got {type(loss).__name__} "
                             f"{tuple(getattr(loss, 'shape', ()))}")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.max_grad_norm is not None:
            self.grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.max_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update(self.model)
        self.step += 1
        self.samples_seen += cfg.batch_size
        loss = loss.detach()
        self._loss_sum += loss.to(torch.float64)
        self._loss_count += 1
        return loss

    def _mean_loss(self) -> float:
        """Mean training loss since the last record, over steps and processes (a collective)."""
        total = torch.stack([self._loss_sum, torch.tensor(float(self._loss_count), dtype=torch.float64,
                                                            device=self.device)])
        distributed.all_reduce_sum(total)
        self._loss_sum.zero_()
        self._loss_count = 0
        return (total[0] / total[1]).item() if total[1] > 0 else math.nan

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Every metric averaged over the val split (sharded over processes), as {"val_<name>": value}."""
        if self.val_data is None or not self.metric_fns:
            return {}
        cfg = self.config
        model = self.eval_model
        training = model.training
        model.eval()
        totals = torch.zeros(len(self.metric_fns) + 1, dtype=torch.float64, device=self.device)
        try:
            for i, batch in enumerate(self._val_loader()):
                if cfg.eval.max_batches is not None and i >= cfg.eval.max_batches:
                    break
                batch = self._to_device(batch)
                n = _batch_len(batch)
                with self._autocast():
                    for j, fn in enumerate(self.metric_fns.values()):
                        value = torch.as_tensor(fn(model, batch)).detach()
                        totals[j] += value.to(device=self.device, dtype=torch.float64) * n
                totals[-1] += n
        finally:
            model.train(training)
        distributed.all_reduce_sum(totals)
        count = totals[-1].item()
        self.last_eval = {f"val_{name}": (totals[j].item() / count if count else math.nan)
                          for j, name in enumerate(self.metric_fns)}
        return self.last_eval

    def fit(self, resume: bool = False) -> dict[str, Any]:
        """Train to `steps`; with `resume`, first restore the run directory's last checkpoint (if any).

        Returns a summary: step, loss (last logged), the last val metrics, time, run_dir, checkpoint,
        resumed_from (the checkpoint step, or None).
        """
        cfg = self.config
        main = self.dist.is_main
        resumed_from = None
        if self.run_dir is not None:
            found = find_checkpoint(self.run_dir)
            if resume and found is not None:
                self.load_checkpoint(found)
                resumed_from = self.step
            elif not resume and (found is not None or (self.run_dir / METRICS_FILE).exists()):
                raise cfg.error("run_dir", f"{self.run_dir} already holds a run; resume it (--resume) or choose "
                                           "another run directory")
            distributed.barrier()  # every process has looked before the main one writes
            if main:
                self.run_dir.mkdir(parents=True, exist_ok=True)
                remove_stale(self.run_dir)
                with atomic_path(self.run_dir / "train_config.json") as tmp:
                    tmp.write_text(json.dumps(cfg.to_dict(), indent=2, default=str) + "\n")
                self._log = MetricsLog(self.run_dir, resume_step=self.step if resumed_from is not None else None)
        elif resume:
            raise ValueError("resume=True needs a run directory")

        from tqdm.auto import tqdm

        show = main and (self.progress if self.progress is not None else sys.stderr.isatty())
        bar = tqdm(total=cfg.steps, initial=self.step, disable=not show, unit="step", dynamic_ncols=True,
                   desc=cfg.name)
        begin = time.perf_counter() - self.elapsed
        last_time, last_samples = time.perf_counter(), self.samples_seen
        batches = iter(self._train_loader()) if self.step < cfg.steps else iter(())
        try:
            while self.step < cfg.steps:
                lr = self.optimizer.param_groups[0]["lr"]
                self.train_step(next(batches))
                step = self.step
                log = step % cfg.log_every == 0 or step == cfg.steps
                evaluate = bool(cfg.eval.every) and (step % cfg.eval.every == 0 or step == cfg.steps)
                if log or evaluate:
                    now = time.perf_counter()
                    record: dict[str, Any] = {"step": step, "loss": self._mean_loss(), "lr": lr,
                                              "time": round(now - begin, 4)}
                    if self.grad_norm is not None:
                        record["grad_norm"] = float(self.grad_norm)
                    rate = (self.samples_seen - last_samples) / max(now - last_time, 1e-9)
                    record["samples_per_s"] = round(rate, 2)
                    last_time, last_samples = now, self.samples_seen
                    if evaluate:
                        record.update(self.evaluate())
                    self.last_record = record
                    if self._log is not None:
                        self._log.write(record)
                    bar.set_postfix({"loss": f"{record['loss']:.3e}", "lr": f"{lr:.2e}",
                                     "samples/s": f"{rate:.0f}"}, refresh=False)
                    if not math.isfinite(record["loss"]):
                        raise FloatingPointError(f"training loss is {record['loss']} at step {step}")
                bar.update(1)
                self.elapsed = time.perf_counter() - begin
                if self.run_dir is not None and (step == cfg.steps or cfg.checkpoint_every
                                                 and step % cfg.checkpoint_every == 0):
                    self.save_checkpoint()
            if cfg.precise_bn and batchnorm_layers(self.eval_model):  # the loop has reached cfg.steps
                self._precise_bn(begin)
        finally:
            bar.close()
            if self._log is not None:
                self._log.close()
                self._log = None
            del batches
        exported = None
        if self.run_dir is not None and main:
            try:
                exported = models.save(self.eval_model, self.run_dir / "model")
            except TypeError:  # an in-memory model outside the registry: the checkpoint has its weights
                pass
            else:
                self._save_normalizer(exported)
        return {
            "step": self.step,
            "loss": self.last_record.get("loss"),
            **self.last_eval,
            "time": self.elapsed,
            "run_dir": str(self.run_dir) if self.run_dir is not None else None,
            "checkpoint": str(self.run_dir / CHECKPOINT) if self.run_dir is not None else None,
            "model": str(exported) if exported is not None else None,
            "resumed_from": resumed_from,
        }

    def _precise_bn(self, begin: float) -> None:
        """[train] precise_bn: recompute the BatchNorm statistics of the evaluated model over that many
        training batches with the final weights (`sciml.training.batchnorm`), evaluate again, log the
        result as a record with `precise_bn` = the batches used, and checkpoint. Under DDP every process
        averages its own batches; the main process's statistics are exported."""
        def forward(model: nn.Module, batch: Any) -> None:
            with self._autocast():
                self.loss_fn(model, self._to_device(batch))

        used = recalibrate_batchnorm(self.eval_model, self._train_loader(), forward, self.config.precise_bn)
        record: dict[str, Any] = {"step": self.step, "precise_bn": used, "time": round(time.perf_counter() - begin, 4)}
        if self.config.eval.every:
            record.update(self.evaluate())
        self.last_record = {**self.last_record, **record}
        if self._log is not None:
            self._log.write(record)
        if self.run_dir is not None:
            self.save_checkpoint()

    def _save_normalizer(self, model_dir: Path) -> None:
        """Beside an exported model, `normalizer.json` with the train split's statistics of the loss's
        input/target fields when the data normalises them (what the neural-operator solvers undo)."""
        loss = self.config.loss
        if normalises(self.train_data, loss.input, loss.target):
            write_normalizer(model_dir, normalizer_document(self.train_data, loss.input, loss.target))

    # ----------------------------------------------------------------------------- checkpoints
    def save_checkpoint(self) -> Path | None:
        """Write RUN_DIR/checkpoint atomically (main process; every process must call it: the RNG
        states of all processes are gathered). Returns the folder on the main process."""
        if self.run_dir is None:
            raise ValueError("no run directory to checkpoint into")
        per_rank = distributed.all_gather_object(
            {"rng": rng_state(), "loss_accumulator": [float(self._loss_sum), self._loss_count]})
        if not self.dist.is_main:
            return None
        state = {
            "format": 1,
            "step": self.step,
            "samples_seen": self.samples_seen,
            "elapsed": self.elapsed,
            "seed": self.config.seed,
            "global_batch": self.config.batch_size,
            "world_size": self.dist.world_size,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "rng": [r["rng"] for r in per_rank],
            "loss_accumulator": [r["loss_accumulator"] for r in per_rank],
        }
        return write_checkpoint(self.run_dir / CHECKPOINT, self.model, state)

    def _init_weights(self, directory: Path) -> None:
        """Start from the weights in `directory`: a sciml model directory, or the model class's own
        `from_pretrained` layout (e.g. a shipped diffusers pipeline for "unet2d")."""
        if (directory / registry.WEIGHTS).is_file():
            self._check_same_model(directory, "train.init")
            registry.read_weights(self.model, directory / registry.WEIGHTS, self.device)
            return
        load = getattr(type(self.model), "from_pretrained", None)
        if load is None:
            raise self.config.error("train.init", f"{directory} has no {registry.WEIGHTS}, and model "
                                                  f"{type(self.model).__name__} has no from_pretrained to read it")
        try:
            self.model.load_state_dict(load(directory, device=self.device).state_dict(), strict=True)
        except (RuntimeError, ValueError) as e:
            raise self.config.error("train.init", f"the model in {directory} does not match this config's: "
                                                  f"{str(e).splitlines()[0]}") from None

    def _check_same_model(self, directory: Path, key: str) -> None:
        """Raise naming `key` if the model saved in `directory` is not the one this config builds."""
        saved = registry.read_config(directory)
        try:
            mine = json.loads(json.dumps(registry.model_config(self.model)))
        except TypeError:
            mine = None
        if mine is not None and saved["class"] is not None and \
                (saved["class"], saved["hparams"]) != (mine["class"], mine["hparams"]):
            raise self.config.error(key, f"the checkpoint in {directory} holds model {saved['class']!r} with "
                                         f"{saved['hparams']}, but this config builds {mine['class']!r} with {mine['hparams']}")

    def load_checkpoint(self, directory: str | os.PathLike | None = None) -> int:
        """Restore weights, optimizer, schedule, EMA, step, sample-stream position and RNG states;
        returns the step."""
        cfg = self.config
        if directory is None:
            if self.run_dir is None or (directory := find_checkpoint(self.run_dir)) is None:
                raise FileNotFoundError(f"no checkpoint in {self.run_dir}")
        directory = Path(directory)
        self._check_same_model(directory, "model")
        registry.read_weights(self.model, directory / registry.WEIGHTS, self.device)
        state = read_state(directory, map_location=self.device)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.ema is not None:
            if state.get("ema") is not None:
                self.ema.load_state_dict(state["ema"])
            else:
                self.ema = EMA(self.model, self.ema.decay)
        self.step = int(state["step"])
        if hasattr(self.model, "_pm_step"):  # a loss schedule counted by the model (LPN proximal matching)
            self.model._pm_step = self.step
        self.samples_seen = int(state["samples_seen"])
        self.elapsed = float(state["elapsed"])
        rank, world = self.dist.rank, self.dist.world_size
        if len(state["rng"]) == world:
            set_rng_state(state["rng"][rank])
            total, count = state["loss_accumulator"][rank]
        else:
            warnings.warn(f"checkpoint written by {len(state['rng'])} process(es), resumed on {world}: random "
                          "states are reseeded, so random draws differ from an uninterrupted run", stacklevel=2)
            seed_everything(cfg.seed + 104_729 * rank + self.step)
            total, count = 0.0, 0
        self._loss_sum.fill_(total)
        self._loss_count = int(count)
        return self.step


def _data_error_key(err: Exception, spec: dict[str, Any], table: str, kinds: Mapping[str, Any]) -> tuple[str, str]:
    """(config key, message) for a dataset that could not be built: the option the error names
    (a DataError's `key`, "<kind>: <option>: ..." or "unknown option(s) ['<option>']"), else the table."""
    message = str(err)
    if spec.get("kind") not in kinds:
        return f"{table}.kind", message
    option = getattr(err, "key", "") or ""
    if option and getattr(err, "file", None) == "<data>":
        message = message.removeprefix(f"<data>: {option}: ")
    if not option:
        m = re.match(r"[\w-]+: (\w+): ", message) or re.search(r"unknown option\(s\) \['(\w+)'", message)
        option = m.group(1) if m else ""
    if not option and isinstance(err, FileNotFoundError) and "path" in spec:
        option = "path"
    root = option.split(".")[0]
    if root and (root in spec or root == "path"):
        return f"{table}.{option}", message
    return table, message


def _batch_len(batch: Any) -> int:
    if isinstance(batch, torch.Tensor):
        return batch.shape[0] if batch.ndim else 1
    values = batch.values() if isinstance(batch, Mapping) else batch if isinstance(batch, (list, tuple)) else ()
    for v in values:
        n = _batch_len(v)
        if n:
            return n
    return 0


def default_run_dir(cfg: TrainConfig) -> Path:
    """Where `sciml train` puts a run: `[train] run_dir`, else out/train/<config name>."""
    return Path(cfg.run_dir) if cfg.run_dir is not None else Path("out") / "train" / cfg.name


def train(config: Any, run_dir: str | os.PathLike | None = None, resume: bool = False, *,
          device: str | None = None, progress: bool | None = None, **trainer_kwargs: Any) -> dict[str, Any]:
    """Train from a config (path, dict or TrainConfig) into `run_dir` (default: [train] run_dir, else
    out/train/<config name>); `resume` continues from its last checkpoint. Under torchrun the
    process group is started here (nccl on CUDA, else gloo) and stopped at the end; [train]
    cpu_threads is applied here (torch.set_num_threads, for the whole process).

    Returns the summary of `Trainer.fit`.
    """
    cfg = as_config(config)
    if device is not None:
        cfg = dataclasses.replace(cfg, device=device)
    if run_dir is None:
        run_dir = default_run_dir(cfg)
    if cfg.cpu_threads is not None:
        torch.set_num_threads(cfg.cpu_threads)
    use_cuda = cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available())
    started = distributed.init_from_env(use_cuda)
    try:
        trainer = Trainer(cfg, run_dir=run_dir, progress=progress, **trainer_kwargs)
        summary = trainer.fit(resume=resume)
        if started:
            distributed.barrier()  # no process tears the group down while another is still in a collective
        return summary
    finally:
        if started:
            torch.distributed.destroy_process_group()


def export_normalizer(config: str | os.PathLike, model_dir: str | os.PathLike | None = None) -> Path:
    """Write `normalizer.json` again for a model trained by `sciml train CONFIG` (which writes it when it
    exports the model): the train split's statistics of the [loss] input/target fields (from the
    data's cached `.stats.json`, else computed) into `model_dir` (default: the run's exported model,
    `[train] run_dir` or `out/train/<name>`, + "/model"). Command line: `sciml normalizer CONFIG [MODEL_DIR]`.
    """
    from ..data import build_dataset

    cfg = load_config(config)
    if cfg.data.spec is None:
        raise ValueError(f"{config}: the config has no [data] table")
    base = cfg.file.parent if cfg.file is not None else Path.cwd()
    dataset = build_dataset(cfg.data.spec, split="train", base_dir=base)
    if not normalises(dataset, cfg.loss.input, cfg.loss.target):
        raise ValueError(f"{config}: data.normalize: the training data normalises neither {cfg.loss.input!r} nor "
                         f"{cfg.loss.target!r}, so there is no normalizer.json to write")
    if model_dir is None:
        model_dir = default_run_dir(cfg) / "model"
    return write_normalizer(model_dir, normalizer_document(dataset, cfg.loss.input, cfg.loss.target))


__all__ = ["Trainer", "as_config", "default_run_dir", "export_normalizer", "train"]
