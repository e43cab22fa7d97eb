"""Numerical tests of the assembled stencil (`DiffusionOperator.to_scipy` / `diagonal`), the
preconditioners (jacobi, fft, pyamg), the "fft-poisson" direct solver and the registered Krylov
solvers on the solver interface, against dense torch matrices and scipy.sparse.linalg.spsolve."""
from __future__ import annotations

import dataclasses
import functools
import itertools
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch

import sciml
from sciml import Grid, LinearProblem, PDEProblem
from sciml.operators import (
    DiagonalOperator,
    DiffusionOperator,
    MatrixOperator,
    aslinearoperator,
    jacobi,
    laplacian,
    make_preconditioner,
    pyamg_preconditioner,
)
from sciml.operators.preconditioners import fft_preconditioner
from sciml.solvers import SolverOptionError, make_solver

pytestmark = [pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta state"),
              pytest.mark.filterwarnings("ignore:Sparse invariant checks")]
warnings.filterwarnings("ignore", message=".*Sparse invariant checks.*")

ROOT = Path(__file__).resolve().parents[1]
BCS = ("dirichlet", "neumann", "periodic")




def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def randn(*shape, seed: int = 0, dtype=torch.float64) -> torch.Tensor:
    return torch.randn(shape, dtype=dtype, generator=gen(seed))


def face_coefficients(shape: tuple[int, ...], bcs: tuple[str, ...], seed: int) -> list[torch.Tensor]:
    """Random positive face coefficients in [1, 2], equal on the first and last face of periodic axes."""
    faces = []
    for d in range(len(shape)):
        want = list(shape)
        want[d] += 1
        a = 1 + torch.rand(want, dtype=torch.float64, generator=gen(seed + d))
        if bcs[d] == "periodic":
            a.narrow(d, want[d] - 1, 1).copy_(a.narrow(d, 0, 1))
        faces.append(a)
    return faces


def spsolve(A, b: torch.Tensor) -> np.ndarray:
    """Direct solve of each system in b (*batch, *grid) with the assembled matrix A (N, N)."""
    A = sp.csc_matrix(A)
    N = A.shape[0]
    B = b.numpy().reshape(-1, N)
    X = np.stack([spla.spsolve(A.astype(B.dtype) if np.iscomplexobj(B) else A, row) for row in B])
    return X.reshape(b.shape)


def rel(x: torch.Tensor, ref) -> float:
    ref = torch.as_tensor(ref)
    return float(torch.linalg.vector_norm(x - ref) / torch.linalg.vector_norm(ref))


# ------------------------------------------------------------------------------------------------
# DiffusionOperator.to_scipy / diagonal
# ------------------------------------------------------------------------------------------------
SHAPES = {1: (7,), 2: (5, 4), 3: (4, 3, 5)}
SPACINGS = {1: 0.3, 2: (0.5, 0.25), 3: (0.5, 0.4, 0.3)}
BC_CASES = [(nd, bcs) for nd in (1, 2, 3) for bcs in itertools.product(BCS, repeat=nd)]


@pytest.mark.parametrize("nd,bcs", BC_CASES, ids=lambda v: "-".join(v) if isinstance(v, tuple) else f"{v}d")
def test_to_scipy_and_diagonal_match_to_dense(nd, bcs):
    shape, h = SHAPES[nd], SPACINGS[nd]
    a_var = face_coefficients(shape, bcs, seed=nd)
    c_field = 0.5 + torch.rand(shape, dtype=torch.float64, generator=gen(99))
    for a, c in itertools.product((None, a_var), (None, 2.5, -1.0, c_field)):
        A = DiffusionOperator(shape, h, bcs, a=a, c=c, dtype=torch.float64)
        dense = A.to_dense()
        S = A.to_scipy()
        assert isinstance(S, sp.csr_array) and S.shape == (A.in_size, A.in_size)
        np.testing.assert_allclose(S.toarray(), dense.numpy(), rtol=0, atol=1e-12 * float(dense.abs().max()))
        diag = A.diagonal()
        assert diag.shape == shape and diag.dtype == torch.float64
        torch.testing.assert_close(diag.reshape(-1), dense.diagonal(), rtol=1e-14, atol=0)
        # the assembled matrix is symmetric (real coefficients) and its products agree with apply()
        assert abs(S - S.T).max() < 1e-12 * float(dense.abs().max())
        u = randn(2, *shape, seed=3)
        np.testing.assert_allclose((S @ u.reshape(2, -1).numpy().T).T, A.apply(u).reshape(2, -1).numpy(),
                                   rtol=0, atol=1e-11 * float(dense.abs().max()))
        # the stencil couples each unknown with at most 2 neighbours per axis
        assert S.nnz <= A.in_size * (1 + 2 * nd)


