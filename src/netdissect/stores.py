"""Reading and writing the on-disk stores: zarr groups, npz states and CSV tables, always atomically.

Every output is built under a temporary sibling name and moved into place only when complete, so a crash
never leaves a half-written store that a rerun would trust. Every store records its provenance in its
attributes (zarr) or beside it; consumers compare provenance to refuse mixing stores built from different inputs.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import zarr
from zarr.codecs import BloscCodec

from .errors import NetdissectError

if TYPE_CHECKING:  # pandas costs threshold jobs, which write no table, a fifth of a second to import
    import pandas as pd

COMPRESSOR = BloscCodec(cname="zstd", clevel=1, shuffle="shuffle")


class StoreError(NetdissectError):
    """A store is missing, incomplete or inconsistent with the others; the message names it."""


def _temporary(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def _discard(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write a file or folder to; move it to ``path`` only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary(path)
    _discard(tmp)
    try:
        yield tmp
        _discard(path)
        os.replace(tmp, path)
    except BaseException:
        _discard(tmp)
        raise


def write_group(path: str | Path, arrays: dict[str, np.ndarray], attrs: dict[str, Any], chunk_rows: int = 0) -> None:
    """Write arrays and attributes as one zarr group, atomically.

    Args:
        path: the store folder.
        arrays: name -> array; arrays are chunked along their first axis by ``chunk_rows`` (0: one chunk).
        attrs: JSON-serialisable attributes (provenance and metadata).
        chunk_rows: rows of the first axis per zarr chunk.
    """
    with atomic_path(path) as tmp:
        group = zarr.open_group(str(tmp), mode="w")
        for name, data in arrays.items():
            data = np.asarray(data)
            chunks = (
                data.shape
                if not chunk_rows or data.ndim == 0
                else (min(chunk_rows, max(len(data), 1)),) + data.shape[1:]
            )
            chunks = tuple(max(c, 1) for c in chunks)
            array = group.create_array(name, shape=data.shape, dtype=data.dtype, chunks=chunks, compressors=COMPRESSOR)
            if data.size:
                array[...] = data
        group.attrs.update(_jsonable(attrs))


class GroupWriter:
    """Write a zarr group array by array, in row blocks, then commit it atomically (for outputs too big to hold)."""

    def __init__(self, path: str | Path):
        self._context = atomic_path(path)
        self.group = zarr.open_group(str(self._context.__enter__()), mode="w")

    def create(self, name: str, shape: tuple[int, ...], dtype, chunk_rows: int) -> zarr.Array:
        chunks = (max(1, min(chunk_rows, shape[0])),) + tuple(shape[1:])
        return self.group.create_array(name, shape=shape, dtype=dtype, chunks=chunks, compressors=COMPRESSOR)

    def commit(self, attrs: dict[str, Any]) -> None:
        self.group.attrs.update(_jsonable(attrs))
        self._context.__exit__(None, None, None)

    def abort(self, error: BaseException) -> None:
        with contextlib.suppress(BaseException):
            self._context.__exit__(type(error), error, error.__traceback__)


def open_group(path: str | Path) -> zarr.Group:
    """Open a finished store for reading; StoreError if it is missing or not a netdissect store."""
    path = Path(path)
    if not path.is_dir():
        raise StoreError(f"store {path} does not exist")
    try:
        group = zarr.open_group(str(path), mode="r")
    except Exception as error:
        raise StoreError(f"store {path} cannot be read: {error}") from error
    if "provenance" not in group.attrs:
        raise StoreError(f"store {path} is incomplete (no provenance): delete it and rerun")
    return group


def read_rows(array: zarr.Array, rows: np.ndarray) -> np.ndarray:
    """Rows of an array at the given positions along its first axis, in their order.

    Rows that lie close together are read as one slice and picked in memory: zarr's orthogonal selection costs
    several times a slice read of the same rows.
    """
    rows = np.asarray(rows, np.int64)
    if len(rows) == 0:
        return np.zeros((0, *array.shape[1:]), array.dtype)
    first, stop = int(rows.min()), int(rows.max()) + 1
    if stop - first > 2 * len(rows):
        return array.get_orthogonal_selection((rows,))
    return array[first:stop][rows - first]


def provenance(group: zarr.Group) -> dict:
    """The provenance attributes of a store."""
    return dict(group.attrs["provenance"])


def require_same(stores: dict[str, dict], key: str) -> Any:
    """Check that every store's provenance agrees on ``key``; returns the shared value.

    Args:
        stores: store path -> provenance.
        key: the provenance entry that must agree.
    """
    values = {path: prov.get(key) for path, prov in stores.items()}
    distinct = {json.dumps(v, sort_keys=True) for v in values.values()}
    if len(distinct) > 1:
        lines = "\n  ".join(f"{path}: {value}" for path, value in values.items())
        raise StoreError(f"stores were built from different inputs ({key} differs); rerun them:\n  {lines}")
    return next(iter(values.values()))


def save_state(path: str | Path, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    """Write an internal per-chunk state (npz) atomically, with JSON metadata."""
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, _provenance_json=np.array(json.dumps(_jsonable(meta))), **arrays)


def load_state(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read a state written by save_state."""
    try:
        with np.load(path) as data:
            arrays = {k: data[k] for k in data.files if k != "_provenance_json"}
            meta = json.loads(str(data["_provenance_json"]))
    except (OSError, ValueError, KeyError) as error:
        raise StoreError(f"state {path} cannot be read ({error}): delete it and rerun") from error
    return arrays, meta


def write_csv(path: str | Path, table: pd.DataFrame) -> None:
    """Write a CSV table atomically (plain CSV that pandas reads without options)."""
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False, float_format="%.9g")


def write_json(path: str | Path, data: dict) -> None:
    """Write a JSON document atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(_jsonable(data), indent=2, sort_keys=True) + "\n")


def _jsonable(value: Any) -> Any:
    """Convert numpy scalars/arrays and paths inside nested structures to JSON types."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return value
