"""What a `data.path` lists, on the folders and CSVs people have: spreadsheets' CSVs, links, odd
names, a class called `train`, the split folders' other names. Each either works or exits 2 saying
which file or line and what to do; none ends in a traceback."""

from __future__ import annotations

import os

import pytest

from cnnzoo.data.folder_listing import list_images
from conftest import cli, write
from test_folders import MODEL, folder, image


def refused(tmp_path, path, *overrides) -> str:
    """`cnnzoo validate` on a config naming `path`: exit 2 and no traceback; its error."""
    config = write(tmp_path / "net.yaml", MODEL + f"data:\n  path: {path}\n  data_dir: {tmp_path / 'tfds'}\n")
    done = cli("validate", config, *overrides)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    return done.stderr


def test_a_csv_saved_by_a_spreadsheet_in_a_legacy_encoding_is_refused_naming_its_line(tmp_path):
    folder(tmp_path / "pets", per_class=2)
    sheet = tmp_path / "labels.csv"
    sheet.write_bytes("path,label\npets/cat/cat0.png,cat\npets/dog/dog0.png,dog\n# caf\xe9\n".encode("cp1252"))
    error = refused(tmp_path, sheet)
    assert "labels.csv:4" in error and "UTF-8" in error


def test_an_image_file_as_data_path_is_refused_asking_for_its_folder(tmp_path):
    pets = folder(tmp_path / "pets", per_class=2)
    error = refused(tmp_path, pets / "cat" / "cat0.png")
    assert "cat0.png is an image" in error and "folder" in error


def test_spreadsheet_habits_in_a_csv_are_read(tmp_path):
    """Backslashes of Windows paths, empty rows a spreadsheet leaves, a split's capital letter."""
    folder(tmp_path / "pets", per_class=2)
    sheet = write(tmp_path / "labels.csv", "path,label,split\r\npets\\cat\\cat0.png,cat,Train\r\n"
                  "pets/dog/dog0.png,dog,TEST\r\n,,\r\npets/eel/eel0.png,eel,valid\r\n,,\r\n")
    listing = list_images(sheet, None)
    assert [(f.rel, f.split) for f in listing.files] == [
        ("pets/cat/cat0.png", "train"), ("pets/dog/dog0.png", "test"), ("pets/eel/eel0.png", "validation")]


def test_a_csv_listing_a_file_twice_or_a_folder_is_refused_naming_the_lines(tmp_path):
    folder(tmp_path / "pets", per_class=2)
    twice = write(tmp_path / "twice.csv", "path,label\npets/cat/cat0.png,cat\npets/dog/dog0.png,dog\n"
                  "pets/cat/cat0.png,dog\n")
    error = refused(tmp_path, twice)
    assert "twice.csv:4" in error and "line 2" in error and "pets/cat/cat0.png" in error
    error = refused(tmp_path, write(tmp_path / "dir.csv", "path,label\npets/cat,cat\n"))
    assert "dir.csv:2" in error and "a folder" in error


def test_links_odd_files_and_names_in_a_class_folder_are_skipped_with_their_reason(tmp_path):
    pets = folder(tmp_path / "pets", per_class=20)
    os.symlink(tmp_path / "nowhere.jpg", pets / "cat" / "broken.jpg")
    os.symlink("..", pets / "cat" / "up")  # a loop, were links to folders followed (Keras does not)
    os.mkfifo(pets / "dog" / "pipe.jpg")  # reading it would wait forever
    image(pets / "eel" / os.fsdecode(b"caf\xe9.png"))  # a name that is not UTF-8 (an old zip's)
    listing = list_images(pets, None)
    assert len(listing.files) == 60
    reasons = dict(listing.skipped)
    assert "broken link" in reasons["cat/broken.jpg"]
    assert "link to a folder" in reasons["cat/up"]
    assert "not a regular file" in reasons["dog/pipe.jpg"]
    assert "not UTF-8" in next(why for rel, why in listing.skipped if rel.startswith("eel/caf"))
    done = cli("validate", write(tmp_path / "net.yaml", MODEL + f"data:\n  path: {pets}\n  data_dir: "
                                 f"{tmp_path / 'tfds'}\n  validation_split: null\n"))
    assert done.returncode == 0, done.stderr


def test_a_class_named_train_is_a_class_unless_every_folder_names_a_split(tmp_path):
    for name in ("train", "car", "bus"):
        image(tmp_path / "vehicles" / name / f"{name}.png")
    assert list_images(tmp_path / "vehicles", None).class_names == ["bus", "car", "train"]
    for split, name in (("train", "a"), ("valid", "b")):  # valid/: Roboflow's and Kaggle's name
        for cls in ("bus", "car"):
            image(tmp_path / "splits" / split / cls / f"{name}.png")
    listing = list_images(tmp_path / "splits", None)
    assert listing.class_names == ["bus", "car"]
    assert sorted(f.split for f in listing.files) == ["train", "train", "validation", "validation"]
    for split in ("Train", "Test"):  # as some exports name them
        for cls in ("bus", "car"):
            image(tmp_path / "capitals" / split / cls / "a.png")
    assert sorted({f.split for f in list_images(tmp_path / "capitals", None).files}) == ["test", "train"]


