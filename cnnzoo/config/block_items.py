"""Stages and block uses of `model.layers` -> `BlockItem`s, with the block's parameters filled in.

A stage repeats a block (`- stage: {block: basic, repeat: 3, filters: 16, first: {strides: 2}}`),
giving `first:` and `last:` to its first or last block only; `- basic: {filters: 64}` uses a
block once. Each use's layers are parsed with `$params` and `${...}` taken from the block's
parameters, then `model.params`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from cnnzoo.config import expressions
from cnnzoo.config.items import MAX_LAYERS, NAME, SHORTCUTS, BlockItem, LayerItem, parse_layer, split_item
from cnnzoo.errors import BuildError, did_you_mean

STAGE_KEYS = ("block", "repeat", "name", "first", "last")


def stage_items(config, defaults, item: dict, index: int) -> list[BlockItem]:
    """`stage: {block, repeat, name, first, last, **params}`: the block `repeat` times."""
    where = lambda *sub: config.where("model", "layers", index - 1, "stage", *sub)  # noqa: E731
    args = item["stage"]
    if not isinstance(args, dict) or "block" not in args:
        raise BuildError(
            f"layer {index}: a stage needs a mapping with `block` and `repeat`, got {args!r}",
            location=where(), path=f"model.layers.{index - 1}.stage",
            hint="Example: `- stage: {block: basic, repeat: 3, filters: 32, first: {strides: 2}}`.",
        )
    args = expressions.substitute(args, dict(config.model.params), where(), f"layer {index} (stage)")
    name = _lookup_block(config, args["block"], where("block"), f"model.layers.{index - 1}.stage.block")
    repeat = args.get("repeat", 1)
    if not isinstance(repeat, int) or isinstance(repeat, bool) or not 1 <= repeat <= MAX_LAYERS:
        raise BuildError(f"layer {index}: stage `repeat` must be a whole number from 1 to {MAX_LAYERS:,}, "
                         f"got {repeat!r}", location=where("repeat"), path=f"model.layers.{index - 1}.stage.repeat")
    stage_name = str(args.get("name", f"stage{index}"))
    shared = {k: v for k, v in args.items() if k not in STAGE_KEYS}
    ends = {key: args.get(key) or {} for key in ("first", "last")}
    for key, value in ends.items():
        if not isinstance(value, dict):
            raise BuildError(f"layer {index}: stage `{key}` must map parameters to values, got {value!r}",
                             location=where(key), hint=f"Example: `{key}: {{strides: 2}}`.")
    uses = []
    for k in range(1, repeat + 1):
        first, last = (ends["first"] if k == 1 else {}), (ends["last"] if k == repeat else {})
        locate = lambda key, first=first, last=last: (  # noqa: E731
            where("last", key) if key in last else where("first", key) if key in first else where(key))
        values = _block_values(config, name, {**shared, **first, **last}, locate, index)
        uses.append(_block(config, defaults, name, values, f"{stage_name}_block{k}_",
                           f"stage `{stage_name}` block {k} (`{name}`), "))
    if NAME.fullmatch(stage_name):  # later items may take the stage's output by its name
        uses[-1] = dataclasses.replace(uses[-1], ref=stage_name)
    return uses


def block_use(config, defaults, item: Any, index: int) -> BlockItem:
    """`- basic` or `- basic: {filters: 64}`: one block."""
    where = config.where("model", "layers", index - 1)
    name, args, kwargs = split_item(item, what=f"layer {index}", location=where, path=f"model.layers.{index - 1}",
                                    example="`- basic: {filters: 64, strides: 2}`")
    if args:
        raise BuildError(f"layer {index}: block `{name}` takes its parameters as a mapping, got {args!r}",
                         location=where, hint=f"Example: `- {name}: "
                         f"{{{', '.join(f'{p}: ...' for p in config.model.blocks[name].params)}}}`.")
    kwargs = expressions.substitute(kwargs, dict(config.model.params), where, f"layer {index} ({name})")
    values = _block_values(config, name, kwargs, lambda key: config.where("model", "layers", index - 1, name, key),
                           index)
    return _block(config, defaults, name, values, f"{name}{index}_", f"layer {index} (block `{name}`), ")


def _block(config, defaults, name: str, values: dict[str, Any], prefix: str, context: str) -> BlockItem:
    block = config.model.blocks[name]
    scope = {**config.model.params, **values}
    shortcut_at = config.where("model", "blocks", name, "shortcut")
    kind = expressions.substitute(block.shortcut, scope, shortcut_at, f"{context}shortcut")
    if kind not in SHORTCUTS:
        raise BuildError(
            f"block `{name}`: unknown shortcut `{kind}`.{did_you_mean(str(kind), SHORTCUTS)}",
            location=shortcut_at, path=f"model.blocks.{name}.shortcut",
            hint="Choose identity, A (subsample + zero-pad channels), B (projection) or none (plain net).",
        )
    def part(key: str, first: int, shortcut: bool = False) -> tuple[LayerItem, ...]:
        """The layers of `pre`, `layers`, `after` (numbered on from `first`, as users count) or `projection`."""
        parsed = []
        for position, item in enumerate(getattr(block, key) or ()):
            where = lambda *sub, position=position: config.where("model", "blocks", name, key, position, *sub)  # noqa: E731
            item = expressions.substitute(item, scope, where(), f"{context}{key} layer")
            parsed.append(parse_layer(item, first + position, where, path=f"model.blocks.{name}.{key}.{position}",
                                      defaults=defaults, context=context + ("shortcut " if shortcut else ""),
                                      prefix=prefix + ("shortcut_" if shortcut else "")))
        return tuple(parsed)

    pre = part("pre", 1)
    layers = part("layers", 1 + len(pre))
    after = part("after", 1 + len(pre) + len(layers))
    projection = part("projection", 1, shortcut=True) if block.projection is not None else None
    return BlockItem(name, prefix, context, pre, layers, after, kind, projection, shortcut_at)


def _lookup_block(config, name: Any, where, path: str) -> str:
    if name not in config.model.blocks:
        known = list(config.model.blocks)
        raise BuildError(
            f"no block named `{name}` in model.blocks.{did_you_mean(str(name), known)}",
            location=where, path=path,
            hint=f"Defined blocks: {', '.join(known) or 'none'}. Define one under `model.blocks:`.",
        )
    return name


def _block_values(config, name: str, given: dict[str, Any], locate, index: int) -> dict[str, Any]:
    """The block's parameter values: its defaults, overridden by what the use gives (`locate(key)`: where)."""
    block = config.model.blocks[name]
    unknown = [k for k in given if k not in block.params]
    if unknown:
        raise BuildError(
            f"layer {index}: block `{name}` has no parameter `{unknown[0]}`.{did_you_mean(unknown[0], block.params)}",
            location=locate(unknown[0]),
            hint=f"Its parameters: {', '.join(block.params) or 'none'} (declare new ones in model.blocks.{name}.params).",
        )
    values = expressions.substitute({**block.params, **given}, config.model.params, locate(None),
                                    f"layer {index} ({name})")
    missing = [k for k, v in values.items() if v is None]
    if missing:
        raise BuildError(f"layer {index}: block `{name}` needs parameter `{missing[0]}`", location=locate(None),
                         hint=f"Give it where the block is used, e.g. `{missing[0]}: ...`.")
    return values


def default_projection(block: BlockItem, channels: int, strides: int, defaults: dict[str, dict]) -> tuple[LayerItem, ...]:
    """Shortcut B's default layers, sized by the shapes the block meets: a strided 1x1 Conv2D and BatchNormalization."""
    items = [{"Conv2D": {"filters": channels, "kernel_size": 1, "strides": strides}}, "BatchNormalization"]
    return tuple(parse_layer(item, j + 1, lambda *sub: block.shortcut_location, path=f"model.blocks.{block.name}.shortcut",
                             defaults=defaults, context=block.context + "shortcut ", prefix=block.prefix + "shortcut_")
                 for j, item in enumerate(items))
