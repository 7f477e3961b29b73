"""TokenGenerationEnv: one sequence written one token per step (the generator's MDP)."""

from __future__ import annotations

from typing import Any, Callable

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from seqgan_env.envs.render import text_columns, text_frame
from seqgan_env.envs.spec import BOS_ID, EOS_ID, PAD_ID, EnvConfig


def default_decode(ids: np.ndarray) -> str:
    """Text of a token row when no tokenizer is given: the symbol ids, space-separated."""
    out = []
    for t in ids.tolist():
        if t == EOS_ID:
            break
        if t not in (PAD_ID, BOS_ID):
            out.append(str(t))
    return " ".join(out)


def check_action(action: Any, vocab_size: int) -> int:
    """Return ``action`` as a Python int, or raise ValueError naming it and the valid range."""
    arr = np.asarray(action)
    if arr.shape not in ((), (1,)) or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(
            f"action={action!r} is invalid: expected one integer token id in [0, {vocab_size - 1}] "
            f"(shape () or (1,)), got dtype {arr.dtype} and shape {arr.shape}."
        )
    value = int(arr.reshape(()))
    if not 0 <= value < vocab_size:
        raise ValueError(
            f"action={value} is outside the action space Discrete({vocab_size}): "
            f"pass a token id in [0, {vocab_size - 1}]."
        )
    return value


