"""Drawing one token per row from softmax(logits), fast on a CPU for large vocabularies.

Gumbel-max needs V random numbers and two logarithms per row; inverse-CDF sampling
needs one ``exp`` and one running sum per logit and a single uniform per row
(about 3x faster at V = 5,000 on a 2-core CPU, measured for the oracle task's
rollouts). Large vocabularies use two levels: block masses (a vectorised sum)
pick a block of 64 tokens, a running sum inside it picks the token. Both draw
from exactly the same distribution as Gumbel-max.
"""

from __future__ import annotations

import torch

_BLOCK = 64  # tokens per block of the two-level search


def sample_categorical(
    logits: torch.Tensor, generator: torch.Generator | None = None, inplace: bool = False, log_probs: bool = False
) -> torch.Tensor:
    """One index per row of ``logits`` (B, V) drawn from softmax(logits) -> (B,) long.

    ``-inf`` logits have probability 0 and are never drawn; every row needs at least
    one finite logit. Uses one uniform per row from ``generator`` (the global RNG when
    None), so the same generator state and logits give the same tokens.
    ``inplace=True`` overwrites a contiguous float32 ``logits`` with scratch values
    (no (B, V) allocation: the caller must not use ``logits`` afterwards).
    ``log_probs=True``: ``logits`` are already log-probabilities (``log_softmax``
    output, every value <= 0), so the per-row max shift is skipped.
    """
    if logits.ndim != 2:
        raise ValueError(f"logits must be (B, V), got shape {tuple(logits.shape)}.")
    usable = inplace and logits.dtype == torch.float32 and logits.is_contiguous()
    if log_probs:  # probabilities directly: exp(log p) <= 1, -inf -> 0
        w = logits.exp_() if usable else logits.float().exp()  # (B, V)
    else:
        w = logits if usable else logits.float().clone()  # (B, V)
        w.sub_(w.amax(dim=1, keepdim=True)).exp_()  # unnormalised probabilities, max 1, -inf -> 0
    b, v = w.shape
    if v <= 2 * _BLOCK:
        return _search(w.cumsum_(dim=1), torch.rand(b, 1, generator=generator, device=w.device))
    # Two levels (a running sum over V is a slow sequential scan): pick a block of _BLOCK tokens
    # from the block masses, then a token inside it.
    nb = v // _BLOCK  # full blocks; the tail (< _BLOCK tokens) is one more block
    masses = w[:, : nb * _BLOCK].view(b, nb, _BLOCK).sum(dim=2)  # (B, nb)
    if v > nb * _BLOCK:
        masses = torch.cat([masses, w[:, nb * _BLOCK :].sum(dim=1, keepdim=True)], dim=1)  # (B, nb + 1)
    u = torch.rand(b, 1, generator=generator, device=w.device)  # (B, 1) in [0, 1)
    block_cdf = masses.cumsum(dim=1)  # (B, NB)
    blk = _search(block_cdf, u)  # (B,) never a zero-mass block
    below = torch.where(blk > 0, block_cdf.gather(1, (blk - 1).clamp(min=0)[:, None])[:, 0], torch.zeros_like(u[:, 0]))
    rest = (u[:, 0] * block_cdf[:, -1] - below).clamp(min=0)  # (B,) mass left to cover inside the block
    cols = blk[:, None] * _BLOCK + torch.arange(_BLOCK, device=w.device)  # (B, S) token ids of the block
    inside = torch.where(cols < v, w.gather(1, cols.clamp(max=v - 1)), torch.zeros((), device=w.device))  # (B, S)
    local = inside.cumsum(dim=1)  # (B, S)
    # u' = rest / block mass is uniform in [0, 1) given the block: the token inside follows w.
    j = _search(local, (rest / local[:, -1]).clamp(max=1.0)[:, None])  # (B,)
    return cols.gather(1, j[:, None])[:, 0]  # (B,)


def _search(cdf: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Index of the first running sum in ``cdf`` (B, V) above ``u`` (B, 1) x total -> (B,).

    A zero-mass entry never has its running sum above its predecessor's, so it is
    never returned; when rounding puts the target at the total, the last entry with
    mass (the first whose running sum equals the total) is returned instead.
    """
    total = cdf[:, -1:]  # (B, 1)
    idx = torch.searchsorted(cdf, u * total, right=True)[:, 0]  # (B,)
    over = idx >= cdf.shape[1]  # (B,)
    if bool(over.any()):
        idx[over] = torch.searchsorted(cdf[over], total[over], right=False)[:, 0]
    return idx  # (B,)


__all__ = ["sample_categorical"]
