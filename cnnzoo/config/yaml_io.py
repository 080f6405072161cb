"""YAML reading with source positions, and YAML-1.2 number rules.

PyYAML's SafeLoader follows YAML 1.1, where `1e-3` is a *string*. We add the
YAML 1.2 float pattern so learning rates written the usual way are numbers.
Positions are collected from the composed node tree, so every key and list
item can be traced back to `file:line:column` in error messages.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from cnnzoo.errors import ConfigError, Location

KeyPath = tuple[Any, ...]
Marks = dict[KeyPath, Location]


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML-1.2 floats (`1e-3`, `1E5`); constructs only plain types."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+][0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def parse_yaml(text: str, source: str) -> tuple[Any, Marks]:
    """Parse YAML text; return (data, marks) where marks maps key paths to locations.

    Raises:
        ConfigError: on YAML syntax errors, with the position PyYAML reports.
    """
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        location = Location(source, mark.line + 1, mark.column + 1) if mark else Location(source)
        problem = exc.problem or str(exc)
        raise ConfigError(
            f"invalid YAML: {problem}",
            location=location,
            hint="Check indentation and that every `key: value` has a space after the colon.",
        ) from None
    finally:
        loader.dispose()
    marks: Marks = {}
    if node is not None:
        _collect_marks(node, (), source, marks)
    return data, marks


def read_yaml(path: Path) -> tuple[Any, Marks]:
    """Read and parse a YAML file; a missing file is a ConfigError."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"config file {path} is not UTF-8 text (byte {exc.start} cannot be decoded)",
            location=Location(str(path)),
            hint="Save it as UTF-8.",
        ) from None
    except IsADirectoryError:
        raise ConfigError(f"{path} is a folder, not a config file", location=Location(str(path))) from None
    except FileNotFoundError:
        raise ConfigError(
            f"config file not found: {path}",
            hint="Check the path (it is relative to the current directory, or to the file that `extends` it).",
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    return parse_yaml(text, str(path))


def parse_value(text: str, source: str) -> Any:
    """Parse one command-line override value (scalar, list or mapping) with the config files' rules."""
    data, _ = parse_yaml(text, source)
    return data


def _collect_marks(node: yaml.Node, path: KeyPath, source: str, marks: Marks) -> None:
    marks[path] = _location(node, source)
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, yaml.Node] = {}
        for key_node, value_node in node.value:
            if key_node.value in seen:
                # PyYAML keeps the last silently: a repeated section would drop the first one's keys.
                first = _location(seen[key_node.value], source)
                raise ConfigError(
                    f"key `{key_node.value}` appears twice in the same mapping (first at line {first.line})",
                    location=_location(key_node, source),
                    hint="Merge the two into one; YAML keeps only the last.",
                )
            seen[key_node.value] = key_node
            key_path = path + (key_node.value,)
            _collect_marks(value_node, key_path, source, marks)
            # The key's own position is more useful than its value's in messages.
            marks[key_path] = _location(key_node, source)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _collect_marks(item, path + (index,), source, marks)


def _location(node: yaml.Node, source: str) -> Location:
    return Location(source, node.start_mark.line + 1, node.start_mark.column + 1)


def nearest_mark(marks: Marks, path: KeyPath) -> Location | None:
    """Where `path` was written, or its nearest written ancestor (e.g. a default's section)."""
    for end in range(len(path), -1, -1):
        if path[:end] in marks:
            return marks[path[:end]]
    return None


def dump_yaml(data: Any) -> str:
    """Serialise plain data as block-style YAML, keys in insertion order."""
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=None)
