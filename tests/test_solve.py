"""The public API `sciml.solve`: results against scipy/torch references, option handling, status
reporting, batching, and the `Solution` outputs (xarray, NetCDF, PNG, atomic writes)."""
from __future__ import annotations

import json
import math
import os
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch

import sciml
from helpers import gen as _gen
from sciml.solvers import CG, SolverOptionError

pytestmark = pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta state")
warnings.filterwarnings("ignore", message=".*Sparse invariant checks.*")

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"




def _spd_scipy(n: int = 60) -> sp.csr_matrix:
    """A sparse SPD matrix: 1-D Laplacian with a variable positive shift (well conditioned)."""
    shift = 0.5 + np.linspace(0.0, 1.0, n)
    return sp.diags([-np.ones(n - 1), 2.0 + shift, -np.ones(n - 1)], [-1, 0, 1], format="csr")


def _linear_problem(n: int = 60, seed: int = 0):
    A = _spd_scipy(n)
    b = np.random.default_rng(seed).standard_normal(n)
    return A, b, sciml.LinearProblem(sciml.operators.aslinearoperator(A), torch.from_numpy(b))


def _pde_solution(n: int = 15) -> sciml.Solution:
    grid = sciml.Grid(lower=(0, 0), upper=(1, 1), points=(n, n))
    problem = sciml.PDEProblem(grid, source="2*pi**2*sin(pi*x)*sin(pi*y)", boundary="x*y",
                               exact="sin(pi*x)*sin(pi*y) + x*y")
    return sciml.solve(problem, "cg", rtol=1e-12)


def _open(path):
    xr = pytest.importorskip("xarray")
    with xr.open_dataset(path, engine="h5netcdf") as ds:
        return ds.load()


# --- solving a linear system ---------------------------------------------------------------------
def test_cg_matches_spsolve_and_solution_fields():
    A, b, problem = _linear_problem()
    sol = sciml.solve(problem, "cg", rtol=1e-10)
    ref = spla.spsolve(A.tocsc(), b)
    assert isinstance(sol, sciml.Solution)
    assert isinstance(sol.x, torch.Tensor) and sol.x.shape == (60,) and sol.x.dtype == torch.float64
    np.testing.assert_allclose(sol.x.numpy(), ref, rtol=1e-8, atol=1e-10)
    # the reported residual is the true one, below the tolerance
    true_rel = np.linalg.norm(b - A @ sol.x.numpy()) / np.linalg.norm(b)
    assert true_rel <= 1e-10
    assert sol.residual == pytest.approx(true_rel, rel=1e-6, abs=1e-16)
    assert sol.converged is True
    assert sol.status is sciml.Status.SUCCESS
    assert isinstance(sol.iterations, int) and 1 <= sol.iterations <= 60
    assert isinstance(sol.residuals, torch.Tensor) and sol.residuals.shape == (sol.iterations + 1,)
    assert float(sol.residuals[0]) == pytest.approx(np.linalg.norm(b), rel=1e-12)  # x0 = 0: r0 = b
    assert float(sol.residuals[-1]) <= 1e-10 * np.linalg.norm(b)
    assert isinstance(sol.time, float) and 0 < sol.time < 60
    assert isinstance(sol.info, dict)
    assert sol.info["solver"] == "cg"
    assert sol.info["options"]["rtol"] == 1e-10
    assert sol.info["reason"] == sciml.Status.SUCCESS.message
    assert "rel_l2_error" not in sol.info  # no exact solution for a LinearProblem
    assert sol.stats["status"].shape == () and int(sol.stats["status"]) == 0
    assert int(sol.stats["iterations"]) == sol.iterations
    assert sol.variable == "x" and sol.exact is None
    line = sol.summary()
    assert "\n" not in line and line.startswith("cg: converged") and f"iterations {sol.iterations}" in line


