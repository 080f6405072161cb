"""The README and docs/ stay true: every command they show is a real subcommand with real options, every
config they name exists, the config reference is the schema's, and the README stays short."""

from __future__ import annotations

import argparse
import re
import shlex

import pytest

from cnnzoo.cli.parser import parser
from cnnzoo.config.reference import markdown_reference
from conftest import REPO

PAGES = [REPO / "README.md", REPO / "benchmarks" / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def _code_lines(page) -> list[str]:
    """Lines of the page's fenced code blocks, comments cut."""
    lines, inside = [], False
    for line in page.read_text().splitlines():
        if line.strip().startswith("```"):
            inside = not inside
            continue
        if inside:
            lines.append(line.split(" #")[0].strip().removeprefix("$ "))
    return lines


def _commands(page) -> list[list[str]]:
    """`cnnzoo ...` and `python train.py ...` commands as argument lists (after `cnnzoo`)."""
    found = []
    for line in _code_lines(page):
        if not line.startswith(("cnnzoo ", "python train.py")):
            continue  # a run's printed lines, YAML, ...: not commands (and may hold a lone quote)
        words = shlex.split(line.replace("[", " ").replace("]", " ").replace("|", " "))
        if words[:1] == ["cnnzoo"]:
            found.append(words[1:])
        elif words[:2] == ["python", "train.py"]:
            found.append(["train", *words[2:]])
    return found


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_command_shown_is_a_real_subcommand_with_real_options(page):
    subcommands = _subcommands()
    for words in _commands(page):
        assert words and words[0] in subcommands, f"{page.name}: `cnnzoo {' '.join(words)}`"
        options = {o for a in subcommands[words[0]]._actions for o in a.option_strings}
        unknown = [w.split("=")[0] for w in words[1:] if w.startswith("-") and w.split("=")[0] not in options]
        assert not unknown, f"{page.name}: `cnnzoo {' '.join(words)}` has no option {unknown}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_config_and_script_named_exists(page):
    text = page.read_text()
    for path in re.findall(r"\b((?:configs|benchmarks|docs)/[a-z0-9_][\w./-]*\.(?:yaml|py|md))", text):  # not X.yaml
        assert (REPO / path).exists(), f"{page.name} names {path}"
    for link in re.findall(r"\]\(([\w./-]+\.(?:md|png))\)", text):  # pages and pictures
        assert (page.parent / link).exists(), f"{page.name} links to {link}"


def test_the_config_reference_is_generated_from_the_schema():
    assert (REPO / "docs" / "config.md").read_text() == markdown_reference(), \
        "run `cnnzoo schema --markdown > docs/config.md`"


def test_the_readme_is_read_in_five_minutes():
    assert len((REPO / "README.md").read_text().splitlines()) <= 200
