"""Drawing one token per row from softmax(logits), fast on a CPU for large vocabularies.

Gumbel-max needs V random numbers and two logarithms per row; inverse-CDF sampling
needs one ``exp`` and one running sum per logit and a single uniform per row
(about 3x faster at V = 5,000 on a 2-core CPU, measured for the oracle task's
rollouts). Both draw from exactly the same distribution.
"""

from __future__ import annotations

import torch


def sample_categorical(
    logits: torch.Tensor, generator: torch.Generator | None = None, inplace: bool = False
) -> torch.Tensor:
    """One index per row of ``logits`` (B, V) drawn from softmax(logits) -> (B,) long.

    ``-inf`` logits have probability 0 and are never drawn; every row needs at least
    one finite logit. Uses one uniform per row from ``generator`` (the global RNG when
    None), so the same generator state and logits give the same tokens.
    ``inplace=True`` overwrites a contiguous float32 ``logits`` with its running sums
    (no (B, V) allocation: the caller must not use ``logits`` afterwards).
    """
    if logits.ndim != 2:
        raise ValueError(f"logits must be (B, V), got shape {tuple(logits.shape)}.")
    usable = inplace and logits.dtype == torch.float32 and logits.is_contiguous()
    cdf = logits if usable else logits.float().clone()  # (B, V)
    cdf.sub_(cdf.amax(dim=1, keepdim=True)).exp_()  # unnormalised probabilities, max 1, -inf -> 0
    cdf.cumsum_(dim=1)  # (B, V) non-decreasing; flat across zero-probability tokens
    total = cdf[:, -1:]  # (B, 1)
    u = torch.rand(cdf.shape[0], 1, generator=generator, device=cdf.device)  # (B, 1) in [0, 1)
    # First index whose running sum exceeds u * total: a zero-probability token never does.
    idx = torch.searchsorted(cdf, u * total, right=True)[:, 0]  # (B,) V when rounding reached the total
    over = idx >= cdf.shape[1]  # (B,)
    if bool(over.any()):  # rare: the last token with mass, the first whose running sum is the total
        idx[over] = torch.searchsorted(cdf[over], total[over], right=False)[:, 0]
    return idx  # (B,)


__all__ = ["sample_categorical"]
