"""Defaults that keep results comparable: an unseen test split, float32 everywhere, schedules in epochs,
caching only what fits, and no silent fall-back to another device, strategy or precision."""

from __future__ import annotations

import collections
import json

import pytest

from cnnzoo import CnnzooError, load_config, train
from cnnzoo.data.cache import choose_cache
from cnnzoo.data.splits import Splits
from cnnzoo.models.compile import make_optimizer, steps_per_epoch
from cnnzoo.runtime.precision import choose_precision
from cnnzoo.runtime.strategy import choose_strategy
from conftest import CONFIGS, TINY, cli

QUICK = TINY


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    """The quickstart's data with every data and runtime default: 2 short epochs."""
    lines = []
    config = load_config(QUICK, ["train.epochs=2", "train.steps_per_epoch=5", "runtime.seed=3"])
    result = train(config, output_dir=str(tmp_path_factory.mktemp("defaults") / "run"), log=lines.append)
    return result, lines


@pytest.mark.slow
def test_validation_is_the_last_tenth_of_train_and_the_first_line_says_so(default_run):
    result, lines = default_run
    metrics = result.metrics
    assert metrics["splits"] == {"train": "train[0:5400]", "validation": "train[5400:6000]", "test": "test"}
    assert "on mnist_sample train[0:5400], validating on train[5400:6000] (the last 10% of the training split)" in lines[0]
    # metrics.json keeps the validation and test numbers apart
    assert set(metrics["validation"]) == {"loss", "accuracy"} and set(metrics["test"]) == {"loss", "accuracy"}
    assert metrics["validation"]["accuracy"] == metrics["history"]["val_accuracy"][-1]
    assert metrics["validation"]["accuracy"] != metrics["test"]["accuracy"]


@pytest.mark.slow
def test_validating_on_the_test_split_is_allowed_with_a_warning(tmp_path):
    done = cli("validate", QUICK, "data.validation_split=test")
    assert done.returncode == 0, done.stderr
    assert "warning:" in done.stderr and "model selection (checkpoints/best.keras, EarlyStopping) sees the test set" \
        in done.stderr
    slide = load_config(CONFIGS / "slide_cnn.yaml")  # faithful to Keras' mnist_cnn example, which did
    assert slide.data.validation_split == "test" and load_config(CONFIGS / "lenet5.yaml").data.validation_split == 0.1


@pytest.mark.slow
def test_float32_is_the_default_and_recorded(default_run):
    result, lines = default_run
    assert load_config(QUICK).runtime.precision == "float32"
    assert load_config(result.run_dir.config).runtime.precision == "float32"
    assert "; float32; default strategy (one device, CPU:0) (chosen by runtime.strategy: auto);" in lines[0]
    assert result.model.get_layer("conv2d_1").compute_dtype == "float32"


def test_a_cpu_with_native_bfloat16_is_told_once_what_auto_would_gain():
    config = load_config(QUICK)
    note = choose_precision(config, "cpu", flags={"avx2", "avx512_bf16"}).note
    assert "runtime.precision=auto" in note and "1.5x faster" in note
    assert choose_precision(config, "cpu", flags={"avx2"}).note is None
    # said only when the default was left alone: a config that asks for float32 knows
    assert choose_precision(load_config(QUICK, ["runtime.precision=float32"]), "cpu", flags={"avx512_bf16"}).note is None
    auto = choose_precision(load_config(QUICK, ["runtime.precision=auto"]), "cpu", flags={"avx512_bf16"})
    assert auto.policy == "mixed_bfloat16" and "auto chose mixed_bfloat16" in auto.note


def test_bfloat16_asked_on_a_cpu_that_emulates_it_is_warned_with_the_measured_cost_and_the_override():
    config = load_config(QUICK, ["runtime.precision=mixed_bfloat16"])
    emulated = choose_precision(config, "cpu", flags={"avx2", "fma"})
    assert emulated.policy == "mixed_bfloat16"  # flagged, never silently swapped
    assert "9.5x slower" in emulated.warning and "`runtime.precision=float32`" in emulated.warning
    assert choose_precision(config, "cpu", flags={"avx2", "avx512_bf16"}).warning is None


def test_an_epoch_schedule_keeps_its_drops_at_the_same_point_of_training_at_any_batch_size():
    drops = {}
    for batch in (128, 256):
        config = load_config(CONFIGS / "resnet" / "resnet20.yaml", [f"data.batch_size={batch}"])
        steps = steps_per_epoch(config, 45_000)
        drops[batch] = _schedule(make_optimizer(config, steps))["boundaries"]
        assert config.train.lr_schedule.unit == "epoch" and config.train.lr_schedule.kwargs["boundaries"] == [82, 123]
    assert drops == {128: [82 * 352, 123 * 352], 256: [82 * 176, 123 * 176]}


