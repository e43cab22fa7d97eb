"""Numerical tests of `sciml.linalg.gmres` and `sciml.linalg.bicgstab` against scipy.sparse.linalg."""
from __future__ import annotations

import functools
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch

from sciml.linalg import bicgstab, cg, cgls, gmres, minres
from sciml.operators import aslinearoperator
from sciml.status import Status

pytestmark = pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta state")
warnings.filterwarnings("ignore", message=".*Sparse invariant checks.*")

SOLVERS = [gmres, bicgstab]


solvers = pytest.mark.parametrize("solve", SOLVERS, ids=lambda f: f.__name__)


# ------------------------------------------------------------------------------------------------
# problems (scipy's kinds of test matrices)
# ------------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def convection_diffusion(N: int = 20, c: float = 10.0) -> sp.csr_array:
    """-Δu + c (u_x + u_y) on the unit square, Dirichlet, 5-point Laplacian + first-order upwind."""
    h = 1.0 / (N + 1)
    ones = np.ones(N)
    lap = sp.diags_array([-ones[1:], 2 * ones, -ones[1:]], offsets=[-1, 0, 1]) / h**2
    upwind = sp.diags_array([-ones[1:], ones], offsets=[-1, 0]) * (c / h)
    T, I = lap + upwind, sp.eye_array(N)
    return sp.csr_array(sp.kron(T, I) + sp.kron(I, T))


@functools.lru_cache(maxsize=None)
def random_nonsymmetric(n: int = 60, complex_: bool = False, seed: int = 0) -> np.ndarray:
    """4 I + G / sqrt(n): eigenvalues in the disc |z - 4| <~ 1, condition number ~ 2."""
    rng = np.random.default_rng(seed)
    G = rng.standard_normal((n, n))
    if complex_:
        G = (G + 1j * rng.standard_normal((n, n))) / np.sqrt(2)
        return (4 + 1j) * np.eye(n) + G / np.sqrt(n)
    return 4 * np.eye(n) + G / np.sqrt(n)


