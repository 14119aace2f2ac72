"""Datasets of images, with optional per-pixel and per-image concept labels in the Broden format.

Two kinds of dataset folder are read:

- ``broden`` (also the synthetic world): ``index.csv`` lists one image per row with its split, image and
  label sizes, and for every category column either ';'-separated label PNGs (pixel-level labels, one label
  *plane* per PNG, concept id = R + 256 * G, 0 = none) or ';'-separated concept ids (image-level labels).
  ``label.csv`` names the concepts; ``c_<category>.csv`` files are only read when it has no category column.
- ``imagefolder``: every image file under the folder, without labels or splits.

Rows are numbered from 0 in index order (``Record.index``); error messages use these numbers. Opening a
dataset and listing its records is cheap (no torch, no per-row file access), so it can run at DAG-parse time.
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

KINDS = ("broden", "imagefolder")
INDEX_COLUMNS = ("image", "split", "ih", "iw", "sh", "sw")
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"})
_COUNTED = re.compile(r"(.*)\((\d+)\)")  # 'object(1234)' in label.csv's category column


class DatasetError(ValueError):
    """Bad dataset input; the message names the file, row or column at fault."""


@dataclass(frozen=True)
class Record:
    """One row of a dataset: an image and its labels.

    Records listed by a Dataset build their Path fields on first access, because building hundreds of
    thousands of Paths up front is too slow for DAG-parse time; callers see ordinary attributes.

    Attributes:
        index: 0-based row number in the dataset's full index.
        image: absolute image path.
        split: the row's split ('' for image folders).
        image_size: (ih, iw) from the index, None if unknown.
        label_size: (sh, sw) from the index, None if unknown.
        pixel_labels: (category, absolute PNG path) per label plane, in column order.
        image_labels: (category, concept id) per image-level label, in column order.
    """

    index: int
    image: Path
    split: str
    image_size: tuple[int, int] | None
    label_size: tuple[int, int] | None
    pixel_labels: tuple[tuple[str, Path], ...]
    image_labels: tuple[tuple[str, int], ...]

    def __getattr__(self, name: str) -> Any:
        """Build ``image`` and ``pixel_labels`` of a deferred record; only reached while they are unset."""
        if name not in ("image", "pixel_labels") or "_deferred" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        base, image, labels = self.__dict__.pop("_deferred")
        self.__dict__["image"] = Path(base, image)
        self.__dict__["pixel_labels"] = tuple((category, Path(base, png)) for category, png in labels)
        return self.__dict__[name]


def _deferred_record(
    index: int,
    split: str,
    sizes: tuple[tuple[int, int] | None, tuple[int, int] | None],
    image_labels: tuple[tuple[str, int], ...],
    base: str,
    image: str,
    labels: tuple[tuple[str, str], ...],
) -> Record:
    """A Record whose paths are joined from ``base`` and the relative ``image`` and ``labels`` when first read.

    Args:
        index: row number.
        split: the row's split.
        sizes: (image_size, label_size).
        image_labels: (category, concept id) pairs.
        base: folder the relative paths start from.
        image: relative image path.
        labels: (category, relative PNG path) pairs.

    Returns:
        The record.
    """
    record = object.__new__(Record)
    record.__dict__.update(
        index=index,
        split=split,
        image_size=sizes[0],
        label_size=sizes[1],
        image_labels=image_labels,
        _deferred=(base, image, labels),
    )
    return record


class Dataset(ABC):
    """The rows of a dataset folder, read once when it is opened.

    Attributes:
        root: absolute dataset folder.
        kind: 'broden' or 'imagefolder'.
    """

    kind: str

    def __init__(self, root: Path, source: Path, header: list[str], rows: list[list[str]]) -> None:
        """Keep the raw rows.

        Args:
            root: absolute dataset folder.
            source: the file (or folder) the rows come from, named in error messages.
            header: column names of the rows.
            rows: raw cells of every row, in index order.
        """
        self.root = root
        self._source = source
        self._header = header
        self._rows = rows

    def records(self, split: str | None = None, size: int | None = None) -> list[Record]:
        """Rows in index order, optionally of one split, then at most the first ``size`` of them.

        Args:
            split: keep only rows of this split (None: all rows).
            size: keep the first ``size`` rows after filtering (None: all).

        Returns:
            The records (a new list).

        Raises:
            DatasetError: if no row has the split (the message lists the available ones) or size < 0.
        """
        records = self._records
        if split is not None:
            records = [r for r in records if r.split == split]
            if not records:
                available = ", ".join(repr(s) for s in sorted({r.split for r in self._records}))
                raise DatasetError(f"{self._source}: no rows in split {split!r}; available splits: {available}")
        if size is not None and size < 0:
            raise DatasetError(f"size must be >= 0, got {size}")
        return records[:size]

    def digest(self, records: list[Record]) -> str:
        """SHA-256 of the raw index cells of the given rows (paths relative to the root) and of the header.

        Args:
            records: records of this dataset; only their ``index`` is used.

        Returns:
            Hex digest, the same on every run and machine for the same rows in the same order.
        """
        rows = []
        for record in records:
            if not 0 <= record.index < len(self._rows):
                raise DatasetError(f"{self._source} has no row {record.index}")
            rows.append(self._rows[record.index])
        payload = json.dumps([self._header, rows], separators=(",", ":"))
        return hashlib.sha256(payload.encode()).hexdigest()

    @cached_property
    def _records(self) -> list[Record]:
        """All records, built on first use."""
        return self._build_records()

    @abstractmethod
    def _build_records(self) -> list[Record]:
        """All records in index order."""

    @abstractmethod
    def concepts(self) -> pd.DataFrame:
        """Concept table with columns id (int), name (str), category (str), sorted by id."""

    @abstractmethod
    def categories(self) -> list[tuple[str, str]]:
        """(category, 'pixel' or 'image') in index column order."""


class BrodenDataset(Dataset):
    """A Broden-format folder: index.csv, label.csv, c_<category>.csv and images/."""

    kind = "broden"

    def concepts(self) -> pd.DataFrame:
        """Concepts of label.csv with their primary category.

        The primary category is the one with the highest count in label.csv's category cell (the first if
        tied); without a category column, the c_<category>.csv file listing the concept (highest frequency).

        Returns:
            Columns id (int64), name (str), category (str), sorted by id.
        """
        path = self.root / "label.csv"
        header, rows = _read_csv(path, ("number", "name"))
        column = {name: i for i, name in enumerate(header)}
        ids = [_parse_int(row[column["number"]], f"{path} line {i + 2}, column number") for i, row in enumerate(rows)]
        seen: set[int] = set()
        for i, cid in enumerate(ids):
            if cid < 1 or cid in seen:
                raise DatasetError(f"{path} line {i + 2}: concept id {cid} is < 1 or repeated")
            seen.add(cid)
        if "category" in column:
            categories = [_primary_category(row[column["category"]]) for row in rows]
        else:
            listed = self._listed_categories()
            categories = [listed.get(cid, "") for cid in ids]
        if "" in categories:
            raise DatasetError(f"{path}: concept {ids[categories.index('')]} has no category")
        table = pd.DataFrame({"id": np.array(ids, np.int64), "name": [row[column["name"]] for row in rows],
                              "category": categories})
        return table.sort_values("id", kind="stable", ignore_index=True)

    def categories(self) -> list[tuple[str, str]]:
        """(category, kind) per category column; 'pixel' if any of its cells ends in .png, else 'image'."""
        return list(self._kinds)

    @cached_property
    def _kinds(self) -> list[tuple[str, str]]:
        """Categories and their kinds, computed once."""
        kinds = []
        for column, name in enumerate(self._header):
            if name not in INDEX_COLUMNS:
                pixel = any(_is_png(row[column]) for row in self._rows)
                kinds.append((name, "pixel" if pixel else "image"))
        return kinds

    def _build_records(self) -> list[Record]:
        """Parse every row (sizes, label cells) into a Record."""
        position = {name: i for i, name in enumerate(self._header)}
        columns = [(position[name], name, kind == "pixel") for name, kind in self._kinds]
        base = str(self.root / "images")
        image, split = position["image"], position["split"]
        records = []
        for index, row in enumerate(self._rows):
            sizes = self._size(index, row, position, "ih", "iw"), self._size(index, row, position, "sh", "sw")
            pixel, image_level = self._labels(index, row, columns)
            records.append(_deferred_record(index, row[split], sizes, image_level, base, row[image], pixel))
        return records

    def _size(self, index: int, row: list[str], position: dict[str, int], *names: str) -> tuple[int, int] | None:
        """(height, width) from two size columns; None when both are empty.

        Args:
            index: row number.
            row: raw cells.
            position: column position by name.
            names: the height and width column names.

        Returns:
            The size, or None.
        """
        cells = [row[position[name]] for name in names]
        if not any(cells):
            return None
        try:
            height, width = (int(cell) for cell in cells)
        except ValueError:
            height = width = 0
        if height <= 0 or width <= 0:
            raise DatasetError(
                f"{self._where(index, row)}, columns {'/'.join(names)}: expected positive integers, got {cells}"
            )
        return height, width

    def _labels(
        self, index: int, row: list[str], columns: list[tuple[int, str, bool]]
    ) -> tuple[tuple[tuple[str, str], ...], tuple[tuple[str, int], ...]]:
        """Pixel-level (category, relative PNG) and image-level (category, concept id) labels of a row.

        Args:
            index: row number.
            row: raw cells.
            columns: (position, category, is pixel-level) per category column.

        Returns:
            (pixel labels, image labels).
        """
        pixel: list[tuple[str, str]] = []
        image: list[tuple[str, int]] = []
        for column, name, is_pixel in columns:
            for entry in row[column].split(";") if row[column] else ():
                if is_pixel and _is_png(entry):
                    pixel.append((name, entry))
                elif not is_pixel and entry.isdecimal() and int(entry) > 0:
                    image.append((name, int(entry)))
                elif entry:
                    kind = "a PNG file name" if is_pixel else "a concept id >= 1"
                    raise DatasetError(f"{self._where(index, row)}, column {name}: {entry!r} is not {kind}")
        return tuple(pixel), tuple(image)

    def _where(self, index: int, row: list[str]) -> str:
        """A row's description in error messages."""
        return f"{self._source} row {index} ({row[self._header.index('image')]})"

    def _listed_categories(self) -> dict[int, str]:
        """Category of every concept listed by c_<category>.csv files (the most frequent, then the first).

        Files of index categories come first, in column order, then the other c_*.csv files by name.
        """
        files = {path.name[2:-4]: path for path in self.root.glob("c_*.csv")}
        order = [name for name, _ in self._kinds if name in files]
        order += sorted(set(files) - set(order))
        best: dict[int, tuple[int, str]] = {}
        for category in order:
            header, rows = _read_csv(files[category], ("number",))
            number = header.index("number")
            frequency = header.index("frequency") if "frequency" in header else None
            for i, row in enumerate(rows):
                where = f"{files[category]} line {i + 2}"
                cid = _parse_int(row[number], where)
                count = _parse_int(row[frequency], where) if frequency is not None and row[frequency] else 0
                if cid not in best or count > best[cid][0]:
                    best[cid] = (count, category)
        return {cid: category for cid, (_, category) in best.items()}


