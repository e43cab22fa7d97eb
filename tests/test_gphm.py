"""GP-HM (`gp-kron`): kernels, Kronecker prior, derivative maps, solves, configs and bad input."""
import math

import pytest
import torch

import sciml
from sciml import config
from sciml._toml import ConfigError
from sciml.models import GPHM, SpectralMixtureKernel
from sciml.models.gp_kernels import KERNEL_KINDS
from sciml.pde import Grid
from sciml.solvers import SolverOptionError


def _kernel(kind: str, smooth: bool = False) -> SpectralMixtureKernel:
    k = SpectralMixtureKernel(components=5, kind=kind, max_frequency=3.0, smooth=smooth)
    with torch.no_grad():  # a generic parameter point, not the symmetric initialisation
        if smooth:
            k.smooth_log_weight.fill_(0.3)
            k.smooth_log_scale.fill_(-0.5)
        k.log_weight.copy_(torch.linspace(-2, 0.5, 5, dtype=torch.float64))
        k.log_scale.copy_(torch.linspace(-1, 1, 5, dtype=torch.float64))
        if kind in ("student-t", "gaussian"):
            k.frequency.copy_(torch.tensor([0.3, 1.1, 1.9, 2.2, 3.7], dtype=torch.float64))
    return k


@pytest.mark.parametrize("smooth", [False, True])
@pytest.mark.parametrize("kind", KERNEL_KINDS)
def test_kernel_derivatives_match_finite_differences(kind, smooth):
    k = _kernel(kind, smooth)
    d = torch.linspace(-1.3, 1.7, 41, dtype=torch.float64)
    h = 1e-5
    with torch.no_grad():
        k0, k1, k2 = k.derivatives(d)
        fp, fm = k.derivatives(d + h, 0)[0], k.derivatives(d - h, 0)[0]
        at_zero = k.derivatives(torch.zeros(1, dtype=torch.float64))
    assert float((k1 - (fp - fm) / (2 * h)).abs().max()) < 1e-7 * float(k1.abs().max())
    assert float((k2 - (fp - 2 * k0 + fm) / h**2).abs().max()) < 3e-6 * float(k2.abs().max())  # FD round-off ~1e-6
    total = float(k.weights.detach().sum()) + (math.exp(0.3) if smooth else 0.0)
    assert float(at_zero[0]) == pytest.approx(total, rel=1e-12)  # k(0) = sum of the weights
    freq, weight = k.spectrum()  # the plain component, if any, is listed last at frequency 0
    assert freq.numel() == weight.numel() == 5 + smooth and float(weight.sum()) == pytest.approx(total, rel=1e-12)
    if smooth:
        assert float(freq[-1]) == 0.0 and float(weight[-1]) == pytest.approx(math.exp(0.3))
    assert float(at_zero[1]) == 0.0  # smooth at 0: k'(0) = 0


@pytest.mark.parametrize("smooth", [False, True])
@pytest.mark.parametrize("kind", KERNEL_KINDS)
def test_kernel_is_positive_definite_and_toeplitz_path_matches_direct(kind, smooth):
    k = _kernel(kind, smooth)
    x = torch.linspace(0, 2, 60, dtype=torch.float64)
    with torch.no_grad():
        fast = k.matrices(x)
        direct = k.derivatives(x[:, None] - x[None, :])
    for a, b in zip(fast, direct):
        assert torch.allclose(a, b, rtol=1e-12, atol=1e-12)
    assert float(torch.linalg.eigvalsh(fast[0]).min()) > -1e-10
    # k(x, y) = k(y, x); d/dx k is odd in x - y.
    assert torch.allclose(fast[0], fast[0].mT) and torch.allclose(fast[1], -fast[1].mT)


def _model() -> GPHM:
    m = GPHM([0.0, -1.0], [1.0, 2.0], [7, 6], components=3, max_frequency=[2.0, 1.0], jitter=1e-4)
    with torch.no_grad():
        m.u.copy_(torch.randn(7, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0)))
    return m


