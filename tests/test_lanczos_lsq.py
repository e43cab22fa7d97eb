"""Numerical tests of `sciml.linalg.lanczos` and `sciml.linalg.cgls` (and the "cgls" solver) against
dense numpy/torch eigen- and least-squares solutions and scipy.sparse.linalg (eigsh, lsqr)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.sparse.linalg as spla
import torch

from helpers import gen, randn
import sciml
from sciml.linalg import cgls, lanczos
from sciml.operators import MatrixOperator, aslinearoperator, laplacian
from sciml.solvers import SolverOptionError
from sciml.status import Status

pytestmark = [pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta state"),
              pytest.mark.filterwarnings("ignore:Sparse invariant checks")]
warnings.filterwarnings("ignore", message=".*Sparse invariant checks.*")




# ------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------




def orthogonal(n: int, dtype=torch.float64, seed: int = 0) -> torch.Tensor:
    Q, _ = torch.linalg.qr(randn(n, n, dtype=dtype, seed=seed))
    return Q


def with_spectrum(lam: torch.Tensor, dtype=torch.float64, seed: int = 0) -> torch.Tensor:
    """Q diag(lam) Q^H for a random orthogonal/unitary Q (Hermitian to rounding, then symmetrised)."""
    Q = orthogonal(lam.numel(), dtype, seed)
    A = (Q * lam.to(dtype)) @ Q.mH
    return (A + A.mH) / 2


LAM = torch.arange(1.0, 101.0, dtype=torch.float64)  # spectrum 1..100, every eigenvalue simple


def laplacian_eigenvalues_2d(n: int, h: float) -> np.ndarray:
    """Analytic eigenvalues of the 5-point Dirichlet Laplacian on an n x n interior grid, step h."""
    s = 4 / h**2 * np.sin(np.pi * np.arange(1, n + 1) / (2 * (n + 1))) ** 2
    return np.sort((s[:, None] + s[None, :]).ravel())


# ------------------------------------------------------------------------------------------------
# lanczos
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("rotated", [False, True], ids=["diag", "rotated"])
def test_lanczos_extremes_converge_to_the_true_ones(rotated):
    A = with_spectrum(LAM) if rotated else torch.diag(LAM)
    errors = []
    for k in (10, 30, 60, 80):
        lo, hi = lanczos(A, k, generator=gen(1)).extremal_eigenvalues()
        errors.append(max(abs(float(lo) - 1.0), abs(float(hi) - 100.0)))
    assert errors[-2] < 1e-8 and errors[-1] < 1e-8, errors
    # monotone convergence: more steps never give worse extremes (T_k is a leading block of T_{k+1})
    assert all(e2 <= e1 + 1e-12 for e1, e2 in zip(errors, errors[1:])), errors
    assert errors[0] > 1e-3  # and 10 steps are genuinely not enough: the test measures something


def test_lanczos_ritz_values_interlace():
    A = with_spectrum(LAM, seed=3)
    lam = LAM.numpy()
    n = lam.size
    res = lanczos(A, 40, generator=gen(2))
    theta = res.ritz_values().numpy()
    assert theta.shape == (40,) and np.all(np.diff(theta) >= 0)
    # Cauchy interlacing for the compression V^T A V (k orthonormal columns): λ_i <= θ_i <= λ_{i+n-k}
    k = theta.size
    assert np.all(theta >= lam.min() - 1e-10) and np.all(theta <= lam.max() + 1e-10)
    assert np.all(theta >= lam[:k] - 1e-10)
    assert np.all(theta <= lam[n - k:] + 1e-10)
    # T_j is the leading j x j block of T_{j+1}: their eigenvalues interlace strictly
    T = res.T.numpy()
    for j in (5, 17, 39):
        small = np.linalg.eigvalsh(T[:j, :j])
        big = np.linalg.eigvalsh(T[: j + 1, : j + 1])
        assert np.all(big[:-1] <= small + 1e-10) and np.all(small <= big[1:] + 1e-10)


@pytest.mark.parametrize("dtype", [torch.float64, torch.complex128])
def test_lanczos_basis_is_orthonormal_and_tridiagonalises(dtype):
    n, k = 60, 45
    lam = torch.linspace(-3.0, 7.0, n, dtype=torch.float64)  # indefinite: Lanczos does not need PD
    A = with_spectrum(lam, dtype, seed=4)
    res = lanczos(A, k, v0=randn(n, dtype=dtype, seed=5))
    V = res.basis                                    # (k, n): rows are the Lanczos vectors
    assert V.shape == (k, n) and V.dtype == dtype
    assert res.alpha.dtype == torch.float64 and res.beta.dtype == torch.float64  # T is real
    assert res.alpha.shape == (k,) and res.beta.shape == (k - 1,)
    eye = torch.eye(k, dtype=dtype)
    assert float((V.conj() @ V.mT - eye).abs().max()) < 1e-12
    # V^H A V = T (rows of V are the vectors: (V A V^H) with the conjugation in the right place)
    T = V.conj() @ A @ V.mT
    torch.testing.assert_close(T, res.T.to(dtype), atol=1e-11, rtol=0)
    assert bool((res.beta > 0).all())
    # the first vector is the normalised start
    v0 = randn(n, dtype=dtype, seed=5)
    torch.testing.assert_close(V[0], v0 / torch.linalg.vector_norm(v0), atol=1e-14, rtol=0)
    # the three-term recurrence A V_k^T = V_k^T T_k + beta_k v_{k+1} e_k^T holds in all but the last column
    AV = A @ V.mT
    torch.testing.assert_close(AV[:, :-1], (V.mT @ res.T.to(dtype))[:, :-1], atol=1e-11, rtol=0)
    # full run: k = n gives the whole spectrum
    full = lanczos(A, n, v0=v0).ritz_values()
    torch.testing.assert_close(full, lam, atol=1e-10, rtol=0)


def test_lanczos_complex_hermitian_extremes():
    lam = torch.linspace(-2.0, 5.0, 80, dtype=torch.float64)
    A = with_spectrum(lam, torch.complex128, seed=6)
    assert not torch.allclose(A.imag, torch.zeros_like(A.imag))  # genuinely complex
    lo, hi = lanczos(A, 60, generator=gen(7), dtype=torch.complex128).extremal_eigenvalues()
    ref = np.linalg.eigvalsh(A.numpy())
    assert abs(float(lo) - ref[0]) < 1e-8 and abs(float(hi) - ref[-1]) < 1e-8
    # a random start drawn for a complex operator is complex, and the basis is
    res = lanczos(A, 5, generator=gen(7))
    assert res.basis.dtype == torch.complex128


def test_lanczos_batched_equals_one_at_a_time():
    A = with_spectrum(LAM, seed=8)
    v0 = randn(3, 100, seed=9)
    k = 30
    batched = lanczos(A, k, v0)
    assert batched.alpha.shape == (3, k) and batched.basis.shape == (3, k, 100) and batched.steps.shape == (3,)
    for i in range(3):
        one = lanczos(A, k, v0[i])
        torch.testing.assert_close(batched.alpha[i], one.alpha, atol=1e-11, rtol=0)
        torch.testing.assert_close(batched.beta[i], one.beta, atol=1e-11, rtol=0)
        torch.testing.assert_close(batched.basis[i], one.basis, atol=1e-10, rtol=0)
        torch.testing.assert_close(batched.ritz_values()[i], one.ritz_values(), atol=1e-10, rtol=0)
    # nested batch dims, on an operator with a 2-D in_shape
    L = laplacian((6, 5), 0.2, dtype=torch.float64)
    v = randn(2, 2, 6, 5, seed=10)
    res = lanczos(L, 12, v)
    assert res.basis.shape == (2, 2, 12, 6, 5) and res.alpha.shape == (2, 2, 12)
    torch.testing.assert_close(res.alpha[1, 0], lanczos(L, 12, v[1, 0]).alpha, atol=1e-11, rtol=0)


def test_lanczos_invariant_subspace_stops_early_with_exact_eigenvalues():
    n = 100
    # an exact similarity (signed permutation) of diag(1..100): its eigenvectors are exact too
    perm = torch.randperm(n, generator=gen(11))
    signs = torch.where(torch.rand(n, generator=gen(12), dtype=torch.float64) < 0.5, -1.0, 1.0).to(torch.float64)
    P = torch.eye(n, dtype=torch.float64)[perm] * signs
    A = P @ torch.diag(LAM) @ P.T
    v0 = 1.0 * P[:, 3] + 2.0 * P[:, 70]  # in the span of the eigenvectors for 4 and 71
    res = lanczos(A, 6, v0)
    assert int(res.steps) == 2
    assert float(res.beta[1:].abs().max()) == 0.0
    assert float(res.basis[2:].abs().max()) == 0.0  # no spurious vectors after the breakdown
    theta = res.ritz_values()
    lo, hi = res.extremal_eigenvalues()
    assert abs(float(lo) - 4.0) < 1e-12 and abs(float(hi) - 71.0) < 1e-12
    assert bool(((theta >= 4.0 - 1e-12) & (theta <= 71.0 + 1e-12)).all())  # padding stays inside
    torch.testing.assert_close(torch.linalg.eigvalsh(res.T[:2, :2]), torch.tensor([4.0, 71.0], dtype=torch.float64),
                               atol=1e-12, rtol=0)

    # batched: one system breaks down at step 2, the other runs on unaffected
    w = randn(n, seed=13)
    both = lanczos(A, 6, torch.stack([v0, w]))
    assert both.steps.tolist() == [2, 6]
    torch.testing.assert_close(both.alpha[1], lanczos(A, 6, w).alpha, atol=1e-12, rtol=0)
    torch.testing.assert_close(both.alpha[0, :2], res.alpha[:2], atol=1e-12, rtol=0)

    # a random rotation of the same spectrum: invariant only to rounding, so at least the 2x2 block
    # is exact and beta_2 is negligible relative to ||A||
    Q = orthogonal(n, seed=14)
    B = (Q * LAM) @ Q.T
    B = (B + B.T) / 2
    r = lanczos(B, 4, Q[:, 3] + 2 * Q[:, 70])
    assert float(r.beta[1]) < 1e-10 * 100
    torch.testing.assert_close(torch.linalg.eigvalsh(r.T[:2, :2]), torch.tensor([4.0, 71.0], dtype=torch.float64),
                               atol=1e-10, rtol=0)


def test_lanczos_one_step_is_the_rayleigh_quotient():
    A = with_spectrum(LAM, seed=15)
    v = randn(100, seed=16)
    res = lanczos(A, 1, v)
    assert res.T.shape == (1, 1) and res.beta.shape == (0,)
    rq = float(v @ A @ v / (v @ v))
    assert abs(float(res.ritz_values()[0]) - rq) < 1e-11


def test_lanczos_laplacian_matches_eigsh_and_the_analytic_spectrum():
    n, h = 20, 1 / 21
    L = laplacian((n, n), h, dtype=torch.float64)
    exact = laplacian_eigenvalues_2d(n, h)
    S = L.to_scipy()
    ref_hi = spla.eigsh(S, k=1, which="LA", return_eigenvectors=False)[0]
    ref_lo = spla.eigsh(S, k=1, sigma=0, which="LM", return_eigenvectors=False)[0]
    assert abs(ref_hi - exact[-1]) < 1e-8 * exact[-1] and abs(ref_lo - exact[0]) < 1e-8 * exact[-1]

    res = lanczos(L, 150, generator=gen(17))
    assert res.basis.shape == (150, n, n)
    lo, hi = res.extremal_eigenvalues()
    assert abs(float(hi) - exact[-1]) < 1e-8 * exact[-1]
    assert abs(float(lo) - exact[0]) < 1e-8 * exact[-1]
    theta = res.ritz_values().numpy()
    assert theta.min() >= exact[0] - 1e-9 and theta.max() <= exact[-1] + 1e-9
    # a callable operator with in_shape gives the same
    res_f = lanczos(lambda u: L.apply(u), 150, in_shape=(n, n), generator=gen(17))
    torch.testing.assert_close(res_f.alpha, res.alpha, atol=1e-9, rtol=0)


def test_lanczos_without_reorthogonalisation_still_finds_the_largest():
    A = with_spectrum(LAM, seed=18)
    res = lanczos(A, 70, generator=gen(19), reorthogonalize=False, return_basis=False)
    assert res.basis is None
    lo, hi = res.extremal_eigenvalues()
    assert abs(float(hi) - 100.0) < 1e-8
    assert abs(float(lo) - 1.0) < 1e-6
    # orthogonality really is lost without it (so the option is not a no-op) ...
    V = lanczos(A, 70, generator=gen(19), reorthogonalize=False).basis
    assert float((V @ V.T - torch.eye(70, dtype=torch.float64)).abs().max()) > 1e-6
    # ... and kept with it
    W = lanczos(A, 70, generator=gen(19)).basis
    assert float((W @ W.T - torch.eye(70, dtype=torch.float64)).abs().max()) < 1e-12


def test_lanczos_bad_input():
    A = torch.diag(LAM[:10])
    v = torch.ones(10, dtype=torch.float64)
    for k in (0, -1, 11, 2.0, None):
        with pytest.raises(ValueError, match="k must be"):
            lanczos(A, k, v)
    with pytest.raises(ValueError, match="non-zero"):
        lanczos(A, 3, torch.zeros(10, dtype=torch.float64))
    with pytest.raises(ValueError, match="non-zero"):  # one zero start in a batch
        lanczos(A, 3, torch.stack([v, torch.zeros(10, dtype=torch.float64)]))
    bad = v.clone()
    bad[4] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        lanczos(A, 3, bad)
    bad[4] = float("inf")
    with pytest.raises(ValueError, match="NaN or Inf"):
        lanczos(A, 3, bad)
    with pytest.raises(ValueError):  # v0 of the wrong length
        lanczos(A, 3, torch.ones(9, dtype=torch.float64))
    with pytest.raises(ValueError, match="in_shape"):  # a callable with neither v0 nor in_shape
        lanczos(lambda x: x, 3)


# ------------------------------------------------------------------------------------------------
# cgls
# ------------------------------------------------------------------------------------------------
def lstsq(G: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    """numpy least squares for each row of b (..., m)."""
    B = b.numpy().reshape(-1, b.shape[-1]).T
    X = np.linalg.lstsq(G.numpy(), B, rcond=None)[0].T
    return X.reshape(*b.shape[:-1], G.shape[1])


def tikhonov(G: np.ndarray, b: np.ndarray, damp: float) -> np.ndarray:
    """argmin ||G x - b||^2 + damp^2 ||x||^2 in closed form, via the stacked least-squares problem."""
    n = G.shape[1]
    stacked = np.vstack([G, damp * np.eye(n)])
    return np.linalg.lstsq(stacked, np.concatenate([b, np.zeros(n, dtype=b.dtype)]), rcond=None)[0]


def residual_norm(G: torch.Tensor, b: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return torch.linalg.vector_norm(b - x @ G.mT, dim=-1)


@pytest.mark.parametrize("dtype", [torch.float64, torch.complex128])
def test_cgls_matches_numpy_lstsq_on_tall_matrices(dtype):
    m, n = 70, 25
    G = randn(m, n, dtype=dtype, seed=20)
    b = randn(m, dtype=dtype, seed=21)  # inconsistent: the residual is far from zero
    res = cgls(G, b, rtol=1e-12)
    ref = lstsq(G, b)
    assert int(res.status) == Status.SUCCESS and res.converged.item()
    assert res.x.dtype == dtype and res.x.shape == (n,)
    np.testing.assert_allclose(res.x.numpy(), ref, rtol=0, atol=1e-10 * np.abs(ref).max())
    # the residual is orthogonal to the range of G (normal equations) and not zero
    r = b - G @ res.x
    assert float(torch.linalg.vector_norm(G.mH @ r)) < 1e-9 * float(torch.linalg.vector_norm(b))
    assert float(torch.linalg.vector_norm(r)) > 0.5
    # info: residual norms recomputed independently
    assert abs(float(res.info["residual_norm"]) - float(torch.linalg.vector_norm(r))) < 1e-12 * m
    assert float(res.info["normal_residual_norm"]) < 1e-9 * float(torch.linalg.vector_norm(G.mH @ b))
    assert res.info["b_norm"].shape == () and abs(float(res.info["b_norm"]) - float(torch.linalg.vector_norm(b))) < 1e-12
    # exact arithmetic would need n steps; rounding costs at most a few more
    assert int(res.iterations) <= n + 5
    assert res.residuals.shape == (int(res.iterations) + 1,)
    assert float(res.residuals[-1]) <= 1e-12 * float(torch.linalg.vector_norm(G.mH @ b)) * 1.0001


def test_cgls_batched_right_hand_sides():
    m, n = 60, 20
    G = randn(m, n, seed=22)
    b = randn(4, m, seed=23)
    b[2] = G @ randn(n, seed=24)  # one consistent system: it stops on the data residual
    res = cgls(G, b, rtol=1e-12)
    ref = lstsq(G, b)
    assert res.x.shape == (4, n) and res.status.shape == (4,) and res.iterations.shape == (4,)
    assert res.converged.all()
    np.testing.assert_allclose(res.x.numpy(), ref, rtol=0, atol=1e-10 * np.abs(ref).max())
    torch.testing.assert_close(res.info["residual_norm"], residual_norm(G, b, res.x), atol=1e-11, rtol=0)
    assert float(res.info["residual_norm"][2]) < 1e-10 * float(torch.linalg.vector_norm(b[2]))
    assert res.residuals.shape == (int(res.iterations.max()) + 1, 4)
    # each system as if alone
    for i in range(4):
        one = cgls(G, b[i], rtol=1e-12)
        torch.testing.assert_close(res.x[i], one.x, atol=1e-12, rtol=0)
        assert int(one.iterations) == int(res.iterations[i])


@pytest.mark.parametrize("damp", [0.1, 1.0, 5.0])
def test_cgls_damp_matches_tikhonov_and_scipy_lsqr(damp):
    m, n = 50, 30
    G = randn(m, n, seed=25)
    G[:, -1] = G[:, 0] + 1e-9 * G[:, 1]  # nearly rank-deficient: damping is what makes it well posed
    b = randn(m, seed=26)
    res = cgls(G, b, damp=damp, rtol=1e-13)
    assert res.converged.item()
    closed = np.linalg.solve(G.numpy().T @ G.numpy() + damp**2 * np.eye(n), G.numpy().T @ b.numpy())
    stacked = tikhonov(G.numpy(), b.numpy(), damp)
    np.testing.assert_allclose(closed, stacked, rtol=0, atol=1e-9 * np.abs(stacked).max())  # the references agree
    np.testing.assert_allclose(res.x.numpy(), stacked, rtol=0, atol=1e-9 * np.abs(stacked).max())
    lsqr = spla.lsqr(G.numpy(), b.numpy(), damp=damp, atol=1e-15, btol=1e-15, iter_lim=10 * n)[0]
    np.testing.assert_allclose(res.x.numpy(), lsqr, rtol=0, atol=1e-8 * np.abs(lsqr).max())
    # the damped normal residual A^H r - damp^2 x vanishes
    s = G.T @ (b - G @ res.x) - damp**2 * res.x
    assert float(torch.linalg.vector_norm(s)) < 1e-10 * float(torch.linalg.vector_norm(G.T @ b))
    assert res.info["damp"] == damp


def test_cgls_damp_complex():
    G = randn(40, 15, dtype=torch.complex128, seed=27)
    b = randn(40, dtype=torch.complex128, seed=28)
    res = cgls(G, b, damp=0.8, rtol=1e-13)
    ref = tikhonov(G.numpy(), b.numpy(), 0.8)
    np.testing.assert_allclose(res.x.numpy(), ref, rtol=0, atol=1e-10 * np.abs(ref).max())


def test_cgls_wide_matrix_gives_the_minimum_norm_solution():
    m, n = 15, 40
    G = randn(m, n, seed=29)
    b = randn(3, m, seed=30)
    res = cgls(G, b, rtol=1e-13)
    assert res.converged.all()
    ref = b.numpy() @ np.linalg.pinv(G.numpy()).T
    np.testing.assert_allclose(res.x.numpy(), ref, rtol=0, atol=1e-10 * np.abs(ref).max())
    # consistent: the data are fitted exactly ...
    assert float(residual_norm(G, b, res.x).max()) < 1e-10 * float(torch.linalg.vector_norm(b, dim=-1).min())
    # ... and any other solution x + null-space component is longer
    null = torch.from_numpy(np.linalg.svd(G.numpy())[2][m:].T)  # (n, n - m) null-space basis
    other = res.x + randn(3, n - m, seed=31) @ null.T
    assert float(residual_norm(G, b, other).max()) < 1e-10 * 10
    assert bool((torch.linalg.vector_norm(other, dim=-1) > torch.linalg.vector_norm(res.x, dim=-1)).all())
    # the iterate stays in the row space of G: no null-space component
    assert float((res.x @ null).abs().max()) < 1e-10


def test_cgls_linear_operator_inputs():
    m, p, n = 45, 30, 12
    G1, G2 = randn(m, p, seed=32), randn(p, n, seed=33)
    b = randn(2, m, seed=34)
    ref = lstsq(G1 @ G2, b)
    tol = 1e-9 * np.abs(ref).max()
    # a wrapped matrix and a composition of two wrapped matrices (apply and adjoint both used)
    for A in (aslinearoperator(G1 @ G2), aslinearoperator(G1) @ aslinearoperator(G2)):
        res = cgls(A, b, rtol=1e-13)
        assert res.converged.all()
        np.testing.assert_allclose(res.x.numpy(), ref, rtol=0, atol=tol)
    # torch sparse CSR and COO matrices, directly and wrapped
    G = G1 @ G2
    G_sparse = G.clone()
    G_sparse[G_sparse.abs() < 1.0] = 0  # a genuinely sparse matrix
    ref_s = lstsq(G_sparse, b)
    for A in (G_sparse.to_sparse_csr(), G_sparse.to_sparse_coo(), aslinearoperator(G_sparse.to_sparse_csr())):
        res = cgls(A, b, rtol=1e-13)
        np.testing.assert_allclose(res.x.numpy(), ref_s, rtol=0, atol=1e-9 * np.abs(ref_s).max())
    # an operator with multi-dimensional in/out shapes: norms are over all trailing dims
    op = MatrixOperator(G, in_shape=(3, 4), out_shape=(5, 9))
    res = cgls(op, b.reshape(2, 5, 9), rtol=1e-13)
    assert res.x.shape == (2, 3, 4)
    np.testing.assert_allclose(res.x.reshape(2, n).numpy(), ref, rtol=0, atol=tol)
    torch.testing.assert_close(res.info["residual_norm"], residual_norm(G, b, res.x.reshape(2, n)), atol=1e-11, rtol=0)
    # a scipy operator (host code) is fine too
    res = cgls(aslinearoperator(spla.aslinearoperator(G.numpy())), b, rtol=1e-13)
    np.testing.assert_allclose(res.x.numpy(), ref, rtol=0, atol=tol)


def test_cgls_x0():
    m, n = 50, 20
    G, b = randn(m, n, seed=35), randn(m, seed=36)
    ref = lstsq(G, b)
    x0 = randn(n, seed=37)
    res = cgls(G, b, x0=x0, rtol=1e-13)
    np.testing.assert_allclose(res.x.numpy(), ref, rtol=0, atol=1e-10 * np.abs(ref).max())
    assert x0.equal(randn(n, seed=37))  # x0 is not modified in place
    # starting at the solution: no iterations needed
    sol = cgls(G, b, x0=torch.from_numpy(ref), rtol=1e-8)
    assert int(sol.iterations) == 0 and sol.converged.item()
    # a wide system from x0 converges to the solution closest to x0, not the minimum-norm one
    W, bw = randn(10, 30, seed=38), randn(10, seed=39)
    z0 = randn(30, seed=40)
    res = cgls(W, bw, x0=z0, rtol=1e-13)
    pinv = np.linalg.pinv(W.numpy())
    closest = z0.numpy() + pinv @ (bw.numpy() - W.numpy() @ z0.numpy())
    np.testing.assert_allclose(res.x.numpy(), closest, rtol=0, atol=1e-10 * np.abs(closest).max())


def test_cgls_maxiter_and_callback():
    G, b = randn(80, 40, seed=41), randn(2, 80, seed=42)
    calls = []
    res = cgls(G, b, rtol=1e-14, maxiter=5, callback=lambda x: calls.append(x.clone()))
    assert res.status.tolist() == [Status.MAX_ITERATIONS] * 2 and not res.converged.any()
    assert res.iterations.tolist() == [5, 5] and res.worst == Status.MAX_ITERATIONS
    assert res.info["reason"] == Status.MAX_ITERATIONS.message and res.info["maxiter"] == 5
    assert len(calls) == 5
    torch.testing.assert_close(calls[-1], res.x)
    # still an honest report: the residual is that of the returned x, and it went down
    torch.testing.assert_close(res.info["residual_norm"], residual_norm(G, b, res.x), atol=1e-12, rtol=0)
    assert bool((res.info["residual_norm"] < torch.linalg.vector_norm(b, dim=-1)).all())
    # one history entry per iteration (plus the start), per system
    assert bool(torch.isfinite(res.residuals).all()) and res.residuals.shape == (6, 2)
    # default maxiter is 2 n
    assert cgls(G, b, rtol=1e-3).info["maxiter"] == 80


def test_cgls_zero_rhs_and_bad_input():
    G = randn(20, 8, seed=43)
    res = cgls(G, torch.zeros(20, dtype=torch.float64))
    assert res.converged.item() and int(res.iterations) == 0 and float(res.x.abs().max()) == 0.0
    b = randn(20, seed=44)
    bad = b.clone()
    bad[3] = float("nan")
    with pytest.raises(ValueError, match="b contains NaN"):
        cgls(G, bad)
    with pytest.raises(ValueError, match="x0 contains NaN"):
        cgls(G, b, x0=torch.full((8,), float("nan"), dtype=torch.float64))
    with pytest.raises(ValueError, match="x0 has shape"):
        cgls(G, b, x0=torch.zeros(7, dtype=torch.float64))
    with pytest.raises(ValueError, match="b has shape"):
        cgls(G, torch.zeros(19, dtype=torch.float64))
    for damp in (-1.0, "1", None):
        with pytest.raises(ValueError, match="damp"):
            cgls(G, b, damp=damp)
    with pytest.raises(ValueError, match="rtol"):
        cgls(G, b, rtol=-1.0)
    with pytest.raises(ValueError, match="maxiter"):
        cgls(G, b, maxiter=0)
    with pytest.raises(ValueError, match="matrix"):
        cgls(torch.zeros(2, 3, 4), b)
    with pytest.raises(TypeError, match="LinearOperator"):
        cgls(lambda x: x, b)


# ------------------------------------------------------------------------------------------------
# the "cgls" solver on the solver interface
# ------------------------------------------------------------------------------------------------
def test_cgls_solver_on_an_inverse_problem_with_damp():
    G = randn(60, 25, seed=45)
    y = randn(60, seed=46)
    damp = 0.5
    sol = sciml.solve(sciml.InverseProblem(G, y), "cgls", damp=damp, rtol=1e-13)
    assert sol.converged and sol.info["solver"] == "cgls" and sol.info["options"]["damp"] == damp
    ref = tikhonov(G.numpy(), y.numpy(), damp)
    np.testing.assert_allclose(sol.x.numpy(), ref, rtol=0, atol=1e-10 * np.abs(ref).max())
    # the reported residual is the data misfit ||y - G x|| / ||y||
    misfit = float(torch.linalg.vector_norm(y - G @ sol.x) / torch.linalg.vector_norm(y))
    assert abs(sol.residual - misfit) < 1e-12
    # cg on the damped normal equations reaches the same point
    via_cg = sciml.solve(sciml.InverseProblem(G, y), "cg", damp=damp, rtol=1e-12)
    np.testing.assert_allclose(via_cg.x.numpy(), ref, rtol=0, atol=1e-9 * np.abs(ref).max())
    # undamped, with a batch of measurements
    Y = randn(3, 60, seed=47)
    sol = sciml.solve(sciml.InverseProblem(G, Y), "cgls", rtol=1e-13)
    np.testing.assert_allclose(sol.x.numpy(), lstsq(G, Y), rtol=0, atol=1e-10)
    assert sol.stats["iterations"].shape == (3,)


def test_cgls_solver_on_a_tall_linear_problem():
    G = randn(50, 20, seed=48)
    b = randn(50, seed=49)
    op = aslinearoperator(G)
    sol = sciml.solve(sciml.LinearProblem(op, b), "cgls", rtol=1e-13)
    assert sol.converged and sol.x.shape == (20,)
    np.testing.assert_allclose(sol.x.numpy(), lstsq(G, b), rtol=0, atol=1e-10)
    # x0 of the problem is used
    x0 = torch.from_numpy(lstsq(G, b))
    sol = sciml.solve(sciml.LinearProblem(op, b, x0=x0), "cgls", rtol=1e-8)
    assert sol.iterations == 0
    # maxiter through the interface
    sol = sciml.solve(sciml.LinearProblem(op, b), "cgls", rtol=1e-14, maxiter=3)
    assert sol.status == Status.MAX_ITERATIONS and sol.iterations == 3 and not sol.converged


def test_cgls_solver_rejects_a_preconditioner_and_pde_problems():
    G = randn(30, 10, seed=50)
    b = randn(30, seed=51)
    for M in ("jacobi", torch.eye(10, dtype=torch.float64)):
        with pytest.raises(SolverOptionError, match="cgls: takes no preconditioner"):
            sciml.solve(sciml.LinearProblem(G, b), "cgls", M=M)
    pde = sciml.PDEProblem(sciml.Grid((0,), (1,), (15,)), source=1.0)
    with pytest.raises(TypeError, match="'cgls' does not accept a PDEProblem"):
        sciml.solve(pde, "cgls")
    with pytest.raises(SolverOptionError, match="damp"):
        sciml.solve(sciml.LinearProblem(G, b), "cgls", damp=-0.1)
    # square problems the other Krylov solvers cannot take: they ask for cgls / normal()
    with pytest.raises(ValueError, match="least-squares"):
        sciml.solve(sciml.LinearProblem(G, b), "cg")


def test_cgls_complex_data_with_a_real_matrix_and_dtype_errors():
    """Complex data and a real matrix (dense or sparse) give the complex least-squares solution (real and
    imaginary parts decouple); data in another precision than the operator is a clear error."""
    g = gen(0)
    M = torch.randn(12, 6, dtype=torch.float64, generator=g)
    b = torch.randn(2, 12, dtype=torch.complex128, generator=g)
    ref = torch.linalg.lstsq(M.to(torch.complex128), b.T).solution.T
    for A in (M, M.to_sparse_csr(), aslinearoperator(M)):
        res = cgls(A, b, rtol=1e-12)
        assert bool(res.converged.all())
        torch.testing.assert_close(res.x, ref, rtol=0, atol=1e-10)
    with pytest.raises(ValueError, match="dtype mismatch: A has torch.float64, b has torch.float32"):
        cgls(M, b.real.float())
    with pytest.raises(ValueError, match="dtype mismatch"):
        cgls(M.to(torch.complex128), b.real)
