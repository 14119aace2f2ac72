"""Forward hooks that read and edit the outputs of named layers.

Capturing records a layer's output; editing sets chosen units (channels, dim 1) to a value, everywhere or
inside a spatial mask, and passes the edited tensor on to the rest of the network. A layer that is both
edited and captured is captured after its edits. When a module returns a tuple, only element 0 is edited
and captured; the other elements pass through untouched. When a module runs several times in one forward
pass, each call is edited and the last call is captured.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Self

import torch
from torch import nn

from .models import resolve_layers


@dataclass(frozen=True)
class UnitEdit:
    """Set some units of a layer to a value.

    Attributes:
        units: channel indices.
        value: value to set: a scalar, or a tensor with one value per unit.
        mask: optional spatial mask of shape (h, w) or (N, h, w) matching the layer's output; None edits
            everywhere. A bool mask sets the value where True; a float mask m blends
            ``out * (1 - m) + value * m``.
    """

    units: Sequence[int]
    value: float | torch.Tensor = 0.0
    mask: torch.Tensor | None = None

    def apply(self, out: torch.Tensor) -> torch.Tensor:
        """Edited copy of a layer output.

        Args:
            out: layer output (N, C, ...).

        Returns:
            A new tensor equal to ``out`` except on the edited units.
        """
        if out.ndim < 2:
            raise ValueError(f"cannot edit units of an output of shape {tuple(out.shape)}: need (N, C, ...)")
        channels = out.shape[1]
        index = torch.as_tensor(list(self.units), dtype=torch.long, device=out.device)
        if index.numel() and (int(index.min()) < 0 or int(index.max()) >= channels):
            raise ValueError(f"unit index out of range for a layer with {channels} units: {list(self.units)}")
        broadcast = (1, index.numel()) + (1,) * (out.ndim - 2)
        value = torch.as_tensor(self.value, dtype=out.dtype, device=out.device)
        if value.ndim:
            if value.numel() != index.numel():
                raise ValueError(f"got {value.numel()} values for {index.numel()} units")
            value = value.reshape(broadcast)
        selected = out.index_select(1, index)
        if self.mask is None:
            edited = value.expand_as(selected)
        else:
            mask = self._spatial_mask(out)
            if mask.dtype == torch.bool:
                edited = torch.where(mask, value, selected)
            else:
                mask = mask.to(out.dtype)
                edited = selected * (1 - mask) + value * mask
        return out.index_copy(1, index, edited.contiguous())

    def _spatial_mask(self, out: torch.Tensor) -> torch.Tensor:
        """The mask shaped (N or 1, 1, h, w) for a (N, C, h, w) output."""
        mask = self.mask.to(out.device)
        if mask.ndim == 2:
            mask = mask.unsqueeze(0)
        if out.ndim != 4 or mask.ndim != 3 or mask.shape[1:] != out.shape[2:] or mask.shape[0] not in (1, out.shape[0]):
            raise ValueError(
                f"mask of shape {tuple(self.mask.shape)} does not fit a layer output of shape {tuple(out.shape)}; "
                "expected (h, w) or (N, h, w)"
            )
        return mask.unsqueeze(1)


@dataclass(frozen=True)
class EditBatch:
    """Evaluate several edits in one pass: the output (N, C, ...) becomes (E * N, C, ...), copy e edited by edit e.

    Attributes:
        edits: the E edits, in the order of the copies.
    """

    edits: Sequence[UnitEdit]

    def apply(self, out: torch.Tensor) -> torch.Tensor:
        """The E edited copies of a layer output, concatenated along the batch axis."""
        return torch.cat([edit.apply(out) for edit in self.edits])


class _CaptureDone(Exception):
    """Raised inside a hook to end a forward pass once every captured layer has run."""


class LayerHooks:
    """Context manager that captures and edits layer outputs during forward passes.

    Example::

        with LayerHooks(model, capture=["conv4"], edits={"conv3": UnitEdit([5, 9])}) as hooks:
            logits = hooks.run(x)
        features = hooks.captured["conv4"]

    Attributes:
        captured: detached outputs of the captured layers in the last :meth:`run`.
    """

    def __init__(
        self,
        model: nn.Module,
        capture: Sequence[str] = (),
        edits: Mapping[str, UnitEdit | EditBatch | Sequence[UnitEdit | EditBatch]] | None = None,
        stop_after_capture: bool = False,
    ) -> None:
        """Check layer names; hooks are registered on entering the context.

        Args:
            model: the network.
            capture: layers whose outputs to record.
            edits: layer -> one edit or a sequence of edits, applied in order (an EditBatch multiplies the batch).
            stop_after_capture: end each forward pass as soon as every captured layer has produced its
                output (later layers do not run and :meth:`run` returns None).
        """
        if stop_after_capture and not capture:
            raise ValueError("stop_after_capture needs at least one layer to capture")
        self.model = model
        self.capture = tuple(dict.fromkeys(capture))
        self.edits = {
            name: (edit,) if isinstance(edit, (UnitEdit, EditBatch)) else tuple(edit)
            for name, edit in (edits or {}).items()
        }
        self.stop_after_capture = stop_after_capture
        self._modules = resolve_layers(model, list(dict.fromkeys([*self.capture, *self.edits])))
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        self.captured: dict[str, torch.Tensor] = {}

    def __enter__(self) -> Self:
        """Register the hooks.

        Returns:
            self.
        """
        if self._handles:
            raise RuntimeError("LayerHooks is already active")
        try:
            for name, module in self._modules.items():
                self._handles.append(module.register_forward_hook(self._hook(name)))
        except BaseException:
            self._remove()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Remove the hooks, whatever happened inside the context."""
        self._remove()

    def _remove(self) -> None:
        """Remove every registered hook."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _hook(self, name: str) -> Callable[[nn.Module, tuple, object], object]:
        """Forward hook for one layer: edit, then capture, then maybe stop the pass."""
        edits = self.edits.get(name, ())
        capture = name in self.capture

        def hook(module: nn.Module, inputs: tuple, output: object) -> object:
            out = output[0] if isinstance(output, tuple) else output
            if not isinstance(out, torch.Tensor):
                raise TypeError(f"layer '{name}' returned {type(out).__name__}, not a tensor")
            for edit in edits:
                out = edit.apply(out)
            if capture:
                self.captured[name] = out.detach()
                if self.stop_after_capture and len(self.captured) == len(self.capture):
                    raise _CaptureDone
            if not edits:
                return None
            return (out, *output[1:]) if isinstance(output, tuple) else out

        return hook

    def run(self, x: torch.Tensor) -> torch.Tensor | None:
        """One forward pass through the hooked model.

        Args:
            x: model input.

        Returns:
            The model output, or None when the pass stopped after capturing.
        """
        if not self._handles:
            raise RuntimeError("LayerHooks.run must be called inside its 'with' block")
        self.captured = {}
        try:
            return self.model(x)
        except _CaptureDone:
            return None
