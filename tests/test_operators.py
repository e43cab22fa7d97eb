"""Numerical tests of `sciml.operators`: operator algebra, wrappers, the adjoint test, stencils, errors.

Every check compares against an independently built dense or scipy.sparse matrix.
"""
from __future__ import annotations

import functools
import itertools
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch

from helpers import gen as _gen, randn as rand
from sciml.operators import (
    AdjointOperator,
    ComposedOperator,
    DiffusionOperator,
    FunctionOperator,
    IdentityOperator,
    LinearOperator,
    MatrixOperator,
    ScaledOperator,
    ScipyOperator,
    SumOperator,
    aslinearoperator,
    check_adjoint,
    laplacian,
)

pytestmark = pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta state")
warnings.filterwarnings("ignore", message=".*Sparse invariant checks.*")

DTYPES = [torch.float64, torch.complex128]
ADJ_TOL = 1e-12






def spd(n: int, dtype=torch.float64, seed=0) -> torch.Tensor:
    B = rand(n, n, dtype=dtype, seed=seed)
    return B @ B.mH + n * torch.eye(n, dtype=dtype)


def close(a: torch.Tensor, b: torch.Tensor, tol: float = 1e-12) -> None:
    """Relative agreement in the max norm, with a readable failure message."""
    assert a.shape == b.shape, (a.shape, b.shape)
    scale = max(float(b.abs().max()), 1.0)
    err = float((a - b).abs().max()) / scale
    assert err < tol, f"relative error {err:.3e} >= {tol:.1e}"


