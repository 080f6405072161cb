"""The base of every config section: strict types, unknown keys rejected, frozen."""

from __future__ import annotations

from typing import Any, Union

from pydantic import BaseModel, ConfigDict, model_validator

# A Keras class "call" as written in YAML: `Flatten`, `{Dense: 128}`, `{Conv2D: [32, 3]}`,
# `{Conv2D: {filters: 32, kernel_size: 3}}`. Layers and callbacks are written this way and
# parsed by `cnnzoo.config.items.split_item`.
CallItem = Union[str, dict[str, Any]]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Named(BaseModel):
    """A `{name: ..., **kwargs}` mapping, or just the name: kwargs are checked against the Keras class."""

    model_config = ConfigDict(extra="allow", strict=True, frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _name_alone(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value  # `optimizer: sgd`, as in Keras

    @property
    def kwargs(self) -> dict[str, Any]:
        return dict(self.model_extra or {})



