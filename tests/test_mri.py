"""Multi-coil Cartesian MRI (`sciml.operators.mri`): FFTs, SENSE operator, masks, coil maps, CG-SENSE.

Thresholds on reconstruction/estimation errors are measured values (in comments) with margin.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import sciml
from sciml.operators import check_adjoint
from sciml.operators.mri import (
    MultiCoilMRI,
    birdcage_sensitivities,
    estimate_sensitivities,
    fft2c,
    gaussian_lines_mask,
    ifft2c,
    mask_acceleration,
    poisson_disc_mask,
    radial_mask,
    rss,
    shepp_logan,
    smoothed_phase,
    uniform_lines_mask,
    zero_filled,
)

N = 64


def crandn(*shape, seed=0, dtype=torch.complex128):
    g = torch.Generator().manual_seed(seed)
    real = dtype.to_real()
    return torch.complex(torch.randn(shape, generator=g, dtype=real), torch.randn(shape, generator=g, dtype=real))


def rel(a, b) -> float:
    return float(torch.linalg.vector_norm(a - b) / torch.linalg.vector_norm(b))


def dot_test(A, x, y) -> float:
    lhs = torch.vdot(A.apply(x).flatten(), y.flatten())
    rhs = torch.vdot(x.flatten(), A.adjoint(y).flatten())
    return float(abs(lhs - rhs) / (A.apply(x).norm() * y.norm()))


# --- FFTs ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.complex64, torch.complex128])
def test_fft2c_unitary_and_matches_numpy(dtype):
    x = crandn(3, 2, 12, 9, dtype=dtype)  # odd and even sizes
    k = fft2c(x)
    tol = 1e-5 if dtype == torch.complex64 else 1e-12
    assert k.dtype == dtype and k.shape == x.shape
    assert abs(float(k.norm() / x.norm()) - 1) < tol
    assert rel(ifft2c(k), x) < tol
    assert rel(fft2c(ifft2c(x)), x) < tol
    xn = x.numpy()
    ref = np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(xn, axes=(-2, -1)), norm="ortho"), axes=(-2, -1))
    assert np.abs(k.numpy() - ref).max() / np.abs(ref).max() < tol
    # the DC sample of a constant image sits at (H // 2, W // 2)
    c = fft2c(torch.ones(12, 9, dtype=dtype))
    assert c[6, 4].abs() == pytest.approx(math.sqrt(12 * 9), rel=1e-5) and c.abs().sum() == pytest.approx(math.sqrt(108), rel=1e-5)


# --- the operator ----------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(12, 10), (7, 9)])
def test_operator_is_its_definition_with_numpy_shifts(shape):
    """A x = M * fftshift(fft2(ifftshift(S_c x))) with numpy's shifts (the operator folds the shifts into
    its maps and mask as phase ramps), also after `.to(complex64)`; A^H y = sum_c conj(S_c) F^H(M y_c)."""
    H, W = shape
    S = birdcage_sensitivities((H, W), 4)
    mask = uniform_lines_mask((H, W), 2, seed=1)
    A = MultiCoilMRI(S, mask)
    x, y = crandn(2, H, W, dtype=torch.complex128), crandn(2, 4, H, W, dtype=torch.complex128)
    m, Sn = mask.numpy().astype(float), S.numpy()
    ref = m * np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(Sn * x.numpy()[:, None], axes=(-2, -1)), norm="ortho"),
                              axes=(-2, -1))
    back = (Sn.conj() * np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(m * y.numpy(), axes=(-2, -1)), norm="ortho"),
                                        axes=(-2, -1))).sum(1)
    assert np.abs(A.apply(x).numpy() - ref).max() < 1e-13
    assert np.abs(A.adjoint(y).numpy() - back).max() < 1e-13
    A32 = A.to(dtype=torch.complex64)
    assert np.abs(A32.apply(x.to(torch.complex64)).numpy() - ref).max() < 1e-5


def test_adjoint_complex128_shared_and_per_sample_maps():
    S = birdcage_sensitivities((N, N), 8)
    mask = uniform_lines_mask((N, N), 4, seed=0)
    A = MultiCoilMRI(S, mask)
    assert A.in_shape == (N, N) and A.out_shape == (8, N, N) and A.dtype == torch.complex128
    err = check_adjoint(A, generator=torch.Generator().manual_seed(0))
    assert err <= 1e-12  # measured ~4e-17
    # batched images, shared maps, line mask (W,)
    A1 = MultiCoilMRI(S, uniform_lines_mask(N, 4, seed=0))
    assert dot_test(A1, crandn(3, N, N, seed=1), crandn(3, 8, N, N, seed=2)) <= 1e-12
    # per-sample maps (B, C, H, W): each sample uses its own maps
    Sb = torch.stack([S, S.roll(1, dims=0), birdcage_sensitivities((N, N), 8, coil_radius=1.3)])
    Ab = MultiCoilMRI(Sb, poisson_disc_mask((N, N), 4, seed=0))
    x = crandn(3, N, N, seed=3)
    assert dot_test(Ab, x, crandn(3, 8, N, N, seed=4)) <= 1e-12
    assert torch.allclose(Ab.apply(x)[1], MultiCoilMRI(Sb[1], Ab.mask).apply(x[1]))


def test_complex64_and_to():
    S = birdcage_sensitivities((N, N), 4, dtype=torch.complex64)
    A = MultiCoilMRI(S, gaussian_lines_mask((N, N), 4, seed=0))
    assert A.dtype == torch.complex64 and check_adjoint(A) < 1e-5
    B = A.to(dtype=torch.float64)  # real dtype request keeps the operator complex
    assert B.dtype == torch.complex128 and B.sensitivities.dtype == torch.complex128 and B.mask.dtype == torch.float64
    assert check_adjoint(B) <= 1e-12


def test_full_mask_normal_is_identity_and_single_coil():
    S = birdcage_sensitivities((N, N), 8)
    assert torch.allclose((S.abs() ** 2).sum(0), torch.ones(N, N, dtype=torch.float64), atol=1e-12)
    A = MultiCoilMRI(S, torch.ones(N, N, dtype=torch.bool))
    x = crandn(2, N, N, seed=5)
    assert rel(A.normal().apply(x), x) < 1e-12
    assert rel(A.H @ (A @ x), x) < 1e-12
    # single coil, S = 1: A = masked centred FFT
    m = uniform_lines_mask((N, N), 2, seed=1)
    A1 = MultiCoilMRI(torch.ones(1, N, N, dtype=torch.complex128), m.float())
    assert torch.allclose(A1(x)[:, 0], m * fft2c(x))
    assert A1.acceleration == pytest.approx(2.0)


def test_errors():
    S = birdcage_sensitivities((N, N), 4)
    m = uniform_lines_mask((N, N), 4, seed=0)
    with pytest.raises(ValueError, match="mask of shape"):
        MultiCoilMRI(S, torch.ones(N, N + 1, dtype=torch.bool))
    with pytest.raises(ValueError, match="mask of shape"):
        MultiCoilMRI(S, torch.ones(N - 1, dtype=torch.bool))
    with pytest.raises(ValueError, match="sensitivities"):
        MultiCoilMRI(S[0], m)
    with pytest.raises(ValueError, match="complex"):
        MultiCoilMRI(S, m.to(torch.complex64))
    with pytest.raises(ValueError, match="0 and 1"):
        MultiCoilMRI(S, 2.0 * m)
    A = MultiCoilMRI(S, m)
    with pytest.raises(ValueError, match="x must be complex"):
        A.apply(torch.randn(N, N, dtype=torch.float64))
    with pytest.raises(ValueError, match="y must be complex"):
        A.adjoint(torch.randn(4, N, N, dtype=torch.float64))
    with pytest.raises(ValueError, match="x has shape"):
        A.apply(crandn(N, N - 1))
    with pytest.raises(ValueError, match="y has shape"):
        A.adjoint(crandn(3, N, N))
    with pytest.raises(ValueError, match="ACS"):
        uniform_lines_mask(N, 8, center_fraction=0.25)
    with pytest.raises(ValueError, match="calibration"):
        poisson_disc_mask((N, N), 8, calib=40)


# --- masks -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("fn", [uniform_lines_mask, gaussian_lines_mask])
@pytest.mark.parametrize("acc", [2, 4, 6, 8])
def test_line_masks(fn, acc):
    W, cf = 100, 0.08
    m = fn((N, W), acc, cf, seed=3)
    assert m.dtype == torch.bool and m.shape == (N, W)
    assert (m == m[:1]).all()  # lines: every row alike
    n = round(W / acc)
    assert int(m[0].sum()) == n  # exactly round(W / acc) lines ...
    assert abs(mask_acceleration(m) - acc) <= acc / n + 1e-12  # ... so within rounding of the request
    n_c = round(W * cf)
    assert m[0, W // 2 - n_c // 2: W // 2 - n_c // 2 + n_c].all()  # ACS block
    assert torch.equal(m, fn((N, W), acc, cf, seed=3))
    assert torch.equal(m, fn((N, W), acc, cf, generator=torch.Generator().manual_seed(3)))
    assert not torch.equal(m, fn((N, W), acc, cf, seed=4))
    assert torch.equal(m[0], fn(W, acc, cf, seed=3))


def test_gaussian_lines_concentrate_at_centre():
    W = 256
    m = gaussian_lines_mask(W, 4, 0.04, seed=0)
    k = (torch.arange(W) - W // 2).abs()
    assert m[k < W // 8].float().mean() > 3 * m[k >= W // 4].float().mean()


def test_equispaced_lines():
    m = uniform_lines_mask((N, N), 4, 0.08, equispaced=True, seed=0)
    assert abs(mask_acceleration(m) - 4) < 0.5
    assert m[0, N // 2 - 2: N // 2 + 3].all()


@pytest.mark.parametrize("acc", [3, 4, 8])
def test_poisson_disc_mask(acc):
    m = poisson_disc_mask((N, N), acc, calib=12, seed=0)
    assert m.dtype == torch.bool and m.shape == (N, N)
    assert abs(mask_acceleration(m) - acc) / acc <= 0.05  # the stated tolerance (tol=0.05)
    assert m[N // 2 - 6: N // 2 + 6, N // 2 - 6: N // 2 + 6].all()
    assert torch.equal(m, poisson_disc_mask((N, N), acc, calib=12, seed=0))
    assert not torch.equal(m, poisson_disc_mask((N, N), acc, calib=12, seed=1))
    yy, xx = torch.meshgrid(torch.arange(N) - N // 2, torch.arange(N) - N // 2, indexing="ij")
    r = torch.sqrt(yy.double() ** 2 + xx.double() ** 2)
    ring_in, ring_out = (r >= 8) & (r < 16), r >= 24
    assert m[ring_in].float().mean() > 1.5 * m[ring_out].float().mean()  # variable density


def test_radial_mask():
    m8, m32 = radial_mask((N, N), 8), radial_mask((N, N), 32)
    assert m8.dtype == torch.bool and m8[N // 2, N // 2]
    assert m8[N // 2].all() and m8[:, N // 2].sum() >= N - 1  # the 0 and 90 degree spokes
    assert mask_acceleration(m8) > 2 * mask_acceleration(m32) > 2
    assert torch.equal(m8, radial_mask((N, N), 8))
    assert mask_acceleration(radial_mask((N, N), 8, golden_angle=True)) > 4


# --- reconstruction --------------------------------------------------------------------------------
def simulate(mask, noise_std, seed=0):
    S = birdcage_sensitivities((N, N), 8)
    A = MultiCoilMRI(S, mask)
    x = shepp_logan(N).to(torch.complex128)
    y = A(x) + noise_std * mask * crandn(8, N, N, seed=seed) / math.sqrt(2)
    return A, S, x, y


@pytest.mark.parametrize("equispaced, cg_max, ratio", [(False, 0.45, 0.75), (True, 0.30, 0.5)])
def test_cg_sense_beats_zero_filled(equispaced, cg_max, ratio):
    mask = uniform_lines_mask((N, N), 4, 0.08, equispaced=equispaced, seed=0)
    A, S, x, y = simulate(mask, 1e-3)
    zf = rel(zero_filled(y, S), x)
    sol = sciml.solve(sciml.InverseProblem(A, y, noise_std=1e-3), "cg", rtol=1e-6, maxiter=60)
    err = rel(sol.x, x)
    # measured (seed 0): random lines zf 0.633 -> CG 0.396; equispaced zf 0.618 -> CG 0.252.
    # (Random lines leave high-frequency gaps wider than the smooth maps' k-space support.)
    assert zf > 0.55
    assert err < cg_max and err < ratio * zf
    # the same with magnitude (RSS) zero filling
    assert rel(zero_filled(y), x.abs()) > err


def test_estimate_sensitivities():
    S = birdcage_sensitivities((N, N), 8)
    x = shepp_logan(N).to(torch.complex128)
    obj = shepp_logan(N) > 0
    full = fft2c(S * x)
    Se = estimate_sensitivities(full, 24)
    assert Se.shape == S.shape
    err = float((Se - S)[:, obj].norm() / S[:, obj].norm())
    assert err < 0.05  # measured 0.028 (calib 24x24 of 64x64)
    # from the ACS block of a 3x lines mask (16 fully sampled centre lines, all rows)
    mask = uniform_lines_mask((N, N), 3, 0.25, seed=0)
    y = MultiCoilMRI(S, mask)(x)
    Se2 = estimate_sensitivities(y, (24, 16), mask=mask)
    err2 = float((Se2 - S)[:, obj].norm() / S[:, obj].norm())
    assert err2 < 0.07  # measured 0.041
    assert torch.allclose(rss(Se2, dim=0)[obj], torch.ones(()).double(), atol=1e-6)
    with pytest.raises(ValueError, match="not fully sampled"):
        estimate_sensitivities(y, (24, 24), mask=mask)
    # CG-SENSE with the estimated maps still beats zero filling
    A = MultiCoilMRI(Se2, mask)
    sol = sciml.solve(sciml.InverseProblem(A, y), "cg", rtol=1e-6, maxiter=30)
    assert rel(sol.x, x) < rel(zero_filled(y, Se2), x)


def test_rss_and_zero_filled_full_mask():
    S = birdcage_sensitivities((N, N), 6)
    x = crandn(N, N, seed=7)
    A = MultiCoilMRI(S, torch.ones(N, dtype=torch.bool))
    y = A(x)
    assert torch.allclose(zero_filled(y), x.abs(), atol=1e-12)  # rss of S x = |x| when sum |S|^2 = 1
    assert torch.allclose(zero_filled(y, S), x, atol=1e-12)
    assert torch.allclose(rss(S, dim=0), torch.ones(N, N, dtype=torch.float64))


def test_smoothed_phase_follows_a_smooth_phase_and_falls_back_in_the_dark():
    H = W = 64
    yy, xx = torch.meshgrid(torch.arange(H, dtype=torch.float64), torch.arange(W, dtype=torch.float64), indexing="ij")
    phi = 0.025 * xx - 0.0125 * yy + 1e-4 * (xx - 32) ** 2  # the slopes of the MRI benchmarks, plus a curvature
    mag = shepp_logan(H).double()
    g = torch.Generator().manual_seed(0)
    noise = 0.01 * torch.complex(torch.randn(H, W, generator=g, dtype=torch.float64),
                                 torch.randn(H, W, generator=g, dtype=torch.float64))
    x = (mag * torch.polar(torch.ones_like(phi), phi) + noise).expand(2, H, W)
    fallback = torch.polar(torch.ones_like(phi), phi + 0.5)  # e.g. a calibration phase 0.5 rad off
    rot = smoothed_phase(x, 2.0, fallback)
    assert rot.shape == (2, H, W) and torch.allclose(rot.abs(), torch.ones((), dtype=torch.float64), atol=1e-12)
    # inside the object (away from its edge) the phase is the image's: a smooth field survives smoothing
    inner = torch.nn.functional.max_pool2d((mag < 0.05).double()[None, None], 9, 1, 4)[0, 0] == 0
    assert int(inner.sum()) > 300
    err = (rot[0] * torch.polar(torch.ones_like(phi), -phi)).angle().abs()[inner]
    assert float(err.mean()) < 0.1 and float(err.max()) < 0.2  # measured 0.046, 0.066 (the fallback: 0.5)
    # outside the object, beyond the smoothing's reach (10 pixels): the fallback's phase (noiseless image)
    outside = torch.nn.functional.max_pool2d((mag > 0).double()[None, None], 21, 1, 10)[0, 0] == 0
    assert int(outside.sum()) > 20
    rot = smoothed_phase(mag * torch.polar(torch.ones_like(phi), phi), 2.0, fallback)
    assert float((rot[outside] * fallback[outside].conj()).angle().abs().max()) < 1e-9