def test_solver_object_and_overriding_options():
    A, b, problem = _linear_problem()
    ref = spla.spsolve(A.tocsc(), b)
    solver = CG(rtol=1e-8)
    sol = sciml.solve(problem, solver)
    assert sol.converged and sol.info["options"]["rtol"] == 1e-8
    assert np.linalg.norm(sol.x.numpy() - ref) <= 1e-6 * np.linalg.norm(ref)
    # options alongside an object override it, without changing the object
    tight = sciml.solve(problem, solver, rtol=1e-13)
    assert tight.info["options"]["rtol"] == 1e-13 and solver.rtol == 1e-8
    assert tight.iterations > sol.iterations
    assert np.linalg.norm(tight.x.numpy() - ref) <= 1e-11 * np.linalg.norm(ref)
    capped = sciml.solve(problem, solver, maxiter=3)
    assert capped.iterations == 3 and capped.info["options"]["maxiter"] == 3 and solver.maxiter is None


def test_unknown_option_names_it_and_lists_valid_ones():
    _, _, problem = _linear_problem()
    with pytest.raises(SolverOptionError) as err:
        sciml.solve(problem, "cg", tol=1e-3)
    msg = str(err.value)
    assert "'tol'" in msg and "rtol" in msg and "maxiter" in msg and "atol" in msg
    assert isinstance(err.value, TypeError) and isinstance(err.value, ValueError)
    with pytest.raises(TypeError, match="tol"):  # also with a solver object
        sciml.solve(problem, CG(), tol=1e-3)


def test_unknown_solver_lists_registered_names():
    _, _, problem = _linear_problem()
    with pytest.raises(ValueError, match="no-such-solver") as err:
        sciml.solve(problem, "no-such-solver")
    for name in sciml.available():
        assert name in str(err.value)
    with pytest.raises(TypeError, match="solver must be"):
        sciml.solve(problem, 42)


@pytest.mark.parametrize("options, word", [({"rtol": -1}, "rtol"), ({"rtol": float("nan")}, "rtol"),
                                           ({"maxiter": 0}, "maxiter"), ({"damp": -1.0}, "damp")])
def test_bad_option_value_is_a_clear_error(options, word):
    _, _, problem = _linear_problem()
    with pytest.raises(ValueError, match=word):
        sciml.solve(problem, "cg", **options)
    with pytest.raises(ValueError, match=word):  # fails at construction, before any solve
        CG(**options)


def test_available():
    names = sciml.available()
    assert "cg" in names and names["cg"] is CG
    assert list(names) == sorted(names)


# --- inverse problems -------------------------------------------------------------------------------
def test_inverse_problem_solves_the_normal_equations():
    g = _gen(1)
    M = torch.randn(40, 12, dtype=torch.float64, generator=g)
    y = torch.randn(40, dtype=torch.float64, generator=g)
    ref = torch.linalg.lstsq(M, y.unsqueeze(-1)).solution.squeeze(-1)
    sol = sciml.solve(sciml.InverseProblem(M, y), "cg", rtol=1e-12)
    assert sol.converged and sol.x.shape == (12,)
    assert torch.linalg.vector_norm(sol.x - ref) <= 1e-9 * torch.linalg.vector_norm(ref)
    # batched measurements: one least-squares solution per row
    Y = torch.randn(3, 40, dtype=torch.float64, generator=g)
    refs = torch.linalg.lstsq(M.expand(3, 40, 12), Y.unsqueeze(-1)).solution.squeeze(-1)
    batch = sciml.solve(sciml.InverseProblem(sciml.operators.aslinearoperator(M), Y), "cg", rtol=1e-12)
    assert batch.x.shape == (3, 12) and batch.stats["iterations"].shape == (3,)
    torch.testing.assert_close(batch.x, refs, rtol=1e-8, atol=1e-10)


