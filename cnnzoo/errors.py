"""Errors raised for user mistakes: the CLI prints them as one paragraph, exit 2.

Anything that is not a `CnnzooError` is a bug in cnnzoo and may show a traceback.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Iterable


@dataclass(frozen=True)
class Location:
    """Where a value came from: a YAML file position or a command-line override."""

    file: str
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        parts = [self.file]
        if self.line is not None:
            parts.append(str(self.line))
            if self.column is not None:
                parts.append(str(self.column))
        return ":".join(parts)


class CnnzooError(Exception):
    """A user-facing error: a message, an optional location, path and hint."""

    exit_code = 2

    def __init__(
        self,
        message: str,
        *,
        location: Location | None = None,
        path: str | None = None,
        hint: str | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.location = location
        self.path = path
        self.hint = hint
        self.more: tuple[CnnzooError, ...] = ()  # further problems found in the same pass

    def __str__(self) -> str:
        return "\n".join([self.one_line(), *(e.one_line() for e in self.more)])

    def one_line(self) -> str:
        """This error alone as `file:line:col: error: path: message hint`."""
        head = f"{self.location}: " if self.location else ""
        path = f"{self.path}: " if self.path else ""
        hint = f" {self.hint}" if self.hint else ""
        end = "" if self.message.endswith((".", "?", "!")) else "."
        return f"{head}error: {path}{self.message}{end}{hint}"


class ConfigError(CnnzooError):
    """A config file or override is malformed, mistyped or names an unknown key."""


class BuildError(CnnzooError):
    """A layer cannot be built: unknown class, bad arguments, impossible shapes."""


class DataError(CnnzooError):
    """A dataset cannot be found, downloaded or prepared."""


class TrainingError(CnnzooError):
    """Training stopped for a reason the user must act on (e.g. NaN loss)."""

    exit_code = 3


SIGPIPE = 13  # the signal of a pipe whose reader exited (Windows names none): 128 + 13 is what shells report


class CnnzooWarning(UserWarning):
    """Something works but is probably not what the user meant; printed as one line."""


def did_you_mean(name: str, choices: Iterable[str], *, n: int = 3) -> str:
    """Return ' Did you mean `x`?' (or '') for the closest of `choices` to `name`."""
    lowered = {c.lower(): c for c in choices}
    close = difflib.get_close_matches(str(name).lower(), list(lowered), n=n, cutoff=0.6)
    if not close:
        return ""
    # Keep only the matches about as close as the best one: one clear answer beats three.
    best = difflib.SequenceMatcher(None, str(name).lower(), close[0]).ratio()
    close = [c for c in close if difflib.SequenceMatcher(None, str(name).lower(), c).ratio() >= best - 0.02]
    quoted = " or ".join(f"`{lowered[c]}`" for c in close)
    return f" Did you mean {quoted}?"


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_KERAS_NOISE = ("Exception encountered when calling", "Arguments received by", "•", "Call arguments received")


def keras_message(exc: BaseException) -> str:
    """The informative part of a Keras/TF exception: without its wrapper lines, colours and op dumps."""
    lines = [_ANSI.sub("", line).strip() for line in str(exc).splitlines()]
    useful = [line for line in lines if line and not line.startswith(_KERAS_NOISE)]
    text = " ".join(useful[:2]) or type(exc).__name__
    text = re.sub(r"\{\{function_node [^}]*\}\}\s*", "", text).strip("'\" ")
    return text if len(text) <= 300 else text[:297] + "..."
