"""Items -> a graph: each item takes the output of the item before it, or the named outputs its
`inputs` lists, so a list of layers can branch and merge (Inception, DenseNet, squeeze-and-excitation).

Names are looked up among earlier items only, so a graph cannot have a cycle; `input` is the
list's input (the model's, or the block's). Every output must be used: by the next item, by a
later item's `inputs`, or as the list's result (its last item).
"""

from __future__ import annotations

from typing import Callable

from cnnzoo.config.items import LayerItem
from cnnzoo.errors import BuildError, did_you_mean

INPUT = "input"


def wire(items, x, apply: Callable, *, context: str = "", where=None):
    """Apply `items` in order from `x`; `apply(item, tensor_or_tensors)` makes one item's output."""
    outputs: dict[str, tuple[object, LayerItem | None]] = {INPUT: (x, None)}
    unused: dict[int, object] = {}  # id(item) -> item, for outputs nothing has taken yet
    previous, previous_item = x, None
    for position, item in enumerate(items):
        refs = item.inputs if isinstance(item, LayerItem) else None
        if refs is None:
            sources = [previous]
            unused.pop(id(previous_item), None)
        else:
            sources = [_lookup(outputs, ref, item, items[position + 1:]) for ref in refs]
            for ref in refs:
                unused.pop(id(outputs[ref][1]), None)
        previous = apply(item, sources[0] if len(sources) == 1 else sources)
        ref = getattr(item, "ref", None)
        if ref is not None:
            if ref in outputs:
                raise BuildError(f"{item.label}: the name `{ref}` is already used"
                                 + (f" by {outputs[ref][1].label}" if outputs[ref][1] else " (the input)"),
                                 location=item.location, hint="Give each named item its own name.")
            outputs[ref] = (previous, item)
        unused[id(item)], previous_item = item, item
    unused.pop(id(previous_item), None)  # the last item's output is the result
    if unused:
        lost = next(iter(unused.values()))
        raise BuildError(
            f"{context}the output of {lost.label} is never used",
            location=lost.location,
            hint="List its `name` in a later item's `inputs` (e.g. a Concatenate or Add), or remove it. "
            "An item without `inputs` takes the item just before it.",
        )
    return previous


def _lookup(outputs: dict, ref: str, item: LayerItem, later: list):
    if ref in outputs:
        return outputs[ref][0]
    after = next((other for other in later if getattr(other, "ref", None) == ref), None)
    if after is not None:
        problem = f"`{ref}` is {after.label}, which comes after it: an item takes only earlier outputs (no cycles)"
    else:
        problem = f"no earlier item is named `{ref}`.{did_you_mean(ref, list(outputs))}"
    raise BuildError(f"{item.label}: input {problem}", location=item.location,
                     hint=f"Names so far: {', '.join(outputs)}.")