def _dense(m: GPHM, order: tuple[int, int]) -> torch.Tensor:
    mats = [k.matrices(m.nodes(j), order=2) for j, k in enumerate(m.kernels)]
    eye = [torch.eye(n, dtype=torch.float64) for n in m.points]
    return torch.kron(mats[0][order[0]] + (m.jitter * eye[0] if order[0] == 0 else 0),
                      mats[1][order[1]] + (m.jitter * eye[1] if order[1] == 0 else 0))


def test_kronecker_log_prior_matches_dense_gaussian():
    m = _model()
    with torch.no_grad():
        F = m.factors([{2}, {1}])
        U = m.u
        got = m.log_prior(U, m.weights(U, F), F)
        C = _dense(m, (0, 0))
        u = U.reshape(-1)
        want = -0.5 * torch.logdet(C) - 0.5 * u @ torch.linalg.solve(C, u)
    assert float(got) == pytest.approx(float(want), rel=1e-10)


def test_derivative_maps_match_dense_kronecker():
    m = _model()
    with torch.no_grad():
        F = m.factors([{1, 2}, {1, 2}])
        U = m.u
        C = _dense(m, (0, 0))
        for alpha in [(2, 0), (0, 2), (1, 1), (2, 1)]:
            want = _dense(m, alpha) @ torch.linalg.solve(C, U.reshape(-1))
            got = m.derivative(U, F, alpha).reshape(-1)
            assert torch.allclose(got, want, rtol=1e-8, atol=1e-8 * float(want.abs().max())), alpha
        # The posterior mean at the nodes reproduces U up to the jitter's effect.
        assert torch.allclose(m.predict([m.nodes(0), m.nodes(1)]), m.smooth(U, F), atol=1e-10)


def _sin_problem(n: int, k: float, operator: str = "u_xx") -> sciml.PDEProblem:
    source = f"-{k * k}*sin({k}*x)" + (f" + sin({k}*x)*(sin({k}*x)**2 - 1)" if "u**2" in operator else "")
    return sciml.PDEProblem(Grid((0.0,), (2 * math.pi,), (n,)), source=source, boundary=f"sin({k}*x)",
                            exact=f"sin({k}*x)", operator=operator)


def test_high_frequency_1d_poisson_and_what_the_mixture_buys():
    # u = sin(20x) on [0, 2π] with 100 collocation points (5 per period): the spectral mixture finds the
    # frequency 20/2π and reaches ~4e-5; a plain Matérn-5/2 kernel stays near 2e-2 (measured).
    p = _sin_problem(98, 20.0)
    sol = sciml.solve(p, "gp-kron", max_frequency=6.0, components=10, maxiter=15)
    assert sol.converged
    assert sol.info["rel_l2_error"] < 3e-4
    assert sol.info["test_rel_l2_error"] < 3e-4
    freq, weight = (torch.tensor(v) for v in sol.info["spectrum"][0].values())
    assert abs(float(freq[weight.argmax()]) - 20 / (2 * math.pi)) < 0.05  # the learned spectrum peaks at 3.18
    plain = sciml.solve(p, "gp-kron", kernel="matern", components=1, maxiter=15)
    assert plain.info["rel_l2_error"] > 30 * sol.info["rel_l2_error"]
    # The stopping rule never looks at the exact solution: the same run without it stops identically.
    blind = sciml.PDEProblem(p.grid, source=p.source, boundary=p.boundary, operator=p.operator)
    again = sciml.solve(blind, "gp-kron", max_frequency=6.0, components=10, maxiter=15)
    assert again.iterations == sol.iterations and torch.allclose(again.x, sol.x)


