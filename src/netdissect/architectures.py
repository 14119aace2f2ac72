"""Every network architecture built here: the scene classifier dissected by default (``scene_cnn``) and the
segmenter trained on the synthetic world (:class:`SegNet`).

Only construction lives here (no weights, no training), so any module can import it without a cycle.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import nn
from torch.nn import functional as F


def _stage(cin: int, cout: int, pool: bool) -> nn.Sequential:
    """Conv3x3-BN-ReLU, optionally followed by 2x2 max pooling."""
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    ]
    if pool:
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


class SceneCNN(nn.Module):
    """Small CNN for 64x64 RGB scenes: stages conv1..conv4, then global average pooling and a linear layer.

    Feature maps for a 64-pixel input: conv1 32x32x32, conv2 64x16x16, conv3 128x8x8, conv4 128x8x8.
    """

    def __init__(self, num_classes: int = 6) -> None:
        """Build the layers.

        Args:
            num_classes: number of output classes.
        """
        super().__init__()
        self.conv1 = _stage(3, 32, pool=True)
        self.conv2 = _stage(32, 64, pool=True)
        self.conv3 = _stage(64, 128, pool=True)
        self.conv4 = _stage(128, 128, pool=False)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(128, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits (N, num_classes) of a normalised batch (N, 3, H, W)."""
        x = self.conv4(self.conv3(self.conv2(self.conv1(x))))
        return self.fc(self.pool(x).flatten(1))


def scene_cnn(num_classes: int = 6) -> nn.Module:
    """Builtin ``scene_cnn`` architecture, randomly initialised.

    Args:
        num_classes: number of scene classes.

    Returns:
        The network.
    """
    return SceneCNN(num_classes)


