"""The policy-gradient maths of REINFORCE, as pure functions on (B, T) tensors.

Discounted returns, the baselines (batch mean, EWMA, RLOO, MaliGAN's importance weights),
advantage normalisation, the entropy of a masked distribution and the padding trim of the
MLE batch. Each takes an optional ``all_reduce`` (a sum over data-parallel ranks) so the
same code gives full-batch statistics under ``torchrun``; the tests check them against
hand-computed values.

Shapes: B = rows (envs), T = max_length, V = vocab size, N = real sequences.
"""

from __future__ import annotations

from typing import Callable

import torch

from seqgan_env.envs.spec import PAD_ID

from seqgan_agents.reinforce.config import BASELINES


def discounted_returns(rewards: torch.Tensor, mask: torch.Tensor, gamma: float) -> torch.Tensor:
    """G_t = r_t + gamma * G_{t+1} inside the episode, 0 where ``mask`` is False.

    rewards (B, T) float; mask (B, T) bool, True on the steps of each row's first
    episode (a prefix of the row). Returns (B, T) float.
    """
    m = mask.to(rewards.dtype)  # (B, T)
    out = torch.zeros_like(rewards)  # (B, T)
    g = torch.zeros_like(rewards[:, 0])  # (B,) G_{t+1}
    for t in range(rewards.shape[1] - 1, -1, -1):
        g = (rewards[:, t] + gamma * g) * m[:, t]  # (B,) zero outside the episode
        out[:, t] = g
    return out


def _masked_time_mean(
    x: torch.Tensor, mask: torch.Tensor, all_reduce: Callable[[torch.Tensor], torch.Tensor] | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-timestep mean of x (B, T) over masked rows -> mean (T,), count (T,) (mean 0 where count 0).

    ``all_reduce`` (a sum over ranks, or None for one process) makes it the mean over
    every rank's rows: sums and counts are reduced before dividing.
    """
    m = mask.to(x.dtype)  # (B, T)
    count = m.sum(0)  # (T,)
    if all_reduce is None:
        mean = (x * m).sum(0) / count.clamp(min=1)  # (T,)
        return mean, count
    sums = all_reduce(torch.stack([(x * m).sum(0), count]))  # (2, T) over all ranks
    return sums[0] / sums[1].clamp(min=1), sums[1]


def _maligan_advantages(
    returns: torch.Tensor, mask: torch.Tensor, all_reduce: Callable[[torch.Tensor], torch.Tensor] | None = None
) -> torch.Tensor:
    """(B, T) advantages B w_i - 1 on row i's masked steps, w = softmax over rows of R_i = returns[:, 0].

    Rows with no masked step take no part. Data-parallel: B and the softmax's normaliser
    are over every rank's rows (shifted by the global mean return, in float64, so the sum
    of exponentials is one all-reduce and cannot overflow for |R - mean| < 700).
    """
    live = mask.any(1)  # (B,)
    r = returns[:, 0].double()  # (B,) episode returns
    stats = torch.stack([(r * live).sum(), live.sum().double()])  # (2,) sum, count
    if all_reduce is not None:
        stats = all_reduce(stats)
    if float(stats[1]) == 0:
        return torch.zeros_like(returns)
    e = torch.where(live, torch.exp(r - stats[0] / stats[1]), torch.zeros_like(r))  # (B,)
    z = e.sum() if all_reduce is None else all_reduce(e.sum())  # () normaliser over all rows
    w = stats[1] * e / z - 1.0  # (B,) B w_i - 1
    return w.to(returns.dtype)[:, None] * mask.to(returns.dtype)  # (B, T)


def apply_baseline(
    returns: torch.Tensor,
    mask: torch.Tensor,
    kind: str,
    state: torch.Tensor | None = None,
    decay: float = 0.9,
    all_reduce: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Advantages = returns - baseline, 0 outside ``mask``; returns (advantages (B, T), new_state).

    kind "none": the returns themselves (state passes through).
    kind "batch_mean": minus the per-timestep mean of the returns over the masked rows.
    kind "ewma": minus a per-timestep running mean b_t, taken BEFORE this batch's
    update b_t <- decay * b_t + (1 - decay) * batch_mean_t (only timesteps with masked
    rows update). ``state`` is a (T,) tensor with NaN at never-seen timesteps (None =
    all unseen); an unseen timestep is initialised with the batch mean, so the first
    call gives the same advantages as "batch_mean".
    kind "rloo": minus the per-timestep mean of the *other* masked rows (leave-one-out,
    Kool et al. 2019), i.e. (R - mean) * n / (n - 1); 0 at timesteps with one row.
    kind "maligan": the episode return R_i (the return at t = 0) as a log importance
    weight: every step of row i gets B w_i - 1 with w = softmax(R) over the B rows
    (MaliGAN, Che et al. 2017: with final rewards log D/(1-D), w_i is D/(1-D) normalised
    over the batch; the -1 is the mean weight, a baseline). Both leave ``state`` as it is.
    ``all_reduce`` (sum over ranks, data-parallel training) takes the batch means over
    every rank's rows, so each rank gets the full-batch advantages of its own rows and
    the same new ``state``.
    """
    if kind not in BASELINES:
        raise ValueError(f"baseline kind {kind!r} is unknown: choose one of {list(BASELINES)}.")
    m = mask.to(returns.dtype)  # (B, T)
    if kind == "none":
        return returns * m, state
    if kind == "maligan":
        return _maligan_advantages(returns, mask, all_reduce), state
    mean, count = _masked_time_mean(returns, mask, all_reduce)  # (T,), (T,)
    if kind == "batch_mean":
        return (returns - mean) * m, state
    if kind == "rloo":
        scale = torch.where(count > 1, count / (count - 1).clamp(min=1), torch.zeros_like(count))  # (T,)
        return (returns - mean) * scale * m, state
    T = returns.shape[1]
    if state is None:
        state = torch.full((T,), float("nan"), dtype=returns.dtype, device=returns.device)
    if state.shape != (T,):
        raise ValueError(f"ewma baseline state has shape {tuple(state.shape)} but the returns have T={T} "
                         f"steps: use the same max_length as when the state was created, or reset it to None.")
    state = state.to(returns.device, returns.dtype)
    seen = ~torch.isnan(state)  # (T,)
    b = torch.where(seen, state, mean)  # (T,) baseline before the update
    adv = (returns - b) * m  # (B, T)
    updated = decay * b + (1.0 - decay) * mean  # (T,)
    new_state = torch.where(count > 0, updated, state)  # (T,) unseen+empty timesteps stay NaN
    return adv, new_state


