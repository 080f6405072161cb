"""YAML reading with source positions, YAML-1.2 number rules, and bounds.

PyYAML's SafeLoader follows YAML 1.1, where `1e-3` is a *string*. We add the
YAML 1.2 float pattern so learning rates written the usual way are numbers.
Positions are collected from the composed node tree, so every key and list
item can be traced back to `file:line:column` in error messages.

A config is small, so what the reader accepts is bounded: the document's size,
its nesting, the number of values once aliases are expanded (a "billion laughs"
document would otherwise take the validator forever) and the size of integers.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.resolver import Resolver

from cnnzoo.errors import ConfigError, Location

KeyPath = tuple[Any, ...]
Marks = dict[KeyPath, Location]

MAX_BYTES = 1 << 20  # the largest shipped config is under 4 KB
MAX_VALUES = 100_000  # keys, items and scalars, with aliases expanded
MAX_DEPTH = 50
MAX_INT_DIGITS = 20  # 2**64 has 20 digits; Python would parse 4,300
_CONTROL = yaml.reader.Reader.NON_PRINTABLE  # characters YAML refuses (control characters, mostly)
try:
    from yaml._yaml import CParser as _CParser  # libyaml, in PyYAML's wheels
except ImportError:
    _CParser = None


def _construct_int(loader, node):
    """SafeLoader's integers, bounded in length."""
    if len(node.value.lstrip("+-").replace("_", "")) > MAX_INT_DIGITS:
        raise ConfigError(f"the number {node.value[:12]}... has more than {MAX_INT_DIGITS} digits",
                          location=_location(node, loader.source), hint="Is a value pasted in twice?")
    return SafeConstructor.construct_yaml_int(loader, node)


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML-1.2 floats (`1e-3`, `1E5`) and bounded integers; constructs only plain types."""

    source = "<config>"


if _CParser is not None:
    class _FastLoader(Composer, SafeConstructor, Resolver, _CParser):
        """_Loader's rules with libyaml's scanner and parser: the shipped configs parsed 5.7x faster.
        Nodes are still composed in Python, so deep nesting is a RecursionError: libyaml's own
        composer overflowed the C stack (a 200 KB `[[[...` ended the process)."""

        source = "<config>"

        def __init__(self, text: str):
            _CParser.__init__(self, text)
            SafeConstructor.__init__(self)
            Resolver.__init__(self)
            Composer.__init__(self)
else:  # a PyYAML built without libyaml
    _FastLoader = _Loader


_FLOAT = re.compile(  # YAML 1.2's floats: 1e-3 as well as 1.0e-3
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+][0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)
for _loader in {_Loader, _FastLoader}:
    _loader.add_constructor("tag:yaml.org,2002:int", _construct_int)
    _loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))


def parse_yaml(text: str, source: str) -> tuple[Any, Marks]:
    """Parse YAML text; return (data, marks) where marks maps key paths to locations.

    Raises:
        ConfigError: on YAML syntax errors, with the position PyYAML reports.
    """
    _check_text(text, source)
    try:
        return _parse(text, source, _FastLoader)
    except _Refused:
        # libyaml's messages are less precise (`found character that cannot start any token`, without
        # the `'\\t'`): a document it refuses is read again by PyYAML's own parser, for the message.
        return _parse(text, source, _Loader)


class _Refused(Exception):
    """libyaml refused the document: PyYAML's parser is to say why."""


def _parse(text: str, source: str, loader_class: type) -> tuple[Any, Marks]:
    loader = loader_class(text)  # refuses no character now: _check_text did
    loader.source = source
    try:
        node = loader.get_single_node()
        marks: Marks = {}
        if node is not None:
            _collect_marks(node, (), source, marks, _Budget(source))  # bounds the expanded size first
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        if loader_class is not _Loader:
            raise _Refused from None
        raise _yaml_error(exc, source) from None
    except RecursionError:
        raise ConfigError(f"the YAML is nested more than {MAX_DEPTH} levels deep", location=Location(source)) from None
    finally:
        loader.dispose()
    return data, marks


def _yaml_error(exc: yaml.YAMLError, source: str) -> ConfigError:
    if not isinstance(exc, yaml.MarkedYAMLError):  # e.g. a character YAML does not allow, with no mark
        return ConfigError(f"invalid YAML: {str(exc).splitlines()[0]}", location=Location(source))
    mark = exc.problem_mark or exc.context_mark
    location = Location(source, mark.line + 1, mark.column + 1) if mark else Location(source)
    problem = exc.problem or str(exc)
    hint = "Check indentation and that every `key: value` has a space after the colon."
    if "mapping values are not allowed" in problem:
        hint += " A bare layer name with `name:` or `inputs:` under it needs a colon: `- BatchNormalization:`."
    return ConfigError(f"invalid YAML: {problem}", location=location, hint=hint)


def _check_text(text: str, source: str) -> None:
    """Reject what is not a config before YAML sees it: too big, or binary."""
    _check_size(len(text), source)
    binary = _CONTROL.search(text)
    if binary is not None:
        line = text.count("\n", 0, binary.start()) + 1
        raise ConfigError(f"{source} is not a text file: it holds the control character {ord(binary.group()):#06x} "
                          f"at line {line}", location=Location(source, line),
                          hint="A config is a YAML text file, e.g. configs/quickstart.yaml.")


def _check_size(size: int, source: str) -> None:
    if size > MAX_BYTES:
        raise ConfigError(f"{source} is {size:,} bytes long; a config is at most {MAX_BYTES:,}",
                          location=Location(source), hint="Is this the config file you meant?")


class _Budget:
    """Counts values as the marks walk expands aliases; too many is an error, not a hang."""

    def __init__(self, source: str):
        self.source, self.values = source, 0

    def spend(self, node: yaml.Node, path: KeyPath) -> None:
        self.values += 1
        if self.values > MAX_VALUES:
            raise ConfigError(f"the config expands to more than {MAX_VALUES:,} values (YAML aliases repeat their "
                              "anchor's contents)", location=_location(node, self.source),
                              hint="Write the values out, or use `extends` and blocks for repetition.")
        if len(path) > MAX_DEPTH:
            raise ConfigError(f"the YAML is nested more than {MAX_DEPTH} levels deep", location=_location(node, self.source))


def read_yaml(path: Path) -> tuple[Any, Marks]:
    """Read and parse a YAML file; a missing file is a ConfigError."""
    try:
        _check_size(path.stat().st_size, str(path))  # before reading it all
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


def _collect_marks(node: yaml.Node, path: KeyPath, source: str, marks: Marks, budget: _Budget) -> None:
    budget.spend(node, path)  # also bounds a self-referencing alias (`&a [*a]`) by depth
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
            _collect_marks(value_node, key_path, source, marks, budget)
            # The key's own position is more useful than its value's in messages.
            marks[key_path] = _location(key_node, source)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _collect_marks(item, path + (index,), source, marks, budget)


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
