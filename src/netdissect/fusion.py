"""Folding inference-mode batch norms into the convolutions that feed them (a faster forward, same function)."""

from __future__ import annotations

from collections import Counter

import torch
from torch import nn


def _fold(conv: nn.Conv2d, norm: nn.BatchNorm2d) -> None:
    """Make conv compute norm(conv(x)) by itself (float32 arithmetic, up to rounding)."""
    scale = (
        norm.weight / torch.sqrt(norm.running_var + norm.eps)
        if norm.affine
        else 1 / torch.sqrt(norm.running_var + norm.eps)
    )
    shift = norm.bias if norm.affine else torch.zeros_like(norm.running_mean)
    bias = conv.bias if conv.bias is not None else torch.zeros_like(norm.running_mean)
    with torch.no_grad():
        conv.weight.mul_(scale.reshape(-1, 1, 1, 1))
        conv.bias = nn.Parameter((bias - norm.running_mean) * scale + shift)


def _replace(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, module)


def fold_batch_norms(model: nn.Module, keep: set[str]) -> list[str]:
    """Fold every BatchNorm2d that only normalises one Conv2d's output into that convolution.

    A pair is folded only when the model is in eval mode, the convolution's output feeds nothing but the norm,
    each module is called once, and neither is in ``keep`` (layers whose own outputs are read or edited). Models
    torch.fx cannot trace are left as they are.

    Args:
        model: the model (modified in place).
        keep: module names that must keep computing exactly what they compute.

    Returns:
        The names of the norms folded (each replaced by an identity).
    """
    if model.training:
        return []
    try:
        graph = torch.fx.symbolic_trace(model).graph
    except Exception:  # noqa: BLE001 - any tracing failure just means no folding
        return []
    modules = dict(model.named_modules())
    calls = Counter(node.target for node in graph.nodes if node.op == "call_module")
    folded = []
    for node in graph.nodes:
        source = node.args[0] if node.op == "call_module" and node.args else None
        if not isinstance(source, torch.fx.Node) or source.op != "call_module" or len(source.users) != 1:
            continue
        norm, conv = modules.get(node.target), modules.get(source.target)
        if not (isinstance(norm, nn.BatchNorm2d) and isinstance(conv, nn.Conv2d) and norm.track_running_stats):
            continue
        if {node.target, source.target} & keep or calls[node.target] != 1 or calls[source.target] != 1:
            continue
        _fold(conv, norm)
        _replace(model, node.target, nn.Identity())
        folded.append(node.target)
    return folded