def normalize(
    adv: torch.Tensor,
    mask: torch.Tensor,
    eps: float = 1e-8,
    all_reduce: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """Zero mean, unit (population) std over the masked entries; 0 outside the mask.

    ``all_reduce`` (sum over ranks): mean and std over every rank's masked entries.
    """
    if all_reduce is not None:
        m = mask.to(adv.dtype)  # (B, T)
        tot = all_reduce(torch.stack([(adv * m).sum(), m.sum()]))  # (2,) global sum, count
        if float(tot[1]) == 0:
            return torch.zeros_like(adv)
        mean = tot[0] / tot[1]
        var = all_reduce(((adv - mean) ** 2 * m).sum()) / tot[1]  # population variance
        return torch.where(mask, (adv - mean) / (var.sqrt() + eps), torch.zeros_like(adv))
    vals = adv[mask]  # (K,)
    if vals.numel() == 0:
        return torch.zeros_like(adv)
    mean = vals.mean()
    std = vals.std(unbiased=False)
    return torch.where(mask, (adv - mean) / (std + eps), torch.zeros_like(adv))


def trim_padding(tokens: torch.Tensor) -> torch.Tensor:
    """(N, T) right-padded rows -> (N, T'): the columns up to the longest row's last non-PAD token.

    Teacher-forced causal logits at a position do not depend on later columns, and PAD targets
    carry no loss, so the MLE loss of the trimmed rows is the loss of the full ones at a fraction
    of the cost when most rows are short (captions: mean 13 of up to 52 BPE tokens).
    """
    width = int((tokens != PAD_ID).sum(1).max()) if tokens.numel() else 0
    return tokens[:, : max(width, 1)]


def entropy(logits: torch.Tensor, logp: torch.Tensor | None = None) -> torch.Tensor:
    """Entropy of softmax(logits) (..., V) -> (...), with -inf logits contributing 0.

    ``logp``: ``log_softmax(logits)`` if the caller has it already (not computed twice).
    """
    if logp is None:
        logp = torch.log_softmax(logits, dim=-1)  # (..., V)
    safe = logp.masked_fill(torch.isneginf(logits), 0.0)  # avoid 0 * -inf in forward and backward
    return -(logp.exp() * safe).sum(-1)
