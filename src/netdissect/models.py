"""Building the network to dissect: architecture, weights, layer names and input preprocessing.

A model is described by a :class:`~netdissect.modelspec.ModelSpec`: either a named architecture (torchvision classification
models or a builtin such as ``scene_cnn``) or a user factory function, plus a weights file. Weights load
with ``weights_only`` by default, so arbitrary pickled code never runs unless the user allows it.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib
import importlib.util
import pickle
import re
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import torch
import torchvision
from torch import nn

from .architectures import scene_cnn
from .errors import NetdissectError
from .modelspec import ModelSpec

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_CHECKPOINT_KEYS = ("state_dict", "model", "model_state_dict", "net")
_SHOWN = 5  # how many keys of each kind an error message lists


class ModelError(NetdissectError):
    """Bad model configuration; names the key, file or layer at fault."""


BUILTINS: dict[str, Callable[..., nn.Module]] = {"scene_cnn": scene_cnn}


def _build_named(name: str, num_classes: int | None) -> nn.Module:
    """Construct a builtin or torchvision architecture with random weights.

    Args:
        name: architecture name.
        num_classes: output classes, or None for the constructor's default.

    Returns:
        The randomly initialised model.
    """
    kwargs = {} if num_classes is None else {"num_classes": num_classes}
    if name in BUILTINS:
        return BUILTINS[name](**kwargs)
    valid = torchvision.models.list_models(module=torchvision.models)
    if name not in valid:
        close = difflib.get_close_matches(name, [*BUILTINS, *valid], n=5, cutoff=0.4)
        hint = f"; did you mean: {', '.join(close)}" if close else ""
        raise ModelError(
            f"model.name: unknown architecture '{name}'{hint} "
            f"(builtins: {', '.join(BUILTINS)}; or any torchvision classification model)"
        )
    return torchvision.models.get_model(name, weights=None, **kwargs)


def _load_factory(spec: str, key: str = "model.factory") -> Callable[..., nn.Module]:
    """Find the function named by a factory string.

    Args:
        spec: ``path/to/file.py:function`` or ``package.module:function``.
        key: the config key that gave it (named in errors).

    Returns:
        The factory function.
    """
    source, sep, func = spec.rpartition(":")
    if not sep or not source or not func:
        raise ModelError(f"{key} '{spec}': expected 'path/to/file.py:function' or 'module:function'")
    if source.endswith(".py") or "/" in source or "\\" in source:
        path = Path(source)
        if not path.is_file():
            raise ModelError(f"{key} '{spec}': file not found: {path}")
        digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]
        stem = re.sub(r"\W", "_", path.stem)
        module_name = f"_netdissect_factory_{stem}_{digest}"
        module_spec = importlib.util.spec_from_file_location(module_name, path)
        if module_spec is None or module_spec.loader is None:
            raise ModelError(f"{key} '{spec}': cannot import {path}")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[module_name] = module  # dataclasses and pickling look classes up there
        try:
            module_spec.loader.exec_module(module)
        except Exception as exc:
            del sys.modules[module_name]
            raise ModelError(f"{key} '{spec}': importing {path} failed: {exc!r}") from exc
    else:
        try:
            module = importlib.import_module(source)
        except Exception as exc:
            raise ModelError(f"{key} '{spec}': importing module '{source}' failed: {exc!r}") from exc
    function = getattr(module, func, None)
    if not callable(function):
        raise ModelError(f"{key} '{spec}': no function '{func}' in {source}")
    return function


def build_factory(spec: str, args: Mapping, key: str = "model.factory") -> nn.Module:
    """Call a user factory and check that it returns a module.

    Args:
        spec: factory string.
        args: keyword arguments for the factory.
        key: the config key that gave it (named in errors, with ``<key>_args``).

    Returns:
        The model the factory returned.
    """
    function = _load_factory(spec, key)
    try:
        model = function(**args)
    except Exception as exc:
        raise ModelError(f"{key} '{spec}' raised {exc!r} ({key}_args: {dict(args)})") from exc
    if not isinstance(model, nn.Module):
        raise ModelError(f"{key} '{spec}' returned {type(model).__name__}, not a torch.nn.Module")
    return model


def build_model(spec: ModelSpec) -> nn.Module:
    """Build a network in eval mode with its weights loaded.

    Args:
        spec: model description; exactly one of ``name`` and ``factory`` must be set.

    Returns:
        The model, in eval mode.
    """
    if spec.trained_here:
        raise ModelError("model.weights: 'train' names weights the workflow makes; resolve the spec first")
    if (spec.name is None) == (spec.factory is None):
        raise ModelError("model: set exactly one of model.name and model.factory")
    if spec.weights is None and not spec.random_init and spec.factory is None:
        raise ModelError(
            "model.weights is not set: give a weights file, or set model.random_init: true "
            "to dissect a randomly initialised network"
        )
    if spec.name is not None:
        model = _build_named(spec.name, spec.num_classes)
    else:
        if spec.num_classes is not None:
            raise ModelError("model.num_classes applies to model.name only; pass it in model.factory_args")
        model = build_factory(spec.factory, spec.factory_args)
    if spec.weights is not None:
        load_weights(model, spec.weights, allow_pickle=spec.allow_pickle)
    return model.eval()


def _unwrap(obj: object, path: Path, allow_pickle: bool) -> Mapping[str, torch.Tensor]:
    """Find the state dict inside whatever a weights file held.

    Args:
        obj: the loaded object.
        path: the file, for messages.
        allow_pickle: whether whole modules are acceptable.

    Returns:
        The state dict.
    """
    if isinstance(obj, nn.Module):
        if not allow_pickle:
            raise ModelError(f"weights file {path} holds a whole pickled model; set model.allow_pickle: true")
        return obj.state_dict()
    if not isinstance(obj, Mapping):
        raise ModelError(f"weights file {path} holds a {type(obj).__name__}, not a state_dict or checkpoint")
    if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return obj
    for key in _CHECKPOINT_KEYS:
        if key in obj and isinstance(obj[key], (Mapping, nn.Module)):
            return _unwrap(obj[key], path, allow_pickle)
    keys = ", ".join(map(str, list(obj)[:10]))
    raise ModelError(
        f"weights file {path}: no state_dict found (looked for a tensor dict or keys "
        f"{', '.join(_CHECKPOINT_KEYS)}); top-level keys: {keys}"
    )


def read_state_dict(path: str | Path, allow_pickle: bool = False) -> dict[str, torch.Tensor]:
    """Read the state dict of a weights file (plain, checkpoint dict or, if allowed, a whole module).

    Args:
        path: weights file.
        allow_pickle: load full pickles (runs code from the file; only for trusted files).

    Returns:
        The state dict on the CPU, with DataParallel ``module.`` prefixes stripped.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"model.weights: file not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=not allow_pickle)
    except pickle.UnpicklingError as exc:
        if allow_pickle:
            raise ModelError(f"weights file {path} could not be unpickled: {exc}") from exc
        raise ModelError(
            f"weights file {path} is not loadable with weights_only (it holds pickled objects); "
            "set model.allow_pickle: true to allow full pickles (only for files you trust)"
        ) from exc
    except Exception as exc:
        raise ModelError(f"weights file {path} could not be read: {exc!r}") from exc
    state = dict(_unwrap(obj, path, allow_pickle))
    while state and all(k.startswith("module.") for k in state):
        state = {k.removeprefix("module."): v for k, v in state.items()}
    return state


