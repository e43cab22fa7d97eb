"""LSM vs FNO on Darcy flow (85 x 85) under the same wall-time budget: the time-to-accuracy curves.

    python benchmarks/lsm_vs_fno_darcy.py [--data out/datasets/darcy_r85_256.h5] [--minutes 8] [--threads 2]
                                          [--lsm-width 32] [--plot benchmarks/lsm_vs_fno_darcy.png]

Data: our Darcy generator (the FNO/LSM distribution, `sciml data generate datasets/darcy_r85.toml --num 256
--out out/datasets/darcy_r85_256.h5`); the first 200 samples train, the last 56 test. Both models see the
coefficient normalised by the train split's mean/std and predict the physical solution; loss and metric are
the relative L2 error (the papers'). Adam, lr 1e-3 (FNO) / 5e-4 (LSM, its Darcy script), batch 20, weight
decay 1e-4; each model trains for the same wall time and the test error is recorded every `--eval-every`
steps. This is a CPU-sized comparison (200 samples, minutes), not the papers' setting (1000 samples,
500 epochs): the papers' numbers (LSM 0.0065, FNO 0.0108) need a GPU run of configs/lsm-darcy.toml.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import h5py
import torch

from sciml.models import LSM, FNO2d

ROOT = Path(__file__).resolve().parents[1]


def rel_l2(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    dims = tuple(range(1, pred.ndim))
    return (torch.linalg.vector_norm(pred - target, dim=dims) / torch.linalg.vector_norm(target, dim=dims)).mean()


def train(name: str, model: torch.nn.Module, lr: float, data: dict, minutes: float, eval_every: int) -> list:
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=1e-4)
    g = torch.Generator().manual_seed(0)
    xtr, ytr, xte, yte = data["xtr"], data["ytr"], data["xte"], data["yte"]
    curve, step, start = [], 0, time.perf_counter()
    while time.perf_counter() - start < 60 * minutes:
        model.train()
        idx = torch.randint(0, len(xtr), (20,), generator=g)
        loss = rel_l2(model(xtr[idx]), ytr[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        if step % eval_every == 0:
            model.eval()
            with torch.no_grad():
                err = float(sum(rel_l2(model(xte[i:i + 28]), yte[i:i + 28]) * len(xte[i:i + 28])
                                for i in range(0, len(xte), 28)) / len(xte))
            elapsed = time.perf_counter() - start
            curve.append((elapsed, step, err))
            print(f"  {name:<4} step {step:5d}  {elapsed:6.0f} s  train {float(loss):.4f}  test rel L2 {err:.4f}", flush=True)
    return curve


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT / "out" / "datasets" / "darcy_r85_256.h5"))
    ap.add_argument("--minutes", type=float, default=8.0, help="wall time per model")
    ap.add_argument("--eval-every", type=int, default=25)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--lsm-width", type=int, default=32)
    ap.add_argument("--plot", default=str(ROOT / "benchmarks" / "lsm_vs_fno_darcy.png"))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    with h5py.File(args.data, "r") as f:
        a = torch.from_numpy(f["coeff"][:]).float()
        u = torch.from_numpy(f["sol"][:]).float()
    mean, std = a[:200].mean(), a[:200].std()
    x = ((a - mean) / std)[:, None]
    data = {"xtr": x[:200], "ytr": u[:200, None], "xte": x[200:], "yte": u[200:, None]}
    torch.manual_seed(0)
    models = {"FNO": (FNO2d(modes=12, width=32, layers=4, padding=9), 1e-3),
              "LSM": (LSM(width=args.lsm_width, patch_size=6, padding=11), 5e-4)}
    curves = {}
    for name, (model, lr) in models.items():
        n = sum(p.numel() for p in model.parameters())
        print(f"{name}: {n:,} parameters, {args.minutes:g} min", flush=True)
        curves[name] = train(name, model, lr, data, args.minutes, args.eval_every)
    print("\n| model | parameters | steps | final test rel. L2 | best test rel. L2 |")
    print("|---|---|---|---|---|")
    for name, curve in curves.items():
        n = sum(p.numel() for p in models[name][0].parameters())
        print(f"| {name} | {n:,} | {curve[-1][1]} | {curve[-1][2]:.4f} | {min(c[2] for c in curve):.4f} |")
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(5, 3.5))
        for name, curve in curves.items():
            ax.semilogy([c[0] for c in curve], [c[2] for c in curve], label=name)
        ax.set_xlabel("wall time (s)")
        ax.set_ylabel("test relative L2")
        ax.set_title("Darcy 85², 200 training samples (CPU)")
        ax.legend()
        fig.tight_layout()
        fig.savefig(args.plot, dpi=100)
        plt.close(fig)
        print(f"wrote {args.plot}")
    Path(args.plot).with_suffix(".json").write_text(json.dumps(curves))
    return curves


if __name__ == "__main__":
    main()