def test_step_schedules_and_every_steps_argument_convert(tmp_path):
    config = load_config(QUICK, ["train.lr_schedule={name: CosineDecay, unit: epoch, initial_learning_rate: 0.1, "
                                 "decay_steps: 2.5, warmup_steps: 0.5, warmup_target: 0.2}"])
    schedule = _schedule(make_optimizer(config, steps_per_epoch(config, 5400)))
    assert (schedule["decay_steps"], schedule["warmup_steps"]) == (108, 22)  # 43 steps per epoch
    plain = load_config(QUICK, ["train.lr_schedule={name: PiecewiseConstantDecay, boundaries: [10], values: [1.0, 0.1]}"])
    assert _schedule(make_optimizer(plain, 43))["boundaries"] == [10]  # steps stay steps


def _schedule(optimizer) -> dict:
    return optimizer.get_config()["learning_rate"]["config"]


def test_cache_only_what_fits_in_memory():
    config = load_config(CONFIGS / "resnet" / "resnet50.yaml")
    imagenet = Splits("train[0:1153051]", "train[1153051:1281167]", "validation",
                      sizes=(("train[0:1153051]", 1153051), ("train[1153051:1281167]", 128116), ("validation", 50000)))
    choice = choose_cache(config, imagenet, (224, 224, 3), memory=24 * 2**30)
    assert not choice.cache and "about 746.5 GB" in choice.note and "24 GB of memory" in choice.note
    mnist = Splits("train[0:54000]", "train[54000:60000]", "test",
                   sizes=(("train[0:54000]", 54000), ("train[54000:60000]", 6000), ("test", 10000)))
    assert choose_cache(load_config(QUICK), mnist, (28, 28, 1), memory=24 * 2**30).cache
    forced = choose_cache(load_config(QUICK, ["data.cache=true"]), imagenet, (224, 224, 3), memory=24 * 2**30)
    assert forced.cache and "data.cache is true" in forced.warning
    assert not choose_cache(load_config(QUICK, ["data.cache=false"]), mnist, (28, 28, 1)).cache


@pytest.mark.slow
def test_the_pipeline_caches_as_decided():
    import tensorflow as tf

    from cnnzoo.data.tfds_input import load_datasets

    def ops(overrides):  # the kinds of op in the training pipeline's tf.data graph and its functions, counted
        graph = tf.compat.v1.GraphDef.FromString(
            load_datasets(load_config(QUICK, overrides), one_hot=True).train._as_serialized_graph().numpy())
        nodes = [*graph.node, *(node for function in graph.library.function for node in function.node_def)]
        return collections.Counter(node.op for node in nodes)

    cached, uncached = ops([]), ops(["data.cache=false"])
    # Cached: the decoded pixels (no TFDS record parsing), preprocessed in batches, one cache of float32 pixels
    assert cached["CacheDatasetV2"] == 1 and cached["UnbatchDataset"] == 1 and not cached["ParseExampleV2"]
    # Not cached: TFDS parses and decodes the records itself, every epoch
    assert uncached["ParseExampleV2"] and uncached["DecodePng"] + uncached["DecodeImage"] and not uncached["UnbatchDataset"]


@pytest.mark.parametrize("overrides, message", [
    (["runtime.strategy=one_device", "runtime.devices=[GPU:0]"], "runtime.devices names GPU:0, which this machine does not have"),
    (["runtime.strategy=mirrored"], "no GPU to mirror over"),
    (["runtime.devices=[/gpu:1]"], "runtime.devices names GPU:1"),
    (["runtime.strategy=default", "runtime.devices=[CPU:0]"], "runtime.devices applies to the one_device and mirrored"),
    (["runtime.precision=mixed_float16"], "mixed_float16, which needs a GPU"),
])
def test_a_device_strategy_or_precision_that_cannot_be_had_is_an_error_before_any_data(tmp_path, overrides, message):
    # mnist is neither prepared nor downloadable here: reaching the data would be a different error
    done = cli("train", CONFIGS / "slide_cnn.yaml", "--output-dir", tmp_path / "r", *overrides)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert message in done.stderr and "mnist" not in done.stderr.split("error:")[1].split(".")[0]
    assert not (tmp_path / "r").exists()


def test_devices_named_with_auto_choose_the_strategy_and_say_so():
    choice = choose_strategy(load_config(QUICK, ["runtime.devices=[/cpu:0]"]))
    assert (choice.kind, choice.devices, choice.auto) == ("one_device", ("CPU:0",), True)
    assert choice.summary() == "one device: CPU:0 (chosen by runtime.strategy: auto)"
    with pytest.raises(CnnzooError, match="no GPU to mirror over"):
        choose_strategy(load_config(QUICK, ["runtime.strategy=mirrored"]))


@pytest.mark.slow
def test_metrics_json_of_a_run_without_validation(tmp_path):
    config = load_config(QUICK, ["train.epochs=1", "train.steps_per_epoch=2", "data.validation_split=null"])
    result = train(config, output_dir=str(tmp_path / "r"), log=lambda _: None)
    metrics = json.loads(result.run_dir.metrics.read_text())
    assert metrics["splits"]["validation"] is None and metrics["validation"] == {}
    assert metrics["splits"]["train"] == "train"
