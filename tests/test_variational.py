"""TV (PDHG) and plug-and-play solvers (ADMM, HQS, PGD, constrained ADMM) against independent references."""
import math

import pytest
import torch

import sciml
from sciml.operators import IdentityOperator, ParallelBeamRadon, aslinearoperator, shepp_logan, sparse_view_angles
from sciml.solvers import SolverOptionError
from sciml.solvers.variational import (
    data_consistency,
    grad2d,
    grad2d_adjoint,
    magnitude_prox,
    power_norm2,
    soft_threshold,
    tv_norm,
)

DT = torch.float64


def fista(M, y, lam, iters=20000):
    """Reference LASSO min ½||M x - y||² + lam ||x||₁ (rows of y are systems), many FISTA iterations."""
    L = torch.linalg.matrix_norm(M, 2) ** 2
    x = torch.zeros(y.shape[0], M.shape[1], dtype=M.dtype)
    z, t = x.clone(), 1.0
    for _ in range(iters):
        xn = soft_threshold(z - (z @ M.T - y) @ M.conj() / L, lam / L)
        tn = (1 + math.sqrt(1 + 4 * t * t)) / 2
        z, x, t = xn + (t - 1) / tn * (xn - x), xn, tn
    return x


@pytest.fixture(scope="module")
def cs():
    g = torch.Generator().manual_seed(0)
    m, n = 30, 60
    M = torch.randn(m, n, dtype=DT, generator=g) / math.sqrt(m)
    xt = torch.zeros(2, n, dtype=DT)
    xt[:, torch.randperm(n, generator=g)[:6]] = torch.randn(2, 6, dtype=DT, generator=g)
    y = xt @ M.T + 0.01 * torch.randn(2, m, dtype=DT, generator=g)
    lam = 0.05
    return M, y, lam, fista(M, y, lam)


def rel(a, b):
    return float((a - b).norm() / b.norm())


# --- shared pieces --------------------------------------------------------------------------
def test_data_consistency_solves_regularised_normal_equations(cs):
    M, y, _, _ = cs
    z = torch.randn(2, M.shape[1], dtype=DT)
    rho = 0.7
    x = data_consistency(aslinearoperator(M), y, z, rho, x0=None, cg_options={"rtol": 1e-12, "maxiter": 500})
    ref = torch.linalg.solve(M.T @ M + rho * torch.eye(M.shape[1], dtype=DT), (y @ M + rho * z).T).T
    assert rel(x, ref) < 1e-9


def test_soft_threshold_and_magnitude_prox():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(5, 40, dtype=DT, generator=g)
    # real nonnegative inputs: the wrapper is the prox itself
    p = x.abs()
    assert torch.equal(magnitude_prox(soft_threshold)(p, 0.3), soft_threshold(p, 0.3))
    # real signed inputs: the sign is kept, which for soft-threshold is the prox itself
    assert torch.allclose(magnitude_prox(soft_threshold)(x, 0.3), soft_threshold(x, 0.3), atol=0, rtol=0)
    # complex: the closed-form complex soft-threshold x max(1 - t/|x|, 0), phase kept exactly
    c = torch.complex(x, torch.randn(5, 40, dtype=DT, generator=g))
    out = magnitude_prox(soft_threshold)(c, 0.5)
    closed = c * torch.clamp(1 - 0.5 / c.abs(), min=0)
    assert torch.allclose(out, closed, rtol=1e-13, atol=1e-15)
    nz = out.abs() > 0
    assert torch.allclose(out.angle()[nz], c.angle()[nz], rtol=1e-14, atol=1e-15)  # exact up to rounding
    # any real denoiser: magnitude replaced, phase of the input kept
    den = magnitude_prox(lambda m: 2 * m + 1)
    o = den(c)
    assert torch.allclose(o.abs(), 2 * c.abs() + 1, rtol=1e-14)
    assert torch.allclose(o.angle(), c.angle(), rtol=1e-14, atol=1e-15)


def test_grad_adjoint_and_power_norm():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(3, 7, 9, dtype=DT, generator=g)
    q = torch.randn(3, 2, 7, 9, dtype=DT, generator=g)
    assert abs(float((grad2d(x) * q).sum() - (x * grad2d_adjoint(q)).sum())) < 1e-12
    M = torch.randn(20, 10, dtype=DT, generator=g)
    est = power_norm2(aslinearoperator(M), torch.zeros(10, dtype=DT), iters=200)
    assert est == pytest.approx(float(torch.linalg.matrix_norm(M, 2) ** 2), rel=1e-6)


