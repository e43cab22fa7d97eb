"""Imaging operators (sciml.operators.imaging, sciml.operators.mimo): blur, compressed sensing, near-field MIMO."""
import math

import numpy as np
import pytest
import scipy.fft
import scipy.ndimage
import scipy.signal
import torch

from helpers import gen, randn
from sciml.operators import (
    Blur,
    CompressedSensing,
    NearFieldMIMO,
    check_adjoint,
    gaussian_kernel,
    motion_kernel,
    uniform_kernel,
)
from sciml.operators.imaging import CS_KINDS

SAME_MODES = {"circular": "wrap", "zero": "constant", "reflect": "reflect", "mirror": "mirror", "nearest": "nearest"}
PADDINGS = (*SAME_MODES, "valid", "full")


def _tol(dtype):
    return 1e-12 if dtype in (torch.float64, torch.complex128) else 1e-5


# ================================================================================================
# Blur
# ================================================================================================
@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.complex128, torch.float32, torch.complex64])
@pytest.mark.parametrize("ksize", [(3, 5), (4, 2)])
def test_blur_adjoint(padding, dtype, ksize):
    kernel = randn(*ksize, dtype=dtype, seed=1)
    A = Blur(kernel, (9, 10), padding)
    assert check_adjoint(A, generator=gen(2)) < (1e-10 if _tol(dtype) < 1e-6 else 1e-5)


@pytest.mark.parametrize("padding", list(SAME_MODES))
@pytest.mark.parametrize("ksize", [(3, 5), (4, 2), (1, 6)])
def test_blur_matches_scipy_ndimage(padding, ksize):
    x, k = randn(2, 9, 10, seed=3), randn(*ksize, seed=4)
    y = Blur(k, (9, 10), padding)(x)
    for b in range(2):
        ref = scipy.ndimage.convolve(x[b].numpy(), k.numpy(), mode=SAME_MODES[padding])
        np.testing.assert_allclose(y[b].numpy(), ref, atol=1e-12, rtol=0)


@pytest.mark.parametrize("mode", ["valid", "full", "zero"])
def test_blur_matches_scipy_signal(mode):
    x, k = randn(9, 10, seed=5), randn(3, 5, seed=6)   # odd kernel: "zero" is fftconvolve "same"
    ref = scipy.signal.fftconvolve(x.numpy(), k.numpy(), mode={"zero": "same"}.get(mode, mode))
    np.testing.assert_allclose(Blur(k, (9, 10), mode)(x).numpy(), ref, atol=1e-12, rtol=0)


def test_blur_1d_3d_and_complex_match_scipy():
    x1, k1 = randn(12, seed=7), randn(4, seed=8)
    np.testing.assert_allclose(Blur(k1, 12, "reflect")(x1).numpy(),
                               scipy.ndimage.convolve1d(x1.numpy(), k1.numpy(), mode="reflect"), atol=1e-12)
    x3, k3 = randn(5, 6, 7, seed=9), randn(3, 2, 3, seed=10)
    A3 = Blur(k3, (5, 6, 7), "circular")
    np.testing.assert_allclose(A3(x3).numpy(), scipy.ndimage.convolve(x3.numpy(), k3.numpy(), mode="wrap"), atol=1e-12)
    assert check_adjoint(A3, generator=gen(0)) < 1e-12
    xc, kc = randn(8, 9, dtype=torch.complex128, seed=11), randn(3, 3, dtype=torch.complex128, seed=12)
    ref = scipy.signal.fftconvolve(xc.numpy(), kc.numpy(), mode="same")
    np.testing.assert_allclose(Blur(kc, (8, 9), "zero")(xc).numpy(), ref, atol=1e-12)
    # a real kernel blurring complex images = blurring real and imaginary parts
    k = gaussian_kernel(1.0)
    A = Blur(k, (8, 9), "reflect", dtype=torch.complex128)
    Ar = Blur(k, (8, 9), "reflect")
    torch.testing.assert_close(A(xc), torch.complex(Ar(xc.real), Ar(xc.imag)), rtol=0, atol=1e-13)


@pytest.mark.parametrize("padding", ["circular", "zero", "reflect", "full"])
def test_blur_of_delta_is_kernel(padding):
    k = randn(5, 3, seed=13)
    x = torch.zeros(11, 12, dtype=torch.float64)
    x[5, 6] = 1.0
    y = Blur(k, (11, 12), padding)(x)
    if padding == "full":
        torch.testing.assert_close(y[5:10, 6:9], k, rtol=0, atol=1e-13)
    else:   # the kernel centre (2, 1) lands on the delta
        torch.testing.assert_close(y[3:8, 5:8], k, rtol=0, atol=1e-13)
    assert abs(float(y.sum() - k.sum())) < 1e-12


