"""The episode spec: EnvConfig, the one token-validity rule, and the shape of a finished row.

Every component that decides which tokens are valid asks the spec: the env and the vector env
(``EnvConfig.valid_tokens``, ``EnvConfig.is_valid``), agent sampling (``valid_tokens``) and MC
rollout completions (``EnvConfig.mask_logits_``); every
component that decides whether a generated row may train the discriminator asks
``complete_rows``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch

from seqgan_env.data.tokenizer import BOS_ID, EOS_ID, PAD_ID, SPECIAL_TOKENS
from seqgan_env.utils.validation import check_int, check_number

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
        check_int("vocab_size", self.vocab_size, NUM_SPECIAL + 1,
                  "PAD, BOS, EOS plus at least one symbol; build it from a tokenizer's vocab_size")
        check_int("max_length", self.max_length, 1, "set it to the longest sequence length you want to generate")
        check_int("min_length", self.min_length, 0)
        if self.allow_eos and self.min_length > self.max_length:
            raise ValueError(
                f"min_length={self.min_length} is greater than max_length={self.max_length}: "
                f"lower min_length or raise max_length."
            )
        if not isinstance(self.allow_eos, bool):
            raise ValueError(f"allow_eos={self.allow_eos!r} is invalid: it must be True or False.")
        check_number("invalid_action_reward", self.invalid_action_reward)

    def to_dict(self) -> dict:
        return asdict(self)

    # -- the token-validity rule -------------------------------------------------------
    def eos_valid(self, lengths: torch.Tensor) -> torch.Tensor:
        """(*S,) bool: whether EOS may follow ``lengths`` written symbols: only when ``allow_eos``,
        and only once ``min_length`` symbols are written."""
        return (lengths >= self.min_length) & self.allow_eos

    def is_valid(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The rule: whether each token may be written after ``lengths`` symbols (broadcast, bool).

        PAD (fills unwritten slots) and BOS (starts every sequence) never; EOS per
        :meth:`eos_valid`; every symbol always.
        """
        tokens = torch.as_tensor(tokens)
        lengths = torch.as_tensor(lengths, device=tokens.device)
        return (tokens != PAD_ID) & (tokens != BOS_ID) & ((tokens != EOS_ID) | self.eos_valid(lengths))

    def valid_tokens(self, lengths: int | torch.Tensor) -> torch.Tensor:
        """(*S, V) bool: :meth:`is_valid` for every token id after ``lengths`` (int or (*S,) long)."""
        lengths = torch.as_tensor(lengths)
        ids = torch.arange(self.vocab_size, device=lengths.device)  # (V,)
        return self.is_valid(ids, lengths.unsqueeze(-1))  # (*S, V)

    def mask_logits_(self, logits: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """In place: -inf where :meth:`is_valid` is False, for (N, V) ``logits`` after (N,) ``lengths``.

        Column by column (PAD, BOS, EOS are the only tokens the rule can refuse), so no (N, V)
        mask is built: rollout batches are large. Returns ``logits``.
        """
        logits[:, [PAD_ID, BOS_ID]] = float("-inf")
        eos = logits[:, EOS_ID]  # (N,)
        logits[:, EOS_ID] = torch.where(self.eos_valid(lengths), eos, torch.full_like(eos, float("-inf")))
        return logits

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
