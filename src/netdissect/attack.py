"""Adversarial attacks in pure torch: projected gradient descent under an L-inf budget (FGSM is one step of size
epsilon).

Shaped like captum's robust attacks: a forward function from inputs to logits, inputs in their valid range
([0, 1] images before normalisation), a budget epsilon around each input, a step size and a number of steps.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.nn import functional as F


def pgd(
    forward: Callable[[torch.Tensor], torch.Tensor],
    inputs: torch.Tensor,
    target: torch.Tensor,
    epsilon: float,
    step_size: float,
    steps: int,
    targeted: bool = True,
    lower: float = 0.0,
    upper: float = 1.0,
) -> torch.Tensor:
    """Projected gradient descent on the cross-entropy of ``target`` within ``epsilon`` of ``inputs`` (L-inf).

    Each step moves every pixel by ``step_size`` along the sign of the gradient (down the loss of the target class
    when targeted, up the loss of the true class otherwise), then projects onto the epsilon box around the input
    and the valid range [lower, upper]. Deterministic: the attack starts at the input itself.

    Args:
        forward: inputs -> (N, classes) logits (the normalisation included).
        inputs: (N, ...) clean inputs in [lower, upper].
        target: (N,) the class to reach (targeted) or the true class to leave.
        epsilon: L-inf budget, in input units.
        step_size: change per step.
        steps: number of steps (1 with step_size = epsilon is FGSM).
        targeted: whether to reach ``target`` rather than leave it.
        lower, upper: the valid input range.

    Returns:
        (N, ...) adversarial inputs, detached.
    """
    if not 0 <= epsilon <= upper - lower:
        raise ValueError(f"epsilon {epsilon} lies outside [0, {upper - lower}], the range of the inputs")
    x0 = inputs.detach()
    low, high = (x0 - epsilon).clamp(min=lower), (x0 + epsilon).clamp(max=upper)
    sign = -1.0 if targeted else 1.0
    x = x0.clone()
    for _ in range(steps):
        x.requires_grad_(True)
        loss = F.cross_entropy(forward(x), target)
        (gradient,) = torch.autograd.grad(loss, x)
        x = torch.minimum(torch.maximum(x.detach() + sign * step_size * gradient.sign(), low), high)
    return x.detach()
