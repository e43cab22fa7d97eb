r"""Learned neural operators as solvers: a PDEProblem's input fields -> the predicted solution field.

`NeuralOperatorSolver` is the shared base (not registered): it loads a model (an `nn.Module` or a
`sciml.models.save` directory), samples the problem's input fields on the grid's unknowns
(`Grid.nodes`), stacks them as channels `(B, C, *grid)`, applies the normalisation used in training,
runs the model in batches and returns a `Solution` whose `x` is the prediction on the grid. Subclasses
set `name` (and may check the model type in `check_model` or build inputs differently in
`input_tensor`). Registered here: `lsm` (Latent Spectral Models), `fno` (the FNO baseline) and `poseidon`
(scOT / Poseidon: the problem's initial state `source` -> the state `lead_time` later, direct or
autoregressive; see `PoseidonSolver`).

Normalisation. sciml's datasets normalise a field as `(value - mean) / std` with statistics of the
train split (`sciml.data.normalization`, cached in `<data>.stats.json`, exposed as `dataset.stats`).
`sciml train` writes them next to the exported weights as `normalizer.json` (the document of
`sciml.data.normalization`; `save_normalizer(model_dir, dataset)` writes one by hand,
`export_normalizer(CONFIG)` or `sciml normalizer CONFIG [MODEL_DIR]` again for an existing run), and
the solver (option `normalizer = "auto"`, the default) reads it when the model is given as a directory.
The input alias's statistics are applied to the stacked input before the model, the target alias's
(if the target was normalised) are undone on the output. With one value per field (`channel_axis` null)
the scalar applies to every channel; with one value per channel the item must have been channels-first.
std = 0 (a constant field) only shifts, as the datasets do.

Grids. The model sees field values only (LSM and FNO append their own linspace(0, 1) coordinates), so
data stored on nodes that include the boundary, as the Darcy generator's 85 x 85 `coeff`, is given as a
tensor on a grid with `points = (85, 85)` whatever the grid's boundary condition; expression fields are
evaluated at `Grid.nodes` (for Dirichlet axes the interior nodes, h = 1/(n+1)).

Example (the shipped Darcy LSM on two coefficient fields of the data generator; run from the repository root):
    >>> import sciml
    >>> from sciml.data.generators.darcy import DarcyGenerator, node_grid
    >>> a = torch.from_numpy(DarcyGenerator(resolution=85).generate(range(2), seed=1)["coeff"]).float()
    >>> sol = sciml.solve(PDEProblem(node_grid(85), source=1.0, a=a, dtype=torch.float32), "lsm",
    ...                   model="datasets/darcy/lsm_r85")
    >>> tuple(sol.x.shape)
    (2, 85, 85)
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Mapping

import torch
from torch import nn

from ..data.normalization import NORMALIZER, NORMALIZER_FORMAT, write_normalizer
from ..data.normalization import normalizer_document as normalizer_from_dataset
from ..models.fno import FNO2d, NeuralopFNO
from ..models.lsm import LSM, rollout
from ..models.registry import load as load_model
from ..models.registry import unwrap
from ..training.trainer import export_normalizer
from ..pde.discretize import evaluate
from ..problems import PDEProblem
from ..solution import Solution
from ..status import Status
from .base import Solver, SolverOptionError, register

DTYPES = {"float32": torch.float32, "float64": torch.float64}
FIELDS = ("source", "a", "c", "boundary", "exact")  # PDEProblem fields that can be model inputs


# ------------------------------------------------------------------------------ normalisation
def save_normalizer(directory: str | os.PathLike, normalizer: Any, input: str = "x", target: str = "y") -> Path:
    """Write `directory/normalizer.json` (atomically) from a normaliser document or a dataset with `.stats`."""
    doc = normalizer if isinstance(normalizer, Mapping) else normalizer_from_dataset(normalizer, input, target)
    return write_normalizer(directory, check_normalizer(doc, "normalizer"))


def check_normalizer(doc: Any, where: str) -> dict[str, Any]:
    """Validate a normaliser document; SolverOptionError naming `where` otherwise."""
    if not isinstance(doc, Mapping) or not isinstance(doc.get("fields"), Mapping):
        raise SolverOptionError(f"{where}: expected a normaliser document {{\"input\": ..., \"target\": ..., "
                                f"\"fields\": {{alias: {{\"mean\": [...], \"std\": [...]}}}}}}, got {doc!r:.200}")
    doc = {"format": NORMALIZER_FORMAT, "version": 1, "input": "x", "target": "y", **doc}
    for alias, s in doc["fields"].items():
        ok = isinstance(s, Mapping) and all(isinstance(s.get(k), (list, tuple, int, float)) for k in ("mean", "std"))
        if ok:
            mean, std = torch.as_tensor(s["mean"]).flatten(), torch.as_tensor(s["std"]).flatten()
            ok = mean.numel() == std.numel() > 0
        if not ok:
            raise SolverOptionError(f"{where}: field {alias!r}: expected equal-length lists 'mean' and 'std', got {s!r:.200}")
    return dict(doc)


def load_normalizer(path: str | os.PathLike) -> dict[str, Any]:
    """A normaliser document from `normalizer.json` (or a directory holding one)."""
    p = Path(path)
    if p.is_dir():
        p = p / NORMALIZER
    try:
        doc = json.loads(p.read_text())
    except (OSError, ValueError) as err:
        raise SolverOptionError(f"normalizer: cannot read {p} ({err})") from None
    return check_normalizer(doc, f"normalizer ({p})")


def _affine(stats: Mapping[str, Any], x: torch.Tensor, nspace: int, alias: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, std) of one field shaped to broadcast against `x` `(B, C, *grid)` (std 0 -> 1)."""
    mean = torch.as_tensor(stats["mean"], dtype=x.dtype, device=x.device).flatten()
    std = torch.as_tensor(stats["std"], dtype=x.dtype, device=x.device).flatten()
    std = torch.where(std > 0, std, torch.ones_like(std))
    if mean.numel() == 1:
        return mean.reshape(()), std.reshape(())
    axis = stats.get("channel_axis")
    if axis != -(nspace + 1) or mean.numel() != x.shape[1]:
        raise SolverOptionError(f"normalizer: field {alias!r} has {mean.numel()} per-channel statistics along item axis "
                                f"{axis}, but the model's tensors are (B, {x.shape[1]}, *grid) (channel axis "
                                f"{-(nspace + 1)})")
    shape = (-1,) + (1,) * nspace
    return mean.reshape(shape), std.reshape(shape)


