"""Numerical tests of `sciml.linalg.fft` (DCT/DST), `.poisson` (fast Poisson solver), `.convolve` and of
`sciml.operators.LaplacianInverseOperator`.

References: scipy.fft for the transforms, scipy.signal.fftconvolve and a direct circular sum for the
convolutions, dense `torch.linalg.solve` on `laplacian(...).to_dense()` for the Poisson solver.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.fft as sfft
import scipy.signal as ssig
import torch

from sciml.linalg import cg, dct, dst, fft_convolve, idct, idst, poisson_eigenvalues, poisson_solve
from sciml.operators import (
    DiffusionOperator,
    LaplacianInverseOperator,
    check_adjoint,
    laplacian,
    laplacian_inverse,
)
from sciml.pde.grid import Grid

TRANSFORMS = {"dct": (dct, sfft.dct), "idct": (idct, sfft.idct), "dst": (dst, sfft.dst), "idst": (idst, sfft.idst)}
NORMS = [None, "backward", "ortho", "forward"]




def rel_err(a, b) -> float:
    a = a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
    b = b.detach().cpu().numpy() if isinstance(b, torch.Tensor) else np.asarray(b)
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-300))


def rng_array(*shape, seed=0, complex_=False) -> np.ndarray:
    r = np.random.default_rng(seed)
    a = r.standard_normal(shape)
    return a + 1j * r.standard_normal(shape) if complex_ else a


# ================================================================================================
# Real-to-real transforms against scipy.fft
# ================================================================================================
@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("type_", [1, 2, 3, 4])
@pytest.mark.parametrize("name", list(TRANSFORMS))
def test_transform_matches_scipy_float64(name, type_, norm):
    ours, ref = TRANSFORMS[name]
    # odd and even lengths on every dim of 3-D arrays
    for shape in [(5, 8, 7), (4, 9, 2)]:
        a = rng_array(*shape, seed=sum(shape))
        for dim in (0, 1, 2, -1, -2):
            y = ours(torch.from_numpy(a), type=type_, dim=dim, norm=norm)
            assert y.dtype == torch.float64 and y.shape == a.shape
            assert rel_err(y, ref(a, type=type_, axis=dim, norm=norm)) < 1e-12, (shape, dim)


@pytest.mark.parametrize("orthogonalize", [True, False])
@pytest.mark.parametrize("name", list(TRANSFORMS))
def test_transform_orthogonalize_option(name, orthogonalize):
    ours, ref = TRANSFORMS[name]
    a = rng_array(3, 6, seed=1)
    for type_ in (1, 2, 3, 4):
        for norm in NORMS:
            y = ours(torch.from_numpy(a), type=type_, norm=norm, orthogonalize=orthogonalize)
            assert rel_err(y, ref(a, type=type_, norm=norm, orthogonalize=orthogonalize)) < 1e-12, (type_, norm)


@pytest.mark.parametrize("name", list(TRANSFORMS))
def test_transform_short_lengths(name):
    ours, ref = TRANSFORMS[name]
    for n in (1, 2, 3):
        a = rng_array(2, n, seed=n)
        for type_ in (1, 2, 3, 4):
            if type_ == 1 and name.endswith("dct") and n == 1:
                with pytest.raises(ValueError, match="at least 2 points"):
                    ours(torch.from_numpy(a), type=1)
                continue
            for norm in NORMS:
                assert rel_err(ours(torch.from_numpy(a), type=type_, norm=norm), ref(a, type=type_, norm=norm)) < 1e-12


@pytest.mark.parametrize("name", list(TRANSFORMS))
def test_transform_float32_and_complex(name):
    ours, ref = TRANSFORMS[name]
    a = rng_array(4, 33, seed=2)
    c = rng_array(3, 10, seed=3, complex_=True)
    for type_ in (1, 2, 3, 4):
        for norm in (None, "ortho"):
            y32 = ours(torch.from_numpy(a).float(), type=type_, dim=1, norm=norm)
            assert y32.dtype == torch.float32
            assert rel_err(y32, ref(a, type=type_, axis=1, norm=norm)) < 1e-5
            yc = ours(torch.from_numpy(c), type=type_, dim=-1, norm=norm)
            assert yc.dtype == torch.complex128
            assert rel_err(yc, ref(c, type=type_, axis=-1, norm=norm)) < 1e-12
            yc64 = ours(torch.from_numpy(c).to(torch.complex64), type=type_, norm=norm)
            assert yc64.dtype == torch.complex64 and rel_err(yc64, ref(c, type=type_, norm=norm)) < 1e-5


def test_transform_round_trips_and_orthogonality():
    x = torch.from_numpy(rng_array(3, 7, 6, seed=4))
    for fwd, inv in ((dct, idct), (dst, idst)):
        for type_ in (1, 2, 3, 4):
            for norm in NORMS:
                for dim in (0, 1, 2):
                    assert rel_err(inv(fwd(x, type_, dim, norm), type_, dim, norm), x) < 1e-13
            # the orthonormal transforms are orthogonal: they preserve the 2-norm
            y = fwd(x, type_, 1, "ortho")
            assert abs(float(y.norm() / x.norm()) - 1) < 1e-13


def test_transform_autograd():
    # the orthonormal transforms are orthogonal, so the gradient of <w, T x> is T^{-1} w
    w = torch.from_numpy(rng_array(2, 5, seed=6))
    for f, inv in ((dct, idct), (dst, idst)):
        for type_ in (1, 2, 3, 4):
            x = torch.from_numpy(rng_array(2, 5, seed=5)).requires_grad_()
            (f(x, type_, -1, "ortho") * w).sum().backward()
            assert rel_err(x.grad, inv(w, type_, -1, "ortho")) < 1e-13
    x = torch.from_numpy(rng_array(4, seed=7)).requires_grad_()
    assert torch.autograd.gradcheck(lambda t: dst(t, 3, norm="forward"), (x,))


def test_transform_errors():
    x = torch.ones(4, dtype=torch.float64)
    with pytest.raises(ValueError, match="type must be"):
        dct(x, type=5)
    with pytest.raises(ValueError, match="norm must be"):
        dst(x, norm="unitary")
    with pytest.raises(ValueError, match="out of range"):
        idct(x, dim=1)
    with pytest.raises(TypeError, match="must be an int"):
        dct(x, dim=0.5)
    with pytest.raises(TypeError, match="float32, float64"):
        dct(torch.ones(4, dtype=torch.int64))
    with pytest.raises(TypeError, match="torch.Tensor"):
        dst(np.ones(4))
    with pytest.raises(TypeError, match="orthogonalize"):
        dct(x, orthogonalize="yes")
    with pytest.raises(ValueError, match="at least one dimension"):
        dct(torch.tensor(1.0))


# ================================================================================================
# Fast Poisson / Helmholtz solver against the finite-difference operator
# ================================================================================================
POISSON_CASES = [
    ((9,), "dirichlet", 0.1),
    ((8,), "neumann", 0.25),
    ((7,), "periodic", 0.5),
    ((6, 7), "dirichlet", (0.2, 0.05)),
    ((7, 6), "neumann", (0.3, 0.1)),
    ((6, 5), "periodic", (0.1, 0.4)),
    ((7, 8), ("dirichlet", "neumann"), (0.1, 0.3)),
    ((8, 5), ("neumann", "periodic"), (0.5, 0.2)),
    ((4, 5, 6), ("periodic", "dirichlet", "neumann"), (0.2, 0.1, 0.3)),
    ((5, 4, 3), "dirichlet", (1.0, 0.5, 0.25)),
    ((4, 3, 5), ("neumann", "neumann", "periodic"), (0.3, 0.2, 0.1)),
]


def _singular(bc, shift=0.0) -> bool:
    bcs = (bc,) if isinstance(bc, str) else bc
    return "dirichlet" not in bcs and shift == 0


def _zero_mean(u: torch.Tensor, ndim: int) -> torch.Tensor:
    return u - u.mean(dim=tuple(range(-ndim, 0)), keepdim=True)


@pytest.mark.parametrize("shape,bc,h", POISSON_CASES)
def test_poisson_inverts_laplacian(shape, bc, h):
    D = len(shape)
    L = laplacian(shape, h, bc, dtype=torch.float64)
    u = torch.from_numpy(rng_array(2, 3, *shape, seed=D))   # batched
    if _singular(bc):
        u = _zero_mean(u, D)
    f = L @ u
    v = poisson_solve(f, h, bc, ndim=D)
    assert v.shape == u.shape and v.dtype == torch.float64
    assert rel_err(v, u) < 1e-10
    assert rel_err(L @ v, f) < 1e-10


@pytest.mark.parametrize("shape,bc,h", POISSON_CASES)
def test_poisson_matches_dense_solve(shape, bc, h):
    D = len(shape)
    A = laplacian(shape, h, bc, dtype=torch.float64).to_dense()
    f = torch.from_numpy(rng_array(2, *shape, seed=7))
    fl = f.reshape(2, -1)
    for shift in (0.0, 1.5, -7.3):       # -7.3: an indefinite (Helmholtz) shift off the spectrum
        M = A + shift * torch.eye(A.shape[0], dtype=A.dtype)
        if _singular(bc, shift):
            # minimum-norm solution = zero-mean solution for the zero-mean part of f
            ref = (torch.linalg.pinv(M, hermitian=True) @ fl.T).T
        else:
            ref = torch.linalg.solve(M, fl.T).T
        v = poisson_solve(f, h, bc, shift, ndim=D)
        assert rel_err(v.reshape(2, -1), ref) < 1e-10, shift


def test_poisson_eigenvalues_are_the_spectrum():
    for shape, bc, h in POISSON_CASES:
        lam = poisson_eigenvalues(shape, h, bc)
        D = len(shape)
        assert [tuple(t.shape) for t in lam] == [tuple(n if i == d else 1 for i in range(D)) for d, n in enumerate(shape)]
        total = sum(lam).flatten().sort().values
        dense = torch.linalg.eigvalsh(laplacian(shape, h, bc, dtype=torch.float64).to_dense())
        assert rel_err(total, dense) < 1e-12, (shape, bc)
    lam32 = poisson_eigenvalues((4, 5), 0.5, "neumann", dtype=torch.float32)
    assert all(t.dtype == torch.float32 for t in lam32)


def test_poisson_zero_mode_is_projected():
    shape, h = (6, 5), (0.2, 0.3)
    for bc in ("neumann", "periodic", ("periodic", "neumann")):
        L = laplacian(shape, h, bc, dtype=torch.float64)
        f = torch.from_numpy(rng_array(3, *shape, seed=11)) + 2.0      # incompatible: nonzero mean
        u = poisson_solve(f, h, bc, ndim=2)
        assert float(u.mean(dim=(-2, -1)).abs().max()) < 1e-12          # zero-mean solution
        assert rel_err(L @ u, _zero_mean(f, 2)) < 1e-10                 # solves the compatible part


def test_poisson_helmholtz_resonance_raises():
    shape, h = (7, 6), (0.1, 0.2)
    for bc in ("dirichlet", ("neumann", "periodic")):
        lam = poisson_eigenvalues(shape, h, bc)
        resonant = -float(lam[0][2, 0] + lam[1][0, 1])
        with pytest.raises(ValueError, match="singular"):
            poisson_solve(torch.ones(shape, dtype=torch.float64), h, bc, resonant, ndim=2)
    # a tiny shift in the all-Neumann case is singular too (not silently amplified)
    with pytest.raises(ValueError, match="singular"):
        poisson_solve(torch.ones(shape, dtype=torch.float64), h, "neumann", 1e-20, ndim=2)


def test_poisson_complex_shift_and_complex_rhs():
    shape, h, bc = (6, 7), (0.2, 0.1), ("periodic", "dirichlet")
    A = laplacian(shape, h, bc, dtype=torch.float64).to_dense().to(torch.complex128)
    eye = torch.eye(A.shape[0], dtype=A.dtype)
    f = torch.from_numpy(rng_array(2, *shape, seed=12))
    fc = torch.from_numpy(rng_array(2, *shape, seed=13, complex_=True))
    for rhs in (f, fc):
        for shift in (-30 * (1 - 0.5j), 2.0):
            v = poisson_solve(rhs, h, bc, shift)
            ref = torch.linalg.solve(A + shift * eye, rhs.reshape(2, -1).to(A.dtype).T).T
            assert v.is_complex() == (rhs.is_complex() or isinstance(shift, complex))
            assert rel_err(v.reshape(2, -1).to(A.dtype), ref) < 1e-10


def test_poisson_float32():
    for shape, bc, h in POISSON_CASES[3:9]:
        D = len(shape)
        L = laplacian(shape, h, bc, dtype=torch.float64)
        u = torch.from_numpy(rng_array(2, *shape, seed=3))
        if _singular(bc):
            u = _zero_mean(u, D)
        v = poisson_solve((L @ u).float(), h, bc, ndim=D)
        assert v.dtype == torch.float32
        assert rel_err(v.double(), u) < 1e-4, (shape, bc)


def test_poisson_grid_ndim_and_errors():
    f = torch.ones(3, 5, 6, dtype=torch.float64)
    # ndim from bc, from spacing, or explicit: all the same 2-D solve (batch of 3)
    a = poisson_solve(f, 0.1, ("dirichlet", "dirichlet"))
    b = poisson_solve(f, (0.1, 0.1), "dirichlet")
    c = poisson_solve(f, 0.1, "dirichlet", ndim=2)
    assert torch.equal(a, b) and torch.equal(a, c)
    with pytest.raises(ValueError, match="ndim="):
        poisson_solve(f, 0.1, "dirichlet")
    with pytest.raises(ValueError, match="unknown boundary condition"):
        poisson_solve(f, 0.1, ("dirichlet", "robin"))
    with pytest.raises(ValueError, match="one per axis"):
        poisson_solve(f, (0.1, 0.2, 0.3), ("dirichlet", "neumann"))
    with pytest.raises(ValueError, match="spacing"):
        poisson_solve(f, -1.0, "dirichlet", ndim=2)
    with pytest.raises(ValueError, match="grid dimensions"):
        poisson_solve(torch.ones(4, dtype=torch.float64), 0.1, "dirichlet", ndim=2)
    with pytest.raises(TypeError, match="shift"):
        poisson_solve(f, 0.1, "dirichlet", "1", ndim=2)
    with pytest.raises(TypeError, match="f must be"):
        poisson_solve(torch.ones(3, 3, dtype=torch.int32), 0.1, "dirichlet", ndim=2)


# ================================================================================================
# LaplacianInverseOperator
# ================================================================================================
def test_laplacian_inverse_operator_is_exact_inverse():
    for shape, bc, h in POISSON_CASES[3:]:
        for shift in (0.0, 0.7):
            L = laplacian(shape, h, bc, dtype=torch.float64).to_dense()
            Linv = laplacian_inverse(shape, h, bc, shift, dtype=torch.float64)
            assert isinstance(Linv, LaplacianInverseOperator)
            M = L + shift * torch.eye(L.shape[0], dtype=L.dtype)
            ref = torch.linalg.pinv(M, hermitian=True) if _singular(bc, shift) else torch.linalg.inv(M)
            assert rel_err(Linv.to_dense(), ref) < 1e-10
            assert check_adjoint(Linv, generator=torch.Generator().manual_seed(0)) < 1e-13
            assert Linv.is_self_adjoint
            assert Linv.is_positive_definite == (not _singular(bc, shift))


def test_laplacian_inverse_tags_and_complex_shift():
    assert laplacian_inverse((5, 6), 0.1, "dirichlet", -10.0).is_positive_definite   # lambda_min ~ 2 * 98
    indefinite = laplacian_inverse((5, 6), 0.1, "dirichlet", -500.0)
    assert indefinite.is_self_adjoint and not indefinite.is_positive_definite
    assert not laplacian_inverse((5, 6), 0.1, "neumann", -1.0).is_positive_definite
    Z = laplacian_inverse((5, 6), 0.1, ("periodic", "dirichlet"), -100 + 30j)
    assert not Z.is_self_adjoint and not Z.is_positive_definite
    g = torch.Generator().manual_seed(1)
    assert check_adjoint(Z, generator=g, dtype=torch.complex128) < 1e-13
    assert check_adjoint(Z, generator=g) < 1e-13
    with pytest.raises(ValueError, match="singular"):
        lam = poisson_eigenvalues((5, 6), 0.1, "periodic")
        laplacian_inverse((5, 6), 0.1, "periodic", -float(lam[0][1, 0] + lam[1][0, 2]))
    with pytest.raises(ValueError, match="1, 2 or 3 axes"):
        laplacian_inverse((2, 2, 2, 2))
    op = laplacian_inverse((4, 5), 0.2, "neumann", 1.0, dtype=torch.float64)
    x = torch.randn(2, 4, 5, dtype=torch.float64)
    assert torch.allclose(op.to(dtype=torch.float32) @ x.float(), (op @ x).float(), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="dtype"):
        op @ x.float()


def test_laplacian_inverse_preconditions_cg():
    n = 63
    grid = Grid(lower=(0, 0), upper=(1, 1), points=(n, n))
    h = grid.spacing

    def coeff(d):   # a = 1 + 0.5 sin(2 pi x) sin(2 pi y) on the faces along axis d
        axes = [grid.faces(i) if i == d else grid.nodes(i) for i in range(2)]
        X, Y = torch.meshgrid(*axes, indexing="ij")
        return 1 + 0.5 * torch.sin(2 * math.pi * X) * torch.sin(2 * math.pi * Y)

    A = DiffusionOperator((n, n), h, "dirichlet", a=[coeff(0), coeff(1)])
    M = laplacian_inverse((n, n), h, "dirichlet")
    b = torch.from_numpy(rng_array(n, n, seed=21))
    plain = cg(A, b, rtol=1e-8)
    pre = cg(A, b, rtol=1e-8, M=M)
    assert bool(plain.converged) and bool(pre.converged)
    assert int(plain.iterations) >= 5 * int(pre.iterations), (int(plain.iterations), int(pre.iterations))
    assert rel_err(pre.x, plain.x) < 1e-6
    # on the constant-coefficient Laplacian it is the exact inverse: one iteration
    exact = cg(laplacian((n, n), h), b, rtol=1e-10, M=M)
    assert int(exact.iterations) == 1


# ================================================================================================
# FFT convolution
# ================================================================================================
CONV_SHAPES = [((9,), (4,)), ((8,), (5,)), ((3,), (7,)), ((6,), (6,)),
               ((7, 6), (3, 4)), ((5, 8), (5, 3)), ((4, 5, 6), (3, 2, 3))]


@pytest.mark.parametrize("mode", ["full", "same", "valid"])
@pytest.mark.parametrize("xs,ks", CONV_SHAPES)
def test_fft_convolve_matches_scipy(xs, ks, mode):
    x, k = rng_array(*xs, seed=1), rng_array(*ks, seed=2)
    y = fft_convolve(torch.from_numpy(x), torch.from_numpy(k), mode=mode)
    assert rel_err(y, ssig.fftconvolve(x, k, mode=mode)) < 1e-10
    # batched x, shared kernel; and batched x with a batched kernel (broadcast)
    xb, kb = rng_array(3, *xs, seed=3), rng_array(3, *ks, seed=4)
    axes = tuple(range(1, 1 + len(xs)))
    yb = fft_convolve(torch.from_numpy(xb), torch.from_numpy(k), mode=mode)
    assert rel_err(yb, ssig.fftconvolve(xb, k[None], mode=mode, axes=axes)) < 1e-10
    ybb = fft_convolve(torch.from_numpy(xb), torch.from_numpy(kb), mode=mode, dims=len(xs))
    assert rel_err(ybb, ssig.fftconvolve(xb, kb, mode=mode, axes=axes)) < 1e-10


def test_fft_convolve_complex_and_float32():
    x, k = rng_array(2, 7, 5, seed=5, complex_=True), rng_array(3, 2, seed=6)
    y = fft_convolve(torch.from_numpy(x), torch.from_numpy(k), "same")
    assert y.dtype == torch.complex128
    assert rel_err(y, ssig.fftconvolve(x, k[None], mode="same", axes=(1, 2))) < 1e-10
    y32 = fft_convolve(torch.from_numpy(x.real).float(), torch.from_numpy(k).float(), "full", dims=2)
    assert y32.dtype == torch.float32
    assert rel_err(y32, ssig.fftconvolve(x.real, k[None], mode="full", axes=(1, 2))) < 1e-5


def _circular_direct(x: np.ndarray, k: np.ndarray, dims: int) -> np.ndarray:
    out = np.zeros(np.broadcast_shapes(x.shape[:-dims], k.shape[:-dims]) + x.shape[-dims:], dtype=np.result_type(x, k))
    axes = tuple(range(-dims, 0))
    for j in np.ndindex(*k.shape[-dims:]):
        out = out + k[(...,) + j][(...,) + (None,) * dims] * np.roll(x, j, axis=axes)
    return out


@pytest.mark.parametrize("xs,ks", [((8,), (3,)), ((7,), (7,)), ((6, 5), (3, 2)), ((4, 5, 3), (2, 3, 3))])
def test_fft_convolve_circular(xs, ks):
    x, k = rng_array(2, *xs, seed=7), rng_array(*ks, seed=8)
    y = fft_convolve(torch.from_numpy(x), torch.from_numpy(k), "circular", dims=len(xs))
    assert y.shape == x.shape
    assert rel_err(y, _circular_direct(x, k, len(xs))) < 1e-12


def test_fft_convolve_errors():
    x, k = torch.ones(5, 5), torch.ones(3, 3)
    with pytest.raises(ValueError, match="mode must be"):
        fft_convolve(x, k, mode="wrap")
    with pytest.raises(ValueError, match="dims must be"):
        fft_convolve(x, k, dims=4)
    with pytest.raises(ValueError, match="pass dims="):
        fft_convolve(torch.ones(2, 2, 5, 5), torch.ones(2, 2, 3, 3))
    with pytest.raises(ValueError, match="no larger than x"):
        fft_convolve(k, x, "circular")
    with pytest.raises(ValueError, match="valid mode"):
        fft_convolve(torch.ones(5, 2), torch.ones(2, 5), "valid")
    with pytest.raises(TypeError, match="kernel must be"):
        fft_convolve(x, torch.ones(3, 3, dtype=torch.int64))


# ================================================================================================
# CUDA agrees with the CPU
# ================================================================================================
@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    dev = torch.device("cuda")
    x = torch.from_numpy(rng_array(3, 9, 8, seed=30))
    for f in (dct, idct, dst, idst):
        for type_ in (1, 2, 3, 4):
            for dtype, tol in ((torch.float64, 1e-12), (torch.float32, 1e-5)):
                y = f(x.to(dev, dtype), type_, 1, "ortho")
                assert y.device.type == "cuda"
                assert rel_err(y, f(x.to(dtype), type_, 1, "ortho")) < tol
    for shape, bc, h in POISSON_CASES:
        D = len(shape)
        f = torch.from_numpy(rng_array(2, *shape, seed=31))
        for shift in (0.0, -3.0 + 1j):
            got = poisson_solve(f.to(dev), h, bc, shift, ndim=D)
            assert got.device.type == "cuda"
            assert rel_err(got, poisson_solve(f, h, bc, shift, ndim=D)) < 1e-10
    M = laplacian_inverse((5, 6), 0.2, ("neumann", "dirichlet"), device=dev)
    assert check_adjoint(M) < 1e-13
    a, k = torch.from_numpy(rng_array(2, 9, 7, seed=32)), torch.from_numpy(rng_array(3, 4, seed=33))
    for mode in ("full", "same", "valid", "circular"):
        assert rel_err(fft_convolve(a.to(dev), k.to(dev), mode), fft_convolve(a, k, mode)) < 1e-12
