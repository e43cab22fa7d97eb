"""PDE discretisation: observed second-order convergence on the shipped configs and on manufactured
problems for every boundary condition, 1-D/2-D/3-D, every kind of field; expression safety."""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import torch

import sciml
from sciml import Grid, PDEProblem
from sciml.pde import Expression, discretize

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ["poisson2d.toml", "helmholtz2d.toml", "variable-coefficient2d.toml"]
PI = math.pi


def errors(make, sizes, solver="cg", **options):
    """rel_l2_error of `make(n)` for each n; every solve must converge."""
    out = []
    for n in sizes:
        sol = sciml.solve(make(n), solver, **{"rtol": 1e-12, **options})
        assert sol.converged, f"n={n}: {sol.status.name}: {sol.info['reason']}"
        out.append(sol.info["rel_l2_error"])
    return out


def orders(errs):
    return [math.log2(a / b) for a, b in zip(errs, errs[1:])]


def assert_second_order(errs, finest_bound):
    obs = orders(errs)
    assert all(1.8 <= p <= 2.2 for p in obs), f"orders {obs} from errors {errs}"
    assert errs[-1] < finest_bound, errs


# --- the shipped configs -----------------------------------------------------------------------
@pytest.mark.parametrize("name", CONFIGS)
def test_shipped_config_converges_at_second_order(name):
    cfg = sciml.config.load(ROOT / "solvers" / name)
    assert cfg.problem_config.grid.bc == ("dirichlet", "dirichlet")
    solver = cfg.solver()  # the config's own solver (Helmholtz may be indefinite: not necessarily cg)

    def make(n):
        grid = dataclasses.replace(cfg.problem_config.grid, points=(n, n))
        problem = dataclasses.replace(cfg.problem(), grid=grid)
        assert problem.grid.spacing == (1 / (n + 1),) * 2
        return problem

    errs = errors(make, (15, 31, 63), solver)
    assert_second_order(errs, 2e-2)
    # the error constant is sane too: e ~ C h^2 with C = O(1)-O(100)
    assert errs[-1] / (1 / 64) ** 2 < 50


def test_poisson_config_with_cg_explicitly():
    cfg = sciml.config.load(ROOT / "solvers" / "poisson2d.toml")
    make = lambda n: dataclasses.replace(cfg.problem(), grid=dataclasses.replace(cfg.problem_config.grid, points=(n, n)))  # noqa: E731
    assert_second_order(errors(make, (15, 31, 63), "cg"), 1e-3)


# --- manufactured problems, every boundary condition -------------------------------------------------
def test_all_neumann_is_solved_up_to_a_constant():
    # -Δu = 2π² u, u = cos(πx)cos(πy) + 5: zero flux on the boundary; singular (constants)
    def make(n):
        return PDEProblem(Grid((0, 0), (1, 1), (n, n), "neumann"), source="2*pi**2*cos(pi*x)*cos(pi*y)",
                          exact="cos(pi*x)*cos(pi*y) + 5")

    d = make(16).discretize()
    assert d.nullspace and d.compatibility_defect < 1e-12
    torch.testing.assert_close(d.coords["x"], (torch.arange(16, dtype=torch.float64) + 0.5) / 16)  # cell centres
    errs = errors(make, (16, 32, 64))
    assert_second_order(errs, 5e-4)
    sol = sciml.solve(make(16), "cg", rtol=1e-12)
    assert abs(float(sol.x.mean())) < 1e-12  # the zero-mean solution is reported
    # the error is measured after removing the mean: the +5 offset does not count
    ref = sol.exact - sol.exact.mean()
    assert float(sol.exact.mean()) == pytest.approx(0.0, abs=1e-12)
    rel = float(torch.linalg.vector_norm(sol.x - ref) / torch.linalg.vector_norm(ref))
    assert sol.info["rel_l2_error"] == pytest.approx(rel, rel=1e-10)


def test_incompatible_neumann_data_is_projected_and_reported():
    grid = Grid((0, 0), (1, 1), (12, 12), "neumann")
    d = discretize(grid, source=1.0)  # ∫f ≠ 0 with zero flux: no solution; the mean is removed
    assert d.nullspace and d.compatibility_defect == pytest.approx(1.0)
    assert abs(float(d.rhs.sum())) < 1e-12


def test_periodic():
    def make(n):
        return PDEProblem(Grid((0, 0), (1, 1), (n, n), "periodic"), source="8*pi**2*sin(2*pi*x)*cos(2*pi*y)",
                          exact="sin(2*pi*x)*cos(2*pi*y)")

    assert make(16).grid.spacing == (1 / 16, 1 / 16)
    torch.testing.assert_close(make(16).discretize().coords["y"], torch.arange(16, dtype=torch.float64) / 16)
    assert_second_order(errors(make, (16, 32, 64)), 1e-3)


