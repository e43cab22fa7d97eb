"""Numerical tests of `sciml.linalg.cg` against scipy.sparse.linalg (spsolve and scipy's own cg)."""
from __future__ import annotations

import functools
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch

from helpers import randn
from sciml.linalg import cg
from sciml.operators import IdentityOperator, LinearOperator, aslinearoperator, laplacian
from sciml.status import Status

pytestmark = pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta state")
warnings.filterwarnings("ignore", message=".*Sparse invariant checks.*")


# ------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------




@functools.lru_cache(maxsize=None)
def poisson2d(nx: int, ny: int) -> sp.csr_matrix:
    """5-point Dirichlet Poisson matrix (unit spacing), C order: kron(T_x, I) + kron(I, T_y)."""
    def t(n):
        return sp.diags([-np.ones(n - 1), 2 * np.ones(n), -np.ones(n - 1)], [-1, 0, 1])
    A = sp.kron(t(nx), sp.identity(ny)) + sp.kron(sp.identity(nx), t(ny))
    return sp.csr_matrix(A)


def poisson_eigvec(nx: int, ny: int, k: int, l: int) -> np.ndarray:
    i = np.arange(1, nx + 1)[:, None]
    j = np.arange(1, ny + 1)[None, :]
    return (np.sin(np.pi * k * i / (nx + 1)) * np.sin(np.pi * l * j / (ny + 1))).ravel()


def random_spd(n: int, cond: float = 100.0, dtype=torch.float64, seed: int = 0) -> torch.Tensor:
    """Q diag(logspace(0, log10 cond)) Q^H: Hermitian PD with a known condition number."""
    Q, _ = torch.linalg.qr(randn(n, n, dtype=dtype, seed=seed))
    lam = torch.logspace(0, np.log10(cond), n, dtype=torch.float64).to(dtype)
    A = (Q * lam) @ Q.mH
    return (A + A.mH) / 2


def spsolve(A, b: torch.Tensor) -> np.ndarray:
    """Direct solve of each row of b (..., n) with scipy.sparse.linalg.spsolve, in float64/complex128."""
    A = sp.csc_matrix(A if sp.issparse(A) else np.asarray(A))
    B = b.detach().cpu().numpy().astype(np.complex128 if b.is_complex() else np.float64)
    rows = B.reshape(-1, B.shape[-1])
    X = np.stack([spla.spsolve(A.astype(rows.dtype) if not np.iscomplexobj(A.data) else A, r) for r in rows])
    return X.reshape(B.shape)


def rel_err(x: torch.Tensor, ref: np.ndarray) -> float:
    x = x.detach().cpu().numpy()
    return float(np.linalg.norm(x - ref) / np.linalg.norm(ref))


def scipy_iterations(A, b: np.ndarray, rtol: float, atol: float = 0.0, M=None, x0=None) -> tuple[np.ndarray, int]:
    count = [0]

    def cb(_):
        count[0] += 1

    x, info = spla.cg(A, b, x0=x0, rtol=rtol, atol=atol, M=M, callback=cb, maxiter=10 * b.size)
    assert info == 0
    return x, count[0]


def true_residual_f64(A_sp, b: torch.Tensor, x: torch.Tensor) -> np.ndarray:
    dt = np.complex128 if b.is_complex() else np.float64
    B = b.detach().cpu().numpy().astype(dt).reshape(-1, b.shape[-1])
    X = x.detach().cpu().numpy().astype(dt).reshape(-1, b.shape[-1])
    R = B - (A_sp @ X.T).T
    return np.linalg.norm(R, axis=-1).reshape(b.shape[:-1])


# ------------------------------------------------------------------------------------------------
# accuracy against spsolve
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("form", ["operator", "torch-csr", "torch-dense", "torch-coo"])
def test_poisson_float64_matches_spsolve(form):
    A_sp = poisson2d(20, 18)
    n = A_sp.shape[0]
    A_t = torch.from_numpy(A_sp.toarray())
    A = {
        "operator": aslinearoperator(A_sp, is_self_adjoint=True, is_positive_definite=True),
        "torch-csr": A_t.to_sparse_csr(),
        "torch-dense": A_t,
        "torch-coo": A_t.to_sparse(),
    }[form]
    b = randn(n, seed=1)
    res = cg(A, b, rtol=1e-12)
    assert res.x.shape == b.shape and res.x.dtype == torch.float64
    assert bool(res.converged) and int(res.status) == Status.SUCCESS and res.worst == Status.SUCCESS
    assert rel_err(res.x, spsolve(A_sp, b)) < 1e-8
    assert 10 < int(res.iterations) < n
    assert float(res.info["residual_norm"]) <= 10 * 1e-12 * float(torch.linalg.vector_norm(b))