def test_to_scipy_row_sums_and_known_entries():
    # -u'' with unit spacing: Dirichlet [2 -1; -1 2 -1; ...], Neumann has 1 on the corners, periodic wraps
    for bc, first_row in (("dirichlet", [2, -1, 0, 0, 0]), ("neumann", [1, -1, 0, 0, 0]),
                          ("periodic", [2, -1, 0, 0, -1])):
        S = laplacian((5,), 1.0, bc, dtype=torch.float64).to_scipy().toarray()
        np.testing.assert_array_equal(S[0], first_row)
        np.testing.assert_array_equal(S[2], [0, -1, 2, -1, 0])
        if bc != "dirichlet":  # constants in the kernel
            np.testing.assert_allclose(S.sum(axis=1), 0, atol=1e-15)
    # 2-D mixed: kron structure with per-axis spacings
    A = laplacian((4, 3), (0.5, 0.25), ("dirichlet", "periodic"), dtype=torch.float64)
    T0 = laplacian((4,), 0.5, "dirichlet", dtype=torch.float64).to_scipy()
    T1 = laplacian((3,), 0.25, "periodic", dtype=torch.float64).to_scipy()
    ref = sp.kron(T0, sp.eye(3)) + sp.kron(sp.eye(4), T1)
    np.testing.assert_allclose(A.to_scipy().toarray(), ref.toarray(), rtol=0, atol=1e-12)


def test_to_scipy_complex_reaction_and_short_axes():
    A = DiffusionOperator((4, 3), 0.5, ("neumann", "periodic"), c=2.0 - 1.5j, dtype=torch.complex128)
    dense = A.to_dense()
    np.testing.assert_allclose(A.to_scipy().toarray(), dense.numpy(), rtol=0, atol=1e-12)
    torch.testing.assert_close(A.diagonal().reshape(-1), dense.diagonal())
    # periodic axes of length 2 (both neighbours are the same unknown) and 1 (its own neighbour:
    # no coupling at all), and a Neumann axis of length 1
    for shape, bcs in (((2, 3), ("periodic", "dirichlet")), ((1, 3), ("periodic", "dirichlet")),
                       ((1, 4), ("neumann", "periodic")), ((3, 1), ("dirichlet", "periodic"))):
        for a in (None, face_coefficients(shape, bcs, seed=7)):
            A = DiffusionOperator(shape, (0.5, 0.3), bcs, a=a, c=0.25, dtype=torch.float64)
            dense = A.to_dense()
            np.testing.assert_allclose(A.to_scipy().toarray(), dense.numpy(), rtol=0, atol=1e-12)
            torch.testing.assert_close(A.diagonal().reshape(-1), dense.diagonal(), rtol=1e-14, atol=1e-13)


def test_periodic_face_coefficients_must_match():
    a = face_coefficients((5, 4), ("periodic", "dirichlet"), seed=1)
    DiffusionOperator((5, 4), 0.2, ("periodic", "dirichlet"), a=a)  # fine
    a[0][0, 1] += 0.1
    with pytest.raises(ValueError, match="periodic axis"):
        DiffusionOperator((5, 4), 0.2, ("periodic", "dirichlet"), a=a)
    # the same coefficients are fine when that axis is not periodic
    DiffusionOperator((5, 4), 0.2, ("neumann", "dirichlet"), a=a)


