"""Poseidon's sample-efficiency effect at toy scale: a pretrained scOT fine-tuned on a new task beats the same
scOT trained from scratch on equally few downstream trajectories (Herde et al., NeurIPS 2024, arXiv 2405.19101).

1. Data (sciml's `navier-stokes` generator, cached under OUT/data/; recipes written next to the files):
   pretraining = two families of 2-D vorticity Navier-Stokes on the torus, nu = 1e-3:
   FNO's forced flow (f = 0.1 (sin 2pi(x+y) + cos 2pi(x+y)), GRF initial vorticity) and unforced, decaying
   flow from 5x stronger initial vorticity; downstream = a different task: nu = 1e-4 with Kolmogorov
   forcing f = 0.1 sin(4 pi y). All at 32 x 32, snapshots every T/K (K = 10 by default).
2. Pretraining: a tiny scOT (image 32, patch 2, embed_dim 32, depths [2, 2, 2], window 8, lead-time
   conditioned) on all2all pairs (dataset kind "scot-all2all", loss "scot": relative L1), with sciml's
   `Trainer`; saved in the official layout to OUT/pretrained.
3. For each number of downstream training trajectories n: fine-tune the pretrained model (AdamW over
   `ScOT.param_groups`: backbone at --lr-finetune, embedding/recovery and time embedding at
   --lr-embedding) and train the same architecture from scratch (--lr-scratch), same steps and batch.
4. Metric: the median relative L1 error (%) of the direct prediction u(0) -> u(T) (lead time 1) on held-out
   downstream trajectories. Prints a table, writes OUT/results.json and OUT/sample_efficiency.png, the
   fine-tuned model of the largest n to OUT/finetuned (official layout) and one test trajectory's first and
   last snapshots as OUT/test_initial.npy, OUT/test_final.npy (used by solvers/poseidon-finetune.toml).

    OMP_NUM_THREADS=1 python examples/poseidon_finetune.py              # ~15-20 min on one CPU thread
    OMP_NUM_THREADS=1 python examples/poseidon_finetune.py --quick      # ~2-3 min, smaller everything
    sciml solve solvers/poseidon-finetune.toml                          # then: the fine-tuned model as a solver
"""
from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sciml.models import build_model
from sciml.models.scot import ScOT
from sciml.models.scot_train import (All2AllTrajectories, evaluate_median_rel_l1, finetune_model, read_trajectories,
                                     use_param_groups)
from sciml.plots import save_figure
from sciml.training import Trainer

# sizes: default (the experiment), quick (a check in a few minutes), tiny (the unit test, seconds)
PRESETS: dict[str, dict[str, Any]] = {
    "default": dict(resolution=32, horizon=5.0, snapshots=10, dt=2e-3, pretrain_trajectories=128,
                    decaying_trajectories=64, downstream_train=64, test=32, samples=[4, 16, 64],
                    pretrain_steps=1500, finetune_steps=250, batch_size=16, embed_dim=32, depths=[2, 2, 2],
                    num_heads=[2, 4, 8], window_size=8, patch_size=2),
    "quick": dict(resolution=32, horizon=2.0, snapshots=4, dt=2e-3, pretrain_trajectories=32,
                  decaying_trajectories=16, downstream_train=8, test=16, samples=[2, 8],
                  pretrain_steps=200, finetune_steps=60, batch_size=16, embed_dim=16, depths=[1, 1, 1],
                  num_heads=[2, 2, 4], window_size=8, patch_size=2),
    "tiny": dict(resolution=16, horizon=0.2, snapshots=2, dt=1e-2, pretrain_trajectories=4,
                 decaying_trajectories=2, downstream_train=2, test=2, samples=[1, 2],
                 pretrain_steps=3, finetune_steps=2, batch_size=4, embed_dim=8, depths=[1, 1],
                 num_heads=[2, 2], window_size=4, patch_size=2),
}
FNO_SIGMA = 7.0 ** 1.5  # the FNO initial-vorticity GRF amplitude (tau = 7, alpha = 2.5)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="out/poseidon_finetune", help="output folder (data cached in OUT/data)")
    p.add_argument("--quick", action="store_true", help="small sizes: a check in ~2-3 minutes")
    p.add_argument("--tiny", action="store_true", help="minimal sizes (seconds; for tests)")
    p.add_argument("--samples", type=int, nargs="+", help="downstream training trajectories per run")
    p.add_argument("--pretrain-trajectories", type=int, help="forced NS trajectories for pretraining")
    p.add_argument("--decaying-trajectories", type=int, help="unforced NS trajectories for pretraining (0: none)")
    p.add_argument("--downstream-train", type=int, help="downstream trajectories generated for training")
    p.add_argument("--test", type=int, help="held-out downstream trajectories")
    p.add_argument("--pretrain-steps", type=int)
    p.add_argument("--finetune-steps", type=int, help="steps of each downstream run (fine-tuned and scratch)")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr-pretrain", type=float, default=1e-3)
    p.add_argument("--lr-scratch", type=float, default=1e-3)
    p.add_argument("--lr-finetune", type=float, default=3e-4, help="backbone learning rate when fine-tuning")
    p.add_argument("--lr-embedding", type=float, default=1e-3,
                   help="embedding/recovery and time-embedding learning rate when fine-tuning")
    p.add_argument("--replace-embedding-recovery", action="store_true",
                   help="re-initialise embedding and recovery before fine-tuning (the paper does for new channels)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--no-plot", action="store_true")
    args = p.parse_args(argv)
    preset = PRESETS["tiny" if args.tiny else "quick" if args.quick else "default"]
    for key, value in preset.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    if max(args.samples) > args.downstream_train:
        p.error(f"--samples: at most --downstream-train = {args.downstream_train} trajectories, got {max(args.samples)}")
    return args


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ------------------------------------------------------------------------------------------- data
def recipe_text(args: argparse.Namespace, num: int, seed: int, viscosity: float, forcing: str, sigma: float) -> str:
    return (f"# written by examples/poseidon_finetune.py\nnum = {num}\nseed = {seed}\nout = \"unused.h5\"\n"
            f"block = 32\ndtype = \"float32\"\n\n[generator]\nname = \"navier-stokes\"\n"
            f"resolution = {args.resolution}\nviscosity = {viscosity!r}\nT = {args.horizon!r}\ndt = {args.dt!r}\n"
            f"record_steps = {args.snapshots}\nforcing = \"{forcing}\"\nsigma = {sigma!r}\nprecision = \"float32\"\n")


