"""Tensor kernels: batched Krylov solvers (and, later, FFT and Kronecker algebra).

Pure tensor code with no knowledge of PDEs or networks; batched over leading dimensions,
device-agnostic, real and complex.
"""
from ._common import KrylovResult, as_matvec, sparse_matmul
from .bicgstab import bicgstab
from .cg import cg
from .convolve import fft_convolve
from .fft import dct, dst, idct, idst
from .gmres import gmres
from .kron import KroneckerEigh, kron_matvec, kron_solve
from .lanczos import LanczosResult, lanczos
from .lsq import cgls
from .minres import minres
from .poisson import poisson_eigenvalues, poisson_solve

__all__ = [
    "KroneckerEigh", "KrylovResult", "LanczosResult", "as_matvec", "bicgstab", "cg",
    "cgls", "dct", "dst", "fft_convolve", "gmres", "idct",
    "idst", "kron_matvec", "kron_solve", "lanczos", "minres", "poisson_eigenvalues",
    "poisson_solve", "sparse_matmul",
]