def _listed(items: list[str]) -> str:
    """Comma-separated list truncated to a few items."""
    more = f" (+{len(items) - _SHOWN} more)" if len(items) > _SHOWN else ""
    return ", ".join(items[:_SHOWN]) + more


def apply_state_dict(model: nn.Module, state: Mapping[str, torch.Tensor], source: str | Path) -> None:
    """Load a state dict strictly, explaining any mismatch.

    Args:
        model: the model to fill.
        state: the state dict.
        source: where the state dict came from, for messages.
    """
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [
        f"{k} {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in state and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or shapes:
        parts = [
            f"{label} ({len(keys)}): {_listed(keys)}"
            for label, keys in (
                ("missing keys", missing),
                ("unexpected keys", unexpected),
                ("shape mismatches", shapes),
            )
            if keys
        ]
        raise ModelError(f"weights file {source} does not match the model: " + "; ".join(parts))
    model.load_state_dict(state, strict=True)


def load_weights(model: nn.Module, path: str | Path, allow_pickle: bool = False) -> None:
    """Load a weights file into a model, strictly.

    Args:
        model: the model to fill.
        path: weights file (state dict, checkpoint dict holding one, or with allow_pickle a whole module).
        allow_pickle: load full pickles (only for trusted files).
    """
    apply_state_dict(model, read_state_dict(path, allow_pickle), path)


def _suggestions(name: str, valid: list[str], limit: int = 40) -> list[str]:
    """Valid layer names worth showing for a name that was not found.

    Args:
        name: the bad name.
        valid: all layer names.
        limit: show every name when there are at most this many.

    Returns:
        Names sharing the bad name's longest valid prefix, then the top-level names.
    """
    if len(valid) <= limit:
        return valid
    parts = name.split(".")
    shared: list[str] = []
    for depth in range(len(parts) - 1, 0, -1):
        prefix = ".".join(parts[:depth]) + "."
        shared = [v for v in valid if v.startswith(prefix) and "." not in v[len(prefix) :]]
        if shared:
            break
    top = [v for v in valid if "." not in v]
    return list(dict.fromkeys(shared + top))


def resolve_layers(model: nn.Module, names: list[str]) -> dict[str, nn.Module]:
    """Look up layers by name.

    Args:
        model: the model.
        names: layer names (module paths).

    Returns:
        Name -> module, in the order given.
    """
    modules = dict(model.named_modules())
    modules.pop("", None)
    for name in names:
        if name not in modules:
            valid = list(modules)
            close = difflib.get_close_matches(name, valid, n=3, cutoff=0.6)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise ModelError(f"layer '{name}' not found{hint}; valid layers: {', '.join(_suggestions(name, valid))}")
    return {name: modules[name] for name in names}


def preprocess(
    images: np.ndarray,
    mean: tuple[float, float, float] = IMAGENET_MEAN,
    std: tuple[float, float, float] = IMAGENET_STD,
) -> torch.Tensor:
    """Turn uint8 images into a normalised float batch.

    Args:
        images: uint8 (N, H, W, 3).
        mean: per-channel mean of [0, 1] pixel values.
        std: per-channel standard deviation.

    Returns:
        float32 (N, 3, H, W).
    """
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"expected uint8 images of shape (N, H, W, 3), got {images.dtype} {images.shape}")
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)
    x = x.to(torch.float32, memory_format=torch.contiguous_format).div_(255.0)
    m = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    return x.sub_(m).div_(s)


def normalization(spec: ModelSpec) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The per-channel (mean, std) that the model's input is normalised with, after scaling pixels to [0, 1]."""
    return (IMAGENET_MEAN, IMAGENET_STD) if spec.normalize == "imagenet" else ((0.0,) * 3, (1.0,) * 3)


def load_model(spec: ModelSpec, trained_weights: str | None, device: str):
    """Build the model on its device for inference, with its input normalisation.

    Args:
        spec: the model to build.
        trained_weights: the weights file the workflow trained (used when ``spec.weights`` is ``"train"``).
        device: 'cpu' or 'cuda'.

    Returns:
        (model, torch device, normalise) where normalise maps uint8 (N, H, W, 3) arrays to channels-last input
        tensors.
    """
    torch.manual_seed(spec.seed)  # random-init models must be identical in every chunk job
    model = build_model(spec.resolved(trained_weights))
    torch_device = torch.device(device)
    model.to(torch_device, memory_format=torch.channels_last).eval()  # channels-last convolutions run faster
    mean, std = normalization(spec)

    def normalise(images: np.ndarray) -> torch.Tensor:
        return preprocess(images, mean, std).contiguous(memory_format=torch.channels_last)

    return model, torch_device, normalise
