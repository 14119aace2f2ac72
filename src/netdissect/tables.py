"""The run's CSV tables: ``concepts.csv``, ``units.csv`` and ``thresholds.csv``, one reader and writer each.

Every table is plain CSV that pandas reads without options too. Here text columns never turn into NaN (an empty
label stays ``""``), and each table's columns are checked on reading, so a file from elsewhere that lacks one
fails with the file and the columns named.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .errors import NetdissectError
from .stores import write_csv
from .tally import Vocabulary

CONCEPT_COLUMNS = ("id", "name", "category")
UNIT_COLUMNS = ("unit", "label", "category", "iou", "threshold", "detector")
THRESHOLD_COLUMNS = ("unit", "threshold", "above", "total")
RUN_INDEX_COLUMNS = ("row", "image", "split")


class TableError(NetdissectError):
    """A table is missing or lacks columns; the message names the file."""


def _read(path: str | Path, columns: tuple[str, ...]) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise TableError(f"table {path} does not exist")
    table = pd.read_csv(path, keep_default_na=False)
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise TableError(f"table {path} lacks columns {missing} (has {list(table.columns)})")
    return table


def read_concepts(path: str | Path) -> pd.DataFrame:
    """``concepts.csv``: id (int), name, category; ids are the label values in the segmentation stores."""
    return _read(path, CONCEPT_COLUMNS)


def write_concepts(path: str | Path, table: pd.DataFrame) -> None:
    write_csv(path, table[list(CONCEPT_COLUMNS)])


def concept_categories(concepts: pd.DataFrame) -> list[str]:
    """The categories of a concept table, in order of first appearance."""
    return list(pd.unique(concepts["category"]))


def concept_vocabulary(concepts: pd.DataFrame) -> Vocabulary:
    """The id-indexed vocabulary of a concept table (category index per concept id, -1 for unused ids)."""
    categories = concept_categories(concepts)
    category = np.full(int(concepts["id"].max()) + 1, -1, np.int64)
    category[concepts["id"].to_numpy()] = [categories.index(c) for c in concepts["category"]]
    return Vocabulary(category, len(categories))


def read_units(path: str | Path) -> pd.DataFrame:
    """``units.csv``: one row per unit (see :func:`netdissect.iou.label_units` for the columns)."""
    return _read(path, UNIT_COLUMNS)


def write_units(path: str | Path, table: pd.DataFrame) -> None:
    write_csv(path, table)


def read_thresholds(path: str | Path) -> pd.DataFrame:
    """``thresholds.csv``: unit, threshold t_u, values above it, values in all."""
    return _read(path, THRESHOLD_COLUMNS)


def write_thresholds(path: str | Path, table: pd.DataFrame) -> None:
    write_csv(path, table[list(THRESHOLD_COLUMNS)])


def read_run_index(path: str | Path) -> pd.DataFrame:
    """The run's ``data/index.csv``: row (in the dataset), image path, split of every dissected image."""
    return _read(path, RUN_INDEX_COLUMNS)


def write_run_index(path: str | Path, table: pd.DataFrame) -> None:
    write_csv(path, table[list(RUN_INDEX_COLUMNS)])
