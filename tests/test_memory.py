"""Memory limits are the container's: cgroup v2 `memory.max`, v1 `memory.limit_in_bytes`, else the RAM."""

from __future__ import annotations

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