# ------------------------------------------------------------------------------------------------
# jacobi
# ------------------------------------------------------------------------------------------------
def test_jacobi_of_matrix_operators_dense_and_sparse():
    S = sp.random(40, 40, density=0.1, random_state=0, format="csr")
    S = S + S.T + sp.diags(np.linspace(1.0, 5.0, 40))
    S.sum_duplicates()
    ref = 1 / S.diagonal()
    dense = torch.from_numpy(S.toarray())
    for A in (aslinearoperator(dense), aslinearoperator(S), aslinearoperator(dense.to_sparse_coo()),
              aslinearoperator(dense.to_sparse_csr()), MatrixOperator(dense, in_shape=(5, 8))):
        P = jacobi(A)
        assert isinstance(P, DiagonalOperator) and P.is_positive_definite and P.is_self_adjoint
        np.testing.assert_allclose(P.d.reshape(-1).numpy(), ref, rtol=1e-15)
        x = randn(3, *A.in_shape, seed=4)
        np.testing.assert_allclose(P.apply(x).reshape(3, -1).numpy(), x.reshape(3, -1).numpy() * ref, rtol=1e-14)
    # a COO matrix with duplicate (uncoalesced) diagonal entries: they add up
    idx = torch.tensor([[0, 0, 1, 2, 2], [0, 0, 1, 2, 1]])
    coo = torch.sparse_coo_tensor(idx, torch.tensor([1.0, 2.0, 4.0, 5.0, 7.0], dtype=torch.float64), (3, 3))
    np.testing.assert_allclose(jacobi(aslinearoperator(coo)).d.numpy(), [1 / 3, 1 / 4, 1 / 5])
    # a complex diagonal
    Z = torch.diag(torch.tensor([1 + 1j, 2.0, -1j], dtype=torch.complex128))
    np.testing.assert_allclose(jacobi(aslinearoperator(Z)).d.numpy(), 1 / np.array([1 + 1j, 2.0, -1j]))
    assert not jacobi(aslinearoperator(Z)).is_self_adjoint


def test_jacobi_of_a_diffusion_operator():
    shape, bcs = (6, 5), ("dirichlet", "neumann")
    a = face_coefficients(shape, bcs, seed=2)
    c = torch.rand(shape, dtype=torch.float64, generator=gen(3))
    A = DiffusionOperator(shape, (0.2, 0.25), bcs, a=a, c=c, dtype=torch.float64)
    P = jacobi(A)
    torch.testing.assert_close(P.d, 1 / A.to_dense().diagonal().reshape(shape), rtol=1e-14, atol=0)
    assert make_preconditioner("jacobi", A).d.equal(P.d)


def test_jacobi_errors():
    with pytest.raises(ValueError, match="zeros on its diagonal"):
        jacobi(aslinearoperator(torch.tensor([[0.0, 1.0], [1.0, 2.0]])))
    with pytest.raises(ValueError, match="zeros on its diagonal"):  # a sparse matrix storing no (0, 0) entry
        jacobi(aslinearoperator(sp.csr_matrix(np.array([[0.0, 1.0], [1.0, 2.0]]))))
    # -u'' + c u with c = -2/h^2 cancels the diagonal exactly
    with pytest.raises(ValueError, match="zeros on its diagonal"):
        jacobi(DiffusionOperator((5,), 0.5, "dirichlet", c=-8.0))
    with pytest.raises(TypeError, match="no known diagonal"):
        jacobi(aslinearoperator(lambda x: 2 * x, in_shape=(4,)))
    with pytest.raises(TypeError, match="no known diagonal"):
        jacobi(laplacian((4,)) + laplacian((4,)))
    with pytest.raises(ValueError, match="square"):
        jacobi(aslinearoperator(torch.ones(3, 4)))


# ------------------------------------------------------------------------------------------------
# preconditioned CG on a variable-coefficient problem
# ------------------------------------------------------------------------------------------------
VARIABLE = dict(source="1 + x*y", a="1 + 0.5*sin(2*pi*x)*sin(2*pi*y)", c="x*y")


@functools.lru_cache(maxsize=None)
def variable_problem(n: int = 63) -> PDEProblem:
    return PDEProblem(Grid((0, 0), (1, 1), (n, n)), **VARIABLE)


@functools.lru_cache(maxsize=None)
def variable_reference(n: int = 63) -> np.ndarray:
    d = variable_problem(n).discretize()
    return spsolve(d.operator.to_scipy(), d.rhs)


@functools.lru_cache(maxsize=None)
def preconditioned(M):
    return sciml.solve(variable_problem(), "cg", M=M, rtol=1e-10)


@pytest.mark.parametrize("M", [None, "jacobi", "fft", "pyamg"])
def test_preconditioned_cg_reaches_the_direct_solution(M):
    sol = preconditioned(M)
    assert sol.converged and sol.info["options"]["M"] == M
    ref = variable_reference()
    assert rel(sol.x, ref) < 1e-8
    assert rel(sol.x, preconditioned(None).x) < 1e-8
    assert sol.residual < 1e-9