# --- PnP with the exact l1 prox reproduces LASSO -----------------------------------------------
def test_pnp_admm_is_lasso(cs):
    M, y, lam, xr = cs
    rho = 1.0
    sol = sciml.solve(sciml.InverseProblem(aslinearoperator(M), y), "pnp-admm", denoiser=soft_threshold,
                      sigma=lam / rho, rho=rho, maxiter=2000, rtol=1e-9, cg_rtol=1e-12, cg_maxiter=100)
    assert sol.converged and sol.x.shape == y.shape[:1] + (M.shape[1],)
    assert sol.stats["status"].shape == (2,) and sol.residuals.shape[1:] == (2,)
    assert rel(sol.x, xr) < 1e-4
    assert sol.residual == pytest.approx(float(((sol.x @ M.T - y).norm(dim=-1) / y.norm(dim=-1)).max()))
    assert "pnp-admm: converged" in sol.summary()


def test_pnp_pgd_is_ista(cs):
    M, y, lam, xr = cs
    A = aslinearoperator(M)
    step = 1 / power_norm2(A, y.new_zeros(M.shape[1]))
    sol = sciml.solve(sciml.InverseProblem(A, y), "pnp-pgd", denoiser=soft_threshold, sigma=lam * step, step=step,
                      maxiter=20000, rtol=1e-10)
    assert sol.converged
    assert rel(sol.x, xr) < 1e-4


def test_pnp_hqs_fixed_point(cs):
    """HQS with a fixed rho minimises ½||Ax-y||² + lam||z||₁ + rho/2||x-z||², i.e. z solves a LASSO with the
    data term weighted by W = (I + AAᵀ/rho)⁻¹; it tends to the plain LASSO as rho grows."""
    M, y, lam, xr = cs
    rho = 1.0
    m = M.shape[0]
    Wh = torch.linalg.cholesky(torch.linalg.inv(torch.eye(m, dtype=DT) + M @ M.T / rho)).T
    xh = fista(Wh @ M, y @ Wh.T, lam)
    sol = sciml.solve(sciml.InverseProblem(aslinearoperator(M), y), "pnp-hqs", denoiser=soft_threshold,
                      sigma=lam / rho, rho=rho, maxiter=2000, rtol=1e-10, cg_rtol=1e-12, cg_maxiter=100)
    assert sol.converged
    assert rel(sol.x, xh) < 1e-4
    assert rel(sol.x, xr) > 1e-2  # genuinely a different problem from LASSO at this rho


def test_pnp_admm_constrained_is_lasso(cs):
    """min ||x||₁ s.t. ||Ax - y|| <= eps, with eps the LASSO residual, has the LASSO solution."""
    M, y, lam, xr = cs
    eps = float((xr[0] @ M.T - y[0]).norm())
    sol = sciml.solve(sciml.InverseProblem(aslinearoperator(M), y[0]), "pnp-admm", denoiser=soft_threshold,
                      sigma=0.1, rho=1.0, epsilon=eps, maxiter=3000, rtol=1e-10, cg_rtol=1e-12, cg_maxiter=100)
    assert sol.converged
    assert rel(sol.x, xr[0]) < 1e-4
    assert float((sol.x @ M.T - y[0]).norm()) <= eps * (1 + 1e-6)


def test_pnp_admm_complex_magnitude_mode():
    """Complex CS with the magnitude-wrapped real soft-threshold = complex LASSO (complex soft-threshold)."""
    g = torch.Generator().manual_seed(3)
    m, n = 30, 50
    M = torch.complex(torch.randn(m, n, dtype=DT, generator=g), torch.randn(m, n, dtype=DT, generator=g)) / math.sqrt(2 * m)
    xt = torch.zeros(n, dtype=torch.complex128)
    xt[torch.randperm(n, generator=g)[:5]] = torch.complex(torch.randn(5, dtype=DT, generator=g), torch.randn(5, dtype=DT, generator=g))
    y = M @ xt + 0.01 * torch.complex(torch.randn(m, dtype=DT, generator=g), torch.randn(m, dtype=DT, generator=g))
    lam, rho = 0.05, 1.0
    xr = fista(M, y[None], lam, iters=10000)[0]

    def real_soft(mag, t):  # a real-valued prox: would be wrong on complex input without the wrapper
        assert not mag.is_complex()
        return torch.clamp(mag - t, min=0)

    sol = sciml.solve(sciml.InverseProblem(aslinearoperator(M), y), "pnp-admm", denoiser=real_soft, sigma=lam / rho,
                      rho=rho, complex_mode="magnitude", maxiter=2000, rtol=1e-9, cg_rtol=1e-12, cg_maxiter=100)
    assert sol.converged and sol.x.is_complex()
    assert rel(sol.x, xr) < 1e-4