def rhs(n: int, *batch: int, complex_: bool = False, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    b = rng.standard_normal((*batch, n))
    return b + 1j * rng.standard_normal((*batch, n)) if complex_ else b


def dense(A) -> torch.Tensor:
    return torch.from_numpy(A.toarray() if sp.issparse(A) else np.asarray(A))


def scipy_gmres_count(A, b, **kw) -> tuple[np.ndarray, list[float]]:
    pr: list[float] = []
    x, _ = spla.gmres(A, b, callback=pr.append, callback_type="pr_norm", maxiter=10_000, **kw)
    return x, pr


def scipy_bicgstab_count(A, b, **kw) -> tuple[np.ndarray, int, int]:
    its = [0]
    x, info = spla.bicgstab(A, b, callback=lambda _: its.__setitem__(0, its[0] + 1), **kw)
    return x, its[0], info


def rel_residual(res) -> torch.Tensor:
    return res.info["residual_norm"] / res.info["b_norm"]


# ------------------------------------------------------------------------------------------------
# accuracy and iteration counts against scipy
# ------------------------------------------------------------------------------------------------
@solvers
@pytest.mark.parametrize("problem", ["convdiff", "random", "complex"])
def test_matches_spsolve(solve, problem):
    if problem == "convdiff":
        S = convection_diffusion()
        b = rhs(S.shape[0])
    else:
        S = sp.csr_array(random_nonsymmetric(complex_=problem == "complex"))
        b = rhs(S.shape[0], complex_=problem == "complex")
    res = solve(dense(S), torch.from_numpy(b), rtol=1e-10)
    exact = spla.spsolve(sp.csc_array(S), b)
    assert res.worst == Status.SUCCESS and bool(res.converged)
    assert res.x.dtype == torch.from_numpy(b).dtype
    assert float(rel_residual(res)) <= 1e-10 * 1.01
    err = np.linalg.norm(res.x.numpy() - exact) / np.linalg.norm(exact)
    assert err < 1e-8
    assert res.residuals.shape == (int(res.iterations) + 1,)


@pytest.mark.parametrize("problem", ["convdiff", "random", "complex"])
@pytest.mark.parametrize("restart", [5, 20])
def test_gmres_matches_scipy_iterations_and_history(problem, restart):
    """Without a preconditioner scipy's (left-preconditioned) GMRES and ours are the same method."""
    if problem == "convdiff":
        S = convection_diffusion()
        b = rhs(S.shape[0])
    else:
        S = random_nonsymmetric(complex_=problem == "complex")
        b = rhs(S.shape[0], complex_=problem == "complex")
    res = gmres(dense(S), torch.from_numpy(b), rtol=1e-8, restart=restart)
    x_sp, pr = scipy_gmres_count(S, b, rtol=1e-8, restart=restart)
    assert abs(int(res.iterations) - len(pr)) <= 1
    k = min(len(pr), int(res.iterations))
    ours = (res.residuals[1 : k + 1] / res.info["b_norm"]).numpy()
    np.testing.assert_allclose(ours, pr[:k], rtol=1e-5)
    np.testing.assert_allclose(res.x.numpy(), x_sp, rtol=0, atol=1e-6 * np.abs(x_sp).max())


@pytest.mark.parametrize("problem", ["convdiff", "random", "complex"])
def test_bicgstab_matches_scipy_iterations(problem):
    if problem == "convdiff":
        S = convection_diffusion()
        b = rhs(S.shape[0])
    else:
        S = random_nonsymmetric(complex_=problem == "complex")
        b = rhs(S.shape[0], complex_=problem == "complex")
    res = bicgstab(dense(S), torch.from_numpy(b), rtol=1e-8)
    x_sp, its, info = scipy_bicgstab_count(S, b, rtol=1e-8)
    assert info == 0 and res.worst == Status.SUCCESS
    assert abs(int(res.iterations) - its) <= 2
    np.testing.assert_allclose(res.x.numpy(), x_sp, rtol=0, atol=1e-6 * np.abs(x_sp).max())


def test_gmres_restart_matters_on_ill_conditioned_problem():
    S = convection_diffusion(20, c=1.0)  # nearly symmetric, kappa ~ 200: restarting hurts a lot
    b = torch.from_numpy(rhs(S.shape[0]))
    A = dense(S)
    short = gmres(A, b, rtol=1e-8, restart=5)
    long = gmres(A, b, rtol=1e-8, restart=50)
    assert bool(short.converged) and bool(long.converged)
    assert int(short.iterations) > 3 * int(long.iterations)
    assert short.info["cycles"] > long.info["cycles"] >= 1
    for res, m in ((short, 5), (long, 50)):
        assert abs(int(res.iterations) - len(scipy_gmres_count(S, b.numpy(), rtol=1e-8, restart=m)[1])) <= 1


def test_gmres_restart_capped_at_n_and_maxiter_counts_inner_iterations():
    A = dense(random_nonsymmetric(8))
    b = torch.from_numpy(rhs(8))
    res = gmres(A, b, rtol=1e-12, restart=100)
    assert res.info["restart"] == 8 and bool(res.converged) and int(res.iterations) <= 9
    capped = gmres(dense(convection_diffusion()), torch.from_numpy(rhs(400)), restart=3, maxiter=7)
    assert int(capped.iterations) == 7 and capped.info["cycles"] == 3
    assert capped.residuals.shape == (8,)


# ------------------------------------------------------------------------------------------------
# edge cases: zero rhs, converged x0, maxiter
# ------------------------------------------------------------------------------------------------
@solvers
def test_zero_rhs(solve):
    A = dense(convection_diffusion())
    b = torch.zeros(400, dtype=torch.float64)
    for x0 in (None, torch.ones(400, dtype=torch.float64)):
        res = solve(A, b, x0=x0)
        assert res.worst == Status.SUCCESS and int(res.iterations) == 0
        assert torch.equal(res.x, torch.zeros_like(b)) and float(res.info["residual_norm"]) == 0


@solvers
def test_x0_already_converged(solve):
    S = convection_diffusion()
    b = rhs(400)
    x0 = torch.from_numpy(spla.spsolve(sp.csc_array(S), b))
    res = solve(dense(S), torch.from_numpy(b), x0=x0, rtol=1e-8)
    assert res.worst == Status.SUCCESS and int(res.iterations) == 0
    assert torch.equal(res.x, x0) and res.residuals.shape == (1,)


@solvers
def test_maxiter_reached(solve):
    A, b = dense(convection_diffusion()), torch.from_numpy(rhs(400))
    res = solve(A, b, rtol=1e-12, maxiter=5)
    assert res.worst == Status.MAX_ITERATIONS and not bool(res.converged)
    assert int(res.iterations) == 5 and res.info["maxiter"] == 5
    assert "maximum number of iterations" in res.info["reason"]
    assert torch.isfinite(res.x).all() and float(rel_residual(res)) < 1


# ------------------------------------------------------------------------------------------------
# batching and masks
# ------------------------------------------------------------------------------------------------
@solvers
@pytest.mark.parametrize("batch", [(3,), (2, 2)])
def test_batched_equals_one_at_a_time(solve, batch):
    S = convection_diffusion()
    A = dense(S)
    B = torch.from_numpy(rhs(400, *batch))
    flat = B.reshape(-1, 400)
    flat[1] *= 1e6  # a different scale
    flat[-1] = torch.from_numpy(rhs(400, seed=7)) * 1e-3
    x0 = torch.zeros_like(B)
    x0.reshape(-1, 400)[0] = torch.from_numpy(spla.spsolve(sp.csc_array(S), flat[0].numpy()))  # converged
    kw = dict(rtol=1e-9, restart=10) if solve is gmres else dict(rtol=1e-9)
    res = solve(A, B, x0=x0, **kw)
    assert res.x.shape == B.shape and res.status.shape == batch and res.residuals.shape[1:] == batch
    assert bool(res.converged.all())
    its = res.iterations.reshape(-1)
    assert int(its[0]) == 0 and len(set(its.tolist())) > 1  # systems stopped at different times
    for i, (bi, x0i) in enumerate(zip(flat, x0.reshape(-1, 400))):
        one = solve(A, bi, x0=x0i, **kw)
        xi = res.x.reshape(-1, 400)[i]
        assert int(one.iterations) == int(its[i])
        assert torch.allclose(xi, one.x, rtol=1e-10, atol=1e-10 * float(one.x.abs().max()))


@solvers
def test_batched_nonfinite_system_is_isolated(solve):
    A = dense(convection_diffusion())
    B = torch.from_numpy(rhs(400, 3))

    def matvec(v):  # system 1 sees NaN from its first product on
        y = v @ A.mT
        y[1] = float("nan")
        return y

    res = solve(aslinearoperator(matvec, in_shape=(400,)), B, rtol=1e-8)
    assert res.status.tolist() == [Status.SUCCESS, Status.NONFINITE, Status.SUCCESS]
    assert torch.isfinite(res.x).all() and res.worst == Status.NONFINITE
    clean = solve(A, B[[0, 2]], rtol=1e-8)
    assert torch.allclose(res.x[[0, 2]], clean.x, rtol=1e-12, atol=1e-14)


def test_gmres_cpu_per_system_orthogonalisation_matches_batched():
    """On CPU, large systems are orthogonalised one at a time; the result is the batched one."""
    from sciml.linalg.gmres import _cgs2, _orthogonalise

    g = torch.Generator().manual_seed(0)
    n = 4096
    V = torch.linalg.qr(torch.randn(2, 2, n, 6, dtype=torch.float64, generator=g)).Q.mT  # orthonormal rows
    w = torch.randn(2, 2, n, dtype=torch.float64, generator=g)
    h, w1 = _orthogonalise(V[..., :5, :], w)
    h_b, w1_b = _cgs2(V[..., :5, :], w)
    assert h.shape == (2, 2, 5) and w1.shape == (2, 2, n)
    assert torch.allclose(h, h_b, rtol=1e-12, atol=1e-12) and torch.allclose(w1, w1_b, rtol=1e-12, atol=1e-12)
    assert (V[..., :5, :] @ w1.unsqueeze(-1)).abs().max() < 1e-12 * float(w.abs().max())
    assert torch.allclose(h, (V[..., :5, :] @ w.unsqueeze(-1)).squeeze(-1), atol=1e-12)


# ------------------------------------------------------------------------------------------------
# precision and preconditioning
# ------------------------------------------------------------------------------------------------
@solvers
@pytest.mark.parametrize("kind", ["real", "complex"])
def test_float32_vs_float64(solve, kind):
    if kind == "real":
        A, b = dense(convection_diffusion()), torch.from_numpy(rhs(400))
    else:
        A, b = dense(random_nonsymmetric(complex_=True)), torch.from_numpy(rhs(60, complex_=True))
    low = torch.float32 if kind == "real" else torch.complex64
    r64 = solve(A, b, rtol=1e-4)
    r32 = solve(A.to(low), b.to(low), rtol=1e-4)
    assert r32.x.dtype == low and r32.residuals.dtype == torch.float32
    assert bool(r32.converged) and bool(r64.converged)
    assert float(rel_residual(r32)) < 2e-4
    assert abs(int(r32.iterations) - int(r64.iterations)) <= 3
    assert torch.linalg.norm(r32.x.to(b.dtype) - r64.x) / torch.linalg.norm(r64.x) < 1e-2


@solvers
def test_check_every_only_delays_the_stop(solve):
    """Checking for "all done" less often runs extra loop passes, which must not change anything."""
    A, B = dense(convection_diffusion()), torch.from_numpy(rhs(400, 3))
    every = solve(A, B, rtol=1e-9)
    rarely = solve(A, B, rtol=1e-9, check_every=7)
    assert torch.equal(every.x, rarely.x) and torch.equal(every.iterations, rarely.iterations)
    assert torch.equal(every.status, rarely.status)
    k = every.residuals.shape[0]
    assert rarely.residuals.shape[0] >= k and torch.equal(rarely.residuals[:k], every.residuals)
    assert torch.equal(rarely.residuals[k:], every.residuals[-1:].expand_as(rarely.residuals[k:]))


@solvers
def test_jacobi_and_ilu_preconditioners_reduce_iterations(solve):
    S0 = convection_diffusion()
    rng = np.random.default_rng(3)
    S = sp.csr_array(S0 + sp.diags_array(10 ** rng.uniform(0, 4, 400) * 21**2))  # wildly varying diagonal
    A, b = dense(S), torch.from_numpy(rhs(400))
    d = torch.from_numpy(1 / S.diagonal())
    ilu = spla.spilu(sp.csc_matrix(S), drop_tol=1e-2, fill_factor=2)
    M_ilu = aslinearoperator(spla.LinearOperator(S.shape, matvec=ilu.solve, dtype=np.float64))
    plain = solve(A, b, rtol=1e-8)
    jacobi = solve(A, b, rtol=1e-8, M=lambda v: d * v)
    ilu_res = solve(A, b, rtol=1e-8, M=M_ilu)
    assert all(bool(r.converged) for r in (plain, jacobi, ilu_res))
    assert 5 * int(jacobi.iterations) < int(plain.iterations)
    assert int(ilu_res.iterations) <= int(jacobi.iterations)
    # right preconditioning: the stopping test is on the true residual
    for r in (jacobi, ilu_res):
        assert float(rel_residual(r)) <= 1e-8 * 1.5
    exact = spla.spsolve(sp.csc_array(S), b.numpy())
    assert np.linalg.norm(ilu_res.x.numpy() - exact) / np.linalg.norm(exact) < 1e-6


def test_bicgstab_preconditioned_matches_scipy_count():
    S = convection_diffusion()
    d = 1 / S.diagonal() * np.linspace(0.5, 1.5, 400)
    b = rhs(400)
    res = bicgstab(dense(S), torch.from_numpy(b), rtol=1e-8, M=lambda v: torch.from_numpy(d) * v)
    _, its, info = scipy_bicgstab_count(S, b, rtol=1e-8, M=sp.diags_array(d))
    assert info == 0 and abs(int(res.iterations) - its) <= 2


# ------------------------------------------------------------------------------------------------
# breakdowns
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "A, b, kind",
    [
        ([[0.0, 1.0], [1.0, 0.0]], [1.0, 0.0], "<r^, v> = 0"),  # v = A r0 is orthogonal to r0
        # alpha and omega are dyadic here, so every step is exact and the zero is exact in floating point
        ([[-1.0, 2.0, -1.0], [1.0, 1.0, -2.0], [2.0, -1.0, 1.0]], [1.0, 1.0, -1.0], "rho = 0"),
        ([[-2.0, -1.0, 0.0], [0.0, 0.0, 2.0], [2.0, 2.0, 1.0]], [0.0, 0.0, 1.0], "omega = 0"),
        ([[1.0, 0.0], [1.0, 0.0]], [1.0, 0.0], "t = A s = 0"),  # singular A; scipy gets omega = 0/0 here
    ],
)
def test_bicgstab_breakdown(A, b, kind):
    At, bt = torch.tensor(A, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)
    res = bicgstab(At, bt, rtol=1e-10)
    assert res.worst == Status.BREAKDOWN and not bool(res.converged), kind
    assert torch.isfinite(res.x).all() and torch.isfinite(res.residuals).all()
    assert "breakdown" in res.info["reason"] and "omega" in res.info["reason"]
    if kind != "t = A s = 0":
        assert spla.bicgstab(np.array(A), np.array(b), rtol=1e-10)[1] < 0  # scipy breaks down too
    # batched with a healthy system: only the broken one is flagged
    B = torch.stack([bt, torch.arange(1.0, len(b) + 1, dtype=torch.float64)])
    both = bicgstab(At, B, rtol=1e-10)
    alone = bicgstab(At, B[1], rtol=1e-10)
    assert int(both.status[0]) == Status.BREAKDOWN and torch.isfinite(both.x).all()
    assert torch.equal(both.status[1], alone.status) and torch.equal(both.iterations[1], alone.iterations)
    assert torch.allclose(both.x[1], alone.x, rtol=1e-12, atol=1e-12)
    # GMRES has no such breakdown (on a nonsingular A)
    if torch.linalg.det(At) != 0:
        assert bool(gmres(At, bt, rtol=1e-12).converged)