def test_split_folders_beside_class_folders_or_without_train_are_refused(tmp_path):
    pets = folder(tmp_path / "pets", per_class=2)
    image(pets / "test" / "cat" / "a.png")  # a test split begun beside the class folders
    assert "split folders (test) beside class folders (cat, dog, eel)" in refused(tmp_path, pets)
    folder(tmp_path / "only" / "test", per_class=1)
    folder(tmp_path / "only" / "val", per_class=1)
    assert "beside no train folder" in refused(tmp_path, tmp_path / "only")


def test_two_folders_of_one_split_are_refused_and_loose_images_are_listed_as_skipped(tmp_path):
    for split in ("train", "val", "validation"):
        folder(tmp_path / "both" / split, per_class=1)
    assert "both val and validation" in refused(tmp_path, tmp_path / "both")
    pets = folder(tmp_path / "pets", per_class=2)
    image(pets / "stray.png")
    assert dict(list_images(pets, None).skipped)["stray.png"] == "not in a class folder"


def test_the_current_folder_as_data_path_is_named_as_its_folder_and_its_runs_are_no_class(tmp_path):
    """`cd photos; python train.py --config ../net.yaml` with `data.path: .`: the runs land in photos/runs/."""
    pets = folder(tmp_path / "pets", per_class=20)
    config = write(tmp_path / "net.yaml", MODEL + f"data:\n  path: .\n  data_dir: {tmp_path / 'tfds'}\n")
    done = cli("validate", config, cwd=pets)
    assert done.returncode == 0 and "data: pets 20x20x3, 3 classes" in done.stdout, done.stdout + done.stderr
    for run in range(2):  # the first finds runs/ with its own folder claimed; the second, a whole run
        done = cli("train", config, cwd=pets)
        assert done.returncode == 0, done.stderr
    assert len(list((pets / "runs").iterdir())) == 2
    assert cli("train", config, "--output-dir", "mine", cwd=pets).returncode == 0  # claimed, then listed
    assert cli("validate", config, cwd=pets).returncode == 0


def test_a_class_with_no_training_image_is_refused_naming_it(tmp_path):
    pets = folder(tmp_path / "pets", per_class=20, layout="train")
    image(pets / "test" / "cats" / "a.png")  # a typo in the test folder: `cats` has test images only
    error = refused(tmp_path, pets)  # said before the model's 3 outputs against 4 classes: the typo is the cause
    assert "class `cats` has no training image" in error and "(1 in test)" in error, error


def test_validating_on_the_test_split_works_on_a_folder_with_its_warning(tmp_path):
    pets = folder(tmp_path / "pets", per_class=20)
    config = write(tmp_path / "net.yaml", MODEL + f"data:\n  path: {pets}\n  data_dir: {tmp_path / 'tfds'}\n")
    done = cli("validate", config, "data.validation_split=test")
    assert done.returncode == 0 and "validating on the test split" in done.stderr, done.stderr


