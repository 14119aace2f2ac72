"""Folding batch norms into convolutions keeps the model's function and every layer that is read."""

import pytest
import torch
import torchvision
from torch import nn

from netdissect.fusion import fold_batch_norms


def _trained_like(model: nn.Module) -> nn.Module:
    """Give every norm non-trivial statistics and affine parameters, then switch to eval mode."""
    generator = torch.Generator().manual_seed(0)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            size = module.num_features
            module.running_mean.copy_(torch.randn(size, generator=generator))
            module.running_var.copy_(torch.rand(size, generator=generator) + 0.5)
            module.weight.data.copy_(torch.randn(size, generator=generator))
            module.bias.data.copy_(torch.randn(size, generator=generator))
    return model.eval()


def _outputs(model, x, names):
    captured = {}
    handles = [
        model.get_submodule(n).register_forward_hook(lambda m, i, o, n=n: captured.__setitem__(n, o)) for n in names
    ]
    with torch.inference_mode():
        out = model(x)
    for h in handles:
        h.remove()
    return out, captured


def test_resnet_folds_every_norm_but_the_read_ones_and_computes_the_same():
    torch.manual_seed(0)
    model = _trained_like(torchvision.models.resnet18(weights=None))
    x = torch.randn(2, 3, 64, 64)
    read = ["layer3", "layer4.0.bn2", "layer2.1.conv1"]
    before, seen_before = _outputs(model, x, read)
    folded = fold_batch_norms(model, set(read))
    after, seen_after = _outputs(model, x, read)
    norms = [n for n, m in torchvision.models.resnet18().named_modules() if isinstance(m, nn.BatchNorm2d)]
    assert "layer4.0.bn2" not in folded and "layer2.1.bn1" not in folded  # read, or fed by a read conv
    assert len(folded) == len(norms) - 2 and "bn1" in folded and "layer4.0.downsample.1" in folded
    assert isinstance(model.get_submodule("bn1"), nn.Identity)
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-4)
    for name in read:
        torch.testing.assert_close(seen_after[name], seen_before[name], rtol=1e-4, atol=1e-4)


def test_training_mode_shared_and_untraceable_models_are_left_alone():
    model = _trained_like(torchvision.models.resnet18(weights=None)).train()
    assert fold_batch_norms(model, set()) == []

    class Shared(nn.Module):  # one norm after two different convolutions
        def __init__(self):
            super().__init__()
            self.a, self.b, self.norm = nn.Conv2d(3, 4, 3), nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)

        def forward(self, x):
            return self.norm(self.a(x)) + self.norm(self.b(x))

    class Branching(nn.Module):  # data-dependent control flow: torch.fx cannot trace it
        def __init__(self):
            super().__init__()
            self.conv, self.norm = nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)

        def forward(self, x):
            return self.norm(self.conv(x)) if x.sum() > 0 else x

    assert fold_batch_norms(_trained_like(Shared()), set()) == []
    assert fold_batch_norms(_trained_like(Branching()), set()) == []


@pytest.mark.parametrize("affine", [True, False])
def test_folded_conv_equals_norm_of_conv(affine):
    conv, norm = nn.Conv2d(3, 5, 3, bias=affine), nn.BatchNorm2d(5, affine=affine)
    model = _trained_like(nn.Sequential(conv, norm)) if affine else nn.Sequential(conv, norm).eval()
    norm.running_mean.copy_(torch.randn(5))
    norm.running_var.copy_(torch.rand(5) + 0.5)
    x = torch.randn(2, 3, 9, 9)
    with torch.inference_mode():
        expected = model(x)
    assert fold_batch_norms(model, set()) == ["1"]
    with torch.inference_mode():
        torch.testing.assert_close(model(x), expected, rtol=1e-5, atol=1e-5)