def test_gmres_happy_breakdown_is_convergence():
    A = torch.diag(torch.arange(1.0, 11.0, dtype=torch.float64))
    b = torch.zeros(10, dtype=torch.float64)
    b[:2] = 1.0  # the solution lies in the 2-dimensional Krylov space
    for rtol in (1e-14, 0.0):
        res = gmres(A, b, rtol=rtol)
        assert res.worst == Status.SUCCESS and int(res.iterations) <= 3
        assert torch.isfinite(res.residuals).all()
        assert torch.allclose(res.x, b / torch.diagonal(A), atol=1e-15)


def test_gmres_singular_hessenberg_is_breakdown():
    A = torch.tensor([[0.0, 1.0], [0.0, 0.0]], dtype=torch.float64)  # A b = 0: K(A, b) = span(b)
    res = gmres(A, torch.tensor([1.0, 0.0], dtype=torch.float64))
    assert res.worst == Status.BREAKDOWN and torch.equal(res.x, torch.zeros(2, dtype=torch.float64))
    assert "singular" in res.info["reason"]


# ------------------------------------------------------------------------------------------------
# interface
# ------------------------------------------------------------------------------------------------
@solvers
def test_operator_kinds_and_grid_shapes(solve):
    """A CSR LinearOperator on flat vectors and a matrix-free operator on (H, W) grids agree."""
    S = convection_diffusion()
    b = torch.from_numpy(rhs(400, 2))
    csr = solve(aslinearoperator(S), b, rtol=1e-10)
    A = dense(S)
    grid_op = aslinearoperator(lambda u: (u.reshape(*u.shape[:-2], 400) @ A.mT).reshape(u.shape), in_shape=(20, 20))
    grid = solve(grid_op, b.reshape(2, 20, 20), rtol=1e-10)
    assert grid.x.shape == (2, 20, 20) and bool(grid.converged.all()) and bool(csr.converged.all())
    assert torch.allclose(grid.x.reshape(2, 400), csr.x, atol=1e-9 * float(csr.x.abs().max()))