def test_periodic_on_a_rectangle_with_a_non_eigenfunction():
    # u = exp(sin(2πx)) cos(πy) on [0,1]x[0,2]: not a combination of a few discrete eigenvectors
    def make(n):
        return PDEProblem(Grid((0, 0), (1, 2), (n, 2 * n), "periodic"),
                          source="(4*pi**2*(sin(2*pi*x) - cos(2*pi*x)**2) + pi**2)*exp(sin(2*pi*x))*cos(pi*y)",
                          exact="exp(sin(2*pi*x))*cos(pi*y)")

    sol = sciml.solve(make(12), "cg", rtol=1e-12)
    assert sol.iterations > 5 and sol.x.shape == (12, 24)
    assert_second_order(errors(make, (10, 20, 40)), 1e-2)


def test_mixed_dirichlet_neumann_homogeneous():
    def make(n):  # Dirichlet in x (n-1 interior nodes), Neumann in y (n cells): h = 1/n both ways
        return PDEProblem(Grid((0, 0), (1, 1), (n - 1, n), ["dirichlet", "neumann"]),
                          source="5*pi**2*sin(2*pi*x)*cos(pi*y)", exact="sin(2*pi*x)*cos(pi*y)")

    p = make(16)
    assert p.grid.spacing == (1 / 16, 1 / 16) and not p.discretize().nullspace
    assert_second_order(errors(make, (16, 32, 64)), 1e-3)


def test_mixed_with_dirichlet_values_and_a_nonzero_neumann_flux():
    # u = sin(πx) e^y: u = 0 at x = 0, 1; outward flux -u_y(x,0) = -sin(πx), u_y(x,1) = e sin(πx).
    # One boundary field serves both: g = sin(πx)(2y-1)e^y is 0 on x = 0, 1 and the flux on y = 0, 1.
    def make(n):
        return PDEProblem(Grid((0, 0), (1, 1), (n - 1, n), ["dirichlet", "neumann"]),
                          source="(pi**2 - 1)*sin(pi*x)*exp(y)", boundary="sin(pi*x)*(2*y - 1)*exp(y)",
                          exact="sin(pi*x)*exp(y)")

    assert_second_order(errors(make, (16, 32, 64)), 5e-4)
    # the flux matters: dropping it gives an O(1) error
    wrong = PDEProblem(Grid((0, 0), (1, 1), (31, 32), ["dirichlet", "neumann"]),
                       source="(pi**2 - 1)*sin(pi*x)*exp(y)", exact="sin(pi*x)*exp(y)")
    assert sciml.solve(wrong, "cg", rtol=1e-10).info["rel_l2_error"] > 0.1


def test_nonzero_neumann_flux_1d():
    # u = cos(πx) + x²: outward flux -u'(0) = 0, u'(1) = 2, i.e. g = 2x; ∫f = -2 = -∮g: compatible
    def make(n):
        return PDEProblem(Grid(0, 1, n, "neumann"), source="pi**2*cos(pi*x) - 2", boundary="2*x",
                          exact="cos(pi*x) + x**2")

    assert make(16).discretize().compatibility_defect < 1e-12
    assert_second_order(errors(make, (16, 32, 64)), 5e-4)


def test_nonzero_neumann_flux_2d_with_where():
    # u = cos(πx)cos(πy) + x² + y²: outward flux 2x on x = 0, 1 and 2y on y = 0, 1
    def make(n):
        return PDEProblem(Grid((0, 0), (1, 1), (n, n), "neumann"), source="2*pi**2*cos(pi*x)*cos(pi*y) - 4",
                          boundary="where(x*(1 - x) == 0, 2*x, 2*y)", exact="cos(pi*x)*cos(pi*y) + x**2 + y**2")

    assert_second_order(errors(make, (15, 30, 60)), 5e-4)


def test_dirichlet_1d():
    def make(n):
        return PDEProblem(Grid(0, 2, n - 1), source="pi**2/4*sin(pi*x/2)", boundary="1 + x",
                          exact="sin(pi*x/2) + 1 + x")

    assert_second_order(errors(make, (16, 32, 64)), 2e-4)


def test_dirichlet_3d():
    def make(n):
        return PDEProblem(Grid((0, 0, 0), (1, 1, 1), (n - 1,) * 3), boundary="x*y*z",
                          source="3*pi**2*sin(pi*x)*sin(pi*y)*sin(pi*z)",
                          exact="sin(pi*x)*sin(pi*y)*sin(pi*z) + x*y*z")

    sol = sciml.solve(make(8), "cg", rtol=1e-12)
    assert sol.x.shape == (7, 7, 7) and list(sol.coords) == ["x", "y", "z"]
    assert_second_order(errors(make, (4, 8, 16)), 5e-3)


