"""Config loading: defaults <- YAML file(s) via `extends` <- command-line overrides.

The result is a frozen, validated `Config` that remembers where every key was
written, so later stages (builder, trainer) can point at the right line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping

from pydantic import BaseModel, ValidationError

from cnnzoo.config.resolve import declared_input, layer_defaults, resolve_items
from cnnzoo.config.schema import Config
from cnnzoo.config.yaml_io import KeyPath, Marks, nearest_mark, parse_value, read_yaml
from cnnzoo.arguments import is_number
from cnnzoo.errors import ConfigError, Location, did_you_mean

COMMAND_LINE = "<command line>"


def load_config(path: str | Path, overrides: Iterable[str] = ()) -> Config:
    """Load a YAML config, resolve `extends`, apply `key.sub=value` overrides, validate.

    Args:
        path: the YAML file.
        overrides: dotted assignments such as `train.epochs=3`; values are YAML.

    Returns:
        The validated, frozen `Config`.

    Raises:
        ConfigError: with file, line and column for any problem.
    """
    data, marks, sources = _read_with_extends(Path(path), chain=())
    for text in overrides:
        apply_override(data, marks, text)
    if overrides:
        sources = sources + (COMMAND_LINE,)
    return validate_config(data, marks, sources)


def config_from_dict(data: Mapping[str, Any], source: str = "<dict>") -> Config:
    """Validate a config given as a Python mapping (no positions known)."""
    return validate_config(dict(data), {}, (source,))


def validate_config(data: Any, marks: Marks, sources: tuple[str, ...]) -> Config:
    files = [s for s in sources if s != COMMAND_LINE]
    source = files[-1] if files else "<config>"
    if not isinstance(data, dict):
        raise ConfigError(
            "a config must be a mapping with sections model, data, train, runtime",
            location=marks.get((), Location(source)),
        )
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        errors = _unique(_to_config_error(err, data, marks, source) for err in exc.errors())
        order = {name: i for i, name in enumerate(sources)}
        errors.sort(key=lambda e: (order.get(e.location.file, len(order)), e.location.line or 0))
        first = errors[0]
        first.more = tuple(errors[1:])
        raise first from None
    config._marks = marks
    config._sources = sources
    config._defaults = layer_defaults(config)
    config._items = resolve_items(config, config._defaults)
    config._declared_input = declared_input(config)
    if config.search is not None and config.search.parameters:
        from cnnzoo.config.search_check import check_search

        check_search(config, data, marks, sources)
    if config.sweep:
        from cnnzoo.config.search_check import check_sweep

        check_sweep(config, data, marks, sources)
    return config


def _read_with_extends(path: Path, chain: tuple[Path, ...]) -> tuple[dict, Marks, tuple[str, ...]]:
    resolved = path.resolve()
    if resolved in chain:
        cycle = " -> ".join(str(p) for p in chain + (resolved,))
        raise ConfigError(f"`extends` forms a cycle: {cycle}", location=Location(str(path)))
    data, marks = read_yaml(path)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError("a config file must be a mapping of sections", location=marks.get((), Location(str(path))))
    parents = data.pop("extends", None)
    if parents is None:
        return data, marks, (str(path),)
    if isinstance(parents, str):
        parents = [parents]
    if not isinstance(parents, list) or not all(isinstance(p, str) for p in parents):
        raise ConfigError(
            "`extends` must be a file name or a list of file names", location=marks.get(("extends",))
        )
    merged: dict = {}
    merged_marks: Marks = {}
    sources: tuple[str, ...] = ()
    for parent in parents:
        parent_path = path.parent / parent
        if not parent_path.exists():
            raise ConfigError(
                f"`extends` names a file that does not exist: {parent_path}",
                location=marks.get(("extends",)),
                hint="Paths in `extends` are relative to the file that contains them.",
            )
        p_data, p_marks, p_sources = _read_with_extends(parent_path, chain + (resolved,))
        merged = deep_merge(merged, p_data)
        merged_marks.update(p_marks)
        sources += p_sources
    marks.pop(("extends",), None)
    merged_marks.update(marks)
    return deep_merge(merged, data), merged_marks, sources + (str(path),)


CLASS_KEYS = ("optimizer", "lr_schedule", "loss")  # `{name: Class, **its arguments}` sections


def deep_merge(base: dict, override: dict) -> dict:
    """Merge mappings recursively; lists and scalars in `override` replace the base's, and so does a
    `{name: ...}` mapping that names another class (an Adam optimizer keeps none of SGD's arguments)."""
    result = dict(base)
    for key, value in override.items():
        other_class = key in CLASS_KEYS and isinstance(value, dict) and isinstance(result.get(key), dict) and \
            value.get("name", result[key].get("name")) != result[key].get("name")
        if isinstance(value, dict) and isinstance(result.get(key), dict) and not other_class:
            result[key] = deep_merge(result[key], value)
        else:
            result[key] = value
    return result


def apply_override(data: dict, marks: Marks, text: str) -> None:
    """Apply one `a.b.c=value` override in place; list items are addressed by index."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(
            f"override {text!r} is not of the form key.sub=value",
            location=Location(COMMAND_LINE),
            hint="Example: train.epochs=3 data.batch_size=256",
        )
    path = tuple(int(part) if part.isdigit() else part for part in key.strip().split("."))
    value = parse_value(raw, f"{COMMAND_LINE} ({text})")
    node: Any = data
    here = Location(f"{COMMAND_LINE} ({text})")
    for depth, part in enumerate(path[:-1]):
        node = _descend(node, part, path[: depth + 1], text)
        marks.setdefault(path[: depth + 1], here)  # a section the override creates is the override's
    last = path[-1]
    if isinstance(node, list):
        if not isinstance(last, int) or last >= len(node):
            raise ConfigError(f"override {text!r}: no list item {last}", location=Location(COMMAND_LINE))
        node[last] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise ConfigError(f"override {text!r}: {'.'.join(map(str, path[:-1]))} is not a mapping", location=Location(COMMAND_LINE))
    for stale in [p for p in marks if p[: len(path)] == path]:
        del marks[stale]
    marks[path] = here


def _descend(node: Any, part: Any, path: KeyPath, text: str) -> Any:
    if isinstance(node, dict):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        return child
    if isinstance(node, list) and isinstance(part, int) and part < len(node):
        return node[part]
    raise ConfigError(
        f"override {text!r}: cannot descend into {'.'.join(map(str, path))}",
        location=Location(COMMAND_LINE),
    )


# --- mapping pydantic errors to file:line and a hint -------------------------------------


def _to_config_error(err: dict, data: dict, marks: Marks, source: str) -> ConfigError:
    path = _data_path(err["loc"], data)
    dotted = ".".join(str(p) for p in path) or "(top level)"
    location = nearest_mark(marks, path) or Location(source)
    kind = err["type"]
    if kind == "extra_forbidden":
        fields = _fields_at(path[:-1])
        name = path[-1]
        return ConfigError(
            f"unknown key `{name}`.{did_you_mean(str(name), fields)}",
            location=location,
            path=dotted,
            hint=f"Valid keys here: {', '.join(fields)}." if fields else None,
        )
    if kind == "missing":
        return ConfigError(f"missing required key `{path[-1]}`", location=nearest_mark(marks, path[:-1]) or location, path=dotted)
    value = err.get("input")
    if len(path) == 3 and path[:2] in (("model", "layers"), ("train", "callbacks")):
        return ConfigError(
            f"each item must be a class name like `Flatten` or a one-key mapping like `Dense: 128`, got {value!r}",
            location=location,
            path=dotted,
        )
    expected = "a mapping of `key: value` lines" if kind in ("model_type", "dict_type") else None
    text = str(err.get("ctx", {}).get("error", "")) if kind == "value_error" else err["msg"]  # our own validators
    message = (f"expected {expected}" if expected else f"{text[0].lower()}{text[1:]}") + (
        f", got {value!r} ({type(value).__name__})")
    hint = None
    if isinstance(value, bool):
        hint = "YAML reads yes/no/on/off/true/false as booleans: quote the value if you meant a string."
    elif isinstance(value, str) and is_number(value):
        hint = "Write numbers without quotes."
    elif value is None and path:  # YAML's `null` (or an empty value) where the key has no "none"
        hint = f"`{path[-1]}` cannot be null: give a value, or leave the key out for its default."
    return ConfigError(message, location=location, path=dotted, hint=hint)


def _unique(errors) -> list[ConfigError]:
    """One error per place: a union type (e.g. a layer item) otherwise reports each branch."""
    seen: dict[tuple, ConfigError] = {}
    for error in errors:
        seen.setdefault((str(error.location), error.path), error)
    return list(seen.values())


def _data_path(loc: tuple, data: Any) -> KeyPath:
    """Drop pydantic's union-branch tags from `loc`, keeping the path through the data."""
    path: list = []
    node = data
    for part in loc:
        if isinstance(node, dict) and part in node:
            node = node[part]
            path.append(part)
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
            path.append(part)
        elif not isinstance(node, (dict, list)) or isinstance(part, int):
            continue
        elif isinstance(node, dict) and isinstance(part, str) and "[" not in part:
            path.append(part)  # a missing or unknown key: keep it for the message
            node = None
    return tuple(path)


def _fields_at(path: KeyPath) -> list[str]:
    model: type[BaseModel] = Config
    for part in path:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        annotation = getattr(field, "annotation", None)
        candidates = [annotation, *getattr(annotation, "__args__", ())]
        nested = [c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)]
        if not nested:
            return []
        model = nested[0]
    return list(model.model_fields)
