"""Solver registry and the solvers themselves (one module per method family)."""
from .base import Solver, SolverOptionError, available, get_solver, make_solver, register, solve
from .dcdm import DCDM
from .diffusion import DDIM, DDS, DEIS, DPS
from .fast import FFTPoisson
from .gp_kron import GPKron
from .krylov import CG, CGLS, GMRES, MINRES, PCG, BiCGStab, KrylovSolver, linear_system
from .neural_operator import FNOSolver, LSMSolver, NeuralOperatorSolver, PoseidonSolver
from .variational import TV, PnPADMM, PnPHQS, PnPPGD, data_consistency, magnitude_prox, soft_threshold, tv_denoiser

__all__ = ["BiCGStab", "CG", "CGLS", "DCDM", "DDIM", "DDS", "DEIS", "DPS", "FFTPoisson", "FNOSolver", "GMRES",
           "GPKron", "KrylovSolver", "LSMSolver", "MINRES", "NeuralOperatorSolver", "PCG", "PnPADMM", "PnPHQS",
           "PnPPGD", "PoseidonSolver", "Solver", "SolverOptionError", "TV", "available", "data_consistency",
           "get_solver", "linear_system", "magnitude_prox", "make_solver", "register", "soft_threshold", "solve",
           "tv_denoiser"]
