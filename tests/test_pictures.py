"""What the network learned, as pictures: the grids themselves, the TensorBoard images a run
writes, and `cnnzoo pictures` PNG files from a saved run."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import CONFIGS, cli, write
from cnnzoo.pictures import grids
from cnnzoo.pictures.learned import SIZE_LIMIT, wanted


def images_of(run, tb_run: str = "pictures") -> dict[str, list[np.ndarray]]:
    """tag -> the decoded image of every step, read from the run's event files as TensorBoard does
    (TF2 image summaries are tensors of [width, height, png])."""
    import tensorflow as tf
    from tensorboard.backend.event_processing.event_accumulator import TENSORS, EventAccumulator

    events = EventAccumulator(str(run / "logs" / tb_run), size_guidance={TENSORS: 0})
    events.Reload()
    return {tag: [tf.io.decode_png(tf.make_ndarray(e.tensor_proto)[2]).numpy() for e in events.Tensors(tag)]
            for tag in events.Tags()[TENSORS]}


@pytest.mark.slow
def test_a_run_writes_filters_feature_maps_confusion_and_mistakes_each_epoch(pictures_run):
    pictures = images_of(pictures_run)
    assert sorted(pictures) == ["confusion_matrix", "feature_maps/01_conv2d_1", "feature_maps/02_conv2d_3",
                                "feature_maps/03_max_pooling2d_5", "filters/conv2d_1", "grad_cam", "mistakes"]
    assert all(len(steps) == 2 for steps in pictures.values())  # one per epoch
    filters = pictures["filters/conv2d_1"][-1]
    assert filters.shape == (2 + 2 * 50, 2 + 16 * 50, 3)  # 32 kernels of 3x3, 16 a row, enlarged to 48 px
    maps = pictures["feature_maps/01_conv2d_1"]
    assert maps[0].shape == (2 + 4 * 50, 2 + 17 * 50, 3)  # 4 test images: the image, then 16 maps
    assert not np.array_equal(maps[0], maps[1])  # the maps change as the network learns
    for tag in ("confusion_matrix", "mistakes", "grad_cam"):
        assert pictures[tag][-1].std() > 10, tag  # drawn, not blank
    # Grad-CAM: 4 test images and 16 mistakes, two a row of (image, true class's heat, predicted class's heat)
    cam = pictures["grad_cam"][-1]
    assert cam.shape == (2 + 10 * (112 + 30 + 2), 2 + 6 * (112 + 2), 3)
    assert not np.array_equal(pictures["grad_cam"][0], cam)  # the heat changes as the network learns


@pytest.mark.slow
def test_the_same_test_images_every_epoch(pictures_run):
    first, second = images_of(pictures_run)["feature_maps/01_conv2d_1"]
    assert np.array_equal(first[:, :50], second[:, :50])  # column 0: the input images


@pytest.mark.slow
def test_pictures_cli_writes_png_files(pictures_run, tmp_path):
    from matplotlib.image import imread

    done = cli("pictures", pictures_run, "-o", tmp_path / "png")
    assert done.returncode == 0, done.stderr
    files = sorted(p.name for p in (tmp_path / "png").iterdir())
    assert files == ["confusion_matrix.png", "feature_maps-01_conv2d_1.png", "feature_maps-02_conv2d_3.png",
                     "feature_maps-03_max_pooling2d_5.png", "filters-conv2d_1.png", "grad_cam.png", "mistakes.png"]
    matrix = imread(tmp_path / "png" / "confusion_matrix.png")
    assert matrix.shape[0] > 300 and matrix.shape[1] > 300 and matrix.std() > 0.05
    # The run recorded its last confusion matrix during Keras' validation pass; `cnnzoo pictures`
    # predicts the validation split again: the same counts, so the same picture.
    recorded = images_of(pictures_run)["confusion_matrix"][-1]
    assert np.array_equal(recorded, (matrix[..., :3] * 255).round().astype(np.uint8))


def test_pictures_cli_writes_the_grad_cam_of_your_own_image(pictures_run, tmp_path):
    """Any image, any size and colour: decoded and preprocessed as the run's data; its two likeliest classes."""
    from matplotlib.image import imread, imsave

    digit = np.zeros((90, 60, 3), np.float32)
    digit[10:80, 27:33] = 1.0  # a white "1" on black, RGB and not 28x28
    imsave(tmp_path / "one.png", digit)
    done = cli("pictures", pictures_run, "--image", tmp_path / "one.png", "-o", tmp_path / "png")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(tmp_path / "png" / "grad_cam-one.png")]
    picture = imread(tmp_path / "png" / "grad_cam-one.png")
    assert picture.shape[:2] == (2 + 112 + 30 + 2, 2 + 3 * (112 + 2)) and picture.std() > 0.05
    hot = picture[2 + 30:2 + 30 + 112, 2 + 114:2 + 114 + 112, 0]  # the likeliest class's heat: red where hot
    done = cli("pictures", pictures_run, "--image", tmp_path / "missing.png")
    assert done.returncode == 2 and "missing.png" in done.stderr
    assert hot.std() > 0.05
    (tmp_path / "photos").mkdir()  # a folder with a bad file: the others are drawn, the bad one named
    imsave(tmp_path / "photos" / "one.png", digit)
    (tmp_path / "photos" / "cut.jpg").write_bytes(b"\xff\xd8\xff\xe0")
    done = cli("pictures", pictures_run, "--image", tmp_path / "photos", "-o", tmp_path / "folder")
    assert done.returncode == 0 and done.stdout.split() == [str(tmp_path / "folder" / "grad_cam-one.png")], done.stderr
    assert "not drawn" in done.stderr and "cut.jpg" in done.stderr
    np.save(tmp_path / "batch.npy", np.zeros((2, 28, 28), np.uint8))  # rows of an array: named by their row
    done = cli("pictures", pictures_run, "--image", tmp_path / "batch.npy", "-o", tmp_path / "rows")
    assert done.stdout.split() == [str(tmp_path / "rows" / f"grad_cam-batch-{i}.png") for i in (0, 1)], done.stderr


