"""The training stack: models registry and checkpoints, the Trainer (loss decrease, schedules, EMA,
gradient clipping), config errors, atomic checkpoints, exact resume after SIGKILL, and DDP with two
gloo processes matching one process. Three subprocesses in all (SIGKILL run, torchrun); the rest runs
in-process."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from sciml import models
from sciml.cli import main
from sciml.data import RandomRegression
from sciml.training import (StreamSampler, Trainer, build_scheduler, find_checkpoint, parse_config, read_metrics,
                            read_state, train)
from sciml.training import checkpoint as checkpoint_mod
from sciml.training.losses import mse
from sciml.training.sampling import rng_state, set_rng_state

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# A loss that sleeps (so a subprocess can be killed mid-run) and draws random numbers (so resuming
# must restore the RNG state to reproduce the uninterrupted run). Registered here and in the subprocess.
SLOW_LOSS = '''
import time
import torch
from sciml.training import LOSSES, register_loss
from sciml.training.losses import mse
if "slow-noisy-mse" not in LOSSES:
    @register_loss("slow-noisy-mse")
    def _slow_noisy_mse(pred, target, delay: float = 0.0, jitter: float = 0.0):
        time.sleep(delay)
        return mse(pred + jitter * torch.randn_like(pred), target)
'''
exec(SLOW_LOSS)


def base_config(**train) -> dict:
    return {
        "model": {"name": "mlp", "in_features": 8, "out_features": 4, "hidden": 32, "depth": 2},
        "data": {"kind": "random-regression", "size": 128, "in_features": 8, "out_features": 4, "val": True},
        "loss": {"name": "mse"},
        "optimizer": {"name": "adamw", "lr": 1e-2, "weight_decay": 0.0},
        "train": {"steps": 60, "batch_size": 16, "log_every": 1, "seed": 3, **train},
    }


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(v)


def write_toml(path: Path, cfg: dict) -> Path:
    lines = []
    for table, body in cfg.items():
        lines.append(f"[{table}]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in body.items()]
        lines.append("")
    path.write_text("\n".join(lines))
    return path


def losses_of(run_dir: Path) -> dict[int, float]:
    records = read_metrics(run_dir)
    steps = [r["step"] for r in records]
    assert len(steps) == len(set(steps)), f"duplicate steps in metrics.jsonl: {steps}"
    return {r["step"]: r["loss"] for r in records if "loss" in r}


# ----------------------------------------------------------------------------------- models
@pytest.mark.parametrize("name, hparams, shape", [
    ("mlp", {"in_features": 5, "out_features": 3, "hidden": 16, "depth": 3, "activation": "tanh"}, (7, 5)),
    ("cnn2d", {"in_channels": 2, "out_channels": 1, "width": 8, "depth": 3, "padding_mode": "circular"}, (2, 2, 12, 10)),
])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_model_checkpoint_round_trip(tmp_path, name, hparams, shape, dtype):
    torch.manual_seed(0)
    model = models.build_model(name, **hparams).to(dtype)
    x = torch.randn(shape, dtype=dtype)
    folder = models.save(model, tmp_path / "m")
    config = json.loads((folder / "config.json").read_text())
    assert config["class"] == name and config["hparams"]["width" if name == "cnn2d" else "hidden"] > 0
    assert set(hparams.items()) <= set(config["hparams"].items())
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    loaded = models.load(folder)
    assert type(loaded) is type(model) and not loaded.training
    assert next(loaded.parameters()).dtype == dtype
    with torch.no_grad():
        assert torch.equal(loaded(x), model.eval()(x))
    assert loaded(x).shape == ((shape[0], 3) if name == "mlp" else (2, 1, 12, 10))


def test_model_registry_rules(tmp_path):
    with pytest.raises(ValueError, match="registered models: .*cnn2d.*mlp"):
        models.build_model("nope")
    with pytest.raises(TypeError, match="not a registered model"):
        models.save(nn.Linear(2, 2), tmp_path / "x")
    with pytest.raises(ValueError, match="already registered"):
        models.register_model("mlp")(type("Other", (nn.Module,), {}))
    with pytest.raises(ValueError, match="^depth must be"):
        models.build_model("mlp", in_features=2, out_features=2, depth=-1)
    assert not (tmp_path / "x").exists()


# -------------------------------------------------------------------------------- training
def test_mlp_loss_decreases_and_plot(tmp_path, capsys):
    summary = train(base_config(), run_dir=tmp_path / "run")
    losses = losses_of(tmp_path / "run")
    assert sorted(losses) == list(range(1, 61))
    first, last = sum(losses[s] for s in range(1, 6)) / 5, sum(losses[s] for s in range(56, 61)) / 5
    assert last < first / 10, (first, last)
    assert summary["step"] == 60 and summary["loss"] == losses[60]
    assert summary["resumed_from"] is None
    record = read_metrics(tmp_path / "run")[-1]
    assert {"step", "loss", "lr", "time"} <= set(record)
    # the exported model and the checkpoint rebuild with the registry
    for folder in ("model", "checkpoint"):
        assert isinstance(models.load(tmp_path / "run" / folder), models.MLP)
    assert main(["plot-metrics", str(tmp_path / "run"), "-o", str(tmp_path / "m.png")]) == 0
    assert (tmp_path / "m.png").read_bytes()[:8] == PNG_MAGIC
    assert main(["plot-metrics", str(tmp_path / "missing")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_second_run_into_same_dir_needs_resume(tmp_path, capsys):
    cfg = base_config(steps=3)
    path = write_toml(tmp_path / "c.toml", cfg)
    assert main(["train", str(path), "--run-dir", str(tmp_path / "run")]) == 0
    assert main(["train", str(path), "--run-dir", str(tmp_path / "run")]) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert main(["train", str(path), "--run-dir", str(tmp_path / "run"), "--resume"]) == 0  # finished: no-op
    assert sorted(losses_of(tmp_path / "run")) == [1, 2, 3]


def _lrs(scheduler, optimizer, n):
    out = []
    for _ in range(n):
        out.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return out


def _sgd(lr=0.1):
    return torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=lr)


@pytest.mark.parametrize("schedule", ["constant", "cosine", "step", "one-cycle", "warmup-cosine", "warmup-step"])
def test_schedules_match_torch(schedule):
    steps, lr = 50, 0.1
    tables = {
        "constant": {"name": "constant"},
        "cosine": {"name": "cosine", "min_lr": 1e-3},
        "step": {"name": "step", "step_size": 7, "gamma": 0.5},
        "one-cycle": {"name": "one-cycle", "pct_start": 0.3, "div_factor": 25.0, "final_div_factor": 1e4},
        "warmup-cosine": {"name": "cosine", "min_lr": 1e-3, "warmup_steps": 10},
        "warmup-step": {"name": "step", "step_size": 7, "gamma": 0.5, "warmup_steps": 5},
    }
    cfg = parse_config({"train": {"steps": steps}, "schedule": tables[schedule], "optimizer": {"lr": lr}})
    opt = _sgd(lr)
    ours = _lrs(build_scheduler(opt, cfg.schedule, steps), opt, steps)
    ref_opt = _sgd(lr)
    warmup = cfg.schedule.warmup_steps
    if schedule == "constant":
        expected = [lr] * steps
    elif schedule.endswith("cosine"):
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(ref_opt, T_max=steps - warmup, eta_min=1e-3)
        expected = _lrs(sched, ref_opt, steps - warmup)
    elif schedule.endswith("step"):
        sched = torch.optim.lr_scheduler.StepLR(ref_opt, step_size=7, gamma=0.5)
        expected = _lrs(sched, ref_opt, steps - warmup)
    else:
        sched = torch.optim.lr_scheduler.OneCycleLR(ref_opt, max_lr=lr, total_steps=steps, pct_start=0.3,
                                                    anneal_strategy="cos", cycle_momentum=False, div_factor=25.0,
                                                    final_div_factor=1e4)
        expected = _lrs(sched, ref_opt, steps)
    if warmup:  # linear warmup (i + 1) / warmup, then torch's schedule shifted by warmup steps
        expected = [lr * (i + 1) / warmup for i in range(warmup)] + expected
    assert ours == pytest.approx(expected, rel=1e-9, abs=1e-15)
    if schedule == "one-cycle":
        assert max(ours) == pytest.approx(lr) and ours[-1] == pytest.approx(lr / 25 / 1e4)


class Scalar(nn.Module):
    def __init__(self, w0: float):
        super().__init__()
        self.w = nn.Parameter(torch.tensor(w0, dtype=torch.float64))

    def forward(self, x):
        return self.w


def test_ema_closed_form():
    """SGD on loss = w (gradient 1): w_j = w0 − jη; EMA with decay d after k steps:
    ema_k = dᵏ w0 + (1 − d) Σⱼ dᵏ⁻ʲ w_j = w0 − η (k − d (1 − dᵏ) / (1 − d))."""
    w0, eta, d, k = 2.0, 0.1, 0.9, 20
    cfg = parse_config({"train": {"steps": k, "batch_size": 4, "log_every": 5},
                        "optimizer": {"name": "sgd", "lr": eta, "weight_decay": 0.0},
                        "ema": {"decay": d}})
    trainer = Trainer(cfg, model=Scalar(w0), train_data=RandomRegression(size=8), loss=lambda m, b: m(b["x"]))
    trainer.fit()
    assert trainer.model.w.item() == pytest.approx(w0 - k * eta, abs=1e-12)
    assert trainer.ema.module.w.item() == pytest.approx(w0 - eta * (k - d * (1 - d**k) / (1 - d)), abs=1e-12)
    assert trainer.eval_model is trainer.ema.module


def test_gradient_clipping_bounds_the_norm():
    cfg = parse_config({**base_config(steps=5, max_grad_norm=0.5), "optimizer": {"name": "sgd", "lr": 1e-3}})
    trainer = Trainer(cfg, loss=lambda m, b: 1e3 * mse(m(b["x"]), b["y"]))
    norms = []

    def measure(optimizer, args, kwargs):
        grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        norms.append(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])).item())

    trainer.optimizer.register_step_pre_hook(measure)
    trainer.fit()
    assert len(norms) == 5 and max(norms) <= 0.5 * (1 + 1e-6)
    assert trainer.grad_norm.item() > 10  # the norm before clipping: clipping was active


def test_sampler_shards_and_resumes():
    single = StreamSampler(10, 4, seed=1)
    ranks = [StreamSampler(10, 4, seed=1, rank=r, world_size=2) for r in range(2)]
    it, its = iter(single), [iter(s) for s in ranks]
    stream = [next(it) for _ in range(40)]
    for b in range(10):  # each global batch = rank 0's share followed by rank 1's
        assert stream[4 * b:4 * b + 4] == [next(its[0]) for _ in range(2)] + [next(its[1]) for _ in range(2)]
    assert sorted(stream[:10]) == list(range(10)) and sorted(stream[10:20]) == list(range(10))
    assert stream[:10] != stream[10:20]  # a new permutation each epoch
    resumed = iter(StreamSampler(10, 4, seed=1, start=12))
    assert [next(resumed) for _ in range(28)] == stream[12:]


def test_rng_state_survives_weights_only(tmp_path):
    import random

    import numpy as np

    torch.save(rng_state(), tmp_path / "rng.pt")
    draws = (torch.rand(3), np.random.rand(3), random.random())
    set_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True))
    again = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(draws[0], again[0]) and np.array_equal(draws[1], again[1]) and draws[2] == again[2]


# ------------------------------------------------------------------------------- configs
CONFIG_ERRORS = [
    ("train.stepz", lambda c: c["train"].update(stepz=3), "unknown key"),
    ("train.steps", lambda c: c["train"].update(steps="ten"), "expected an integer"),
    ("train.batch_size", lambda c: c["train"].update(batch_size=0), ">= 1"),
    ("model.name", lambda c: c["model"].update(name="transformer"), "registered models"),
    ("model.hiddn", lambda c: c["model"].update(hiddn=3), "unknown hyper-parameter"),
    ("model.hidden", lambda c: c["model"].update(hidden="wide"), "expected an integer"),
    ("model.depth", lambda c: c["model"].update(depth=-1), "depth must be"),
    ("loss.name", lambda c: c["loss"].update(name="huber"), "registered losses"),
    ("loss.eps", lambda c: c["loss"].update(eps=1.0), "unknown option"),
    ("schedule.name", lambda c: c.update(schedule={"name": "linear"}), "expected"),
    ("schedule.min_lr", lambda c: c.update(schedule={"name": "step", "step_size": 3, "min_lr": 0.1}), "not used"),
    ("optimizer.betas", lambda c: c["optimizer"].update(betas=[0.9]), "two numbers"),
    ("optimizer.name", lambda c: c["optimizer"].update(name="lamb"), "expected"),
    ("ema.decay", lambda c: c.update(ema={"decay": 1.5}), "[0, 1)"),
    ("eval.every", lambda c: (c["data"].pop("val"), c.update(eval={"every": 5})), "validation split"),
    ("eval.metrics", lambda c: c.update(eval={"metrics": ["psnr"]}), "unknown metric"),
    ("data.kind", lambda c: c["data"].update(kind="zarr"), "registered kinds"),
    ("data.sise", lambda c: c["data"].update(sise=3), "unknown option"),
    ("data.path", lambda c: c.update(data={"kind": "hdf5", "fields": ["a"]}), "missing"),
    ("data.path", lambda c: c.update(data={"kind": "hdf5", "path": "d.h5", "fields": ["a"]}), "no such hdf5 file"),
]


@pytest.mark.parametrize("key, mutate, message", CONFIG_ERRORS, ids=[c[0] for c in CONFIG_ERRORS])
def test_config_errors_exit_2_naming_the_key(tmp_path, capsys, key, mutate, message):
    cfg = base_config()
    mutate(cfg)
    path = write_toml(tmp_path / "bad.toml", cfg)
    assert main(["train", str(path), "--run-dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}: {key}: ") and message in err, err
    assert "Traceback" not in err
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------------------- checkpoints
@pytest.mark.parametrize("broken", ["torch.save", "weights"])
def test_failed_save_leaves_no_half_written_checkpoint(tmp_path, monkeypatch, broken):
    cfg = parse_config(base_config(steps=4))
    trainer = Trainer(cfg, run_dir=tmp_path / "run")
    batches = iter(trainer._train_loader())

    def fail(obj, f, *args, **kwargs):
        Path(f).write_bytes(b"half a file")
        raise OSError(28, "No space left on device")

    def attempt():
        with monkeypatch.context() as m:
            if broken == "torch.save":
                m.setattr(checkpoint_mod.torch, "save", fail)
            else:
                m.setattr(checkpoint_mod.registry, "write_weights", fail)
            with pytest.raises(OSError, match="No space"):
                trainer.save_checkpoint()

    trainer.train_step(next(batches))
    attempt()  # the first save fails: no checkpoint at all
    assert list((tmp_path / "run").iterdir()) == [] and find_checkpoint(tmp_path / "run") is None
    trainer.save_checkpoint()
    trainer.train_step(next(batches))
    attempt()  # a later save fails: the previous checkpoint is intact
    assert [p.name for p in (tmp_path / "run").iterdir()] == ["checkpoint"]
    assert read_state(find_checkpoint(tmp_path / "run"))["step"] == 1
    models.load(tmp_path / "run" / "checkpoint")


def test_resume_after_sigkill_matches_uninterrupted_run(tmp_path):
    cfg = base_config(steps=40, checkpoint_every=10, max_grad_norm=1.0)
    cfg["loss"] = {"name": "slow-noisy-mse", "delay": 0.02, "jitter": 0.05}
    cfg["schedule"] = {"name": "cosine", "warmup_steps": 5}
    cfg["ema"] = {"decay": 0.9}
    cfg["eval"] = {"every": 10}
    path = write_toml(tmp_path / "resume.toml", cfg)
    run = tmp_path / "killed"
    code = SLOW_LOSS + "\nimport sys\nfrom sciml.cli import main\nsys.exit(main(sys.argv[1:]))\n"
    proc = subprocess.Popen([sys.executable, "-c", code, "train", str(path), "--run-dir", str(run)],
                            cwd=tmp_path, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            if find_checkpoint(run) is not None and (run / "metrics.jsonl").is_file():
                records = read_metrics(run)
                if records and records[-1]["step"] >= 13:
                    os.kill(proc.pid, signal.SIGKILL)
                    break
            time.sleep(0.005)
    finally:
        proc.wait(timeout=30)
        out, err = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, err.decode()[-2000:])
    saved = read_state(find_checkpoint(run))["step"]
    killed_at = read_metrics(run)[-1]["step"]
    assert 10 <= saved < killed_at < 40, (saved, killed_at)

    reference = train(path, run_dir=tmp_path / "reference")
    resumed = train(path, run_dir=run, resume=True)
    assert resumed["resumed_from"] == saved and resumed["step"] == 40
    ours, ref = losses_of(run), losses_of(tmp_path / "reference")
    assert sorted(ours) == sorted(ref) == list(range(1, 41))
    for step in range(saved + 1, 41):
        assert ours[step] == pytest.approx(ref[step], rel=1e-6, abs=1e-12), step
    val = {r["step"]: r["val_loss"] for r in read_metrics(run) if "val_loss" in r}
    val_ref = {r["step"]: r["val_loss"] for r in read_metrics(tmp_path / "reference") if "val_loss" in r}
    assert val == pytest.approx(val_ref, rel=1e-6) and sorted(val) == [10, 20, 30, 40]
    a, b = models.load(run / "model"), models.load(tmp_path / "reference" / "model")  # EMA weights
    for (k, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-9, msg=k)
    assert reference["val_loss"] == pytest.approx(resumed["val_loss"], rel=1e-6)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_two_gloo_processes_match_one_process(tmp_path):
    cfg = base_config(steps=6, batch_size=16, dtype="float64", checkpoint_every=3)
    cfg["data"]["size"] = 40  # not a multiple of the batch: batches cross epoch boundaries
    cfg["eval"] = {"every": 3, "batch_size": 7}
    cfg["ema"] = {"decay": 0.5}
    path = write_toml(tmp_path / "ddp.toml", cfg)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2",
           "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
           "-m", "sciml", "train", str(path), "--run-dir", str(tmp_path / "ddp")]
    proc = subprocess.run(cmd, cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("ddp.toml: step 6") == 1  # rank 0 alone reports
    train(path, run_dir=tmp_path / "single")
    ddp, single = read_metrics(tmp_path / "ddp"), read_metrics(tmp_path / "single")
    assert [r["step"] for r in ddp] == [1, 2, 3, 4, 5, 6]  # rank 0 alone writes metrics
    for a, b in zip(ddp, single):
        # float64; the only difference is the order of the gradient/loss reductions (~1e-16 relative)
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-10), a["step"]
        if "val_loss" in b:
            assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-10)
    state = read_state(find_checkpoint(tmp_path / "ddp"))
    assert state["world_size"] == 2 and len(state["rng"]) == 2 and state["step"] == 6
    a, b = models.load(tmp_path / "ddp" / "checkpoint"), models.load(tmp_path / "single" / "checkpoint")
    for p, q in zip(a.parameters(), b.parameters()):
        assert p.dtype == torch.float64
        torch.testing.assert_close(p, q, rtol=1e-10, atol=1e-12)


def test_cnn2d_takes_scalar_fields_without_channel_axis():
    from sciml.models import build_model

    net = build_model("cnn2d", in_channels=1, out_channels=1, width=4, depth=2)
    x = torch.randn(3, 8, 8)
    y = net(x)
    assert y.shape == (3, 8, 8)
    torch.testing.assert_close(y, net(x.unsqueeze(1)).squeeze(1))


def test_init_starts_from_saved_weights_and_rejects_another_model(tmp_path):
    from sciml._toml import ConfigError

    net = models.build_model("mlp", in_features=8, out_features=4, hidden=32, depth=2)
    models.save(net, tmp_path / "start")
    trainer = Trainer(parse_config(base_config(steps=1, init=str(tmp_path / "start"))))
    for a, b in zip(trainer.model.state_dict().values(), net.state_dict().values()):
        torch.testing.assert_close(a, b)
    other = models.build_model("mlp", in_features=8, out_features=4, hidden=16, depth=2)
    models.save(other, tmp_path / "other")
    with pytest.raises(ConfigError, match="train.init"):
        Trainer(parse_config(base_config(steps=1, init=str(tmp_path / "other"))))
    with pytest.raises(ConfigError, match="train.init"):
        parse_config(base_config(steps=1, init=str(tmp_path / "missing")))


def test_init_from_a_diffusers_pipeline_directory(tmp_path):
    """`init` also takes the layout the model class itself loads: a "unet2d" prior shipped as a diffusers
    DDPMPipeline directory starts the run with exactly its weights; another architecture is an error."""
    from sciml._toml import ConfigError
    from sciml.models.unet import UNet2DPrior

    tiny = {"sample_size": 16, "block_out_channels": [8, 16], "norm_num_groups": 4}
    torch.manual_seed(0)
    UNet2DPrior(**tiny).save_pretrained(tmp_path / "pipeline")
    shipped = UNet2DPrior.from_pretrained(tmp_path / "pipeline")
    cfg = {**base_config(steps=1, init=str(tmp_path / "pipeline")), "model": {"name": "unet2d", **tiny}}
    torch.manual_seed(1)
    trainer = Trainer(parse_config(cfg))
    mine, theirs = trainer.model.state_dict(), shipped.state_dict()
    assert mine.keys() == theirs.keys()
    for k in mine:
        torch.testing.assert_close(mine[k], theirs[k], rtol=0, atol=0)
    wider = {**cfg, "model": {"name": "unet2d", **tiny, "block_out_channels": [8, 32]}}
    with pytest.raises(ConfigError, match="train.init.*does not match"):
        Trainer(parse_config(wider))


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("*.toml")), ids=lambda p: p.name)
def test_shipped_training_configs_are_valid(path):
    from sciml._toml import read_toml

    file, data = read_toml(path)
    init = data.get("train", {}).get("init")
    if init is not None and "out/" in init:  # the previous stage's output: exists only after that run
        del data["train"]["init"]
    cfg = parse_config(data, file=file)
    assert cfg.steps >= 1 and cfg.batch_size >= 1 and cfg.model.name
    if init is not None and "datasets/" in init:  # a shipped checkpoint (checked by the loader too)
        assert (cfg.init / "model.safetensors").is_file() or (cfg.init / "model_index.json").is_file(), cfg.init


# ------------------------------------------------------------------- precise BatchNorm
def test_recalibrate_batchnorm_averages_the_batch_statistics():
    from sciml.training import recalibrate_batchnorm

    torch.manual_seed(0)
    bn = nn.BatchNorm1d(3)
    bn.running_mean.fill_(5.0)
    batches = [torch.randn(16, 3) * (1 + i) + i for i in range(4)]
    net = nn.Sequential(bn).eval()
    assert recalibrate_batchnorm(net, batches) == 4
    torch.testing.assert_close(bn.running_mean, torch.stack([b.mean(0) for b in batches]).mean(0))
    torch.testing.assert_close(bn.running_var, torch.stack([b.var(0) for b in batches]).mean(0))
    assert bn.momentum == 0.1 and not net.training  # restored
    # max_batches; no batches at all leaves the statistics as they were; no BatchNorm: nothing to do
    assert recalibrate_batchnorm(net, batches, max_batches=2) == 2
    torch.testing.assert_close(bn.running_mean, torch.stack([b.mean(0) for b in batches[:2]]).mean(0))
    before = bn.running_var.clone()
    assert recalibrate_batchnorm(net, []) == 0
    torch.testing.assert_close(bn.running_var, before)
    assert recalibrate_batchnorm(nn.Linear(3, 3), batches) == 0


def test_trainer_precise_bn_recomputes_statistics_evaluates_and_logs(tmp_path):
    cfg = parse_config(base_config(steps=20, precise_bn=5, log_every=10) | {"eval": {"every": 10, "metrics": ["loss"]}})
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 4))
    trainer = Trainer(cfg, model=model, run_dir=tmp_path / "run")
    out = trainer.fit()
    bn = model[1]
    assert int(bn.num_batches_tracked) == 5 and bn.momentum == 0.1  # the average of exactly 5 batches
    records = read_metrics(tmp_path / "run" / "metrics.jsonl")
    assert records[-1]["precise_bn"] == 5 and records[-1]["step"] == 20 and "val_loss" in records[-1]
    assert out["val_loss"] == records[-1]["val_loss"]
    with pytest.raises(Exception, match="precise_bn"):
        parse_config(base_config(precise_bn=-1))