def test_denoiser_signature_detection(cs):
    M, y, _, _ = cs
    P = sciml.InverseProblem(aslinearoperator(M), y)
    calls = []

    def one_arg(x):
        calls.append(1)
        return soft_threshold(x, 0.01)

    sol = sciml.solve(P, "pnp-pgd", denoiser=one_arg, maxiter=5)
    assert len(calls) == 5 and sol.iterations == 5 and not sol.converged
    ref = sciml.solve(P, "pnp-pgd", denoiser=soft_threshold, sigma=0.01, maxiter=5)
    assert torch.allclose(sol.x, ref.x)


# --- TV -------------------------------------------------------------------------------------
def _tv_denoise_ref(y, lam, iters=6000):
    """TV denoising min ½||x-y||² + lam TV(x) via FISTA on the dual (Beck & Teboulle 2009): x = y - lam ∇ᵀq."""
    q = torch.zeros(*y.shape[:-2], 2, *y.shape[-2:], dtype=y.dtype)
    r, t = q.clone(), 1.0
    for _ in range(iters):
        qn = r - grad2d(lam * grad2d_adjoint(r) - y) / (8 * lam)
        qn = qn / torch.clamp(torch.sqrt((qn.abs() ** 2).sum(-3, keepdim=True)), min=1)
        tn = (1 + math.sqrt(1 + 4 * t * t)) / 2
        r, q, t = qn + (t - 1) / tn * (qn - q), qn, tn
    return y - lam * grad2d_adjoint(q)


@pytest.fixture(scope="module")
def tv_denoise():
    g = torch.Generator().manual_seed(4)
    img = torch.zeros(14, 14, dtype=DT)
    img[3:10, 2:8] = 1
    img[7:12, 8:13] = 0.5
    y = img + 0.1 * torch.randn(2, 14, 14, dtype=DT, generator=g)
    lam = 0.15
    return y, lam, _tv_denoise_ref(y, lam)


def test_tv_denoising_matches_dual_reference(tv_denoise):
    y, lam, xr = tv_denoise
    sol = sciml.solve(sciml.InverseProblem(IdentityOperator((14, 14), dtype=DT), y), "tv", lam=lam, maxiter=3000, rtol=1e-9)
    obj = lambda x: 0.5 * ((x - y) ** 2).sum((-2, -1)) + lam * tv_norm(x)  # noqa: E731
    assert rel(sol.x, xr) < 1e-3
    assert torch.all((obj(sol.x) - obj(xr)).abs() / obj(xr) < 1e-5)
    assert torch.allclose(sol.info["objective"], obj(sol.x))


def test_tv_complex_constant_phase(tv_denoise):
    """TV of a complex image with a global phase: the solution is the real one times that phase."""
    y, lam, xr = tv_denoise
    ph = torch.polar(torch.tensor(1.0, dtype=DT), torch.tensor(0.7, dtype=DT))
    sol = sciml.solve(sciml.InverseProblem(IdentityOperator((14, 14)), y[0] * ph), "tv", lam=lam, maxiter=3000, rtol=1e-9)
    assert sol.x.is_complex()
    assert rel(sol.x, xr[0] * ph) < 1e-3


def test_tv_beats_damped_cg_on_sparse_view_ct():
    g = torch.Generator().manual_seed(5)
    n = 32
    x = shepp_logan(n)
    A = ParallelBeamRadon((n, n), sparse_view_angles(20))
    y = A(x)
    sd = 0.02 * float(y.abs().max())
    y = y + sd * torch.randn(y.shape, dtype=DT, generator=g)
    P = sciml.InverseProblem(A, y, noise_std=sd)
    cg_err = min(rel(sciml.solve(P, "cg", damp=d, rtol=1e-6, maxiter=200).x, x) for d in (0.3, 1.0, 3.0))
    tv = sciml.solve(P, "tv", lam=0.3, maxiter=600, rtol=1e-5)
    tv_err = rel(tv.x, x)
    assert tv_err < 0.7 * cg_err, (tv_err, cg_err)


