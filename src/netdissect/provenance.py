"""Provenance: what every output was built from (config, package versions, content digests)."""

from __future__ import annotations

import hashlib
import json
from importlib import metadata
from typing import Any

PACKAGES = ("netdissect", "torch", "torchvision", "numpy", "zarr", "pandas", "snakemake")


def digest(value: Any) -> str:
    """Short sha256 of a JSON-serialisable value (key order does not matter)."""
    text = json.dumps(value, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def file_digest(path) -> str:
    """Full sha256 of a file's bytes."""
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            sha.update(chunk)
    return sha.hexdigest()


def versions() -> dict[str, str]:
    """Installed versions of the packages that shape the results (no imports)."""
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def record(stage: str, config: dict, inputs: dict[str, Any]) -> dict:
    """Provenance entry for an output: the stage, the config values it used, its input digests and versions."""
    return {"stage": stage, "config": config, "inputs": inputs, "versions": versions()}
