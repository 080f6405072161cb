"""The package reads top-down: every import goes to a lower layer (or within its own package), and no
module is a long walk. `python tests/test_layout.py` prints the import graph by layer."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "cnnzoo"
# Top to bottom. A module may import from its own package and from any lower layer, never higher;
# models, data, runtime and pictures are siblings that do not import one another.
LAYERS = [
    ("cli", ["cnnzoo.cli"]),
    ("deploy", ["cnnzoo.deploy"]),
    ("training", ["cnnzoo.training"]),
    ("plan", ["cnnzoo.plan"]),
    ("models | data | runtime | pictures", ["cnnzoo.models", "cnnzoo.data", "cnnzoo.runtime", "cnnzoo.pictures"]),
    ("config", ["cnnzoo.config"]),
    ("registry, arguments, keras_internals", ["cnnzoo.registry", "cnnzoo.arguments", "cnnzoo.keras_internals"]),
    ("errors, version, memory, scores, files",
     ["cnnzoo.errors", "cnnzoo.version", "cnnzoo.memory", "cnnzoo.scores", "cnnzoo.files"]),
]
MAX_LINES = 310


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> tuple[int, str] | None:
    """(layer index, package prefix) of a cnnzoo module; None for the package's own __init__ (the API)."""
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if module == prefix or module.startswith(prefix + "."):
                return index, prefix
    return None


def imports(path: Path) -> set[str]:
    """The cnnzoo modules a file imports, at the top or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules = {f"{node.module}.{alias.name}" for alias in node.names}
            found |= {m for m in modules if _exists(m)} or {node.module}  # `from cnnzoo.config import keras1`
    return {name for name in found if name.startswith("cnnzoo") and _exists(name)}


def import_graph() -> dict[str, set[str]]:
    return {module_name(path): imports(path) for path in sorted(PACKAGE.rglob("*.py"))}


def _exists(module: str) -> bool:
    relative = Path(*module.split("."))
    return (PACKAGE.parent / relative).with_suffix(".py").exists() or (PACKAGE.parent / relative / "__init__.py").exists()


def test_every_import_points_down_or_within_its_package():
    upward = []
    for module, targets in import_graph().items():
        here = layer_of(module)
        if here is None:
            continue
        for target in targets:
            there = layer_of(target)
            if there is None:
                upward.append(f"{module} -> {target} (the package API)")
            elif there[0] < here[0] or (there[0] == here[0] and there[1] != here[1]):
                upward.append(f"{module} -> {target}")
    assert not upward, "imports against the layering:\n" + "\n".join(sorted(upward))


def test_every_module_is_placed_in_a_layer():
    assert [m for m in import_graph() if m != "cnnzoo" and layer_of(m) is None] == []


def test_no_module_is_over_300_lines():
    long = {module_name(p): n for p in PACKAGE.rglob("*.py") if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}


if __name__ == "__main__":
    graph = import_graph()
    for name, prefixes in LAYERS:
        print(f"{name}:")
        for module in sorted(m for m in graph if (layer_of(m) or (None, ""))[1] in prefixes):
            targets = sorted(t for t in graph[module] if t != module and not t.startswith(module + "."))
            print(f"  {module} -> {', '.join(targets) or '(nothing of cnnzoo)'}")
