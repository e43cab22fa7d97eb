"""The chunked batch path and the buffered matvec of `sciml.linalg.cg` against the plain path."""
from __future__ import annotations

import sys

import pytest
import torch

from sciml.linalg import cg
from sciml.operators import LinearOperator, laplacian
from sciml.operators.stencil import diffusion_apply, laplacian_apply
from sciml.status import Status

CG = sys.modules["sciml.linalg.cg"]


class PlainLaplacian(LinearOperator):
    """The same stencil without `out=` and without `batch_independent`: the unchunked reference."""

    def __init__(self, shape, h):
        super().__init__(shape, is_self_adjoint=True, is_positive_definite=True)
        self.h = h

    def apply(self, x):
        return laplacian_apply(x, (self.h,) * len(self.in_shape), ("dirichlet",) * len(self.in_shape))


@pytest.fixture
def small_chunks(monkeypatch):
    monkeypatch.setattr(CG, "_CHUNK_BYTES", 3 * 6 * 16 * 16 * 8)   # 3 systems of 16 x 16 float64 a chunk
    monkeypatch.setattr(CG, "_FUSED", [None])   # the chunked torch path, not the fused stencil kernel
    return 3


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.complex128])
@pytest.mark.parametrize("batch", [(7,), (2, 5), (1,)])
def test_chunked_matches_unchunked(small_chunks, dtype, batch):
    n, h = 16, 1.0 / 17
    L = laplacian((n, n), h, dtype=dtype)
    gen = torch.Generator().manual_seed(0)
    b = torch.randn(*batch, n, n, dtype=dtype, generator=gen)
    b[(0,) * len(batch)] *= 1e-3                            # systems converging at different iterations
    if b.numel() > n * n:
        b.reshape(-1, n, n)[-1] = 0                          # b = 0: solved at x = 0 from the start
    rows = b.numel() // (n * n)
    chunk = CG._chunk_rows(CG.KrylovSetup(L, b, x0=None, M=None, rtol=1e-8, atol=0.0, maxiter=None,
                                          check_every=None), L, None, rows, None)
    assert (chunk < rows) if rows > 2 * small_chunks else (chunk <= rows)
    rtol = 1e-4 if dtype == torch.float32 else 1e-9
    chunked = cg(L, b, rtol=rtol)
    plain = cg(PlainLaplacian((n, n), h), b, rtol=rtol)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    assert torch.allclose(chunked.x, plain.x, rtol=tol, atol=tol * float(plain.x.abs().max()))
    assert torch.equal(chunked.status, plain.status) and bool(chunked.converged.all())
    assert torch.equal(chunked.iterations, plain.iterations)
    assert chunked.residuals.shape[1:] == plain.residuals.shape[1:] == batch
    k = min(chunked.residuals.shape[0], plain.residuals.shape[0])
    assert torch.allclose(chunked.residuals[:k], plain.residuals[:k], rtol=tol, atol=0)
    last = chunked.residuals[-1]
    assert torch.allclose(last, chunked.residuals[chunked.iterations.reshape(-1).max()], rtol=0, atol=0)
    assert torch.allclose(chunked.info["residual_norm"], plain.info["residual_norm"], rtol=1e-6, atol=1e-300)


def test_chunked_maxiter_and_x0(small_chunks):
    n, h = 16, 1.0 / 17
    L = laplacian((n, n), h, dtype=torch.float64)
    b = torch.randn(8, n, n, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    x0 = 0.1 * b
    a = cg(L, b, x0=x0, rtol=1e-10, maxiter=5)
    p = cg(PlainLaplacian((n, n), h), b, x0=x0, rtol=1e-10, maxiter=5)
    assert bool((a.status == Status.MAX_ITERATIONS).all()) and torch.equal(a.status, p.status)
    assert torch.allclose(a.x, p.x, rtol=1e-12, atol=1e-12)
    assert torch.allclose(a.residuals, p.residuals, rtol=1e-12, atol=0)


def test_not_chunked_with_callback_or_batched_coefficients(small_chunks):
    n = 16
    L = laplacian((n, n), dtype=torch.float64)
    b = torch.ones(6, n, n, dtype=torch.float64)
    setup = CG.KrylovSetup(L, b, x0=None, M=None, rtol=1e-8, atol=0.0, maxiter=None, check_every=None)
    assert CG._chunk_rows(setup, L, None, 6, None) < 6
    assert CG._chunk_rows(setup, L, None, 6, print) == 6                      # callback: whole batch
    assert CG._chunk_rows(setup, PlainLaplacian((n, n), 1.0), None, 6, None) == 6  # unknown operator
    assert CG._chunk_rows(setup, L, PlainLaplacian((n, n), 1.0), 6, None) == 6     # unknown preconditioner
    from sciml.operators import DiffusionOperator
    batched_c = DiffusionOperator((n, n), c=torch.rand(6, n, n, dtype=torch.float64))
    assert not batched_c.batch_independent and L.batch_independent


def test_laplacian_apply_out_buffer():
    u = torch.randn(3, 5, 6, dtype=torch.float64)
    for bc in (("dirichlet", "neumann"), ("periodic", "dirichlet"), ("neumann", "periodic")):
        for c in (None, 0.5, torch.rand(5, 6, dtype=torch.float64)):
            ref = diffusion_apply(u, (0.3, 0.7), bc, None, c)
            buf = torch.empty_like(u)
            got = laplacian_apply(u, (0.3, 0.7), bc, c, out=buf)
            assert got.data_ptr() == buf.data_ptr()
            assert torch.allclose(got, ref, rtol=1e-12, atol=1e-12)
    # a buffer of the wrong dtype/shape is not used
    got = laplacian_apply(u, (0.3, 0.7), ("dirichlet", "dirichlet"), 1j, out=torch.empty_like(u))
    assert got.is_complex()


def test_buffered_matvec_in_cg_matches_plain():
    n = 12
    L = laplacian((n, n), 1.0 / 13, dtype=torch.float64)
    b = torch.randn(n, n, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    a, p = cg(L, b, rtol=1e-10), cg(PlainLaplacian((n, n), 1.0 / 13), b, rtol=1e-10)
    assert torch.equal(a.iterations, p.iterations)
    assert torch.allclose(a.x, p.x, rtol=1e-12, atol=1e-14)