def test_random_spd_float64_matches_spsolve():
    A = random_spd(80, cond=1e3, seed=2)
    b = randn(80, seed=3)
    res = cg(A, b, rtol=1e-12)
    assert bool(res.converged)
    assert rel_err(res.x, spsolve(A.numpy(), b)) < 1e-8
    np.testing.assert_allclose(res.x.numpy(), np.linalg.solve(A.numpy(), b.numpy()), rtol=1e-8, atol=1e-10)


def test_float32_poisson():
    A_sp = poisson2d(16, 16)
    A = aslinearoperator(A_sp, dtype=torch.float32, is_self_adjoint=True, is_positive_definite=True)
    b64 = randn(256, seed=4)
    b = b64.float()
    res = cg(A, b, rtol=1e-6)
    assert res.x.dtype == torch.float32 and res.residuals.dtype == torch.float32
    assert bool(res.converged)
    assert rel_err(res.x, spsolve(A_sp, b64)) < 1e-4
    # float32 and float64 take (nearly) the same number of iterations at a moderate tolerance
    res64 = cg(aslinearoperator(A_sp), b64, rtol=1e-6)
    assert abs(int(res.iterations) - int(res64.iterations)) <= 3


def test_complex_hermitian_matches_spsolve():
    n = 60
    A = random_spd(n, cond=200.0, dtype=torch.complex128, seed=5)
    assert float((A - A.mH).abs().max()) == 0.0 and float(A.imag.abs().max()) > 0.1
    b = randn(2, n, dtype=torch.complex128, seed=6)
    res = cg(A, b, rtol=1e-12)
    assert res.x.dtype == torch.complex128
    assert bool(res.converged.all())
    assert rel_err(res.x, spsolve(A.numpy(), b)) < 1e-8
    # the real-valued residual history and residual norms
    assert not res.residuals.is_complex() and not res.info["residual_norm"].is_complex()
    # through the scipy complex sparse wrapper as well
    res_sp = cg(aslinearoperator(sp.csr_matrix(A.numpy())), b, rtol=1e-12)
    assert rel_err(res_sp.x, spsolve(A.numpy(), b)) < 1e-8


def test_complex_rhs_with_real_hermitian_operator():
    # a real SPD matrix (Poisson + 2 I) cast to complex, with a complex right-hand side
    A_sp = poisson2d(10, 10)
    A = aslinearoperator(A_sp + 2 * sp.identity(100), dtype=torch.complex128)
    b = randn(100, dtype=torch.complex128, seed=7)
    res = cg(A, b, rtol=1e-12)
    assert bool(res.converged)
    assert rel_err(res.x, spsolve(sp.csc_matrix(A_sp + 2 * sp.identity(100)).astype(np.complex128), b)) < 1e-9
    # the real and imaginary parts are solved independently by linearity
    xr = cg(aslinearoperator(A_sp + 2 * sp.identity(100)), b.real.contiguous(), rtol=1e-13).x
    xi = cg(aslinearoperator(A_sp + 2 * sp.identity(100)), b.imag.contiguous(), rtol=1e-13).x
    np.testing.assert_allclose(res.x.numpy(), (xr + 1j * xi).numpy(), rtol=1e-9, atol=1e-10)


# ------------------------------------------------------------------------------------------------
# batching: each system has its own stopping test
# ------------------------------------------------------------------------------------------------
def _distinct_rhs(nx, ny):
    """Right-hand sides that CG solves in 1, 2, 3 and many iterations (combinations of eigenvectors)."""
    v = [torch.from_numpy(poisson_eigvec(nx, ny, k, l)) for k, l in [(1, 1), (2, 3), (3, 1)]]
    return {
        "random": randn(nx * ny, seed=11),
        "one": v[0],
        "two": v[0] + 0.5 * v[1],
        "three": v[0] + 0.5 * v[1] - 2.0 * v[2],
        "random2": 1e3 * randn(nx * ny, seed=12),
    }


def _record_callback():
    snaps = []
    return snaps, lambda x: snaps.append(x.clone())


