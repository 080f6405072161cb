"""`$name` and `${expression}` in layer arguments: block parameters and `model.params`.

A YAML value that is a string starting with `$` is replaced by a value from the scope:
`$filters` by the parameter itself (keeping its type), `${4 * filters}` or
`${depths[2]}` by a small arithmetic expression. Only numbers, names, lists,
indexing and + - * / // % ** are allowed: configs never run arbitrary code.
"""

from __future__ import annotations

import ast
import operator
from typing import Any, Mapping

from cnnzoo.errors import BuildError, Location, did_you_mean

_BINARY = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow,
}
_UNARY = {ast.USub: operator.neg, ast.UAdd: operator.pos}


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
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError:
        raise _error(f"`{text}` is not a parameter or an arithmetic expression", location, what, scope) from None
    return _eval(tree.body, text, scope, location, what)


def _eval(node: ast.AST, text: str, scope: Mapping[str, Any], location, what) -> Any:
    def ev(n):
        return _eval(n, text, scope, location, what)

    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
        return node.value
    if isinstance(node, ast.Name):
        if node.id not in scope:
            raise _error(f"`{text}` refers to `{node.id}`, which is not defined here.{did_you_mean(node.id, scope)}",
                         location, what, scope)
        return scope[node.id]
    if isinstance(node, ast.List):
        return [ev(e) for e in node.elts]
    try:
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            return _BINARY[type(node.op)](ev(node.left), ev(node.right))
        if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
            return _UNARY[type(node.op)](ev(node.operand))
        if isinstance(node, ast.Subscript):
            return ev(node.value)[ev(node.slice)]
    except (TypeError, IndexError, KeyError, ZeroDivisionError) as exc:
        raise _error(f"`{text}` cannot be computed: {exc}", location, what, scope) from None
    raise _error(f"`{text}` uses `{ast.unparse(node)}`; only numbers, names, lists, indexing and + - * / // % ** "
                 "are allowed", location, what, scope)


def _error(message: str, location, what: str, scope) -> BuildError:
    known = ", ".join(f"{k}={v!r}" for k, v in scope.items()) or "none"
    return BuildError(f"{what}: {message}", location=location, hint=f"Parameters here: {known}.")
