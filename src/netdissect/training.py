"""The one seeded training loop of every network trained here (the scene classifier, the segmenter).

Training is deterministic for a seed and a thread count: the global torch seed is set before the network is
built, and one generator seeded alike draws every shuffle and every flip. The loop is AdamW with a one-cycle
schedule over channels-last tensors, optionally under bfloat16 autocast (the forward pass and the loss); what a
batch costs is the caller's ``batch_loss``. Progress lines count the steps and estimate the time left.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from .progress import progress

# batch_loss(model, index, flip) -> (loss, counts): index selects the batch's samples, flip (bool (n, 1, 1, 1))
# says which of them to mirror (None when flips are off); counts are summed over the epoch and logged per sample.
BatchLoss = Callable[[nn.Module, torch.Tensor, torch.Tensor | None], tuple[torch.Tensor, dict[str, int]]]


@dataclass(frozen=True)
class Schedule:
    """How long and how fast to train.

    Attributes:
        epochs: passes over the samples.
        batch_size: samples per step.
        lr: peak learning rate of the one-cycle schedule.
        seed: seed of initialisation, shuffles and flips.
        threads: torch CPU threads while training.
        weight_decay: AdamW's decoupled weight decay.
        autocast: None (float32), or the torch dtype name of the forward pass and loss ("bfloat16").
    """

    epochs: int
    batch_size: int
    lr: float
    seed: int
    threads: int = 2
    weight_decay: float = 0.0
    autocast: str | None = None


@contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Limit torch's intra-op threads inside the block, restoring the previous setting after.

    Args:
        threads: number of threads.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def batch_count(n: int, batch_size: int) -> int:
    """Number of batches :func:`seeded_batches` yields per epoch.

    Args:
        n: number of samples.
        batch_size: samples per batch.

    Returns:
        Batches per epoch: a final batch of one sample is dropped when there are others.
    """
    full, rest = divmod(n, batch_size)
    return full + (rest > 1 or (rest == 1 and full == 0))


def seeded_batches(n: int, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    """One epoch of shuffled index batches; a final batch of one is dropped (batch norm needs two).

    Args:
        n: number of samples.
        batch_size: samples per batch.
        generator: source of the shuffle.

    Returns:
        Index tensors.
    """
    batches = list(torch.randperm(n, generator=generator).split(batch_size))
    return batches[: batch_count(n, batch_size)]


def random_flips(n: int, generator: torch.Generator) -> torch.Tensor:
    """Which samples of a batch to flip horizontally.

    Args:
        n: batch size.
        generator: source of the coin flips.

    Returns:
        bool (n, 1, 1, 1), broadcastable over (n, C, H, W).
    """
    return (torch.rand(n, generator=generator) < 0.5).view(n, 1, 1, 1)


def fit(
    build: Callable[[], nn.Module],
    samples: int,
    batch_loss: BatchLoss,
    schedule: Schedule,
    flips: bool = True,
    log: Callable[[str], object] = print,
) -> tuple[nn.Module, dict]:
    """Build a network under the schedule's seed and train it.

    Args:
        build: makes the randomly initialised network (called after seeding; may check it against the data).
        samples: number of training samples; batches are index tensors into them.
        batch_loss: the loss of one batch, and counts to report (see ``BatchLoss``).
        schedule: epochs, batch size, learning rate, seed, threads, weight decay.
        flips: draw a horizontal flip per sample and pass it to ``batch_loss``.
        log: receives one line per epoch with the epoch's mean loss, the counts per sample, the epoch's own
            seconds and the total so far, and progress lines (steps done, total, time left).

    Returns:
        The network in eval mode (contiguous memory format), and ``loss`` (the last epoch's mean) and ``seconds``.
    """
    if samples < 1:
        raise ValueError("no samples to train on")
    start = time.perf_counter()
    with torch_threads(schedule.threads):
        torch.manual_seed(schedule.seed)
        generator = torch.Generator().manual_seed(schedule.seed)
        model = build().to(memory_format=torch.channels_last)  # faster convolutions on CPU
        optimizer = torch.optim.AdamW(model.parameters(), lr=schedule.lr, weight_decay=schedule.weight_decay)
        steps = max(1, batch_count(samples, schedule.batch_size) * schedule.epochs)
        one_cycle = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=schedule.lr, total_steps=steps)
        precision = getattr(torch, schedule.autocast) if schedule.autocast else None
        steps_done = progress(total=steps, what="training", unit="steps", log=log)
        loss_mean = float("nan")
        for epoch in range(schedule.epochs):
            epoch_start = time.perf_counter()
            model.train()
            loss_sum, seen, sums = 0.0, 0, {}
            for index in seeded_batches(samples, schedule.batch_size, generator):
                flip = random_flips(len(index), generator) if flips else None
                with torch.autocast("cpu", precision, enabled=precision is not None):
                    loss, counts = batch_loss(model, index, flip)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                one_cycle.step()
                steps_done.update()
                loss_sum += loss.item() * len(index)
                seen += len(index)
                for name, count in counts.items():
                    sums[name] = sums.get(name, 0) + count
            loss_mean = loss_sum / seen
            rates = "".join(f", {name} {count / seen:.3f}" for name, count in sums.items())
            now = time.perf_counter()
            log(
                f"epoch {epoch + 1}/{schedule.epochs}: loss {loss_mean:.4f}{rates}, "
                f"{now - epoch_start:.1f}s (total {now - start:.1f}s)"
            )
        steps_done.close()
        model.to(memory_format=torch.contiguous_format).eval()
    return model, {"loss": loss_mean, "seconds": time.perf_counter() - start}
