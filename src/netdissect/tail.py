"""The network after a layer: logits of the layer's output under many unit ablations at once.

:func:`cut` picks the fastest of three tails that compute the same function:

- :class:`LinearTail`: the layer's output is globally average-pooled and fed to one linear layer (ResNet's
  ``layer4``, the embedded ``scene_cnn``'s ``conv4``). Removing units changes the logits by a linear term, so an
  ablation costs one small matrix product and no forward pass.
- :class:`GraphTail`: ``torch.fx`` traces the model with the layer as a leaf (as torchvision's feature extraction
  does) and keeps the nodes after it. Many ablations are batched per pass: the stored layer output is replicated
  once per ablation along the batch axis, each copy edited by its :class:`~netdissect.hooks.UnitEdit`.
- :class:`HookedTail`: for models that cannot be traced or cut (data-dependent control flow, a layer called twice,
  a branch that bypasses the layer), full forward passes from the images with the edits applied by
  :class:`~netdissect.hooks.LayerHooks`; an :class:`~netdissect.hooks.EditBatch` still evaluates several
  ablations per pass (the layers before the edited one run once per batch of images).

Every tail maps a batch (the layer's output, or images for :class:`HookedTail`) and E edits to (E, n, K) logits.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from itertools import pairwise

import numpy as np
import torch
from torch import fx, nn
from torch.nn import functional as F

from .ablation import Counts
from .hooks import EditBatch, LayerHooks, UnitEdit

log = logging.getLogger("netdissect.tail")


def batch_counts(logits: torch.Tensor, targets: torch.Tensor) -> Counts:
    """Counts of one batch of images under A ablations.

    Args:
        logits: (A, n, K) logits of n images under each ablation.
        targets: (n,) int64 true class of every image, in 0..K-1.

    Returns:
        The batch's counts; predictions are the argmax (the lowest index among tied logits). Margins are summed
        in float64 image by image, in image order, so the sums never depend on how ablations are grouped.
    """
    ablations, n, classes = logits.shape
    logits, targets = logits.detach(), targets.to(torch.int64)
    predicted = logits.argmax(-1)
    expanded = targets[None, :].expand(ablations, n)
    zeros = torch.zeros(ablations, classes, dtype=torch.int64)
    true_positive = zeros.scatter_add(1, expanded, (predicted == expanded).to(torch.int64))
    counted = zeros.scatter_add(1, predicted, torch.ones_like(predicted))
    index = targets[None, :, None].expand(ablations, n, 1)
    own = logits.gather(-1, index).squeeze(-1)
    others = logits.scatter(-1, index, float("-inf")).amax(-1)
    margins = (own - others).double().numpy()
    margin_sum = np.zeros((classes, ablations), np.float64)
    np.add.at(margin_sum, targets.numpy(), margins.T)
    images = np.bincount(targets.numpy(), minlength=classes)
    return Counts(true_positive.numpy(), counted.numpy(), images, margin_sum.T.copy())


class NotCuttable(Exception):
    """The model cannot be cut after the layer; the message says why."""


class LinearTail:
    """Global average pooling then one linear layer: logits computed in float64 from the pooled features.

    Attributes:
        weight: (K, C) float64.
        bias: (K,) float64.
    """

    kind = "linear"
    needs_images = False

    def __init__(self, linear: nn.Linear) -> None:
        self.weight = linear.weight.detach().double().cpu()
        self.bias = (
            linear.bias.detach().double().cpu() if linear.bias is not None else torch.zeros(len(self.weight)).double()
        )

    def logits(self, features: torch.Tensor, edits: Sequence[UnitEdit]) -> torch.Tensor:
        """(E, n, K) logits of features (n, C, h, w) with each edit's units set to its value (no mask)."""
        pooled = features.double().mean((2, 3)).cpu()
        base = pooled @ self.weight.T + self.bias
        channels = pooled.shape[1]
        out = []
        for edit in edits:
            if edit.mask is not None:
                raise ValueError("the linear tail evaluates removals everywhere, not masked edits")
            units = torch.as_tensor(list(edit.units), dtype=torch.long)
            value = torch.as_tensor(edit.value, dtype=torch.float64).expand(len(units))
            if 2 * len(units) <= channels:  # subtract what the removed units added
                delta = (pooled[:, units] - value) @ self.weight[:, units].T
                out.append(base - delta)
            else:  # add up what the kept units add
                keep = torch.ones(channels, dtype=torch.bool)
                keep[units] = False
                removed = value @ self.weight[:, units].T + self.bias
                out.append(pooled[:, keep] @ self.weight[:, keep].T + removed)
        return torch.stack(out)


