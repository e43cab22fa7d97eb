"""Solver configs: TOML files validated into typed objects, then built into a problem and a solver.

Every error names the file and the key and says what was expected (`ConfigError`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ._toml import ConfigError, _Table, read_toml
from .pde import Expression, Grid
from .pde.expressions import derivative_names
from .problems import PDEProblem
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
class OutputConfig:
    dir: str
    name: str
    plot: bool


@dataclass
class Config:
    """A validated config file; `problem()` and `solver()` build the objects it describes."""

    file: Path
    problem_config: ProblemConfig
    solver_name: str
    solver_options: dict[str, Any]
    output: OutputConfig
    _solver: Solver | None = field(default=None, repr=False)

    def problem(self, dtype: torch.dtype | None = None, device: str | None = None) -> PDEProblem:
        p = self.problem_config
        return PDEProblem(p.grid, constants=p.constants, dtype=dtype or p.dtype, device=device or p.device,
                          name=self.output.name, **p.fields)

    def solver(self) -> Solver:
        if self._solver is None:
            try:
                self._solver = make_solver(self.solver_name, **self.solver_options)
            except (TypeError, ValueError) as err:
                raise ConfigError(self.file, self._solver_key(), str(err)) from None
        return self._solver

    def _solver_key(self) -> str:
        """The key to blame for a solver that cannot be built: solver.name, solver.<option>, else solver."""
        cls = available().get(self.solver_name)
        if cls is None:
            return "solver.name"
        for key, value in self.solver_options.items():
            if key not in cls.option_names():
                return f"solver.{key}"
            try:
                make_solver(self.solver_name, **{key: value})
            except (TypeError, ValueError):
                return f"solver.{key}"
        return "solver"


def load(path: str | Path) -> Config:
    """Read and validate a config; raises `ConfigError` naming the file and key on any problem."""
    file, data = read_toml(path)
    root = _Table(data, "", file)
    problem = _problem(root.table("problem"), file)
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
    dtype = t.get("dtype", (str,), "float64", expected='"float32" or "float64"')
    if dtype not in DTYPES:
        raise t.error("dtype", f'expected "float32" or "float64", got {dtype!r}')
    device = t.get("device", (str,), "cpu", expected='"cpu" or "cuda"')
    t.finish()
    return ProblemConfig(equation, grid, fields, constants, DTYPES[dtype], device)


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
    """Load an array on the grid's unknowns from .npy, NetCDF (.nc) or HDF5 (.h5/.hdf5)."""
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
    if tuple(array.shape) != grid.points:
        raise t.error("file", f"array in {path.name} has shape {tuple(array.shape)}, expected the grid's points {grid.points}")
    return torch.as_tensor(array, dtype=torch.float64)
