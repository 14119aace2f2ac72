"""Hand-weighted models shared by the tests, with expected behaviour worked out by hand (as captum's
``testing/helpers/basic_models.py``)."""

from __future__ import annotations

import torch
from torch import nn


class ChannelNet(nn.Module):
    """Layer ``features``: a 1x1 convolution 3 -> 3 units with ReLU, unit u copying input channel u; then global
    average pooling and the identity to 3 classes, so class c's logit is unit c's mean activation.

    For an image with channel values (r, g, b) in (0, 1), a targeted attack from class 0 to class 1 within an L-inf
    budget epsilon lowers r and b by epsilon and raises g by epsilon (the gradient of the target's cross-entropy is
    negative for g, positive for r and b), clipped to [0, 1]: unit 0 fires epsilon less, unit 1 epsilon more, unit 2
    min(b, epsilon) less.
    """

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 3, 1, bias=False), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        with torch.no_grad():
            self.features[0].weight.copy_(torch.eye(3)[:, :, None, None])
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.features(x)).flatten(1)


def channel_images(values: list[tuple[float, float, float]], side: int = 4) -> torch.Tensor:
    """(n, 3, side, side) images of constant channel values."""
    return torch.tensor(values, dtype=torch.float32)[:, :, None, None].expand(-1, -1, side, side).contiguous()
