r"""`LinearOperator`: the one object every sciml solver takes as a forward model.

A subclass implements `apply(x)` (and `adjoint(y)` unless it is self-adjoint). Inputs carry
arbitrary leading batch dimensions: `apply` maps `(*batch, *in_shape) -> (*batch, *out_shape)`.
Operators compose lazily: `A @ B`, `A + B`, `A - B`, `c * A`, `A.H`, `A.normal()`.

Tags `is_self_adjoint` and `is_positive_definite` are promises made by whoever builds the
operator; they are not verified (use `check_adjoint` and the solvers' breakdown detection).
"""
from __future__ import annotations

import copy
import math
import numbers
from typing import Any

import torch

Shape = tuple[int, ...]


def _as_shape(shape: Any, name: str) -> Shape:
    if isinstance(shape, int):
        shape = (shape,)
    try:
        shape = tuple(int(s) for s in shape)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be an int or a sequence of ints, got {shape!r}") from None
    if any(s < 1 for s in shape):
        raise ValueError(f"{name} must have positive sizes, got {shape}")
    return shape


class LinearOperator:
    """A linear map between tensor spaces, batched over leading dimensions.

    Args:
        in_shape: shape of one input, e.g. `(H, W)`.
        out_shape: shape of one output (default `in_shape`).
        dtype, device: of the tensors the operator acts on (`None`: any).
        is_self_adjoint, is_positive_definite: declared (unverified) properties.
    """

    def __init__(
        self,
        in_shape: Any,
        out_shape: Any = None,
        *,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
        is_self_adjoint: bool = False,
        is_positive_definite: bool = False,
    ):
        self.in_shape = _as_shape(in_shape, "in_shape")
        self.out_shape = self.in_shape if out_shape is None else _as_shape(out_shape, "out_shape")
        self.dtype = dtype
        self.device = torch.device(device) if device is not None else None
        if is_positive_definite and not is_self_adjoint:
            raise ValueError("is_positive_definite=True requires is_self_adjoint=True")
        if is_self_adjoint and self.in_shape != self.out_shape:
            raise ValueError(f"a self-adjoint operator must be square, got {self.in_shape} -> {self.out_shape}")
        self.is_self_adjoint = bool(is_self_adjoint)
        self.is_positive_definite = bool(is_positive_definite)

    # --- the maths a subclass provides -------------------------------------------------------
    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """A x for `x` of shape `(*batch, *in_shape)`; returns `(*batch, *out_shape)`."""
        raise NotImplementedError(f"{type(self).__name__} does not implement apply()")

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """A^H y for `y` of shape `(*batch, *out_shape)`; returns `(*batch, *in_shape)`."""
        if self.is_self_adjoint:
            return self.apply(y)
        raise NotImplementedError(f"{type(self).__name__} does not implement adjoint()")

    # --- derived -------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[Shape, Shape]:
        """`(in_shape, out_shape)`."""
        return self.in_shape, self.out_shape

    @property
    def in_size(self) -> int:
        return math.prod(self.in_shape)

    @property
    def out_size(self) -> int:
        return math.prod(self.out_shape)

    @property
    def H(self) -> "LinearOperator":
        """The adjoint operator A^H (lazy)."""
        return self if self.is_self_adjoint else AdjointOperator(self)

    def normal(self) -> "LinearOperator":
        """A^H A: self-adjoint and positive semi-definite (definite only when A is injective, so not
        tagged definite). CG applies to A^H A x = A^H y all the same: A^H y lies in its range."""
        return ComposedOperator(self.H, self, is_self_adjoint=True)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input(x, self.in_shape, "input")
        return self.apply(x)

    def _check_input(self, x: torch.Tensor, shape: Shape, what: str) -> None:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{type(self).__name__}: {what} must be a torch.Tensor, got {type(x).__name__}")
        k = len(shape)
        if x.ndim < k or tuple(x.shape[x.ndim - k:]) != shape:
            raise ValueError(
                f"{type(self).__name__}: {what} has shape {tuple(x.shape)}, expected (*batch, {', '.join(map(str, shape))})"
            )
        if self.dtype is not None and x.dtype != self.dtype:
            raise ValueError(f"{type(self).__name__}: {what} has dtype {x.dtype}, operator has {self.dtype}")
        if self.device is not None and x.device != self.device:
            raise ValueError(f"{type(self).__name__}: {what} is on {x.device}, operator is on {self.device}")

    def __matmul__(self, other: Any) -> Any:
        if isinstance(other, LinearOperator):
            return ComposedOperator(self, other)
        if isinstance(other, torch.Tensor):
            return self(other)
        return NotImplemented

    def __add__(self, other: Any) -> "LinearOperator":
        if not isinstance(other, LinearOperator):
            return NotImplemented
        return SumOperator(self, other)

    def __sub__(self, other: Any) -> "LinearOperator":
        if not isinstance(other, LinearOperator):
            return NotImplemented
        return SumOperator(self, ScaledOperator(-1, other))

    def __neg__(self) -> "LinearOperator":
        return ScaledOperator(-1, self)

    def __mul__(self, c: Any) -> "LinearOperator":
        if isinstance(c, numbers.Number) or (isinstance(c, torch.Tensor) and c.ndim == 0):
            return ScaledOperator(c, self)
        return NotImplemented

    __rmul__ = __mul__

    def to_dense(self) -> torch.Tensor:
        """The matrix `(out_size, in_size)` of the operator, by applying it to the identity (small operators only)."""
        eye = torch.eye(self.in_size, dtype=self.dtype or torch.get_default_dtype(), device=self.device)
        return self.apply(eye.reshape(self.in_size, *self.in_shape)).reshape(self.in_size, self.out_size).mT

    def to(self, device: Any = None, dtype: torch.dtype | None = None) -> "LinearOperator":
        """A copy with every tensor (and sub-operator) moved to `device` / cast to `dtype`."""
        new = copy.copy(self)
        for key, val in vars(self).items():
            if isinstance(val, torch.Tensor):
                setattr(new, key, _cast(val, device, dtype))
            elif isinstance(val, LinearOperator):
                setattr(new, key, val.to(device, dtype))
        if device is not None and self.device is not None:
            new.device = torch.device(device)
        if dtype is not None and self.dtype is not None:
            new.dtype = dtype.to_complex() if self.dtype.is_complex and not dtype.is_complex else dtype
        return new

    def __repr__(self) -> str:
        tags = [t for t in ("is_self_adjoint", "is_positive_definite") if getattr(self, t)]
        return f"{type(self).__name__}({self.in_shape} -> {self.out_shape}, dtype={self.dtype}{''.join(', ' + t for t in tags)})"