@solvers
def test_callback(solve):
    A, b = dense(convection_diffusion()), torch.from_numpy(rhs(400))
    seen = []
    kw = {"restart": 10} if solve is gmres else {}
    res = solve(A, b, rtol=1e-8, callback=lambda x: seen.append(x.clone()), **kw)
    expected = res.info["cycles"] if solve is gmres else int(res.iterations)
    assert len(seen) == expected and torch.equal(seen[-1], res.x)


@solvers
def test_bad_input(solve):
    A = torch.eye(3, dtype=torch.float64)
    b = torch.ones(3, dtype=torch.float64)
    with pytest.raises(ValueError, match="rtol"):
        solve(A, b, rtol=-1.0)
    with pytest.raises(ValueError, match="maxiter"):
        solve(A, b, maxiter=0)
    with pytest.raises(ValueError, match="check_every"):
        solve(A, b, check_every=0)
    with pytest.raises(ValueError, match="b has shape"):
        solve(A, torch.ones(4, dtype=torch.float64))
    with pytest.raises(ValueError, match="x0 has shape"):
        solve(A, b, x0=torch.ones(2, dtype=torch.float64))
    with pytest.raises(ValueError, match="b contains NaN"):
        solve(A, torch.tensor([1.0, float("nan"), 0.0], dtype=torch.float64))
    with pytest.raises(ValueError, match="dtype mismatch"):
        solve(A, b.float())
    with pytest.raises(ValueError, match="square"):
        solve(torch.ones(3, 2, dtype=torch.float64), b)


