r"""Training scOT / Poseidon (arXiv 2405.19101) with sciml's trainer: all2all pairs, the loss, fine-tuning.

Registered on import:

* dataset kind ``"scot-all2all"`` (:class:`All2AllTrajectories`): trajectories ``u(t_0), ..., u(t_K)`` read
  from an HDF5 file; item ``k`` is one all2all pair (:func:`~sciml.models.scot_data.all2all_pairs`) of one
  trajectory, ``{"x": u(t_i), "y": u(t_j), "time": (j - i) / time_norm}`` with ``x``, ``y`` ``(C, H, W)``
  float32 and ``time`` a 0-d float32 tensor. The default layout is the one of sciml's ``navier-stokes``
  generator (``sciml data generate datasets/ns_v1e-3.toml``): ``u`` ``(N, H, W, T)`` with the snapshots
  ``t_1..t_T`` on the last axis and the initial field ``a`` ``(N, H, W)`` as snapshot 0.
* loss ``"scot"`` (objective): ``pred = model(batch["x"], batch["time"]).output`` against ``batch["y"]``,
  ``norm = "relative-l1"`` (default; mean over the batch of :math:`\|\hat u - u\|_1 / \|u\|_1` per sample and
  channel, the training counterpart of the paper's metric) or ``"model"`` (the model's own loss,
  :meth:`ScOT.loss`: L1/MSE, per channel group relative when ``channel_slice_list_normalized_loss`` is set).
* metric ``"scot-median-rel-l1"``: the median relative L1 error in percent of a batch (the trainer averages
  batches weighted by size, so over a split it is a mean of batch medians; use
  :func:`evaluate_median_rel_l1` for the exact median over a set).

A training config (``sciml train CONFIG``) then reads::

    [model]
    name = "scot"
    image_size = 32
    patch_size = 2
    num_channels = 1
    num_out_channels = 1
    embed_dim = 32
    depths = [2, 2, 2]
    num_heads = [2, 4, 8]
    skip_connections = [1, 1, 0]
    window_size = 8
    use_conditioning = true

    [data]
    kind = "scot-all2all"
    path = "../out/datasets/ns_v1e-3.h5"
    splits = { train = [0, 4000], val = [4000, 4500] }
    max_steps = 10
    val = true

    [loss]
    name = "scot"

Fine-tuning. The trainer's config has no "initial weights" key and builds one optimizer over all
parameters with one learning rate, but :class:`~sciml.training.Trainer` accepts a model object; so
:func:`finetune_model` loads a pretrained directory (official layout via :meth:`ScOT.from_pretrained`, or a
sciml model directory) with new channel counts and, optionally, re-initialised embedding/recovery, and
:func:`use_param_groups` swaps the trainer's optimizer for AdamW over :meth:`ScOT.param_groups` (the paper's
separate learning rates for the backbone, the embedding/recovery and the time embedding), keeping the
config's schedule::

    model = finetune_model("out/pretrained", replace_embedding_recovery=False)
    trainer = Trainer(cfg, model=model, train_data=ds, loss="scot")
    use_param_groups(trainer, lr=5e-5, lr_embedding_recovery=5e-4, lr_time_embedding=5e-4)
    trainer.fit()
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from ..data.registry import register_dataset
from .scot import ScOT
from .scot_data import all2all_pairs, median_relative_l1, relative_l1, rollout

__all__ = ["LAYOUTS", "All2AllTrajectories", "evaluate_median_rel_l1", "finetune_model", "read_trajectories",
           "scot_loss", "use_param_groups"]

#: axes of the stored trajectory array: N samples, T snapshots, H x W grid, C channels.
LAYOUTS = ("NHWT", "NTHW", "NTHWC", "NTCHW", "NHWTC")


def read_trajectories(path: str | Path, variable: str = "u", initial: str | None = "a", layout: str = "NHWT",
                      indices: Sequence[int] | np.ndarray | None = None) -> torch.Tensor:
    """Trajectories of an HDF5 file as one float32 tensor ``(N, K + 1, C, H, W)``.

    Args:
        path: the HDF5 file.
        variable: the dataset of snapshots, laid out as `layout` (see :data:`LAYOUTS`; sciml's
            navier-stokes generator writes ``u`` as ``"NHWT"``).
        initial: a dataset ``(N, H, W)`` or ``(N, C, H, W)`` prepended as snapshot 0 (the generator's ``a``,
            the initial vorticity), or None / "" when `variable` already starts at t = 0.
        layout: axis order of `variable`.
        indices: samples to read, ascending (default: all).

    Raises:
        FileNotFoundError, ValueError naming the option (`variable`, `initial`, `layout`) and what was expected.
    """
    from ..data.hdf5 import open_h5

    if layout not in LAYOUTS:
        raise ValueError(f"layout: expected one of {', '.join(LAYOUTS)}, got {layout!r}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such HDF5 file")
    with open_h5(path) as f:  # a file that is not HDF5: DataError (a ValueError) naming it
        if variable not in f:
            raise ValueError(f"variable: {path} has no dataset {variable!r}; datasets: {', '.join(f)}")
        ds = f[variable]
        if ds.ndim != len(layout):
            raise ValueError(f"variable: {variable!r} has shape {ds.shape}, but layout {layout!r} needs {len(layout)} axes")
        idx = np.arange(ds.shape[0]) if indices is None else np.asarray(indices, dtype=np.int64)
        u = np.asarray(ds[np.sort(idx)] if len(idx) else ds[:0], dtype=np.float32)
        a = None
        if initial:
            if initial not in f:
                raise ValueError(f"initial: {path} has no dataset {initial!r}; datasets: {', '.join(f)} "
                                 "(set initial = \"\" if the snapshots already start at t = 0)")
            a = np.asarray(f[initial][np.sort(idx)] if len(idx) else f[initial][:0], dtype=np.float32)
    order = {"NHWT": (0, 3, 1, 2), "NTHW": (0, 1, 2, 3), "NTHWC": (0, 1, 4, 2, 3), "NTCHW": (0, 1, 2, 3, 4),
             "NHWTC": (0, 3, 4, 1, 2)}[layout]
    u = np.transpose(u, order)
    if u.ndim == 4:
        u = u[:, :, None]
    if a is not None:
        if a.ndim == 3:
            a = a[:, None]
        if a.shape[:1] + a.shape[1:] != (u.shape[0], *u.shape[2:]):
            raise ValueError(f"initial: {initial!r} has per-sample shape {a.shape[1:]}, expected (H, W) or (C, H, W) = "
                             f"{tuple(u.shape[2:])} to match {variable!r}")
        u = np.concatenate([a[:, None], u], axis=1)
    if u.shape[-1] != u.shape[-2]:
        raise ValueError(f"variable: scOT needs square grids, got H = {u.shape[-2]}, W = {u.shape[-1]}")
    return torch.from_numpy(np.ascontiguousarray(u))


class All2AllTrajectories(Dataset):
    """The all2all training pairs of trajectories (dataset kind ``"scot-all2all"``; see the module docstring).

    Item ``k`` belongs to trajectory ``k // P`` (P pairs per trajectory) and is its pair ``k % P`` of
    :func:`all2all_pairs` ``(n_snapshots, step, max_steps, allowed_transitions)``, i.e. snapshots ``i <= j``:
    ``{"x": u[i] (C, H, W), "y": u[j] (C, H, W), "time": (j - i) / time_norm}``.

    Args:
        trajectories: ``(N, K + 1, C, H, W)`` snapshots at equally spaced times (snapshot 0 = t_0).
        step, max_steps, allowed_transitions: as :func:`all2all_pairs` (``max_steps=None``: all that fit).
        time_norm: the number of snapshot intervals that count as lead time 1 (default
            ``step * max_steps``, the longest pair: lead times in [0, 1]). Keep it equal between
            pretraining and fine-tuning when the snapshot spacing is the same.
        num_trajectories: keep only the first this many trajectories (sample-efficiency studies).
    """

    def __init__(self, trajectories: torch.Tensor, step: int = 1, max_steps: int | None = None,
                 time_norm: float | None = None, num_trajectories: int | None = None,
                 allowed_transitions: Sequence[int] | None = None):
        if not isinstance(trajectories, torch.Tensor) or trajectories.ndim != 5:
            raise ValueError("trajectories must be a tensor (N, K + 1, C, H, W), got "
                             f"{tuple(getattr(trajectories, 'shape', ()))}")
        if num_trajectories is not None:
            if not isinstance(num_trajectories, int) or isinstance(num_trajectories, bool) or num_trajectories < 1:
                raise ValueError(f"num_trajectories: expected an integer >= 1 or None, got {num_trajectories!r}")
            if num_trajectories > trajectories.shape[0]:
                raise ValueError(f"num_trajectories: {num_trajectories} asked, the split has only "
                                 f"{trajectories.shape[0]} trajectories")
            trajectories = trajectories[:num_trajectories]
        n_snap = trajectories.shape[1]
        try:
            self.pairs = all2all_pairs(n_snap, step, max_steps, allowed_transitions)
        except ValueError as err:
            raise ValueError(f"{'step' if 'step must' in str(err) else 'max_steps'}: {err}") from None
        span = max(b - a for a, b in self.pairs) if self.pairs else 0
        if time_norm is None:
            time_norm = float(span) if span > 0 else 1.0
        if not isinstance(time_norm, (int, float)) or isinstance(time_norm, bool) or not time_norm > 0:
            raise ValueError(f"time_norm: expected a number > 0 (snapshot intervals per unit lead time), got {time_norm!r}")
        if not self.pairs:
            raise ValueError("allowed_transitions: no pair is left")
        self.u = trajectories.to(torch.float32).contiguous()
        self.time_norm = float(time_norm)
        self._i = torch.tensor([p[0] for p in self.pairs])
        self._j = torch.tensor([p[1] for p in self.pairs])

    @property
    def num_trajectories(self) -> int:
        return self.u.shape[0]

    def __len__(self) -> int:
        return self.u.shape[0] * len(self.pairs)

    def __getitem__(self, k: int) -> dict[str, torch.Tensor]:
        if not 0 <= k < len(self):
            raise IndexError(f"index {k} out of range for {len(self)} pairs")
        n, p = divmod(int(k), len(self.pairs))
        i, j = self.pairs[p]
        return {"x": self.u[n, i], "y": self.u[n, j], "time": torch.tensor((j - i) / self.time_norm, dtype=torch.float32)}

    def batch(self, ks: Sequence[int] | torch.Tensor) -> dict[str, torch.Tensor]:
        """Items `ks` stacked: ``x``, ``y`` ``(B, C, H, W)``, ``time`` ``(B,)`` (faster than a DataLoader)."""
        ks = torch.as_tensor(ks, dtype=torch.int64)
        n, p = ks // len(self.pairs), ks % len(self.pairs)
        i, j = self._i[p], self._j[p]
        return {"x": self.u[n, i], "y": self.u[n, j], "time": ((j - i).to(torch.float32) / self.time_norm)}


@register_dataset("scot-all2all")
def _build_all2all(options: dict[str, Any], split: str, base_dir: Path) -> Dataset:
    """[data] kind = "scot-all2all": `path` (relative to the config), `variable` ("u"), `initial` ("a"; "" for
    none), `layout` ("NHWT"), `splits` (fractions or index ranges of trajectories, default (0.8, 0.1, 0.1)),
    `shuffle`, `seed` (of a shuffled split), `step`, `max_steps`, `time_norm`, `num_trajectories`,
    `allowed_transitions`."""
    from ..data.hdf5 import open_h5
    from ..data.splits import split_indices

    known = {"path", "variable", "initial", "layout", "splits", "shuffle", "seed", "step", "max_steps", "time_norm",
             "num_trajectories", "allowed_transitions"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ValueError(f"scot-all2all: unknown option(s) {unknown}; expected any of {', '.join(sorted(known))}")
    if "path" not in options:
        raise ValueError("scot-all2all: path: required (the HDF5 file of trajectories)")
    path = base_dir / Path(options["path"])
    variable = options.get("variable", "u")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such HDF5 file")
    with open_h5(path) as f:  # a file that is not HDF5: DataError (a ValueError) naming it
        if variable not in f:
            raise ValueError(f"scot-all2all: variable: {path} has no dataset {variable!r}; datasets: {', '.join(f)}")
        n = int(f[variable].shape[0])
    idx = split_indices(n, options.get("splits", (0.8, 0.1, 0.1)), split, shuffle=options.get("shuffle", False),
                        seed=options.get("seed", 0), file=str(path), key="splits")
    if len(idx) == 0:
        raise ValueError(f"scot-all2all: splits: the {split!r} split of {path} is empty")
    try:
        u = read_trajectories(path, variable, options.get("initial", "a"), options.get("layout", "NHWT"), idx)
        return All2AllTrajectories(u, step=options.get("step", 1), max_steps=options.get("max_steps"),
                                   time_norm=options.get("time_norm"), num_trajectories=options.get("num_trajectories"),
                                   allowed_transitions=options.get("allowed_transitions"))
    except ValueError as err:
        raise ValueError(f"scot-all2all: {err}") from None


# ----------------------------------------------------------------------------------------------- loss
def _output(out: Any) -> torch.Tensor:
    return out.output if hasattr(out, "output") else out


def scot_loss(model: nn.Module, batch: Any, norm: str = "relative-l1") -> torch.Tensor:
    """The ``"scot"`` objective: ``model(batch["x"], batch["time"])`` against ``batch["y"]`` (module docstring)."""
    if norm not in ("relative-l1", "model"):
        raise ValueError(f"scot: norm must be \"relative-l1\" or \"model\", got {norm!r}")
    x, y, t = batch["x"], batch["y"], batch["time"]
    if norm == "model":
        out = model(x, t, labels=y)
        if getattr(out, "loss", None) is None:
            raise ValueError("scot: norm = \"model\" needs a model returning .loss for labels (ScOT)")
        return out.loss
    return relative_l1(_output(model(x, t)), y, percent=False).mean()


def _median_metric(model: nn.Module, batch: Any) -> torch.Tensor:
    """Median relative L1 error (%) of the batch's predictions ``model(x, time)`` against ``y``."""
    return median_relative_l1(_output(model(batch["x"], batch["time"])), batch["y"])


