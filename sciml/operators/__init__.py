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
from .fourier import LaplacianInverseOperator, laplacian_inverse
from .kronecker import KroneckerOperator
from .preconditioners import DiagonalOperator, jacobi, make_preconditioner, pyamg_preconditioner
from .stencil import BOUNDARY_CONDITIONS, DiffusionOperator, diffusion_apply, laplacian
from .wrappers import FunctionOperator, MatrixOperator, ScipyOperator, aslinearoperator

__all__ = [
    "LaplacianInverseOperator", "laplacian_inverse",
    "AdjointOperator", "KroneckerOperator", "DiagonalOperator", "jacobi", "make_preconditioner", "pyamg_preconditioner", "BOUNDARY_CONDITIONS", "ComposedOperator", "DiffusionOperator", "FunctionOperator",
    "IdentityOperator", "LinearOperator", "MatrixOperator", "ScaledOperator", "ScipyOperator", "SumOperator",
    "aslinearoperator", "check_adjoint", "diffusion_apply", "laplacian",
]
