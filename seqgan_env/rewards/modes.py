"""Reward modes and score transforms: small functions selected by name.

A discriminator gives, for every prefix of a sequence, a realness logit z. A
*transform* turns logits into scores s (``prob``: p = sigmoid(z); ``centered``:
2p - 1, as ScratchGAN; ``log``: log p; ``logit``: z). A *mode* turns the scores of
the prefixes into the reward of the step that wrote token ``pos``:

- ``final``: s at the last token, paid only on the step that ends the episode; 0 before.
- ``per_step``: s of the prefix ending at the token just written.
- ``potential``: s_t - s_{t-1} with s_{-1} = ``baseline``; an episode's rewards sum
  to (final score - baseline), so it is potential-based shaping of ``final``.

Adding a mode or a transform is adding one function to the registry.
"""

from __future__ import annotations

from typing import Callable, Literal

import torch
import torch.nn.functional as F

Transform = Callable[[torch.Tensor], torch.Tensor]
Mode = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, float], torch.Tensor]


def _prob(z: torch.Tensor) -> torch.Tensor:
    return torch.sigmoid(z)


def _centered(z: torch.Tensor) -> torch.Tensor:
    return 2.0 * torch.sigmoid(z) - 1.0


def _log(z: torch.Tensor) -> torch.Tensor:
    return F.logsigmoid(z)  # log p without the log(0) of log(sigmoid(z))


def _logit(z: torch.Tensor) -> torch.Tensor:
    return z


#: the names of the closed sets (Literal types: help and docs show the choices); the dicts below hold one entry each
RewardMode = Literal["final", "per_step", "potential"]
RewardTransform = Literal["prob", "centered", "log", "logit"]

REWARD_TRANSFORMS: dict[str, Transform] = {"prob": _prob, "centered": _centered, "log": _log, "logit": _logit}


def _gather(scores: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """scores (B, T), pos (B,) -> (B,) score at each row's pos."""
    return scores.gather(1, pos.clamp(min=0).unsqueeze(1)).squeeze(1)


def mode_final(scores: torch.Tensor, pos: torch.Tensor, done: torch.Tensor, baseline: float) -> torch.Tensor:
    """(B, T), (B,), (B,) -> (B,): the score of the whole sequence on its last step, else 0."""
    return torch.where(done, _gather(scores, pos), torch.zeros_like(pos, dtype=scores.dtype))


def mode_per_step(scores: torch.Tensor, pos: torch.Tensor, done: torch.Tensor, baseline: float) -> torch.Tensor:
    """(B, T), (B,), (B,) -> (B,): the score of the prefix ending at the token just written."""
    return _gather(scores, pos)


def mode_potential(scores: torch.Tensor, pos: torch.Tensor, done: torch.Tensor, baseline: float) -> torch.Tensor:
    """(B, T), (B,), (B,) -> (B,): s_pos - s_{pos-1}, with s_{-1} = baseline."""
    prev = torch.where(pos > 0, _gather(scores, pos - 1), torch.full_like(pos, baseline, dtype=scores.dtype))
    return _gather(scores, pos) - prev


REWARD_MODES: dict[str, Mode] = {"final": mode_final, "per_step": mode_per_step, "potential": mode_potential}


def get_transform(name: str) -> Transform:
    if name not in REWARD_TRANSFORMS:
        raise ValueError(f"reward transform {name!r} is unknown: choose one of {sorted(REWARD_TRANSFORMS)}.")
    return REWARD_TRANSFORMS[name]


def get_mode(name: str) -> Mode:
    if name not in REWARD_MODES:
        raise ValueError(f"reward mode {name!r} is unknown: choose one of {sorted(REWARD_MODES)}.")
    return REWARD_MODES[name]


def step_rewards(
    logits: torch.Tensor, pos: torch.Tensor, done: torch.Tensor, mode: str, transform: str, baseline: float = 0.0
) -> torch.Tensor:
    """Rewards of the steps that wrote token ``pos`` of each row.

    logits: (B, T) realness logit of every prefix (T may stop at max(pos) + 1).
    pos: (B,) index of the token written this step. done: (B,) this step ends the episode.
    Returns (B,) float rewards.
    """
    scores = get_transform(transform)(logits)  # (B, T)
    return get_mode(mode)(scores, pos, done, baseline)