def test_a_class_whose_files_are_all_truncated_ends_the_first_run_as_it_ends_later_ones(tmp_path):
    """A truncated file's header reads: it is found bad only when decoded, after the plan."""
    pets = folder(tmp_path / "pets", per_class=20)
    for i in (0, 4, 8):  # (the PNGs)
        whole = (pets / "cat" / f"cat{i}.png").read_bytes()
        image(pets / "fox" / f"fox{i}.png").write_bytes(whole[:len(whole) // 2])
    config = write(tmp_path / "net.yaml", MODEL + f"data:\n  path: {pets}\n  data_dir: {tmp_path / 'tfds'}\n")
    for attempt in ("first", "again"):
        done = cli("train", config, "model.layers.2.Dense=4", "--output-dir", tmp_path / attempt)
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
        assert "class `fox` has no usable image" in done.stderr and "fox/fox0.png (truncated" in done.stderr


def test_the_class_table_lines_up_under_short_class_names(tmp_path):
    from cnnzoo.data.folder_source import class_table

    folder(tmp_path / "pets", per_class=2)
    sheet = write(tmp_path / "labels.csv", "path,label\npets/cat/cat0.png,0\npets/dog/dog0.png,1\n")
    listing = list_images(sheet, None)
    lines = class_table({"train": listing.files}, listing.class_names)
    assert len({len(line) for line in lines}) == 1 and lines[0].index("train") == lines[-1].index("2") - 4, lines


def test_validate_counts_the_images_the_run_reads(tmp_path):
    pets = folder(tmp_path / "pets", per_class=40)
    config = write(tmp_path / "net.yaml", MODEL + f"data:\n  path: {pets}\n  data_dir: {tmp_path / 'tfds'}\n")
    rows = {}
    for train in ("train", "train[:50%]"):
        done = cli("validate", config, f"data.train_split={train}")
        assert done.returncode == 0, done.stderr
        rows[train] = next(line.split() for line in done.stdout.splitlines() if line.split()[:1] == ["all"])
    assert int(rows["train[:50%]"][1]) == int(rows["train"][1]) // 2 and rows["train[:50%]"][2:] == rows["train"][2:]


@pytest.mark.slow
def test_a_resume_refuses_a_folder_whose_classes_changed(tmp_path):
    """Its outputs stand for the classes it started with: a swapped class would be trained, and
    predicted, under the old one's name."""
    pets = folder(tmp_path / "pets", per_class=20)
    config = write(tmp_path / "net.yaml", MODEL + f"data:\n  path: {pets}\n  data_dir: {tmp_path / 'tfds'}\n")
    assert cli("train", config, "--output-dir", tmp_path / "run").returncode == 0
    (pets / "eel").rename(pets / "fox")
    done = cli("train", "--resume", tmp_path / "run", "train.epochs=2")
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert "classes of" in done.stderr and "gone: eel; new: fox" in done.stderr, done.stderr
    (pets / "fox").rename(pets / "eel")
    for i in range(30):  # more images of a class: resumed, and said
        image(pets / "eel" / f"more{i}.png")
    done = cli("train", "--resume", tmp_path / "run", "train.epochs=2")
    assert done.returncode == 0 and "when the run started: the resumed epochs train on the folder as it is now" in \
        done.stdout, done.stdout + done.stderr


def test_one_class_is_refused_pointing_at_the_folder_one_level_down(tmp_path):
    """A dataset unzipped into a folder of its own: data.path one level too high is one class."""
    folder(tmp_path / "download" / "pets", per_class=2)
    error = refused(tmp_path, tmp_path / "download")
    assert "holds one class folder, pets" in error and f"data.path: {tmp_path / 'download' / 'pets'}" in error
    folder(tmp_path / "p", per_class=2)
    sheet = write(tmp_path / "one.csv", "path,label\np/cat/cat0.png,cat\np/cat/cat1.jpg,cat\n")
    assert "labels every image `cat`" in refused(tmp_path, sheet)


@pytest.mark.slow
def test_evaluate_a_split_of_a_folder_run_as_the_run_split_it(tmp_path):
    """The run's test images stay held out: --split validation reads the run's validation images only."""
    import json

    pets = folder(tmp_path / "pets", per_class=30)
    config = write(tmp_path / "net.yaml", MODEL + f"data:\n  path: {pets}\n  data_dir: {tmp_path / 'tfds'}\n")
    table = cli("validate", config).stdout
    counts = next(line.split() for line in table.splitlines() if line.split()[:1] == ["all"])[1:]
    assert cli("train", config, "--output-dir", tmp_path / "run").returncode == 0
    for split, expected in zip(("train", "validation", "test"), counts):
        done = cli("evaluate", tmp_path / "run", "--split", split, "--json")
        assert done.returncode == 0, done.stderr
        support = sum(c["support"] for c in json.loads(done.stdout)["per_class"].values())
        assert support == int(expected), (split, support, counts)
    done = cli("evaluate", tmp_path / "run", "--split", "valid")
    assert done.returncode == 2 and "--split" in done.stderr and "net.yaml" not in done.stderr, done.stderr


def test_a_small_class_the_hash_held_out_whole_is_said_as_such(tmp_path):
    from cnnzoo.data.folder_listing import ImageFile
    from cnnzoo.data.folder_source import split_of

    pets = folder(tmp_path / "pets", per_class=20)
    name = next(f"fox/fox{i}.png" for i in range(100)  # a fourth class of one image, which the hash holds out
                if split_of(ImageFile(f"fox/fox{i}.png", 3, None, 0, 0), 0.1, 0.1) != "train")
    image(pets / name)
    error = refused(tmp_path, pets, "model.layers.2.Dense=4")
    assert "class `fox` has no training image" in error and "the hash held out all 1 of its images" in error, error


def test_a_validation_folder_left_unused_is_warned(tmp_path):
    for split in ("train", "valid", "test"):
        folder(tmp_path / "pets" / split, per_class=3)
    config = write(tmp_path / "net.yaml", MODEL + f"data:\n  path: {tmp_path / 'pets'}\n"
                   f"  data_dir: {tmp_path / 'tfds'}\n")
    done = cli("validate", config, "data.validation_split=test")
    assert done.returncode == 0 and "the 9 images of the folder's validation split are not used" in done.stderr
    assert "are not used" not in cli("validate", config).stderr


def test_a_csvs_paths_are_the_same_files_however_written(tmp_path):
    """Absolute, ./ and ../ spellings name a file as its path from the CSV's folder: the hash that
    splits it is the same on a machine where the folders lie elsewhere."""
    folder(tmp_path / "pets", per_class=2)
    (tmp_path / "sheets").mkdir()
    spelt = [f"{tmp_path}/pets/cat/cat0.png", "../pets/./cat/cat1.jpg", "../pets/dog/../dog/dog0.png",
             "../pets/eel/eel0.png"]
    sheet = write(tmp_path / "sheets" / "labels.csv", "path,label\n" + "".join(
        f"{path},{path.split('/')[-2]}\n" for path in spelt))
    assert [f.rel for f in list_images(sheet, None).files] == [
        "../pets/cat/cat0.png", "../pets/cat/cat1.jpg", "../pets/dog/dog0.png", "../pets/eel/eel0.png"]