def test_a_model_without_convolutions_says_so_once_and_still_judges(tmp_path):
    config = write(tmp_path / "mlp.yaml", f"extends: {CONFIGS / 'quickstart.yaml'}\nmodel:\n  name: mlp\n  layers:\n"
                   "    - Flatten\n    - Dense: [32, {activation: relu}]\n    - Dense: [10, {activation: softmax}]\n")
    done = cli("train", config, "--output-dir", tmp_path / "run", "train.epochs=1", "train.steps_per_epoch=5")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("no convolution or pooling layer") == 1 and "Grad-CAM" not in done.stdout.replace(
        "no filters, feature maps or Grad-CAM", "")
    assert sorted(images_of(tmp_path / "run")) == ["confusion_matrix", "mistakes"]


@pytest.mark.slow
def test_pictures_off_writes_none(tmp_path):
    done = cli("train", CONFIGS / "quickstart.yaml", "--output-dir", tmp_path / "run", "train.epochs=1",
               "train.steps_per_epoch=3", "train.pictures=false")
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "run" / "logs" / "pictures").exists()


@pytest.mark.parametrize("enabled, params, strategy, on", [
    ("auto", "slide_cnn.yaml", "default", True),
    ("auto", "resnet/resnet50.yaml", "default", False),
    (True, "resnet/resnet50.yaml", "default", True),
    ("auto", "lenet5.yaml", "multi_worker", False),
    (False, "lenet5.yaml", "default", False),
    ("auto", SIZE_LIMIT - 1, "default", True),  # under the limit
    ("auto", SIZE_LIMIT, "default", False),
])
def test_auto_draws_for_small_models(enabled, params, strategy, on):
    from cnnzoo import build_model, load_config
    from cnnzoo.config.train_schema import PicturesConfig

    if isinstance(params, str):  # the model's own count, as a run has it
        params = build_model(load_config(CONFIGS / params)).count_params()
    assert wanted(PicturesConfig(enabled=enabled), params, strategy)[0] is on