def test_preconditioners_cut_the_iteration_count():
    its = {M: preconditioned(M).iterations for M in (None, "jacobi", "fft", "pyamg")}
    assert its[None] > 100, its                      # the problem is not trivially easy
    assert its["jacobi"] <= its[None], its
    assert 5 * its["fft"] <= its[None], its
    assert 5 * its["pyamg"] <= its[None], its
    # the fft preconditioner is spectrally equivalent: the count does not grow with the grid
    coarse = sciml.solve(variable_problem(31), "cg", M="fft", rtol=1e-10).iterations
    assert its["fft"] <= coarse + 3, (coarse, its["fft"])


def test_pcg_defaults_to_jacobi():
    sol = sciml.solve(variable_problem(), "pcg", rtol=1e-10)
    assert sol.info["options"]["M"] == "jacobi"
    assert sol.iterations == preconditioned("jacobi").iterations
    assert rel(sol.x, variable_reference()) < 1e-8
    # an explicit operator works as well: the same Jacobi built by hand
    A = variable_problem().discretize().operator
    by_hand = sciml.solve(variable_problem(), "pcg", M=DiagonalOperator(1 / A.diagonal()), rtol=1e-10)
    assert by_hand.iterations == sol.iterations
    torch.testing.assert_close(by_hand.x, sol.x, rtol=0, atol=1e-12)
    # and "pcg" with another named preconditioner
    assert sciml.solve(variable_problem(), "pcg", M="fft", rtol=1e-10).iterations == preconditioned("fft").iterations


@pytest.mark.parametrize("bcs,c", [(("dirichlet", "dirichlet"), None), (("dirichlet", "periodic"), 4.0),
                                   (("neumann", "periodic"), 2.0), (("periodic", "periodic"), 7.5)])
def test_fft_preconditioner_is_the_exact_inverse_for_constant_coefficients(bcs, c):
    # a = 3 everywhere (given as face tensors) and constant c: the mean-coefficient inverse is exact
    shape, h = (10, 12), (0.1, 0.2)
    a = [torch.full((11, 12), 3.0, dtype=torch.float64), torch.full((10, 13), 3.0, dtype=torch.float64)]
    c_field = None if c is None else torch.full(shape, c, dtype=torch.float64)
    A = DiffusionOperator(shape, h, bcs, a=a, c=c_field, dtype=torch.float64)
    M = make_preconditioner("fft", A)
    assert M.is_self_adjoint and M.is_positive_definite
    x = randn(2, *shape, seed=12)
    torch.testing.assert_close(M.apply(A.apply(x)), x, rtol=0, atol=1e-11 * float(x.abs().max()))
    np.testing.assert_allclose(M.apply(x).numpy(), spsolve(A.to_scipy(), x), rtol=0, atol=1e-12 * float(M.apply(x).abs().max()))
    # all-Neumann without reaction (singular): exact on the zero-mean subspace up to the tiny shift
    A0 = DiffusionOperator(shape, h, "neumann", a=a, dtype=torch.float64)
    x0 = x - x.mean(dim=(-2, -1), keepdim=True)
    y = make_preconditioner("fft", A0).apply(A0.apply(x0))
    torch.testing.assert_close(y - y.mean(dim=(-2, -1), keepdim=True), x0, rtol=0, atol=1e-6 * float(x0.abs().max()))


@pytest.mark.parametrize("M", ["jacobi", "fft", "pyamg"])
def test_named_preconditioners_keep_a_float32_system_in_float32(M):
    # the PDE operator has no dtype of its own (diagonal() is float64, pyamg runs in float64 on the
    # host): the preconditioner must neither promote nor reject float32 vectors
    p32 = dataclasses.replace(variable_problem(31), dtype=torch.float32)
    sol = sciml.solve(p32, "cg", M=M, rtol=1e-5)
    assert sol.converged and sol.x.dtype == torch.float32
    assert rel(sol.x.double(), variable_reference(31)) < 1e-4
    A = p32.discretize().operator
    P = make_preconditioner(M, A)
    x = randn(2, 31, 31, seed=13).float()
    assert P.apply(x).dtype == torch.float32
    if M == "jacobi":  # and the float32 result is the float64 one, rounded
        torch.testing.assert_close(P.apply(x), (P.apply(x.double())).float())
        assert P.adjoint(x).dtype == torch.float32


