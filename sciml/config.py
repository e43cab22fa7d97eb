"""Solver configs: TOML files validated into typed objects, then built into a problem and a solver.

Every error names the file and the key and says what was expected (`ConfigError`).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ._toml import ConfigError, _Table, read_toml
from .pde import Expression, Grid
from .pde.expressions import derivative_names
from .problems import InverseProblem, LinearProblem, PDEProblem
from .problems.imaging import ImagingCase, ct_case, load_image, mri_case
from .operators.stencil import normalize_bc
from .solvers import Solver, available, make_solver

EQUATIONS = {
    "poisson": "-Δu = f",
    "helmholtz": "-Δu - k²u = f",
    "diffusion": "-∇·(a∇u) + c u = f",
    "custom": "L[u] = f, L given by `operator` (e.g. \"u_xx + u*(u**2 - 1)\"; collocation solvers)",
}
DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclass
class GridConfig:
    lower: list[float]
    upper: list[float]
    points: list[int]
    bc: str | list[str]


@dataclass
class ProblemConfig:
    equation: str
    grid: Grid
    fields: dict[str, Any]  # source, a, c, boundary, exact, operator: number, expression string or tensor
    constants: dict[str, float]
    dtype: torch.dtype
    device: str


@dataclass
class ImagingConfig:
    """`[problem] kind = "mri"` or `"ct"`: a simulated experiment on a known image (`sciml.problems.imaging`)."""

    kind: str
    image: dict[str, Any]  # load_image arguments: source, size, variable, index, split
    options: dict[str, Any]  # mri_case / ct_case keywords
    device: str
    pixels: torch.Tensor = field(repr=False)  # the image, read once when the config is validated


@dataclass
class PressureConfig:
    """`[problem] kind = "pressure"`: the pressure-Poisson system of an obstacle scene (solids: walls, air:
    p = 0; `sciml.data.generators.dcdm.PressurePoissonOperator`), cell flags and right-hand side read
    from .npy files when the config is validated."""

    flags: Any = field(repr=False)  # (n0, n1[, n2]) uint8: 0 fluid, 1 solid, 2 air
    rhs: torch.Tensor = field(repr=False)  # same shape, zero off the fluid cells
    boundary: str
    dtype: torch.dtype
    device: str


IMAGING_KINDS = {
    "mri": {"coils": (int, 8), "acceleration": ((int, float), 4.0), "center_fraction": ((int, float), 0.08),
            "noise": ((int, float), 0.005), "estimate_maps": (bool, False), "seed": (int, 0)},
    "ct": {"views": (int, 60), "noise": ((int, float), 0.01), "seed": (int, 0)},
}


@dataclass
class OutputConfig:
    dir: str
    name: str
    plot: bool


@dataclass
class Config:
    """A validated config file; `problem()` and `solver()` build the objects it describes."""

    file: Path
    problem_config: ProblemConfig | ImagingConfig | PressureConfig
    solver_name: str
    solver_options: dict[str, Any]
    output: OutputConfig
    _solver: Solver | None = field(default=None, repr=False)
    _case: Any = field(default=None, repr=False)

    def problem(self, dtype: torch.dtype | None = None,
                device: str | None = None) -> PDEProblem | InverseProblem | LinearProblem:
        p = self.problem_config
        if isinstance(p, ImagingConfig):
            return self.case(device).problem
        if isinstance(p, PressureConfig):
            from .data.generators.dcdm import PressurePoissonOperator

            dtype, device = dtype or p.dtype, device or p.device
            A = PressurePoissonOperator(p.flags, p.boundary, dtype=dtype, device=device)
            return LinearProblem(A, p.rhs.to(dtype=dtype, device=device))
        return PDEProblem(p.grid, constants=p.constants, dtype=dtype or p.dtype, device=device or p.device,
                          name=self.output.name, **p.fields)

    def case(self, device: str | None = None) -> ImagingCase | None:
        """The simulated imaging experiment of a `kind = "mri"`/`"ct"` config (None for PDE configs)."""
        p = self.problem_config
        if not isinstance(p, ImagingConfig):
            return None
        if self._case is None or (device is not None and str(self._case.truth.device) != device):
            image = p.pixels.to(device or p.device)
            build = mri_case if p.kind == "mri" else ct_case
            self._case = build(image, **p.options)
        return self._case

    def solver(self) -> Solver:
        if self._solver is None:
            try:
                self._solver = make_solver(self.solver_name, **self._resolved_options())
            except ConfigError:
                raise
            except (TypeError, ValueError, OSError) as err:
                raise ConfigError(self.file, self._solver_key(err), str(err)) from None
        return self._solver

    def _resolved_options(self) -> dict[str, Any]:
        """Solver options with file references resolved: `model` (a path relative to the config: a
        diffusers/sciml model directory) is loaded; `phase = "calibration"` (MRI) is the calibration phase."""
        options = dict(self.solver_options)
        if isinstance(options.get("model"), str):
            from .models import load_pretrained

            path = (self.file.parent / options["model"]).resolve()
            if not path.exists():
                raise ConfigError(self.file, "solver.model", f"no such model directory {str(path)!r}")
            options["model"] = load_pretrained(path, device=self.problem_config.device)
        if options.get("phase") == "calibration":
            case = self.case()
            if case is None or "phase" not in case.extras:
                raise ConfigError(self.file, "solver.phase", '"calibration" needs [problem] kind = "mri"')
            options["phase"] = case.extras["phase"]
        return options

    def _solver_key(self, err: Exception) -> str:
        """The key to blame for a solver that cannot be built: solver.name, an unknown option, the option
        the error names, an option that fails on its own, else solver."""
        cls = available().get(self.solver_name)
        if cls is None:
            return "solver.name"
        unknown = [key for key in self.solver_options if key not in cls.option_names()]
        if unknown:
            return f"solver.{unknown[0]}"
        named = [key for key in self.solver_options if re.search(rf"\b{re.escape(key)}\b", str(err))]
        if named:
            return f"solver.{named[0]}"
        for key, value in self.solver_options.items():
            try:
                make_solver(self.solver_name, **{key: value})
            except (TypeError, ValueError) as probe:
                if key in str(probe):
                    return f"solver.{key}"
        return "solver"


def load(path: str | Path) -> Config:
    """Read and validate a config; raises `ConfigError` naming the file and key on any problem."""
    file, data = read_toml(path)
    root = _Table(data, "", file)
    problem_t = root.table("problem")
    kind = problem_t.get("kind", (str,), "pde", expected='"pde", "mri", "ct" or "pressure"')
    if kind == "pde":
        problem = _problem(problem_t, file)
    elif kind in IMAGING_KINDS:
        problem = _imaging(problem_t, kind, file)
    elif kind == "pressure":
        problem = _pressure(problem_t, file)
    else:
        raise problem_t.error("kind", f'expected "pde", "mri", "ct" or "pressure", got {kind!r}')
    solver_t = root.table("solver")
    name = solver_t.get("name", (str,), expected="a solver name, e.g. \"cg\"")
    options = {k: v for k, v in solver_t.data.items() if k != "name"}
    out_t = root.table("output", required=False)
    output = OutputConfig(
        dir=out_t.get("dir", (str,), "out"),
        name=out_t.get("name", (str,), file.stem),
        plot=out_t.get("plot", (bool,), True),
    )
    if not output.name or "/" in output.name or output.name.startswith("."):
        raise out_t.error("name", f"expected a plain file stem, got {output.name!r}")
    out_t.finish()
    root.finish()
    config = Config(file, problem, name, options, output)
    config.solver()  # validates the solver name and its options now
    return config


def _problem(t: _Table, file: Path) -> ProblemConfig:
    equation = t.get("equation", (str,), expected=" or ".join(f'"{e}"' for e in EQUATIONS))
    if equation not in EQUATIONS:
        raise t.error("equation", f"expected one of {', '.join(EQUATIONS)}, got {equation!r}")
    g = t.table("grid")
    points = g.get("points", (list,), expected="an array of 1-3 integers (unknowns per axis)")
    ndim = len(points)
    if not 1 <= ndim <= 3 or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 2 for n in points):
        raise g.error("points", f"expected 1-3 integers >= 2 (unknowns per axis), got {points!r}")
    bounds = {}
    for key, default in (("lower", [0.0] * ndim), ("upper", [1.0] * ndim)):
        v = g.get(key, (list,), default, expected=f"an array of {ndim} numbers")
        if len(v) != ndim or not all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in v):
            raise g.error(key, f"expected an array of {ndim} finite numbers (one per axis), got {v!r}")
        bounds[key] = v
    bc = g.get("bc", (str, list), "dirichlet", expected='a boundary condition or one per axis ("dirichlet", "neumann", "periodic")')
    try:
        normalize_bc(bc, ndim)
    except ValueError as err:
        raise g.error("bc", str(err)) from None
    g.finish()
    try:
        grid = Grid(lower=tuple(bounds["lower"]), upper=tuple(bounds["upper"]), points=tuple(points), bc=bc)
    except ValueError as err:
        raise ConfigError(file, "problem.grid", str(err)) from None

    constants = {}
    c_t = t.table("constants", required=False)
    for key in list(c_t.data):
        constants[key] = float(c_t.get(key, (int, float), expected="a number"))
    c_t.finish()
    if equation == "helmholtz":
        constants["k"] = float(t.get("k", (int, float), expected="the wavenumber k (a number)"))

    allowed = {"poisson": (), "helmholtz": (), "diffusion": ("a", "c"), "custom": ()}[equation]
    for key in ("a", "c", "k"):
        if key in t.data and key not in allowed and not (key == "k" and equation == "helmholtz"):
            raise t.error(key, f"not used by equation {equation!r} ({EQUATIONS[equation]}); "
                               f"use equation = \"diffusion\" for coefficients a and c")
    fields = {"source": _field(t, "source", grid, constants, file)}
    for key in ("boundary", "exact", *allowed):
        if key in t.data:
            fields[key] = _field(t, key, grid, constants, file)
    if equation == "helmholtz":
        fields["c"] = -constants["k"] ** 2
    if equation == "custom":
        fields["operator"] = _operator(t, grid, constants)
    elif "operator" in t.data:
        raise t.error("operator", f'only used with equation = "custom", not {equation!r}')
    dtype, device = _dtype_device(t)
    t.finish()
    return ProblemConfig(equation, grid, fields, constants, dtype, device)


def _dtype_device(t: _Table) -> tuple[torch.dtype, str]:
    """The `dtype` ("float64") and `device` ("cpu") keys of a [problem] table."""
    dtype = t.get("dtype", (str,), "float64", expected='"float32" or "float64"')
    if dtype not in DTYPES:
        raise t.error("dtype", f'expected "float32" or "float64", got {dtype!r}')
    return DTYPES[dtype], t.get("device", (str,), "cpu", expected='"cpu" or "cuda"')


def _imaging(t: _Table, kind: str, file: Path) -> ImagingConfig:
    """`[problem] kind = "mri" | "ct"`: image = "shepp-logan" or {file, variable, index, split}; size; options."""
    value = t.get("image", (str, dict), expected='"shepp-logan" or {file = "...h5", variable = "images", index = 0}')
    if isinstance(value, str):
        if value != "shepp-logan":
            raise t.error("image", f'expected "shepp-logan" or a table {{file = ..., index = ...}}, got {value!r}')
        image: dict[str, Any] = {"source": value}
    else:
        it = _Table(value, t.path("image"), file)
        path = (file.parent / it.get("file", (str,), expected="an HDF5 file relative to the config")).resolve()
        if not path.is_file():
            raise it.error("file", f"no such file {str(path)!r}")
        image = {"source": path, "variable": it.get("variable", (str,), "images", expected="an HDF5 dataset (N, H, W)"),
                 "index": it.get("index", (int,), 0, expected="an image index"),
                 "split": it.get("split", (str,), None, expected="an HDF5 index dataset, e.g. \"test_index\"")}
        it.finish()
    size = t.get("size", (int,), 128, expected="the image size in pixels")
    if not 8 <= size <= 4096:
        raise t.error("size", f"expected an image size in [8, 4096], got {size}")
    image["size"] = size
    options = {}
    for key, (types, default) in IMAGING_KINDS[kind].items():
        options[key] = t.get(key, types if isinstance(types, tuple) else (types,), default,
                             expected="true or false" if types is bool else "a number")
        if key in ("coils", "views") and options[key] < 1 or key == "acceleration" and options[key] < 1:
            raise t.error(key, f"expected a number >= 1, got {options[key]!r}")
        if key == "noise" and options[key] < 0:
            raise t.error(key, f"expected a noise level >= 0, got {options[key]!r}")
    device = t.get("device", (str,), "cpu", expected='"cpu" or "cuda"')
    t.finish()
    try:
        pixels = load_image(**image)  # fails now, naming the file, rather than at solve time
    except (OSError, KeyError, IndexError, ValueError) as err:
        raise ConfigError(file, "problem.image", str(err)) from None
    return ImagingConfig(kind, image, options, device, pixels)


def _pressure(t: _Table, file: Path) -> PressureConfig:
    """`[problem] kind = "pressure"`: flags and rhs (.npy files relative to the config), boundary, dtype, device."""
    import numpy as np

    from .data.generators.dcdm import FACES, FLUID

    arrays = {}
    for key, what in (("flags", "cell flags (0 fluid, 1 solid, 2 air), 2-D or 3-D uint8"),
                      ("rhs", "the right-hand side, the shape of flags")):
        path = (file.parent / t.get(key, (str,), expected=f"a .npy file of {what}, relative to the config")).resolve()
        if not path.is_file():
            raise t.error(key, f"no such file {str(path)!r}")
        try:
            arrays[key] = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as err:
            raise t.error(key, f"cannot read {str(path)!r} as .npy: {err}") from None
    flags, rhs = arrays["flags"], arrays["rhs"]
    if flags.ndim not in (2, 3) or flags.dtype.kind not in "iu" or not np.isin(flags, (0, 1, 2)).all():
        raise t.error("flags", f"expected a 2-D or 3-D integer array of 0 (fluid), 1 (solid), 2 (air), got "
                               f"{flags.dtype} of shape {flags.shape}")
    if rhs.shape != flags.shape or rhs.dtype.kind != "f" or not np.isfinite(rhs).all():
        raise t.error("rhs", f"expected finite floats of the flags' shape {flags.shape}, got {rhs.dtype} of shape {rhs.shape}")
    if np.abs(rhs[flags != FLUID]).max(initial=0.0) > 0:
        raise t.error("rhs", "expected zeros off the fluid cells (flag 0): those rows of the matrix are empty")
    boundary = t.get("boundary", (str,), "open-top", expected=" or ".join(f'"{f}"' for f in FACES))
    if boundary not in FACES:
        raise t.error("boundary", f"expected one of {', '.join(FACES)}, got {boundary!r}")
    dtype, device = _dtype_device(t)
    t.finish()
    return PressureConfig(flags.astype(np.uint8), torch.as_tensor(rhs), boundary, dtype, device)


def _operator(t: _Table, grid: Grid, constants: dict) -> str:
    """The expression of L[u] in u, its derivatives (u_x, u_xx, u_xy, ...) and the coordinates."""
    text = t.get("operator", (str,), expected='an expression in u and its derivatives, e.g. "u_xx + u*(u**2 - 1)"')
    try:
        Expression(text, ["u", *derivative_names(grid.names), *grid.names], constants)
    except ValueError as err:
        raise t.error("operator", str(err)) from None
    return text


def _field(t: _Table, key: str, grid: Grid, constants: dict, file: Path) -> Any:
    """A number, an expression string (checked by evaluating it once), or {file = ..., variable = ...}."""
    value = t.get(key, (int, float, str, dict), expected="a number, an expression string or {file = \"...\"}")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            expr = Expression(value, grid.names, constants)
            centre = {n: torch.tensor((lo + hi) / 2, dtype=torch.float64) for n, lo, hi in zip(grid.names, grid.lower, grid.upper)}
            probe = torch.as_tensor(expr(**centre))
        except Exception as err:  # noqa: BLE001 - any failure of a user expression is a config error
            raise t.error(key, str(err)) from None
        if probe.is_complex() or not bool(torch.isfinite(probe).all()):
            raise t.error(key, f"expression {value!r} is not a finite real number at the domain centre")
        return value
    return _data_file(_Table(value, t.path(key), file), grid, file)


def _data_file(t: _Table, grid: Grid, file: Path) -> torch.Tensor:
    """Load an array on the grid's unknowns `(*points)`, or a stack of them `(n, *points)`, from .npy,
    NetCDF (.nc) or HDF5 (.h5/.hdf5)."""
    rel = t.get("file", (str,), expected="a path relative to the config file")
    variable = t.get("variable", (str,), None, expected="the variable (NetCDF) or dataset (HDF5) name")
    t.finish()
    path = (file.parent / rel).resolve()
    if not path.is_file():
        raise t.error("file", f"no such file {str(path)!r}")
    try:
        if path.suffix == ".npy":
            import numpy as np

            array = np.load(path, allow_pickle=False)
        elif path.suffix == ".nc":
            import xarray as xr

            with xr.open_dataset(path) as ds:
                name = variable or next(iter(ds.data_vars))
                array = ds[name].values
        elif path.suffix in (".h5", ".hdf5"):
            import h5py

            with h5py.File(path, "r") as h5:
                if variable is None:
                    raise t.error("variable", "required for HDF5 files (the dataset name)")
                array = h5[variable][()]
        else:
            raise t.error("file", f"unsupported file type {path.suffix!r}; expected .npy, .nc, .h5 or .hdf5")
    except ConfigError:
        raise
    except Exception as err:  # noqa: BLE001
        raise t.error("file", f"cannot read {path.name}: {err}") from None
    if tuple(array.shape) != grid.points and tuple(array.shape[1:]) != grid.points:
        raise t.error("file", f"array in {path.name} has shape {tuple(array.shape)}, expected the grid's points "
                              f"{grid.points} (or a stack (n, *points), e.g. the last states for a learned rollout)")
    return torch.as_tensor(array, dtype=torch.float64)