class GraphTail:
    """The traced nodes after the layer, as a module taking the layer's output."""

    kind = "graph"
    needs_images = False

    def __init__(self, module: fx.GraphModule) -> None:
        self.module = module

    def logits(self, features: torch.Tensor, edits: Sequence[UnitEdit]) -> torch.Tensor:
        """(E, n, K) logits of features (n, C, ...) under each edit, all in one pass."""
        batch = EditBatch(edits).apply(features)
        if batch.ndim == 4:
            batch = batch.contiguous(memory_format=torch.channels_last)
        out = self.module(batch)
        return out.reshape(len(edits), len(features), -1)


class HookedTail:
    """Full forward passes from the images, the layer's output replicated and edited by LayerHooks."""

    kind = "hooks"
    needs_images = True

    def __init__(self, model: nn.Module, layer: str) -> None:
        self.model = model
        self.layer = layer

    def logits(self, images: torch.Tensor, edits: Sequence[UnitEdit]) -> torch.Tensor:
        """(E, n, K) logits of images (n, 3, H, W) under each edit of the layer."""
        with LayerHooks(self.model, edits={self.layer: EditBatch(edits)}) as hooks:
            out = hooks.run(images)
        if not isinstance(out, torch.Tensor) or out.ndim != 2:
            raise TypeError(f"the model returned {type(out).__name__}, not (N, K) logits")
        return out.reshape(len(edits), len(images), -1)


Tail = LinearTail | GraphTail | HookedTail


class _LeafTracer(fx.Tracer):
    """A tracer that keeps one module whole (one call_module node)."""

    def __init__(self, leaf: str) -> None:
        super().__init__()
        self.leaf = leaf

    def is_leaf_module(self, module: nn.Module, qualified_name: str) -> bool:
        return qualified_name == self.leaf or super().is_leaf_module(module, qualified_name)


def graph_after(model: nn.Module, layer: str) -> fx.GraphModule:
    """The nodes of the traced model that run after ``layer``, as a module of the layer's output.

    Args:
        model: the network (its modules are shared, not copied).
        layer: a module path as in ``named_modules()``.

    Raises:
        NotCuttable: the model cannot be traced, calls the layer other than once, or computes its output from
            something that does not pass through the layer.
    """
    try:
        graph = _LeafTracer(layer).trace(model)
    except Exception as error:  # tracing fails in many ways on dynamic code
        raise NotCuttable(f"torch.fx cannot trace the model ({type(error).__name__}: {error})") from error
    calls = [n for n in graph.nodes if n.op == "call_module" and n.target == layer]
    if len(calls) != 1:
        raise NotCuttable(f"the traced model calls {layer!r} {len(calls)} times")
    cut_node = calls[0]
    dynamic: set[fx.Node] = set()  # nodes that depend on the input
    after: set[fx.Node] = {cut_node}  # nodes that depend on the layer's output
    for node in graph.nodes:
        if node.op == "placeholder" or dynamic & set(node.all_input_nodes):
            dynamic.add(node)
        if after & set(node.all_input_nodes):
            after.add(node)
    tail = fx.Graph()
    env = {cut_node: tail.placeholder("features")}
    for node in graph.nodes:
        if node in after and node is not cut_node:
            bypass = [a for a in node.all_input_nodes if a in dynamic and a not in after]
            if bypass:
                raise NotCuttable(f"{node.name} reads {bypass[0].name}, which does not pass through {layer!r}")
        elif node in dynamic or node is cut_node:
            continue
        env[node] = tail.node_copy(node, lambda a: env[a])
    if not any(n.op == "output" for n in after):
        raise NotCuttable(f"the model's output does not depend on {layer!r}")
    module = fx.GraphModule(model, tail)
    module.graph.eliminate_dead_code()
    module.recompile()
    return module


def _pool_then_linear(module: fx.GraphModule) -> nn.Linear | None:
    """The linear layer of a tail that is exactly global average pooling, flattening and one linear layer."""
    nodes = [n for n in module.graph.nodes if n.op != "get_attr"]
    chained = all(len(a.users) == 1 and a in b.all_input_nodes for a, b in pairwise(nodes))
    if not chained or nodes[-1].op != "output" or len(nodes) not in (4, 5):
        return None
    _, *reduce, linear, _ = nodes
    pooled = (len(reduce) == 2 and _is_global_pool(module, reduce[0]) and _is_flatten(reduce[1])) or (
        len(reduce) == 1 and _is_spatial_mean(reduce[0], keepdim=False)
    )
    if not pooled or linear.op != "call_module":
        return None
    found = module.get_submodule(linear.target)
    return found if isinstance(found, nn.Linear) else None