def test_fft_preconditioner_on_neumann_periodic_and_helmholtz():
    # mixed non-Dirichlet boundaries with a positive reaction term, and an indefinite Helmholtz
    # problem under MINRES (the fft preconditioner stays positive definite)
    grid = Grid((0, 0), (1, 1), (24, 24), ("neumann", "periodic"))
    p = PDEProblem(grid, source="cos(pi*x) + sin(2*pi*y)", a="1 + 0.5*x", c=2.0)
    d = p.discretize()
    ref = spsolve(d.operator.to_scipy(), d.rhs)
    plain = sciml.solve(p, "cg", rtol=1e-10)
    pre = sciml.solve(p, "cg", M="fft", rtol=1e-10)
    assert rel(pre.x, ref) < 1e-8 and rel(plain.x, ref) < 1e-8
    assert 3 * pre.iterations <= plain.iterations
    M = fft_preconditioner(d.operator)
    assert M.is_positive_definite

    helm = PDEProblem(Grid((0, 0), (1, 1), (31, 31)), source="x*(1-y)", a="1 + 0.3*x*y", c=-30.0)
    d = helm.discretize()
    ref = spsolve(d.operator.to_scipy(), d.rhs)
    sol = sciml.solve(helm, "minres", M="fft", rtol=1e-11)
    assert sol.converged and rel(sol.x, ref) < 1e-8
    assert sol.iterations < sciml.solve(helm, "minres", rtol=1e-11).iterations


def test_preconditioner_errors():
    with pytest.raises(SolverOptionError, match="unknown preconditioner"):
        make_solver("cg", M="ilu")
    with pytest.raises(SolverOptionError, match="jacobi, fft, pyamg"):
        sciml.solve(variable_problem(15), "pcg", M="multigrid")
    with pytest.raises(ValueError, match="unknown preconditioner"):
        make_preconditioner("ilu", laplacian((4,)))
    # "fft" needs a grid operator
    S = torch.from_numpy(laplacian((6,), dtype=torch.float64).to_scipy().toarray())
    b = torch.ones(6, dtype=torch.float64)
    with pytest.raises(TypeError, match="DiffusionOperator"):
        sciml.solve(LinearProblem(S, b), "cg", M="fft")
    with pytest.raises(TypeError, match="DiffusionOperator"):
        fft_preconditioner(aslinearoperator(S))
    with pytest.raises(TypeError, match="assembled operator"):
        pyamg_preconditioner(aslinearoperator(lambda x: x, in_shape=(6,)))
    # anything that is not a name passes through make_preconditioner unchanged
    op = DiagonalOperator(torch.ones(6, dtype=torch.float64))
    assert make_preconditioner(op, laplacian((6,))) is op and make_preconditioner(None, laplacian((6,))) is None


def test_pyamg_preconditioner_approximates_the_inverse():
    p = variable_problem(31)
    A = p.discretize().operator
    S = A.to_scipy()
    b = randn(2, 31, 31, seed=5)
    exact = spsolve(S, b)
    for op in (A, aslinearoperator(S), aslinearoperator(torch.from_numpy(S.toarray()))):
        P = pyamg_preconditioner(op)
        assert P.is_positive_definite and P.in_shape == op.in_shape
        x1 = P.apply(b.reshape(2, *op.in_shape)).reshape(2, 31, 31)
        assert x1.dtype == torch.float64 and x1.shape == (2, 31, 31)
        # one V-cycle from zero reduces the error (from ||x||, that of x = 0) by far more than 3x
        err = torch.linalg.vector_norm(x1 - torch.from_numpy(exact), dim=(-2, -1))
        assert bool((err < torch.linalg.vector_norm(torch.from_numpy(exact), dim=(-2, -1)) / 3).all()), err
        # the V-cycle is symmetric: <P u, v> = <u, P v>
        u, v = randn(31 * 31, seed=6).reshape(op.in_shape), randn(31 * 31, seed=7).reshape(op.in_shape)
        lhs, rhs_ = float((P.apply(u) * v).sum()), float((u * P.apply(v)).sum())
        assert abs(lhs - rhs_) < 1e-8 * abs(lhs)
    # options reach pyamg
    P = pyamg_preconditioner(A, max_levels=2)
    assert bool(torch.isfinite(P.apply(b)).all())


