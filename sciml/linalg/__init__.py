"""Tensor kernels: batched Krylov solvers (and, later, FFT and Kronecker algebra).

Pure tensor code with no knowledge of PDEs or networks; batched over leading dimensions,
device-agnostic, real and complex.
"""
from ._common import KrylovResult, as_matvec, sparse_matmul
from .cg import cg
from .minres import minres

__all__ = ["KrylovResult", "as_matvec", "cg", "minres", "sparse_matmul"]
