"""`Solution`: the answer of every solver and how it was reached; NetCDF output and plots."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ._io import atomic_path
from .plots import save_figure
from .status import Status


@dataclass
class Solution:
    """What `sciml.solve` returns.

    Attributes:
        x: the solution, `(*batch, *space)`.
        residuals: residual-norm history, `(k+1, *batch)` (1-D for one system): `||b - A x_k||` for
            square solvers, the normal-equation residual `||A^H (b - A x_k) - damp^2 x_k||` for cgls.
        time: wall time of the solve in seconds (set by `sciml.solve`).
        info: solver name and settings, `reason`, and `rel_l2_error` (the worst over the batch)
            when the exact solution is known.
        stats: per-system tensors: `status` (`Status` codes) and `iterations`, both `(*batch,)`.
        coords: coordinates of the space axes (name -> 1-D tensor), if the problem has a grid.
        exact: the exact solution on the same points, if known.
        variable: name of the unknown in files and plots ("u" for PDEs, "x" otherwise).
        model: the fitted model, for solvers that learn one (`gp-kron`: a `sciml.models.GPHM`, whose
            `predict` evaluates the solution anywhere in the box).
    """

    x: torch.Tensor
    residuals: torch.Tensor
    stats: dict[str, torch.Tensor]
    info: dict[str, Any] = field(default_factory=dict)
    time: float = float("nan")
    coords: dict[str, torch.Tensor] | None = None
    exact: torch.Tensor | None = None
    variable: str = "x"
    model: Any = field(default=None, repr=False)

    @property
    def status(self) -> Status:
        """The worst status over the batch (`Status.SUCCESS` only if every system converged)."""
        s = self.stats["status"]
        return Status(int(s.max())) if s.numel() else Status.SUCCESS

    @property
    def converged(self) -> bool:
        return self.status == Status.SUCCESS

    @property
    def iterations(self) -> int:
        """The most iterations any system in the batch took."""
        it = self.stats["iterations"]
        return int(it.max()) if it.numel() else 0

    @property
    def residual(self) -> float:
        """Final residual norm relative to ||b|| (the worst over the batch)."""
        rel = self.info.get("relative_residual")
        return float("nan") if rel is None else float(rel)

    def summary(self) -> str:
        """One line: solver, status, iterations, residual, error, time."""
        parts = [f"{self.info.get('solver', '?')}: {'converged' if self.converged else self.status.name.lower()}",
                 f"iterations {self.iterations}", f"residual {self.residual:.2e}"]
        if "rel_l2_error" in self.info:
            parts.append(f"rel_l2_error {self.info['rel_l2_error']:.2e}")
        if "psnr" in self.info:
            parts.append(f"PSNR {self.info['psnr']:.2f} dB, SSIM {self.info.get('ssim', float('nan')):.3f}")
        parts.append(f"time {self.time:.3f} s")
        return ", ".join(parts)

    # --- output -------------------------------------------------------------------------------
    def _space_dims(self) -> list[str]:
        if self.coords:
            return list(self.coords)
        nbatch = self.stats["status"].ndim
        return [f"dim_{i}" for i in range(self.x.ndim - nbatch)]

    def to_xarray(self):
        """An `xarray.Dataset`: the solution (real/imag parts for complex), exact and error if known,
        the per-entry `std` of a sampler's samples if any, the residual history, and the solver settings
        as attributes."""
        import xarray as xr

        space = self._space_dims()
        batch = [f"batch_{i}" for i in range(self.stats["status"].ndim)]
        # axes between the batch and the grid: output channels (or a learned rollout's states)
        channels = [f"channel_{i}" for i in range(self.x.ndim - len(batch) - len(space))]
        dims = batch + channels + space
        data: dict[str, Any] = {}
        fields = {self.variable: self.x}
        if self.exact is not None:
            fields["exact"] = self.exact
            fields["error"] = self.x - self.exact
        std = self.info.get("std")  # the spread of a sampler's samples (diffusion solvers' num_samples)
        if isinstance(std, torch.Tensor) and std.shape == self.x.shape:
            fields["std"] = std
        for name, t in fields.items():
            t = t.detach().cpu()
            if t.is_complex():
                data[f"{name}_real"] = (dims, t.real.numpy())
                data[f"{name}_imag"] = (dims, t.imag.numpy())
            else:
                data[name] = (dims, t.numpy())
        data["residual"] = (["iteration"] + batch, self.residuals.detach().cpu().numpy())
        data["status"] = (batch, self.stats["status"].cpu().numpy())
        data["iterations"] = (batch, self.stats["iterations"].cpu().numpy())
        coords = {k: v.detach().cpu().numpy() for k, v in (self.coords or {}).items()}
        attrs = {
            "solver": str(self.info.get("solver", "")),
            "status": self.status.name,
            "converged": int(self.converged),
            "time_s": float(self.time),
            "info": json.dumps(_jsonable(self.info), sort_keys=True),
        }
        for key in ("rel_l2_error", "psnr", "ssim"):
            if key in self.info:
                attrs[key] = float(self.info[key])
        return xr.Dataset(data, coords=coords, attrs=attrs)

    def save(self, path: str) -> None:
        """Write `to_xarray()` as NetCDF-4 (HDF5) to `path`, atomically."""
        ds = self.to_xarray()
        with atomic_path(path) as tmp:
            ds.to_netcdf(tmp, engine="h5netcdf")

    def plot(self, path: str) -> None:
        """Save a PNG: the solution (first system of a batch), its error if known, the residual history (if any)."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        nspace = len(self._space_dims())
        first = (0,) * (self.x.ndim - nspace)
        panels = [(self.variable, self.x[first])]
        if self.exact is not None:
            panels.append(("error", (self.x - self.exact)[first]))
        history = self.residuals.numel() > 0  # learned one-shot solvers have no iteration history
        ncols = len(panels) + history
        fig, axes = plt.subplots(1, ncols, figsize=(4.6 * ncols, 3.8), squeeze=False)
        axes = axes[0]
        for ax, (title, t) in zip(axes, panels):
            _draw_field(fig, ax, t.detach().cpu(), self.coords, title)
        if history:
            hist = self.residuals.detach().cpu().reshape(self.residuals.shape[0], -1).numpy()
            axes[-1].semilogy(hist)
            axes[-1].set_xlabel("iteration")
            axes[-1].set_ylabel("||b - A x||")
            state = "converged" if self.converged else self.status.name.lower()
            axes[-1].set_title(f"{self.info.get('solver', '')}: {state} after {self.iterations} iterations", fontsize=9)
        fig.tight_layout()
        save_figure(fig, path)


def _draw_field(fig, ax, t: torch.Tensor, coords: dict | None, title: str) -> None:
    if t.is_complex():
        t, title = t.abs(), f"|{title}|"
    names = list(coords) if coords else [f"dim_{i}" for i in range(t.ndim)]
    axes = [coords[n].cpu().numpy() if coords else np.arange(s) for n, s in zip(names, t.shape)]
    while t.ndim > 2:  # 3-D: the middle slice of the last axis
        title = f"{title} ({names[-1]} = {axes[-1][t.shape[-1] // 2]:.3g})"
        t, names, axes = t[..., t.shape[-1] // 2], names[:-1], axes[:-1]
    if t.ndim == 1:
        ax.plot(axes[0], t.numpy())
        ax.set_xlabel(names[0])
    else:
        im = ax.pcolormesh(axes[0], axes[1], t.numpy().T, shading="auto", cmap="viridis")
        ax.set_xlabel(names[0])
        ax.set_ylabel(names[1])
        ax.set_aspect("equal")
        fig.colorbar(im, ax=ax, shrink=0.85)
    ax.set_title(title)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu().tolist() if obj.numel() <= 64 else f"tensor{tuple(obj.shape)}"
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    return repr(obj)