# ------------------------------------------------------------------------------------------------
# fft-poisson
# ------------------------------------------------------------------------------------------------
FFT_CASES = [
    ((33,), ("dirichlet",)), ((32,), ("neumann",)), ((32,), ("periodic",)),
    ((15, 12), ("dirichlet", "dirichlet")), ((12, 15), ("neumann", "neumann")),
    ((12, 10), ("periodic", "periodic")), ((15, 12), ("dirichlet", "periodic")),
    ((12, 13), ("neumann", "dirichlet")),
    ((7, 6, 5), ("dirichlet",) * 3), ((6, 5, 4), ("neumann",) * 3), ((6, 4, 5), ("periodic",) * 3),
    ((7, 6, 8), ("dirichlet", "neumann", "periodic")), ((6, 8, 7), ("periodic", "neumann", "neumann")),
]


def _source(nd: int) -> str:
    return " + ".join(["1 + sin(3*x) + x*x", "cos(2*y) + x*y", "z*(1 - z) + exp(-z)"][:nd])


@pytest.mark.parametrize("shape,bcs", FFT_CASES, ids=lambda v: "-".join(map(str, v)))
@pytest.mark.parametrize("c", [0.0, 3.0, -5.0], ids=["poisson", "c>0", "c<0"])
def test_fft_poisson_matches_a_direct_solve(shape, bcs, c):
    nd = len(shape)
    p = PDEProblem(Grid((0,) * nd, (1,) * nd, shape, bcs), source=_source(nd), c=c)
    sol = sciml.solve(p, "fft-poisson")
    assert sol.converged and sol.iterations == 1 and sol.info["solver"] == "fft-poisson"
    assert sol.stats["iterations"].dtype == torch.int64 and sol.x.shape == shape
    d = p.discretize()
    A = d.operator.to_scipy()
    if d.nullspace:  # all Neumann/periodic Poisson: the zero-mean solution of the projected system
        ref = np.linalg.lstsq(A.toarray(), d.rhs.numpy().ravel(), rcond=None)[0]
        ref = (ref - ref.mean()).reshape(shape)
        assert abs(float(sol.x.mean())) < 1e-12 * float(sol.x.abs().max())
    else:
        ref = spsolve(A, d.rhs)
    assert rel(sol.x, ref) < 1e-10
    assert sol.residual < 1e-12


@pytest.mark.parametrize("bcs", [("dirichlet", "dirichlet"), ("neumann", "periodic"), ("dirichlet", "neumann")])
def test_fft_poisson_matches_cg_and_minres(bcs):
    grid = Grid((0, 0), (1, 1), (20, 18), bcs)
    poisson = PDEProblem(grid, source="1 + sin(pi*x)*y", c=1.0, boundary="x - y" if "dirichlet" in bcs else 0.0)
    fast = sciml.solve(poisson, "fft-poisson")
    assert rel(fast.x, sciml.solve(poisson, "cg", rtol=1e-12).x) < 1e-10
    helmholtz = dataclasses.replace(poisson, c=-12.0)  # indefinite unless both axes are Dirichlet: minres
    fast = sciml.solve(helmholtz, "fft-poisson")
    slow = sciml.solve(helmholtz, "minres", rtol=1e-12, maxiter=5000)
    assert slow.converged and fast.iterations == 1
    assert rel(fast.x, slow.x) < 1e-10


