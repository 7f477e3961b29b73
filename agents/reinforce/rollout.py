"""Collecting REINFORCE's episodes: one episode per row of a vector env, sampled with the KV cache.

``collect`` resets the vector env and runs the package's one sampling loop
(``seqgan_env.models.sampling.decode``): the generator's next-token logits through its
cache (feed BOS, then only the token just sampled), the env's action masks (the episode
spec's token rule, applied by the env), temperature and nucleus, the draw; each step
goes to the env, and its tokens, rewards, masks and the sampling distribution's support
(action masks, top-p keep masks) are recorded in a :class:`Rollout`.

Shapes: B = rows (envs), T = max_length, V = vocab size.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Callable

import torch

from seqgan_env.envs.spec import BOS_ID, PAD_ID
from seqgan_env.models.sampling import TokenDraw, TokenSampler, decode
from seqgan_env.rewards.sources import INFO_PREFIX

@dataclass
class Rollout:
    """One episode per row from ``ReinforceAgent.collect``.

    tokens (B, T) long: the actions taken at each step. rewards (B, T) float: env
    rewards, 0 where ``mask`` is False. mask (B, T) bool: True while the row's first
    episode runs, including its final step. action_masks (B, T, V) bool: valid tokens
    used at each step. keep_masks (B, T, V) bool or None: top-p nucleus at each step
    (None when top_p == 1). sample_logp (B, T) float: log-prob of each token under the
    sampling distribution, computed at sampling time. texts: each row's finished text
    from ``infos["text"]`` (None if the env gave none). sources: {"reward/<name>": (B, T)
    float} each reward source's weighted share of ``rewards`` (from the env's infos), 0
    where ``mask`` is False.
    """

    tokens: torch.Tensor
    rewards: torch.Tensor
    mask: torch.Tensor
    action_masks: torch.Tensor
    keep_masks: torch.Tensor | None
    sample_logp: torch.Tensor
    texts: list[str | None] = field(default_factory=list)
    sources: dict[str, torch.Tensor] = field(default_factory=dict)

@torch.no_grad()
def collect(
    venv,
    start: Callable[[int, int], Callable[[torch.Tensor, int], torch.Tensor]],
    sampler: TokenSampler,
    device: torch.device,
) -> Rollout:
    """Reset ``venv`` and sample until every row has finished its first episode (<= T steps).

    Args:
        venv: a vector env of this package (``reset``, ``step``, ``action_masks``), B rows of T slots.
        start: ``(batch, capacity) -> next_logits``, a fresh KV-cached step
            (``seqgan_env.models.sampling.KVStepper.start``).
        sampler: the step's distribution and draw (``with_logp=True``: the rollout keeps each
            token's log-probability).
        device: where the rollout's tensors live.

    Returns:
        The :class:`Rollout`; steps after every row finished keep ``mask`` False and all-True masks.
    """
    obs, _ = venv.reset()
    B, T = obs.shape
    dev = device
    tokens = torch.full((B, T), PAD_ID, dtype=torch.long, device=dev)  # (B, T)
    rewards = torch.zeros(B, T, device=dev)  # (B, T)
    mask = torch.zeros(B, T, dtype=torch.bool, device=dev)  # (B, T)
    sample_logp = torch.zeros(B, T, device=dev)  # (B, T)
    amasks: list[torch.Tensor] = []
    keeps: list[torch.Tensor] = []
    texts: list[str | None] = [None] * B
    sources: dict[str, torch.Tensor] = {}
    active = torch.ones(B, dtype=torch.bool, device=dev)  # (B,) first episode still running
    next_logits = start(B, T + 1)
    env_dev = getattr(venv.unwrapped, "device", dev)
    first = next_logits(torch.full((B, 1), BOS_ID, dtype=torch.long, device=dev), 0)  # (B, V)
    env_masks = [venv.action_masks()]  # the env's token rule for the coming step

    def allowed(t: int) -> torch.Tensor:
        amask = torch.as_tensor(env_masks[0], device=dev)  # (B, V)
        amasks.append(amask)
        return amask

    def observe(t: int, draw: TokenDraw) -> torch.Tensor:
        nonlocal active
        action = draw.action  # (B,)
        sample_logp[:, t] = draw.logp
        if draw.keep is not None:
            keeps.append(draw.keep)
        _, r, term, trunc, infos = venv.step(action.to(env_dev))
        env_masks[0] = venv.action_masks()
        r = torch.as_tensor(r, device=dev, dtype=torch.float32)  # (B,)
        done = torch.as_tensor(term, device=dev) | torch.as_tensor(trunc, device=dev)  # (B,)
        tokens[:, t] = action
        rewards[:, t] = r  # steps after a row's first episode are zeroed below
        for key in infos:  # each reward source's share of r (seqgan_env.rewards.sources)
            if key.startswith(INFO_PREFIX):
                if key not in sources:
                    sources[key] = torch.zeros(B, T, device=dev)  # (B, T)
                sources[key][:, t] = torch.as_tensor(infos[key], device=dev, dtype=torch.float32)
        mask[:, t] = active
        if "text" in infos:
            finished = active & done  # (B,) rows whose first episode ends on this step
            if bool(finished.any()):
                for i in finished.nonzero().squeeze(1).tolist():
                    texts[i] = infos["text"][i]
        active = active & ~done
        return active

    # The rewards are read only after the last step: a vector reward wrapper that can defer D's
    # scoring (``deferred_rewards``) scores the batch in causal passes instead of once per step.
    defer = getattr(venv, "deferred_rewards", None)
    with (defer(T) if defer is not None else contextlib.nullcontext()) as window:
        steps = decode(first, next_logits, sampler, T, allowed, observe)
    if window is not None:  # D's share of each step (window step t is collection step t), as the step would have paid
        rewards[:, : window.rewards.shape[1]] += window.rewards.to(dev)
        for key, share in window.parts.items():
            if key in sources:
                sources[key][:, : share.shape[1]] += share.to(dev)
    rewards.masked_fill_(~mask, 0.0)  # only the first episode of each row counts
    for part in sources.values():
        part.masked_fill_(~mask, 0.0)
    # Steps never taken (all rows finished early) keep mask False; pad the masks with True.
    V = amasks[0].shape[1]
    pad = T - steps
    action_masks = torch.stack(amasks, dim=1)  # (B, steps, V)
    if pad:
        action_masks = torch.cat([action_masks, torch.ones(B, pad, V, dtype=torch.bool, device=dev)], 1)
    keep_masks = None
    if keeps:
        keep_masks = torch.stack(keeps, dim=1)  # (B, steps, V)
        if pad:
            keep_masks = torch.cat([keep_masks, torch.ones(B, pad, V, dtype=torch.bool, device=dev)], 1)
    return Rollout(tokens, rewards, mask, action_masks, keep_masks, sample_logp, texts, sources)
