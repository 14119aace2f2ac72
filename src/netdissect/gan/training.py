"""Adversarial training of the embedded generator on a set of images (DCGAN: non-saturating loss, Adam).

Two stabilisers, measured on the synthetic world (cleaner skies and fields, fewer collapsed textures at the same
1,260 steps): one-sided label smoothing (real images are the discriminator's target 0.9) and instance noise (both
real and generated images get Gaussian noise of standard deviation 0.1, falling linearly to 0 at the last step).

Deterministic for a seed and a thread count, like :func:`netdissect.training.fit`: the global torch seed is set
before the networks are built, and one generator seeded alike draws every shuffle, flip and latent.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch
from torch.nn import functional as F

from ..architectures import Discriminator, Generator
from ..progress import progress
from ..training import Schedule, batch_count, random_flips, seeded_batches, torch_threads

REAL_TARGET = 0.9  # one-sided label smoothing
INSTANCE_NOISE = 0.1  # standard deviation at the first step, on images in [-1, 1]


def to_signed(images: np.ndarray) -> torch.Tensor:
    """uint8 images (N, H, W, 3) as float (N, 3, H, W) in [-1, 1], channels-last."""
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(127.5).sub_(1)
    return x.contiguous(memory_format=torch.channels_last)


def train_gan(
    images: np.ndarray,
    schedule: Schedule,
    latent_dim: int,
    width: int,
    log: Callable[[str], object] = print,
) -> tuple[Generator, dict]:
    """Train a generator and a discriminator against each other on the images.

    Args:
        images: uint8 (N, S, S, 3) training images, S a power of two.
        schedule: epochs, batch size, learning rate (Adam, betas 0.5 and 0.999), seed, threads.
        latent_dim: length of the generator's latent vectors (standard normal).
        width: channels of the generator's last hidden layer and of the discriminator's first.
        log: receives one line per epoch (mean losses, the discriminator's accuracy, seconds) and progress lines.

    Returns:
        The generator in eval mode, and ``d_loss``, ``g_loss``, ``d_accuracy`` (the last epoch's means) and
        ``seconds``.
    """
    if len(images) < 2:
        raise ValueError("need at least 2 images to train a generator")
    size = images.shape[1]
    start = time.perf_counter()
    real_all = to_signed(images)
    with torch_threads(schedule.threads):
        torch.manual_seed(schedule.seed)
        draw = torch.Generator().manual_seed(schedule.seed)
        gen = Generator(latent_dim, width, size).to(memory_format=torch.channels_last)
        disc = Discriminator(width, size).to(memory_format=torch.channels_last)
        betas = (0.5, 0.999)
        g_opt = torch.optim.Adam(gen.parameters(), lr=schedule.lr, betas=betas)
        d_opt = torch.optim.Adam(disc.parameters(), lr=schedule.lr, betas=betas)
        steps = batch_count(len(images), schedule.batch_size) * schedule.epochs
        done = progress(total=steps, what="generator training", unit="steps", log=log)
        means: dict[str, float] = {}
        step = 0
        for epoch in range(schedule.epochs):
            epoch_start = time.perf_counter()
            sums = {"d_loss": 0.0, "g_loss": 0.0, "d_accuracy": 0.0}
            seen = 0
            for index in seeded_batches(len(images), schedule.batch_size, draw):
                n = len(index)
                real = real_all[index]
                real = torch.where(random_flips(n, draw), real.flip(3), real)
                fake = gen(torch.randn(n, latent_dim, generator=draw))
                sigma = INSTANCE_NOISE * (1 - step / steps)
                real = real + sigma * torch.randn(real.shape, generator=draw)
                fake = fake + sigma * torch.randn(fake.shape, generator=draw)
                real_logit, fake_logit = disc(real), disc(fake.detach())
                target = torch.full_like(real_logit, REAL_TARGET)
                d_loss = F.binary_cross_entropy_with_logits(real_logit, target) + F.softplus(fake_logit).mean()
                d_opt.zero_grad(set_to_none=True)
                d_loss.backward()
                d_opt.step()
                g_loss = F.softplus(-disc(fake)).mean()
                g_opt.zero_grad(set_to_none=True)
                g_loss.backward()
                g_opt.step()
                done.update()
                step += 1
                correct = (real_logit > 0).sum() + (fake_logit < 0).sum()
                sums["d_loss"] += d_loss.item() * n
                sums["g_loss"] += g_loss.item() * n
                sums["d_accuracy"] += correct.item() / 2
                seen += n
            means = {name: value / seen for name, value in sums.items()}
            now = time.perf_counter()
            log(
                f"epoch {epoch + 1}/{schedule.epochs}: discriminator loss {means['d_loss']:.3f}, generator loss "
                f"{means['g_loss']:.3f}, discriminator accuracy {means['d_accuracy']:.3f}, "
                f"{now - epoch_start:.1f}s (total {now - start:.1f}s)"
            )
        done.close()
        gen.to(memory_format=torch.contiguous_format).eval()
    return gen, {**means, "seconds": time.perf_counter() - start}
