"""One status type for every solver: Krylov kernels, PDE solvers, PnP, samplers."""
from __future__ import annotations

import enum


class Status(enum.IntEnum):
    """Why a solve stopped. Larger values are worse, so the status of a batch is its maximum.

    Batched kernels keep one integer per system in a tensor (no host sync); `Status(int(t))`
    turns an entry back into a member whose `message` reads as a sentence.
    """

    SUCCESS = 0
    MAX_ITERATIONS = 1
    STAGNATION = 2
    BREAKDOWN = 3
    NONFINITE = 4

    @property
    def message(self) -> str:
        return _MESSAGES[self]


_MESSAGES = {
    Status.SUCCESS: "converged: residual below max(rtol*||b||, atol)",
    Status.MAX_ITERATIONS: "maximum number of iterations reached before convergence",
    Status.STAGNATION: "stagnation: the iteration's residual met the tolerance but the true residual "
    "||b - A x|| does not (the tolerance is below the accuracy attainable in this dtype)",
    Status.BREAKDOWN: "breakdown: the operator (or preconditioner) is not positive definite "
    "(p^H A p <= 0 or r^H M r <= 0)",
    Status.NONFINITE: "NaN or Inf appeared during the iteration",
}
