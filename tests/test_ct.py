"""2-D CT operators (sciml.operators.ct): matched adjoints, analytic projections, FBP, sparse-view CG."""
import math

import pytest
import torch

import sciml
from sciml.operators import check_adjoint
from sciml.operators.ct import (
    FBP_FILTERS,
    FanBeamRadon,
    ParallelBeamRadon,
    fbp,
    limited_angle,
    shepp_logan,
    sparse_view_angles,
)


def _grid(n):
    c = torch.arange(n, dtype=torch.float64) - (n - 1) / 2
    y, x = torch.meshgrid(-c, c, indexing="ij")
    return x, y


def _disc(n, r, ss=8):
    """Centred disc of radius r pixels, area-averaged by ss x ss supersampling."""
    cs = (torch.arange(n * ss, dtype=torch.float64) + 0.5) / ss - 0.5 - (n - 1) / 2
    y, x = torch.meshgrid(-cs, cs, indexing="ij")
    return ((x**2 + y**2) <= r * r).double().reshape(n, ss, n, ss).mean((1, 3))


def _blobs(n):
    x, y = _grid(n)
    img = torch.exp(-((x - 5) ** 2 + (y + 3) ** 2) / (2 * 8**2)) + 0.5 * torch.exp(-((x + 10) ** 2 + (y - 8) ** 2) / (2 * 4**2))
    return img * ((x**2 + y**2) < 30**2)


def _rel(a, b):
    return float((a - b).norm() / b.norm())


FAN_ANGLES = torch.linspace(0, 2 * math.pi, 24, dtype=torch.float64)[:-1]


@pytest.mark.parametrize("make", [
    lambda: ParallelBeamRadon((32, 40), sparse_view_angles(17)),
    lambda: ParallelBeamRadon((33, 20), limited_angle(9, 2.0), n_detectors=25, detector_spacing=1.7),
    lambda: FanBeamRadon((32, 40), FAN_ANGLES, 60.0, 40.0, 70, 1.3),
    lambda: FanBeamRadon((32, 40), FAN_ANGLES, 60.0, 40.0, 70, 1.3, detector="arc"),
], ids=["parallel", "parallel-limited", "fan-flat", "fan-arc"])
def test_adjoint_exact(make):
    A = make()
    assert check_adjoint(A, generator=torch.Generator().manual_seed(0)) <= 1e-12   # measured ~3e-17


def test_batched_and_shapes():
    A = ParallelBeamRadon((24, 24), sparse_view_angles(10))
    assert A.out_shape == (10, math.ceil(math.hypot(24, 24)))
    x = torch.randn(2, 3, 24, 24, dtype=torch.float64)
    y = A(x)
    assert y.shape == (2, 3, *A.out_shape)
    torch.testing.assert_close(y[1, 2], A(x[1, 2]), rtol=1e-13, atol=1e-12)
    z = A.adjoint(y)
    assert z.shape == x.shape
    torch.testing.assert_close(z[0, 1], A.adjoint(y[0, 1]), rtol=1e-13, atol=1e-12)
    F = FanBeamRadon((24, 24), FAN_ANGLES, 40.0, 30.0, 50, 1.0)
    torch.testing.assert_close(F(x)[1, 0], F(x[1, 0]), rtol=1e-13, atol=1e-12)


def test_cache_and_chunked_paths_agree():
    A = ParallelBeamRadon((20, 20), sparse_view_angles(30))
    B = ParallelBeamRadon((20, 20), sparse_view_angles(30))
    B.cache_limit = 0                      # recompute every time, in several angle chunks
    B._chunks = lambda: [(a, min(a + 7, 30)) for a in range(0, 30, 7)]
    x = torch.randn(2, 20, 20, dtype=torch.float64)
    torch.testing.assert_close(A(x), B(x), rtol=0, atol=1e-12)
    torch.testing.assert_close(A.adjoint(A(x)), B.adjoint(B(x)), rtol=0, atol=1e-11)
    assert A._cache and not B._cache
    F, G = (FanBeamRadon((20, 20), FAN_ANGLES, 40.0, 30.0, 40, 1.0, detector="arc") for _ in range(2))
    G.cache_limit = 0
    torch.testing.assert_close(F(x), G(x), rtol=0, atol=1e-12)
    torch.testing.assert_close(F.adjoint(F(x)), G.adjoint(G(x)), rtol=0, atol=1e-11)
    # the cached path is a pair of CSR matrices with valid invariants (sorted, distinct columns per row)
    for M in A._sparse(torch.float64, x.device):
        with torch.sparse.check_sparse_tensor_invariants():
            torch.sparse_csr_tensor(M.crow_indices(), M.col_indices(), M.values(), M.shape)
    # complex images (real and imaginary parts separately) and autograd through both paths
    z = torch.randn(2, 20, 20, dtype=torch.complex128)
    torch.testing.assert_close(A(z), torch.complex(B(z.real), B(z.imag)), rtol=0, atol=1e-12)
    for op in (A, B):
        xg = x.clone().requires_grad_(True)
        op(xg).sum().backward()
        torch.testing.assert_close(xg.grad, op.adjoint(torch.ones(2, *op.out_shape, dtype=torch.float64)),
                                   rtol=0, atol=1e-12)