def _cast(net: nn.Module, dtype: torch.dtype) -> nn.Module:
    """Real floating tensors to `dtype`, complex ones to its complex counterpart (`Module.to(dtype)` would
    drop the imaginary part of complex weights, e.g. neuralop's spectral convolutions)."""
    complex_dtype = dtype.to_complex()
    return net._apply(lambda t: t.to(dtype) if t.is_floating_point() else t.to(complex_dtype) if t.is_complex() else t)


# ------------------------------------------------------------------------------------ solver
@dataclass
class NeuralOperatorSolver(Solver):
    """Base of learned-operator solvers: PDEProblem input fields -> model -> predicted solution on the grid.

    Options:
        model: an `nn.Module` or a checkpoint directory written by `sciml.models.save` (required).
        inputs: PDEProblem fields stacked as the model's input channels, in order (default ["a"]);
            any of source, a, c, boundary, exact. A field may be a number, expression, callable, a
            tensor on the grid `(*grid)`, or a batch of them `(B, *grid)` (all batched fields share B).
        normalizer: "auto" (read `normalizer.json` in the checkpoint directory given as `model`, or in
            the module's `sciml_checkpoint` directory if it records one; else none),
            None (no normalisation), a normaliser document (dict) or a path to a normalizer.json.
        device: where the model runs ("cpu", "cuda", ...); None: where its weights are.
        batch_size: problems per forward pass (None: all at once).
        dtype: inference dtype, "float32" (default) or "float64".
        rollout_steps: None (one model call), or n: autoregressive prediction of n states by a one-step
            model (`sciml.models.lsm.rollout`, the Navier-Stokes setup of configs/lsm-ns.toml): the one
            field in `inputs` holds the last T_in states, a tensor `(T_in, *grid)` or `(B, T_in, *grid)`
            (T_in = the model's in_channels), and `x` is `(n, *grid)` or `(B, n, *grid)`. Not with a
            normaliser (the prediction is fed back as input).

    Returns a `Solution` with `x` `(*grid)` for one problem (`(B, *grid)` for batched fields; a channel
    axis before the grid if the model has several output channels), `exact` and hence
    `info["rel_l2_error"]` when the problem has one, status SUCCESS unless the prediction is not finite.
    """

    name: ClassVar[str] = ""
    accepts: ClassVar[tuple[type, ...]] = (PDEProblem,)

    model: Any = None
    inputs: list = field(default_factory=lambda: ["a"])
    normalizer: Any = "auto"
    device: str | None = None
    batch_size: int | None = None
    dtype: str = "float32"
    rollout_steps: int | None = None

    def __post_init__(self) -> None:
        n = self.name or "neural-operator"
        if self.model is None:
            raise SolverOptionError(f"{n}: model is required: an nn.Module or a checkpoint directory (sciml.models.save)")
        if not isinstance(self.model, (str, Path, nn.Module)):
            raise SolverOptionError(f"{n}: model must be a checkpoint directory or an nn.Module, got {type(self.model).__name__}")
        if isinstance(self.model, (str, Path)) and not Path(self.model).is_dir():
            raise SolverOptionError(f"{n}: model {str(self.model)!r} is not a checkpoint directory")
        if isinstance(self.inputs, str):
            self.inputs = [self.inputs]
        if not isinstance(self.inputs, (list, tuple)) or not self.inputs:
            raise SolverOptionError(f"{n}: inputs must be a non-empty list of PDEProblem fields ({', '.join(FIELDS)}), "
                                    f"got {self.inputs!r}")
        for f in self.inputs:
            if f not in FIELDS:
                raise SolverOptionError(f"{n}: inputs: unknown field {f!r}; a PDEProblem's fields are {', '.join(FIELDS)}")
        if self.batch_size is not None and (not isinstance(self.batch_size, int) or isinstance(self.batch_size, bool)
                                            or self.batch_size < 1):
            raise SolverOptionError(f"{n}: batch_size must be an integer >= 1 or None, got {self.batch_size!r}")
        if self.dtype not in DTYPES:
            raise SolverOptionError(f"{n}: dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        if self.device is not None and not isinstance(self.device, (str, torch.device)):
            raise SolverOptionError(f"{n}: device must be a string such as \"cpu\" or \"cuda\", got {self.device!r}")
        self._norm = self._resolve_normalizer()
        if self.rollout_steps is not None:
            if not isinstance(self.rollout_steps, int) or isinstance(self.rollout_steps, bool) or self.rollout_steps < 1:
                raise SolverOptionError(f"{n}: rollout_steps must be an integer >= 1 or None, got {self.rollout_steps!r}")
            if len(self.inputs) != 1:
                raise SolverOptionError(f"{n}: rollout_steps: inputs must name the one field that holds the last states "
                                        f"(T_in, *grid), got {list(self.inputs)}")
            if self._norm is not None:
                raise SolverOptionError(f"{n}: rollout_steps: the model comes with a normaliser, but a rollout feeds "
                                        "its predictions back as inputs; train it on unnormalised fields or set "
                                        "normalizer = None")
        self._net: nn.Module | None = None

    # ---- model and normaliser ---------------------------------------------------------------
    def _resolve_normalizer(self) -> dict[str, Any] | None:
        nz = self.normalizer
        if nz is None or nz is False:
            return None
        if nz == "auto":
            # a directory given as the model, or the one a loaded module records as `sciml_checkpoint`
            source = self.model if isinstance(self.model, (str, Path)) else getattr(self.model, "sciml_checkpoint", None)
            if isinstance(source, (str, Path)) and (Path(source) / NORMALIZER).is_file():
                return load_normalizer(source)
            return None
        if isinstance(nz, Mapping):
            return check_normalizer(nz, f"{self.name}: normalizer")
        if isinstance(nz, (str, Path)):
            return load_normalizer(nz)
        raise SolverOptionError(f"{self.name}: normalizer must be \"auto\", None, a table or a path to {NORMALIZER}, "
                                f"got {type(nz).__name__}")

    def check_model(self, net: nn.Module) -> None:
        """Hook for subclasses: raise SolverOptionError if `net` is not the right kind of model."""

    def network(self) -> nn.Module:
        """The model (loaded once), in eval mode, with the inference dtype, on `device`."""
        if self._net is None:
            net = load_model(self.model) if isinstance(self.model, (str, Path)) else self.model
            self.check_model(unwrap(net))
            self._net = net
        dev = self.device
        if dev is None:
            p = next(iter(self._net.parameters()), None)
            dev = p.device if p is not None else "cpu"
        self._net = _cast(self._net.to(device=dev), DTYPES[self.dtype]).eval()
        return self._net

    # ---- inputs -----------------------------------------------------------------------------
    def field_values(self, problem: PDEProblem, name: str) -> torch.Tensor:
        """Field `name` on the grid's unknowns: `(*grid)`, or `(B, *grid)` for a batched tensor."""
        grid = problem.grid
        value = getattr(problem, name)
        if value is None:
            raise SolverOptionError(f"{self.name}: inputs: the problem has no field {name!r} (it is None); give it or "
                                    f"remove it from inputs")
        shape = tuple(grid.points)
        if isinstance(value, torch.Tensor) and value.ndim == len(shape) + 1 and tuple(value.shape[1:]) == shape:
            return value.to(problem.dtype)
        if isinstance(value, torch.Tensor) and tuple(value.shape) != shape:
            raise ValueError(f"{self.name}: field {name!r} has shape {tuple(value.shape)}, but the problem's grid is "
                             f"{shape} (expected {shape} or (B, {', '.join(map(str, shape))}))")
        coords = grid.mesh([grid.nodes(d, problem.dtype) for d in range(grid.ndim)])
        return evaluate(value, grid, coords, shape, name, problem.constants, problem.dtype)

    def input_tensor(self, problem: PDEProblem) -> tuple[torch.Tensor, bool]:
        """`(B, C, *grid)` input (C = len(inputs)) and whether the problem is batched."""
        if self.rollout_steps is not None:
            return self.history_tensor(problem)
        values = [self.field_values(problem, f) for f in self.inputs]
        nspace = problem.grid.ndim
        batches = {v.shape[0] for v in values if v.ndim == nspace + 1}
        if len(batches) > 1:
            raise ValueError(f"{self.name}: batched input fields have different batch sizes {sorted(batches)}")
        B = batches.pop() if batches else None
        values = [v.expand(B or 1, *v.shape[-nspace:]) if v.ndim == nspace else v for v in values]
        return torch.stack(values, dim=1), B is not None

    def history_tensor(self, problem: PDEProblem) -> tuple[torch.Tensor, bool]:
        """The last states `(B, T_in, *grid)` from the one input field (rollout mode), and whether batched."""
        return self.state_stack(problem, self.inputs[0], "the last states", "T_in")

    def state_stack(self, problem: PDEProblem, name: str, what: str, n: str) -> tuple[torch.Tensor, bool]:
        """Field `name` as a stack of states `(B, n, *grid)` (given as `(n, *grid)` or `(B, n, *grid)`), and
        whether it was batched: a rollout's input history or its exact future states."""
        grid = tuple(problem.grid.points)
        value = getattr(problem, name)
        ok = isinstance(value, torch.Tensor) and value.ndim in (len(grid) + 1, len(grid) + 2)
        if not ok or tuple(value.shape[-len(grid):]) != grid:
            got = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise ValueError(f"{self.name}: rollout_steps: field {name!r} must hold {what} as a tensor "
                             f"({n}, {', '.join(map(str, grid))}) or (B, {n}, ...), got {got}")
        batched = value.ndim == len(grid) + 2
        return (value if batched else value.unsqueeze(0)).to(problem.dtype), batched

    def check_fit(self, net: nn.Module, x: torch.Tensor, problem: PDEProblem) -> None:
        """ValueError if the grid's dimension or resolution does not fit the model."""
        model_dim = getattr(unwrap(net), "ndim", None)
        if model_dim is not None and model_dim != problem.grid.ndim:
            raise ValueError(f"{self.name}: the model is {model_dim}-D (ndim={model_dim}) but the problem's grid "
                             f"{tuple(problem.grid.points)} is {problem.grid.ndim}-D; use a model for {problem.grid.ndim}-D grids")
        in_ch = getattr(unwrap(net), "in_channels", None)
        if in_ch is not None and in_ch != x.shape[1]:
            raise SolverOptionError(f"{self.name}: inputs: {list(self.inputs)} gives {x.shape[1]} channel(s) but the "
                                    f"model expects in_channels={in_ch}")
        check = getattr(unwrap(net), "check_input", None)
        if check is not None:
            try:
                check(x[:1])
            except ValueError as err:
                raise ValueError(f"{self.name}: the problem's grid {tuple(problem.grid.points)} does not fit the model: "
                                 f"{err}") from None

    # ---- prediction -------------------------------------------------------------------------
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Model output `(B, C_out, *grid)` for a physical input `(B, C, *grid)` (normalisation applied)."""
        net = self.network()
        p = next(iter(net.parameters()), None)
        dev = p.device if p is not None else x.device
        x = x.to(device=dev, dtype=DTYPES[self.dtype])
        nspace = x.ndim - 2
        nz = self._norm
        if nz is not None and nz["input"] in nz["fields"]:
            mean, std = _affine(nz["fields"][nz["input"]], x, nspace, nz["input"])
            x = (x - mean) / std
        bs = self.batch_size or x.shape[0]
        steps = self.rollout_steps
        with torch.no_grad():
            outs = [net(v) if steps is None else rollout(net, v, steps) for v in x.split(bs)]
        y = torch.cat(outs)
        if y.ndim == nspace + 1:
            y = y.unsqueeze(1)
        if nz is not None and nz["target"] in nz["fields"]:
            mean, std = _affine(nz["fields"][nz["target"]], y, nspace, nz["target"])
            y = y * std + mean
        return y

    def solve(self, problem: Any) -> Solution:
        x, batched = self.input_tensor(problem)
        net = self.network()
        self.check_fit(net, x, problem)
        y = self.predict(x).to(problem.dtype)  # (B, C_out, *grid)
        finite = torch.isfinite(y.flatten(1)).all(1)  # (B,)
        if y.shape[1] == 1 and self.rollout_steps is None:
            y = y.squeeze(1)
        if not batched:
            y, finite = y[0], finite[0]
        status = torch.where(finite, int(Status.SUCCESS), int(Status.NONFINITE)).to(torch.int64)
        stats = {"status": status, "iterations": torch.ones_like(status)}
        exact = None
        if problem.exact is not None:
            if self.rollout_steps is not None and isinstance(problem.exact, torch.Tensor):  # a stack of states
                e, _ = self.state_stack(problem, "exact", "the exact future states", "rollout_steps")
                e = e if batched else e[0]
            else:
                e = self.field_values(problem, "exact")
            if e.shape != y.shape:
                try:
                    e = e.expand_as(y)
                except RuntimeError:
                    raise ValueError(f"{self.name}: the problem's exact solution has shape {tuple(e.shape)}, the "
                                     f"prediction {tuple(y.shape)}") from None
            exact = e
        reason = "one model evaluation" if bool(finite.all()) else "the model's prediction is not finite (NaN/Inf)"
        info = {"reason": reason, "relative_residual": float("nan"), "model": type(unwrap(net)).__name__}
        return Solution(y, torch.zeros((0, *status.shape), dtype=torch.float64), stats, info,
                        coords=problem.grid.coords(problem.dtype), exact=exact, variable="u")


@register
@dataclass
class LSMSolver(NeuralOperatorSolver):
    """Latent Spectral Model (ICML 2023): a trained neural operator maps the problem's input fields to the solution."""

    name: ClassVar[str] = "lsm"

    def check_model(self, net: nn.Module) -> None:
        if not isinstance(net, LSM):
            raise SolverOptionError(f"lsm: model must be an LSM (model \"lsm\"), got {type(net).__name__}; "
                                    "use the solver of that model")


@register
@dataclass
class FNOSolver(NeuralOperatorSolver):
    """Fourier Neural Operator (ICLR 2021): a trained neural operator maps the problem's input fields to the solution."""

    name: ClassVar[str] = "fno"

    def check_model(self, net: nn.Module) -> None:
        if not isinstance(net, (FNO2d, NeuralopFNO)):
            raise SolverOptionError(f"fno: model must be an FNO (model \"fno\" or \"neuralop-fno\"), got "
                                    f"{type(net).__name__}; use the solver of that model")


class _LeadTimeRollout(nn.Module):
    """`x (B, C, H, W) -> (B, C_out, H, W)`: a scOT's prediction `lead_time` ahead (`sciml.models.rollout`)."""

    def __init__(self, model: nn.Module, lead_time: float, steps: int):
        super().__init__()
        self.model, self.lead_time, self.steps = model, float(lead_time), int(steps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from ..models.scot_data import rollout

        return rollout(self.model, x, self.lead_time, steps=self.steps)


@register
@dataclass
class PoseidonSolver(NeuralOperatorSolver):
    """Poseidon / scOT (NeurIPS 2024): the field `lead_time` after the problem's initial state, in one model
    call (`ar_steps = 1`) or `ar_steps` autoregressive calls of `lead_time / ar_steps`.

    Convention for time-dependent problems: the state at the initial time, `u(t0)` `(n, n)` (or `(B, n, n)`),
    is the problem's `source` field (default `inputs = ["source"]`; several fields are stacked as channels in
    the order of `inputs`, as in training); `exact`, if given, is `u(t0 + lead_time)` and yields
    `info["rel_l2_error"]`. The grid must be 2-D and square (`points = [n, n]`; another n than the model's
    `image_size` is resampled spectrally by the model).

    Options (besides the shared ones: `model`, `inputs`, `normalizer`, `device`, `batch_size`, `dtype`):
        model: a `ScOT`, or a directory: official layout (`ScOT.save_pretrained`, `config.json` with
            model_type "swinv2") or a sciml model directory (`sciml train` with `[model] name = "scot"`).
        lead_time: the lead time in the model's time unit (the `time` it was trained with; for the
            "scot-all2all" dataset kind, snapshot intervals / `time_norm`), > 0. Default 1.0.
        ar_steps: 1 = direct prediction; n = n autoregressive steps of `lead_time / n` (a model with more
            input than output channels gets the trailing input channels appended to each prediction). With a
            normaliser, the input and target statistics should agree when `ar_steps > 1`.
    """

    name: ClassVar[str] = "poseidon"

    inputs: list = field(default_factory=lambda: ["source"])
    lead_time: float = 1.0
    ar_steps: int = 1

    def __post_init__(self) -> None:
        if isinstance(self.lead_time, bool) or not isinstance(self.lead_time, (int, float)) or not self.lead_time > 0:
            raise SolverOptionError(f"poseidon: lead_time must be a number > 0 (in the model's time unit), "
                                    f"got {self.lead_time!r}")
        if isinstance(self.ar_steps, bool) or not isinstance(self.ar_steps, int) or self.ar_steps < 1:
            raise SolverOptionError(f"poseidon: ar_steps must be an integer >= 1 (1 = direct prediction), "
                                    f"got {self.ar_steps!r}")
        super().__post_init__()

    def check_model(self, net: nn.Module) -> None:
        from ..models.scot import ScOT

        if not isinstance(net, ScOT):
            raise SolverOptionError(f"poseidon: model must be a scOT (model \"scot\" or an official Poseidon "
                                    f"checkpoint directory), got {type(net).__name__}")

    def scot(self) -> nn.Module:
        """The underlying `ScOT` (loaded once)."""
        return self.network().model

    def network(self) -> nn.Module:
        if self._net is None:
            if isinstance(self.model, (str, Path)):
                from ..models.pretrained import load_pretrained

                net = load_pretrained(self.model)
            else:
                net = self.model
            net = unwrap(net)
            self.check_model(net)
            self._net = _LeadTimeRollout(net, self.lead_time, self.ar_steps)
        return super().network()

    def solve(self, problem: Any) -> Solution:
        sol = super().solve(problem)
        sol.info.update(model="ScOT", lead_time=float(self.lead_time), ar_steps=int(self.ar_steps))
        return sol

    def check_fit(self, net: nn.Module, x: torch.Tensor, problem: PDEProblem) -> None:
        points = tuple(problem.grid.points)
        if len(points) != 2 or points[0] != points[1]:
            raise ValueError(f"poseidon: grid: scOT needs a square 2-D grid, points = [n, n]; got points = "
                             f"{list(points)}")
        cfg = net.model.config if isinstance(net, _LeadTimeRollout) else unwrap(net).config
        if x.shape[1] != cfg.num_channels:
            raise SolverOptionError(f"poseidon: inputs: {list(self.inputs)} gives {x.shape[1]} channel(s) but the "
                                    f"model expects num_channels={cfg.num_channels}")


__all__ = ["FNOSolver", "LSMSolver", "NeuralOperatorSolver", "PoseidonSolver", "check_normalizer", "export_normalizer", "load_normalizer",
           "normalizer_from_dataset", "save_normalizer"]
