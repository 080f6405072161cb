"""history.csv: one row per epoch, appended by Keras' CSVLogger across resumes."""

from __future__ import annotations

import csv

from cnnzoo.training.run_dir import RunDir


def read_history(run: RunDir) -> dict[str, list[float]]:
    """history.csv as columns, one value per epoch (the last row wins after a resume)."""
    if not run.history.exists():
        return {}
    with run.history.open(newline="") as f:
        rows = {int(row["epoch"]): row for row in csv.DictReader(f) if (row.get("epoch") or "").isdigit()}
    columns: dict[str, list[float]] = {}
    for epoch in sorted(rows):
        for key, value in rows[epoch].items():
            if key is None:  # a row with more fields than the header: not ours
                continue
            columns.setdefault(key, []).append(_number(value))
    return columns


def repair_history(run: RunDir) -> None:
    """Drop a last line cut short by a kill, so the next epoch's row starts on a line of its own."""
    if not run.history.exists():
        return
    text = run.history.read_text()
    if text and not text.endswith("\n"):
        run.history.write_text(text[: text.rfind("\n") + 1])


def _number(value: str | None) -> float:
    # CSVLogger writes NA for a metric an epoch lacks (e.g. validation when there is none)
    try:
        return float(value) if value not in ("", "NA", None) else float("nan")
    except ValueError:
        return float("nan")