def test_blur_batched_equals_loop_and_large_kernel():
    k = motion_kernel(5.0, 0.3)
    A = Blur(k, (8, 8), "mirror")
    x = randn(2, 3, 8, 8, seed=14)
    y = A(x)
    assert y.shape == (2, 3, 8, 8)
    for i in range(2):
        for j in range(3):
            torch.testing.assert_close(y[i, j], A(x[i, j]), rtol=0, atol=1e-14)
    big = Blur(randn(11, 13, seed=15), (6, 7), "circular")    # kernel larger than the image: wraps repeatedly
    xb = randn(6, 7, seed=16)
    np.testing.assert_allclose(big(xb).numpy(), scipy.ndimage.convolve(xb.numpy(), big.kernel.numpy(), mode="wrap"),
                               atol=1e-12)
    assert check_adjoint(big, generator=gen(1)) < 1e-12
    # scipy.ndimage mode names are aliases
    torch.testing.assert_close(Blur(k, (8, 8), "wrap")(x), Blur(k, (8, 8), "circular")(x), rtol=0, atol=0)
    torch.testing.assert_close(Blur(k, (8, 8), "constant")(x), Blur(k, (8, 8), "zero")(x), rtol=0, atol=0)


def test_kernels():
    g = gaussian_kernel(1.5)
    assert g.shape == (13, 13) and abs(float(g.sum()) - 1) < 1e-14
    torch.testing.assert_close(g, g.flip(0).flip(1).mT)
    x = randn(20, 21, seed=17)
    np.testing.assert_allclose(Blur(g, (20, 21), "reflect")(x).numpy(),
                               scipy.ndimage.gaussian_filter(x.numpy(), 1.5), atol=1e-12)
    np.testing.assert_allclose(Blur(gaussian_kernel((1.0, 2.0)), (20, 21), "nearest")(x).numpy(),
                               scipy.ndimage.gaussian_filter(x.numpy(), (1.0, 2.0), mode="nearest"), atol=1e-12)
    assert gaussian_kernel(1.0, 5, ndim=3).shape == (5, 5, 5)
    u = uniform_kernel(3)
    np.testing.assert_allclose(Blur(u, (20, 21), "reflect")(x).numpy(), scipy.ndimage.uniform_filter(x.numpy(), 3),
                               atol=1e-12)
    assert uniform_kernel((2, 4)).shape == (2, 4) and abs(float(uniform_kernel((2, 4)).sum()) - 1) < 1e-15
    for length, angle in ((7.0, 0.0), (6.0, math.pi / 2), (9.0, 0.7)):
        m = motion_kernel(length, angle)
        assert m.shape[0] == m.shape[1] and m.shape[0] % 2 == 1 and abs(float(m.sum()) - 1) < 1e-14
        assert float(m.min()) >= 0
        torch.testing.assert_close(m, m.flip((0, 1)))
    h = motion_kernel(7.0, 0.0)       # horizontal: only the centre row is non-zero
    c = h.shape[0] // 2
    assert float(h[c].sum()) > 1 - 1e-12 and float(h[c, c - 3:c + 4].min()) > 0.1
    torch.testing.assert_close(motion_kernel(6.0, math.pi / 2), motion_kernel(6.0, 0.0).mT)


def test_blur_errors():
    k = torch.ones(3, 3, dtype=torch.float64) / 9
    with pytest.raises(ValueError, match="padding"):
        Blur(k, (8, 8), "periodic")
    with pytest.raises(ValueError, match="image_shape"):
        Blur(k, (8, 8, 8))
    with pytest.raises(ValueError, match="kernel"):
        Blur(torch.ones(2, 2, 2, 2), (4, 4, 4, 4))
    with pytest.raises(TypeError, match="kernel"):
        Blur([[1.0]], (4, 4))
    with pytest.raises(ValueError, match="valid"):
        Blur(torch.ones(5, 5), (4, 8), "valid")
    with pytest.raises(ValueError, match="dtype"):
        Blur(k.to(torch.complex128), (8, 8), dtype=torch.float64)
    A = Blur(k, (8, 8))
    with pytest.raises(ValueError, match="complex"):
        A(torch.zeros(8, 8, dtype=torch.complex128))
    with pytest.raises(ValueError, match="shape"):
        A(torch.zeros(8, 7, dtype=torch.float64))
    with pytest.raises(ValueError, match="shape"):
        A.adjoint(torch.zeros(7, 8, dtype=torch.float64))
    with pytest.raises(ValueError, match="sigma"):
        gaussian_kernel(0.0)
    with pytest.raises(ValueError, match="size"):
        gaussian_kernel(1.0, size=4)
    with pytest.raises(ValueError, match="size"):
        uniform_kernel(0)
    with pytest.raises(ValueError, match="length"):
        motion_kernel(-1.0)