# --- options --------------------------------------------------------------------------------
@pytest.mark.parametrize("solver, options, name", [
    ("pnp-admm", {}, "denoiser"),
    ("pnp-admm", {"denoiser": soft_threshold}, "sigma"),
    ("pnp-admm", {"denoiser": soft_threshold, "sigma": -0.1}, "sigma"),
    ("pnp-hqs", {"denoiser": 3}, "denoiser"),
    ("pnp-admm", {"denoiser": soft_threshold, "sigma": 0.1, "rho": 0}, "rho"),
    ("pnp-admm", {"denoiser": soft_threshold, "sigma": 0.1, "epsilon": -1.0}, "epsilon"),
    ("pnp-pgd", {"denoiser": soft_threshold, "sigma": 0.1, "step": -1.0}, "step"),
    ("pnp-pgd", {"denoiser": soft_threshold, "sigma": 0.1, "maxiter": 0}, "maxiter"),
    ("pnp-hqs", {"denoiser": soft_threshold, "sigma": 0.1, "complex_mode": "phase"}, "complex_mode"),
    ("pnp-hqs", {"denoiser": soft_threshold, "sigma": 0.1, "cg_maxiter": 1.5}, "cg_maxiter"),
    ("pnp-admm", {"denoiser": soft_threshold, "sigma": 0.1, "bogus": 1}, "bogus"),
    ("tv", {"lam": -1}, "lam"),
    ("tv", {"tau": 0}, "tau"),
    ("tv", {"rtol": "x"}, "rtol"),
])
def test_bad_options(cs, solver, options, name):
    M, y, _, _ = cs
    with pytest.raises(SolverOptionError, match=name):
        sciml.solve(sciml.InverseProblem(aslinearoperator(M), y), solver, **options)


def test_accepts_inverse_problems_only():
    P = sciml.LinearProblem(torch.eye(3, dtype=DT), torch.ones(3, dtype=DT))
    with pytest.raises(TypeError, match="InverseProblem"):
        sciml.solve(P, "pnp-admm", denoiser=soft_threshold, sigma=0.1)
    with pytest.raises(TypeError, match="InverseProblem"):
        sciml.solve(P, "tv")


def test_tv_pdhg_balances_a_large_operator():
    """CT's ||A||^2 (~1e3) dwarfs the gradient's 8: the gradient block is scaled by ||A||/sqrt(8), so 200
    PDHG steps are within 0.06 % of the 4000-step objective (measured; x within 0.5 %)."""
    x = shepp_logan(48)
    A = ParallelBeamRadon((48, 48), sparse_view_angles(24))
    g = torch.Generator().manual_seed(0)
    y = A(x)
    y = y + 0.01 * float(y.abs().max()) * torch.randn(y.shape, dtype=y.dtype, generator=g)
    lam = 0.04 * float(y.abs().max())
    ref = sciml.solve(sciml.InverseProblem(A, y), "tv", lam=lam, maxiter=4000, rtol=0)
    sol = sciml.solve(sciml.InverseProblem(A, y), "tv", lam=lam, maxiter=200, rtol=0)
    assert sol.info["grad_scale"] > 10
    assert float(sol.info["objective"] / ref.info["objective"]) - 1 < 2e-3
    assert rel(sol.x, ref.x) < 0.01


class _ScaledShrink(torch.nn.Module):
    """soft_threshold with a learnable (here unit) gain: its output requires grad outside no_grad."""

    def __init__(self):
        super().__init__()
        self.gain = torch.nn.Parameter(torch.ones((), dtype=DT))

    def forward(self, x, sigma):
        return self.gain * soft_threshold(x, sigma)


@pytest.mark.parametrize("solver", ["pnp-admm", "pnp-hqs", "pnp-pgd"])
def test_pnp_with_a_trainable_network_outside_no_grad(cs, solver):
    """A network denoiser with trainable weights, called without torch.no_grad (as a user would): the
    same iterates as the weight-free denoiser, and a plain tensor out."""
    M, y, lam, _ = cs
    problem = sciml.InverseProblem(aslinearoperator(M), y)
    opts = {"sigma": lam, "maxiter": 30, "rtol": 0.0}
    net = sciml.solve(problem, solver, denoiser=_ScaledShrink(), **opts).x
    plain = sciml.solve(problem, solver, denoiser=soft_threshold, **opts).x
    assert not net.requires_grad
    assert torch.equal(net, plain)