@pytest.mark.parametrize("restart", [0, -1, 2.5, True, None])
def test_gmres_bad_restart(restart):
    with pytest.raises(ValueError, match="restart"):
        gmres(torch.eye(2), torch.ones(2), restart=restart)


# ------------------------------------------------------------------------------------------------
# GPU
# ------------------------------------------------------------------------------------------------
@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    dev = torch.device("cuda")
    S = convection_diffusion()
    B = torch.from_numpy(rhs(400, 3))
    Bc = torch.from_numpy(rhs(400, 2, complex_=True))
    Ac = torch.from_numpy(random_nonsymmetric(400 // 4, complex_=True))
    for solve in SOLVERS:
        for A, b in ((dense(S), B), (aslinearoperator(S), B), (Ac, Bc[:, :100])):
            cpu = solve(A, b, rtol=1e-10)
            A_dev = A.to(dev) if isinstance(A, torch.Tensor) else A.to(device=dev)
            gpu = solve(A_dev, b.to(dev), rtol=1e-10)
            assert gpu.x.device.type == "cuda" and gpu.status.device.type == "cuda"
            assert torch.equal(gpu.status.cpu(), cpu.status) and bool(cpu.converged.all())
            assert (gpu.iterations.cpu() - cpu.iterations).abs().max() <= 2
            scale = float(cpu.x.abs().max())
            assert torch.allclose(gpu.x.cpu(), cpu.x, rtol=0, atol=1e-7 * scale)


@pytest.mark.parametrize("solve", [cg, minres, gmres, bicgstab, cgls], ids=lambda f: f.__name__)
def test_not_differentiable_inputs_and_trainable_operators(solve):
    """b or x0 that require grad are a clear error (the kernels are not differentiable); an operator
    built from trainable parameters runs (without a graph) and gives the same x as plain tensors."""
    M = torch.tensor([[4.0, 1.0, 0.0], [1.0, 3.0, 1.0], [0.0, 1.0, 2.0]], dtype=torch.float64)
    b = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    with pytest.raises(ValueError, match="b requires grad"):
        solve(M, b.clone().requires_grad_(True))
    with pytest.raises(ValueError, match="x0 requires grad"):
        solve(M, b, x0=torch.zeros(3, dtype=torch.float64, requires_grad=True))
    W = torch.nn.Parameter(M.clone())
    trainable = aslinearoperator(W) if solve is cgls else (lambda v: v @ W.T)
    x = solve(trainable, b, rtol=1e-12).x
    assert not x.requires_grad
    assert torch.allclose(x, torch.linalg.solve(M, b), rtol=0, atol=1e-10)