# ================================================================================================
# Compressed sensing
# ================================================================================================
@pytest.mark.parametrize("kind", CS_KINDS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.complex128, torch.float32, torch.complex64])
def test_cs_adjoint_and_dense(kind, dtype):
    if kind == "subsampled-fft" and not dtype.is_complex:
        pytest.skip("subsampled-fft is complex only")
    A = CompressedSensing(20, (6, 7), kind, seed=3, dtype=dtype)
    assert A.out_shape == (20,) and A.in_shape == (6, 7)
    assert check_adjoint(A, generator=gen(4)) < (1e-10 if _tol(dtype) < 1e-6 else 1e-5)
    x = randn(3, 6, 7, dtype=dtype, seed=5)
    M = A.to_dense()
    torch.testing.assert_close(A(x), x.reshape(3, 42) @ M.mT, rtol=0, atol=_tol(dtype) * 10)
    if kind in ("gaussian", "rademacher"):
        torch.testing.assert_close(M, A.matrix)


def test_cs_structured_matrix_and_scaling():
    N, m = 42, 14
    for kind, T in (("subsampled-dct", scipy.fft.dct(np.eye(N), norm="ortho", axis=0)),
                    ("subsampled-fft", scipy.fft.fft(np.eye(N), norm="ortho", axis=0))):
        A = CompressedSensing(m, (6, 7), kind, seed=1)
        ref = math.sqrt(N / m) * T[A.rows.numpy()] * A.signs.numpy()[None, :]
        np.testing.assert_allclose(A.to_dense().numpy(), ref, atol=1e-13)
        AAH = A.to_dense() @ A.to_dense().mH
        torch.testing.assert_close(AAH, (N / m) * torch.eye(m, dtype=AAH.dtype), rtol=0, atol=1e-12)
        diag = torch.linalg.vector_norm(A.to_dense(), dim=0) ** 2
        assert abs(float(diag.mean()) - 1) < 1e-12
    # dense kinds: E[A^H A] = I; the diagonal of A^H A averages to 1 (N = 1024 columns of m = 64 entries)
    for kind in ("gaussian", "rademacher"):
        for dtype in (torch.float64, torch.complex128):
            A = CompressedSensing(64, (32, 32), kind, seed=7, dtype=dtype)
            diag = torch.linalg.vector_norm(A.matrix, dim=0) ** 2
            assert abs(float(diag.mean()) - 1) < 0.02
            assert abs(float(A.matrix.abs().pow(2).mean()) * 64 - 1) < 0.02
            gram = A.matrix.mH @ A.matrix
            off = gram - torch.diag(torch.diagonal(gram))
            assert float(off.abs().pow(2).mean()) < 2.0 / 64      # off-diagonal entries: variance 1/m


def test_cs_reproducible_batched_errors():
    for kind in CS_KINDS:
        dtype = torch.complex128 if kind == "subsampled-fft" else torch.float64
        A, B = CompressedSensing(10, 30, kind, seed=11, dtype=dtype), CompressedSensing(10, 30, kind, seed=11, dtype=dtype)
        C = CompressedSensing(10, 30, kind, generator=torch.Generator().manual_seed(11), dtype=dtype)
        D = CompressedSensing(10, 30, kind, seed=12, dtype=dtype)
        torch.testing.assert_close(A.to_dense(), B.to_dense(), rtol=0, atol=0)
        torch.testing.assert_close(A.to_dense(), C.to_dense(), rtol=0, atol=0)
        assert not torch.allclose(A.to_dense(), D.to_dense())
        x = randn(2, 4, 30, dtype=dtype, seed=1)
        y = A(x)
        assert y.shape == (2, 4, 10)
        torch.testing.assert_close(y[1, 2], A(x[1, 2]), rtol=0, atol=1e-13)
        torch.testing.assert_close(A.adjoint(y)[0, 3], A.adjoint(y[0, 3]), rtol=0, atol=1e-13)
    # float32 operator from the same seed: the same matrix, rounded
    A64, A32 = CompressedSensing(5, 9, seed=2), CompressedSensing(5, 9, seed=2, dtype=torch.float32)
    torch.testing.assert_close(A32.matrix.double(), A64.matrix, rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match="m "):
        CompressedSensing(-3, 10)
    with pytest.raises(ValueError, match="m "):
        CompressedSensing(0, 10)
    with pytest.raises(ValueError, match="kind"):
        CompressedSensing(3, 10, "bernoulli")
    with pytest.raises(ValueError, match="m=11 exceeds N=10"):
        CompressedSensing(11, 10, "subsampled-dct")
    with pytest.raises(ValueError, match="complex dtype"):
        CompressedSensing(3, 10, "subsampled-fft", dtype=torch.float64)
    with pytest.raises(ValueError, match="either generator or seed"):
        CompressedSensing(3, 10, seed=1, generator=torch.Generator())
    with pytest.raises(ValueError, match="in_shape"):
        CompressedSensing(3, (4, 0))
    A = CompressedSensing(3, (2, 5))
    with pytest.raises(ValueError, match="complex"):
        A(torch.zeros(2, 5, dtype=torch.complex128))
    with pytest.raises(ValueError, match="shape"):
        A(torch.zeros(10, dtype=torch.float64))
    with pytest.raises(ValueError, match="dtype"):
        A(torch.zeros(2, 5, dtype=torch.float32))