def test_batched_rhs_each_system_stops_on_its_own():
    nx, ny = 12, 10
    A_sp = poisson2d(nx, ny)
    A = aslinearoperator(A_sp, is_self_adjoint=True, is_positive_definite=True)
    rhs = _distinct_rhs(nx, ny)
    b = torch.stack([rhs["random"], rhs["two"], rhs["one"]])            # (3, n)
    x0 = torch.zeros_like(b)
    x_exact = torch.from_numpy(spsolve(A_sp, rhs["random2"]))
    b = torch.cat([b, rhs["random2"][None]])                              # (4, n), last with exact x0
    x0 = torch.cat([x0, x_exact[None]])
    snaps, cb = _record_callback()
    res = cg(A, b, x0=x0, rtol=1e-10, callback=cb)
    it = res.iterations.tolist()
    assert res.status.shape == (4,) and res.iterations.shape == (4,) and res.residuals.shape[1:] == (4,)
    assert bool(res.converged.all())
    assert it[1] == 2 and it[2] == 1 and it[3] == 0 and it[0] > 10
    assert res.residuals.shape[0] == max(it) + 1 == len(snaps) + 1
    # each system matches the direct solve
    ref = spsolve(A_sp, b)
    for i in range(4):
        assert rel_err(res.x[i], ref[i]) < 1e-8, i
    # a system that has stopped is frozen: every later iterate is bit-identical to its final value
    for i in range(4):
        for k in range(it[i], len(snaps)):
            assert torch.equal(snaps[k][i], res.x[i]), (i, k)
        if it[i] > 0:  # ...and it did move on its last iteration
            prev = x0[i] if it[i] == 1 else snaps[it[i] - 2][i]
            assert not torch.equal(prev, res.x[i])
    assert torch.equal(res.x[3], x_exact)  # x0 exact: returned untouched
    # its residual history stops moving too
    for i in range(4):
        assert torch.equal(res.residuals[it[i]:, i], res.residuals[it[i], i].expand(len(snaps) + 1 - it[i]))
        assert float(res.residuals[it[i], i]) <= 1e-10 * float(torch.linalg.vector_norm(b[i]))
    # solving each system alone gives the same iterations and the same answer
    for i in range(4):
        alone = cg(A, b[i], x0=x0[i], rtol=1e-10)
        assert int(alone.iterations) == it[i]
        np.testing.assert_allclose(res.x[i].numpy(), alone.x.numpy(), rtol=1e-12, atol=1e-12 * float(alone.x.abs().max()))


def test_batched_2x2_dense_matrix():
    nx, ny = 9, 8
    A_sp = poisson2d(nx, ny)
    A = torch.from_numpy(A_sp.toarray())
    rhs = _distinct_rhs(nx, ny)
    b = torch.stack([torch.stack([rhs["random"], rhs["three"]]), torch.stack([rhs["one"], torch.zeros(nx * ny, dtype=torch.float64)])])
    assert b.shape == (2, 2, nx * ny)
    snaps, cb = _record_callback()
    res = cg(A, b, rtol=1e-10, callback=cb)
    assert res.x.shape == (2, 2, nx * ny) and res.iterations.shape == (2, 2) and res.status.shape == (2, 2)
    assert res.residuals.shape == (int(res.iterations.max()) + 1, 2, 2)
    assert res.iterations[0, 1] == 3 and res.iterations[1, 0] == 1 and res.iterations[1, 1] == 0
    assert res.iterations[0, 0] > 10
    assert bool(res.converged.all())
    ref = spsolve(A_sp, b)
    for idx in [(0, 0), (0, 1), (1, 0)]:
        assert rel_err(res.x[idx], ref[idx]) < 1e-8
    assert torch.equal(res.x[1, 1], torch.zeros(nx * ny, dtype=torch.float64))
    for idx in [(0, 1), (1, 0), (1, 1)]:
        k0 = int(res.iterations[idx])
        for k in range(k0, len(snaps)):
            assert torch.equal(snaps[k][idx], res.x[idx])
        alone = cg(A, b[idx], rtol=1e-10)
        assert int(alone.iterations) == k0
        np.testing.assert_allclose(res.x[idx].numpy(), alone.x.numpy(), rtol=1e-12, atol=1e-14)


def test_batched_status_mixture():
    """Per-system statuses in one batch: converged / max-iterations, then converged / breakdown."""
    n = 30
    pos = torch.diag(torch.linspace(1, 50, n, dtype=torch.float64))
    b = torch.stack([randn(n, seed=1), torch.zeros(n, dtype=torch.float64), randn(n, seed=2)])
    b[1, 0] = 1.0  # an eigenvector of the diagonal matrix: one iteration
    res = cg(pos, b, rtol=1e-12, maxiter=4)
    assert res.status.tolist() == [Status.MAX_ITERATIONS, Status.SUCCESS, Status.MAX_ITERATIONS]
    assert res.iterations.tolist() == [4, 1, 4]
    assert res.converged.tolist() == [False, True, False]
    assert res.worst == Status.MAX_ITERATIONS and res.info["reason"] == Status.MAX_ITERATIONS.message
    # a batched callable operator where one system is negative definite
    sign = torch.tensor([1.0, -1.0, 1.0], dtype=torch.float64)[:, None]
    op = aslinearoperator(lambda x: sign * (x @ pos.mT), in_shape=n, is_self_adjoint=True)
    res = cg(op, b, rtol=1e-10)
    assert res.status.tolist() == [Status.SUCCESS, Status.BREAKDOWN, Status.SUCCESS]
    assert res.worst == Status.BREAKDOWN and "breakdown" in res.info["reason"]
    assert res.iterations[1] == 0 and torch.equal(res.x[1], torch.zeros(n, dtype=torch.float64))
    for i in (0, 2):
        np.testing.assert_allclose(res.x[i].numpy(), b[i].numpy() / np.diag(pos.numpy()), rtol=1e-9)