def test_fft_poisson_exact_solution_and_linear_problems():
    # -Δu = 2π² u on the unit square: second order, and iterations == 1 for a batch
    errs = []
    for n in (15, 31, 63):
        p = PDEProblem(Grid((0, 0), (1, 1), (n, n)), source="2*pi**2*sin(pi*x)*sin(pi*y)", exact="sin(pi*x)*sin(pi*y)")
        errs.append(sciml.solve(p, "fft-poisson").info["rel_l2_error"])
    assert all(1.9 < math.log2(a / b) < 2.1 for a, b in zip(errs, errs[1:])), errs
    # a LinearProblem with a (constant-coefficient) DiffusionOperator and a batch of right-hand sides
    A = DiffusionOperator((12, 10), (0.1, 0.2), ("dirichlet", "periodic"), c=0.5)
    b = randn(3, 12, 10, seed=8)
    sol = sciml.solve(LinearProblem(A, b), "fft-poisson")
    assert sol.stats["iterations"].tolist() == [1, 1, 1] and sol.stats["status"].tolist() == [0, 0, 0]
    np.testing.assert_allclose(sol.x.numpy(), spsolve(A.to_scipy(), b), rtol=0, atol=1e-12 * float(sol.x.abs().max()))
    # a complex constant c (absorbing Helmholtz)
    A = DiffusionOperator((12, 10), (0.1, 0.2), ("neumann", "dirichlet"), c=-20.0 + 5.0j)
    bz = torch.complex(b, randn(3, 12, 10, seed=9))
    sol = sciml.solve(LinearProblem(A, bz), "fft-poisson")
    assert sol.x.dtype == torch.complex128
    np.testing.assert_allclose(sol.x.numpy(), spsolve(A.to_scipy(), bz), rtol=0, atol=1e-12 * float(sol.x.abs().max()))
    # ... and on a PDEProblem, where the discretised c is a constant complex tensor
    p = PDEProblem(Grid((0, 0), (1, 1), (11, 9), ("dirichlet", "periodic")), source="x + y", c=-15.0 + 3.0j)
    sol = sciml.solve(p, "fft-poisson")
    d = p.discretize()
    assert sol.converged and sol.x.dtype == torch.complex128
    assert rel(sol.x, spsolve(d.operator.to_scipy(), d.rhs.to(torch.complex128))) < 1e-12


def test_fft_poisson_rejects_variable_coefficients():
    grid = Grid((0, 0), (1, 1), (15, 15))
    for kwargs in (dict(a="1 + x"), dict(c="x*y"), dict(a="1 + 0.5*sin(2*pi*x)*sin(2*pi*y)", c=1.0)):
        with pytest.raises(TypeError, match='pcg with M="fft"'):
            sciml.solve(PDEProblem(grid, source=1.0, **kwargs), "fft-poisson")
    with pytest.raises(TypeError, match="constant-coefficient"):
        sciml.solve(LinearProblem(torch.eye(4, dtype=torch.float64), torch.ones(4, dtype=torch.float64)), "fft-poisson")
    with pytest.raises(TypeError, match="does not accept"):
        sciml.solve(sciml.InverseProblem(torch.eye(4), torch.ones(4)), "fft-poisson")
    with pytest.raises(SolverOptionError, match="unknown option"):
        sciml.solve(PDEProblem(grid, source=1.0), "fft-poisson", rtol=1e-8)


def test_fft_poisson_config_converges_at_second_order():
    cfg = sciml.config.load(ROOT / "solvers" / "poisson3d.toml")
    assert cfg.solver_name == "fft-poisson"
    grid0 = cfg.problem_config.grid
    assert grid0.bc == ("dirichlet", "neumann", "periodic")
    errs = []
    for n in (8, 16, 32):
        grid = dataclasses.replace(grid0, points=(n - 1, n, n))  # Dirichlet: h = 1/(n+1 - 1) = 1/n too
        assert grid.spacing == (1 / n,) * 3
        sol = sciml.solve(dataclasses.replace(cfg.problem(), grid=grid), cfg.solver())
        assert sol.converged and sol.iterations == 1 and sol.residual < 1e-12
        errs.append(sol.info["rel_l2_error"])
    orders = [math.log2(a / b) for a, b in zip(errs, errs[1:])]
    assert all(1.9 <= p <= 2.1 for p in orders), (orders, errs)
    assert errs[-1] < 5e-3


# ------------------------------------------------------------------------------------------------
# the other registered Krylov solvers on the solver interface
# ------------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def convection_diffusion(N: int = 12, c: float = 20.0) -> sp.csr_array:
    """-Δu + c (u_x + u_y), Dirichlet, upwinded: nonsymmetric, positive real part."""
    h = 1.0 / (N + 1)
    ones = np.ones(N)
    T = sp.diags_array([-ones[1:], 2 * ones, -ones[1:]], offsets=[-1, 0, 1]) / h**2
    T = T + sp.diags_array([-ones[1:], ones], offsets=[-1, 0]) * (c / h)
    return sp.csr_array(sp.kron(T, sp.eye_array(N)) + sp.kron(sp.eye_array(N), T))