def _block(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    """Conv3x3-BN-ReLU."""
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class SegNet(nn.Module):
    """Small U-Net-like segmenter with pixel and image heads.

    The encoder has levels at strides 1, 2, 4 and 8; the bottleneck gets a global context vector added; the
    decoder upsamples back to the output stride, concatenating the encoder's skip features at each level.
    For inputs whose sides divide by the stride, pixel logits are (N, K+1, H/stride, W/stride).
    """

    def __init__(
        self,
        pixel_classes: Mapping[str, int],
        image_classes: Mapping[str, int],
        width: int = 32,
        stride: int = 2,
    ) -> None:
        """Build the network.

        Args:
            pixel_classes: pixel category -> number of classes including none.
            image_classes: image-level category -> number of classes including none.
            width: channels at stride 2 (stride 1 has half, strides 4 and 8 have 2x and 3x).
            stride: output stride, one of 1, 2, 4, 8.
        """
        super().__init__()
        if stride not in (1, 2, 4, 8):
            raise ValueError(f"SegNet stride must be 1, 2, 4 or 8, got {stride}")
        self.pixel_classes = dict(pixel_classes)
        self.image_classes = dict(image_classes)
        self.width = width
        self.stride = stride
        widths = (width // 2, width, 2 * width, 3 * width)
        self.stem = _block(3, widths[0])
        self.down = nn.ModuleList(
            nn.Sequential(_block(widths[i], widths[i + 1], 2), _block(widths[i + 1], widths[i + 1])) for i in range(3)
        )
        self.context = nn.Linear(widths[3], widths[3])
        out_level = int(math.log2(stride))
        self.skip_levels = tuple(range(2, out_level - 1, -1))
        self.up = nn.ModuleList(_block(widths[i + 1] + widths[i], widths[i]) for i in self.skip_levels)
        self.pixel_heads = nn.ModuleDict({c: nn.Conv2d(widths[out_level], k, 1) for c, k in self.pixel_classes.items()})
        self.image_heads = nn.ModuleDict({c: nn.Linear(2 * widths[3], k) for c, k in self.image_classes.items()})

    @property
    def arch(self) -> dict:
        """Constructor arguments, as plain values."""
        return {
            "pixel_classes": dict(self.pixel_classes),
            "image_classes": dict(self.image_classes),
            "width": self.width,
            "stride": self.stride,
        }

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """Size (h, w) of the pixel logits for an input of (height, width): each stride-2 level rounds up."""
        return -(-height // self.stride), -(-width // self.stride)

    def forward(self, x: torch.Tensor) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Logits of every head.

        Args:
            x: normalised images (N, 3, H, W).

        Returns:
            (pixel category -> (N, K+1, h, w) logits, image category -> (N, K+1) logits).
        """
        features = [self.stem(x)]
        for down in self.down:
            features.append(down(features[-1]))
        bottom = features[-1]
        pooled = bottom.mean((2, 3))
        y = bottom + F.relu(self.context(pooled))[:, :, None, None]
        for up, level in zip(self.up, self.skip_levels):
            skip = features[level]
            y = F.interpolate(y, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            y = up(torch.cat([y, skip], 1))
        summary = torch.cat([pooled, bottom.amax((2, 3))], 1)
        return (
            {c: head(y) for c, head in self.pixel_heads.items()},
            {c: head(summary) for c, head in self.image_heads.items()},
        )


def _up(cin: int, cout: int, bias: bool = False) -> nn.Sequential:
    """Nearest 2x upsampling then Conv3x3 (no checkerboard pattern, unlike a strided transposed convolution)."""
    return nn.Sequential(nn.Upsample(scale_factor=2.0, mode="nearest"), nn.Conv2d(cin, cout, 3, 1, 1, bias=bias))


class Generator(nn.Module):
    """DCGAN-style generator: a latent vector to an image in [-1, 1].

    Layers ``layer1`` (4x4) to ``layerK`` each double the side, the last of them at a quarter of the output side;
    ``output`` maps to RGB at the full side. For the default 64-pixel output with width 32: layer1 256x4x4,
    layer2 128x8x8, layer3 64x16x16, layer4 32x32x32.
    """

    def __init__(self, latent_dim: int = 64, width: int = 32, size: int = 64) -> None:
        """Build the layers.

        Args:
            latent_dim: length of the latent vector.
            width: channels of the last hidden layer; each earlier layer has twice as many.
            size: output side, a power of two of at least 16.
        """
        super().__init__()
        levels = int(math.log2(size)) - 2  # hidden layers from 4x4 up to size / 2
        if size < 16 or 2 ** (levels + 2) != size:
            raise ValueError(f"generator size must be a power of two of at least 16, got {size}")
        self.latent_dim, self.width, self.size = latent_dim, width, size
        channels = [width * 2 ** (levels - 1 - i) for i in range(levels)]
        self.layer1 = nn.Sequential(
            nn.ConvTranspose2d(latent_dim, channels[0], 4, 1, 0, bias=False), nn.BatchNorm2d(channels[0]), nn.ReLU(True)
        )
        for i in range(1, levels):
            block = _up(channels[i - 1], channels[i])
            self.add_module(f"layer{i + 1}", nn.Sequential(*block, nn.BatchNorm2d(channels[i]), nn.ReLU(True)))
        self.levels = levels
        self.output = nn.Sequential(*_up(channels[-1], 3, bias=True), nn.Tanh())

    @property
    def arch(self) -> dict:
        """Constructor arguments, as plain values."""
        return {"latent_dim": self.latent_dim, "width": self.width, "size": self.size}

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Images (N, 3, size, size) in [-1, 1] of latents (N, latent_dim)."""
        x = z.reshape(len(z), self.latent_dim, 1, 1)
        for i in range(self.levels):
            x = getattr(self, f"layer{i + 1}")(x)
        return self.output(x)


class Discriminator(nn.Module):
    """DCGAN-style discriminator: an image in [-1, 1] to one real-vs-generated logit."""

    def __init__(self, width: int = 32, size: int = 64) -> None:
        """Build the layers.

        Args:
            width: channels of the first layer; each later layer has twice as many.
            size: input side, a power of two of at least 16.
        """
        super().__init__()
        levels = int(math.log2(size)) - 2
        layers: list[nn.Module] = [nn.Conv2d(3, width, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        for i in range(1, levels):
            cin, cout = width * 2 ** (i - 1), width * 2**i
            layers += [nn.Conv2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2, True)]
        layers.append(nn.Conv2d(width * 2 ** (levels - 1), 1, 4, 1, 0))
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N,) of images (N, 3, size, size)."""
        return self.body(x).flatten()
