"""Safe arithmetic expressions for coefficients, sources and exact solutions, e.g. "sin(pi*x)*exp(-y)".

Only numbers, names (coordinates, constants) and whitelisted functions are allowed; evaluation
works on torch tensors, so one expression serves any grid, dtype and device.
"""
from __future__ import annotations

import ast
import math
from typing import Any, Iterable

import torch


def _numbers_as_tensors(fn: Any) -> Any:
    """Let a torch function take plain numbers too: "sin(1)", "maximum(x, 0)", "where(x > 0, 0.1, 0.2)".

    Numbers become tensors of the floating dtype of the tensor arguments (float64 if there is none),
    so `where` with number branches does not fall back to float32.
    """
    def wrapped(*args: Any) -> Any:
        tensors = [a for a in args if isinstance(a, torch.Tensor)]
        floats = [a for a in tensors if a.is_floating_point() or a.is_complex()]
        dtype = floats[0].dtype if floats else torch.float64
        device = tensors[0].device if tensors else None
        return fn(*(a if isinstance(a, torch.Tensor) else torch.tensor(a, dtype=dtype, device=device) for a in args))
    return wrapped


FUNCTIONS = {name: _numbers_as_tensors(fn) for name, fn in {
    "sin": torch.sin, "cos": torch.cos, "tan": torch.tan, "exp": torch.exp, "log": torch.log,
    "sqrt": torch.sqrt, "abs": torch.abs, "tanh": torch.tanh, "sinh": torch.sinh, "cosh": torch.cosh,
    "arctan": torch.atan, "arcsin": torch.asin, "arccos": torch.acos, "sign": torch.sign,
    "where": torch.where, "minimum": torch.minimum, "maximum": torch.maximum,
}.items()}
CONSTANTS = {"pi": math.pi, "e": math.e}
_OPERATORS = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow, ast.Mod, ast.USub, ast.UAdd,
              ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.Eq, ast.NotEq)


def derivative_names(axes: Iterable[str]) -> dict[str, tuple[int, ...]]:
    """Names of the derivatives of u up to second order per axis, with their multi-indices.

    Example:
        >>> derivative_names("xy")["u_xxy"]
        (2, 1)
    """
    from itertools import product

    axes = tuple(axes)
    return {"u_" + "".join(n * c for n, c in zip(axes, counts)): counts
            for counts in product(range(3), repeat=len(axes)) if any(counts)}


class Expression:
    """A parsed expression over a fixed set of variable names.

    Args:
        text: the expression, Python syntax (`**` for powers).
        variables: names that will be given at call time (e.g. "x", "y").
        constants: extra named numbers (e.g. {"k": 20.0}).

    Attributes:
        names: the variable and constant names the expression uses.

    Raises:
        ValueError: syntax errors, unknown names, disallowed constructs; the message quotes the text.
    """

    def __init__(self, text: str, variables: Iterable[str], constants: dict[str, float] | None = None):
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"expected a non-empty expression string, got {text!r}")
        self.text = text
        self.variables = tuple(variables)
        self.constants = {**CONSTANTS, **(constants or {})}
        try:
            tree = ast.parse(text.strip(), mode="eval")
        except SyntaxError as err:
            raise ValueError(f"invalid expression {text!r}: {err.msg}") from None
        allowed = set(self.variables) | set(self.constants) | set(FUNCTIONS)
        self.names = frozenset(n.id for n in ast.walk(tree) if isinstance(n, ast.Name)) - set(FUNCTIONS)
        for node in ast.walk(tree):
            self._check(node, allowed)
            if isinstance(node, ast.Constant) and isinstance(node.value, int):
                # float arithmetic: "9**9**9" overflows at once instead of running for hours on big ints
                try:
                    node.value = float(node.value)
                except OverflowError:
                    raise ValueError(f"number too large in expression {text!r}") from None
        self._code = compile(tree, "<expression>", "eval")

    def _check(self, node: ast.AST, allowed: set[str]) -> None:
        if isinstance(node, (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Compare, ast.Load)) or isinstance(node, _OPERATORS):
            return
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
            return
        if isinstance(node, ast.Name):
            if node.id not in allowed:
                raise ValueError(
                    f"unknown name {node.id!r} in expression {self.text!r}; allowed: "
                    f"{', '.join(sorted(set(self.variables) | set(self.constants)))} and functions {', '.join(sorted(FUNCTIONS))}"
                )
            return
        if isinstance(node, ast.Call):
            if not (isinstance(node.func, ast.Name) and node.func.id in FUNCTIONS) or node.keywords:
                name = node.func.id if isinstance(node.func, ast.Name) else ast.unparse(node.func)
                raise ValueError(f"unknown function {name!r} in expression {self.text!r}; allowed: {', '.join(sorted(FUNCTIONS))}")
            return
        raise ValueError(f"{type(node).__name__} is not allowed in expression {self.text!r}")

    def __call__(self, **values: Any) -> Any:
        missing = set(self.variables) - set(values)
        if missing:
            raise ValueError(f"expression {self.text!r} needs values for {sorted(missing)}")
        scope = {**self.constants, **FUNCTIONS, **values}
        try:
            return eval(self._code, {"__builtins__": {}}, scope)  # noqa: S307 - AST checked above
        except ArithmeticError as err:  # on plain numbers, e.g. "9**9**9" or "1/0"
            raise ValueError(f"cannot evaluate expression {self.text!r}: {type(err).__name__}: {err}") from None

    def __repr__(self) -> str:
        return f"Expression({self.text!r})"
