"""Repeated structure in an imported layer list -> `blocks` and `stage` items.

A segment of consecutive items can be a block when it is self-contained: its layers take only
each other's outputs or the output just before the segment (the block's `input`), and nothing
after it takes any of its outputs but the last. Where such a segment is followed by copies of
itself (the same classes, arguments and wiring), the copies become one `stage` of that block:
ResNet50's identity blocks, MobileNetV2's inverted residuals, DenseNet's dense layers. What
repeats nowhere stays a plain item, so a chain stays a plain list, and layer order (and so weight
order) is unchanged.
"""

from __future__ import annotations

import copy
import json
import os
from dataclasses import dataclass
from typing import Any, Optional

MAX_BLOCK = 64  # layers in one block; longer repeats are rare and slow to search for
IN = "in"  # a source that is the block's input


@dataclass
class Node:
    cls: str
    kwargs: Any
    name: str
    sources: list[int]  # indices of the items it takes; -1 is the model's input


def nodes_of(items: list[dict]) -> list[Node]:
    """Items as written by `config_of` -> nodes with explicit sources."""
    index = {item["name"]: k for k, item in enumerate(items)}
    nodes = []
    for k, item in enumerate(items):
        cls = next(key for key in item if key not in ("name", "inputs"))
        inputs = _as_list(item.get("inputs", items[k - 1]["name"] if k else "input"))
        nodes.append(Node(cls, item[cls], item["name"], [-1 if s == "input" else index[s] for s in inputs]))
    return nodes


class Segments:
    """Which segments [i, j) of the nodes are self-contained, and their wiring relative to i."""

    def __init__(self, nodes: list[Node]):
        self.nodes = nodes
        self.last_use = [-1] * len(nodes)
        for k, node in enumerate(nodes):
            for s in node.sources:
                if s >= 0:
                    self.last_use[s] = max(self.last_use[s], k)
        self._keys = [json.dumps([n.cls, n.kwargs], sort_keys=True) for n in nodes]

    def signature(self, i: int, j: int) -> Optional[tuple]:
        """The segment's layers and relative wiring, or None if it is not self-contained."""
        if any(self.last_use[s] >= j for s in range(i, j - 1)):
            return None
        parts = []
        for k in range(i, j):
            wiring = []
            for s in self.nodes[k].sources:
                if s == i - 1:
                    wiring.append(IN)
                elif i <= s < k:
                    wiring.append(s - i)
                else:
                    return None
            parts.append((self._keys[k], tuple(wiring)))
        return tuple(parts)


def find_repeats(nodes: list[Node]) -> list[tuple[int, int, int]]:
    """(start, block length, repeats) of every stage found, left to right, greedily by layers covered.

    Of the alignments of one repeat, the one whose block input feeds two of its layers (a split, as
    in a residual block: the path and the shortcut) is preferred: ResNet50's block is conv ... add,
    relu, not relu, conv ... add; then one whose layers' names share a prefix (VGG16's block4_conv1
    ... block4_pool, not block3_pool ... block4_conv3).
    """
    segments, found, i = Segments(nodes), [], 0
    while i < len(nodes):
        best = _best_at(nodes, segments, i)
        if best is not None:
            for shift in range(1, best[1]):
                other = _best_at(nodes, segments, i + shift)
                if other is not None and other[3:] > best[3:] and other[1] * other[2] >= best[1] * best[2]:
                    best = None  # leave item i plain: a better alignment starts a little later
                    break
        if best:
            found.append(best[:3])
            i += best[1] * best[2]
        else:
            i += 1
    return found


