"""The fused numba CG kernel for the Dirichlet Laplacian against the torch path and scipy."""
import importlib

import numpy as np
import pytest
import scipy.sparse.linalg as spla
import torch

from sciml.linalg import cg
from sciml.operators import laplacian
from sciml.operators.stencil import DiffusionOperator
from sciml.status import Status

pytest.importorskip("numba")
cg_module = importlib.import_module("sciml.linalg.cg")


def torch_cg(*args, **kwargs):
    """`cg` with the fused kernel switched off."""
    saved = cg_module._FUSED[:]
    cg_module._FUSED[:] = [None]
    try:
        return cg(*args, **kwargs)
    finally:
        cg_module._FUSED[:] = saved


def batch(shape, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(4, *shape, generator=g, dtype=dtype)


def compare(L, b, dtype, its_tol=1, restarted=False, **kw):
    fused, ref = cg(L, b, **kw), torch_cg(L, b, **kw)
    assert fused.info["kernel"] == "fused-stencil" and ref.info["kernel"] == "torch"
    assert torch.equal(fused.status, ref.status), (fused.status, ref.status)
    assert (fused.iterations - ref.iterations).abs().max() <= its_tol, (fused.iterations, ref.iterations)
    assert fused.x.dtype == dtype and fused.residuals.dtype == dtype and fused.info["residual_norm"].dtype == dtype
    assert fused.residuals.shape[1:] == b.shape[:-L.in_shape.__len__()]
    assert abs(fused.residuals.shape[0] - ref.residuals.shape[0]) <= its_tol
    assert torch.equal(fused.residuals[0], ref.residuals[0])
    # history padded with final values: the last row is each system's final updated residual norm
    assert restarted or torch.all(fused.residuals[-1] == fused.residuals[fused.iterations, torch.arange(b.shape[0])])
    return fused, ref


@pytest.mark.parametrize("dtype,rtol", [(torch.float64, 1e-8), (torch.float32, 1e-4)])
@pytest.mark.parametrize("shape,spacing", [((24, 20), 1.0 / 21), ((6, 7, 5), (0.5, 1.0, 2.0))])
def test_fused_matches_torch_path(dtype, rtol, shape, spacing):
    L = laplacian(shape, spacing=spacing)
    b = batch(shape, dtype)
    b[1] = 0  # zero right-hand side
    x0 = torch.zeros_like(b)
    x0[2] = torch_cg(L, b[2], rtol=rtol * 1e-2).x  # an x0 that already meets the tolerance
    fused, ref = compare(L, b, dtype, x0=x0, rtol=rtol)
    assert fused.status.tolist() == [Status.SUCCESS] * 4
    assert fused.iterations[1] == 0 and fused.iterations[2] == 0 and torch.all(fused.x[1] == 0)
    scale = float(torch.linalg.vector_norm(ref.x))
    assert float(torch.linalg.vector_norm(fused.x - ref.x)) <= 50 * rtol * scale
    bn = torch.linalg.vector_norm(b.reshape(4, -1), dim=-1)
    assert torch.all(fused.info["residual_norm"] <= rtol * bn)


def test_fused_maxiter_and_atol():
    L = laplacian((16, 16))
    b = batch((16, 16), torch.float64)
    fused, _ = compare(L, b, torch.float64, rtol=1e-10, maxiter=7)
    assert fused.status.tolist() == [Status.MAX_ITERATIONS] * 4 and fused.iterations.tolist() == [7] * 4
    assert fused.residuals.shape == (8, 4)
    fused, _ = compare(L, b, torch.float64, rtol=0.0, atol=1e-3)
    assert torch.all(fused.info["residual_norm"] <= 1e-3)


def test_fused_unattainable_tolerance_stagnates():
    L = laplacian((32, 32))
    b = batch((32, 32), torch.float32)
    fused, ref = compare(L, b, torch.float32, its_tol=20, restarted=True, rtol=1e-9)  # rounding-dominated: counts drift
    assert fused.worst == Status.STAGNATION


def test_fused_against_scipy():
    n = 32
    L = laplacian((n, n), spacing=1.0 / (n + 1))
    A = L.to_scipy()
    b = batch((n, n), torch.float64, seed=3)
    res = cg(L, b, rtol=1e-8)
    assert res.info["kernel"] == "fused-stencil"
    for i in range(4):
        its = [0]
        x, info = spla.cg(A, b[i].reshape(-1).numpy(), rtol=1e-8, maxiter=10 * n * n,
                          callback=lambda _: its.__setitem__(0, its[0] + 1))
        assert info == 0 and abs(int(res.iterations[i]) - its[0]) <= 1
        np.testing.assert_allclose(res.x[i].reshape(-1).numpy(), x, rtol=1e-6, atol=1e-8 * np.abs(x).max())


def test_fused_unbatched_and_shift():
    L = DiffusionOperator((40,), 0.1, "dirichlet", c=2.5)
    b = torch.randn(40, dtype=torch.float64)
    fused, _ = compare(L, b.unsqueeze(0).expand(4, 40).contiguous(), torch.float64, rtol=1e-10)
    single = cg(L, b, rtol=1e-10)
    assert single.info["kernel"] == "fused-stencil" and single.residuals.ndim == 1
    torch.testing.assert_close(single.x, fused.x[0])


def test_fallbacks_use_torch():
    b = torch.randn(2, 8, 8, dtype=torch.float64)
    assert cg(laplacian((8, 8), bc="neumann"), b + 0).info["kernel"] == "torch"
    assert cg(laplacian((8, 8)), b, callback=lambda x: None).info["kernel"] == "torch"
    assert cg(laplacian((8, 8)), b, M=laplacian((8, 8))).info["kernel"] == "torch"
    assert cg(laplacian((8, 8)), b.to(torch.complex128)).info["kernel"] == "torch"
