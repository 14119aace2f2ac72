"""Datasets of images, with optional per-pixel and per-image concept labels in the Broden format.

Two kinds of dataset folder are read:

- ``broden`` (also the synthetic world): ``index.csv`` lists one image per row with its split, image and
  label sizes, and for every category column either ';'-separated label PNGs (pixel-level labels, one label
  *plane* per PNG, concept id = R + 256 * G, 0 = none) or ';'-separated concept ids (image-level labels).
  ``label.csv`` names the concepts; ``c_<category>.csv`` files are only read when it has no category column.
- ``imagefolder``: every image file under the folder, without labels or splits.

Error messages number the rows of a CSV file from 0 after its header, skipping blank lines (for index.csv
this is ``Record.index``). Opening a
dataset and listing its records is cheap (no torch, no per-row file access), so it can run at DAG-parse time.
"""

from __future__ import annotations

import csv
import gc
import hashlib
import json
import os
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from operator import itemgetter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from .errors import NetdissectError

KINDS = ("broden", "imagefolder")
INDEX_COLUMNS = ("image", "split", "ih", "iw", "sh", "sw")
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"})
_COUNTED = re.compile(r"(.*)\((\d+)\)")  # 'object(1234)' in label.csv's category column


class DatasetError(NetdissectError):
    """Bad dataset input; the message names the file, row or column at fault."""


@dataclass(frozen=True)
class Record:
    """One row of a dataset: an image and its labels.

    Records listed by a Dataset parse ``image``, ``pixel_labels`` and ``image_labels`` from their index row on
    first access (building hundreds of thousands of Paths up front is too slow at DAG-parse time); callers see
    ordinary attributes, and a malformed label cell raises DatasetError at that first access.

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
        """Parse the deferred fields of a record made by a Dataset; only reached while they are unset."""
        deferred = self.__dict__.get("_deferred") if name in _DEFERRED else None
        if deferred is None:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        layout, row = deferred
        self.__dict__.update(layout.parse(self.index, row))
        self.__dict__.pop("_deferred", None)  # another thread may have parsed it too
        return self.__dict__[name]


_DEFERRED = ("image", "pixel_labels", "image_labels")
_Sizes = tuple[tuple[int, int] | None, tuple[int, int] | None]


@dataclass(frozen=True)
class _Layout:
    """Where the fields of a dataset's index rows are, shared by its deferred records.

    Attributes:
        source: the index file (or image folder), named in error messages.
        base: folder the relative paths of the rows start from.
        image: position of the image column.
        categories: (position, name, pixel-level?) per category column.
    """

    source: Path
    base: str
    image: int
    categories: tuple[tuple[int, str, bool], ...]

    def where(self, index: int, row: list[str]) -> str:
        """A row's description in error messages."""
        return f"{self.source} row {index} ({row[self.image]})"

    def parse(self, index: int, row: list[str]) -> dict[str, Any]:
        """The image path and labels of a row.

        Args:
            index: row number.
            row: raw cells.

        Returns:
            Values of ``image``, ``pixel_labels`` and ``image_labels``.
        """
        pixel: list[tuple[str, Path]] = []
        image: list[tuple[str, int]] = []
        for position, name, is_pixel in self.categories:
            cell = row[position]
            if not cell:
                continue
            if is_pixel and _png_names(cell):
                pixel += [(name, Path(self.base, entry)) for entry in cell.split(";")]
            elif not is_pixel and _concept_ids(cell):
                image += [(name, int(entry)) for entry in cell.split(";")]
            else:
                expected = "PNG file names" if is_pixel else "concept ids >= 1"
                raise DatasetError(f"{self.where(index, row)}, column {name}: expected {expected}, got {cell!r}")
        return {"image": Path(self.base, row[self.image]), "pixel_labels": tuple(pixel), "image_labels": tuple(image)}


