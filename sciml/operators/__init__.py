"""Linear operators: the base class, wrappers, composition, the adjointness test, PDE stencils."""
from .adjoint import check_adjoint
from .base import (
    AdjointOperator,
    ComposedOperator,
    IdentityOperator,
    LinearOperator,
    ScaledOperator,
    SumOperator,
)
from .ct import FanBeamRadon, ParallelBeamRadon, fbp, limited_angle, shepp_logan, sparse_view_angles
from .fourier import LaplacianInverseOperator, laplacian_inverse
from .imaging import (
    BLUR_PADDINGS,
    CS_KINDS,
    Blur,
    CompressedSensing,
    gaussian_kernel,
    motion_kernel,
    uniform_kernel,
)
from .kronecker import KroneckerOperator
from .mimo import NearFieldMIMO
from .mri import MultiCoilMRI, fft2c, ifft2c
from .preconditioners import DiagonalOperator, jacobi, make_preconditioner, pyamg_preconditioner
from .stencil import BOUNDARY_CONDITIONS, DiffusionOperator, diffusion_apply, laplacian
from .wrappers import FunctionOperator, MatrixOperator, ScipyOperator, aslinearoperator

__all__ = [
    "AdjointOperator", "BOUNDARY_CONDITIONS", "ComposedOperator", "DiagonalOperator", "DiffusionOperator", "FunctionOperator",
    "IdentityOperator", "KroneckerOperator", "LaplacianInverseOperator", "LinearOperator", "MatrixOperator", "ScaledOperator",
    "ScipyOperator", "SumOperator", "aslinearoperator", "check_adjoint", "diffusion_apply", "jacobi",
    "laplacian", "laplacian_inverse", "make_preconditioner", "pyamg_preconditioner",
    "FanBeamRadon", "MultiCoilMRI", "ParallelBeamRadon", "fbp", "fft2c", "ifft2c", "limited_angle", "shepp_logan",
    "sparse_view_angles",
    "BLUR_PADDINGS", "Blur", "CS_KINDS", "CompressedSensing", "NearFieldMIMO", "gaussian_kernel", "motion_kernel",
    "uniform_kernel",
]