def test_off_node_residual_and_best_round():
    # The validation residual is the PDE residual of the posterior mean at the cell midpoints: check it
    # against central differences of the GP prediction there (h = 1e-4 of the period).
    p = _sin_problem(98, 20.0)
    sol = sciml.solve(p, "gp-kron", max_frequency=6.0, components=10, maxiter=30, rtol=0.0, patience=1)
    nodes = torch.linspace(0, 2 * math.pi, 100, dtype=torch.float64)
    mid, h = (nodes[:-1] + nodes[1:]) / 2, 1e-4
    u = [sol.model.predict([mid + s * h])[...] for s in (-1, 0, 1)]
    fd = (u[0] - 2 * u[1] + u[2]) / h**2 + 400 * torch.sin(20 * mid)
    expected = float(fd.norm() / (400 * torch.sin(20 * mid)).norm())
    assert sol.info["validation_residual"] == pytest.approx(expected, rel=0.05)
    assert sol.info["validation_residual"] < 1e-3
    # rtol 0, patience 1: stops at the first round without a 1 % improvement and returns the best round: U and
    # the kernels of that round (its recorded error at the nodes is the returned solution's).
    h = sol.info["history"]
    best = sol.info["best_round"]
    assert "off-node" in sol.info["reason"] and best in (sol.iterations - 1, sol.iterations)
    assert min(h["validation"]) == pytest.approx(h["validation"][best - 1]) == pytest.approx(sol.info["validation_residual"])
    exact = torch.sin(20 * nodes)
    assert float((sol.model.u - exact).norm() / exact.norm()) == pytest.approx(h["rel_l2_error"][best - 1], rel=1e-9)


def test_batch_of_problems_shares_the_kernels():
    ks = (18.0, 20.0, 22.0)
    sol = sciml.solve(sciml.PDEBatch([_sin_problem(98, k) for k in ks]), "gp-kron", max_frequency=6.0,
                      components=10, maxiter=30)
    assert sol.x.shape == (3, 98) and sol.stats["status"].shape == (3,) and sol.converged
    nodes = torch.linspace(0, 2 * math.pi, 100, dtype=torch.float64)[1:-1]
    for row, k in zip(sol.x, ks):  # one spectrum for the three frequencies: measured worst 1.8e-4
        exact = torch.sin(k * nodes)
        assert float((row - exact).norm() / exact.norm()) < 1e-3
    assert len(sol.info["precisions"]["equation"]) == 3
    assert sol.info["test_rel_l2_error"] < 1e-3
    # the same problem twice: identical rows; one problem in a batch gives the unbatched answer
    twin = sciml.solve(sciml.PDEBatch([_sin_problem(98, 20.0)] * 2), "gp-kron", max_frequency=6.0, components=10,
                       maxiter=15)
    assert torch.equal(twin.x[0], twin.x[1]) and twin.info["rel_l2_error"] < 3e-4
    one = sciml.solve(sciml.PDEBatch([_sin_problem(98, 20.0)]), "gp-kron", max_frequency=6.0, components=10, maxiter=15)
    single = sciml.solve(_sin_problem(98, 20.0), "gp-kron", max_frequency=6.0, components=10, maxiter=15)
    # the batched reductions sum in another order; L-BFGS rounds amplify that rounding (measured: the
    # error histories agree to 1e-8 for 4 rounds, the answers to 1e-6 after 6), so the match is to 1e-5
    h1, h2 = one.info["history"]["rel_l2_error"], single.info["history"]["rel_l2_error"]
    assert len(h1) == len(h2) and all(abs(a - b) <= 1e-6 * b for a, b in zip(h1[:4], h2[:4]))
    assert torch.allclose(one.x[0], single.x, rtol=0, atol=1e-5)


def test_bad_batches():
    p = _sin_problem(98, 20.0)
    with pytest.raises(TypeError, match="non-empty"):
        sciml.PDEBatch([])
    with pytest.raises(ValueError, match="grid"):
        sciml.PDEBatch([p, _sin_problem(60, 20.0)])
    with pytest.raises(ValueError, match="operator"):
        sciml.PDEBatch([p, _sin_problem(98, 20.0, "u_xx + u*(u**2 - 1)")])
    with pytest.raises(TypeError, match=r"problems\[1\]"):
        sciml.PDEBatch([p, "u_xx"])
    k = sciml.PDEProblem(p.grid, source="0", boundary="0", operator="u_xx + k*u", constants={"k": 1.0})
    with pytest.raises(ValueError, match="constant 'k'"):
        sciml.solve(sciml.PDEBatch([k, sciml.PDEProblem(p.grid, operator="u_xx + k*u", constants={"k": 2.0})]), "gp-kron")
    with pytest.raises(TypeError, match="does not accept"):
        sciml.solve(sciml.PDEBatch([p]), "cg")