def test_inverse_problem_damp_gives_tikhonov():
    g = _gen(2)
    M = torch.randn(30, 10, dtype=torch.float64, generator=g)
    y = torch.randn(30, dtype=torch.float64, generator=g)
    damp = 0.7
    ref = torch.linalg.solve(M.T @ M + damp**2 * torch.eye(10, dtype=torch.float64), M.T @ y)
    sol = sciml.solve(sciml.InverseProblem(M, y), "cg", rtol=1e-12, damp=damp)
    assert sol.converged and sol.info["options"]["damp"] == damp
    torch.testing.assert_close(sol.x, ref, rtol=1e-9, atol=1e-11)
    undamped = sciml.solve(sciml.InverseProblem(M, y), "cg", rtol=1e-12)
    assert torch.linalg.vector_norm(sol.x) < torch.linalg.vector_norm(undamped.x)  # damping shrinks x


def test_damp_with_a_linear_problem_is_an_error():
    _, _, problem = _linear_problem()
    with pytest.raises(ValueError, match="damp"):
        sciml.solve(problem, "cg", damp=0.1)


# --- batches ---------------------------------------------------------------------------------------
def test_batched_linear_problem_reports_per_system():
    n = 20
    A = sciml.operators.aslinearoperator(torch.diag(torch.arange(1.0, n + 1, dtype=torch.float64)))
    b = torch.zeros(3, n, dtype=torch.float64)
    b[0, 0] = 1.0          # one eigencomponent: 1 iteration
    b[1] = 1.0             # n distinct eigencomponents: n iterations
    b[2, :2] = 1.0         # two: 2 iterations
    sol = sciml.solve(sciml.LinearProblem(A, b), "cg", rtol=1e-10)
    expected = torch.arange(1.0, n + 1, dtype=torch.float64)
    torch.testing.assert_close(sol.x, b / expected, rtol=1e-9, atol=1e-12)
    assert sol.stats["iterations"].tolist() == [1, n, 2]
    assert sol.stats["status"].tolist() == [0, 0, 0]
    assert sol.iterations == n
    assert sol.residuals.shape == (n + 1, 3)
    torch.testing.assert_close(sol.residuals[0], torch.linalg.vector_norm(b, dim=-1))
    # each system alone takes the same number of iterations
    for i in range(3):
        single = sciml.solve(sciml.LinearProblem(A, b[i]), "cg", rtol=1e-10)
        assert single.iterations == sol.stats["iterations"][i]


# --- non-convergence is reported -------------------------------------------------------------------
def test_max_iterations_is_reported():
    _, _, problem = _linear_problem()
    sol = sciml.solve(problem, "cg", rtol=1e-12, maxiter=5)
    assert sol.converged is False
    assert sol.status == sciml.Status.MAX_ITERATIONS
    assert sol.iterations == 5 and sol.residuals.shape == (6,)
    assert isinstance(sol.info["reason"], str) and sol.info["reason"] == sciml.Status.MAX_ITERATIONS.message
    assert "maximum number of iterations" in sol.info["reason"]
    assert sol.residual > 1e-12
    assert "max_iterations" in sol.summary()


def test_indefinite_operator_breaks_down():
    A = torch.diag(torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64))
    sol = sciml.solve(sciml.LinearProblem(A, torch.ones(3, dtype=torch.float64)), "cg", rtol=1e-10)
    assert sol.converged is False
    assert sol.status == sciml.Status.BREAKDOWN
    assert "positive definite" in sol.info["reason"]
    # in a batch only the broken system is flagged; the status of the batch is the worst
    B = torch.stack([torch.ones(3, dtype=torch.float64), torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)])
    batch = sciml.solve(sciml.LinearProblem(A, B), "cg", rtol=1e-10)
    assert batch.stats["status"].tolist() == [int(sciml.Status.BREAKDOWN), int(sciml.Status.SUCCESS)]
    assert batch.status == sciml.Status.BREAKDOWN
    torch.testing.assert_close(batch.x[1], torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64))


