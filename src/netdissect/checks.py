"""Checks that need the network itself, run once when the workflow is planned, before any job starts."""

from __future__ import annotations

from .models import ModelError, ModelSpec, build_model, resolve_layers


def check_model(spec: dict, layers: list[str]) -> None:
    """Build the configured model (random weights when they are produced by the workflow) and find its layers.

    Raises:
        ModelError: unknown architecture or factory, weights that do not fit it, or a layer name that does not
            exist (the message lists the valid ones).
    """
    import torch

    torch.manual_seed(0)
    trained_here = spec["weights"] == "train"
    model = build_model(
        ModelSpec(
            name=spec["name"],
            factory=spec["factory"],
            factory_args=dict(spec["factory_args"]),
            weights=None if trained_here else spec["weights"],
            random_init=trained_here or spec["random_init"],
            allow_pickle=spec["allow_pickle"],
            num_classes=spec.get("num_classes"),
        )
    )
    resolve_layers(model, layers)


__all__ = ["ModelError", "check_model"]