# ------------------------------------------------------------------------------------------------
# identical to scipy's CG
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("rtol", [1e-4, 1e-8, 1e-11])
def test_iteration_count_equals_scipy(rtol):
    nx, ny = 24, 20
    A_sp = poisson2d(nx, ny)
    A = aslinearoperator(A_sp, is_self_adjoint=True, is_positive_definite=True)
    b = randn(3, nx * ny, seed=21)
    b[1] *= 1e-3
    res = cg(A, b, rtol=rtol)
    for i in range(3):
        x_sc, k_sc = scipy_iterations(A_sp, b[i].numpy(), rtol)
        assert int(res.iterations[i]) == k_sc, (i, int(res.iterations[i]), k_sc)
        np.testing.assert_allclose(res.x[i].numpy(), x_sc, rtol=1e-10, atol=1e-10 * np.abs(x_sc).max())


def test_iteration_count_equals_scipy_with_preconditioner_and_x0():
    nx, ny = 16, 16
    d = np.logspace(0, 2, nx * ny)
    A_sp = sp.csr_matrix(sp.diags(d) @ poisson2d(nx, ny) @ sp.diags(d))
    b = randn(nx * ny, seed=22)
    x0 = randn(nx * ny, seed=23)
    diag = torch.from_numpy(A_sp.diagonal())
    M_sc = spla.LinearOperator(A_sp.shape, matvec=lambda r: r / A_sp.diagonal(), dtype=np.float64)
    x_sc, k_sc = scipy_iterations(A_sp, b.numpy(), 1e-9, M=M_sc, x0=x0.numpy())
    res = cg(aslinearoperator(A_sp), b, x0=x0, rtol=1e-9, M=lambda r: r / diag)
    assert int(res.iterations) == k_sc
    np.testing.assert_allclose(res.x.numpy(), x_sc, rtol=1e-9, atol=1e-9 * np.abs(x_sc).max())


# ------------------------------------------------------------------------------------------------
# contracts
# ------------------------------------------------------------------------------------------------
def test_zero_rhs_returns_zero():
    A = poisson2d(6, 6)
    op = aslinearoperator(A)
    b = torch.zeros(36, dtype=torch.float64)
    calls = []
    res = cg(op, b, callback=calls.append)
    assert torch.equal(res.x, torch.zeros(36, dtype=torch.float64))
    assert int(res.iterations) == 0 and bool(res.converged) and calls == []
    assert res.residuals.shape == (1,) and float(res.residuals[0]) == 0.0
    assert float(res.info["residual_norm"]) == 0.0 and float(res.info["b_norm"]) == 0.0
    # batched complex zeros too
    bc = torch.zeros(2, 3, 36, dtype=torch.complex128)
    res = cg(aslinearoperator(A, dtype=torch.complex128), bc)
    assert torch.equal(res.x, bc) and res.iterations.tolist() == [[0] * 3] * 2


def test_exact_x0_takes_zero_iterations():
    A_sp = poisson2d(10, 10)
    b = randn(100, seed=31)
    x_exact = torch.from_numpy(spsolve(A_sp, b))
    res = cg(aslinearoperator(A_sp), b, x0=x_exact, rtol=1e-10)
    assert int(res.iterations) == 0 and bool(res.converged)
    assert torch.equal(res.x, x_exact)
    assert res.x is not x_exact  # x0 is not modified in place nor aliased
    assert res.residuals.shape == (1,) and float(res.residuals[0]) <= 1e-10 * float(torch.linalg.vector_norm(b))


def test_maxiter_reached():
    A_sp = poisson2d(12, 12)
    b = randn(144, seed=32)
    calls = []
    res = cg(aslinearoperator(A_sp), b, rtol=1e-12, maxiter=7, callback=calls.append)
    assert int(res.status) == Status.MAX_ITERATIONS and not bool(res.converged)
    assert int(res.iterations) == 7 and len(calls) == 7 and res.residuals.shape == (8,)
    assert res.info["maxiter"] == 7
    assert float(res.residuals[-1]) > 1e-12 * float(torch.linalg.vector_norm(b))
    # the 7 iterates are exactly scipy's first 7 iterates (no silent early exit)
    x_sc, info = spla.cg(A_sp, b.numpy(), rtol=1e-12, maxiter=7)
    assert info == 7
    np.testing.assert_allclose(res.x.numpy(), x_sc, rtol=1e-11, atol=1e-12)
    # default maxiter is 10 n
    assert cg(aslinearoperator(A_sp), b).info["maxiter"] == 1440


