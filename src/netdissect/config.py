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
AUTO_SPLIT = "auto"  # dataset.split's default: see default_split


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


def command_line_values(values: dict) -> dict:
    """``--config`` values with nested leaves read as YAML, as in a config file.

    Snakemake parses a nested section (``'model={factory_args: {width: 8}}'``) with YAML's base loader, so every
    leaf is a string; the schema restores most types (see coerce), but not inside free-form sections such as
    ``model.factory_args``.
    """

    def leaf(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: leaf(v) for k, v in value.items()}
        if isinstance(value, list):
            return [leaf(v) for v in value]
        if isinstance(value, str):
            try:
                return yaml.safe_load(value)
            except yaml.YAMLError:
                return value
        return value

    return {k: leaf(v) if isinstance(v, dict) else v for k, v in values.items()}


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
        A copy of the configuration, with ``dataset.split: auto`` resolved (see default_split).

    Raises:
        ConfigError: listing every problem found, one per line.
    """
    schema = yaml.safe_load(Path(schema_path).read_text())
    config = coerce(copy.deepcopy(dict(config)), schema)
    errors = sorted(Draft202012Validator(schema).iter_errors(config), key=lambda e: list(map(str, e.absolute_path)))
    problems = [_describe(e, schema) for e in errors]
    if not problems:
        config["dataset"]["split"] = default_split(config["dataset"])
        problems = semantic_problems(config)
    if problems:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems))
    return config


def default_split(dataset: dict) -> str | None:
    """The split a dataset section selects: ``auto`` is ``val`` for the synthetic world (its classifier and
    segmenter train on ``train``) and every image (None) for broden and imagefolder datasets."""
    if dataset["split"] != AUTO_SPLIT:
        return dataset["split"]
    return "val" if dataset["kind"] == "synthetic" else None


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
        if model["name"] != "scene_cnn":
            what = f"model.name {model['name']!r}" if model["name"] else "a model.factory network"
            problems.append(f"config key 'model.weights': 'train' trains the builtin scene_cnn, not {what}")
    elif weights is None:
        if not model["random_init"] and model["factory"] is None:
            problems.append(
                "config key 'model.weights' is not set: give a weights file, 'train' (scene_cnn), "
                "or set model.random_init: true to dissect a randomly initialised network"
            )
    elif not Path(weights).is_file():
        problems.append(f"config key 'model.weights': file {weights!r} does not exist")
    if ds["kind"] == "imagefolder" and ds["split"] is not None and not _split_folders(ds["root"]):
        problems.append(
            f"config key 'dataset.split': image folders have no splits (unless laid out as <split>/<class>/<image>), "
            f"cannot select {ds['split']!r}"
        )
    kind = seg["kind"]
    if kind in ("dataset", "trained") and ds["kind"] == "imagefolder":
        problems.append(f"config key 'segmenter.kind': {kind!r} needs a labelled dataset; use torchvision or factory")
    if kind == "trained" and ds["kind"] == "broden":
        problems.append(
            "config key 'segmenter.kind': 'trained' learns the synthetic world's concepts; "
            "for a broden dataset use dataset (its own labels), torchvision or factory"
        )
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


def _split_folders(root: str | None) -> bool:
    """Whether an image folder is laid out by split, ``<split>/<class>/<image>`` (see ImageFolderDataset)."""
    if root is None or not Path(root).is_dir():
        return False
    from .datasets import open_dataset

    return any(r.split for r in open_dataset("imagefolder", root).records())


def _cuda_problems() -> list[str]:
    """CUDA availability, checked only when asked for (imports torch)."""
    import torch

    if torch.cuda.is_available():
        return []
    return ["config key 'device': cuda is not available on this machine; use device: cpu"]


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping."""
    data = yaml.safe_load(Path(path).read_text())
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of config keys")
    return data


# Keys of which at most one may be given (not null or false); a user who gives one replaces the other's default
# by its unset value. Keys are 'section.key'.
EXCLUSIVE = (("model.name", "model.factory"), ("model.weights", "model.random_init"))
EXCLUDE = "exclude each other: set only one of them"
UNSET = {"model.name": None, "model.factory": None, "model.weights": None, "model.random_init": False}
# The segmenter kinds each of the segmenter's own keys belongs to: a user who gives one of them without a kind
# selects the one kind they share; giving one that the kind set by the user does not use is an error.
SEGMENTER_KEYS = {
    "segmenter.name": ("torchvision",),
    "segmenter.factory": ("factory",),
    "segmenter.concepts": ("factory",),
    "segmenter.weights": ("torchvision", "factory"),
}


def _given(value: Any) -> bool:
    """Whether a value sets something: not null or false (also as the strings ``--config`` passes)."""
    if isinstance(value, str):
        return value.strip().lower() not in ("", "null", "~", "false")
    return value is not None and value is not False


def _get(cfg: dict, key: str) -> Any:
    section, name = key.split(".")
    return cfg[section].get(name) if isinstance(cfg.get(section), dict) else None


def _set(cfg: dict, key: str, value: Any) -> None:
    section, name = key.split(".")
    if isinstance(cfg.get(section), dict):
        cfg[section][name] = value