# ================================================================================================
# Near-field MIMO
# ================================================================================================
def _tiny(dtype=torch.complex128):
    freqs = [5e9, 7.5e9]
    tx = [[-0.1, 0.1, 0.0], [0.1, -0.1, 0.0], [0.0, 0.05, 0.01]]
    rx = [[-0.1, -0.1, 0.0], [0.1, 0.1, 0.0]]
    xs, ys, zs = [-0.05, 0.0, 0.05], [-0.04, 0.0, 0.06], [0.3, 0.35, 0.4, 0.45]
    return NearFieldMIMO(freqs, tx, rx, xs, ys, zs, dtype=dtype), (freqs, tx, rx, xs, ys, zs)


def _dense_reference(freqs, tx, rx, xs, ys, zs, c=299_792_458.0):
    """The formula evaluated entry by entry in numpy: (F, T, S, nx, ny, nz)."""
    F, T, S = len(freqs), len(tx), len(rx)
    A = np.zeros((F, T, S, len(xs), len(ys), len(zs)), dtype=np.complex128)
    for k in range(F):
        kappa = 2 * np.pi * freqs[k] / c
        for t in range(T):
            for s in range(S):
                for i, xv in enumerate(xs):
                    for j, yv in enumerate(ys):
                        for l, zv in enumerate(zs):
                            r = np.array([xv, yv, zv])
                            rt, rs = np.linalg.norm(r - tx[t]), np.linalg.norm(r - rx[s])
                            A[k, t, s, i, j, l] = np.exp(-1j * kappa * (rt + rs)) / (4 * np.pi * rt * rs)
    return A


def test_mimo_matches_dense_formula_and_blocks():
    A, geo = _tiny()
    assert A.in_shape == (3, 3, 4) and A.out_shape == (2, 3, 2)
    D = _dense_reference(*geo).reshape(12, 36)
    np.testing.assert_allclose(A.to_dense().numpy(), D, rtol=1e-12, atol=1e-12 * np.abs(D).max())
    x = randn(36, dtype=torch.complex128, seed=1)
    y = D @ x.numpy()
    ref_norm = np.linalg.norm(y)
    assert np.linalg.norm(A(x.reshape(3, 3, 4)).reshape(-1).numpy() - y) < 1e-12 * ref_norm
    yy = randn(2, 3, 2, dtype=torch.complex128, seed=2)
    np.testing.assert_allclose(A.adjoint(yy).reshape(-1).numpy(), D.conj().T @ yy.reshape(-1).numpy(), rtol=1e-12)
    # no cache, tiny blocks (one frequency and a few voxels at a time): the same numbers
    B, _ = _tiny()
    B.cache_limit, B.block_elements = 0, 40
    torch.testing.assert_close(B(x.reshape(3, 3, 4)), A(x.reshape(3, 3, 4)), rtol=1e-13, atol=0)
    torch.testing.assert_close(B.adjoint(yy), A.adjoint(yy), rtol=1e-13, atol=0)
    assert B._cache == {}


@pytest.mark.parametrize("dtype", [torch.complex128, torch.complex64])
def test_mimo_adjoint(dtype):
    A, _ = _tiny(dtype)
    assert check_adjoint(A, generator=gen(0)) < (1e-12 if dtype == torch.complex128 else 1e-5)
    P = NearFieldMIMO.paper_setup(n_freq=3, voxels=(4, 5, 6), dtype=dtype)
    P.cache_limit = 0
    assert check_adjoint(P, generator=gen(1)) < (1e-12 if dtype == torch.complex128 else 1e-5)


