"""Memory limits are the container's: cgroup v2 `memory.max`, v1 `memory.limit_in_bytes`, else the RAM.
A run's heap is left out of full garbage collections while it runs, and only then."""

from __future__ import annotations

import gc

from cnnzoo import load_config
from cnnzoo import memory
from cnnzoo.data.cache import choose_cache
from cnnzoo.data.splits import Splits
from cnnzoo.models.weights_budget import WeightsBudget
from conftest import CONFIGS

GiB = 2**30


def test_a_cgroup_v2_limit_is_the_memory_available(tmp_path):
    (tmp_path / "memory.max").write_text(f"{8 * GiB}\n")
    assert memory.available_memory(tmp_path) == min(8 * GiB, memory._physical())
    (tmp_path / "memory.max").write_text("max\n")  # no limit: the RAM
    assert memory.available_memory(tmp_path) == memory._physical()


def test_a_cgroup_v1_limit_counts_and_its_no_limit_value_does_not(tmp_path):
    (tmp_path / "memory").mkdir()
    (tmp_path / "memory" / "memory.limit_in_bytes").write_text(f"{GiB}\n")
    assert memory.available_memory(tmp_path) == GiB
    (tmp_path / "memory" / "memory.limit_in_bytes").write_text("9223372036854771712\n")
    assert memory.available_memory(tmp_path) == memory._physical()


def test_the_cache_and_the_weights_budget_follow_the_container(tmp_path, monkeypatch):
    (tmp_path / "memory.max").write_text(f"{GiB // 4}\n")  # a 256 MiB pod
    monkeypatch.setattr(memory, "CGROUP", tmp_path)
    config = load_config(CONFIGS / "slide_cnn.yaml")
    splits = Splits("train", None, "test", sizes=(("train", 60_000), ("test", 10_000)))  # MNIST: 0.2 GB of float32
    choice = choose_cache(config, splits, (28, 28, 1))
    assert not choice.cache and "0 GB of memory" in choice.note
    assert WeightsBudget().limit == int(0.5 * GiB // 4 / 4)


class Node:
    def __init__(self):
        self.other = self


def test_a_frozen_heap_leaves_older_objects_out_of_collections_and_collects_new_garbage(unfrozen):
    older = Node()
    with memory.frozen_heap():
        assert gc.get_freeze_count() > 0
        assert not any(o is older for o in gc.get_objects())  # a full collection does not scan it
        with memory.frozen_heap():  # re-entrant: the inner exit unfreezes nothing
            pass
        assert gc.get_freeze_count() > 0
        Node()  # garbage made during the run: a cycle
        assert gc.collect() >= 1
    assert gc.get_freeze_count() == 0
    assert any(o is older for o in gc.get_objects())


def test_a_heap_frozen_by_the_caller_is_left_as_the_caller_set_it(unfrozen):
    gc.freeze()
    frozen = gc.get_freeze_count()
    Node()
    with memory.frozen_heap():
        assert gc.get_freeze_count() == frozen  # nothing more frozen (the caller decides what is)
    assert gc.get_freeze_count() == frozen


def test_a_later_run_in_the_process_frees_the_garbage_an_earlier_one_left_before_freezing(unfrozen):
    import weakref

    with memory.frozen_heap():
        pass
    gc.disable()  # no automatic collection in between
    try:
        left = weakref.ref(Node())  # an earlier run's model: garbage in a cycle, not collected yet
        assert left() is not None
        with memory.frozen_heap():
            assert left() is None  # collected, not frozen for the run's length
    finally:
        gc.enable()