def _user_keys(user_layers: list[tuple[str, dict]]) -> dict[str, list[str]]:
    """'section.key' -> the sources (in order) of the layers that set it."""
    keys: dict[str, list[str]] = {}
    for source, layer in user_layers:
        for section, values in layer.items():
            names = values if isinstance(values, dict) else {None: values}
            for name in names:
                keys.setdefault(section if name is None else f"{section}.{name}", []).append(source)
    return keys


def _sources(user: dict[str, list[str]], key: str) -> str:
    """A key as error messages name it, with the layers that set it."""
    return f"{key!r} (set in {', '.join(dict.fromkeys(user[key]))})"


def resolve_exclusive(defaults: dict, user_layers: list[tuple[str, dict]]) -> dict:
    """Merge the user's config layers over the defaults; a key the user set wins over a default it excludes.

    Exclusive keys: ``model.name`` / ``model.factory``, ``model.weights`` / ``model.random_init`` (true), and
    ``segmenter.kind`` / the keys of other kinds (``name``: torchvision; ``factory``, ``concepts``: factory;
    ``weights``: torchvision or factory). Defaults that no longer apply are unset: ``model.weights: train`` (it
    trains the builtin scene_cnn on the dataset's scene labels) unless the model is ``scene_cnn`` on a labelled
    dataset, and ``segmenter.kind: trained`` (the synthetic world's segmenter) on a ``broden`` dataset, where it
    becomes ``dataset``, and ``ablation.activate: true`` and ``adversarial.activate: true`` unless the model's
    class names are known (``model.classes``, or ``model.weights: train``), and ``gan.activate: true`` unless a
    generator can be had (``gan.factory``, or the embedded one on the synthetic world) and labelled (a model
    segmenter: generated images have no labels of their own). Only a pair of which the user gave both keys is an
    error.

    Args:
        defaults: the embedded default config (config/config.yaml).
        user_layers: (source, mapping) per user layer in merge order: each ``--configfile`` by its path, then
            the ``--config`` values as "--config".

    Returns:
        The merged config (new dict), not yet validated.

    Raises:
        ConfigError: naming both keys of a pair the user gave, and where each was set.
    """
    cfg = copy.deepcopy(defaults)
    for _, layer in user_layers:
        cfg = merge(cfg, layer)
    user = _user_keys(user_layers)
    gave = {key for key in user if "." in key and _given(_get(cfg, key))}
    for pair in EXCLUSIVE:
        for key, other in (pair, pair[::-1]):
            if key in gave and other in gave:
                raise ConfigError(f"config keys {_sources(user, key)} and {_sources(user, other)} {EXCLUDE}")
            if key in gave and other not in user:
                _set(cfg, other, UNSET[other])
    _resolve_segmenter(cfg, user, gave)
    if "model.weights" not in user and _get(cfg, "model.weights") == "train":
        scene_cnn = _get(cfg, "model.name") == "scene_cnn" and not _given(_get(cfg, "model.factory"))
        if not scene_cnn or _get(cfg, "dataset.kind") == "imagefolder":
            _set(cfg, "model.weights", None)
    named = _get(cfg, "model.weights") == "train" or _get(cfg, "model.classes")
    for stage in ("ablation", "adversarial"):  # both need the names of the model's outputs
        if f"{stage}.activate" not in user and not named:
            _set(cfg, f"{stage}.activate", False)
    generator = _given(_get(cfg, "gan.factory")) or _get(cfg, "dataset.kind") == "synthetic"
    if "gan.activate" not in user and not (generator and _get(cfg, "segmenter.kind") != "dataset"):
        _set(cfg, "gan.activate", False)
    return cfg


def _resolve_segmenter(cfg: dict, user: dict[str, list[str]], gave: set[str]) -> None:
    """Choose segmenter.kind from the segmenter keys the user gave, and unset default keys of other kinds.

    Args:
        cfg: the merged config, changed in place.
        user: the sources of every key the user set.
        gave: the keys the user gave a value (not null or false).
    """
    keys = [key for key in SEGMENTER_KEYS if key in gave]
    kind = _get(cfg, "segmenter.kind")
    if "segmenter.kind" in user:
        for key in keys:
            if kind not in SEGMENTER_KEYS[key]:
                raise ConfigError(
                    f"config keys {_sources(user, 'segmenter.kind')} and {_sources(user, key)} exclude each other "
                    f"({key} applies to segmenter.kind {' or '.join(SEGMENTER_KEYS[key])})"
                )
    elif keys:
        kinds = set(SEGMENTER_KEYS[keys[0]])
        for key in keys[1:]:
            if not kinds & set(SEGMENTER_KEYS[key]):
                raise ConfigError(f"config keys {_sources(user, keys[0])} and {_sources(user, key)} {EXCLUDE}")
            kinds &= set(SEGMENTER_KEYS[key])
        if kind not in kinds:
            if len(kinds) > 1:
                raise ConfigError(
                    f"config key {_sources(user, keys[0])} applies to segmenter.kind {' or '.join(sorted(kinds))}, "
                    f"not the default {kind!r}: set segmenter.kind"
                )
            kind = kinds.pop()
    elif kind == "trained" and _get(cfg, "dataset.kind") == "broden":
        kind = "dataset"
    _set(cfg, "segmenter.kind", kind)
    for key, kinds in SEGMENTER_KEYS.items():
        if key not in user and kind not in kinds:
            _set(cfg, key, None)