def _is_global_pool(module: fx.GraphModule, node: fx.Node) -> bool:
    if node.op == "call_module":
        pool = module.get_submodule(node.target)
        return isinstance(pool, nn.AdaptiveAvgPool2d) and pool.output_size in (1, (1, 1))
    if node.op == "call_function" and node.target is F.adaptive_avg_pool2d:
        size = node.args[1] if len(node.args) > 1 else node.kwargs.get("output_size")
        return size in (1, (1, 1))
    return _is_spatial_mean(node, keepdim=True)


def _is_spatial_mean(node: fx.Node, keepdim: bool) -> bool:
    """torch.mean(x, (2, 3)) or x.mean((-2, -1)), with the given keepdim."""
    if not ((node.op == "call_method" and node.target == "mean") or node.target is torch.mean):
        return False
    dims = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
    kept = node.args[2] if len(node.args) > 2 else node.kwargs.get("keepdim", False)
    return isinstance(dims, (tuple, list)) and sorted(d % 4 for d in dims) == [2, 3] and bool(kept) == keepdim


def _is_flatten(node: fx.Node) -> bool:
    """torch.flatten(x, 1) or x.flatten(1)."""
    if not ((node.op == "call_method" and node.target == "flatten") or node.target is torch.flatten):
        return False
    start = node.args[1] if len(node.args) > 1 else node.kwargs.get("start_dim", 0)
    return start == 1 and (node.args[2] if len(node.args) > 2 else node.kwargs.get("end_dim", -1)) == -1


def cut(model: nn.Module, layer: str, linear: bool = True) -> Tail:
    """The fastest tail of ``model`` after ``layer`` (see the module docstring); the log says which and why.

    Args:
        model: the network in eval mode.
        layer: the ablated module.
        linear: allow the linear shortcut (False gives the traced graph, e.g. to compare them).
    """
    try:
        module = graph_after(model, layer)
    except NotCuttable as reason:
        log.info(
            "%s: the model cannot be cut after this layer (%s); running full forward passes with edits", layer, reason
        )
        return HookedTail(model, layer)
    head = _pool_then_linear(module) if linear else None
    if head is not None:
        log.info("%s: the tail is global average pooling and one linear layer; ablations need no forward pass", layer)
        return LinearTail(head)
    log.info("%s: running the traced tail after the layer (%d nodes)", layer, len(module.graph.nodes))
    return GraphTail(module)


def batch_sweep(
    tail: Tail,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    edits: Sequence[UnitEdit],
    first: int,
    per_pass: int,
    classes: int,
) -> Counts:
    """Counts of one batch of images under a contiguous slice of a list of ablations.

    Ablations are evaluated in passes of ``per_pass``, aligned to their position in the whole list (pass p holds
    ablations p * per_pass ... (p + 1) * per_pass - 1, the slots outside the slice filled with unchanged copies),
    so every ablation's logits are computed in the same slot of a same-shaped pass however the list is sliced.

    Args:
        tail: the tail to run.
        inputs: the layer's output for the batch (images for a HookedTail).
        targets: (n,) class indices.
        edits: the slice's ablations.
        first: the position of ``edits[0]`` in the whole list.
        per_pass: ablations per pass.
        classes: K, the model's outputs.

    Returns:
        The counts of ``edits``, in their order.
    """
    stop = first + len(edits)
    unchanged = UnitEdit(())
    parts = []
    with torch.inference_mode():
        for p in range(first // per_pass, -(-stop // per_pass)):
            slots = range(p * per_pass, (p + 1) * per_pass)
            group = [edits[i - first] if first <= i < stop else unchanged for i in slots]
            counts = batch_counts(tail.logits(inputs, group).cpu(), targets)
            parts.append(counts.take([i - p * per_pass for i in slots if first <= i < stop]))
    return Counts.concat(parts) if parts else Counts.zeros(0, classes)


def sweep_counts(
    tail: Tail,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    edits: Sequence[UnitEdit],
    first: int,
    per_pass: int,
    classes: int,
) -> Counts:
    """Counts of a slice of a list of ablations (see batch_sweep) over batches of (inputs, targets)."""
    total = Counts.zeros(len(edits), classes)
    for inputs, targets in batches:
        total = total + batch_sweep(tail, inputs, targets, edits, first, per_pass, classes)
    return total