class TokenGenerationEnv(gym.Env):
    """Write a sequence one token per step; the episode is one generated sequence.

    ## Description
    The agent is the generator of a SeqGAN. Each step it writes the next token of a
    sequence. This env alone pays no reward for valid actions (0.0): wrap it in
    ``seqgan_env.rewards.wrappers.DiscriminatorReward`` to be paid by a discriminator, or
    make it with ``gymnasium.make("seqgan_env:SeqGAN-v1")``, which does that for you.

    ## Action space
    ``Discrete(vocab_size)``: the token id to write. Ids: PAD=0, BOS=1, EOS=2, then
    the symbols. PAD and BOS are never valid; EOS is valid only when ``allow_eos`` and
    at least ``min_length`` symbols were written. ``action_masks()`` returns the valid
    set (for sb3-contrib's MaskablePPO). A masked action has a defined outcome: the
    token is not written, the episode ends (``terminated=True``) with reward
    ``invalid_action_reward`` and ``info["invalid_action"] = True``. An id outside
    ``[0, vocab_size)`` raises ``ValueError``.

    ## Observation space
    ``Box(0, vocab_size - 1, (max_length,), int64)``: the tokens written so far,
    right-padded with PAD. A ``Box`` of ints rather than ``MultiDiscrete`` because
    Stable-Baselines3 one-hot encodes ``MultiDiscrete`` (max_length x vocab_size
    floats per observation); a Box lets a features extractor embed the ids.

    ## Rewards
    0.0 for every valid step; ``invalid_action_reward`` for a masked action. The
    discriminator reward wrapper replaces the valid-step rewards.

    ## Starting state
    All slots PAD (nothing written). Reset is deterministic: ``seed`` only seeds
    ``self.np_random`` for wrappers and agents that want it.

    ## Episode end
    ``terminated=True`` when EOS is written, when ``max_length`` tokens are written,
    or on a masked action. Reaching ``max_length`` is part of the task (the sequence
    is finished), not a time limit, so ``truncated`` is always False and no algorithm
    should bootstrap past the end of a sequence. At the end ``info["text"]`` is the
    decoded sequence. Calling ``step`` after the end without ``reset`` raises
    ``RuntimeError``.

    Args:
        vocab_size: token ids per action, the 3 special ids included; None: the tokenizer's.
        max_length: token slots per episode (EOS included).
        min_length: fewest symbols before EOS is valid.
        allow_eos: whether episodes may end early with EOS.
        invalid_action_reward: reward of a masked action (which ends the episode).
        tokenizer: an object with ``vocab_size`` and ``decode``, used for ``info["text"]`` and
            rendering; None: ``vocab_size`` must be given and texts are the ids.
        render_mode: None, ``"ansi"`` (``render()`` returns the text written so far) or
            ``"rgb_array"`` (an ``(H, W, 3)`` uint8 picture of it, its shape fixed by
            ``max_length`` and the tokenizer, never by the text; see ``seqgan_env.envs.render``).

    Raises:
        ValueError: an argument out of range (or neither ``vocab_size`` nor ``tokenizer``),
            naming the value and the fix.
    """

    metadata = {"render_modes": ["ansi", "rgb_array"], "render_fps": 4}

    def __init__(
        self,
        vocab_size: int | None = None,
        max_length: int = 12,
        min_length: int = 1,
        allow_eos: bool = True,
        invalid_action_reward: float = -1.0,
        tokenizer: Any = None,
        render_mode: str | None = None,
    ) -> None:
        self.config = EnvConfig.from_env_args(
            "TokenGenerationEnv", vocab_size, tokenizer, max_length, min_length, allow_eos,
            invalid_action_reward, render_mode, self.metadata["render_modes"],
        )
        self.render_mode = render_mode
        self.tokenizer = tokenizer
        self._decode: Callable[[np.ndarray], str] = tokenizer.decode if tokenizer is not None else default_decode
        v, t = self.config.vocab_size, self.config.max_length
        self.observation_space = spaces.Box(low=0, high=v - 1, shape=(t,), dtype=np.int64)
        self.action_space = spaces.Discrete(v)
        self._tokens = np.full(t, PAD_ID, dtype=np.int64)  # (T,)
        self._length = 0
        self._done = True
        # Characters per rendered frame: fixed by the widest text an episode can write.
        self._render_columns = text_columns(self._decode, v, t) if render_mode == "rgb_array" else 0

    # -- Gymnasium API -------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Start a new, empty sequence.

        Args:
            seed: seeds ``self.np_random`` (the reset itself is deterministic).
            options: must be None or empty.

        Returns:
            ``(obs, info)``: (max_length,) int64 all PAD, and an empty dict.

        Raises:
            ValueError: ``options`` given.
        """
        super().reset(seed=seed)
        if options:
            raise ValueError(
                f"reset options {sorted(options)} are not supported by TokenGenerationEnv: pass options=None."
            )
        self._tokens[:] = PAD_ID
        self._length = 0
        self._done = False
        return self._tokens.copy(), {}

    def step(self, action):
        """Write one token.

        Args:
            action: the token id, an int in ``[0, vocab_size)`` (shape () or (1,)).

        Returns:
            ``(obs, reward, terminated, truncated, info)``: reward 0.0 for a valid token,
            ``invalid_action_reward`` for a masked one (which ends the episode with
            ``info["invalid_action"]``); ``truncated`` is always False; at the end
            ``info["text"]`` is the sequence.

        Raises:
            ValueError: ``action`` is not one integer id in range.
            RuntimeError: the episode has ended and ``reset`` was not called.
        """
        token = check_action(action, self.config.vocab_size)
        if self._done:
            raise RuntimeError("step() was called after the episode ended: call reset() first.")
        info: dict[str, Any] = {}
        if not self.action_masks()[token]:
            reward, terminated = self.config.invalid_action_reward, True
            info["invalid_action"] = True
        else:
            self._tokens[self._length] = token
            self._length += 1
            reward = 0.0
            terminated = token == EOS_ID or self._length == self.config.max_length
        self._done = terminated
        if terminated:
            info["text"] = self.text
        return self._tokens.copy(), float(reward), bool(terminated), False, info

    def render(self):
        """The text so far (``"ansi"``), its (H, W, 3) uint8 picture (``"rgb_array"``), else None."""
        if self.render_mode == "ansi":
            return self.text
        if self.render_mode == "rgb_array":
            return text_frame(self.text, self._render_columns)
        return None

    # -- extras ---------------------------------------------------------------
    @property
    def length(self) -> int:
        """Number of tokens written in the current episode (EOS included)."""
        return self._length

    @property
    def text(self) -> str:
        """The decoded sequence written so far."""
        return self._decode(self._tokens[: self._length])

    def action_masks(self) -> np.ndarray:
        """Valid actions for the next step; the protocol MaskablePPO reads.

        Returns:
            (vocab_size,) bool: True where the token may be written now.
        """
        return self.config.valid_tokens(self._length).numpy()
