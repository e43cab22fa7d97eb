"""Kronecker algebra vs dense torch.kron on small factors."""
import functools

import pytest
import torch

from helpers import randn
from sciml.linalg import KroneckerEigh, kron_matvec, kron_solve


def dense(factors):
    return functools.reduce(torch.kron, factors)


def hermitian_pd(n, dtype, seed):
    G = randn(n, n, dtype=dtype, seed=seed)
    return G @ G.mH / n + 0.5 * torch.eye(n, dtype=dtype)


@pytest.mark.parametrize("dtype", [torch.float64, torch.complex128])
@pytest.mark.parametrize("shapes", [[(3, 4)], [(3, 2), (4, 5)], [(2, 3), (3, 3), (4, 2)]])
def test_kron_matvec_matches_dense(dtype, shapes):
    factors = [randn(*s, dtype=dtype, seed=i) for i, s in enumerate(shapes)]
    n_in = tuple(s[1] for s in shapes)
    x = randn(2, 3, *n_in, dtype=dtype, seed=9)
    y = kron_matvec(factors, x)
    assert y.shape == (2, 3, *(s[0] for s in shapes))
    ref = x.reshape(2, 3, -1) @ dense(factors).mT
    torch.testing.assert_close(y.reshape(2, 3, -1), ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float64, torch.complex128])
def test_kron_solve_and_logdet_match_dense(dtype):
    factors = [hermitian_pd(n, dtype, seed=n) for n in (3, 4, 5)]
    K = dense(factors)
    b = randn(2, 3, 4, 5, dtype=dtype, seed=1)
    for shift in (0.0, 0.3):
        x = kron_solve(factors, b, shift)
        ref = torch.linalg.solve(K + shift * torch.eye(60, dtype=dtype), b.reshape(2, 60).mT).mT
        torch.testing.assert_close(x.reshape(2, 60), ref, rtol=1e-10, atol=1e-10)
        eig = KroneckerEigh.of(factors)
        sign, ref_logdet = torch.linalg.slogdet(K + shift * torch.eye(60, dtype=dtype))
        assert abs(float(eig.logdet(shift)) - float(ref_logdet.real)) < 1e-9


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="expected"):
        kron_matvec([torch.eye(3)], torch.ones(4))
    with pytest.raises(ValueError, match="square"):
        KroneckerEigh.of([torch.ones(2, 3)])
    with pytest.raises(ValueError, match="singular"):
        kron_solve([torch.eye(2, dtype=torch.float64)], torch.ones(2, dtype=torch.float64), shift=-1.0)
    with pytest.raises(ValueError, match="positive definite"):
        KroneckerEigh.of([-torch.eye(2, dtype=torch.float64)]).logdet()


def test_kronecker_operator_adjoint_and_cg():
    import sciml

    factors = [hermitian_pd(n, torch.float64, seed=n) for n in (6, 7)]
    K = sciml.operators.KroneckerOperator(factors, is_self_adjoint=True, is_positive_definite=True)
    assert sciml.operators.check_adjoint(sciml.operators.KroneckerOperator([randn(3, 4), randn(5, 2)])) < 1e-13
    b = randn(6, 7, seed=3)
    sol = sciml.solve(sciml.LinearProblem(K, b), "cg", rtol=1e-12)
    torch.testing.assert_close(sol.x, kron_solve(factors, b), rtol=1e-9, atol=1e-10)
