"""`LinearProblem`: solve A x = b for an operator A and right-hand sides b."""
from __future__ import annotations

from typing import Any

import torch

from ..linalg._common import split_batch
from ..operators import LinearOperator, aslinearoperator
from ..operators.wrappers import is_function


class LinearProblem:
    """A x = b, batched over the leading dims of `b` `(*batch, *A.in_shape)`.

    Args:
        A: a `LinearOperator` or anything `sciml.operators.aslinearoperator` accepts
            (a plain callable is taken to act on tensors shaped like `b`).
        b: right-hand side(s).
        x0: initial guess, shaped like `b` (optional).
    """

    kind = "linear"

    def __init__(self, A: Any, b: torch.Tensor, x0: torch.Tensor | None = None):
        if not isinstance(b, torch.Tensor):
            raise TypeError(f"b must be a torch.Tensor, got {type(b).__name__}")
        if is_function(A):  # a bare function acts on one system shaped like b
            A = aslinearoperator(A, in_shape=b.shape, dtype=b.dtype, device=b.device)
        self.A: LinearOperator = aslinearoperator(A)
        split_batch(b, self.A.out_shape, "b")
        if x0 is not None:
            split_batch(x0, self.A.in_shape, "x0")
        self.b, self.x0 = b, x0

    @property
    def batch_shape(self) -> tuple[int, ...]:
        return tuple(self.b.shape[: self.b.ndim - len(self.A.out_shape)])

    def __repr__(self) -> str:
        return f"LinearProblem(A={self.A!r}, b: {tuple(self.b.shape)} {self.b.dtype})"
