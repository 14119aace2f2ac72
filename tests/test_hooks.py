"""Tests of the layer hooks that capture and edit activations."""

from collections import OrderedDict

import pytest
import torch
from torch import nn

from netdissect.hooks import LayerHooks, UnitEdit
from netdissect.models import ModelError


class Counter(nn.Module):
    """Identity that counts its calls."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return x


class Pair(nn.Module):
    """Returns (x, x + 1)."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x, x + 1


W_A = torch.tensor([[1.0, 2.0], [-1.0, 0.5], [0.0, 3.0]])
B_A = torch.tensor([0.5, -1.0, 2.0])
W_B = torch.tensor([[1.0, -2.0, 0.5]])


def _model() -> nn.Sequential:
    """1x1 convolutions 2 -> 3 -> 1 with hand-set weights, a ReLU between, and a call counter at the end."""
    a, b = nn.Conv2d(2, 3, 1), nn.Conv2d(3, 1, 1, bias=False)
    with torch.no_grad():
        a.weight.copy_(W_A[:, :, None, None])
        a.bias.copy_(B_A)
        b.weight.copy_(W_B[:, :, None, None])
    return nn.Sequential(OrderedDict(a=a, relu=nn.ReLU(), b=b, count=Counter())).eval()


def _a(x: torch.Tensor) -> torch.Tensor:
    """Output of layer a, by hand."""
    return torch.einsum("oc,nchw->nohw", W_A, x) + B_A[None, :, None, None]


def _b(h: torch.Tensor) -> torch.Tensor:
    """Output of layer b given layer a's output, by hand."""
    return torch.einsum("oc,nchw->nohw", W_B, h.clamp(min=0))


X = torch.randn(2, 2, 3, 4, generator=torch.Generator().manual_seed(0))


def test_capture_matches_hand_computation() -> None:
    model = _model()
    with LayerHooks(model, capture=["a", "b"]) as hooks:
        out = hooks.run(X)
    torch.testing.assert_close(hooks.captured["a"], _a(X))
    torch.testing.assert_close(hooks.captured["b"], _b(_a(X)))
    torch.testing.assert_close(out, _b(_a(X)))
    assert not hooks.captured["a"].requires_grad


def test_stop_after_capture_skips_later_layers() -> None:
    model = _model()
    with LayerHooks(model, capture=["a"], stop_after_capture=True) as hooks:
        assert hooks.run(X) is None
        assert hooks.run(X) is None
    assert model.count.calls == 0
    torch.testing.assert_close(hooks.captured["a"], _a(X))
    with LayerHooks(model, capture=["a"]) as hooks:
        assert hooks.run(X) is not None
    assert model.count.calls == 1


def test_zeroing_units_changes_only_those_channels() -> None:
    model = _model()
    with LayerHooks(model, capture=["a"], edits={"a": UnitEdit([1, 2])}) as hooks:
        out = hooks.run(X)
    expected = _a(X)
    expected[:, 1:] = 0
    torch.testing.assert_close(hooks.captured["a"], expected)
    torch.testing.assert_close(out, _b(expected))
    assert not torch.allclose(out, _b(_a(X)))


def test_masked_set_at_positions() -> None:
    mask = torch.zeros(3, 4, dtype=torch.bool)
    mask[0, 1] = mask[2, 3] = True
    edit = UnitEdit([0, 2], value=torch.tensor([5.0, 7.0]), mask=mask)
    with LayerHooks(_model(), capture=["a"], edits={"a": edit}) as hooks:
        hooks.run(X)
    expected = _a(X)
    expected[:, 0][:, mask] = 5.0
    expected[:, 2][:, mask] = 7.0
    torch.testing.assert_close(hooks.captured["a"], expected)


def test_float_and_per_image_masks_blend() -> None:
    mask = torch.zeros(2, 3, 4)
    mask[0] = 0.5
    mask[1, 1, 2] = 1.0
    with LayerHooks(_model(), capture=["a"], edits={"a": [UnitEdit([1], 4.0, mask)]}) as hooks:
        hooks.run(X)
    expected = _a(X)
    expected[:, 1] = expected[:, 1] * (1 - mask) + 4.0 * mask
    torch.testing.assert_close(hooks.captured["a"], expected)


def test_bad_mask_and_units_raise() -> None:
    bad_mask = UnitEdit([0], mask=torch.ones(5, 5, dtype=torch.bool))
    with (
        LayerHooks(_model(), edits={"a": bad_mask}) as hooks,
        pytest.raises(ValueError, match=r"mask of shape \(5, 5\) does not fit a layer output of shape \(2, 3, 3, 4\)"),
    ):
        hooks.run(X)
    with (
        LayerHooks(_model(), edits={"a": UnitEdit([3])}) as hooks,
        pytest.raises(ValueError, match=r"out of range for a layer with 3 units: \[3\]"),
    ):
        hooks.run(X)


def test_tuple_outputs_edit_first_element() -> None:
    model = nn.Sequential(OrderedDict(pair=Pair()))
    with LayerHooks(model, capture=["pair"], edits={"pair": UnitEdit([0], 9.0)}) as hooks:
        first, second = hooks.run(X)
    assert torch.all(first[:, 0] == 9.0) and torch.equal(first[:, 1], X[:, 1])
    torch.testing.assert_close(second, X + 1)
    torch.testing.assert_close(hooks.captured["pair"], first)


def test_hooks_removed_after_exit_and_error() -> None:
    model = _model()
    with LayerHooks(model, capture=["a"], edits={"b": UnitEdit([0])}) as hooks:
        assert len(model.a._forward_hooks) == 1 and len(model.b._forward_hooks) == 1
    assert not model.a._forward_hooks and not model.b._forward_hooks
    with pytest.raises(RuntimeError, match="inside"):
        hooks.run(X)
    with pytest.raises(ZeroDivisionError), LayerHooks(model, capture=["a", "b"]):
        _ = 1 / 0
    assert not model.a._forward_hooks and not model.b._forward_hooks
    torch.testing.assert_close(model(X), _b(_a(X)))


def test_unknown_layer_raises() -> None:
    with pytest.raises(ModelError, match="layer 'c' not found"):
        LayerHooks(_model(), capture=["c"])
