"""What network to build: the one typed description that planning, checks, stages and tests share.

No torch here: the workflow builds a spec at every parse, also in cluster jobs that never touch the model.
Rules pass it as plain params (:meth:`ModelSpec.as_params`) and stages read it back (:meth:`ModelSpec.from_config`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

TRAIN = "train"  # model.weights: the workflow trains the network itself


@dataclass(frozen=True)
class ModelSpec:
    """A network and its weights.

    Attributes:
        name: torchvision classification architecture (any of ``torchvision.models.list_models``) or a
            builtin name (``scene_cnn``).
        factory: user network as ``path/to/file.py:function`` or ``package.module:function``; the function
            is called with ``**factory_args`` and must return an ``nn.Module``.
        factory_args: keyword arguments of the factory.
        weights: a weights file, ``"train"`` (made by the workflow: see :meth:`resolved`), or None.
        random_init: must be True to run a named architecture without weights (a factory's module is taken
            as the factory returns it, with its own initialisation or the weights it loads).
        allow_pickle: allow loading whole pickled objects (unsafe: only for trusted files).
        num_classes: passed to torchvision/builtin constructors when given.
        normalize: input normalisation after scaling to [0, 1]: ``imagenet`` or ``none``.
        seed: seeds the random initialisation (identical in every job).
        digest: identifies everything that defines the network's function (weights, code, precision).
    """

    name: str | None = None
    factory: str | None = None
    factory_args: dict = field(default_factory=dict)
    weights: str | None = None
    random_init: bool = False
    allow_pickle: bool = False
    num_classes: int | None = None
    normalize: str = "imagenet"
    seed: int = 0
    digest: str = ""

    @classmethod
    def from_config(cls, section: Mapping[str, Any], **values: Any) -> ModelSpec:
        """A spec from a config's ``model`` section or a rule's params; other keys (``layers``) are ignored.

        Args:
            section: mapping with some of the attribute names; missing ones keep their defaults.
            values: attributes that override the section's.
        """
        names = {f.name for f in dataclasses.fields(cls)}
        chosen = {k: v for k, v in {**section, **values}.items() if k in names}
        chosen["factory_args"] = dict(chosen.get("factory_args") or {})
        return cls(**chosen)

    def as_params(self) -> dict[str, Any]:
        """Plain values for a rule's params (Snakemake tracks them for reruns)."""
        return dataclasses.asdict(self)

    @property
    def trained_here(self) -> bool:
        return self.weights == TRAIN

    def resolved(self, trained_weights: str | None = None) -> ModelSpec:
        """The spec to build: the workflow's trained weights in place of ``"train"``, or, before they exist, a
        random initialisation (enough to check architecture and layer names)."""
        if not self.trained_here:
            return self
        return dataclasses.replace(self, weights=trained_weights, random_init=trained_weights is None)