class ImageFolderDataset(Dataset):
    """Every image file under a folder, in relative-path order, without labels or splits."""

    kind = "imagefolder"

    def records(self, split: str | None = None, size: int | None = None) -> list[Record]:
        """The first ``size`` images (all if None); image folders have no splits, so ``split`` must be None."""
        if split is not None:
            raise DatasetError(f"{self.root}: image folders have no splits, cannot select split {split!r}")
        return super().records(None, size)

    def concepts(self) -> pd.DataFrame:
        """An empty concept table."""
        return pd.DataFrame({"id": pd.Series([], dtype=np.int64), "name": pd.Series([], dtype=str),
                             "category": pd.Series([], dtype=str)})

    def categories(self) -> list[tuple[str, str]]:
        """No categories."""
        return []

    def _build_records(self) -> list[Record]:
        """One record per listed image."""
        base = str(self.root)
        return [_deferred_record(i, "", (None, None), (), base, row[0], ()) for i, row in enumerate(self._rows)]


def open_dataset(kind: str, root: str | Path) -> Dataset:
    """Open a dataset folder.

    Args:
        kind: 'broden' (Broden format, also the synthetic world) or 'imagefolder'.
        root: the dataset folder.

    Returns:
        The dataset, its index read.

    Raises:
        DatasetError: unknown kind, missing folder, unreadable or empty index, index header lacking
            image, split, ih, iw, sh or sw, or an image folder without images.
    """
    if kind not in KINDS:
        raise DatasetError(f"unknown dataset kind {kind!r}; expected one of {', '.join(KINDS)}")
    root = Path(root).expanduser().absolute()
    if not root.is_dir():
        raise DatasetError(f"dataset folder {root} does not exist or is not a folder")
    if kind == "imagefolder":
        images = _list_images(root)
        if not images:
            raise DatasetError(f"{root}: no image files ({', '.join(sorted(IMAGE_EXTENSIONS))}) in the folder")
        return ImageFolderDataset(root, root, ["image"], [[image] for image in images])
    index = root / "index.csv"
    header, rows = _read_csv(index, INDEX_COLUMNS)
    if not rows:
        raise DatasetError(f"{index} has no rows")
    return BrodenDataset(root, index, header, rows)