def test_mixed_3d_all_three_conditions():
    def make(n):
        return PDEProblem(Grid((0, 0, 0), (1, 1, 1), (n - 1, n, n), ["dirichlet", "neumann", "periodic"]),
                          source="6*pi**2*sin(pi*x)*cos(pi*y)*cos(2*pi*z) + 2*pi**2*sin(pi*x)*cos(pi*y)",
                          exact="sin(pi*x)*cos(pi*y)*(cos(2*pi*z) + 1)")

    assert_second_order(errors(make, (4, 8, 16)), 2e-2)


def test_callable_source_and_exact():
    def make(n):
        return PDEProblem(Grid((0, 0), (1, 1), (n - 1, n - 1)),
                          source=lambda x, y: 2 * PI**2 * torch.sin(PI * x) * torch.sin(PI * y),
                          boundary=lambda x, y: x * x - y * y,  # harmonic
                          exact=lambda x, y: torch.sin(PI * x) * torch.sin(PI * y) + x * x - y * y)

    assert_second_order(errors(make, (16, 32, 64)), 1e-3)
    # a callable and the equivalent expression discretise identically
    same = PDEProblem(Grid((0, 0), (1, 1), (15, 15)), source="2*pi**2*sin(pi*x)*sin(pi*y)", boundary="x**2 - y**2")
    d1, d2 = make(16).discretize(), same.discretize()
    torch.testing.assert_close(d1.rhs, d2.rhs, rtol=1e-13, atol=1e-12)


def _tensor_on_grid(grid: Grid, fn):
    c = grid.coords()
    return fn(*torch.meshgrid(*c.values(), indexing="ij"))


VARCOEF_SOURCE = ("(1 + 5*pi**2*(1 + x**2 + y**2))*sin(pi*x)*sin(2*pi*y) - 2*pi*x*cos(pi*x)*sin(2*pi*y)"
                  " - 4*pi*y*sin(pi*x)*cos(2*pi*y) - 3*x*y")


def test_tensor_coefficient_on_the_grid():
    # a = 1 + x² + y² given as node values (averaged to faces), c = 1 as a tensor too
    def make(n):
        grid = Grid((0, 0), (1, 1), (n - 1, n - 1))
        a = _tensor_on_grid(grid, lambda X, Y: 1 + X**2 + Y**2)
        return PDEProblem(grid, a=a, c=torch.ones(grid.points, dtype=torch.float64), boundary="x*y",
                          source=VARCOEF_SOURCE, exact="sin(pi*x)*sin(2*pi*y) + x*y")

    errs = errors(make, (16, 32, 64))
    assert_second_order(errs, 2e-3)
    # comparable to the same problem with a evaluated exactly on the faces
    exact_a = PDEProblem(Grid((0, 0), (1, 1), (63, 63)), a="1 + x**2 + y**2", c=1.0, boundary="x*y",
                         source=VARCOEF_SOURCE, exact="sin(pi*x)*sin(2*pi*y) + x*y")
    e_faces = sciml.solve(exact_a, "cg", rtol=1e-12).info["rel_l2_error"]
    assert e_faces < errs[-1] < 2 * e_faces


def test_tensor_source_and_exact():
    grid = Grid((0, 0), (1, 1), (31, 31))
    f = _tensor_on_grid(grid, lambda X, Y: 2 * PI**2 * torch.sin(PI * X) * torch.sin(PI * Y))
    u = _tensor_on_grid(grid, lambda X, Y: torch.sin(PI * X) * torch.sin(PI * Y))
    sol = sciml.solve(PDEProblem(grid, source=f, exact=u), "cg", rtol=1e-12)
    ref = sciml.solve(PDEProblem(grid, source="2*pi**2*sin(pi*x)*sin(pi*y)", exact="sin(pi*x)*sin(pi*y)"), "cg",
                      rtol=1e-12)
    torch.testing.assert_close(sol.x, ref.x, rtol=1e-12, atol=1e-13)
    assert sol.info["rel_l2_error"] < 1e-3
    with pytest.raises(ValueError, match="source: tensor has shape"):
        PDEProblem(grid, source=torch.zeros(30, 31)).discretize()


def test_float32():
    p = PDEProblem(Grid((0, 0), (1, 1), (31, 31)), source="2*pi**2*sin(pi*x)*sin(pi*y)", exact="sin(pi*x)*sin(pi*y)",
                   dtype=torch.float32)
    sol = sciml.solve(p, "cg", rtol=1e-5)
    assert sol.converged and sol.x.dtype == torch.float32 and sol.coords["x"].dtype == torch.float32
    assert sol.info["rel_l2_error"] < 2e-3  # the O(h²) error 8e-4, not round-off, dominates


