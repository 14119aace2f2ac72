"""Configuration: dotted-key expansion, schema validation and checks of paths and choices, before any job runs.

Everything here is cheap (no torch import), so the Snakefile runs it at every parse. Checks that need the model
itself (layer names, weights against the architecture) live in ``netdissect.checks``.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator

from .errors import NetdissectError

TORCHVISION_SEGMENTERS = (
    "fcn_resnet50",
    "fcn_resnet101",
    "deeplabv3_resnet50",
    "deeplabv3_resnet101",
    "deeplabv3_mobilenet_v3_large",
    "lraspp_mobilenet_v3_large",
)


class ConfigError(NetdissectError):
    """A configuration problem; the message names the key and what is allowed."""


def merge(base: dict, override: dict) -> dict:
    """Nested merge of override over base (new dict)."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _accepts_string(schema: dict) -> bool:
    """Whether a schema node can hold a string (so a string value must not be reinterpreted)."""
    types = schema.get("type", [])
    types = [types] if isinstance(types, str) else types
    if "string" in types or any(isinstance(v, str) for v in schema.get("enum", [])):
        return True
    return "$ref" in schema and schema["$ref"].endswith("nullable_string")


def _accepts_null(schema: dict) -> bool:
    types = schema.get("type", [])
    return "null" in ([types] if isinstance(types, str) else types) or "$ref" in schema


def coerce(config: Any, schema: dict) -> Any:
    """Parse string leaves as YAML where the schema expects no string.

    Snakemake passes nested ``--config`` values (``'classifier={epochs: 2}'``) as strings; this restores
    numbers, booleans, null and lists there, and leaves strings where strings belong.
    """
    if isinstance(config, dict):
        props = schema.get("properties", {})
        return {k: coerce(v, props[k]) if k in props else v for k, v in config.items()}
    if isinstance(config, str) and config in ("null", "~") and _accepts_null(schema):
        return None
    if isinstance(config, str) and not _accepts_string(schema):
        try:
            return yaml.safe_load(config)
        except yaml.YAMLError:
            return config
    return config


def _key(path) -> str:
    return ".".join(str(p) for p in path) or "(top level)"


def _describe(error, schema: dict) -> str:
    """One readable line for a jsonschema error: the key, the problem and what is allowed."""
    key = _key(error.absolute_path)
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed))
        where = f" in {key!r}" if error.absolute_path else ""
        return f"unknown config key{'s' if len(extra) > 1 else ''} {', '.join(map(repr, extra))}{where}; allowed: {', '.join(allowed)}"
    if error.validator == "enum":
        return f"config key {key!r}: {error.instance!r} is not one of: {', '.join(map(str, error.validator_value))}"
    if error.validator == "required":
        return f"config key {key!r}: {error.message}"
    return f"config key {key!r}: {error.message}"


def validate(config: dict, schema_path: str | Path) -> dict:
    """Validate a merged configuration against the schema and check paths and choices.

    Args:
        config: the merged configuration (default file, --configfile files, --config values).
        schema_path: the JSON schema (YAML).

    Returns:
        A copy of the configuration.

    Raises:
        ConfigError: listing every problem found, one per line.
    """
    schema = yaml.safe_load(Path(schema_path).read_text())
    config = coerce(copy.deepcopy(dict(config)), schema)
    errors = sorted(Draft202012Validator(schema).iter_errors(config), key=lambda e: list(map(str, e.absolute_path)))
    problems = [_describe(e, schema) for e in errors]
    if not problems:
        problems = semantic_problems(config)
    if problems:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems))
    return config


def _exists(path: str | None) -> bool:
    return path is not None and Path(path).exists()


def semantic_problems(cfg: dict) -> list[str]:
    """Problems the schema cannot express: required paths, exclusive choices, combinations."""
    problems = []
    ds, model, seg = cfg["dataset"], cfg["model"], cfg["segmenter"]
    if ds["kind"] in ("broden", "imagefolder"):
        if ds["root"] is None:
            problems.append(f"config key 'dataset.root' must name the {ds['kind']} folder")
        elif not Path(ds["root"]).is_dir():
            problems.append(f"config key 'dataset.root': folder {ds['root']!r} does not exist")
        elif ds["kind"] == "broden" and not (Path(ds["root"]) / "index.csv").is_file():
            problems.append(f"config key 'dataset.root': {ds['root']!r} has no index.csv (not a Broden-format folder)")
    if (model["name"] is None) == (model["factory"] is None):
        problems.append("config keys 'model.name' and 'model.factory': set exactly one of them")
    weights = model["weights"]
    if weights == "train":
        if ds["kind"] == "imagefolder":
            problems.append("config key 'model.weights': 'train' needs a dataset with scene labels, not an imagefolder")
    elif weights is None:
        if not model["random_init"]:
            problems.append(
                "config key 'model.weights' is not set: give a weights file, 'train', "
                "or set model.random_init: true to dissect a randomly initialised network"
            )
    elif not Path(weights).is_file():
        problems.append(f"config key 'model.weights': file {weights!r} does not exist")
    kind = seg["kind"]
    if kind in ("dataset", "trained") and ds["kind"] == "imagefolder":
        problems.append(f"config key 'segmenter.kind': {kind!r} needs a labelled dataset; use torchvision or factory")
    if kind == "torchvision" and seg["name"] not in TORCHVISION_SEGMENTERS:
        problems.append(
            f"config key 'segmenter.name': {seg['name']!r} is not one of: {', '.join(TORCHVISION_SEGMENTERS)}"
        )
    if kind == "factory":
        if seg["factory"] is None:
            problems.append("config key 'segmenter.factory' must be set for segmenter.kind: factory")
        if not _exists(seg["concepts"]):
            problems.append(f"config key 'segmenter.concepts': file {seg['concepts']!r} does not exist")
    if kind in ("torchvision", "factory") and seg["weights"] is not None and not Path(seg["weights"]).is_file():
        problems.append(f"config key 'segmenter.weights': file {seg['weights']!r} does not exist")
    if kind == "torchvision" and seg["weights"] is None:
        problems.append("config key 'segmenter.weights' must name the torchvision segmenter's weights file")
    if cfg["device"] == "cuda":
        problems.extend(_cuda_problems())
    return problems


def _cuda_problems() -> list[str]:
    """CUDA availability, checked only when asked for (imports torch)."""
    import torch

    if torch.cuda.is_available():
        return []
    return ["config key 'device': cuda is not available on this machine; use device: cpu"]
