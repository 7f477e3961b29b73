"""Validated configuration shared by the single and the vector token-generation env."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch

from seqgan_env.data.tokenizer import BOS_ID, EOS_ID, PAD_ID, SPECIAL_TOKENS

NUM_SPECIAL = len(SPECIAL_TOKENS)

__all__ = ["BOS_ID", "EOS_ID", "NUM_SPECIAL", "PAD_ID", "EnvConfig", "complete_rows"]  # the ids are re-exported from tokenizer


@dataclass(frozen=True)
class EnvConfig:
    """What one episode of token generation looks like.

    vocab_size: number of token ids (PAD=0, BOS=1, EOS=2, then the symbols).
    max_length: number of token slots in an episode; reaching it ends the episode.
    min_length: fewest symbols before EOS may be written.
    allow_eos: when False, EOS is never valid and every episode fills max_length slots.
    invalid_action_reward: reward of a masked action, which also ends the episode.
    """

    vocab_size: int
    max_length: int = 12
    min_length: int = 1
    allow_eos: bool = True
    invalid_action_reward: float = -1.0

    def __post_init__(self) -> None:
        if not isinstance(self.vocab_size, int) or isinstance(self.vocab_size, bool) or self.vocab_size <= NUM_SPECIAL:
            raise ValueError(
                f"vocab_size={self.vocab_size!r} is invalid: it must be an int > {NUM_SPECIAL} "
                f"(PAD, BOS, EOS plus at least one symbol); build it from a tokenizer's vocab_size."
            )
        if not isinstance(self.max_length, int) or isinstance(self.max_length, bool) or self.max_length < 1:
            raise ValueError(
                f"max_length={self.max_length!r} is invalid: it must be an int >= 1; "
                f"set it to the longest sequence length you want to generate."
            )
        if not isinstance(self.min_length, int) or isinstance(self.min_length, bool) or self.min_length < 0:
            raise ValueError(f"min_length={self.min_length!r} is invalid: it must be an int >= 0.")
        if self.allow_eos and self.min_length > self.max_length:
            raise ValueError(
                f"min_length={self.min_length} is greater than max_length={self.max_length}: "
                f"lower min_length or raise max_length."
            )
        if not isinstance(self.allow_eos, bool):
            raise ValueError(f"allow_eos={self.allow_eos!r} is invalid: it must be True or False.")
        r = self.invalid_action_reward
        if not isinstance(r, (int, float)) or isinstance(r, bool) or not math.isfinite(r):
            raise ValueError(f"invalid_action_reward={r!r} is invalid: it must be a finite number.")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_env_args(
        cls,
        owner: str,
        vocab_size: int | None,
        tokenizer: Any,
        max_length: int,
        min_length: int,
        allow_eos: bool,
        invalid_action_reward: float,
        render_mode: str | None,
        render_modes: list[str],
    ) -> "EnvConfig":
        """The config of an env built from ``vocab_size`` or a ``tokenizer`` (not both, unless they agree)."""
        if tokenizer is not None:
            if vocab_size is not None and vocab_size != tokenizer.vocab_size:
                raise ValueError(
                    f"vocab_size={vocab_size} does not match the tokenizer's vocab_size="
                    f"{tokenizer.vocab_size}: pass only one of them."
                )
            vocab_size = tokenizer.vocab_size
        if vocab_size is None:
            raise ValueError(f"{owner} needs vocab_size or tokenizer: pass one of them.")
        if render_mode is not None and render_mode not in render_modes:
            raise ValueError(f"render_mode={render_mode!r} is not supported: use None or one of {render_modes}.")
        return cls(
            vocab_size=vocab_size,
            max_length=max_length,
            min_length=min_length,
            allow_eos=allow_eos,
            invalid_action_reward=float(invalid_action_reward),
        )


def complete_rows(tokens: torch.Tensor) -> torch.Tensor:
    """(N,) bool: which (N, T) token rows are finished sequences of the shape real data has.

    A real row (``encode_batch``) either ends in EOS or fills all T slots. A generated
    row cut short by a masked action (no EOS, shorter than T) or with nothing written
    (all PAD) has a shape no real row has; a discriminator trained on it would learn
    that shape instead of content, so such rows are never used as fakes.
    """
    return (tokens == EOS_ID).any(dim=1) | (tokens[:, -1] != PAD_ID)
