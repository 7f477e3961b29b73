"""TokenGenerationVectorEnv: many token-generation episodes stepped with tensor ops."""

from __future__ import annotations

from typing import Any, Callable

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space

from seqgan_env.envs.env import default_decode
from seqgan_env.envs.render import text_columns, text_frame
from seqgan_env.envs.spec import EOS_ID, PAD_ID, EnvConfig
from seqgan_env.utils.validation import check_int


class TokenGenerationVectorEnv(gym.vector.VectorEnv):
    """``num_envs`` copies of :class:`TokenGenerationEnv` in one set of torch tensors.

    ## Semantics
    Each sub-environment follows the single env's spec exactly (same spaces per
    sub-env, same masks, same rewards and termination), so for the same actions it
    yields the same observations, rewards and flags as
    ``gymnasium.vector.SyncVectorEnv`` over ``TokenGenerationEnv``.
    Autoreset is ``AutoresetMode.NEXT_STEP`` (declared in ``metadata``): the step
    after a sub-env terminates ignores its action and returns the reset observation
    (all PAD) with reward 0 and both flags False.

    ## Speed
    All sub-environments are stepped with tensor ops on ``device``; there is no
    Python loop over sub-environments. The only per-env Python work is decoding
    ``info["text"]`` of the sub-envs that just finished (``decode_text=False``
    skips it).

    ## Input and output
    Actions: a ``(num_envs,)`` array or tensor of token ids. Outputs are numpy by
    default; ``return_torch=True`` keeps observations, rewards and flags as torch
    tensors on ``device`` (for an agent that samples on a GPU). Out-of-range or
    wrongly shaped actions raise ``ValueError``; masked actions end the sub-episode
    with ``invalid_action_reward`` and ``info["invalid_action"]``.

    Args:
        num_envs: sub-envs (>= 1).
        vocab_size: token ids per action, the 3 special ids included; None: the tokenizer's.
        max_length: token slots per episode (EOS included).
        min_length: fewest symbols before EOS is valid.
        allow_eos: whether episodes may end early with EOS.
        invalid_action_reward: reward of a masked action (which ends that sub-episode).
        tokenizer: an object with ``vocab_size`` and ``decode``; None: ``vocab_size`` must be given.
        device: where the token tensors live (``"cpu"`` or a CUDA device).
        return_torch: return observations, rewards and flags as tensors on ``device``.
        decode_text: put each finished row's text in ``info["text"]``.
        render_mode: None, ``"ansi"`` or ``"rgb_array"``: as Gymnasium's vector envs do,
            ``render()`` returns a tuple with one frame per sub-env, its text (``"ansi"``) or
            the single env's ``(H, W, 3)`` uint8 picture of it (``"rgb_array"``).

    Raises:
        ValueError: an argument out of range (or neither ``vocab_size`` nor ``tokenizer``),
            naming the value and the fix.
    """

    metadata = {
        "render_modes": ["ansi", "rgb_array"],
        "render_fps": 4,
        "autoreset_mode": AutoresetMode.NEXT_STEP,
    }

    def __init__(
        self,
        num_envs: int,
        vocab_size: int | None = None,
        max_length: int = 12,
        min_length: int = 1,
        allow_eos: bool = True,
        invalid_action_reward: float = -1.0,
        tokenizer: Any = None,
        device: str | torch.device = "cpu",
        return_torch: bool = False,
        decode_text: bool = True,
        render_mode: str | None = None,
    ) -> None:
        check_int("num_envs", num_envs, 1)
        self.config = EnvConfig.from_env_args(
            "TokenGenerationVectorEnv", vocab_size, tokenizer, max_length, min_length, allow_eos,
            invalid_action_reward, render_mode, self.metadata["render_modes"],
        )
        self.render_mode = render_mode
        self.num_envs = num_envs
        self.device = torch.device(device)
        self.return_torch = return_torch
        self.decode_text = decode_text
        self.tokenizer = tokenizer
        self._decode: Callable[[np.ndarray], str] = tokenizer.decode if tokenizer is not None else default_decode

        v, t = self.config.vocab_size, self.config.max_length
        self.single_observation_space = spaces.Box(low=0, high=v - 1, shape=(t,), dtype=np.int64)
        self.single_action_space = spaces.Discrete(v)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)

        b = num_envs
        self.tokens = torch.full((b, t), PAD_ID, dtype=torch.long, device=self.device)  # (B, T)
        self.lengths = torch.zeros(b, dtype=torch.long, device=self.device)  # (B,)
        self.autoreset = torch.zeros(b, dtype=torch.bool, device=self.device)  # (B,) reset on next step
        self.last_written = torch.zeros(b, dtype=torch.bool, device=self.device)  # (B,) wrote a token last step
        self.last_invalid = torch.zeros(b, dtype=torch.bool, device=self.device)  # (B,) masked action last step
        self._arange_b = torch.arange(b, device=self.device)
        self._rule: tuple[EnvConfig, torch.Tensor] | None = None  # (config, its token-rule table)
        self._started = False
        self._render_columns = text_columns(self._decode, v, t) if render_mode == "rgb_array" else 0

    # -- Gymnasium API -------------------------------------------------------
    def reset(self, *, seed: int | list[int] | None = None, options: dict | None = None):
        """Reset all sub-envs, or those in ``options["reset_mask"]`` ((num_envs,) bool).

        Args:
            seed: an int, or a list of ``num_envs`` ints (Gymnasium's vector convention, one per
                sub-env; the env's one RNG is seeded from the first).
            options: None, or ``{"reset_mask": mask}`` with ``mask`` (num_envs,) bool: the rows to restart.

        Returns:
            ``(obs, info)``: (num_envs, max_length) int64, PAD in the restarted rows; an empty dict.

        Raises:
            ValueError: an unknown option, a mask of the wrong shape or dtype, or a seed list of
                the wrong length.
            TypeError: a seed that is neither an int nor a list of ints.
        """
        if seed is not None:
            self._np_random, self._np_random_seed = gym.utils.seeding.np_random(self._check_seed(seed))
        options = dict(options or {})
        mask_in = options.pop("reset_mask", None)
        if options:
            raise ValueError(
                f"reset options {sorted(options)} are not supported: only 'reset_mask' "
                f"((num_envs,) bool) is; pass options=None to reset every sub-env."
            )
        if mask_in is None:
            mask = torch.ones(self.num_envs, dtype=torch.bool, device=self.device)
        else:
            mask = torch.as_tensor(np.asarray(mask_in) if not torch.is_tensor(mask_in) else mask_in, device=self.device)
            if mask.shape != (self.num_envs,) or mask.dtype != torch.bool:
                raise ValueError(
                    f"options['reset_mask'] must be a bool array of shape ({self.num_envs},), "
                    f"got dtype {mask.dtype} and shape {tuple(mask.shape)}."
                )
        self.tokens[mask] = PAD_ID
        self.lengths[mask] = 0
        self.autoreset[mask] = False
        self.last_written[mask] = False
        self.last_invalid[mask] = False
        self._started = True
        return self._out(self.tokens.clone()), {}

    def step(self, actions):
        """Write one token in every sub-env (a sub-env that ended last step restarts instead).

        Args:
            actions: (num_envs,) integer token ids, a numpy array or a tensor.

        Returns:
            ``(obs, rewards, terminated, truncated, infos)``, batched; numpy unless
            ``return_torch``. ``infos`` has ``text`` and ``invalid_action`` with their
            ``_text`` / ``_invalid_action`` masks.

        Raises:
            ValueError: actions of the wrong shape or dtype, or an id outside the action space.
            RuntimeError: ``step`` before ``reset``.
        """
        if not self._started:
            raise RuntimeError("step() was called before reset(): call reset() first.")
        a = self._check_actions(actions)  # (B,)
        t_max = self.config.max_length
        active = ~self.autoreset  # (B,) sub-envs that take this action
        pos = self.lengths  # (B,) slot the token goes to
        valid = self._rule_table()[pos, a]  # (B,) the spec's token rule
        write = active & valid
        slot = pos.clamp(max=t_max - 1).unsqueeze(1)  # (B, 1)
        current = self.tokens.gather(1, slot).squeeze(1)  # (B,)
        self.tokens.scatter_(1, slot, torch.where(write, a, current).unsqueeze(1))
        self.lengths = self.lengths + write.long()
        invalid = active & ~valid
        terminated = invalid | (write & ((a == EOS_ID) | (self.lengths == t_max)))  # (B,)
        rewards = torch.zeros(self.num_envs, dtype=torch.float32, device=self.device).masked_fill_(
            invalid, self.config.invalid_action_reward
        )  # (B,)
        # Sub-envs that ended last step start their new episode now (NEXT_STEP autoreset).
        self.tokens.masked_fill_(self.autoreset.unsqueeze(1), PAD_ID)
        self.lengths = torch.where(self.autoreset, torch.zeros_like(self.lengths), self.lengths)
        self.autoreset = terminated
        self.last_written = write
        self.last_invalid = invalid
        truncated = torch.zeros_like(terminated)
        infos = self._infos(terminated, invalid)
        return self._out(self.tokens.clone()), self._out(rewards), self._out(terminated), self._out(truncated), infos

    def render(self):
        """One frame per sub-env (a tuple, as Gymnasium's vector envs): texts or (H, W, 3) uint8 pictures."""
        if self.render_mode == "ansi":
            return tuple(self.texts())
        if self.render_mode == "rgb_array":
            return tuple(text_frame(text, self._render_columns) for text in self.texts())
        return None

    # -- extras ---------------------------------------------------------------
    def action_masks(self) -> np.ndarray | torch.Tensor:
        """Valid actions of every sub-env for the next step.

        Returns:
            (num_envs, vocab_size) bool (a tensor when ``return_torch``).
        """
        # A sub-env about to autoreset starts from length 0 on its next step.
        next_len = torch.where(self.autoreset, torch.zeros_like(self.lengths), self.lengths)  # (B,)
        return self._out(self._rule_table().index_select(0, next_len))  # (B, V) a fresh tensor

    def _rule_table(self) -> torch.Tensor:
        """(max_length + 1, V) bool: the spec's token rule after 0..max_length symbols.

        Built from ``config.valid_tokens`` once per config, so a step looks the rule up in one
        indexing op instead of evaluating it.
        """
        if self._rule is None or self._rule[0] is not self.config:
            lengths = torch.arange(self.config.max_length + 1, device=self.device)  # (T + 1,)
            self._rule = (self.config, self.config.valid_tokens(lengths))  # (T + 1, V)
        return self._rule[1]

    def texts(self) -> list[str]:
        """Decoded text of every sub-env's current sequence."""
        rows = self.tokens.cpu().numpy()
        return [self._decode(rows[i, : int(n)]) for i, n in enumerate(self.lengths.cpu().tolist())]

    def decode_rows(self, rows: np.ndarray) -> list[str]:
        """Texts of (K, T) token rows (right-padded, EOS ends a row), as ``info["text"]`` gives them."""
        if hasattr(self.tokenizer, "decode_batch"):
            return list(self.tokenizer.decode_batch(rows))
        return [self._decode(r) for r in rows]

    def _check_seed(self, seed) -> int:
        """The int that seeds the env's RNG: ``seed`` itself, or the first of a list of ``num_envs`` ints."""
        def is_int(x) -> bool:
            return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))

        if is_int(seed):
            return int(seed)
        if isinstance(seed, (list, tuple, np.ndarray)):
            seeds = list(np.asarray(seed).reshape(-1)) if isinstance(seed, np.ndarray) else list(seed)
            bad = [x for x in seeds if not is_int(x)]
            if bad:
                raise TypeError(f"reset(seed=...): seed {bad[0]!r} is a {type(bad[0]).__name__}, not an int; "
                                f"pass an int or a list of {self.num_envs} ints.")
            if len(seeds) != self.num_envs:
                raise ValueError(f"reset(seed={list(seed)!r}) has {len(seeds)} seed(s) for {self.num_envs} envs: a "
                                 f"list of seeds must have one per env; pass {self.num_envs} ints, or one int.")
            return int(seeds[0])
        raise TypeError(f"reset(seed={seed!r}): seed must be an int or a list of {self.num_envs} ints, got "
                        f"{type(seed).__name__}.")

    def _check_actions(self, actions) -> torch.Tensor:
        if torch.is_tensor(actions):
            a = actions
        else:
            arr = np.asarray(actions)
            if not np.issubdtype(arr.dtype, np.integer):
                raise ValueError(
                    f"actions must be integer token ids of shape ({self.num_envs},), got dtype {arr.dtype}."
                )
            a = torch.from_numpy(arr.astype(np.int64, copy=False))
        if a.shape != (self.num_envs,) or a.dtype.is_floating_point or a.dtype == torch.bool:
            raise ValueError(
                f"actions must be integer token ids of shape ({self.num_envs},), "
                f"got dtype {a.dtype} and shape {tuple(a.shape)}."
            )
        a = a.to(self.device, torch.long)
        low, high = torch.aminmax(a)  # one reduction: the range check of every action
        if int(low) < 0 or int(high) >= self.config.vocab_size:
            bad = (a < 0) | (a >= self.config.vocab_size)
            i = int(bad.nonzero()[0, 0])
            raise ValueError(
                f"actions[{i}]={int(a[i])} is outside Discrete({self.config.vocab_size}): "
                f"pass token ids in [0, {self.config.vocab_size - 1}]."
            )
        return a

    def _infos(self, terminated: torch.Tensor, invalid: torch.Tensor) -> dict:
        """Gymnasium vector info dict: ``text`` / ``invalid_action`` with their ``_key`` masks."""
        infos: dict[str, Any] = {}
        done = terminated.cpu().numpy()
        if not done.any():
            return infos
        if self.decode_text:
            text = np.empty(self.num_envs, dtype=object)
            idx = np.flatnonzero(done)  # only the sub-envs that just finished
            text[idx] = self.decode_rows(self.tokens[torch.from_numpy(idx).to(self.device)].cpu().numpy())
            infos["text"], infos["_text"] = text, done.copy()
        inv = invalid.cpu().numpy()
        if inv.any():
            infos["invalid_action"], infos["_invalid_action"] = inv.copy(), inv.copy()
        return infos

    def _out(self, x: torch.Tensor):
        return x if self.return_torch else x.cpu().numpy()