def test_rgb_kernels_are_drawn_in_colour_and_each_scaled_to_its_range():
    kernel = np.zeros((3, 3, 3, 2), np.float32)
    kernel[..., 0, 0] = 1.0  # red only
    kernel[..., 2, 1] = -0.001  # faint blue only: still full contrast
    kernel[0, 0, 2, 1] = 0.001
    picture = grids.filter_grid(kernel)
    first = picture[2:50, 2:50]
    assert first[..., 0].max() == 255 and first[..., 1].max() == 0
    second = picture[2:50, 52:100]
    assert second[..., 2].min() == 0 and second[..., 2].max() == 255


def test_the_validation_pass_records_the_matrix_and_mistakes_without_a_second_pass(tmp_path):
    import keras

    from cnnzoo.pictures.learned import Pictures
    from cnnzoo.pictures.record import Recorder
    from cnnzoo.training.pictures import LearnedPictures
    from cnnzoo.training.run_dir import RunDir

    rng = np.random.default_rng(0)
    x, y = rng.random((96, 8, 8, 1), np.float32), rng.integers(0, 3, 96)
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3), keras.layers.Flatten(),
                              keras.layers.Dense(3, activation="softmax")])
    model.compile("sgd", "sparse_categorical_crossentropy")
    recorder = Recorder(3, 5, (8, 8, 1))
    pictures = Pictures(model, x[:2], None)
    predicted = []
    pictures.predicted = lambda validation: predicted.append(1)  # a second pass would be noticed
    callback = LearnedPictures(RunDir(tmp_path), pictures, (x[:40], y[:40]), 1, 1, recorder)
    during_training = []  # the training steps carry no recorder ops: nothing is counted before validation
    watch = keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: during_training.append(
        int(recorder.read()[0].sum())))
    model.fit(x, y, validation_data=(x[:40], y[:40]), batch_size=16, epochs=1, verbose=0, callbacks=[callback, watch])
    assert during_training == [0] * 6
    matrix, images, wrong = recorder.read()
    assert matrix.sum() == 40 and not predicted  # exactly the validation examples, not the training ones
    expected = np.zeros((3, 3), np.int64)
    np.add.at(expected, (y[:40], model.predict(x[:40], verbose=0).argmax(-1)), 1)
    assert np.array_equal(matrix, expected)
    assert len(wrong) == min(5, 40 - np.trace(expected)) and images.shape == (len(wrong), 8, 8, 1)
    assert [w[0] for w in wrong] == sorted((w[0] for w in wrong), reverse=True)
    assert "compute_metrics" not in model.__dict__  # the hook is undone after training
    model.evaluate(x[:40], y[:40], verbose=0)  # with step functions traced again, without the recorder
    assert recorder.read()[0].sum() == 40


@pytest.mark.parametrize("read_all", [True, False])
def test_choosing_the_images_keeps_a_cached_test_split_cached(read_all):
    """Breaking out of a cached pipeline makes TF drop the cache (with a warning): each example is then
    decoded twice. Reading the pass to its end keeps it, so the first evaluation reads memory."""
    import tensorflow as tf

    from cnnzoo.pictures.learned import choose_images

    calls = tf.Variable(0)

    def decode(i):
        calls.assign_add(1)
        return tf.fill([4, 4, 1], tf.cast(i, tf.float32)), i

    batches = tf.data.Dataset.range(600).map(decode).cache().batch(32)
    images = choose_images(batches, 8, seed=0, read_all=read_all)
    assert images.shape == (8, 4, 4, 1) and len({float(x[0, 0, 0]) for x in images}) == 8
    assert all(float(x[0, 0, 0]) < 256 for x in images)  # chosen among the first SAMPLE_POOL
    for _ in batches:  # the first evaluation
        pass
    decoded = int(calls.numpy())
    assert (decoded == 600) if read_all else (decoded > 600)  # else the partial read is decoded again