def _best_at(nodes: list[Node], segments: Segments, i: int) -> Optional[tuple[int, int, int, bool, bool]]:
    """The repeat starting at i covering most layers: (start, length, repeats, its input splits, its
    layers' names share a prefix)."""
    best = None
    for length in range(2, min(MAX_BLOCK, (len(nodes) - i) // 2) + 1):
        first = segments.signature(i, i + length)
        if first is None:
            continue
        repeats = 1
        while i + (repeats + 1) * length <= len(nodes) and \
                segments.signature(i + repeats * length, i + (repeats + 1) * length) == first:
            repeats += 1
        while repeats > 1 and not _stage_output_ok(nodes, segments, i, length, repeats):
            repeats -= 1
        if repeats > 1 and (best is None or length * repeats > best[1] * best[2]):
            splits = sum(wiring.count(IN) for _, wiring in first) > 1
            named = bool(_common_prefix([n.name for n in nodes[i:i + length]]))
            best = (i, length, repeats, splits, named)
    return best


def _stage_output_ok(nodes: list[Node], segments: Segments, start: int, length: int, repeats: int) -> bool:
    """Only the stage's last output is known after it (by the stage's name): the outputs of its
    other blocks must not be taken beyond the stage."""
    end = start + length * repeats
    return all(segments.last_use[start + r * length - 1] < end for r in range(1, repeats))


def with_blocks(items: list[dict]) -> tuple[dict[str, dict], list[dict]]:
    """(blocks, items): the repeated segments of `items` as blocks used by stages."""
    nodes = nodes_of(items)
    repeats = find_repeats(nodes)
    if not repeats:
        return {}, items
    blocks: dict[str, dict] = {}
    out: list[dict] = []
    taken = {n.name for n in nodes}
    outputs = {}  # the name of a stage's last layer -> the stage's name, which later items list instead
    k = 0
    for start, length, count in repeats:
        out.extend(items[k:start])
        name = f"block{len(blocks) + 1}"
        blocks[name] = {"shortcut": "none", "layers": block_layers(nodes, start, length)}
        stage = _stage_name(nodes, start, length, count, taken)
        taken.add(stage)
        out.append({"stage": {"name": stage, "block": name, "repeat": count}})
        k = start + length * count
        outputs[nodes[k - 1].name] = stage
    out.extend(items[k:])
    for item in out:
        if "inputs" in item:
            renamed = [outputs.get(s, s) for s in _as_list(item["inputs"])]
            item["inputs"] = renamed if isinstance(item["inputs"], list) else renamed[0]
    return blocks, out


def block_layers(nodes: list[Node], start: int, length: int) -> list[dict]:
    """The first copy's layers as block items: local names only where a later layer takes them."""
    members = nodes[start:start + length]
    prefix = _common_prefix([n.name for n in members])
    local = {}
    for t, node in enumerate(members):
        name = node.name[len(prefix):].strip("_") or f"layer{t + 1}"
        usable = name[0].isalpha() and name not in local.values() and name != "input"  # `input`: the block's
        local[start + t] = name if usable else f"layer{t + 1}"
    layers = []
    for t, node in enumerate(members):
        item: dict[str, Any] = {node.cls: node.kwargs}
        sources = ["input" if s == start - 1 else local[s] for s in node.sources]
        if sources != (["input"] if t == 0 else [local[start + t - 1]]):
            item["inputs"] = sources if len(sources) > 1 else sources[0]
        layers.append(item)
    listed = {s for item in layers for s in _as_list(item.get("inputs", []))}
    for t, item in enumerate(layers):
        if local[start + t] in listed:  # named only where a later layer lists it
            item["name"] = local[start + t]
    return layers


def _as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def _stage_name(nodes: list[Node], start: int, length: int, count: int, taken: set[str]) -> str:
    """The copies' shared name prefix when it names a stage (`conv2` for conv2_block2_*, conv2_block3_*),
    else the first copy's (`block_2` for block_2_*, `block4` for block4_conv1 ...), else stageN; unique."""
    from cnnzoo.registry import snake_case

    defaults = {snake_case(n.cls) for n in nodes}  # `conv2d` of conv2d_5, conv2d_12 names no stage
    shared = _common_prefix([nodes[start + r * length].name for r in range(count)])
    for name in (shared if any(c.isdigit() for c in shared) else "",
                 _common_prefix([n.name for n in nodes[start:start + length]])):
        if name and name[0].isalpha() and name not in taken and name not in defaults:
            return name
    k = 1
    while f"stage{k}" in taken:
        k += 1
    return f"stage{k}"


def _common_prefix(names: list[str]) -> str:
    """The shared start of the names, cut back to a separator (`conv2_block1_`, `conv2_block2_` -> `conv2`)."""
    prefix = os.path.commonprefix(names)
    cut = max(prefix.rfind("_"), prefix.rfind("."), prefix.rfind("/"))
    return prefix[:cut].strip("_") if cut > 0 else ""


def merge_alike(blocks: dict[str, dict], items: list[dict]) -> tuple[dict[str, dict], list[dict]]:
    """Blocks that differ only in argument values become one block with parameters (ResNet50's four
    stages of identity blocks -> one block taking `filters`); the stages pass their values."""
    groups: dict[str, list[str]] = {}
    for name, block in blocks.items():
        groups.setdefault(json.dumps(_skeleton(block["layers"]), sort_keys=True), []).append(name)
    merged, renamed, values = {}, {}, {}
    for names in groups.values():
        keep = names[0]
        leaves = [_leaves(blocks[n]["layers"]) for n in names]
        differing = [k for k in range(len(leaves[0])) if len({json.dumps(ls[k][1]) for ls in leaves}) > 1]
        params: dict[str, str] = {}  # value vector -> parameter name
        chosen: dict[int, str] = {}
        for k in differing:
            vector = json.dumps([ls[k][1] for ls in leaves])
            if vector not in params:
                key = leaves[0][k][0][-1]
                base = key if isinstance(key, str) and key.isidentifier() else "value"
                params[vector] = _unique(base, set(params.values()))
            chosen[k] = params[vector]
        layers = copy.deepcopy(blocks[keep]["layers"])
        for k, param in chosen.items():
            _set(layers, leaves[0][k][0], f"${param}")
        merged[keep] = {**({"params": {p: None for p in params.values()}} if params else {}),
                        **{key: v for key, v in blocks[keep].items() if key != "layers"}, "layers": layers}
        for n, ls in zip(names, leaves):
            renamed[n] = keep
            values[n] = {chosen[k]: ls[k][1] for k in differing}
    for item in items:
        stage = item.get("stage")
        if stage is not None:
            old = stage["block"]
            stage["block"] = renamed[old]
            stage.update(values[old])
    return merged, items


def _skeleton(layers: list[dict]) -> Any:
    """The layers with every argument value blanked: what two alike blocks share."""
    def blank(value):
        return {k: blank(v) for k, v in value.items()} if isinstance(value, dict) else None

    return [{k: (blank(v) if k not in ("name", "inputs") else v) for k, v in item.items()} for item in layers]


def _leaves(layers: list[dict]) -> list[tuple[tuple, Any]]:
    """(path, value) of every argument value in the layers, in order (lists are single values)."""
    found: list[tuple[tuple, Any]] = []

    def walk(value, path):
        if isinstance(value, dict):
            for k in value:
                walk(value[k], (*path, k))
        else:
            found.append((path, value))

    for t, item in enumerate(layers):
        for k, v in item.items():
            if k not in ("name", "inputs"):
                walk(v, (t, k))
    return found


def _set(layers: list[dict], path: tuple, value: Any) -> None:
    target = layers[path[0]]
    for key in path[1:-1]:
        target = target[key]
    target[path[-1]] = value


def _unique(name: str, taken: set[str]) -> str:
    if name not in taken:
        return name
    k = 2
    while f"{name}_{k}" in taken:
        k += 1
    return f"{name}_{k}"