def test_nonlinear_allen_cahn_1d():
    sol = sciml.solve(_sin_problem(98, 20.0, "u_xx + u*(u**2 - 1)"), "gp-kron", max_frequency=6.0, components=10,
                      maxiter=15)
    assert sol.converged and sol.info["rel_l2_error"] < 5e-4


def test_2d_poisson_matches_exact_and_default_operator():
    grid = Grid((0.0, 0.0), (1.0, 1.0), (14, 12))
    exact = "sin(pi*x)*sin(2*pi*y)"
    custom = sciml.PDEProblem(grid, source="-5*pi**2*sin(pi*x)*sin(2*pi*y)", exact=exact, operator="u_xx + u_yy")
    default = sciml.PDEProblem(grid, source="5*pi**2*sin(pi*x)*sin(2*pi*y)", exact=exact)  # -Δu = f
    a = sciml.solve(custom, "gp-kron", components=4, max_frequency=2.0, maxiter=10)
    b = sciml.solve(default, "gp-kron", components=4, max_frequency=2.0, maxiter=10)
    assert a.info["rel_l2_error"] < 1e-4
    assert torch.allclose(a.x, b.x, atol=1e-10)
    # The finite-difference solution on the same grid is far less accurate (second order, h = 1/15).
    fd = sciml.solve(default, "fft-poisson")
    assert fd.info["rel_l2_error"] > 10 * a.info["rel_l2_error"]


def test_operator_without_derivatives_along_an_axis():
    # u_xx = f on a 2-D grid: independent 1-D problems along x, one per y-line.
    p = sciml.PDEProblem(Grid((0.0, 0.0), (1.0, 1.0), (10, 8)), source="-pi**2*sin(pi*x)*(1 + y)",
                         boundary="sin(pi*x)*(1 + y)", exact="sin(pi*x)*(1 + y)", operator="u_xx")
    sol = sciml.solve(p, "gp-kron", components=3, max_frequency=2.0, maxiter=4)
    assert sol.info["rel_l2_error"] < 1e-3


def test_3d_poisson():
    grid = Grid((0.0, 0.0, 0.0), (1.0, 1.0, 1.0), (8, 7, 6))
    p = sciml.PDEProblem(grid, source="-3*pi**2*sin(pi*x)*sin(pi*y)*sin(pi*z)", exact="sin(pi*x)*sin(pi*y)*sin(pi*z)",
                         operator="u_xx + u_yy + u_zz")
    sol = sciml.solve(p, "gp-kron", components=3, max_frequency=2.0, maxiter=6)
    assert sol.info["rel_l2_error"] < 2e-4 and sol.info["test_rel_l2_error"] < 2e-4  # 3e-5 measured on 10x9x8


def test_paper_schedule_adam_reduces_the_error():
    sol = sciml.solve(_sin_problem(48, 5.0), "gp-kron", optimizer="adam", max_frequency=3.0, components=5,
                      maxiter=300, check_every=100)
    errors = sol.info["history"]["rel_l2_error"]
    assert len(errors) == 3 and errors[-1] < 0.5 * errors[0]


def test_solution_files_and_prediction(tmp_path):
    sol = sciml.solve(_sin_problem(48, 5.0), "gp-kron", max_frequency=3.0, components=5, maxiter=5)
    sol.save(tmp_path / "gp.nc")
    sol.model.plot_spectrum(tmp_path / "spectrum.png")
    import xarray as xr

    with xr.open_dataset(tmp_path / "gp.nc") as ds:
        assert ds.attrs["rel_l2_error"] == pytest.approx(sol.info["rel_l2_error"])
    assert (tmp_path / "spectrum.png").stat().st_size > 1000
    x = torch.tensor([0.1, 1.0, 3.0], dtype=torch.float64)
    assert torch.allclose(sol.model.predict([x]), torch.sin(5 * x), atol=5e-3)  # 2e-3 after 5 iterations


@pytest.mark.parametrize("options, match", [
    ({"components": 0}, "components"),
    ({"kernel": "rbf"}, "kernel"),
    ({"optimizer": "sgd"}, "optimizer"),
    ({"max_frequency": -1.0}, "max_frequency"),
    ({"rtol": -1.0}, "rtol"),
    ({"jitter": 0.0}, "jitter"),
])
def test_bad_options(options, match):
    with pytest.raises(SolverOptionError, match=match):
        sciml.solvers.make_solver("gp-kron", **options)