def _list_images(root: Path) -> list[str]:
    """Relative posix paths of the image files under a folder, sorted by path components.

    Args:
        root: the folder (symbolic links to folders are followed).

    Returns:
        The paths.
    """
    found = []
    for folder, _, files in os.walk(root, followlinks=True):
        prefix = os.path.relpath(folder, root).replace(os.sep, "/")
        for name in files:
            if os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS:
                found.append(name if prefix == "." else f"{prefix}/{name}")
    return sorted(found, key=lambda path: path.split("/"))


def _read_csv(path: Path, required: tuple[str, ...]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of a CSV file, checked for required columns and row widths.

    Args:
        path: the file.
        required: columns the header must have.

    Returns:
        (header, rows); blank lines are skipped.
    """
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            header = [name.strip() for name in next(reader, [])]
            rows = []
            for row in reader:
                if len(row) != len(header) and row:
                    raise DatasetError(
                        f"{path} line {reader.line_num}: {len(row)} fields, but the header has {len(header)}"
                    )
                if row:
                    rows.append(row)
    except OSError as err:
        raise DatasetError(f"cannot read {path}: {err.strerror or err}") from err
    except (csv.Error, UnicodeDecodeError) as err:
        raise DatasetError(f"{path} is not a readable CSV file: {err}") from err
    missing = [name for name in required if name not in header]
    if missing:
        raise DatasetError(f"{path}: header lacks column(s) {', '.join(missing)} (header: {','.join(header)})")
    if "" in header or len(set(header)) != len(header):
        raise DatasetError(f"{path}: header has empty or repeated column names: {','.join(header)}")
    return header, rows


def _parse_int(text: str, where: str) -> int:
    """An integer cell, or DatasetError naming ``where``."""
    try:
        return int(text)
    except ValueError:
        raise DatasetError(f"{where}: expected an integer, got {text!r}") from None


def _is_png(name: str) -> bool:
    """Whether a file name ends in .png (any case)."""
    return name[-4:].lower() == ".png"


def _primary_category(cell: str) -> str:
    """The category with the highest count in a cell like 'object(1234);part(12)' (first if tied).

    Args:
        cell: ';'-separated category names, each optionally followed by a count in parentheses.

    Returns:
        The category name ('' for an empty cell); a name without a count counts as 0.
    """
    best, best_count = "", -1
    for entry in filter(None, (e.strip() for e in cell.split(";"))):
        match = _COUNTED.fullmatch(entry)
        name, count = (match[1].strip(), int(match[2])) if match else (entry, 0)
        if count > best_count:
            best, best_count = name, count
    return best


@contextmanager
def _open_image(path: Path) -> Iterator[Image.Image]:
    """Open and fully decode an image file, closing it afterwards.

    Args:
        path: the file.

    Yields:
        The decoded PIL image.

    Raises:
        DatasetError: the file is missing, not an image, corrupt or truncated.
    """
    try:
        img = Image.open(path)
    except FileNotFoundError as err:
        raise DatasetError(f"{path}: file not found") from err
    except Exception as err:  # PIL raises many exception types on bad data
        raise DatasetError(f"{path}: not a readable image: {err}") from err
    with img:
        try:
            img.load()  # full decode: truncated data raises here (LOAD_TRUNCATED_IMAGES stays off)
        except Exception as err:
            raise DatasetError(f"{path}: corrupt or truncated image: {err}") from err
        yield img


def _gray8(values: np.ndarray, mode: str) -> np.ndarray:
    """8-bit gray levels of a 16-bit, 32-bit integer ('I') or float ('F') image.

    Integers are clipped to 0..65535 and shifted right by 8 bits. Floats (NaN as 0) are scaled by 255 when
    their maximum is <= 1, then clipped to 0..255 and rounded.

    Args:
        values: (H, W) pixel values.
        mode: the PIL mode.

    Returns:
        (H, W) uint8.
    """
    if mode == "F":
        values = np.nan_to_num(values.astype(np.float64))
        scale = 255.0 if values.max(initial=0.0) <= 1.0 else 1.0
        return np.rint(np.clip(values * scale, 0, 255)).astype(np.uint8)
    return (np.clip(values.astype(np.int64), 0, 65535) >> 8).astype(np.uint8)


def _as_rgb(img: Image.Image, path: Path) -> Image.Image:
    """An RGB version of a decoded image; alpha channels are dropped (colours kept, not composited).

    Args:
        img: decoded image.
        path: its file, for error messages.

    Returns:
        The image in mode RGB.
    """
    if img.mode == "RGB":
        return img
    if img.mode in ("I", "F") or img.mode.startswith("I;16"):
        return Image.fromarray(_gray8(np.asarray(img), img.mode)).convert("RGB")
    try:
        return img.convert("RGB")
    except ValueError as err:
        raise DatasetError(f"{path}: cannot convert a {img.mode} image to RGB: {err}") from err


def load_image(path: Path, resize: tuple[int, int] | None = None) -> np.ndarray:
    """Read an image as 8-bit RGB.

    Gray, palette, CMYK and other modes are converted by PIL; alpha is dropped (not composited). 16-bit and
    'I' images keep their high byte (after clipping to 0..65535); 'F' images see ``_gray8``.

    Args:
        path: the image file.
        resize: (H, W) to resize to bilinearly (PIL), or None to keep the file's size.

    Returns:
        (H, W, 3) uint8 array.

    Raises:
        DatasetError: the file is missing, corrupt, truncated or in an unconvertible mode.
    """
    with _open_image(path) as img:
        rgb = _as_rgb(img, path)
        if resize is not None and rgb.size != (resize[1], resize[0]):
            rgb = rgb.resize((resize[1], resize[0]), Image.Resampling.BILINEAR)
        return np.array(rgb)


def _label_values(img: Image.Image, path: Path) -> np.ndarray:
    """Concept ids of a decoded label PNG: R + 256 * G for colour images, the raw value for one channel.

    Args:
        img: decoded label image.
        path: its file, for error messages.

    Returns:
        (h, w) uint16.
    """
    if img.mode in ("RGB", "RGBA"):
        rgb = np.asarray(img)
        return rgb[..., 0].astype(np.uint16) | (rgb[..., 1].astype(np.uint16) << 8)
    if img.mode in ("L", "P", "I") or img.mode.startswith("I;16"):
        values = np.asarray(img)
        if values.size and (values.min() < 0 or values.max() > 65535):
            raise DatasetError(f"{path}: label values outside 0..65535")
        return values.astype(np.uint16)
    raise DatasetError(f"{path}: unsupported label image mode {img.mode!r}")


def _nearest(plane: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize with centre-aligned nearest neighbour (source pixel floor((i + 0.5) * h / H), as PIL NEAREST).

    Args:
        plane: (h, w) array.
        size: (H, W).

    Returns:
        (H, W) array.
    """
    (h, w), (height, width) = plane.shape, size
    rows = (2 * np.arange(height) + 1) * h // (2 * height)
    cols = (2 * np.arange(width) + 1) * w // (2 * width)
    return plane[rows[:, None], cols[None, :]]


def _label_plane(path: Path, expected: tuple[int, int] | None, size: tuple[int, int]) -> np.ndarray:
    """One label plane, checked against the index's label size, then resized to ``size``.

    Args:
        path: label PNG.
        expected: (sh, sw) from the index, or None.
        size: (H, W) wanted.

    Returns:
        (H, W) uint16 concept ids.
    """
    with _open_image(path) as img:
        found = (img.height, img.width)
        if expected is not None and found != expected:
            raise DatasetError(
                f"{path}: label size {found[0]}x{found[1]}, but the index says {expected[0]}x{expected[1]}"
            )
        plane = _label_values(img, path)
    return plane if found == tuple(size) else _nearest(plane, size)


def _drop_repeats(planes: np.ndarray) -> None:
    """Zero, in place, a concept id at a pixel of a plane when an earlier plane has it at that pixel.

    Args:
        planes: (P, H, W) concept ids.
    """
    for later in range(1, len(planes)):
        repeated = np.zeros(planes.shape[1:], bool)
        for earlier in range(later):
            repeated |= planes[later] == planes[earlier]
        planes[later][repeated] = 0


def load_label_planes(record: Record, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-level label planes and image-level concept ids of a record.

    Args:
        record: the row.
        size: (H, W) of the returned planes (nearest-neighbour resizing when the PNGs differ).

    Returns:
        (planes, image_ids): (P, H, W) uint16 concept ids, one plane per label PNG in record order, a concept
        kept only in the first plane that has it at a pixel; (Q,) int64 image-level concept ids.

    Raises:
        DatasetError: a PNG is missing or corrupt, or its size differs from the record's label_size.
    """
    planes = [_label_plane(path, record.label_size, size) for _, path in record.pixel_labels]
    stacked = np.stack(planes) if planes else np.zeros((0, *size), np.uint16)
    _drop_repeats(stacked)
    return stacked, np.array([cid for _, cid in record.image_labels], np.int64)


def check_files(records: list[Record]) -> list[str]:
    """Missing image and label files of the records (file-system lookups only, no decoding).

    Args:
        records: rows to check.

    Returns:
        One message per missing file, naming the row and the file; empty when all exist.
    """
    problems = []
    for record in records:
        if not os.path.isfile(record.image):
            problems.append(f"row {record.index}: image {record.image} is missing")
        problems.extend(
            f"row {record.index}: {category} label {path} is missing"
            for category, path in record.pixel_labels
            if not os.path.isfile(path)
        )
    return problems
