"""LSM vs FNO under the same wall-time budget: the time-to-accuracy curves, Darcy or Navier-Stokes.

    python benchmarks/lsm_vs_fno.py [--problem darcy|ns] [--data FILE] [--minutes 8] [--threads 2]
                                    [--lsm-width 32] [--batch 20] [--plot benchmarks/lsm_vs_fno_<problem>.png]

Darcy (85 x 85): our Darcy generator (the FNO/LSM distribution, `sciml data generate
datasets/darcy_r85.toml --num 256 --out out/datasets/darcy_r85_256.h5`); the first 200 samples train,
the last 56 test. Both models see the coefficient normalised by the train split's mean/std and predict
the physical solution; loss and metric: relative L2 (the papers'). FNO: modes 12, width 32, padding 9,
lr 1e-3; LSM: patch 6, padding 11, lr 5e-4 (its Darcy script).

Navier-Stokes (nu = 1e-5, 64 x 64, the papers' autoregressive task): `sciml data generate
datasets/ns_v1e-5.toml --num 240 --out out/datasets/ns_v1e-5_n240.h5`; the first 200 trajectories
train, the last 40 test. The vorticity at t = 1..10 in, one state per model call, rolled out to
t = 11..20 with gradients through the rollout; loss: the mean of the per-step relative L2
(`rollout-relative-l2`); metric: the relative L2 of the whole 10-step rollout (`rollout-full-l2`, the
papers'). FNO: the FNO paper's 2-D recurrent model (modes 12, width 20, no padding), lr 1e-3; LSM: patch
4, no padding, instance norm, lr 5e-4 (its NS script).

Both: Adam with weight decay 1e-4, batches of `--batch` drawn with a fixed seed; each model trains for
the same wall time and the test error is recorded every `--eval-every` steps. A CPU-sized comparison
(200 samples, minutes), not the papers' setting (1000 samples, 500 epochs); the papers' numbers need GPU
runs of configs/lsm-darcy.toml / fno-darcy.toml / lsm-ns.toml / fno-ns.toml.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import h5py
import torch

from sciml.models import FNO2d, LSM
from sciml.training.losses import relative_l2, rollout_full_l2, rollout_relative_l2

ROOT = Path(__file__).resolve().parents[1]
DATA = {"darcy": ROOT / "out" / "datasets" / "darcy_r85_256.h5", "ns": ROOT / "out" / "datasets" / "ns_v1e-5_n240.h5"}


def darcy(path: Path, lsm_width: int, ntrain: int) -> tuple[dict, dict, object, object, str]:
    with h5py.File(path, "r") as f:
        a = torch.from_numpy(f["coeff"][:]).float()
        u = torch.from_numpy(f["sol"][:]).float()
    mean, std = a[:ntrain].mean(), a[:ntrain].std()
    x = ((a - mean) / std)[:, None]
    data = {"xtr": x[:ntrain], "ytr": u[:ntrain, None], "xte": x[ntrain:], "yte": u[ntrain:, None]}
    models = {"FNO": (FNO2d(modes=12, width=32, layers=4, padding=9), 1e-3),
              "LSM": (LSM(width=lsm_width, patch_size=6, padding=11), 5e-4)}

    def loss(model, x, y):
        return relative_l2(model(x), y)

    return data, models, loss, loss, f"Darcy 85², {ntrain} training samples (CPU)"


def navier_stokes(path: Path, lsm_width: int, ntrain: int) -> tuple[dict, dict, object, object, str]:
    with h5py.File(path, "r") as f:
        u = torch.from_numpy(f["u"][:]).float().movedim(-1, 1)  # (N, T, 64, 64)
    if u.shape[1] < 20:
        raise SystemExit(f"{path}: expected 20 states per trajectory, got u of shape {tuple(u.shape)}")
    data = {"xtr": u[:ntrain, :10], "ytr": u[:ntrain, 10:20], "xte": u[ntrain:, :10], "yte": u[ntrain:, 10:20]}
    models = {"FNO": (FNO2d(in_channels=10, modes=12, width=20, layers=4, padding=0), 1e-3),
              "LSM": (LSM(in_channels=10, width=lsm_width, patch_size=4, padding=0, norm="instance"), 5e-4)}
    return (data, models, lambda m, x, y: rollout_relative_l2(m, {"x": x, "y": y}),
            lambda m, x, y: rollout_full_l2(m, {"x": x, "y": y}), "Navier-Stokes ν = 1e-5, 64², 10 → 10 (CPU)")


PROBLEMS = {"darcy": darcy, "ns": navier_stokes}


def train(name: str, model: torch.nn.Module, lr: float, data: dict, loss_fn, metric_fn, minutes: float,
          eval_every: int, batch: int) -> list:
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=1e-4)
    g = torch.Generator().manual_seed(0)
    xtr, ytr, xte, yte = data["xtr"], data["ytr"], data["xte"], data["yte"]
    curve, step, start = [], 0, time.perf_counter()
    while time.perf_counter() - start < 60 * minutes:
        model.train()
        idx = torch.randint(0, len(xtr), (batch,), generator=g)
        loss = loss_fn(model, xtr[idx], ytr[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        if step % eval_every == 0:
            model.eval()
            with torch.no_grad():
                err = float(sum(metric_fn(model, xte[i:i + 20], yte[i:i + 20]) * len(xte[i:i + 20])
                                for i in range(0, len(xte), 20)) / len(xte))
            elapsed = time.perf_counter() - start
            curve.append((elapsed, step, err))
            print(f"  {name:<4} step {step:5d}  {elapsed:6.0f} s  train {loss.item():.4f}  test rel. L2 {err:.4f}",
                  flush=True)
    return curve


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--problem", choices=sorted(PROBLEMS), default="darcy")
    ap.add_argument("--data", default=None, help="data file (default out/datasets/darcy_r85_256.h5 or ns_v1e-5_n240.h5)")
    ap.add_argument("--minutes", type=float, default=8.0, help="wall time per model")
    ap.add_argument("--eval-every", type=int, default=25)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--lsm-width", type=int, default=32)
    ap.add_argument("--batch", type=int, default=20)
    ap.add_argument("--train", type=int, default=200, help="the first TRAIN samples train, the rest test")
    ap.add_argument("--plot", default=None, help="PNG of the curves (default benchmarks/lsm_vs_fno_<problem>.png)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    path = Path(args.data) if args.data else DATA[args.problem]
    if not path.is_file():
        raise SystemExit(f"{path}: no such data file; see this script's docstring for the command that makes it")
    torch.manual_seed(0)
    data, models, loss_fn, metric_fn, title = PROBLEMS[args.problem](path, args.lsm_width, args.train)
    print(f"{title}: {len(data['xtr'])} train, {len(data['xte'])} test samples, batch {args.batch}", flush=True)
    curves = {}
    for name, (model, lr) in models.items():
        n = sum(p.numel() for p in model.parameters())
        print(f"{name}: {n:,} parameters, {args.minutes:g} min", flush=True)
        curves[name] = train(name, model, lr, data, loss_fn, metric_fn, args.minutes, args.eval_every, args.batch)
    print("\n| model | parameters | steps | final test rel. L2 | best test rel. L2 |")
    print("|---|---|---|---|---|")
    for name, curve in curves.items():
        n = sum(p.numel() for p in models[name][0].parameters())
        if curve:
            print(f"| {name} | {n:,} | {curve[-1][1]} | {curve[-1][2]:.4f} | {min(c[2] for c in curve):.4f} |")
    plot = Path(args.plot) if args.plot else ROOT / "benchmarks" / f"lsm_vs_fno_{args.problem}.png"
    from sciml.plots import save_figure
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for name, curve in curves.items():
        ax.semilogy([c[0] for c in curve], [c[2] for c in curve], label=name)
    ax.set_xlabel("wall time (s)")
    ax.set_ylabel("test relative L2")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    save_figure(fig, plot, dpi=100)
    print(f"wrote {plot}")
    plot.with_suffix(".json").write_text(json.dumps(curves))
    return curves


if __name__ == "__main__":
    main()