def test_negative_definite_breaks_down():
    A_sp = poisson2d(8, 8)
    op = -aslinearoperator(A_sp, is_self_adjoint=True, is_positive_definite=True)
    b = randn(64, seed=33)
    res = cg(op, b)
    assert int(res.status) == Status.BREAKDOWN and not bool(res.converged)
    assert int(res.iterations) == 0
    assert torch.equal(res.x, torch.zeros_like(b))  # no silent "answer"
    assert "not positive definite" in res.info["reason"]


def test_indefinite_breaks_down():
    # p0 = b has b^T A b = 1 - 2 < 0
    A = torch.diag(torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64))
    res = cg(A, torch.tensor([1.0, 1.0, 0.0], dtype=torch.float64))
    assert int(res.status) == Status.BREAKDOWN and not bool(res.converged)
    # breakdown after a first successful step: p1^T A p1 < 0
    A = torch.diag(torch.tensor([1.0, 2.0, -0.01], dtype=torch.float64))
    b = torch.tensor([1.0, 1.0, 1.0], dtype=torch.float64)
    res = cg(A, b, rtol=1e-12)
    assert int(res.status) == Status.BREAKDOWN and not bool(res.converged)
    assert int(res.iterations) >= 1
    # a complex Hermitian indefinite matrix
    Q, _ = torch.linalg.qr(randn(20, 20, dtype=torch.complex128, seed=34))
    lam = torch.linspace(-1, 5, 20, dtype=torch.float64).to(torch.complex128)
    Ai = (Q * lam) @ Q.mH
    bi = Q[:, 0] + 0.1 * Q[:, 5]  # dominated by the negative eigenvalue
    res = cg((Ai + Ai.mH) / 2, bi, rtol=1e-12)
    assert int(res.status) == Status.BREAKDOWN


def test_non_pd_preconditioner_breaks_down():
    A = poisson2d(6, 6)
    b = randn(36, seed=35)
    res = cg(aslinearoperator(A), b, M=lambda r: -r)
    assert int(res.status) == Status.BREAKDOWN


