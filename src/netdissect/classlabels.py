"""Class labels of the images an ablation sweep evaluates, mapped to the model's outputs by a class list.

Labels come from one of three places:

- a Broden-format dataset's ``scene`` column (also the synthetic world's scene labels): the concept's name;
- an image folder in torchvision's ImageFolder layout, ``<root>/<class>/<image>`` or ``<root>/<split>/<class>/<image>``;
- a CSV ``image,class[,split]`` for any dataset (image paths as in the dataset: relative to its image folder or
  root, or absolute); its split column, when present, decides the splits.

The class list (``model.classes``: a text file, one output name per line, output 0 first) names the model's outputs.
Images of the dataset's own labels whose class the model has no output for are reported and left out; a class in a
labels CSV that is not in the list is an error (a typo would otherwise silently drop images). Torch-free and cheap,
so planning runs it before any job.
"""

from __future__ import annotations

import difflib
from pathlib import Path

import pandas as pd

from .config import ConfigError
from .datasets import Dataset, DatasetError, Record

LABEL_COLUMNS = ("row", "image", "split", "class", "output")


def read_class_list(path: str | Path) -> list[str]:
    """The names of a model's outputs, one per non-empty line (surrounding spaces stripped)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config key 'model.classes': file {str(path)!r} does not exist")
    names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ConfigError(f"config key 'model.classes': {path} names {repeated[0]!r} more than once")
    return names


def _relative(record: Record, dataset: Dataset) -> tuple[str, ...]:
    """The path of a record's image relative to the dataset's root, as parts."""
    return Path(record.image).relative_to(dataset.root).parts


def dataset_labels(dataset: Dataset) -> list[tuple[Record, str, str]]:
    """(record, split, class name) of every image the dataset itself labels.

    A Broden-format dataset labels an image by its first ``scene`` concept; an image folder by the folder the
    image is in, when every image lies at depth 2 (``<class>/<image>``) or 3 (``<split>/<class>/<image>``).
    """
    records = dataset.records()
    if dataset.kind == "imagefolder":
        depths = {len(_relative(r, dataset)) for r in records}
        if depths not in ({2}, {3}):
            raise DatasetError(
                f"{dataset.root}: class labels need the ImageFolder layout <class>/<image> or "
                "<split>/<class>/<image> for every image; or give ablation.labels, a CSV image,class[,split]"
            )
        return [(r, r.split, _relative(r, dataset)[-2]) for r in records]
    concepts = dataset.concepts()
    names = dict(zip(concepts["id"], concepts["name"]))
    out = []
    for record in records:
        scenes = [cid for category, cid in record.image_labels if category == "scene"]
        if scenes:
            out.append((record, record.split, str(names.get(scenes[0], scenes[0]))))
    if not out:
        raise DatasetError(
            f"{dataset.root}: no image has a scene label; give ablation.labels, a CSV image,class[,split]"
        )
    return out


def csv_labels(path: str | Path, dataset: Dataset) -> list[tuple[Record, str, str]]:
    """(record, split, class name) of every row of a labels CSV ``image,class[,split]``."""
    path = Path(path)
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in ("image", "class") if c not in table.columns]
    if missing:
        raise ConfigError(f"config key 'ablation.labels': {path} lacks columns {missing} (has {list(table.columns)})")
    records = dataset.records()
    images = Path(dataset.root, "images") if dataset.kind == "broden" else Path(dataset.root)
    found: dict[str, Record] = {}
    for record in records:
        image = Path(record.image)
        found[str(image)] = found[image.relative_to(dataset.root).as_posix()] = record
        if image.is_relative_to(images):
            found[image.relative_to(images).as_posix()] = record
    splits = table["split"] if "split" in table.columns else [None] * len(table)
    out = []
    for i, (image, name, split) in enumerate(zip(table["image"], table["class"], splits)):
        record = found.get(Path(image).as_posix()) or found.get(str(Path(image).absolute()))
        if record is None:
            raise ConfigError(f"config key 'ablation.labels': {path} row {i}: image {image!r} is not in the dataset")
        out.append((record, record.split if split is None else split, name))
    return out


def label_table(dataset: Dataset, classes: list[str], labels_csv: str | None) -> tuple[pd.DataFrame, list[str]]:
    """The labelled images whose class is one of the model's outputs.

    Args:
        dataset: the dataset.
        classes: the model's output names, in output order.
        labels_csv: a labels CSV, or None for the dataset's own labels.

    Returns:
        (table, report): columns ``row, image, split, class, output`` in dataset row order; and one line per
        class of the dataset's labels that the model has no output for (those images are left out).

    Raises:
        ConfigError: a class of the labels CSV is not in the class list (the message names the closest ones).
    """
    labelled = csv_labels(labels_csv, dataset) if labels_csv else dataset_labels(dataset)
    output = {name: i for i, name in enumerate(classes)}
    unknown: dict[str, int] = {}
    rows = []
    for record, split, name in labelled:
        if name in output:
            rows.append((record.index, str(record.image), split, name, output[name]))
        else:
            unknown[name] = unknown.get(name, 0) + 1
    if unknown and labels_csv:
        name = min(unknown)
        close = difflib.get_close_matches(name, classes, n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ConfigError(
            f"config key 'ablation.labels': class {name!r} of {labels_csv} is not in the model's class list{hint}"
        )
    report = [
        f"{count} images of class {name!r} left out: the model has no output for it" for name, count in unknown.items()
    ]
    table = pd.DataFrame(rows, columns=list(LABEL_COLUMNS)).sort_values("row", kind="stable", ignore_index=True)
    return table, report


def split_images(table: pd.DataFrame, split: str | None, key: str) -> pd.DataFrame:
    """The labelled images of one split (None: every image); a ConfigError naming ``key`` when there are none."""
    chosen = table if split is None else table[table["split"] == split]
    if chosen.empty:
        splits = ", ".join(repr(s) for s in sorted(set(table["split"]))) or "none"
        raise ConfigError(f"config key {key!r}: no labelled images in split {split!r} (splits: {splits})")
    return chosen


def class_report(table: pd.DataFrame, classes: list[str], splits: dict[str, str | None]) -> pd.DataFrame:
    """Per class, its images in each role's split and whether it can be swept.

    Args:
        table: the label table.
        classes: the model's outputs.
        splits: role (``ranking``, ``eval``) -> split.

    Returns:
        Columns ``class, output, <role>_images`` per role, and ``status``: ``ok`` or ``skipped: no <role> images``.

    Raises:
        ConfigError: fewer than 2 classes have images in a role's split.
    """
    report = pd.DataFrame({"class": classes, "output": range(len(classes))})
    status = pd.Series("ok", index=report.index)
    for role, split in splits.items():
        chosen = split_images(table, split, f"ablation.{role}_split")
        counts = chosen["output"].value_counts()
        report[f"{role}_images"] = [int(counts.get(i, 0)) for i in report["output"]]
        if (report[f"{role}_images"] > 0).sum() < 2:
            raise ConfigError(
                f"config key 'ablation.{role}_split': fewer than 2 classes have images in split {split!r}; "
                "a one-vs-rest balanced accuracy needs at least 2"
            )
        status[(report[f"{role}_images"] == 0) & (status == "ok")] = f"skipped: no {role} images"
    report["status"] = status
    return report