def make_data(args: argparse.Namespace, out: Path) -> dict[str, Path]:
    """Generate (or reuse) the HDF5 files: {"forced", "decaying", "downstream"} -> path."""
    from sciml.data.generators import generate, load_recipe

    out.mkdir(parents=True, exist_ok=True)
    tag = f"r{args.resolution}_T{args.horizon:g}_K{args.snapshots}"
    specs = {
        "forced": (args.pretrain_trajectories, 0, 1e-3, "fno", FNO_SIGMA),
        "decaying": (args.decaying_trajectories, 1, 1e-3, "none", 5 * FNO_SIGMA),
        "downstream": (args.downstream_train + args.test, 2, 1e-4, "0.1*sin(4*pi*y)", FNO_SIGMA),
    }
    files = {}
    for name, (num, seed, visc, forcing, sigma) in specs.items():
        if num == 0:
            continue
        toml = out / f"{name}_{tag}.toml"
        toml.write_text(recipe_text(args, num, seed, visc, forcing, sigma))
        t0 = time.perf_counter()
        result = generate(load_recipe(toml, out=out / f"{name}_{tag}.h5"), progress=False, echo=log)
        log(f"data {name}: {num} trajectories (nu = {visc:g}, forcing {forcing}) {result.status} in "
            f"{time.perf_counter() - t0:.1f} s -> {result.path}")
        files[name] = result.path
    return files


# ------------------------------------------------------------------------------------------- training
def scot_hparams(args: argparse.Namespace) -> dict[str, Any]:
    """The `[model] name = "scot"` hyper-parameters of the experiment's tiny scOT."""
    L = len(args.depths)
    return dict(image_size=args.resolution, patch_size=args.patch_size, num_channels=1, num_out_channels=1,
                embed_dim=args.embed_dim, depths=list(args.depths), num_heads=list(args.num_heads),
                skip_connections=[1] * (L - 1) + [0], window_size=args.window_size, use_conditioning=True,
                drop_path_rate=0.0)


class ProgressLoss:
    """The "scot" loss, printing the running mean every `every` calls (the trainer's own log is a file)."""

    def __init__(self, label: str, total: int, every: int):
        from sciml.training.losses import make_loss

        self.fn, self.label, self.total, self.every = make_loss("scot"), label, total, max(1, every)
        self.calls, self.acc, self.t0 = 0, 0.0, time.perf_counter()

    def __call__(self, model: torch.nn.Module, batch: Any) -> torch.Tensor:
        loss = self.fn(model, batch)
        self.calls += 1
        self.acc += float(loss.detach())
        if self.calls % self.every == 0 or self.calls == self.total:
            n = self.every if self.calls % self.every == 0 else self.calls % self.every
            log(f"  {self.label}: step {self.calls}/{self.total}, loss (rel. L1) {self.acc / n:.4f}, "
                f"{time.perf_counter() - self.t0:.0f} s")
            self.acc = 0.0
        return loss


