"""`cnnzoo` command line: parses arguments (`parser.py`), calls the library and prints (`commands.py`).

User mistakes (`CnnzooError`) print as `file:line:col: error: ...` with a hint and exit 2
(3 when training itself failed); anything else is a cnnzoo bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import os
import sys

from cnnzoo.errors import SIGPIPE, CnnzooError


def main(argv: list[str] | None = None) -> int:
    # TensorFlow's C++ start-up lines (e.g. "failed call to cuInit" on CPU machines) confuse
    # more than they help; failures still arrive as Python exceptions. Set it to 0 to see them.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(line_buffering=True)  # epoch lines reach `| tee log` as they happen
    from cnnzoo.cli import console
    from cnnzoo.cli.parser import parser

    args = _parse(parser(), argv)
    console.first_imports()
    console.show_warnings_as_one_line()
    try:
        return args.handler(args) or 0
    except CnnzooError as err:
        print(err, file=sys.stderr)
        _let_go_of_closed_stdout()
        return err.exit_code
    except BrokenPipeError:  # e.g. `cnnzoo list layers | head`: stopped, as SIGPIPE stops a command
        _let_go_of_closed_stdout()
        return 128 + SIGPIPE


def _let_go_of_closed_stdout() -> None:
    """Where the program reading stdout exited (`| head`), point stdout at /dev/null: the lines still
    buffered would otherwise fail at exit, printing "Exception ignored ... BrokenPipeError"."""
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _parse(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """Like parse_args, but `key=value` overrides may also come after options (argparse stops
    collecting a positional list at the first option, and its intermixed mode lacks subcommands)."""
    args, extra = parser.parse_known_args(argv)
    stray = [a for a in extra if a.startswith("-") or "=" not in a or not hasattr(args, "overrides")]
    if stray:
        parser.error(f"unrecognized arguments: {' '.join(stray)}")
    if extra:
        args.overrides = [*args.overrides, *extra]
    return args
