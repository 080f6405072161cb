"""`$name` and `${expression}` in layer arguments: block parameters and `model.params`.

A YAML value that is a string starting with `$` is replaced by a value from the scope:
`$filters` by the parameter itself (keeping its type), `${4 * filters}` or
`${depths[2]}` by a small arithmetic expression. Only numbers, names, lists,
indexing and + - * / // % ** are allowed: configs never run arbitrary code.
Values are bounded too (`${9**9**9}` would otherwise compute for minutes, and
`${[1] * 10**10}` exhaust memory): numbers up to 1e15, lists up to 10,000 items.
"""

from __future__ import annotations

import ast
import math
import operator
from typing import Any, Mapping

from cnnzoo.errors import BuildError, Location, did_you_mean

_BINARY = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow,
}
_UNARY = {ast.USub: operator.neg, ast.UAdd: operator.pos}
MAX_TEXT = 200  # characters in one expression
MAX_NUMBER = 1e15
MAX_ITEMS = 10_000


class _TooLarge(Exception):
    """A value beyond the bounds above."""


def substitute(value: Any, scope: Mapping[str, Any], location: Location | None, what: str) -> Any:
    """`value` with every `$...` string (in nested lists and mappings too) replaced from `scope`."""
    if isinstance(value, str) and value.startswith("$"):
        return evaluate(value, scope, location, what)
    if isinstance(value, list):
        return [substitute(v, scope, location, what) for v in value]
    if isinstance(value, dict):
        return {k: substitute(v, scope, location, what) for k, v in value.items()}
    return value


def evaluate(text: str, scope: Mapping[str, Any], location: Location | None, what: str) -> Any:
    """The value of `$name` or `${expression}`."""
    expression = text[2:-1] if text.startswith("${") and text.endswith("}") else text[1:]
    if len(expression) > MAX_TEXT:
        raise _error(f"`{text[:40]}...` is longer than {MAX_TEXT} characters", location, what, scope)
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):  # ValueError: a NUL character
        raise _error(f"`{text}` is not a parameter or an arithmetic expression", location, what, scope) from None
    try:
        return _eval(tree.body, text, scope, location, what)
    except _TooLarge as exc:
        raise _error(f"`{text}` {exc}", location, what, scope) from None


def _eval(node: ast.AST, text: str, scope: Mapping[str, Any], location, what) -> Any:
    def ev(n):
        return _eval(n, text, scope, location, what)

    if isinstance(node, ast.Constant) and _is_number(node.value):
        return _bounded(node.value)
    if isinstance(node, ast.Name):
        if node.id not in scope:
            raise _error(f"`{text}` refers to `{node.id}`, which is not defined here.{did_you_mean(node.id, scope)}",
                         location, what, scope)
        return scope[node.id]
    if isinstance(node, ast.List):
        return [ev(e) for e in node.elts]
    try:
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            left, right = ev(node.left), ev(node.right)
            _check_operands(node.op, left, right)
            return _bounded(_BINARY[type(node.op)](left, right))
        if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
            return _UNARY[type(node.op)](ev(node.operand))
        if isinstance(node, ast.Subscript):
            return ev(node.value)[ev(node.slice)]
    except (TypeError, IndexError, KeyError, ZeroDivisionError, OverflowError, ValueError) as exc:
        raise _error(f"`{text}` cannot be computed: {exc}", location, what, scope) from None
    raise _error(f"`{text}` uses `{ast.unparse(node)}`; only numbers, names, lists, indexing and + - * / // % ** "
                 "are allowed", location, what, scope)


def _check_operands(op: ast.operator, left: Any, right: Any) -> None:
    """Refuse, before computing, what would be too large: a huge power or a huge repeated list."""
    if isinstance(op, ast.Pow) and _is_number(left) and _is_number(right) and abs(left) > 1 and right > 0:
        if right * math.log10(abs(left)) > math.log10(MAX_NUMBER):
            raise _TooLarge(f"is larger than {MAX_NUMBER:.0e}")
    if isinstance(op, ast.Mult) and (isinstance(left, list) or isinstance(right, list)):
        items, times = (left, right) if isinstance(left, list) else (right, left)
        if _is_number(times) and len(items) * times > MAX_ITEMS:
            raise _TooLarge(f"makes a list of more than {MAX_ITEMS:,} items")


def _bounded(value: Any) -> Any:
    if _is_number(value) and not abs(value) <= MAX_NUMBER:  # also catches NaN
        raise _TooLarge(f"is larger than {MAX_NUMBER:.0e}")
    if isinstance(value, complex):
        raise _TooLarge("is not a real number")
    if isinstance(value, list) and len(value) > MAX_ITEMS:
        raise _TooLarge(f"makes a list of more than {MAX_ITEMS:,} items")
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _error(message: str, location, what: str, scope) -> BuildError:
    known = ", ".join(f"{k}={v!r}" for k, v in scope.items()) or "none"
    return BuildError(f"{what}: {message}", location=location, hint=f"Parameters here: {known}.")