def train_config(args: argparse.Namespace, steps: int, lr: float, seed: int) -> dict[str, Any]:
    warmup = min(max(steps // 10, 1), steps - 1) if steps > 1 else 0
    return {"train": {"steps": steps, "batch_size": args.batch_size, "seed": seed, "log_every": max(steps, 1),
                      "device": "cpu", "max_grad_norm": 5.0},
            "optimizer": {"name": "adamw", "lr": lr, "weight_decay": 1e-4},
            "schedule": {"name": "cosine", "warmup_steps": warmup, "min_lr": lr * 0.01}}


def train(args: argparse.Namespace, model: ScOT, data: All2AllTrajectories, steps: int, lr: float, label: str,
          seed: int, groups: dict[str, float] | None = None) -> dict[str, Any]:
    """`steps` steps of sciml's Trainer on the all2all pairs; `groups`: fine-tuning rates (`use_param_groups`)."""
    loss = ProgressLoss(label, steps, max(steps // 5, 1))
    trainer = Trainer(train_config(args, steps, lr, seed), model=model, train_data=data, loss=loss, progress=False)
    if groups is not None:
        use_param_groups(trainer, lr=lr, **groups)
    return trainer.fit()


def final_time_error(model: ScOT, test: torch.Tensor) -> float:
    """Median relative L1 (%) of u(0) -> u(T) (lead time 1, one model call) on `test` `(N, K + 1, C, H, W)`."""
    return evaluate_median_rel_l1(model, test[:, 0], test[:, -1], 1.0)


def all_leads_error(model: ScOT, test: torch.Tensor) -> float:
    """Mean over k = 1..K of the median relative L1 (%) of u(0) -> u(t_k) (lead time k / K, direct)."""
    K = test.shape[1] - 1
    return float(np.mean([evaluate_median_rel_l1(model, test[:, 0], test[:, k], k / K) for k in range(1, K + 1)]))


# ------------------------------------------------------------------------------------------- experiment
def run(args: argparse.Namespace) -> dict[str, Any]:
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    begin = time.perf_counter()
    files = make_data(args, out / "data")
    t_data = time.perf_counter() - begin

    # 1. pretraining on the two NS families (all2all pairs of every trajectory)
    pre = [read_trajectories(files[k]) for k in ("forced", "decaying") if k in files]
    pre_data = All2AllTrajectories(torch.cat(pre))
    torch.manual_seed(args.seed)
    model = build_model("scot", **scot_hparams(args))
    n_params = sum(p.numel() for p in model.parameters())
    log(f"pretraining a scOT ({n_params:,} parameters) on {pre_data.num_trajectories} trajectories = "
        f"{len(pre_data)} all2all pairs, {args.pretrain_steps} steps of {args.batch_size}")
    t0 = time.perf_counter()
    summary = train(args, model, pre_data, args.pretrain_steps, args.lr_pretrain, "pretrain", args.seed)
    t_pre = time.perf_counter() - t0
    pre_dir = out / "pretrained"
    shutil.rmtree(pre_dir, ignore_errors=True)
    model.eval().save_pretrained(pre_dir)

    # 2. downstream: fine-tuned vs scratch at each sample count
    down = read_trajectories(files["downstream"])
    train_u, test_u = down[:args.downstream_train], down[args.downstream_train:]
    identity = evaluate_median_rel_l1(lambda x, t: x, test_u[:, 0], test_u[:, -1], 1.0)
    zero_shot = final_time_error(model, test_u)
    identity_all = all_leads_error(lambda x, t: x, test_u)
    zero_shot_all = all_leads_error(model, test_u)
    log(f"downstream test: {test_u.shape[0]} trajectories; baselines: persistence u(T) = u(0) {identity:.1f} %, "
        f"pretrained model without fine-tuning {zero_shot:.1f} %")
    table, t_down = [], time.perf_counter()
    groups = {"lr_embedding_recovery": args.lr_embedding, "lr_time_embedding": args.lr_embedding}
    for n in args.samples:
        data = All2AllTrajectories(train_u, num_trajectories=n)
        row: dict[str, Any] = {"samples": n, "pairs": len(data)}
        for kind in ("scratch", "finetuned"):
            torch.manual_seed(args.seed + 1)
            if kind == "scratch":
                net = build_model("scot", **scot_hparams(args)).train()
                s = train(args, net, data, args.finetune_steps, args.lr_scratch, f"n={n} scratch", args.seed + 1)
            else:
                net = finetune_model(pre_dir, replace_embedding_recovery=args.replace_embedding_recovery)
                s = train(args, net, data, args.finetune_steps, args.lr_finetune, f"n={n} fine-tune", args.seed + 1,
                          groups)
            row[kind] = final_time_error(net, test_u)
            row[f"{kind}_all_leads"] = all_leads_error(net, test_u)
            row[f"{kind}_train_loss"] = s["loss"]
        log(f"n = {n}: u(0) -> u(T): scratch {row['scratch']:.2f} %, fine-tuned {row['finetuned']:.2f} %; all lead "
            f"times: scratch {row['scratch_all_leads']:.2f} %, fine-tuned {row['finetuned_all_leads']:.2f} %")
        table.append(row)
    shutil.rmtree(out / "finetuned", ignore_errors=True)
    net.eval().save_pretrained(out / "finetuned")  # the last (largest n) fine-tuned model, for the solve config
    np.save(out / "test_initial.npy", test_u[0, 0, 0].double().numpy())
    np.save(out / "test_final.npy", test_u[0, -1, 0].double().numpy())

    results = {
        "experiment": "Poseidon sample efficiency (fine-tuned from pretraining vs from scratch)",
        "metric": "median relative L1 error (%) of u(0) -> u(T), direct, held-out downstream trajectories",
        "args": {k: v for k, v in vars(args).items()},
        "parameters": n_params,
        "pretrain": {"trajectories": pre_data.num_trajectories, "pairs": len(pre_data), "final_loss": summary["loss"],
                     "zero_shot_downstream": zero_shot},
        "metric_all_leads": "mean over k = 1..K of the median relative L1 (%) of u(0) -> u(t_k), direct",
        "baselines": {"persistence": identity, "pretrained_zero_shot": zero_shot, "persistence_all_leads": identity_all,
                      "pretrained_zero_shot_all_leads": zero_shot_all},
        "table": table,
        "seconds": {"data": round(t_data, 1), "pretrain": round(t_pre, 1),
                    "downstream": round(time.perf_counter() - t_down, 1), "total": round(time.perf_counter() - begin, 1)},
        "threads": torch.get_num_threads(),
    }
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    print_table(results)
    if not args.no_plot:
        plot(results, out / "sample_efficiency.png")
    return results


def print_table(results: dict[str, Any]) -> None:
    print(f"\n{results['metric']}")
    print(f"(all leads: {results['metric_all_leads']})")
    print(f"{'samples':>8} {'pairs':>7} {'scratch %':>10} {'fine-tuned %':>13} {'ratio':>6} {'scratch all':>12} "
          f"{'fine-tuned all':>15}")
    for r in results["table"]:
        ratio = r["scratch"] / r["finetuned"] if r["finetuned"] > 0 else math.inf
        print(f"{r['samples']:>8} {r['pairs']:>7} {r['scratch']:>10.2f} {r['finetuned']:>13.2f} {ratio:>6.2f} "
              f"{r['scratch_all_leads']:>12.2f} {r['finetuned_all_leads']:>15.2f}")
    b = results["baselines"]
    print(f"persistence {b['persistence']:.2f} % (all leads {b['persistence_all_leads']:.2f} %), pretrained zero-shot "
          f"{b['pretrained_zero_shot']:.2f} % (all leads {b['pretrained_zero_shot_all_leads']:.2f} %); "
          f"total {results['seconds']['total']:.0f} s on {results['threads']} thread(s)", flush=True)


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = [r["samples"] for r in results["table"]]
    fig, ax = plt.subplots(figsize=(5, 3.6))
    ax.plot(n, [r["scratch"] for r in results["table"]], "o-", label="scOT from scratch")
    ax.plot(n, [r["finetuned"] for r in results["table"]], "s-", label="fine-tuned from pretraining")
    ax.axhline(results["baselines"]["persistence"], color="grey", ls=":", lw=1, label="persistence u(T) = u(0)")
    ax.set_xscale("log", base=2)
    ax.set_xticks(n, [str(v) for v in n])
    ax.set_xlabel("downstream training trajectories")
    ax.set_ylabel("median relative L1 error (%)")
    ax.set_title("Poseidon sample efficiency (toy scale)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    log(f"plot -> {save_figure(fig, path, dpi=120)}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