def test_mimo_point_scatterer_and_batch():
    A, (freqs, tx, rx, xs, ys, zs) = _tiny()
    x = torch.zeros(3, 3, 4, dtype=torch.complex128)
    x[2, 0, 1] = 2 - 1j
    y = A(x)
    r = np.array([xs[2], ys[0], zs[1]])
    for k, f in enumerate(freqs):
        kappa = 2 * math.pi * f / 299_792_458.0
        for t in range(3):
            for s in range(2):
                rt, rs = np.linalg.norm(r - tx[t]), np.linalg.norm(r - rx[s])
                expected = (2 - 1j) * np.exp(-1j * kappa * (rt + rs)) / (4 * np.pi * rt * rs)
                assert abs(complex(y[k, t, s]) - expected) < 1e-13 * abs(expected)
    xb = randn(2, 3, 3, 3, 4, dtype=torch.complex128, seed=3)
    yb = A(xb)
    assert yb.shape == (2, 3, 2, 3, 2)
    xh = A.backprojection(yb)
    assert xh.shape == xb.shape
    for i in range(2):
        for j in range(3):
            torch.testing.assert_close(yb[i, j], A(xb[i, j]), rtol=1e-13, atol=0)
            torch.testing.assert_close(xh[i, j], A.adjoint(yb[i, j]), rtol=1e-13, atol=0)


def test_mimo_paper_setup_and_backprojection_focus():
    P = NearFieldMIMO.paper_setup()
    assert P.in_shape == (25, 25, 49) and P.out_shape == (20, 12, 13)
    torch.testing.assert_close(P.frequencies[[0, -1]], torch.tensor([4e9, 16e9], dtype=torch.float64))
    torch.testing.assert_close(P.tx_positions[0], torch.tensor([-0.15, 0.15, 0.0], dtype=torch.float64))
    torch.testing.assert_close(P.rx_positions[-1], torch.tensor([0.15, 0.15, 0.0], dtype=torch.float64))
    assert float(P.z_coords[0]) == 0.35 and abs(float(P.z_coords[-1]) - 0.65) < 1e-15
    # small grid: backprojecting a point target peaks at the target
    S = NearFieldMIMO.paper_setup(n_freq=10, voxels=(9, 9, 11))
    x = torch.zeros(9, 9, 11, dtype=torch.complex128)
    x[3, 6, 4] = 1
    bp = S.backprojection(S(x)).abs()
    assert tuple(int(i) for i in np.unravel_index(int(bp.argmax()), bp.shape)) == (3, 6, 4)


def test_mimo_errors():
    A, _ = _tiny()
    with pytest.raises(ValueError, match="complex"):
        A(torch.zeros(3, 3, 4, dtype=torch.float64))
    with pytest.raises(ValueError, match="shape"):
        A(torch.zeros(3, 4, 3, dtype=torch.complex128))
    with pytest.raises(ValueError, match="dtype"):
        A(torch.zeros(3, 3, 4, dtype=torch.complex64))
    with pytest.raises(ValueError, match="shape"):
        A.adjoint(torch.zeros(2, 2, 3, dtype=torch.complex128))
    with pytest.raises(ValueError, match="frequencies"):
        NearFieldMIMO([-1e9], [[0, 0, 0]], [[0, 0, 0]], [0], [0], [1])
    with pytest.raises(ValueError, match="tx_positions"):
        NearFieldMIMO([1e9], [[0, 0]], [[0, 0, 0]], [0], [0], [1])
    with pytest.raises(ValueError, match="coincides"):
        NearFieldMIMO([1e9], [[0, 0, 0]], [[0, 0, 1.0]], [0], [0], [1.0])
    with pytest.raises(TypeError, match="dtype"):
        NearFieldMIMO([1e9], [[0, 0, 0]], [[0, 0, 0]], [0], [0], [1], dtype=torch.float64)
    with pytest.raises(ValueError, match="voxels"):
        NearFieldMIMO.paper_setup(voxels=(4, 4))
    with pytest.raises(ValueError, match="n_freq"):
        NearFieldMIMO.paper_setup(n_freq=0)


def test_mimo_to_keeps_geometry():
    A, _ = _tiny()
    B = A.to(dtype=torch.complex64)
    assert B.dtype == torch.complex64 and B._r_tx.dtype == torch.float64
    x = randn(3, 3, 4, dtype=torch.complex128, seed=4)
    torch.testing.assert_close(B(x.to(torch.complex64)).to(torch.complex128), A(x), rtol=1e-5, atol=1e-7)
