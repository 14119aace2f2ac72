"""Checks that need the network itself, run once when the workflow is planned, before any job starts."""

from __future__ import annotations

from .layout import GENERATOR_PREFIX, is_generator_layer
from .models import ModelError, build_model, resolve_layers
from .modelspec import ModelSpec


def check_model(
    spec: ModelSpec, layers: list[str], classes: int | None = None, image_size: tuple[int, int] = (64, 64)
) -> None:
    """Build the configured model (random weights when they are produced by the workflow) and find its layers.

    Args:
        spec: the model.
        layers: the layers it must have.
        classes: the length of the class list the model's outputs must match (one forward pass of a blank image
            of ``image_size`` tells), or None.

    Raises:
        ModelError: unknown architecture or factory, weights that do not fit it, a layer name that does not
            exist (the message lists the valid ones) or one that would pass for a generator layer, or a class
            list whose length differs from the model's outputs.
    """
    import torch

    reserved = [layer for layer in layers if is_generator_layer(layer)]
    if reserved:
        raise ModelError(
            f"model.layers: {reserved[0]!r} starts with {GENERATOR_PREFIX!r}, which names generator layers; "
            "a classifier layer of that name cannot be dissected"
        )
    torch.manual_seed(0)
    model = build_model(spec.resolved())
    resolve_layers(model, layers)
    if classes is not None:
        with torch.inference_mode():
            outputs = model(torch.zeros(1, 3, *image_size))
        if not isinstance(outputs, torch.Tensor) or outputs.ndim != 2 or outputs.shape[1] != classes:
            shape = tuple(outputs.shape) if isinstance(outputs, torch.Tensor) else type(outputs).__name__
            raise ModelError(
                f"config key 'model.classes': the class list names {classes} classes but the model outputs {shape}"
            )


__all__ = ["ModelError", "check_model"]
