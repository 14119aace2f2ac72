"""Checks that need the network itself, run once when the workflow is planned, before any job starts."""

from __future__ import annotations

from .layout import GENERATOR_PREFIX, is_generator_layer
from .models import ModelError, build_model, resolve_layers
from .modelspec import ModelSpec


def check_model(spec: ModelSpec, layers: list[str]) -> None:
    """Build the configured model (random weights when they are produced by the workflow) and find its layers.

    Raises:
        ModelError: unknown architecture or factory, weights that do not fit it, a layer name that does not
            exist (the message lists the valid ones) or one that would pass for a generator layer.
    """
    import torch

    reserved = [layer for layer in layers if is_generator_layer(layer)]
    if reserved:
        raise ModelError(
            f"model.layers: {reserved[0]!r} starts with {GENERATOR_PREFIX!r}, which names generator layers; "
            "a classifier layer of that name cannot be dissected"
        )
    torch.manual_seed(0)
    resolve_layers(build_model(spec.resolved()), layers)


__all__ = ["ModelError", "check_model"]