def _register() -> None:
    from ..training.losses import LOSSES, METRICS, register_loss, register_metric

    if "scot" not in LOSSES:
        register_loss("scot", objective=True)(scot_loss)
    if "scot-median-rel-l1" not in METRICS:
        register_metric("scot-median-rel-l1")(_median_metric)


_register()


@torch.no_grad()
def evaluate_median_rel_l1(model: Any, x0: torch.Tensor, target: torch.Tensor, lead_time: float | torch.Tensor,
                           ar_steps: int = 1, batch_size: int = 64) -> float:
    """The paper's metric over a whole set: median over samples of the relative L1 error (%) of the
    prediction ``lead_time`` ahead of ``x0`` ``(N, C, H, W)`` (directly, or in `ar_steps` autoregressive
    steps, :func:`rollout`) against ``target`` ``(N, C, H, W)``."""
    training = getattr(model, "training", None)  # any callable model(x, t) works (e.g. a persistence baseline)
    if training is not None:
        model.eval()
    try:
        preds = [rollout(model, x0[i:i + batch_size], lead_time if not torch.is_tensor(lead_time) or lead_time.ndim == 0
                         else lead_time[i:i + batch_size], steps=ar_steps) for i in range(0, x0.shape[0], batch_size)]
    finally:
        if training is not None:
            model.train(training)
    return float(median_relative_l1(torch.cat(preds), target))


