"""`cnnzoo import` over keras.applications, as in docs/graphs.md's table.

The suite checks the smallest network of each family (the others repeat the same blocks more times,
at 2-30 s each): `python tests/test_import_applications.py --check` checks every row, and
`python tests/test_import_applications.py [NAME ...]` prints the rows as measured.
Each is built without its classifier and with global average pooling, so its input size is open
(but NASNet's, below), imported, rebuilt from the written config with the same
weights and compared at a small size; or refused with the reason the table gives.
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

import keras
import pytest

from cnnzoo.deploy.keras_import import import_model
from cnnzoo.errors import CnnzooError

DOC = Path(__file__).resolve().parents[1] / "docs" / "graphs.md"
ARGUMENTS = 'include_top=False, pooling="avg"'
NAMES = sorted(n for n in dir(keras.applications) if n[:1].isupper() and callable(getattr(keras.applications, n)))
SMALLEST = {"InceptionV3": 75, "InceptionResNetV2": 75, "Xception": 71}  # what their valid convolutions and pools need
# Keras' NASNet lines its cells up by the size it is built for: built open, NASNetLarge runs at no size
# (and NASNetMobile fixes 224 itself), so both are imported at a fixed size.
FIXED = {"NASNetLarge": ", input_shape=(32, 32, 3)", "NASNetMobile": ", input_shape=(32, 32, 3)"}
REASONS = ("custom layer", "keras.ops operation", "model used as a layer", "Lambda")
# The suite's network of each family: its smallest (a family's members differ in widths and repeats only).
SUITE = ["ConvNeXtTiny", "DenseNet121", "EfficientNetB0", "EfficientNetV2B0", "InceptionResNetV2", "InceptionV3",
         "MobileNet", "MobileNetV2", "MobileNetV3Small", "NASNetMobile", "ResNet50", "ResNet50V2", "VGG16", "Xception"]


def family(name: str) -> str:
    """keras.applications.NAME without its size: ResNet101V2 -> ResNetV2, EfficientNetV2S -> EfficientNetV2."""
    return re.sub(r"(Tiny|Small|Base|XLarge|Large|Mobile|B\d|[SML]|\d{2,3})(?=(V2)?$)", "", name)


def round_trip(name: str, folder: Path) -> dict:
    """The import of keras.applications.NAME without its classifier: the import's report, or the refusal."""
    keras.utils.clear_session(free_memory=False)  # the networks before it are not kept
    start = time.perf_counter()
    try:
        report = import_model(f"keras.applications.{name}({ARGUMENTS}{FIXED.get(name, '')})", str(folder / f"{name}.yaml"),
                              check_size=SMALLEST.get(name, 32))
    except CnnzooError as exc:
        return {"refused": exc.message, "seconds": time.perf_counter() - start}
    return report


def documented() -> dict[str, str]:
    """docs/graphs.md's table: network -> `imports` or the reason it is refused."""
    rows = re.findall(r"^\| (\w+) \| (imports|refused: [^|]+?) \|", DOC.read_text(), re.M)
    return {name: outcome for name, outcome in rows}


def test_every_keras_application_has_a_documented_row_and_its_family_a_network_in_the_suite():
    assert sorted(documented()) == NAMES, "docs/graphs.md's rows are not keras.applications' networks"
    assert sorted(map(family, SUITE)) == sorted(set(map(family, NAMES)))
    assert family("ResNet101V2") == "ResNetV2" and family("EfficientNetV2S") == "EfficientNetV2" != family("EfficientNetB3")


@pytest.mark.slow
@pytest.mark.parametrize("name", SUITE)
def test_a_keras_application_of_each_family_imports_or_is_refused_as_documented(name, tmp_path):
    check(name, tmp_path)


def check(name: str, folder: Path) -> None:
    """keras.applications.NAME imports, or is refused, as docs/graphs.md's table says."""
    table = documented()
    assert name in table, f"docs/graphs.md has no row for keras.applications.{name}"
    result = round_trip(name, folder)
    if table[name] == "imports":
        assert "refused" not in result, result.get("refused")
        assert result["params"] == result["params_keras"]
        assert result["max_difference"] <= 1e-4
        assert result["open"] == (name not in FIXED)
        if result["open"]:
            assert "input_shape: [null, null, 3]" in (folder / f"{name}.yaml").read_text()
    else:
        assert "refused" in result, f"{name} imported, but docs/graphs.md says {table[name]}"
        assert "Traceback" not in result["refused"] and "nothing was written" in result["refused"]
        reason = next(r for r in REASONS if r in table[name])
        assert reason in result["refused"], result["refused"]
        assert not (folder / f"{name}.yaml").exists()


def _row(name: str, result: dict) -> str:
    """The network's row in docs/graphs.md's tables."""
    if "refused" in result:
        first, cls = re.search(r"`([^`]+)` is .*?(keras\.src\.[\w.]+)", result["refused"]).groups()
        reason = next(r for r in REASONS if r in result["refused"])
        more = re.search(r"; (\d+ more) of these: ([^;]+);", result["refused"])
        return (f"| {name} | refused: a {reason} | `{first}`, a {cls}" + (f"; {more.group(1)}: {more.group(2)}" if more else "")
                + f" | {result['seconds']:.0f} |")
    stages = ", ".join(f"{s['name']} x{s['repeat']}" for s in result["stages"]) or "none"
    size = "x".join(map(str, result["checked_at"][:2])) + ("" if result["open"] else " (fixed input, below)")
    return (f"| {name} | imports | {result['layers']} -> {result['items']} | {stages} | {result['params']:,} | "
            f"{_difference(result['max_difference'])} at {size} | {result['seconds']:.0f} |")


def _difference(value: float) -> str:
    return "0.0" if value == 0 else f"{value:.0e}"


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        if sys.argv[1:] == ["--check"]:  # every row, as the suite checks its networks
            for name in NAMES:
                check(name, Path(folder) / name)
                print(f"{name}: as documented", flush=True)
        else:
            for name in sys.argv[1:] or NAMES:
                print(_row(name, round_trip(name, Path(folder))), flush=True)