# --- outputs ---------------------------------------------------------------------------------------
def test_to_xarray_of_a_pde_solution():
    sol = _pde_solution()
    ds = sol.to_xarray()
    assert set(ds.data_vars) >= {"u", "exact", "error", "residual", "status", "iterations"}
    assert ds["u"].dims == ("x", "y") and ds["u"].shape == (15, 15)
    np.testing.assert_array_equal(ds["u"].values, sol.x.numpy())
    np.testing.assert_array_equal(ds["exact"].values, sol.exact.numpy())
    np.testing.assert_allclose(ds["error"].values, (sol.x - sol.exact).numpy())
    np.testing.assert_allclose(ds["x"].values, np.arange(1, 16) / 16)
    assert ds["residual"].dims == ("iteration",) and ds.sizes["iteration"] == sol.iterations + 1
    assert ds.attrs["solver"] == "cg" and ds.attrs["status"] == "SUCCESS" and ds.attrs["converged"] == 1
    assert ds.attrs["rel_l2_error"] == sol.info["rel_l2_error"]
    info = json.loads(ds.attrs["info"])
    assert info["options"]["rtol"] == 1e-12 and info["reason"] == sol.info["reason"]
    # the error is second order and matches the reported relative error
    err = np.linalg.norm(ds["error"].values) / np.linalg.norm(ds["exact"].values)
    assert err == pytest.approx(sol.info["rel_l2_error"], rel=1e-12) and err < 5e-3


def test_save_roundtrip_and_no_temporary_files(tmp_path):
    sol = _pde_solution()
    path = tmp_path / "run" / "poisson.nc"  # the folder is created
    sol.save(path)
    assert sorted(os.listdir(path.parent)) == ["poisson.nc"]
    assert path.read_bytes()[:8] == b"\x89HDF\r\n\x1a\n"  # NetCDF-4 is HDF5
    ds = _open(path)
    np.testing.assert_array_equal(ds["u"].values, sol.x.numpy())
    np.testing.assert_array_equal(ds["exact"].values, sol.exact.numpy())
    np.testing.assert_array_equal(ds["residual"].values, sol.residuals.numpy())
    np.testing.assert_allclose(ds["y"].values, sol.coords["y"].numpy())
    assert int(ds["iterations"]) == sol.iterations and int(ds["status"]) == 0
    assert float(ds.attrs["rel_l2_error"]) == sol.info["rel_l2_error"]
    assert ds.attrs["solver"] == "cg" and int(ds.attrs["converged"]) == 1
    assert float(ds.attrs["time_s"]) == pytest.approx(sol.time)
    # overwriting works and still leaves one file
    sol.save(path)
    assert sorted(os.listdir(path.parent)) == ["poisson.nc"]


def test_batched_and_complex_solutions_save(tmp_path):
    g = _gen(3)
    n = 8
    B = torch.randn(n, n, dtype=torch.complex128, generator=g)
    A = B @ B.mH + n * torch.eye(n, dtype=torch.complex128)
    b = torch.randn(2, n, dtype=torch.complex128, generator=g)
    sol = sciml.solve(sciml.LinearProblem(A, b), "cg", rtol=1e-12)
    ref = torch.linalg.solve(A, b.unsqueeze(-1)).squeeze(-1)
    torch.testing.assert_close(sol.x, ref, rtol=1e-9, atol=1e-12)
    sol.save(tmp_path / "c.nc")
    ds = _open(tmp_path / "c.nc")
    assert "x" not in ds and {"x_real", "x_imag"} <= set(ds.data_vars)
    assert ds["x_real"].dims == ("batch_0", "dim_0")
    np.testing.assert_array_equal(ds["x_real"].values + 1j * ds["x_imag"].values, sol.x.numpy())
    assert ds["residual"].dims == ("iteration", "batch_0")
    np.testing.assert_array_equal(ds["iterations"].values, sol.stats["iterations"].numpy())
    assert os.listdir(tmp_path) == ["c.nc"]


