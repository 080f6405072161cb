"""Check config arguments against a Keras class's constructor before Keras sees them.

Keras reports a misspelt keyword as a bare `TypeError`/`ValueError` deep in
its code; checking the signature first lets us name the key, the line and
the closest valid spelling.
"""

from __future__ import annotations

import inspect
from typing import Any

from cnnzoo.errors import BuildError, Location, did_you_mean


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
) -> dict[str, Any]:
    """Turn positional `args` into keywords and check every keyword exists.

    Returns:
        All arguments as keywords.

    Raises:
        BuildError: too many positionals, an unknown keyword (with suggestion),
            an argument given twice, or a required argument missing.
    """
    positional = [
        p.name for p in _params(cls) if p.kind is p.POSITIONAL_OR_KEYWORD
    ]
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
        if key not in accepted:
            raise BuildError(
                f"{what} has no argument `{key}`.{did_you_mean(key, accepted)}",
                location=location,
                path=path,
                hint=f"Its arguments: {', '.join(accepted)}.",
            )
        if key in bound:
            raise BuildError(f"{what}: argument `{key}` given twice", location=location, path=path)
        bound[key] = value
    missing = [name for name in required_arguments(cls) if name not in bound]
    if missing:
        raise BuildError(
            f"{what} needs argument(s) {', '.join(f'`{m}`' for m in missing)}",
            location=location,
            path=path,
            hint=f"Example: `{cls.__name__}: {{{missing[0]}: ...}}`.",
        )
    return bound


def _params(cls: type) -> list[inspect.Parameter]:
    try:
        params = list(inspect.signature(cls.__init__).parameters.values())
    except (TypeError, ValueError):
        return []
    return params[1:] if params and params[0].name == "self" else params