def test_disc_matches_analytic_radon():
    n, r = 64, 20.0
    A = ParallelBeamRadon((n, n), sparse_view_angles(180))
    p = A(_disc(n, r))
    s = A.detector_positions()
    exact = 2 * torch.sqrt((r * r - s**2).clamp(min=0))
    inside = s.abs() < r - 2
    worst = float(((p[:, inside] - exact[inside]).norm(dim=1) / exact[inside].norm()).max())
    assert worst < 0.01                    # measured 4.1e-3 (worst angle)
    assert float((p[:, s.abs() > r + 2]).abs().max()) < 1e-12


def test_fan_disc_matches_analytic():
    n, r, Ds, Dd = 64, 20.0, 80.0, 50.0
    F = FanBeamRadon((n, n), FAN_ANGLES, Ds, Dd, 120, 1.0)
    p = F(_disc(n, r))
    s = (torch.arange(120, dtype=torch.float64) - 59.5)
    dist = Ds * torch.sin(torch.atan(s / (Ds + Dd)))      # distance of each ray from the centre
    exact = 2 * torch.sqrt((r * r - dist**2).clamp(min=0))
    inside = dist.abs() < r - 2
    assert _rel(p[:, inside], exact[inside].expand(len(FAN_ANGLES), -1)) < 0.01


@pytest.mark.parametrize("name", FBP_FILTERS)
def test_fbp_reconstructs_smooth_phantom(name):
    n = 64
    A = ParallelBeamRadon((n, n), sparse_view_angles(180))
    img = _blobs(n)
    err = _rel(fbp(A(img), A, name), img)
    assert err < 0.025                     # measured 0.011 (ram-lak) .. 0.015 (hann)


def test_fbp_detector_spacing_and_batch():
    n = 64
    A = ParallelBeamRadon((n, n), sparse_view_angles(180), detector_spacing=0.5)
    img = _blobs(n)
    assert _rel(fbp(A(img), A), img) < 0.015   # measured 6.5e-3
    batch = torch.stack([img, 2 * img])
    rec = fbp(A(batch), A)
    torch.testing.assert_close(rec[1], 2 * rec[0], rtol=1e-12, atol=1e-12)


def test_sparse_view_cg_beats_fbp():
    n = 64
    truth = shepp_logan(n)
    A = ParallelBeamRadon((n, n), sparse_view_angles(30))
    y = A(truth)
    e_fbp = _rel(fbp(y, A), truth)
    sol = sciml.solve(sciml.InverseProblem(A, y), "cg", damp=0.1, maxiter=50)
    e_cg = _rel(sol.x, truth)
    assert e_fbp == pytest.approx(0.405, abs=0.02)   # measured 0.4046
    assert e_cg < 0.9 * e_fbp                         # measured 0.346


def test_float32():
    A = ParallelBeamRadon((32, 32), sparse_view_angles(20))
    x = shepp_logan(32, dtype=torch.float32)
    y = A(x)
    assert y.dtype == torch.float32 and A.adjoint(y).dtype == torch.float32
    torch.testing.assert_close(y.double(), A(x.double()), rtol=1e-5, atol=1e-4)
    assert fbp(y, A).dtype == torch.float32
    assert check_adjoint(A, dtype=torch.float32, generator=torch.Generator().manual_seed(1)) < 1e-5
    A32 = ParallelBeamRadon((32, 32), sparse_view_angles(20), dtype=torch.float32)
    with pytest.raises(ValueError, match="dtype"):
        A32(x.double())
    A64 = A32.to(dtype=torch.float64)
    assert A64.dtype == torch.float64 and A64.angles.dtype == torch.float64
    torch.testing.assert_close(A64(x.double()), A(x.double()))


def test_geometry_helpers_and_phantom():
    a = sparse_view_angles(4)
    torch.testing.assert_close(a, torch.tensor([0, math.pi / 4, math.pi / 2, 3 * math.pi / 4], dtype=torch.float64))
    la = limited_angle(120, math.radians(120))
    torch.testing.assert_close(la, torch.deg2rad(torch.arange(120, dtype=torch.float64)))
    with pytest.raises(ValueError):
        limited_angle(10, 4.0)
    with pytest.raises(ValueError):
        sparse_view_angles(0)
    p = shepp_logan(128)
    assert p.shape == (128, 128) and float(p.min()) >= 0 and float(p.max()) == pytest.approx(1.0)
    assert float(p[64, 64]) == pytest.approx(0.2) and float(p[0, 0]) == 0.0


def test_clear_errors():
    A = ParallelBeamRadon((16, 16), sparse_view_angles(5))
    with pytest.raises(ValueError, match="expected"):
        A(torch.zeros(16, 15, dtype=torch.float64))
    with pytest.raises(ValueError, match="expected"):
        A.adjoint(torch.zeros(4, A.n_detectors, dtype=torch.float64))
    with pytest.raises(ValueError, match="empty"):
        ParallelBeamRadon((16, 16), [])
    with pytest.raises(ValueError, match="image_shape"):
        ParallelBeamRadon((16,), [0.0])
    with pytest.raises(ValueError, match="filter"):
        fbp(A(torch.zeros(16, 16, dtype=torch.float64)), A, "ramp")
    with pytest.raises(ValueError, match="source"):
        FanBeamRadon((16, 16), [0.0], 5.0, 10.0, 20, 1.0)
    with pytest.raises(ValueError, match="detector"):
        FanBeamRadon((16, 16), [0.0], 50.0, 10.0, 20, 1.0, detector="curved")
    with pytest.raises(TypeError):
        fbp(torch.zeros(1, 20, dtype=torch.float64), FanBeamRadon((16, 16), [0.0], 50.0, 10.0, 20, 1.0))