@pytest.mark.parametrize("name", ["gmres", "bicgstab"])
@pytest.mark.parametrize("kind", ["sparse", "dense", "grid"])
def test_nonsymmetric_solvers_match_spsolve(name, kind):
    S = convection_diffusion()
    b = randn(2, S.shape[0], seed=10)
    ref = spsolve(S, b)
    if kind == "sparse":
        problem = LinearProblem(S, b)
    elif kind == "dense":
        problem = LinearProblem(torch.from_numpy(S.toarray()), b)
    else:  # the same matrix acting on (12, 12) grids
        problem = LinearProblem(MatrixOperator(torch.from_numpy(S.toarray()), in_shape=(12, 12)), b.reshape(2, 12, 12))
    sol = sciml.solve(problem, name, rtol=1e-11, maxiter=2000)
    assert sol.converged and sol.info["solver"] == name and sol.stats["status"].shape == (2,)
    assert rel(sol.x.reshape(2, -1), ref) < 1e-8
    assert sol.residual < 1e-10


def test_nonsymmetric_solvers_with_preconditioners_and_restart():
    S = convection_diffusion()
    b = randn(S.shape[0], seed=11)
    ref = spsolve(S, b)
    for name in ("gmres", "bicgstab"):
        plain = sciml.solve(LinearProblem(S, b), name, rtol=1e-10, maxiter=2000)
        for M in ("jacobi", "pyamg"):
            sol = sciml.solve(LinearProblem(S, b), name, M=M, rtol=1e-10, maxiter=2000)
            assert sol.converged and rel(sol.x, ref) < 1e-7, (name, M)
        assert sciml.solve(LinearProblem(S, b), name, M="pyamg", rtol=1e-10).iterations < plain.iterations
    for restart in (5, 50):
        sol = sciml.solve(LinearProblem(S, b), "gmres", restart=restart, rtol=1e-10, maxiter=5000)
        assert sol.converged and rel(sol.x, ref) < 1e-7 and sol.info["options"]["restart"] == restart


@pytest.mark.parametrize("restart", [0, -3, 2.5, True, "20"])
def test_gmres_restart_is_validated(restart):
    with pytest.raises(SolverOptionError, match="restart must be a positive integer"):
        sciml.solve(LinearProblem(convection_diffusion(), torch.ones(144, dtype=torch.float64)), "gmres", restart=restart)
    with pytest.raises(SolverOptionError):
        make_solver("gmres", restart=restart)


@pytest.mark.parametrize("name", ["cg", "pcg", "minres", "gmres", "bicgstab"])
def test_symmetric_system_through_every_solver(name):
    # SPD: every Krylov solver applies, on a PDEProblem (variable a) and matches spsolve
    p = variable_problem(20)
    ref = variable_reference(20)
    sol = sciml.solve(p, name, rtol=1e-11, maxiter=3000)
    assert sol.converged and rel(sol.x, ref) < 1e-8
    assert sol.x.shape == (20, 20) and set(sol.coords) == {"x", "y"}


@pytest.mark.parametrize("name", ["minres", "gmres", "bicgstab"])
def test_indefinite_symmetric_system(name):
    # Helmholtz with c = -k^2 between eigenvalues: symmetric indefinite; cg is not for this, minres is
    p = PDEProblem(Grid((0, 0), (1, 1), (15, 15)), source="1 + x", c=-60.0)
    d = p.discretize()
    ref = spsolve(d.operator.to_scipy(), d.rhs)
    sol = sciml.solve(p, name, rtol=1e-11, maxiter=5000)
    assert sol.converged and rel(sol.x, ref) < 1e-8
    assert rel(sciml.solve(p, "fft-poisson").x, ref) < 1e-12


def test_fft_poisson_reports_incompatible_singular_rhs():
    # all-Neumann Laplacian: b = 1 has a non-zero mean, so it is not in the range; a direct solve
    # must not claim success.
    L = sciml.operators.laplacian((8,), bc="neumann")
    sol = sciml.solve(sciml.LinearProblem(L, torch.ones(8, dtype=torch.float64)), "fft-poisson")
    assert not sol.converged and sol.status == sciml.Status.BREAKDOWN
    assert "range" in sol.info["reason"]
    # a zero-mean right-hand side is compatible: solved to round-off
    b = torch.cos(torch.pi * (torch.arange(8, dtype=torch.float64) + 0.5) / 8)
    ok = sciml.solve(sciml.LinearProblem(L, b), "fft-poisson")
    assert ok.converged and ok.residual < 1e-13