def test_plot_writes_png(tmp_path):
    _pde_solution().plot(tmp_path / "pde.png")
    _, _, problem = _linear_problem()
    sciml.solve(problem, "cg").plot(tmp_path / "linear.png")  # 1-D solution
    grid = sciml.Grid(lower=(0, 0, 0), upper=(1, 1, 1), points=(5, 5, 5))
    sol3 = sciml.solve(sciml.PDEProblem(grid, source=1.0), "cg")
    sol3.plot(tmp_path / "pde3.png")  # 3-D: a slice
    for name in ("pde.png", "linear.png", "pde3.png"):
        data = (tmp_path / name).read_bytes()
        assert data[:8] == PNG_MAGIC and len(data) > 5000
    assert sorted(os.listdir(tmp_path)) == ["linear.png", "pde.png", "pde3.png"]


def test_failed_writes_leave_nothing_behind(tmp_path, monkeypatch):
    import matplotlib.figure
    import xarray as xr

    sol = _pde_solution(7)
    good = tmp_path / "keep.nc"
    sol.save(good)
    before = good.read_bytes()

    def broken_to_netcdf(self, path, *args, **kwargs):
        with open(path, "wb") as fh:  # a partial file, then a failure
            fh.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(xr.Dataset, "to_netcdf", broken_to_netcdf)
    with pytest.raises(OSError, match="disk full"):
        sol.save(tmp_path / "new.nc")
    with pytest.raises(OSError, match="disk full"):
        sol.save(good)  # an existing file is not clobbered by a failed write
    assert sorted(os.listdir(tmp_path)) == ["keep.nc"]
    assert good.read_bytes() == before

    def broken_savefig(self, fname, *args, **kwargs):
        with open(fname, "wb") as fh:
            fh.write(PNG_MAGIC)
        raise RuntimeError("renderer failed")

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", broken_savefig)
    with pytest.raises(RuntimeError, match="renderer failed"):
        sol.plot(tmp_path / "fig.png")
    assert sorted(os.listdir(tmp_path)) == ["keep.nc"]


def test_solution_on_device_saves_and_plots(device, tmp_path):
    _, b_np, problem = _linear_problem(30)
    A = problem.A.to_dense().to(device)
    b = torch.from_numpy(b_np).to(device)
    sol = sciml.solve(sciml.LinearProblem(A, torch.stack([b, 2 * b])), "cg", rtol=1e-12)
    assert sol.x.device.type == device.type and sol.converged
    torch.testing.assert_close(sol.x[1], 2 * sol.x[0], rtol=1e-9, atol=1e-12)
    ref = torch.linalg.solve(A.cpu(), b.cpu())
    torch.testing.assert_close(sol.x[0].cpu(), ref, rtol=1e-9, atol=1e-12)
    sol.save(tmp_path / "s.nc")
    sol.plot(tmp_path / "s.png")
    np.testing.assert_array_equal(_open(tmp_path / "s.nc")["x"].values, sol.x.cpu().numpy())
    assert (tmp_path / "s.png").read_bytes()[:8] == PNG_MAGIC
    assert sorted(os.listdir(tmp_path)) == ["s.nc", "s.png"]


def test_rel_l2_error_matches_its_definition():
    grid = sciml.Grid(lower=(0,), upper=(1,), points=(31,))
    exact = "sin(pi*x)"
    sol = sciml.solve(sciml.PDEProblem(grid, source="pi**2*sin(pi*x)", exact=exact), "cg", rtol=1e-12)
    x = sol.coords["x"]
    ref = torch.sin(math.pi * x)
    rel = float(torch.linalg.vector_norm(sol.x - ref) / torch.linalg.vector_norm(ref))
    assert sol.info["rel_l2_error"] == pytest.approx(rel, rel=1e-12)
    assert rel < 1.5e-3  # h = 1/32: (pi h)^2 / 12 ~ 8e-4