def test_solve_on_device(device):
    # expressions, a callable, a CPU tensor coefficient and Neumann flux data all follow the problem's device
    grid = Grid((0, 0), (1, 1), (23, 24), ["dirichlet", "neumann"])
    a = _tensor_on_grid(grid, lambda X, Y: 1 + X * Y)

    def make(dev):
        return PDEProblem(grid, source=lambda x, y: torch.sin(PI * x) * (1 + y), a=a, c="1 + x", boundary="x*y",
                          exact="x*y", device=dev)

    sol = sciml.solve(make(device), "cg", rtol=1e-12)
    ref = sciml.solve(make("cpu"), "cg", rtol=1e-12)
    assert sol.converged and sol.x.device.type == device.type and sol.coords["x"].device.type == device.type
    torch.testing.assert_close(sol.x.cpu(), ref.x, rtol=1e-9, atol=1e-11)
    assert sol.info["rel_l2_error"] == pytest.approx(ref.info["rel_l2_error"], rel=1e-6)


def test_bad_pde_inputs():
    with pytest.raises(ValueError, match="boundary condition"):
        Grid((0, 0), (1, 1), (8, 8), "robin")
    with pytest.raises(ValueError, match="lower must be < upper"):
        Grid((0, 0), (1, 0), (8, 8))
    with pytest.raises(ValueError, match="dtype"):
        PDEProblem(Grid(0, 1, 8), dtype=torch.int64)
    with pytest.raises(TypeError, match="grid"):
        PDEProblem((8, 8))


def test_all_neumann_without_exact_solution():
    sol = sciml.solve(PDEProblem(Grid((0, 0), (1, 1), (8, 8), "neumann"), source="cos(pi*x)"), "cg", rtol=1e-10)
    assert sol.converged and abs(float(sol.x.mean())) < 1e-12 and "rel_l2_error" not in sol.info


# --- expressions ------------------------------------------------------------------------------------
def test_expression_evaluates_like_torch():
    x = torch.linspace(0, 1, 7, dtype=torch.float64)
    y = torch.linspace(-1, 2, 7, dtype=torch.float64)
    e = Expression("sin(pi*x)*exp(-y) + k*x**2 - sqrt(abs(y)) + where(x > 0.5, 0.1, 0.2)", ["x", "y"], {"k": 3.0})
    ref = torch.sin(PI * x) * torch.exp(-y) + 3 * x**2 - torch.sqrt(torch.abs(y)) + torch.where(x > 0.5, 0.1, 0.2 + 0 * x)
    out = e(x=x, y=y)
    assert out.dtype == torch.float64
    torch.testing.assert_close(out, ref, rtol=1e-15, atol=1e-15)
    # number branches keep float64 precision (not torch's float32 default for Python scalars)
    assert Expression("where(x > 0.5, 0.1, 0.2)", ["x"])(x=x)[-1].item() == 0.1
    # functions accept plain numbers too
    torch.testing.assert_close(Expression("maximum(x, 0.3) + sin(1)", ["x"])(x=x), torch.clamp(x, min=0.3) + math.sin(1))


@pytest.mark.parametrize("text, words", [
    ("__import__('os')", ["__import__"]),
    ("__import__('os').system('true')", ["unknown function", "system"]),
    ("x.real", ["Attribute", "not allowed"]),
    ("().__class__", ["not allowed"]),
    ("x + q", ["unknown name 'q'", "allowed"]),
    ("open('/etc/passwd')", ["unknown function 'open'"]),
    ("eval('1')", ["unknown function 'eval'"]),
    ("foo(x)", ["unknown function 'foo'", "sin"]),
    ("x[0]", ["Subscript"]),
    ("lambda: 1", ["Lambda"]),
    ("'text'", ["not allowed"]),
    ("sin(x=1)", ["unknown function"]),
    ("[x for x in ()]", ["not allowed"]),
    ("x +", ["invalid expression"]),
    ("", ["non-empty"]),
])
def test_expression_rejects_unsafe_or_unknown(text, words):
    with pytest.raises(ValueError) as err:
        Expression(text, ["x"])
    msg = str(err.value)
    for w in words:
        assert w in msg, msg
    if text:
        assert repr(text) in msg or "unknown function" in msg or "is not allowed" in msg


def test_expression_huge_powers_fail_fast():
    with pytest.raises(ValueError, match="cannot evaluate expression '9[*][*]9[*][*]9': OverflowError"):
        Expression("9**9**9", ["x"])(x=torch.tensor(0.5))
    with pytest.raises(ValueError, match="ZeroDivisionError"):
        Expression("x + 1/0", ["x"])(x=torch.tensor(0.5))
    with pytest.raises(ValueError, match="too large"):
        Expression("1" + "0" * 400, ["x"])


def test_expression_errors_reach_pde_problems():
    with pytest.raises(ValueError, match="unknown name 'z'"):
        PDEProblem(Grid((0, 0), (1, 1), (8, 8)), source="z").discretize()  # 2-D: no z
