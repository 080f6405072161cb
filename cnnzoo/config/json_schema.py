"""The JSON Schema of config files, for editors (`cnnzoo schema`): generated from the typed config."""

from __future__ import annotations

from typing import Any

from cnnzoo.config.schema import Config


def json_schema() -> dict[str, Any]:
    """JSON Schema for config files, generated from the classes above (never written by hand).

    A file may be a partial layer over the one it `extends`, so nothing is required;
    types, allowed values and unknown keys are checked as `load_config` checks them.
    """
    schema = Config.model_json_schema()
    _drop_required(schema)
    for name in ("OptimizerConfig", "ScheduleConfig", "LossConfig"):  # `optimizer: sgd` is the class name alone
        named = schema["$defs"][name]
        schema["$defs"][name] = {"anyOf": [{"type": "string"}, named], "description": named.get("description", "")}
    pictures = schema["$defs"]["PicturesConfig"]  # `pictures: false` is the switch alone
    schema["$defs"]["PicturesConfig"] = {"anyOf": [{"type": "boolean"}, {"const": "auto"}, pictures],
                                         "description": pictures.get("description", "")}
    schema["properties"]["extends"] = {
        "description": "Config file(s) this one builds on, relative to it; this file's keys are merged over them.",
        "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
    }
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": "cnnzoo config", **schema}


def _drop_required(node: Any) -> None:
    if isinstance(node, dict):
        node.pop("required", None)
        for value in node.values():
            _drop_required(value)
    elif isinstance(node, list):
        for value in node:
            _drop_required(value)