@pytest.mark.parametrize("where", ["b", "x0"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_nonfinite_input_raises(where, bad):
    A = torch.eye(5, dtype=torch.float64)
    b = torch.ones(5, dtype=torch.float64)
    x0 = torch.zeros(5, dtype=torch.float64)
    (b if where == "b" else x0)[2] = bad
    with pytest.raises(ValueError, match=f"{where} contains NaN or Inf"):
        cg(A, b, x0=x0)


def test_nonfinite_during_iteration_is_reported():
    def blows_up(x):
        return x * float("inf")

    res = cg(blows_up, torch.ones(4, dtype=torch.float64))
    assert int(res.status) == Status.NONFINITE and not bool(res.converged)


@pytest.mark.parametrize("kwargs,match", [
    (dict(rtol=-1e-6), "rtol"),
    (dict(rtol=float("nan")), "rtol"),
    (dict(atol=-1.0), "atol"),
    (dict(atol=float("inf")), "atol"),
    (dict(maxiter=0), "maxiter"),
    (dict(maxiter=2.5), "maxiter"),
    (dict(maxiter=True), "maxiter"),
])
def test_invalid_tolerances_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        cg(torch.eye(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64), **kwargs)


def test_shape_dtype_and_type_errors():
    A = torch.eye(10, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"b has shape \(3, 9\)"):
        cg(A, torch.ones(3, 9, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"b has shape \(4, 4\).*16, 16"):
        cg(laplacian((16, 16)), torch.ones(4, 4))
    with pytest.raises(ValueError, match="x0 has shape"):
        cg(A, torch.ones(2, 10, dtype=torch.float64), x0=torch.zeros(10, dtype=torch.float64))
    with pytest.raises(ValueError, match="square"):
        cg(torch.ones(3, 4, dtype=torch.float64), torch.ones(3, dtype=torch.float64))
    with pytest.raises(ValueError, match="square"):
        cg(aslinearoperator(torch.ones(3, 4, dtype=torch.float64)), torch.ones(4, dtype=torch.float64))
    with pytest.raises(ValueError, match="dtype mismatch"):
        cg(A, torch.ones(10, dtype=torch.float32))
    with pytest.raises(ValueError, match="dtype mismatch"):
        cg(aslinearoperator(A), torch.ones(10, dtype=torch.complex128))
    with pytest.raises(TypeError, match="aslinearoperator"):
        cg(np.eye(3), torch.ones(3, dtype=torch.float64))
    with pytest.raises(TypeError, match="aslinearoperator"):
        cg(sp.identity(3, format="csr"), torch.ones(3, dtype=torch.float64))


@pytest.fixture(scope="module")
def badly_scaled():
    """D P D for the 2-D Poisson matrix P and a diagonal D spanning 1.5 decades; the plain CG solve."""
    nx, ny = 14, 14
    d = np.logspace(0, 1.5, nx * ny)
    np.random.default_rng(0).shuffle(d)
    A_sp = sp.csr_matrix(sp.diags(d) @ poisson2d(nx, ny) @ sp.diags(d))
    A = aslinearoperator(A_sp, is_self_adjoint=True, is_positive_definite=True)
    b = randn(2, nx * ny, seed=41)
    plain = cg(A, b, rtol=1e-10)
    assert bool(plain.converged.all())
    ref = spsolve(A_sp, b)
    assert rel_err(plain.x, ref) < 1e-6
    # scipy needs the same work, to within round-off over hundreds of iterations
    for i in range(2):
        its = scipy_iterations(A_sp, b[i].numpy(), 1e-10)[1]
        assert abs(int(plain.iterations[i]) - its) <= max(3, 0.02 * its)  # round-off over hundreds of steps
    return A_sp, A, b, plain, ref


@pytest.mark.parametrize("form", ["callable", "diag-matrix", "operator"])
def test_jacobi_preconditioner(form, badly_scaled):
    A_sp, A, b, plain, ref = badly_scaled
    inv_diag = torch.from_numpy(1.0 / A_sp.diagonal())
    M = {
        "callable": lambda r: r * inv_diag,
        "diag-matrix": torch.diag(inv_diag),
        "operator": aslinearoperator(sp.diags(1.0 / A_sp.diagonal()).tocsr(), is_self_adjoint=True, is_positive_definite=True),
    }[form]
    pre = cg(A, b, rtol=1e-10, M=M)
    assert bool(pre.converged.all())
    assert (pre.iterations * 3 < plain.iterations).all(), (pre.iterations, plain.iterations)
    assert rel_err(pre.x, ref) < 1e-7
    np.testing.assert_allclose(pre.x.numpy(), plain.x.numpy(), rtol=1e-6, atol=1e-7 * float(plain.x.abs().max()))
    # exactly scipy's preconditioned iteration count
    M_sc = spla.LinearOperator(A_sp.shape, matvec=lambda r: r / A_sp.diagonal(), dtype=np.float64)
    for i in range(2):
        assert int(pre.iterations[i]) == scipy_iterations(A_sp, b[i].numpy(), 1e-10, M=M_sc)[1]


def test_callback_once_per_iteration():
    A_sp = poisson2d(10, 9)
    b = randn(90, seed=42)
    xs = []
    res = cg(aslinearoperator(A_sp), b, rtol=1e-8, callback=lambda x: xs.append(x.clone()))
    assert len(xs) == int(res.iterations) == res.residuals.shape[0] - 1
    assert torch.equal(xs[-1], res.x)
    assert xs[0].shape == b.shape
    # the k-th callback sees the k-th iterate: its residual is the k-th history entry
    for k in (0, len(xs) // 2, len(xs) - 1):
        r = np.linalg.norm(b.numpy() - A_sp @ xs[k].numpy())
        np.testing.assert_allclose(r, float(res.residuals[k + 1]), rtol=1e-6)
    # batched: once per (global) iteration with the full batch
    calls = []
    b2 = torch.stack([b, torch.from_numpy(poisson_eigvec(10, 9, 1, 1))])
    res2 = cg(aslinearoperator(A_sp), b2, rtol=1e-8, callback=lambda x: calls.append(tuple(x.shape)))
    assert calls == [(2, 90)] * int(res2.iterations.max()) and res2.iterations[1] == 1


def test_atol_stopping_rule():
    A_sp = poisson2d(12, 12)
    A = aslinearoperator(A_sp)
    b = randn(144, seed=43)
    b_norm = float(torch.linalg.vector_norm(b))
    # absolute tolerance only
    res = cg(A, b, rtol=0.0, atol=1e-6)
    assert bool(res.converged) and float(res.residuals[-1]) <= 1e-6 < float(res.residuals[-2])
    _, k_sc = scipy_iterations(A_sp, b.numpy(), rtol=0.0, atol=1e-6)
    assert int(res.iterations) == k_sc
    # atol bigger than ||b||: nothing to do
    res = cg(A, b, atol=2 * b_norm)
    assert int(res.iterations) == 0 and torch.equal(res.x, torch.zeros_like(b))
    # the max of the two rules applies
    k_rel = int(cg(A, b, rtol=1e-8).iterations)
    k_both = int(cg(A, b, rtol=1e-8, atol=1e-3 * b_norm).iterations)
    k_abs = int(cg(A, b, rtol=0.0, atol=1e-3 * b_norm).iterations)
    assert k_both == k_abs < k_rel
    # comparable rtol and atol: the threshold is their max (scipy's rule), not e.g. their sum
    for rtol, factor in [(1e-6, 0.5), (1e-6, 1.0), (1e-6, 2.0), (1e-7, 1e-7), (1e-5, 1e-6)]:
        atol = factor * 1e-6 * b_norm
        res = cg(A, b, rtol=rtol, atol=atol)
        tol = max(rtol * b_norm, atol)
        assert float(res.residuals[-1]) <= tol < float(res.residuals[-2]), (rtol, factor)
        assert int(res.iterations) == scipy_iterations(A_sp, b.numpy(), rtol=rtol, atol=atol)[1]
    # with atol, scaling b changes the work (rtol alone is scale-invariant)
    bs = torch.stack([b, 1e4 * b])
    res = cg(A, bs, rtol=0.0, atol=1e-4)
    assert res.iterations[0] < res.iterations[1]
    res = cg(A, bs, rtol=1e-6)
    assert res.iterations[0] == res.iterations[1]


def test_residual_history_and_true_residual():
    A_sp = poisson2d(14, 12)
    A = aslinearoperator(A_sp)
    b = randn(168, seed=44)
    x0 = randn(168, seed=45)
    rtol = 1e-9
    res = cg(A, b, x0=x0, rtol=rtol)
    k = int(res.iterations)
    tol = rtol * float(torch.linalg.vector_norm(b))
    h = res.residuals
    assert h.shape == (k + 1,)
    np.testing.assert_allclose(float(h[0]), np.linalg.norm(b.numpy() - A_sp @ x0.numpy()), rtol=1e-13)
    assert float(h[-1]) <= tol and bool((h[:-1] > tol).all())
    assert res.info["rtol"] == rtol and res.info["atol"] == 0.0
    np.testing.assert_allclose(float(res.info["b_norm"]), np.linalg.norm(b.numpy()), rtol=1e-14)
    r64 = true_residual_f64(A_sp, b, res.x)
    np.testing.assert_allclose(res.info["residual_norm"].numpy(), r64, rtol=1e-6)
    assert float(r64) <= 10 * tol  # the recursive residual did not drift away from the true one
    # float32: true residual is reported in float32, consistent with a float64 recomputation
    A32 = aslinearoperator(A_sp, dtype=torch.float32)
    res32 = cg(A32, b.float(), rtol=1e-5)
    r64 = true_residual_f64(A_sp, b.float(), res32.x)
    assert abs(float(res32.info["residual_norm"]) - float(r64)) <= 1e-5 * float(torch.linalg.vector_norm(b))
    assert float(r64) <= 2e-5 * float(torch.linalg.vector_norm(b))


# ------------------------------------------------------------------------------------------------
# operator kinds
# ------------------------------------------------------------------------------------------------
def test_plain_callable_operator():
    A = random_spd(40, cond=50.0, seed=51)
    b = randn(40, seed=52)
    calls = [0]

    def matvec(x):
        calls[0] += 1
        assert x.shape == (40,)
        return A @ x

    res = cg(matvec, b, rtol=1e-12)
    assert bool(res.converged)
    assert rel_err(res.x, spsolve(A.numpy(), b)) < 1e-9
    assert calls[0] == int(res.iterations) + 1  # one product per iteration plus the final true residual
    # a callable on a 2-D field (one system shaped like b)
    L = laplacian((8, 6), dtype=torch.float64)
    u = randn(8, 6, seed=53)
    res = cg(lambda v: L.apply(v), u, rtol=1e-12)
    ref = spsolve(poisson2d(8, 6), u.reshape(-1)).reshape(8, 6)
    assert res.x.shape == (8, 6) and rel_err(res.x, ref) < 1e-9
    assert res.iterations.shape == ()


def test_laplacian_operator_batched_grid():
    L = laplacian((16, 16), dtype=torch.float64)
    b = randn(4, 16, 16, seed=54)
    res = cg(L, b, rtol=1e-10)
    assert res.x.shape == (4, 16, 16) and res.iterations.shape == (4,) and res.residuals.shape[1:] == (4,)
    assert bool(res.converged.all())
    A_sp = poisson2d(16, 16)
    ref = spsolve(A_sp, b.reshape(4, 256)).reshape(4, 16, 16)
    for i in range(4):
        assert rel_err(res.x[i], ref[i]) < 1e-8
        _, k_sc = scipy_iterations(A_sp, b[i].reshape(-1).numpy(), 1e-10)
        assert int(res.iterations[i]) == k_sc
    np.testing.assert_allclose(res.info["residual_norm"].numpy(), true_residual_f64(A_sp, b.reshape(4, 256), res.x.reshape(4, 256)), rtol=1e-4)  # b - Ax cancels ~10 digits
    # anisotropic mixed-bc Laplacian, dtype-agnostic operator with float32 data
    L2 = laplacian((12, 10), (0.5, 0.2), ["dirichlet", "neumann"])
    b2 = randn(3, 12, 10, seed=55).float()
    res2 = cg(L2, b2, rtol=1e-5)
    assert res2.x.dtype == torch.float32 and bool(res2.converged.all())
    D = L2.apply(torch.eye(120, dtype=torch.float64).reshape(120, 12, 10)).reshape(120, 120).T.numpy()
    ref2 = np.linalg.solve(D, b2.double().reshape(3, 120).numpy().T).T.reshape(3, 12, 10)
    assert rel_err(res2.x.double(), ref2) < 1e-3


def test_composite_operator_normal_equations():
    # CG on A^T A x = A^T y for a tall full-rank A: the least-squares solution
    G = randn(50, 20, seed=56)
    y = randn(50, seed=57)
    A = aslinearoperator(G)
    N = A.normal()
    assert isinstance(N, LinearOperator) and N.is_self_adjoint  # semi-definite in general: not tagged definite
    res = cg(N, A.H @ y, rtol=1e-12)
    x_ls = np.linalg.lstsq(G.numpy(), y.numpy(), rcond=None)[0]
    np.testing.assert_allclose(res.x.numpy(), x_ls, rtol=1e-8, atol=1e-10)
    # shifted operator from algebra: (L + 3 I) x = b
    L = laplacian((10,), dtype=torch.float64)
    S = L + 3.0 * IdentityOperator(10, dtype=torch.float64)
    b = randn(10, seed=58)
    res = cg(S, b, rtol=1e-13)
    T = sp.diags([-np.ones(9), 5 * np.ones(10), -np.ones(9)], [-1, 0, 1])
    assert rel_err(res.x, spsolve(T, b)) < 1e-11


# ------------------------------------------------------------------------------------------------
# GPU
# ------------------------------------------------------------------------------------------------
@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cg_cuda_matches_cpu():
    dev = torch.device("cuda")
    nx, ny = 24, 20
    A_sp = poisson2d(nx, ny)
    A_cpu = torch.from_numpy(A_sp.toarray()).to_sparse_csr()
    b_cpu = randn(3, nx * ny, seed=61)
    b_cpu[2] = torch.from_numpy(poisson_eigvec(nx, ny, 1, 1))
    cpu = cg(A_cpu, b_cpu, rtol=1e-10)
    for A_dev, b_dev in [
        (A_cpu.to(dev), b_cpu.to(dev)),
        (laplacian((nx, ny), dtype=torch.float64, device=dev), b_cpu.reshape(3, nx, ny).to(dev)),
    ]:
        gpu = cg(A_dev, b_dev, rtol=1e-10)
        assert gpu.x.device.type == "cuda" and gpu.status.device.type == "cuda"
        assert bool(gpu.converged.all())
        assert (gpu.iterations.cpu() - cpu.iterations).abs().max() <= 1
        assert int(gpu.iterations[2]) == 1
        np.testing.assert_allclose(gpu.x.reshape(3, -1).cpu().numpy(), cpu.x.numpy(), rtol=1e-8, atol=1e-10)
        assert rel_err(gpu.x.reshape(3, -1).cpu(), spsolve(A_sp, b_cpu)) < 1e-8
    # check_every only changes how often the host looks; the answer is the same
    g1 = cg(A_cpu.to(dev), b_cpu.to(dev), rtol=1e-10, check_every=1)
    g10 = cg(A_cpu.to(dev), b_cpu.to(dev), rtol=1e-10, check_every=10)
    assert torch.equal(g1.iterations, g10.iterations)
    torch.testing.assert_close(g1.x, g10.x, rtol=0, atol=0)
    # complex float32 on the device
    Ac = random_spd(64, cond=20.0, dtype=torch.complex128, seed=62)
    bc = randn(2, 64, dtype=torch.complex128, seed=63)
    gc = cg(Ac.to(dev, torch.complex64), bc.to(dev, torch.complex64), rtol=1e-5)
    assert bool(gc.converged.all())
    assert rel_err(gc.x.cpu().to(torch.complex128), spsolve(Ac.numpy(), bc)) < 1e-4
