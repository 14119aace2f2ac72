"""The shared seeded training loop: batches, flips, determinism and what it reports."""

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from netdissect.training import Schedule, batch_count, fit, seeded_batches


@pytest.mark.parametrize("n, size, expected", [(10, 4, 3), (9, 4, 2), (8, 4, 2), (1, 4, 1), (5, 5, 1), (6, 5, 1)])
def test_batch_count_drops_a_final_batch_of_one(n, size, expected):
    assert batch_count(n, size) == expected
    batches = seeded_batches(n, size, torch.Generator().manual_seed(0))
    assert len(batches) == expected
    seen = torch.cat(batches)
    assert len(set(seen.tolist())) == len(seen) and len(seen) == n - (n % size == 1 and n > size)


def _regression(n=24):
    x = torch.linspace(-1, 1, n).view(n, 1, 1, 1).expand(n, 3, 2, 2).contiguous()
    return x, 3 * x[:, 0, 0, 0]


def _run(seed, flips=True, epochs=3, log=None):
    x, y = _regression()
    calls = []

    def batch_loss(model, index, flip):
        calls.append((len(index), None if flip is None else tuple(flip.shape)))
        out = model(x[index]).flatten()
        return F.mse_loss(out, y[index]), {"small": int((out.abs() < 1).sum())}

    lines = []
    model, metrics = fit(
        lambda: nn.Sequential(nn.Conv2d(3, 1, 2), nn.Flatten()),
        len(x),
        batch_loss,
        Schedule(epochs=epochs, batch_size=8, lr=0.05, seed=seed, threads=1),
        flips=flips,
        log=log if log is not None else lines.append,
    )
    return model, metrics, calls, lines


def test_fit_is_deterministic_for_a_seed_and_reports_each_epoch():
    a, metrics, calls, lines = _run(seed=3)
    b, _, _, _ = _run(seed=3)
    c, _, _, _ = _run(seed=4)
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    assert not torch.equal(a[0].weight, c[0].weight)
    assert not a.training
    assert calls == [(8, (8, 1, 1, 1))] * 9
    assert len(lines) == 3 and lines[0].startswith("epoch 1/3: loss ") and "small " in lines[0]
    assert "total" in lines[-1] and metrics["seconds"] > 0 and metrics["loss"] < float("inf")


def test_fit_without_flips_passes_none_and_learns():
    _, first, _, _ = _run(seed=0, flips=False, epochs=1)
    _, last, calls, _ = _run(seed=0, flips=False, epochs=30)
    assert {flip for _, flip in calls} == {None}
    assert last["loss"] < first["loss"] / 4


def test_fit_needs_samples():
    with pytest.raises(ValueError, match="no samples"):
        fit(lambda: nn.Linear(1, 1), 0, lambda *a: None, Schedule(1, 1, 0.1, 0))
