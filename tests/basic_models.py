"""Hand-weighted models shared by the tests, with expected behaviour worked out by hand (as captum's
``testing/helpers/basic_models.py``)."""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

# OneUnitNet: 1x1 convolution 3 -> 4 units (+ ReLU) as layer "features", then global pooling and a linear layer to
# 3 classes. Unit u (u < 3) copies input channel u; unit 3 sums all three. Class 0's logit is 2 * u0 - 0.5, so unit 0
# alone carries class 0: without it class 0's logit is -0.5 while the others are >= 0, class 0 is never predicted
# and its balanced accuracy is (0 + 1) / 2. Classes 1 and 2 read their own unit and a fifth of unit 3.
FEATURES = torch.tensor([[1.0, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 1]])
CLASSIFIER = torch.tensor([[2.0, 0, 0, 0], [0, 1, 0, 0.2], [0, 0, 1, 0.2]])
CLASSIFIER_BIAS = torch.tensor([-0.5, 0.0, 0.0])


class OneUnitNet(nn.Module):
    """The hand-weighted network above; ``tail`` chooses what follows the layer ``features``.

    - ``linear``: pooling, flattening, the linear layer (a linear tail);
    - ``graph``: first a 1x1 convolution that doubles every unit and a ReLU (same predictions, not linear);
    - ``dynamic``: like ``graph`` but with data-dependent control flow, which torch.fx cannot trace.
    """

    def __init__(self, tail: str = "linear") -> None:
        super().__init__()
        conv = nn.Conv2d(3, 4, 1, bias=False)
        self.features = nn.Sequential(OrderedDict(conv=conv, relu=nn.ReLU()))
        self.mix = nn.Conv2d(4, 4, 1, bias=False)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4, 3)
        self.tail = tail
        with torch.no_grad():
            conv.weight.copy_(FEATURES[:, :, None, None])
            self.mix.weight.copy_(2 * torch.eye(4)[:, :, None, None])
            self.fc.weight.copy_(CLASSIFIER)
            self.fc.bias.copy_(CLASSIFIER_BIAS)
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        if self.tail == "dynamic" and bool(x.sum() < 0):
            x = -x
        if self.tail != "linear":
            x = torch.relu(self.mix(x)) / 2
        return self.fc(torch.flatten(self.pool(x), 1))


def one_unit_images(per_class: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(3 * per_class, 3, 2, 2) images of classes 0, 1, 2 in turn: channel c near 1, the others near 0.2, and
    their labels."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(3).repeat(per_class)
    images = 0.2 + 0.1 * torch.rand(len(labels), 3, 2, 2, generator=generator)
    images[torch.arange(len(labels)), labels] += 0.8
    return images, labels


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
