"""The config reference in Markdown (docs/config.md), generated from the typed config's fields:
`cnnzoo schema --markdown > docs/config.md`. A test keeps the committed file in step."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from cnnzoo.config.schema import BlockConfig, Config

INTRO = """\
# Config reference

Generated from `cnnzoo/config/schema.py` by `cnnzoo schema --markdown > docs/config.md`; do not edit by hand.
Every key is optional except `model.layers`. A config may `extends:` one file or a list of files
(paths relative to it): mappings merge, lists and scalars replace. `key.sub=value` overrides on the
command line come last and are read as YAML. Unknown keys and wrong types are errors with the file,
line and column.
"""


def markdown_reference() -> str:
    parts = [INTRO]
    for section, model in _sections(Config):
        parts.append(f"\n## `{section}`\n")
        if model.__doc__ and model is not Config:
            parts.append(f"{_clean(model.__doc__)}\n")
        parts.append("| key | default | meaning |\n| --- | --- | --- |")
        for name, field in model.model_fields.items():
            if _nested(field.annotation) is None or name in ("blocks",):
                parts.append(f"| `{field.alias or name}` | {_default(field)} | {_clean(field.description or '')} |")
    parts.append("\n## `model.blocks.<name>`\n")
    parts.append(f"{_clean(BlockConfig.__doc__)}\n\n| key | default | meaning |\n| --- | --- | --- |")
    for name, field in BlockConfig.model_fields.items():
        parts.append(f"| `{name}` | {_default(field)} | {_clean(field.description or '')} |")
    return "\n".join(parts) + "\n"


def _sections(model: type[BaseModel], prefix: str = "") -> list[tuple[str, type[BaseModel]]]:
    found = []
    for name, field in model.model_fields.items():
        nested = _nested(field.annotation)
        if nested is not None and name != "blocks":
            path = f"{prefix}{name}" + (".<key>" if getattr(field.annotation, "__origin__", None) is dict else "")
            found.append((path, nested))
            found += _sections(nested, path + ".")
    return found


def _nested(annotation: Any) -> type[BaseModel] | None:
    for candidate in (annotation, *getattr(annotation, "__args__", ())):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel) and candidate is not BlockConfig:
            return candidate
    return None


def _default(field) -> str:
    if field.is_required():
        return "required"
    value = field.default_factory() if field.default_factory is not None else field.default
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    return f"`{json.dumps(value)}`"


def _clean(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")
