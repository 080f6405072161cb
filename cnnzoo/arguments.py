"""Check config arguments against a Keras class's constructor before Keras sees them.

Keras reports a misspelt keyword as a bare `TypeError`/`ValueError` deep in
its code; checking the signature first lets us name the key, the line and
the closest valid spelling.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any, Callable

from cnnzoo.errors import BuildError, Location, did_you_mean, keras_message


def accepted_keywords(cls: type, stop: type | None = None) -> list[str]:
    """Keyword arguments `cls(...)` accepts, following `**kwargs` up the MRO to `stop`."""
    names: list[str] = []
    for klass in cls.__mro__:
        if klass is object or "__init__" not in vars(klass):
            continue
        params = _params(klass)
        names += [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        if not any(p.kind is p.VAR_KEYWORD for p in params) or klass is stop:
            break
    return list(dict.fromkeys(names))


def required_arguments(cls: type) -> list[str]:
    """Arguments of `cls.__init__` that have no default."""
    return [
        p.name
        for p in _params(cls)
        if p.default is p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]


def bind(
    cls: type,
    args: list[Any],
    kwargs: dict[str, Any],
    *,
    what: str,
    location: Location | None,
    path: str | None,
    stop: type | None = None,
    locate: Callable[[str], Location | None] | None = None,
    partial: bool = False,
) -> dict[str, Any]:
    """Turn positional `args` into keywords and check every keyword exists.

    `locate(key)`, if given, finds where one keyword was written, for sharper messages.
    `partial=True` checks the given arguments only (defaults for a class, not a whole call).

    Returns:
        All arguments as keywords.

    Raises:
        BuildError: too many positionals, an unknown keyword (with suggestion),
            an argument given twice, or a required argument missing.
    """
    positional = positional_names(cls)
    if len(args) > len(positional):
        raise BuildError(
            f"{what} takes at most {len(positional)} positional arguments "
            f"({', '.join(positional) or 'none'}), got {len(args)}: {args}",
            location=location,
            path=path,
            hint=f"Use a mapping to name them, e.g. `{cls.__name__}: {{{positional[0] if positional else 'name'}: ...}}`.",
        )
    bound = dict(zip(positional, args))
    accepted = accepted_keywords(cls, stop)
    for key, value in kwargs.items():
        if key in bound:
            raise BuildError(f"{what}: argument `{key}` given twice", location=location, path=path)
        if key not in accepted:
            raise BuildError(
                f"{what} has no argument `{key}`.{did_you_mean(key, accepted)}",
                location=(locate and locate(key)) or location,
                path=path,
                hint=f"Its arguments: {', '.join(accepted)}.",
            )
        bound[key] = value
    missing = [] if partial else [name for name in required_arguments(cls) if name not in bound]
    if missing:
        raise BuildError(
            f"{what} needs argument(s) {', '.join(f'`{m}`' for m in missing)}",
            location=location,
            path=path,
            hint=f"Example: `{cls.__name__}: {{{missing[0]}: ...}}`.",
        )
    defaults = {p.name: p.default for p in _params(cls)}
    return {
        key: _coerce(key, value, defaults.get(key), what, (locate and locate(key)) or location, path)
        for key, value in bound.items()
    }


def positional_names(cls: type) -> list[str]:
    """Arguments that may be given by position, in order."""
    return [p.name for p in _params(cls) if p.kind is p.POSITIONAL_OR_KEYWORD]


def construct(cls: type, kwargs: dict[str, Any], *, what: str, location: Location | None,
              path: str | None = None, hint: str | None = None) -> Any:
    """`cls(**kwargs)`, with Keras' own argument checks (ValueError, TypeError, ...) as BuildErrors."""
    try:
        return cls(**kwargs)
    except Exception as exc:
        raise BuildError(f"{what}: {keras_message(exc)}", location=location, path=path, hint=hint) from None


def _coerce(key: str, value: Any, default: Any, what: str, location: Location | None, path: str | None) -> Any:
    """YAML-typed values the way Keras wants them: `1` for a float argument becomes `1.0`."""
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)  # Keras rejects e.g. `learning_rate=1` (an int)
    numeric_default = isinstance(default, (int, float)) and not isinstance(default, bool)
    if isinstance(value, bool) and (numeric_default or default is inspect.Parameter.empty):
        raise BuildError(
            f"{what}: argument `{key}` expects a number, got {str(value).lower()}",
            location=location,
            path=path,
            hint="YAML reads yes/no/on/off/true/false as booleans.",
        )
    if numeric_default and isinstance(value, str):
        raise BuildError(
            f"{what}: argument `{key}` expects a number, got {value!r}",
            location=location,
            path=path,
            hint="Write numbers without quotes." if is_number(value) else None,
        )
    return value


def is_number(text: str) -> bool:
    """Whether a string reads as a number (for the 'write numbers without quotes' hint)."""
    try:
        float(text)
    except ValueError:
        return False
    return True


@functools.cache  # a class's signature does not change, and a config asks again for every layer of every repeat
def _params(cls: type) -> tuple[inspect.Parameter, ...]:
    try:
        params = tuple(inspect.signature(cls.__init__).parameters.values())
    except (TypeError, ValueError):
        return ()
    return params[1:] if params and params[0].name == "self" else params
