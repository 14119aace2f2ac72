"""Building the dissected model from a rule's params (shared by the model stages)."""

from __future__ import annotations

import numpy as np


def model_inputs(job) -> str | None:
    """The weights file a rule lists as input (a trained model), if any."""
    return getattr(job.input, "weights", None)


def load_model(spec: dict, weights_input: str | None, device: str):
    """Build the model on its device, with its input normalisation.

    Args:
        spec: the model params (model config section plus num_classes and digest).
        weights_input: path of weights produced by the workflow (used when spec['weights'] == 'train').
        device: 'cpu' or 'cuda'.

    Returns:
        (model, torch device, normalise) where normalise maps uint8 (N, H, W, 3) arrays to channels-last input
        tensors.
    """
    import torch

    from ..models import IMAGENET_MEAN, IMAGENET_STD, ModelSpec, build_model, preprocess

    weights = weights_input if spec["weights"] == "train" else spec["weights"]
    torch.manual_seed(spec["seed"])  # random-init models must be identical in every chunk job
    model = build_model(
        ModelSpec(
            name=spec["name"],
            factory=spec["factory"],
            factory_args=dict(spec["factory_args"]),
            weights=weights,
            random_init=spec["random_init"],
            allow_pickle=spec["allow_pickle"],
            num_classes=spec.get("num_classes"),
        )
    )
    torch_device = torch.device(device)
    model.to(torch_device, memory_format=torch.channels_last).eval()  # channels-last convolutions run faster
    if spec["normalize"] == "imagenet":
        mean, std = IMAGENET_MEAN, IMAGENET_STD
    else:
        mean, std = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)

    def normalise(images: np.ndarray) -> torch.Tensor:
        return preprocess(images, mean, std).contiguous(memory_format=torch.channels_last)

    return model, torch_device, normalise
