"""DST-I and the fast Poisson solver on the layout paths: transforms along non-last axes read as
strided blocks (no transposing copy), results written into reused buffers, several shapes."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.fft as sfft
import torch

from sciml.linalg import dct, dst, idct, idst, poisson_solve
from sciml.operators import laplacian

LENGTHS = [1, 2, 3, 7, 16, 31, 97, 128, 257, 1024]


@pytest.mark.parametrize("n", LENGTHS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("dim", [0, 1, -1])
def test_dst1_matches_scipy_along_any_axis(n, dtype, dim):
    rows = 300 if n >= 97 else 5     # enough rows for the blocked (strided-read) path at large n
    x = torch.randn(rows, n, dtype=torch.float64, generator=torch.Generator().manual_seed(n))
    if dim == 0:
        x = x.T.contiguous()
    for norm in (None, "ortho", "forward"):
        got = dst(x.to(dtype), type=1, dim=dim, norm=norm)
        ref = sfft.dst(x.numpy(), type=1, axis=dim, norm=norm)
        tol = 1e-12 if dtype == torch.float64 else 2e-5
        assert got.shape == x.shape and got.dtype == dtype
        assert np.abs(got.double().numpy() - ref).max() <= tol * max(np.abs(ref).max(), 1e-300)
        back = idst(got, type=1, dim=dim, norm=norm)
        assert torch.allclose(back.double(), x, rtol=0, atol=tol * 10 * float(x.abs().max()))


@pytest.mark.parametrize("type", [1, 2, 3, 4])
def test_r2r_strided_blocks_match_scipy(type):
    # a (3, 400, 97) batch along the middle axis: a non-viewable movedim (falls back to one copy)
    x = torch.randn(3, 400, 97, dtype=torch.float64, generator=torch.Generator().manual_seed(type))
    for fn, sfn in ((dct, sfft.dct), (dst, sfft.dst), (idct, sfft.idct), (idst, sfft.idst)):
        for dim in (0, 1, 2):
            got = fn(x, type=type, dim=dim)
            ref = sfn(x.numpy(), type=type, axis=dim)
            assert np.abs(got.numpy() - ref).max() <= 1e-12 * np.abs(ref).max()


@pytest.mark.parametrize("bc", [("dirichlet", "dirichlet"), ("dirichlet", "neumann"), ("neumann", "dirichlet"),
                                ("periodic", "dirichlet"), ("dirichlet", "periodic")])
@pytest.mark.parametrize("shape", [(300, 97), (97, 300), (2, 150, 64)])
def test_poisson_solve_layouts(bc, shape):
    grid = shape[-2:]
    h = (1.0 / (grid[0] + 1), 1.0 / (grid[1] + 1))
    u = torch.randn(*shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    L = laplacian(grid, h, bc, dtype=torch.float64)
    shift = 0.0 if "dirichlet" in bc else 1.0
    f = L @ u + shift * u
    f_before = f.clone()
    got = poisson_solve(f, h, bc, shift)
    assert torch.equal(f, f_before)                    # the input is never written
    assert got.shape == f.shape
    assert torch.allclose(got, u, rtol=0, atol=1e-10 * float(u.abs().max()))


def test_poisson_solve_3d_complex_float32():
    grid = (20, 33, 18)
    bc = ("dirichlet", "neumann", "dirichlet")
    h = (0.1, 0.2, 0.15)
    u = torch.randn(2, *grid, dtype=torch.complex128, generator=torch.Generator().manual_seed(3))
    f = laplacian(grid, h, bc, dtype=torch.complex128) @ u
    assert torch.allclose(poisson_solve(f, h, bc), u, atol=1e-10)
    u32 = u.real.float()
    f32 = laplacian(grid, h, bc, dtype=torch.float32) @ u32
    assert (poisson_solve(f32, h, bc) - u32).abs().max() < 1e-3


def test_poisson_solve_1024_matches_scipy():
    n = 1024
    h = 1.0 / (n + 1)
    f = torch.randn(n, n, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    k = np.arange(1, n + 1)
    lam = (4 / h**2) * np.sin(np.pi * k / (2 * (n + 1))) ** 2
    ref = sfft.idstn(sfft.dstn(f.numpy(), type=1) / (lam[:, None] + lam[None, :]), type=1)
    got = poisson_solve(f, h, ("dirichlet", "dirichlet"))
    assert got.is_contiguous()
    assert np.abs(got.numpy() - ref).max() <= 1e-12 * np.abs(ref).max()


# ------------------------------------------------------------------------------------------------
# FACR path of poisson_solve (2-D, first axis Dirichlet, CPU, real, shift >= 0, large grids)
# ------------------------------------------------------------------------------------------------
import sys  # noqa: E402

POISSON = sys.modules["sciml.linalg.poisson"]


@pytest.mark.parametrize("shape", [(64, 80), (97, 64), (3, 128, 33), (2, 2, 70, 5)])
@pytest.mark.parametrize("bcx", ["dirichlet", "neumann"])
@pytest.mark.parametrize("shift", [0.0, 2.5, 1e4])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_facr_matches_transform_path(monkeypatch, shape, bcx, shift, dtype):
    bc = ("dirichlet", bcx)
    h = (0.7 / (shape[-2] + 1), 1.3 / (shape[-1] + 1))
    f = torch.randn(*shape, dtype=torch.float64, generator=torch.Generator().manual_seed(11)).to(dtype)
    assert POISSON._use_facr(f, shape[-2:], bc, shift, False) is False or shape[-2] * shape[-1] >= 256 * 256
    monkeypatch.setattr(POISSON, "_FACR_MIN_POINTS", 0)
    assert POISSON._use_facr(f, tuple(shape[-2:]), bc, shift, False)
    f_before = f.clone()
    got = poisson_solve(f, h, bc, shift)
    assert torch.equal(f, f_before)
    monkeypatch.setattr(POISSON, "_FACR_MIN_POINTS", 10**18)
    ref = poisson_solve(f, h, bc, shift)
    tol = 1e-13 if dtype == torch.float64 else 2e-5
    assert got.dtype == dtype and got.shape == f.shape
    assert float((got - ref).abs().max()) <= tol * float(ref.abs().max())
    u = laplacian(shape[-2:], h, bc, dtype=torch.float64) @ got.double() + shift * got.double()
    assert float((u - f.double()).abs().max()) <= (1e-9 if dtype == torch.float64 else 1e-2) * float(f.abs().max())


def test_facr_not_used_where_it_does_not_apply():
    f = torch.zeros(512, 512, dtype=torch.float64)
    assert POISSON._use_facr(f, (512, 512), ("dirichlet", "dirichlet"), 0.0, False)
    assert not POISSON._use_facr(f, (512, 512), ("neumann", "dirichlet"), 0.0, False)
    assert not POISSON._use_facr(f, (512, 512), ("dirichlet", "periodic"), 0.0, False)
    assert not POISSON._use_facr(f, (512, 512), ("dirichlet", "dirichlet"), -1.0, False)   # indefinite
    assert not POISSON._use_facr(f, (512, 512), ("dirichlet", "dirichlet"), 0.0, True)    # complex
    assert not POISSON._use_facr(f, (64, 64), ("dirichlet", "dirichlet"), 0.0, False)     # small
    g = torch.zeros(4, 64, 64, dtype=torch.float64)
    assert not POISSON._use_facr(g, (4, 64, 64), ("dirichlet",) * 3, 0.0, False)         # 3-D


def test_facr_helmholtz_negative_shift_uses_transforms():
    n = 300
    h = 1.0 / (n + 1)
    u = torch.randn(n, n, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    f = laplacian((n, n), h, dtype=torch.float64) @ u - 10.0 * u
    assert torch.allclose(poisson_solve(f, h, ("dirichlet", "dirichlet"), -10.0), u, atol=1e-9)


@pytest.mark.parametrize("bcy", ["dirichlet", "neumann"])
def test_laplacian_inverse_operator_takes_the_facr_path(bcy):
    from sciml.operators import laplacian_inverse

    shape, h, bc = (256, 260), (0.5, 0.25), ("dirichlet", bcy)
    f = torch.randn(2, *shape, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    op = laplacian_inverse(shape, h, bc, shift=0.5)
    u = op.apply(f)
    assert torch.allclose(u, poisson_solve(f, h, bc, shift=0.5), rtol=0, atol=1e-12 * float(u.abs().max()))
    back = laplacian(shape, h, bc).apply(u) + 0.5 * u
    assert torch.allclose(back, f, atol=1e-9 * float(f.abs().max()))