# ----------------------------------------------------------------------------------------- fine-tuning
def finetune_model(pretrained: str | Path | ScOT, num_channels: int | None = None, num_out_channels: int | None = None,
                   replace_embedding_recovery: bool = False, **config_overrides: Any) -> ScOT:
    """A scOT to fine-tune (train mode) from a pretrained one: an official-layout directory
    (:meth:`ScOT.save_pretrained`), a sciml model directory (``sciml.models.save``, e.g. a ``sciml train`` run's
    ``model/``) or a model object; new channel counts re-initialise the embedding / recovery, as does
    ``replace_embedding_recovery`` (the official fine-tuning flag, for a new set of physical channels)."""
    import tempfile

    overrides = dict(config_overrides)
    if num_channels is not None:
        overrides["num_channels"] = num_channels
    if num_out_channels is not None:
        overrides["num_out_channels"] = num_out_channels
    if isinstance(pretrained, ScOT):
        with tempfile.TemporaryDirectory() as tmp:
            pretrained.save_pretrained(tmp)
            model = ScOT.from_pretrained(tmp, overrides, replace_embedding_recovery)
    else:
        path = Path(pretrained)
        if not path.is_dir():
            raise FileNotFoundError(f"pretrained: no such model directory {str(path)!r}")
        from .pretrained import _config

        if _config(path).get("model_type") == "swinv2":
            model = ScOT.from_pretrained(path, overrides, replace_embedding_recovery)
        else:
            from .registry import load

            loaded = load(path)
            if not isinstance(loaded, ScOT):
                raise ValueError(f"pretrained: {path} holds a {type(loaded).__name__}, not a scOT")
            return finetune_model(loaded, num_channels, num_out_channels, replace_embedding_recovery, **config_overrides)
    return model.train()


def use_param_groups(trainer: Any, lr: float, lr_embedding_recovery: float | None = None,
                     lr_time_embedding: float | None = None, weight_decay: float | None = None) -> torch.optim.Optimizer:
    """Give a :class:`~sciml.training.Trainer` of a scOT AdamW over :meth:`ScOT.param_groups` (the paper's
    fine-tuning learning rates) with the config's betas/eps, and rebuild its schedule over them
    (``[schedule]`` of the config). Call before ``fit()``. Returns the new optimizer."""
    from ..training.schedules import build_scheduler
    from .registry import unwrap

    model = unwrap(trainer.model)
    if not isinstance(model, ScOT):
        raise ValueError(f"use_param_groups: the trainer's model is a {type(model).__name__}, not a scOT")
    cfg = trainer.config
    wd = cfg.optimizer.weight_decay if weight_decay is None else weight_decay
    groups = model.param_groups(lr, lr_embedding_recovery, lr_time_embedding, wd)
    trainer.optimizer = torch.optim.AdamW(groups, lr=lr, betas=cfg.optimizer.betas, eps=cfg.optimizer.eps)
    trainer.scheduler = build_scheduler(trainer.optimizer, cfg.schedule, cfg.steps)
    return trainer.optimizer