def test_bad_problems():
    with pytest.raises(SolverOptionError, match="Nyquist"):  # 50 points cannot carry 20 cycles per unit
        sciml.solve(_sin_problem(48, 5.0), "gp-kron", max_frequency=20.0)
    periodic = sciml.PDEProblem(Grid((0.0,), (1.0,), (16,), bc="periodic"), source=1.0)
    with pytest.raises(ValueError, match="Dirichlet"):
        sciml.solve(periodic, "gp-kron")
    tensor = sciml.PDEProblem(Grid((0.0,), (1.0,), (16,)), source=torch.ones(16, dtype=torch.float64))
    with pytest.raises(TypeError, match="source"):
        sciml.solve(tensor, "gp-kron")
    with pytest.raises(TypeError, match="gp-kron"):  # no finite-difference discretisation of a custom operator
        sciml.solve(_sin_problem(16, 1.0), "cg")
    with pytest.raises(ValueError, match="not both"):
        sciml.PDEProblem(Grid((0.0,), (1.0,), (16,)), a=2.0, operator="u_xx")


def test_config_custom_operator(tmp_path):
    base = """
[problem]
equation = "custom"
{line}
source = "-25*sin(5*x)"
boundary = "sin(5*x)"
exact = "sin(5*x)"
[problem.grid]
lower = [0.0]
upper = [6.283185307179586]
points = [48]
[solver]
name = "gp-kron"
components = 5
max_frequency = 3.0
maxiter = 5
"""
    good = tmp_path / "good.toml"
    good.write_text(base.format(line='operator = "u_xx"'))
    cfg = config.load(good)
    assert cfg.problem().operator == "u_xx"
    for line, key in [("", "problem.operator"), ('operator = "u_xxx"', "problem.operator"),
                      ('operator = "u_yy"', "problem.operator")]:
        bad = tmp_path / "bad.toml"
        bad.write_text(base.format(line=line))
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            config.load(bad)
    poisson = tmp_path / "poisson.toml"
    poisson.write_text(base.format(line='operator = "u_xx"').replace('"custom"', '"poisson"'))
    with pytest.raises(ConfigError, match="operator"):
        config.load(poisson)
    zero = tmp_path / "zero.toml"
    zero.write_text(base.format(line='operator = "u_xx"').replace("components = 5", "components = 0"))
    with pytest.raises(ConfigError, match="solver.components"):
        config.load(zero)


@pytest.mark.parametrize("name", ["gphm-poisson1d-sin100", "gphm-allencahn1d-sin6cos100", "gphm-poisson2d-sin6cos20",
                                  "gphm-allencahn2d-multiscale", "gphm-advection"])
def test_shipped_configs_have_consistent_sources(name):
    """Each benchmark's source is its operator applied to its exact solution (checked by autograd)."""
    cfg = config.load(f"solvers/{name}.toml")
    p = cfg.problem()
    names = p.grid.names
    gen = torch.Generator().manual_seed(1)
    pts = {n: (lo + (hi - lo) * torch.rand(50, dtype=torch.float64, generator=gen)).requires_grad_(True)
           for n, lo, hi in zip(names, p.grid.lower, p.grid.upper)}
    from sciml.pde import Expression

    u = Expression(p.exact, names)(**pts)
    derivs = {"u": u}
    for n in names:
        (d1,) = torch.autograd.grad(u.sum(), pts[n], create_graph=True)
        (d2,) = torch.autograd.grad(d1.sum(), pts[n], create_graph=True)
        derivs[f"u_{n}"], derivs[f"u_{n}{n}"] = d1, d2
    lhs = Expression(p.operator, ["u", *derivs, *names])(**derivs, **pts)
    f = Expression(p.source, names)(**pts)
    f = torch.broadcast_to(torch.as_tensor(f, dtype=torch.float64), lhs.shape)
    assert torch.allclose(lhs, f, rtol=1e-9, atol=1e-8 * float(f.detach().abs().max() + 1))