def _deferred_record(index: int, split: str, sizes: _Sizes, layout: _Layout, row: list[str]) -> Record:
    """A Record whose image path and labels are parsed from ``row`` when first read.

    Args:
        index: row number.
        split: the row's split.
        sizes: (image_size, label_size).
        layout: how to parse the row.
        row: raw cells.

    Returns:
        The record.
    """
    record = object.__new__(Record)
    record.__dict__.update(index=index, split=split, image_size=sizes[0], label_size=sizes[1], _deferred=(layout, row))
    return record


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while building many acyclic objects (it would rescan them often)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


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
        """SHA-256 of the header and of the raw index cells of the given rows (paths relative to the root).

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
        with _gc_paused():
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
        ids = [_parse_int(row[column["number"]], f"{path} row {i}, column number") for i, row in enumerate(rows)]
        seen: set[int] = set()
        for i, cid in enumerate(ids):
            if cid < 1 or cid in seen:
                raise DatasetError(f"{path} row {i}: concept id {cid} is < 1 or repeated")
            seen.add(cid)
        if "category" in column:
            categories = [_primary_category(row[column["category"]]) for row in rows]
        else:
            listed = self._listed_categories()
            categories = [listed.get(cid, "") for cid in ids]
        if "" in categories:
            raise DatasetError(f"{path}: concept {ids[categories.index('')]} has no category")
        names = [row[column["name"]] for row in rows]
        table = pd.DataFrame({"id": np.array(ids, np.int64), "name": names, "category": categories})
        return table.sort_values("id", kind="stable", ignore_index=True)

    def categories(self) -> list[tuple[str, str]]:
        """(category, kind) per category column; 'pixel' if any of its cells ends in .png, else 'image'."""
        return [(name, "pixel" if is_pixel else "image") for _, name, is_pixel in self._layout.categories]

    @cached_property
    def _layout(self) -> _Layout:
        """Positions of the image and category columns, and the kind of every category."""
        categories = []
        for position, name in enumerate(self._header):
            if name not in INDEX_COLUMNS:
                is_pixel = any(map(_is_png, map(itemgetter(position), self._rows)))
                categories.append((position, name, is_pixel))
        return _Layout(self._source, str(self.root / "images"), self._header.index("image"), tuple(categories))

    def _build_records(self) -> list[Record]:
        """A deferred Record per row, with its split and sizes."""
        position = {name: i for i, name in enumerate(self._header)}
        size_cells = itemgetter(*(position[name] for name in ("ih", "iw", "sh", "sw")))
        split, layout = position["split"], self._layout
        parsed: dict[tuple[str, ...], _Sizes] = {}  # rows mostly share their size cells
        records = []
        for index, row in enumerate(self._rows):
            key = size_cells(row)
            sizes = parsed.get(key) or parsed.setdefault(key, self._sizes(index, row, key))
            records.append(_deferred_record(index, row[split], sizes, layout, row))
        return records

    def _sizes(self, index: int, row: list[str], cells: tuple[str, ...]) -> _Sizes:
        """(ih, iw) and (sh, sw) of a row, each None when both its cells are empty.

        Args:
            index: row number.
            row: raw cells.
            cells: the ih, iw, sh and sw cells.

        Returns:
            (image size, label size).
        """
        sizes = []
        for names, pair in (("ih/iw", cells[:2]), ("sh/sw", cells[2:])):
            if not any(pair):
                sizes.append(None)
                continue
            values = [int(cell) if cell.strip().isdecimal() else 0 for cell in pair]
            if min(values) <= 0:
                where = self._layout.where(index, row)
                raise DatasetError(f"{where}, columns {names}: expected positive integers, got {pair}")
            sizes.append((values[0], values[1]))
        return sizes[0], sizes[1]

    def _listed_categories(self) -> dict[int, str]:
        """Category of every concept listed by c_<category>.csv files (the most frequent, then the first).

        Files of index categories come first, in column order, then the other c_*.csv files by name.
        """
        files = {path.name[2:-4]: path for path in self.root.glob("c_*.csv")}
        order = [name for _, name, _ in self._layout.categories if name in files]
        order += sorted(set(files) - set(order))
        best: dict[int, tuple[int, str]] = {}
        for category in order:
            header, rows = _read_csv(files[category], ("number",))
            number = header.index("number")
            frequency = header.index("frequency") if "frequency" in header else None
            for i, row in enumerate(rows):
                where = f"{files[category]} row {i}"
                cid = _parse_int(row[number], where)
                count = _parse_int(row[frequency], where) if frequency is not None and row[frequency] else 0
                if cid not in best or count > best[cid][0]:
                    best[cid] = (count, category)
        return {cid: category for cid, (_, category) in best.items()}


class ImageFolderDataset(Dataset):
    """Every image file under a folder, in relative-path order, without labels; when every image lies at
    ``<split>/<class>/<image>`` (torchvision's ImageFolder layout with splits), the first folder is its split."""

    kind = "imagefolder"

    def records(self, split: str | None = None, size: int | None = None) -> list[Record]:
        """The first ``size`` images (all if None); ``split`` only for a folder laid out by split."""
        if split is not None and not any(r.split for r in self._records):
            raise DatasetError(
                f"{self.root}: image folders have no splits (unless laid out as <split>/<class>/<image>), "
                f"cannot select split {split!r}"
            )
        return super().records(split, size)

    def concepts(self) -> pd.DataFrame:
        """An empty concept table."""
        return pd.DataFrame(
            {
                "id": pd.Series([], dtype=np.int64),
                "name": pd.Series([], dtype=str),
                "category": pd.Series([], dtype=str),
            }
        )

    def categories(self) -> list[tuple[str, str]]:
        """No categories."""
        return []

    def _build_records(self) -> list[Record]:
        """A deferred Record per listed image."""
        layout = _Layout(self._source, str(self.root), 0, ())
        parts = [row[0].split("/") for row in self._rows]
        by_split = all(len(p) == 3 for p in parts)
        return [
            _deferred_record(i, p[0] if by_split else "", (None, None), layout, row)
            for i, (p, row) in enumerate(zip(parts, self._rows))
        ]


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
        with open(path, newline="", encoding="utf-8-sig") as f, _gc_paused():
            reader = csv.reader(f)
            header = [name.strip() for name in next(reader, [])]
            rows = [row for row in reader if row]
    except OSError as err:
        raise DatasetError(f"cannot read {path}: {err.strerror or err}") from err
    except (csv.Error, UnicodeDecodeError) as err:
        raise DatasetError(f"{path} is not a readable CSV file: {err}") from err
    missing = [name for name in required if name not in header]
    if missing:
        raise DatasetError(f"{path}: header lacks column(s) {', '.join(missing)} (header: {','.join(header)})")
    if "" in header or len(set(header)) != len(header):
        raise DatasetError(f"{path}: header has empty or repeated column names: {','.join(header)}")
    if set(map(len, rows)) - {len(header)}:
        bad = next(i for i, row in enumerate(rows) if len(row) != len(header))
        raise DatasetError(f"{path} row {bad}: {len(rows[bad])} fields, but the header has {len(header)}")
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


def _png_names(cell: str) -> bool:
    """Whether every ';'-separated entry of a cell ends in .png (any case)."""
    if cell.endswith(".png") and cell.count(";") == cell.count(".png;"):  # the common case, without a loop
        return True
    return all(map(_is_png, cell.split(";")))


def _concept_ids(cell: str) -> bool:
    """Whether every ';'-separated entry of a cell is a decimal integer >= 1."""
    entries = cell.split(";")
    return all(map(str.isdecimal, entries)) and all(map(int, entries))


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
