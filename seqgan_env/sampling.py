"""Drawing one token per row from softmax(logits), fast on a CPU for large vocabularies.

Gumbel-max needs V random numbers and two logarithms per row; inverse-CDF sampling
needs one ``exp`` and one running sum per logit and a single uniform per row
(about 3x faster at V = 5,000 on a 2-core CPU, measured for the oracle task's
rollouts). Both draw from exactly the same distribution.
"""

from __future__ import annotations

import torch


def sample_categorical(logits: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """One index per row of ``logits`` (B, V) drawn from softmax(logits) -> (B,) long.

    ``-inf`` logits have probability 0 and are never drawn; every row needs at least
    one finite logit. Uses one uniform per row from ``generator`` (the global RNG when
    None), so the same generator state and logits give the same tokens.
    """
    if logits.ndim != 2:
        raise ValueError(f"logits must be (B, V), got shape {tuple(logits.shape)}.")
    x = logits.float()
    w = torch.exp(x - x.amax(dim=1, keepdim=True))  # (B, V) unnormalised probabilities, max 1
    cdf = w.cumsum(dim=1)  # (B, V) non-decreasing; flat across zero-probability tokens
    u = torch.rand(x.shape[0], 1, generator=generator, device=x.device)  # (B, 1) in [0, 1)
    target = u * cdf[:, -1:]  # (B, 1) in [0, total)
    # First index with cdf > target: a zero-probability token never has cdf above its predecessor.
    idx = torch.searchsorted(cdf, target, right=True)[:, 0]  # (B,) V when rounding put target at the total
    over = idx >= x.shape[1]  # (B,)
    if bool(over.any()):  # rare: take the last token with mass instead
        last = (w[over] > 0).long().cumsum(dim=1).argmax(dim=1)  # first max of the count = last w > 0
        idx[over] = last
    return idx  # (B,)


__all__ = ["sample_categorical"]