def _cast(t: torch.Tensor, device: Any, dtype: torch.dtype | None) -> torch.Tensor:
    """Move `t`; cast floating tensors to `dtype`'s precision, keeping real tensors real and complex complex."""
    if dtype is None or not (t.is_floating_point() or t.is_complex()):
        return t.to(device=device)
    return t.to(device=device, dtype=dtype.to_complex() if t.is_complex() else dtype.to_real())


def _common(a: Any, b: Any) -> Any:
    return a if a is not None else b


class ComposedOperator(LinearOperator):
    """`A @ B`: x -> A(B(x))."""

    def __init__(self, A: LinearOperator, B: LinearOperator, **tags: bool):
        if B.out_shape != A.in_shape:
            raise ValueError(f"cannot compose: B maps to {B.out_shape} but A takes {A.in_shape}")
        super().__init__(B.in_shape, A.out_shape, dtype=_common(A.dtype, B.dtype), device=_common(A.device, B.device), **tags)
        self.A, self.B = A, B

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        return self.A.apply(self.B.apply(x))

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return self.B.adjoint(self.A.adjoint(y))


class SumOperator(LinearOperator):
    """`A + B`."""

    def __init__(self, A: LinearOperator, B: LinearOperator):
        if A.shape != B.shape:
            raise ValueError(f"cannot add operators of shapes {A.shape} and {B.shape}")
        sa = A.is_self_adjoint and B.is_self_adjoint
        super().__init__(
            A.in_shape, A.out_shape, dtype=_common(A.dtype, B.dtype), device=_common(A.device, B.device),
            is_self_adjoint=sa, is_positive_definite=sa and A.is_positive_definite and B.is_positive_definite,
        )
        self.A, self.B = A, B

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        return self.A.apply(x) + self.B.apply(x)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return self.A.adjoint(y) + self.B.adjoint(y)


class ScaledOperator(LinearOperator):
    """`c * A` for a scalar c (real or complex)."""

    def __init__(self, c: Any, A: LinearOperator):
        c_val = complex(c)
        real = c_val.imag == 0
        super().__init__(
            A.in_shape, A.out_shape, dtype=A.dtype, device=A.device,
            is_self_adjoint=A.is_self_adjoint and real,
            is_positive_definite=A.is_positive_definite and real and c_val.real > 0,
        )
        self.c, self.A = c, A

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        return self.c * self.A.apply(x)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        c = self.c.conj() if isinstance(self.c, torch.Tensor) else complex(self.c).conjugate()
        if isinstance(c, complex) and c.imag == 0:
            c = c.real
        return c * self.A.adjoint(y)


class AdjointOperator(LinearOperator):
    """`A.H`: swaps `apply` and `adjoint`."""

    def __init__(self, A: LinearOperator):
        super().__init__(A.out_shape, A.in_shape, dtype=A.dtype, device=A.device,
                         is_self_adjoint=A.is_self_adjoint, is_positive_definite=A.is_positive_definite)
        self.A = A

    @property
    def H(self) -> LinearOperator:
        return self.A

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        return self.A.adjoint(x)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return self.A.apply(y)


class IdentityOperator(LinearOperator):
    """The identity on tensors of shape `shape`."""

    def __init__(self, shape: Any, *, dtype: torch.dtype | None = None, device: Any = None):
        super().__init__(shape, dtype=dtype, device=device, is_self_adjoint=True, is_positive_definite=True)

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        return x
