"""Deferred discriminator rewards: score a window of vector-env steps with causal passes, not step by step.

A collector that reads the rewards only after its last step (REINFORCE's ``collect``) does
not need D's score of each prefix the moment it is written. Inside
``DiscriminatorRewardVector.deferred_rewards(steps)`` the wrapper pays every step without
the discriminator's share, remembers which window step wrote which position of each row's
episode, and scores those positions later in one causal pass per flush: when rows finish
(their episode is complete, and ``info["disc_score"]`` stays exact), before D changes (a D
phase of the wrapper), before a reset and at the window's end. Each pending step then gets
the reward of the reward mode (``seqgan_env.rewards.modes``) from those logits; equal to
the per-step rewards of the wrapper outside the window to float rounding (the causal pass
and the KV-cached step are the same function).

Shapes: B = rows (sub-envs), T = max_length, W = window steps, K = rows of one flush.
"""

from __future__ import annotations

import torch

from seqgan_env.rewards.modes import get_mode, get_transform
from seqgan_env.rewards.sources import INFO_PREFIX, DISCRIMINATOR, weighted


class DeferredWindow:
    """The discriminator's share of the reward of every step of one deferred window.

    Attributes:
        rewards: (B, W) float: the discriminator's weighted share of the reward paid at each
            window step (add it to the rewards the steps returned); 0 where the step wrote nothing.
        parts: {"reward/discriminator": the same (B, W) tensor}: the share by info key.
        steps: window steps taken so far.
    """

    def __init__(self, num_rows: int, max_length: int, steps: int, weight: float, device: torch.device) -> None:
        self.rewards = torch.zeros(num_rows, steps, device=device)  # (B, W)
        self.parts = {INFO_PREFIX + DISCRIMINATOR: self.rewards}
        self.steps = 0
        self.capacity = steps
        self.weight = weight
        self.step_of = torch.full((num_rows, max_length), -1, dtype=torch.long, device=device)  # (B, T) -1: not pending
        self.pending = torch.zeros(num_rows, dtype=torch.bool, device=device)  # (B,) rows with pending positions

    def record(self, written: torch.Tensor, pos: torch.Tensor) -> None:
        """Note that this window step wrote position ``pos`` of each ``written`` row.

        Args:
            written: (B,) bool, rows that appended a token this step.
            pos: (B,) long, the index of that token.

        Raises:
            RuntimeError: more steps than the window was opened for.
        """
        if self.steps >= self.capacity:
            raise RuntimeError(f"deferred_rewards(steps={self.capacity}) got step {self.steps + 1}: open the window "
                               f"with the number of steps the collector takes.")
        idx = pos.unsqueeze(1)  # (B, 1)
        cur = self.step_of.gather(1, idx)  # (B, 1)
        self.step_of.scatter_(1, idx, torch.where(written.unsqueeze(1), self.steps, cur))
        self.pending |= written
        self.steps += 1

    @torch.inference_mode()
    def flush(self, rows: torch.Tensor, tokens: torch.Tensor, lengths: torch.Tensor, done: torch.Tensor,
              score, mode: str, transform: str, baseline: float, logits_buffer: torch.Tensor
              ) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Score the pending positions of ``rows`` in one causal pass and fill their rewards.

        Args:
            rows: (B,) bool, the rows to score (rows with nothing pending are skipped).
            tokens: (B, T) long, the rows' current episodes; lengths: (B,) tokens written.
            done: (B,) bool, rows whose episode ended with the token written on the latest step
                (``final`` pays that step).
            score: (K, m) token ids -> (K, m) realness logits (the scorer's ``score_logits``).
            mode, transform, baseline: the wrapper's ``RewardConfig`` fields.
            logits_buffer: (B, T) the wrapper's per-prefix logits, updated for the scored rows
                (so steps after the window continue from them).

        Returns:
            (idx (K,), logits of each scored row's whole prefix (K,)), or None when nothing was pending.
        """
        sel = rows & self.pending  # (B,)
        if not bool(sel.any()):
            return None
        idx = sel.nonzero().squeeze(1)  # (K,)
        lens = lengths[idx]  # (K,)
        m = max(int(lens.max()), 1)
        logits = score(tokens[idx, :m]).to(logits_buffer.dtype)  # (K, m) every prefix, current D
        logits_buffer[idx, :m] = logits
        k = idx.numel()
        # Every position's reward through the mode itself: row i, position p -> flat row i * m + p.
        scores = get_transform(transform)(logits)  # (K, m)
        grid = scores.repeat_interleave(m, dim=0)  # (K*m, m)
        p = torch.arange(m, device=idx.device).repeat(k)  # (K*m,)
        last = lens.clamp(min=1) - 1  # (K,)
        ends = (p.view(k, m) == last.unsqueeze(1)) & done[idx].unsqueeze(1)  # (K, m)
        r = get_mode(mode)(grid, p, ends.reshape(-1), baseline).view(k, m)  # (K, m)
        target = self.step_of[idx, :m]  # (K, m) window step of each pending position, -1 elsewhere
        hit = target >= 0  # (K, m)
        flat = (idx.unsqueeze(1) * self.capacity + target)[hit]  # (N,)
        self.rewards.view(-1)[flat] = weighted(r[hit], self.weight).to(self.rewards.dtype)
        self.step_of[idx] = -1
        self.pending[idx] = False
        return idx, logits.gather(1, last.unsqueeze(1)).squeeze(1)