def dense_apply(M: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Reference product over the last dim: (..., n) -> (..., m)."""
    return torch.einsum("mn,...n->...m", M, x.to(torch.promote_types(M.dtype, x.dtype)))


# ------------------------------------------------------------------------------------------------
# Operator algebra against dense matrices
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
class TestAlgebra:
    n = 6

    def mats(self, dtype):
        A = rand(self.n, self.n, dtype=dtype, seed=1)
        B = rand(self.n, self.n, dtype=dtype, seed=2)
        return A, B, aslinearoperator(A), aslinearoperator(B)

    def test_apply_with_batch_dims(self, dtype):
        A, _, opA, _ = self.mats(dtype)
        for shape in [(self.n,), (3, self.n), (2, 3, self.n)]:
            x = rand(*shape, dtype=dtype, seed=3)
            y = opA @ x
            assert y.shape == shape and y.dtype == dtype
            close(y, dense_apply(A, x))
            close(opA(x), dense_apply(A, x))
        assert opA.shape == ((self.n,), (self.n,))

    def test_composition(self, dtype):
        A, B, opA, opB = self.mats(dtype)
        C = opA @ opB
        assert isinstance(C, ComposedOperator) and C.shape == ((self.n,), (self.n,))
        x = rand(2, 3, self.n, dtype=dtype, seed=4)
        close(C @ x, dense_apply(A @ B, x))
        close(C.to_dense(), A @ B)
        close(C.H.to_dense(), (A @ B).mH)
        # three-fold composition is associative
        close(((opA @ opB) @ opA).to_dense(), (opA @ (opB @ opA)).to_dense())
        close((opA @ opB @ opA).to_dense(), A @ B @ A)

    def test_sum_difference_negation(self, dtype):
        A, B, opA, opB = self.mats(dtype)
        x = rand(2, 3, self.n, dtype=dtype, seed=5)
        S, D, N = opA + opB, opA - opB, -opA
        assert isinstance(S, SumOperator)
        close(S @ x, dense_apply(A + B, x))
        close(D @ x, dense_apply(A - B, x))
        close(N @ x, dense_apply(-A, x))
        close(S.to_dense(), A + B)
        close(D.to_dense(), A - B)
        close(N.to_dense(), -A)
        close(D.H.to_dense(), (A - B).mH)
        close((opA - opA).to_dense(), torch.zeros_like(A), tol=1e-15)

    @pytest.mark.parametrize("c", [2.5, -0.75, 1.5 - 2j, torch.tensor(-3.0, dtype=torch.float64)])
    def test_scaling(self, dtype, c):
        A, _, opA, _ = self.mats(dtype)
        x = rand(2, 3, self.n, dtype=dtype, seed=6)
        cm = complex(c)
        ref = cm * A.to(torch.complex128) if cm.imag else float(cm.real) * A
        for op in (c * opA, opA * c):
            assert isinstance(op, ScaledOperator)
            close(op @ x, dense_apply(ref, x))
            close(op.to_dense(), ref)
            close(op.H.to_dense(), ref.mH)
            assert check_adjoint(op, generator=_gen(7)) < ADJ_TOL

    def test_adjoint(self, dtype):
        A, _, opA, _ = self.mats(dtype)
        y = rand(2, 3, self.n, dtype=dtype, seed=8)
        assert isinstance(opA.H, AdjointOperator)
        close(opA.H @ y, dense_apply(A.mH, y))
        close(opA.H.to_dense(), A.mH)
        assert opA.H.H is opA
        close(opA.H.H.to_dense(), A)

    def test_normal(self, dtype):
        A, _, opA, _ = self.mats(dtype)
        N = opA.normal()
        # A^H A is only semi-definite in general (rank-deficient A): not tagged definite.
        assert N.is_self_adjoint and not N.is_positive_definite
        x = rand(2, 3, self.n, dtype=dtype, seed=9)
        close(N @ x, dense_apply(A.mH @ A, x))
        close(N.to_dense(), A.mH @ A)
        # A^H A is Hermitian with positive spectrum
        D = N.to_dense()
        close(D, D.mH)
        assert float(torch.linalg.eigvalsh(D).min()) > 0

    def test_rectangular_algebra(self, dtype):
        P = rand(4, 7, dtype=dtype, seed=10)   # 7 -> 4
        Q = rand(7, 3, dtype=dtype, seed=11)   # 3 -> 7
        opP, opQ = aslinearoperator(P), aslinearoperator(Q)
        assert opP.shape == ((7,), (4,))
        C = opP @ opQ
        assert C.shape == ((3,), (4,))
        close(C.to_dense(), P @ Q)
        close(C.H.to_dense(), (P @ Q).mH)
        y = rand(2, 3, 4, dtype=dtype, seed=12)
        close(opP.H @ y, dense_apply(P.mH, y))
        close(opP.normal().to_dense(), P.mH @ P)
        close(opP.H.normal().to_dense(), P @ P.mH)
        close((opP - 2 * opP).to_dense(), -P)
        assert check_adjoint(C, generator=_gen()) < ADJ_TOL
        assert check_adjoint(opP.normal(), generator=_gen()) < ADJ_TOL

    def test_composites_pass_adjoint_test(self, dtype):
        _, _, opA, opB = self.mats(dtype)
        composites = [
            opA, opA.H, opA @ opB, opA + opB, opA - opB, -opA, 2.0 * opA, (0.5 + 1j) * opA,
            opA.normal(), (opA @ opB).H, opA @ opB.H + 3 * opB, IdentityOperator(self.n, dtype=dtype) - opA,
        ]
        for op in composites:
            err = check_adjoint(op, n_trials=4, generator=_gen(13))
            assert err < ADJ_TOL, (op, err)

    def test_identity(self, dtype):
        Id = IdentityOperator((2, 3), dtype=dtype)
        x = rand(4, 2, 3, dtype=dtype)
        assert torch.equal(Id @ x, x)
        close(Id.to_dense(), torch.eye(6, dtype=dtype))
        assert Id.H is Id and Id.is_positive_definite


class TestTags:
    def pd(self, seed):
        return aslinearoperator(spd(5, seed=seed), is_self_adjoint=True, is_positive_definite=True)

    def test_sum_of_pd_is_pd(self):
        A, B = self.pd(1), self.pd(2)
        S = A + B
        assert S.is_self_adjoint and S.is_positive_definite
        assert float(torch.linalg.eigvalsh(S.to_dense()).min()) > 0
        D = A - B
        assert D.is_self_adjoint and not D.is_positive_definite
        G = aslinearoperator(rand(5, 5, seed=3))
        assert not (A + G).is_self_adjoint and not (A + G).is_positive_definite

    def test_scaled_tags(self):
        A = self.pd(1)
        assert (2.0 * A).is_positive_definite and (2.0 * A).is_self_adjoint
        neg = -0.5 * A
        assert neg.is_self_adjoint and not neg.is_positive_definite
        assert float(torch.linalg.eigvalsh(neg.to_dense()).max()) < 0
        assert not (-A).is_positive_definite
        assert (0 * A).is_self_adjoint and not (0 * A).is_positive_definite
        cplx = (1 + 1j) * A
        assert not cplx.is_self_adjoint and not cplx.is_positive_definite
        D = cplx.to_dense()
        assert float((D - D.mH).abs().max()) > 1e-3  # indeed not Hermitian
        assert (torch.tensor(3.0) * A).is_positive_definite

    def test_self_adjoint_h_is_self(self):
        A = self.pd(1)
        assert A.H is A
        assert A.normal().is_self_adjoint and not A.normal().is_positive_definite
        G = aslinearoperator(rand(5, 5))
        assert isinstance(G.H, AdjointOperator) and G.H is not G and not G.H.is_self_adjoint

    def test_composition_drops_tags(self):
        A, B = self.pd(1), self.pd(2)
        C = A @ B
        assert not C.is_self_adjoint and not C.is_positive_definite

    def test_tag_consistency_validated(self):
        with pytest.raises(ValueError, match="requires is_self_adjoint"):
            aslinearoperator(spd(3), is_positive_definite=True)
        with pytest.raises(ValueError, match="square"):
            aslinearoperator(rand(3, 4), is_self_adjoint=True)


# ------------------------------------------------------------------------------------------------
# Wrappers against the original matrix / scipy operator
# ------------------------------------------------------------------------------------------------
def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


def _wrapped_variants(M: torch.Tensor):
    """The same (m, n) matrix M given to `aslinearoperator` in every supported form."""
    Mn = _np(M)
    m, n = Mn.shape

    def matvec(x):
        return dense_apply(M, x)

    def rmatvec(y):
        return dense_apply(M.mH, y)

    return {
        "torch-dense": aslinearoperator(M),
        "torch-coo": aslinearoperator(M.to_sparse()),
        "torch-csr": aslinearoperator(M.to_sparse_csr()),
        "numpy": aslinearoperator(Mn),
        "scipy-csr": aslinearoperator(sp.csr_matrix(Mn)),
        "scipy-coo": aslinearoperator(sp.coo_matrix(Mn)),
        "scipy-csr-array": aslinearoperator(sp.csr_array(Mn)),
        "scipy-LinearOperator": aslinearoperator(
            spla.LinearOperator((m, n), matvec=lambda v: Mn @ v, rmatvec=lambda v: Mn.conj().T @ v, dtype=Mn.dtype)
        ),
        "scipy-aslinearoperator": aslinearoperator(spla.aslinearoperator(Mn)),
        "functions": aslinearoperator((matvec, rmatvec), in_shape=n, out_shape=m, dtype=M.dtype),
    }


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m,n", [(5, 5), (7, 4), (3, 6)])
def test_wrappers_match_matrix(dtype, m, n):
    M = rand(m, n, dtype=dtype, seed=m * 10 + n)
    # sparsify so the sparse formats hold real structure (keep a full diagonal band)
    mask = (rand(m, n, seed=99) > 0.3) | torch.eye(m, n, dtype=torch.bool)
    M = M * mask
    x = rand(2, 3, n, dtype=dtype, seed=1)
    y = rand(2, 3, m, dtype=dtype, seed=2)
    for name, op in _wrapped_variants(M).items():
        assert op.shape == ((n,), (m,)), name
        assert op.dtype == dtype, name
        close(op @ x, dense_apply(M, x))
        close(op.H @ y, dense_apply(M.mH, y))
        close(op.to_dense(), M)
        close(op.H.to_dense(), M.mH)
        assert (op @ x).shape == (2, 3, m)
        assert (op.H @ y).shape == (2, 3, n)
        # single unbatched vector too
        close(op @ x[0, 0], M @ x[0, 0])
        err = check_adjoint(op, generator=_gen(5))
        assert err < ADJ_TOL, (name, err)
        # composites built from wrappers
        for comp in (op.normal(), op.H @ op, op @ op.H, 2j * op, op - op, op.H.normal()):
            assert check_adjoint(comp, generator=_gen(6)) < ADJ_TOL, name
        close(op.normal().to_dense(), M.mH @ M)


def test_scipy_sparse_matrix_conversion_is_exact():
    S = sp.random(30, 20, density=0.2, format="coo", random_state=np.random.default_rng(0))
    S = S + sp.coo_matrix((np.ones(3), ([0, 0, 5], [1, 1, 7])), shape=(30, 20))  # duplicate entries get summed
    op = aslinearoperator(S)
    assert op.matrix.layout == torch.sparse_csr
    np.testing.assert_allclose(_np(op.to_dense()), S.toarray(), rtol=0, atol=0)
    x = np.random.default_rng(1).standard_normal((4, 20))
    np.testing.assert_allclose(_np(op @ torch.from_numpy(x)), (S @ x.T).T, rtol=1e-14, atol=1e-14)
    y = np.random.default_rng(2).standard_normal((4, 30))
    np.testing.assert_allclose(_np(op.H @ torch.from_numpy(y)), (S.T @ y.T).T, rtol=1e-14, atol=1e-14)


def test_complex_scipy_linear_operator_uses_rmatvec():
    rng = np.random.default_rng(3)
    Mn = rng.standard_normal((6, 4)) + 1j * rng.standard_normal((6, 4))
    calls = {"mv": 0, "rmv": 0}

    def mv(v):
        calls["mv"] += 1
        return Mn @ v

    def rmv(v):
        calls["rmv"] += 1
        return Mn.conj().T @ v

    op = aslinearoperator(spla.LinearOperator(Mn.shape, matvec=mv, rmatvec=rmv, dtype=np.complex128))
    assert isinstance(op, ScipyOperator) and op.dtype == torch.complex128
    y = torch.from_numpy(rng.standard_normal((2, 6)) + 1j * rng.standard_normal((2, 6)))
    np.testing.assert_allclose(_np(op.H @ y), (Mn.conj().T @ _np(y).T).T, rtol=1e-13)
    assert calls["rmv"] > 0
    assert check_adjoint(op, generator=_gen()) < ADJ_TOL


def test_wrapping_is_idempotent_and_casts():
    A = aslinearoperator(spd(4))
    assert aslinearoperator(A) is A
    A32 = aslinearoperator(spd(4), dtype=torch.float32)
    assert A32.dtype == torch.float32 and A32.matrix.dtype == torch.float32
    Ac = aslinearoperator(sp.eye(3, format="csr"), dtype=torch.complex128)
    assert Ac.dtype == torch.complex128
    close(Ac.to_dense(), torch.eye(3, dtype=torch.complex128))


@pytest.mark.parametrize("form", ["torch-dense", "torch-csr", "scipy-csr", "scipy-LinearOperator", "numpy"])
def test_grid_shapes(form):
    """A (20, 20) matrix acting on a (4, 5) grid; and a (12, 20) matrix from (4, 5) to (3, 4)."""
    grid, out_grid = (4, 5), (3, 4)
    for out_shape, m in [(None, 20), (out_grid, 12)]:
        M = rand(m, 20, seed=m)
        Mn = _np(M)
        obj = {
            "torch-dense": M, "torch-csr": M.to_sparse_csr(), "scipy-csr": sp.csr_matrix(Mn), "numpy": Mn,
            "scipy-LinearOperator": spla.aslinearoperator(Mn),
        }[form]
        op = aslinearoperator(obj, in_shape=grid, out_shape=out_shape)
        want_out = grid if out_shape is None else out_grid   # a square matrix maps the grid to itself
        assert op.shape == (grid, want_out)
        x = rand(2, 3, *grid, seed=4)
        y = op @ x
        assert y.shape == (2, 3, *want_out)
        close(y.reshape(2, 3, m), dense_apply(M, x.reshape(2, 3, 20)))
        z = rand(2, *want_out, seed=5)
        close((op.H @ z).reshape(2, 20), dense_apply(M.mT, z.reshape(2, m)))
        close(op.to_dense(), M)
        assert check_adjoint(op, generator=_gen()) < ADJ_TOL
    # a symmetric matrix on a grid can be declared self-adjoint
    S = spd(20)
    op = aslinearoperator(S, in_shape=grid, is_self_adjoint=True, is_positive_definite=True)
    assert op.shape == (grid, grid) and op.H is op


def test_function_operator():
    M = rand(6, 4, dtype=torch.complex128, seed=1)
    op = aslinearoperator(lambda x: dense_apply(M, x), in_shape=(4,), out_shape=(6,))
    assert isinstance(op, FunctionOperator) and op.shape == ((4,), (6,))
    x = rand(3, 4, dtype=torch.complex128)
    close(op @ x, dense_apply(M, x))
    with pytest.raises(NotImplementedError, match="adjoint"):
        op.H @ rand(6, dtype=torch.complex128)
    # a self-adjoint function needs no rmatvec
    S = spd(4)
    sop = aslinearoperator(lambda x: dense_apply(S, x), in_shape=4, is_self_adjoint=True, dtype=torch.float64)
    close(sop.H @ x.real, dense_apply(S, x.real))
    close(sop.to_dense(), S)
    assert check_adjoint(sop, generator=_gen()) < ADJ_TOL


# ------------------------------------------------------------------------------------------------
# check_adjoint
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
def test_check_adjoint_detects_wrong_adjoint(dtype):
    M = rand(5, 5, dtype=dtype, seed=1)
    wrong_transpose = aslinearoperator((lambda x: dense_apply(M, x), lambda y: dense_apply(M, y)), in_shape=5)
    assert check_adjoint(wrong_transpose, generator=_gen()) > 1e-2
    wrong_scale = aslinearoperator((lambda x: dense_apply(M, x), lambda y: 1.1 * dense_apply(M.mH, y)), in_shape=5)
    assert check_adjoint(wrong_scale, generator=_gen()) > 1e-2
    right = aslinearoperator((lambda x: dense_apply(M, x), lambda y: dense_apply(M.mH, y)), in_shape=5)
    assert check_adjoint(right, generator=_gen(), dtype=dtype) < ADJ_TOL
    if dtype.is_complex:  # forgetting the conjugate is caught
        no_conj = aslinearoperator((lambda x: dense_apply(M, x), lambda y: dense_apply(M.mT, y)), in_shape=5)
        assert check_adjoint(no_conj, generator=_gen(), dtype=dtype) > 1e-2
    # a function without rmatvec falsely tagged self-adjoint (its adjoint falls back to apply)
    liar = aslinearoperator(lambda x: dense_apply(M, x), in_shape=5, is_self_adjoint=True)
    assert check_adjoint(liar, generator=_gen(), dtype=dtype) > 1e-2


def test_check_adjoint_reproducible_with_generator():
    M = rand(6, 6, seed=3)
    op = aslinearoperator((lambda x: dense_apply(M, x), lambda y: dense_apply(M, y)), in_shape=6)
    state = torch.get_rng_state()
    e1 = check_adjoint(op, n_trials=2, generator=_gen(42))
    e2 = check_adjoint(op, n_trials=2, generator=_gen(42))
    e3 = check_adjoint(op, n_trials=2, generator=_gen(43))
    assert e1 == e2
    assert e1 != e3
    assert torch.equal(torch.get_rng_state(), state)  # the global RNG is untouched
    # the worst over more trials can only grow (same generator stream, prefix of the draws)
    assert check_adjoint(op, n_trials=5, generator=_gen(42)) >= e1
    with pytest.raises(ValueError, match="n_trials"):
        check_adjoint(op, n_trials=0)


def test_check_adjoint_dtype_agnostic_operator_defaults_to_float64():
    L = laplacian((5, 4), bc=["dirichlet", "periodic"])
    assert L.dtype is None
    assert check_adjoint(L, generator=_gen()) < ADJ_TOL
    assert check_adjoint(L, generator=_gen(), dtype=torch.complex128) < ADJ_TOL
    assert check_adjoint(L, generator=_gen(), dtype=torch.float32) < 1e-5


# ------------------------------------------------------------------------------------------------
# Stencils against scipy.sparse assembly
# ------------------------------------------------------------------------------------------------
def lap1d(n: int, h: float, bc: str) -> sp.csr_matrix:
    L = sp.diags([-np.ones(n - 1), 2 * np.ones(n), -np.ones(n - 1)], [-1, 0, 1], format="lil")
    if bc == "neumann":
        L[0, 0] = 1.0
        L[n - 1, n - 1] = 1.0
    elif bc == "periodic":
        L[0, n - 1] += -1.0
        L[n - 1, 0] += -1.0
    return sp.csr_matrix(L) / h**2


def lap_nd(grid, spacing, bcs) -> sp.csr_matrix:
    """Kronecker sum of the 1-D matrices (C order: axis 0 varies slowest)."""
    eyes = [sp.identity(n, format="csr") for n in grid]
    total = None
    for d, (n, h, bc) in enumerate(zip(grid, spacing, bcs)):
        factors = [lap1d(n, h, bc) if k == d else eyes[k] for k in range(len(grid))]
        term = functools.reduce(lambda A, B: sp.kron(A, B, format="csr"), factors)
        total = term if total is None else total + term
    return sp.csr_matrix(total)


def diffusion_reference(grid, spacing, bcs, a=None, c=None) -> np.ndarray:
    """Assemble -div(a grad u) + c u cell by cell, an independent reading of the ghost-point rules."""
    N = int(np.prod(grid))
    A = np.zeros((N, N), dtype=np.complex128)
    idx = lambda cell: int(np.ravel_multi_index(cell, grid))  # noqa: E731
    for cell in np.ndindex(*grid):
        i = idx(cell)
        for d, (n, h, bc) in enumerate(zip(grid, spacing, bcs)):
            k = cell[d]
            face = lambda f: (1.0 if a is None else complex(a[d][cell[:d] + (f,) + cell[d + 1:]]))  # noqa: E731
            for f, nb in ((k, k - 1), (k + 1, k + 1)):  # lower face / neighbour, upper face / neighbour
                w = face(f) / h**2
                A[i, i] += w
                if 0 <= nb < n:
                    A[i, idx(cell[:d] + (nb,) + cell[d + 1:])] -= w
                elif bc == "neumann":  # ghost = own value: the flux through the boundary face vanishes
                    A[i, i] -= w
                elif bc == "periodic":
                    A[i, idx(cell[:d] + (nb % n,) + cell[d + 1:])] -= w
                # dirichlet: ghost = 0, nothing to add
        if c is not None:
            A[i, i] += complex(c) if np.isscalar(c) else complex(c[cell])
    return A


def operator_matrix(op: LinearOperator, dtype=torch.float64) -> np.ndarray:
    """Dense matrix of `op` by applying it to the float64 identity (op may be dtype-agnostic)."""
    N = op.in_size
    eye = torch.eye(N, dtype=dtype).reshape(N, *op.in_shape)
    return _np(op.apply(eye).reshape(N, op.out_size).mT)


STENCIL_CASES = [
    ((7,), 1.0, "dirichlet"),
    ((7,), 0.3, "neumann"),
    ((7,), 0.5, "periodic"),
    ((5, 6), 1.0, "dirichlet"),
    ((5, 6), (0.5, 0.2), "neumann"),
    ((5, 6), (0.1, 0.7), "periodic"),
    ((5, 6), (0.25, 1.5), ["dirichlet", "periodic"]),
    ((4, 5), 1.0, ["neumann", "dirichlet"]),
    ((3, 4, 5), 1.0, "dirichlet"),
    ((3, 4, 5), (0.5, 1.0, 2.0), ["periodic", "neumann", "dirichlet"]),
    ((4, 3, 3), (0.3, 0.3, 0.6), "periodic"),
    ((3, 4, 3), 0.2, "neumann"),
]


@pytest.mark.parametrize("grid,spacing,bc", STENCIL_CASES)
def test_laplacian_matches_scipy_assembly(grid, spacing, bc):
    ndim = len(grid)
    sp_tuple = (spacing,) * ndim if np.isscalar(spacing) else tuple(spacing)
    bcs = (bc,) * ndim if isinstance(bc, str) else tuple(bc)
    L = laplacian(grid, spacing, bc, dtype=torch.float64)
    assert L.shape == (tuple(grid), tuple(grid))
    assert L.is_self_adjoint
    assert L.is_positive_definite == ("dirichlet" in bcs)
    ref = lap_nd(grid, sp_tuple, bcs).toarray()
    D = _np(L.to_dense())
    np.testing.assert_allclose(D, ref, rtol=1e-13, atol=1e-12 * np.abs(ref).max())
    # the independent cell-by-cell assembly agrees with the Kronecker sum
    np.testing.assert_allclose(diffusion_reference(grid, sp_tuple, bcs).real, ref, rtol=1e-13, atol=1e-10)
    # batched application equals the sparse matrix product
    x = rand(2, 3, *grid, seed=1)
    y = L @ x
    assert y.shape == x.shape
    yref = (lap_nd(grid, sp_tuple, bcs) @ _np(x).reshape(6, -1).T).T.reshape(x.shape)
    np.testing.assert_allclose(_np(y), yref, rtol=1e-12, atol=1e-12 * np.abs(yref).max())
    # symmetric; Dirichlet anywhere -> SPD; otherwise singular with the constants as null space
    np.testing.assert_allclose(D, D.T, rtol=0, atol=1e-12 * np.abs(D).max())
    eig = np.linalg.eigvalsh(D)
    if "dirichlet" in bcs:
        assert eig.min() > 1e-8 * eig.max()
    else:
        assert abs(eig.min()) < 1e-10 * eig.max()
        assert eig[1] > 1e-6 * eig.max()  # the null space is one-dimensional
        ones = torch.ones(grid, dtype=torch.float64)
        assert float((L @ ones).abs().max()) < 1e-10 * eig.max()
    assert check_adjoint(L, generator=_gen()) < ADJ_TOL


def test_laplacian_1d_values_and_dtypes():
    # docstring example: -u'' of the constant 1 with zero Dirichlet ghosts
    L = laplacian((3,), bc="dirichlet")
    assert torch.equal(L @ torch.ones(3), torch.tensor([1.0, 0.0, 1.0]))
    # exact on a quadratic: -d2/dx2 of x^2 is -2 in the interior
    h = 0.1
    xs = torch.arange(1, 9, dtype=torch.float64) * h
    out = laplacian((8,), h, "dirichlet") @ xs**2
    close(out[1:-1], torch.full((6,), -2.0, dtype=torch.float64), tol=1e-10)
    # the dtype of the operator is enforced; dtype=None accepts any
    L64 = laplacian((4, 4), dtype=torch.float64)
    with pytest.raises(ValueError, match="dtype"):
        L64 @ torch.ones(4, 4, dtype=torch.float32)
    Lc = laplacian((4, 4))
    xc = rand(4, 4, dtype=torch.complex128)
    close(Lc @ xc, (Lc @ xc.real) + 1j * (Lc @ xc.imag))
    assert (Lc @ torch.ones(4, 4, dtype=torch.float32)).dtype == torch.float32


def test_dirichlet_eigenvalues_match_analytic():
    n, h = 9, 1.0 / 10
    L = laplacian((n, n), h, "dirichlet", dtype=torch.float64)
    eig = np.sort(np.linalg.eigvalsh(_np(L.to_dense())))
    k = np.arange(1, n + 1)
    lam1 = 4 / h**2 * np.sin(k * np.pi * h / 2) ** 2
    ref = np.sort((lam1[:, None] + lam1[None, :]).ravel())
    np.testing.assert_allclose(eig, ref, rtol=1e-12)


def _faces(grid, d, seed, periodic=False, positive=True):
    shape = list(grid)
    shape[d] += 1
    g = _gen(seed)
    t = torch.rand(shape, dtype=torch.float64, generator=g) + 0.5 if positive else torch.randn(shape, dtype=torch.float64, generator=g)
    if periodic:  # faces 0 and n are the same face
        t.narrow(d, shape[d] - 1, 1).copy_(t.narrow(d, 0, 1))
    return t


DIFFUSION_CASES = [
    ((8,), 0.2, "dirichlet", None),
    ((8,), 0.2, "neumann", 0.5),
    ((8,), 0.5, "periodic", "field"),
    ((4, 5), (0.3, 0.6), "dirichlet", None),
    ((4, 5), (0.3, 0.6), ["neumann", "periodic"], 1.0),
    ((4, 5), 1.0, "neumann", None),
    ((3, 4, 3), (0.5, 1.0, 0.7), ["dirichlet", "neumann", "periodic"], "field"),
]


@pytest.mark.parametrize("grid,spacing,bc,c", DIFFUSION_CASES)
def test_diffusion_operator_matches_assembly(grid, spacing, bc, c):
    ndim = len(grid)
    sp_tuple = (spacing,) * ndim if np.isscalar(spacing) else tuple(spacing)
    bcs = (bc,) * ndim if isinstance(bc, str) else tuple(bc)
    a = [_faces(grid, d, seed=d + 1, periodic=bcs[d] == "periodic") for d in range(ndim)]
    if c == "field":
        c = torch.rand(grid, dtype=torch.float64, generator=_gen(7)) + 0.1
    op = DiffusionOperator(grid, spacing, bc, a=a, c=c, dtype=torch.float64)
    D = _np(op.to_dense())
    ref = diffusion_reference(grid, sp_tuple, bcs, a=[_np(t) for t in a], c=None if c is None else (c if np.isscalar(c) else _np(c)))
    np.testing.assert_allclose(D, ref.real, rtol=1e-13, atol=1e-12 * np.abs(ref).max())
    np.testing.assert_allclose(D, D.T, rtol=0, atol=1e-12 * np.abs(D).max())
    c_pos = c is not None and (float(c) > 0 if np.isscalar(c) else bool((c > 0).all()))
    assert op.is_self_adjoint
    assert op.is_positive_definite == ("dirichlet" in bcs or c_pos)
    eig = np.linalg.eigvalsh(D)
    if op.is_positive_definite:
        assert eig.min() > 0
    else:
        assert abs(eig.min()) < 1e-10 * eig.max()
    x = rand(2, *grid, seed=3)
    close(op @ x, dense_apply(torch.from_numpy(ref.real), x.reshape(2, -1)).reshape(x.shape))
    assert check_adjoint(op, generator=_gen()) < ADJ_TOL


def test_diffusion_with_unit_coefficients_is_laplacian():
    grid = (4, 5)
    a = [torch.ones(5, 5, dtype=torch.float64), torch.ones(4, 6, dtype=torch.float64)]
    op = DiffusionOperator(grid, (0.5, 0.25), ["dirichlet", "neumann"], a=a, c=2.0, dtype=torch.float64)
    L = laplacian(grid, (0.5, 0.25), ["dirichlet", "neumann"], dtype=torch.float64)
    close(op.to_dense(), L.to_dense() + 2.0 * torch.eye(20, dtype=torch.float64), tol=1e-14)


def test_diffusion_tags():
    grid = (4, 5)
    a_pos = [_faces(grid, d, seed=d) for d in range(2)]
    assert DiffusionOperator(grid, a=a_pos).is_positive_definite
    assert not DiffusionOperator(grid, bc="neumann", a=a_pos).is_positive_definite
    assert DiffusionOperator(grid, bc="neumann", a=a_pos, c=0.1).is_positive_definite
    assert DiffusionOperator(grid, bc="periodic", c=torch.full(grid, 0.2)).is_positive_definite
    assert not DiffusionOperator(grid, bc="periodic", c=torch.zeros(grid)).is_positive_definite
    assert not DiffusionOperator(grid, c=-1.0).is_positive_definite
    neg = DiffusionOperator(grid, a=[-t for t in a_pos])
    assert neg.is_self_adjoint and not neg.is_positive_definite
    assert float(torch.linalg.eigvalsh(DiffusionOperator(grid, a=[-t for t in a_pos], dtype=torch.float64).to_dense()).max()) < 0


@pytest.mark.parametrize("c", [0.5 + 2j, "tensor"])
def test_diffusion_complex_reaction_is_not_self_adjoint(c):
    grid = (4, 3)
    if c == "tensor":
        c = torch.complex(torch.rand(grid, dtype=torch.float64, generator=_gen(1)),
                          torch.rand(grid, dtype=torch.float64, generator=_gen(2)))
    op = DiffusionOperator(grid, 0.5, ["dirichlet", "periodic"], c=c, dtype=torch.complex128)
    assert not op.is_self_adjoint and not op.is_positive_definite
    cref = c if isinstance(c, complex) else _np(c)
    ref = diffusion_reference(grid, (0.5, 0.5), ("dirichlet", "periodic"), c=cref)
    np.testing.assert_allclose(_np(op.to_dense()), ref, rtol=1e-13, atol=1e-12)
    np.testing.assert_allclose(_np(op.H.to_dense()), ref.conj().T, rtol=1e-13, atol=1e-12)
    assert check_adjoint(op, generator=_gen()) < ADJ_TOL


# ------------------------------------------------------------------------------------------------
# Errors
# ------------------------------------------------------------------------------------------------
class TestErrors:
    def test_wrong_input_shape(self):
        A = aslinearoperator(rand(4, 4))
        with pytest.raises(ValueError, match=r"shape \(3, 5\).*\(\*batch, 4\)"):
            A @ rand(3, 5)
        with pytest.raises(ValueError, match=r"shape \(2, 3\)"):
            A.H @ rand(2, 3)
        G = aslinearoperator(rand(20, 20), in_shape=(4, 5))
        with pytest.raises(ValueError, match=r"shape \(5, 4\).*\(\*batch, 4, 5\)"):
            G @ rand(5, 4)
        with pytest.raises(ValueError, match=r"shape \(20,\)"):
            G @ rand(20)
        L = laplacian((4, 5))
        with pytest.raises(ValueError, match=r"shape \(2, 4, 4\)"):
            L @ rand(2, 4, 4)
        with pytest.raises(TypeError, match="torch.Tensor"):
            A(np.ones(4))

    def test_dtype_mismatch(self):
        A = aslinearoperator(rand(4, 4))
        with pytest.raises(ValueError, match="dtype.*float32.*float64"):
            A @ torch.ones(4, dtype=torch.float32)
        with pytest.raises(ValueError, match="dtype"):
            A @ torch.ones(4, dtype=torch.complex128)
        Ac = aslinearoperator(rand(4, 4, dtype=torch.complex128))
        with pytest.raises(ValueError, match="dtype"):
            Ac @ torch.ones(4, dtype=torch.float64)

    def test_incompatible_composition_and_sum(self):
        P = aslinearoperator(rand(4, 7))
        Q = aslinearoperator(rand(5, 3))
        with pytest.raises(ValueError, match="cannot compose"):
            P @ Q
        with pytest.raises(ValueError, match="cannot add"):
            P + Q
        with pytest.raises(ValueError, match="cannot add"):
            P - P.H
        with pytest.raises(ValueError, match="cannot compose"):
            laplacian((4, 5)) @ laplacian((5, 4))
        assert P.__matmul__("x") is NotImplemented
        with pytest.raises(TypeError):
            P + 1.0
        with pytest.raises(TypeError):
            P * rand(3)

    def test_unsupported_types(self):
        for obj in ("matrix", 3.0, [[1.0, 0.0], [0.0, 1.0]], None):
            with pytest.raises(TypeError, match="cannot make a LinearOperator"):
                aslinearoperator(obj)
        with pytest.raises(ValueError, match="in_shape is required"):
            aslinearoperator(lambda x: x)
        with pytest.raises(ValueError, match="in_shape is required"):
            aslinearoperator((lambda x: x, lambda y: y))
        with pytest.raises(TypeError, match="callables"):
            FunctionOperator(lambda x: x, "not callable", in_shape=3)

    def test_bad_matrix_and_shapes(self):
        with pytest.raises(ValueError, match="2-D"):
            MatrixOperator(torch.ones(3))
        with pytest.raises(ValueError, match="do not match a 20x20"):
            aslinearoperator(rand(20, 20), in_shape=(4, 4))
        with pytest.raises(ValueError, match="positive sizes"):
            LinearOperator((3, 0))
        with pytest.raises(TypeError, match="in_shape"):
            LinearOperator(None)
        with pytest.raises(NotImplementedError, match="apply"):
            LinearOperator(3) @ torch.ones(3)

    def test_stencil_argument_errors(self):
        with pytest.raises(ValueError, match="unknown boundary condition"):
            laplacian((4, 4), bc="robin")
        with pytest.raises(ValueError, match="one per axis"):
            laplacian((4, 4), bc=["dirichlet"])
        with pytest.raises(ValueError, match="spacing"):
            laplacian((4, 4), spacing=(1.0, 0.0))
        with pytest.raises(ValueError, match="spacing"):
            laplacian((4, 4), spacing=(1.0, 1.0, 1.0))
        with pytest.raises(ValueError, match="1, 2 or 3 axes"):
            laplacian((2, 2, 2, 2))
        with pytest.raises(ValueError, match=r"a\[1\] must have shape \(4, 5\)"):
            DiffusionOperator((4, 4), a=[torch.ones(5, 4), torch.ones(4, 4)])


def test_sparse_layouts_keep_their_adjoint_layout():
    M = rand(6, 4, dtype=torch.complex128)
    coo = aslinearoperator(M.to_sparse())
    csr = aslinearoperator(M.to_sparse_csr())
    assert coo.matrix_h.layout == torch.sparse_coo and csr.matrix_h.layout == torch.sparse_csr
    close(coo.matrix_h.to_dense(), M.mH)
    close(csr.matrix_h.to_dense(), M.mH)


def test_operator_to_dtype_keeps_results():
    M = rand(5, 5, seed=4)
    op = aslinearoperator(M) + 2.0 * aslinearoperator(M.mT.contiguous())
    op32 = op.to(dtype=torch.float32)
    assert op32.dtype == torch.float32
    x = rand(5, seed=5)
    close((op32 @ x.float()).double(), op @ x, tol=1e-5)


@pytest.mark.parametrize("combo", list(itertools.product(["dirichlet", "neumann", "periodic"], repeat=2)))
def test_laplacian_plus_shift_is_pd_and_adjoint(combo):
    L = laplacian((4, 3), (0.5, 0.25), list(combo), dtype=torch.float64)
    S = L + 0.1 * IdentityOperator((4, 3), dtype=torch.float64)
    assert S.is_positive_definite == L.is_positive_definite
    eig = torch.linalg.eigvalsh(S.to_dense())
    assert float(eig.min()) >= 0.1 - 1e-10
    assert check_adjoint(S, generator=_gen()) < ADJ_TOL


@pytest.mark.parametrize("shape", [(7,), (5, 6), (4, 5, 3), (1, 4), (3, 1)])
@pytest.mark.parametrize("batch", [(), (3,), (2, 2)])
def test_fast_laplacian_path_equals_flux_form(shape, batch):
    """The constant-coefficient fast path (flat shifts + slab corrections) equals the flux form for every bc."""
    import itertools

    from sciml.operators.stencil import diffusion_apply, laplacian_apply

    gen = torch.Generator().manual_seed(len(shape) * 10 + len(batch))
    u = torch.randn(*batch, *shape, dtype=torch.float64, generator=gen)
    h = [0.3, 0.7, 1.1][: len(shape)]
    for bc in itertools.product(["dirichlet", "neumann", "periodic"], repeat=len(shape)):
        for c in (None, 2.5, torch.rand(shape, dtype=torch.float64, generator=gen)):
            torch.testing.assert_close(laplacian_apply(u, h, bc, c), diffusion_apply(u, h, bc, None, c),
                                       rtol=1e-13, atol=1e-12)


@pytest.mark.parametrize("layout", ["dense", "coo", "csr"])
def test_real_matrix_on_complex_vectors(layout):
    """A real matrix acts on complex data part by part, as scipy's operators do; apply and adjoint match
    the complex product, and a real x meets a complex matrix in the matrix's dtype."""
    g = _gen(0)
    M = torch.randn(5, 7, dtype=torch.float64, generator=g)
    M[M.abs() < 0.5] = 0
    wrapped = {"dense": M, "coo": M.to_sparse_coo(), "csr": M.to_sparse_csr()}[layout]
    A = aslinearoperator(wrapped)
    x = torch.randn(3, 7, dtype=torch.complex128, generator=g)
    y = torch.randn(3, 5, dtype=torch.complex128, generator=g)
    Mc = M.to(torch.complex128)
    torch.testing.assert_close(A.apply(x), x @ Mc.T, rtol=0, atol=1e-14)
    torch.testing.assert_close(A.adjoint(y), y @ Mc, rtol=0, atol=1e-14)
    C = aslinearoperator(Mc * (1 + 1j))
    xr = torch.randn(7, dtype=torch.float64, generator=g)
    torch.testing.assert_close(C.apply(xr), (Mc * (1 + 1j)) @ xr.to(torch.complex128), rtol=0, atol=1e-14)
