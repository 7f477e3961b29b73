"""Stable-Baselines3 integration: a VecEnv adapter, a token features extractor, a D-update callback.

This module and ``sb3_policy`` (the generator as an SB3 policy) are the only modules of ``seqgan_env`` that import ``stable_baselines3`` /
``sb3_contrib``; importing it without SB3 installed raises ``ImportError``.

* :class:`TokenGenerationVecEnv` -- SB3 ``VecEnv`` over the natively batched
  :class:`~seqgan_env.envs.vector_env.TokenGenerationVectorEnv` (optionally wrapped in
  :class:`~seqgan_env.rewards.wrappers.DiscriminatorRewardVector`), with SB3's same-step
  autoreset done by one batched partial reset per step.
* :class:`TokenEmbeddingExtractor` -- learned token embedding + GRU / causal
  transformer over the (B, T) token-id observation; :func:`sb3_policy_kwargs`.
* :class:`SB3DiscriminatorCallback` -- SB3 ``BaseCallback`` around the library-free
  :class:`seqgan_env.rewards.callbacks.DiscriminatorUpdateCallback`: the discriminator
  trains only between rollouts, and its weights are broadcast to every env copy.
* :func:`make_sb3_env` -- the training env for SB3 from ``make_vector_env`` /
  ``make_env``, as the native adapter, a ``DummyVecEnv`` or a ``SubprocVecEnv``.

Example::

    from stable_baselines3 import PPO
    from seqgan_env.integrations.sb3 import SB3DiscriminatorCallback, make_sb3_env, sb3_policy_kwargs

    env = make_sb3_env(16, backend="native", max_length=12)
    model = PPO("MlpPolicy", env, n_steps=64, policy_kwargs=sb3_policy_kwargs(embed_dim=32, features_dim=64))
    model.learn(50_000, callback=SB3DiscriminatorCallback())
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv
from stable_baselines3.common.vec_env.base_vec_env import (
    VecEnvIndices,
    VecEnvObs,
    VecEnvStepReturn,
)
from torch import nn

from seqgan_env.envs.spec import BOS_ID, PAD_ID, complete_rows
from seqgan_env.envs.vector_env import TokenGenerationVectorEnv
from seqgan_env.rewards.callbacks import DiscriminatorUpdateCallback, DiscriminatorUpdateConfig
from seqgan_env.rewards.registration import make_env, make_vector_env
from seqgan_env.utils.validation import check_int

__all__ = [
    "SB3DiscriminatorCallback",
    "TokenEmbeddingExtractor",
    "TokenGenerationVecEnv",
    "make_sb3_env",
    "sb3_policy_kwargs",
]


def _to_numpy(x: Any) -> np.ndarray:
    """A torch tensor (any device) or array-like as a numpy array (no copy when already numpy)."""
    if torch.is_tensor(x):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _item(x: Any) -> Any:
    """numpy scalars as Python scalars (what a single env puts in its info dict)."""
    return x.item() if isinstance(x, np.generic) else x


# ---------------------------------------------------------------------------------------------
# VecEnv adapter
# ---------------------------------------------------------------------------------------------


class TokenGenerationVecEnv(VecEnv):
    """SB3 ``VecEnv`` over a :class:`TokenGenerationVectorEnv`, optionally behind Gymnasium vector wrappers.

    ## Contract (SB3's VecEnv API)
    ``reset()`` -> obs (n, T) int64. ``step(actions)`` with actions (n,) token ids ->
    ``(obs (n, T) int64, rewards (n,) float32, dones (n,) bool, infos list[dict])``.
    Autoreset is SB3's *same-step* kind: when sub-env ``i`` ends, the returned
    ``obs[i]`` is already the reset observation (all PAD) and the final one is in
    ``infos[i]["terminal_observation"]``; its next action is the first token of a new
    episode. Every info has ``"TimeLimit.truncated"`` (always False: the episode's end
    at ``max_length`` is part of the task). A finished episode's info also carries
    what the inner env reported for it: ``"text"``, ``"disc_score"`` (with the
    discriminator reward wrapper), ``"invalid_action"``; and, with ``monitor=True``,
    ``"episode": {"r", "l", "t"}`` as SB3's ``Monitor`` writes it (return, length,
    seconds since the adapter was built), so SB3 logs ``rollout/ep_rew_mean``.

    ## How same-step autoreset is done
    The native env autoresets on the *next* step (NEXT_STEP). After each inner step
    the adapter resets the rows that just ended with one batched partial reset of the
    base env, ``env.unwrapped.reset(options={"reset_mask": done})``, so there is no
    Python loop over sub-envs and one numpy copy of observations, rewards and dones
    per step for the whole batch (two observation copies on steps where a row ended:
    the final and the reset batch). The reset goes to the *base* env, not through the
    wrappers: ``DiscriminatorRewardVector.reset`` resets the state of every row (its
    prefix logits and its KV cache), while the wrapper already treats the rows that
    ended on step t as starting a new episode on step t+1 (its ``_prev_done``): their
    cache columns are dropped and their next written token is scored at position 0.
    So the wrapper stays consistent, and rewards equal those of a ``DummyVecEnv`` of
    single ``DiscriminatorReward`` envs on the same actions (tested). A custom vector
    wrapper placed between this adapter and the base env must likewise treat rows
    that were done on the previous step as restarted, without a ``reset`` call.

    ## Shared objects and env_method / get_attr / set_attr
    All sub-envs live in one Python object chain and share one discriminator.
    ``env_method(name, ...)`` therefore calls the method ONCE on the outermost
    object of the chain (adapter's env, then its inner wrappers, then the base env)
    that defines it and returns that result once per requested index; e.g.
    ``env_method("update_discriminator", fake)`` trains the one discriminator once
    and ``env_method("load_discriminator_state", state_dict)`` loads it once. The
    exception is ``env_method("action_masks")``: a list with each requested sub-env's
    own (V,) bool mask (what sb3-contrib's ``get_action_masks`` stacks).
    ``get_attr`` likewise returns the shared value once per index; ``set_attr`` sets it
    on the object that defines it (the outermost wrapper if none does) and accepts
    only ``indices=None`` or all indices, since a shared value cannot differ per env.
    ``env_is_wrapped(cls)`` checks the Gymnasium vector-wrapper chain.

    ## Arguments
    ``env``: a ``TokenGenerationVectorEnv`` or a ``gym.vector.VectorWrapper`` chain
    around one (e.g. ``make_vector_env(...)``); ``monitor=True`` adds
    ``info["episode"]`` at episode ends (set False when wrapping in ``VecMonitor``).
    """

    def __init__(self, env: gym.vector.VectorEnv, monitor: bool = True) -> None:
        base = getattr(env, "unwrapped", None)
        if not isinstance(base, TokenGenerationVectorEnv):
            raise TypeError(
                f"TokenGenerationVecEnv needs a TokenGenerationVectorEnv (or a vector wrapper around one, e.g. "
                f"make_vector_env(...)); got {type(env).__name__} whose unwrapped env is {type(base).__name__}."
            )
        self.env = env
        self.base = base
        self.monitor = monitor
        super().__init__(base.num_envs, env.single_observation_space, env.single_action_space)
        n = self.num_envs
        self._actions: np.ndarray | None = None
        self._episode_returns = np.zeros(n, dtype=np.float64)  # (n,)
        self._episode_lengths = np.zeros(n, dtype=np.int64)  # (n,)
        self._t_start = time.time()
        self._all = list(range(n))

    # -- reset / step -----------------------------------------------------------------------
    def reset(self) -> VecEnvObs:
        """Reset every sub-env through the whole wrapper chain (wrapper state included); obs (n, T) int64.

        Uses the seed set by :meth:`seed` (once) and the options of :meth:`set_options`
        (only ``reset_mask`` is understood by the base env; it must be the same for all).
        """
        seed = self._seeds[0]
        options = self._options[0] or None
        if any(o != self._options[0] for o in self._options):
            raise ValueError(
                "set_options() gave different options per sub-env, but all sub-envs are reset by one call: "
                "pass one dict to set_options()."
            )
        obs, _ = self.env.reset(seed=seed, options=options)
        self._reset_seeds()
        self._reset_options()
        self.reset_infos = [{} for _ in range(self.num_envs)]
        self._episode_returns[:] = 0.0
        self._episode_lengths[:] = 0
        return _to_numpy(obs)

    def step_async(self, actions: np.ndarray) -> None:
        """Store ``actions`` ((n,) token ids; an (n, 1) array is flattened) for :meth:`step_wait`."""
        a = actions if torch.is_tensor(actions) else np.asarray(actions)
        if tuple(a.shape) != (self.num_envs,):
            if int(np.prod(a.shape)) != self.num_envs:
                raise ValueError(
                    f"actions must hold one token id per sub-env, shape ({self.num_envs},); got shape "
                    f"{tuple(a.shape)}."
                )
            a = a.reshape(self.num_envs)
        self._actions = a

    def step_wait(self) -> VecEnvStepReturn:
        """Step all sub-envs once; reset the finished ones in the same step (see the class docstring)."""
        if self._actions is None:
            raise RuntimeError("step_wait() was called without step_async(actions): call step(actions) instead.")
        actions, self._actions = self._actions, None
        obs, rewards, terminated, truncated, vinfos = self.env.step(actions)
        final_obs = _to_numpy(obs)  # (n, T) int64, this step's batch copy
        rewards_np = _to_numpy(rewards).astype(np.float32, copy=False)  # (n,)
        term = _to_numpy(terminated).astype(bool, copy=False)  # (n,)
        trunc = _to_numpy(truncated).astype(bool, copy=False)  # (n,)
        dones = term | trunc  # (n,) new array
        infos: list[dict[str, Any]] = [{"TimeLimit.truncated": False} for _ in range(self.num_envs)]
        if trunc.any():
            for i in np.flatnonzero(trunc & ~term):
                infos[i]["TimeLimit.truncated"] = True
        self._scatter_infos(vinfos, infos)
        self._episode_returns += rewards_np
        self._episode_lengths += 1
        if not dones.any():
            return final_obs, rewards_np, dones, infos
        # One batched partial reset of the base env: done rows start their next episode now.
        reset_obs, _ = self.base.reset(options={"reset_mask": dones})
        new_obs = _to_numpy(reset_obs)  # (n, T): reset rows all PAD, the others as after the step
        t = round(time.time() - self._t_start, 6)
        for i in np.flatnonzero(dones):
            infos[i]["terminal_observation"] = final_obs[i]  # (T,) view of this step's batch
            if self.monitor:
                infos[i]["episode"] = {
                    "r": round(float(self._episode_returns[i]), 6),
                    "l": int(self._episode_lengths[i]),
                    "t": t,
                }
        self._episode_returns[dones] = 0.0
        self._episode_lengths[dones] = 0
        return new_obs, rewards_np, dones, infos

    @staticmethod
    def _scatter_infos(vinfos: dict[str, Any], infos: list[dict[str, Any]]) -> None:
        """Gymnasium's vector info dict (``key`` + ``_key`` mask) -> SB3's per-env info dicts."""
        for key, value in vinfos.items():
            if key.startswith("_"):
                continue
            mask = vinfos.get("_" + key)
            if mask is None:
                continue  # not a per-env entry
            values = _to_numpy(value) if torch.is_tensor(value) else value
            for i in np.flatnonzero(_to_numpy(mask)):
                infos[i][key] = _item(values[i])

    # -- masks ----------------------------------------------------------------------------------
    def action_masks(self) -> np.ndarray:
        """Valid actions of every sub-env for the next step: (n_envs, vocab_size) bool numpy."""
        return _to_numpy(self.base.action_masks())

    # -- attribute access -------------------------------------------------------------------
    def _chain(self) -> list[Any]:
        """The Gymnasium objects from the outermost vector wrapper to the base env."""
        out, e = [], self.env
        while True:
            out.append(e)
            if not isinstance(e, gym.vector.VectorWrapper):
                return out
            e = e.env

    def _owner(self, name: str) -> Any:
        for obj in self._chain():
            if hasattr(obj, name):
                return obj
        raise AttributeError(
            f"no object in the env chain {[type(o).__name__ for o in self._chain()]} has attribute {name!r}."
        )

    def _indices(self, indices: VecEnvIndices) -> list[int]:
        idx = list(self._get_indices(indices))
        bad = [i for i in idx if not (isinstance(i, (int, np.integer)) and 0 <= i < self.num_envs)]
        if bad:
            raise ValueError(f"indices {bad} are out of range: sub-env indices are 0..{self.num_envs - 1}.")
        return idx

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        """The (shared) attribute ``attr_name`` of the env chain, once per requested index."""
        value = getattr(self._owner(attr_name), attr_name)
        return [value for _ in self._indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        """Set ``attr_name`` on the object of the chain that defines it (else the outermost one)."""
        idx = self._indices(indices)
        if sorted(set(idx)) != self._all:
            raise ValueError(
                f"set_attr({attr_name!r}) with indices={indices!r}: all sub-envs share one env object, so an "
                f"attribute cannot differ per sub-env; pass indices=None."
            )
        try:
            owner = self._owner(attr_name)
        except AttributeError:
            owner = self.env
        setattr(owner, attr_name, value)

    def env_method(self, method_name: str, *method_args, indices: VecEnvIndices = None, **method_kwargs) -> list[Any]:
        """Call ``method_name`` once on the env chain; the result is repeated once per requested index.

        ``"action_masks"`` is per sub-env: it returns the (V,) bool mask of each requested
        index. Everything else (``update_discriminator``, ``load_discriminator_state``,
        ``discriminator_state``, ...) acts on the shared object exactly once.
        """
        idx = self._indices(indices)
        if method_name == "action_masks" and not method_args and not method_kwargs:
            masks = self.action_masks()  # (n, V)
            return [masks[i] for i in idx]
        method = getattr(self._owner(method_name), method_name)
        if not callable(method):
            raise TypeError(f"{method_name!r} of the env chain is a {type(method).__name__}, not a method.")
        result = method(*method_args, **method_kwargs)
        return [result for _ in idx]

    def env_is_wrapped(self, wrapper_class: type, indices: VecEnvIndices = None) -> list[bool]:
        """Whether the Gymnasium vector-wrapper chain contains ``wrapper_class`` (once per index)."""
        wrapped = any(isinstance(obj, wrapper_class) for obj in self._chain()[:-1])
        return [wrapped for _ in self._indices(indices)]

    @property
    def reward_env(self) -> Any:
        """The object of the chain that has ``update_discriminator`` (the shared discriminator reward)."""
        return self._owner("update_discriminator")

    # -- misc ------------------------------------------------------------------------------------
    def seed(self, seed: int | None = None) -> Sequence[int | None]:
        """Seed the next :meth:`reset` (the base env only seeds its ``np_random``; resets are deterministic)."""
        return super().seed(seed)

    def get_images(self) -> Sequence[np.ndarray | None]:
        """One (H, W, 3) uint8 frame per sub-env if made with ``render_mode="rgb_array"``, else Nones."""
        if self.base.render_mode != "rgb_array":
            return [None for _ in range(self.num_envs)]
        return list(self.env.render())

    def close(self) -> None:
        self.env.close()


# ---------------------------------------------------------------------------------------------
# Features extractor
# ---------------------------------------------------------------------------------------------


class TokenEmbeddingExtractor(BaseFeaturesExtractor):
    """Features of a right-padded token-id observation: embedding + causal encoder, read at the last token.

    ## Contract
    Input: observations (B, T) of token ids (SB3 hands a Box observation over as
    float; ids are rounded to long). Rows are right-padded with PAD (0): the
    sequence is the non-PAD prefix, its length ``L = #(ids != PAD)`` (0..T). A BOS
    token is prepended, the (B, T+1) sequence is encoded causally and the encoder
    output at position ``L`` (the last written token, or BOS for an empty prefix) is
    the feature vector, so PAD never influences the features. Output: (B, features_dim).

    ## Arguments
    ``observation_space``: ``Box`` of shape (T,) whose ``high`` is ``vocab_size - 1``
    (the token env's); ``vocab_size`` overrides that. ``embed_dim=32``;
    ``features_dim=64``; ``encoder="gru"`` (a 1-layer GRU of width ``features_dim``)
    or ``"transformer"`` (``num_layers`` causal pre-LN layers of width ``embed_dim``
    with ``num_heads`` heads and learned positions, then Linear + ReLU to
    ``features_dim``).
    """

    def __init__(
        self,
        observation_space: spaces.Box,
        embed_dim: int = 32,
        features_dim: int = 64,
        encoder: str = "gru",
        num_layers: int = 1,
        num_heads: int = 2,
        vocab_size: int | None = None,
    ) -> None:
        if not isinstance(observation_space, spaces.Box) or len(observation_space.shape) != 1:
            raise ValueError(
                f"TokenEmbeddingExtractor needs a Box observation of shape (max_length,), got {observation_space}: "
                f"use it with the token-generation env."
            )
        for name, value in (("embed_dim", embed_dim), ("features_dim", features_dim), ("num_layers", num_layers),
                            ("num_heads", num_heads)):
            check_int(name, value)
        if encoder not in ("gru", "transformer"):
            raise ValueError(f"encoder={encoder!r} is unknown: use 'gru' or 'transformer'.")
        if encoder == "transformer" and embed_dim % num_heads:
            raise ValueError(f"embed_dim={embed_dim} must be divisible by num_heads={num_heads}.")
        super().__init__(observation_space, features_dim)
        v = int(vocab_size) if vocab_size is not None else int(np.max(observation_space.high)) + 1
        if v <= BOS_ID:
            raise ValueError(f"vocab_size={v} is too small: the token env has at least PAD, BOS, EOS and a symbol.")
        self.vocab_size = v
        self.max_length = int(observation_space.shape[0])
        self.encoder_type = encoder
        self.embedding = nn.Embedding(v, embed_dim)
        if encoder == "gru":
            self.encoder = nn.GRU(embed_dim, features_dim, num_layers=num_layers, batch_first=True)
            self.head: nn.Module = nn.Identity()
        else:
            self.positions = nn.Embedding(self.max_length + 1, embed_dim)
            layer = nn.TransformerEncoderLayer(
                embed_dim, num_heads, dim_feedforward=2 * embed_dim, dropout=0.0, batch_first=True, norm_first=True
            )
            self.encoder = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
            self.head = nn.Sequential(nn.LayerNorm(embed_dim), nn.Linear(embed_dim, features_dim), nn.ReLU())
            causal = torch.triu(torch.ones(self.max_length + 1, self.max_length + 1, dtype=torch.bool), diagonal=1)
            self.register_buffer("causal_mask", causal, persistent=False)  # (T+1, T+1) True = masked

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        ids = observations.round().long()  # (B, T)
        if ids.dim() != 2 or ids.shape[1] != self.max_length:
            raise ValueError(
                f"observations must have shape (B, {self.max_length}), got {tuple(observations.shape)}."
            )
        b = ids.shape[0]
        lengths = (ids != PAD_ID).sum(dim=1)  # (B,) right-padded: the non-PAD prefix
        bos = torch.full((b, 1), BOS_ID, dtype=torch.long, device=ids.device)
        seq = torch.cat([bos, ids], dim=1)  # (B, T+1)
        x = self.embedding(seq)  # (B, T+1, E)
        if self.encoder_type == "gru":
            h, _ = self.encoder(x)  # (B, T+1, F); causal, so h[:, L] ignores the PAD after L
        else:
            x = x + self.positions.weight.unsqueeze(0)  # (B, T+1, E)
            h = self.encoder(x, mask=self.causal_mask, is_causal=True)  # (B, T+1, E)
        last = h.gather(1, lengths.view(b, 1, 1).expand(b, 1, h.shape[2])).squeeze(1)  # (B, F) or (B, E)
        return self.head(last)  # (B, features_dim)


def sb3_policy_kwargs(
    embed_dim: int = 32,
    features_dim: int = 64,
    encoder: str = "gru",
    num_layers: int = 1,
    num_heads: int = 2,
    **policy_kwargs: Any,
) -> dict[str, Any]:
    """``policy_kwargs`` selecting :class:`TokenEmbeddingExtractor`; extra keys (e.g. ``net_arch``) pass through."""
    if "features_extractor_class" in policy_kwargs or "features_extractor_kwargs" in policy_kwargs:
        raise ValueError(
            "sb3_policy_kwargs sets features_extractor_class/kwargs itself: pass the extractor's arguments "
            "(embed_dim, features_dim, encoder, num_layers, num_heads) instead."
        )
    return {
        "features_extractor_class": TokenEmbeddingExtractor,
        "features_extractor_kwargs": dict(
            embed_dim=embed_dim, features_dim=features_dim, encoder=encoder, num_layers=num_layers,
            num_heads=num_heads,
        ),
        **policy_kwargs,
    }


# ---------------------------------------------------------------------------------------------
# Discriminator-update callback
# ---------------------------------------------------------------------------------------------


class _TrainerCopy:
    """A trainer-process copy of a worker's ``DiscriminatorTrainer`` (scorer, real data, batch size).

    Exposes ``update_discriminator(fake)`` / ``discriminator_state()`` like the reward wrappers.
    """

    def __init__(self, trainer: Any) -> None:
        self.trainer = trainer

    def update_discriminator(self, fake: torch.Tensor | None = None) -> dict[str, float]:
        return self.trainer.update(fake)

    def discriminator_state(self) -> dict[str, torch.Tensor]:
        return self.trainer.scorer.state_dict()


class SB3DiscriminatorCallback(BaseCallback):
    """SB3 callback that trains the discriminator between rollouts and syncs every env's copy.

    ## Schedule
    Each ``_on_rollout_end`` counts one generator update with the core
    :class:`seqgan_env.rewards.callbacks.DiscriminatorUpdateCallback`; every ``config.every``
    of them it runs a D phase (``config.d_steps`` updates of ``config.batch_size``
    fake sequences each). D therefore never changes while a rollout is collected.
    After a phase the metrics (``discriminator/loss``, ``discriminator/acc_real``,
    ``discriminator/acc_fake``, ``discriminator/updates``, ...) go to ``self.logger``.

    ## Which discriminator trains, and the broadcast
    ``reward_env`` is the trainer-side object with ``update_discriminator(fake)`` and
    ``discriminator_state()``. When None it is found in ``_init_callback``:

    * :class:`TokenGenerationVecEnv` (behind any ``VecEnvWrapper``): its reward wrapper.
      All sub-envs share it, so there is nothing to broadcast.
    * ``DummyVecEnv``: sub-env 0's reward wrapper; after a phase its weights are
      loaded into sub-envs 1..n-1 with ``env_method("load_discriminator_state", sd)``.
    * any other VecEnv (``SubprocVecEnv``): a trainer-process copy of worker 0's
      discriminator trainer (fetched once with ``get_attr("trainer", [0])``); after a
      phase its weights are loaded into every worker.

    An explicit ``reward_env`` is broadcast to every env (unless it is the adapter's
    own shared wrapper). All env copies must start from the same discriminator (as
    :func:`make_sb3_env` builds them: one seed), since only the trained weights travel.

    ## Fake sequences
    ``sample_fake(n)`` -> (n, T) long generated sequences, if given. Otherwise the
    newest finished sequences seen in rollouts: ``_on_step`` keeps the
    ``terminal_observation`` of every episode that ended validly (not with a masked
    action, at least one token), up to ``fake_buffer_size``; with fewer than ``n``
    kept, rows are repeated. ValueError if none was seen before a phase.

    ## Attributes
    ``core`` (the library-free schedule), ``num_generator_updates``,
    ``num_discriminator_updates``, ``last_metrics``, ``reward_env``.
    """

    def __init__(
        self,
        config: DiscriminatorUpdateConfig | None = None,
        reward_env: Any = None,
        sample_fake: Callable[[int], torch.Tensor] | None = None,
        fake_buffer_size: int = 1024,
        seed: int = 0,
        verbose: int = 0,
    ) -> None:
        super().__init__(verbose)
        check_int("fake_buffer_size", fake_buffer_size)
        if sample_fake is not None and not callable(sample_fake):
            raise TypeError("sample_fake must be a callable n -> (n, T) tensor of generated token ids, or None.")
        if reward_env is not None and not callable(getattr(reward_env, "update_discriminator", None)):
            raise TypeError(
                f"reward_env ({type(reward_env).__name__}) has no update_discriminator(fake): pass a "
                f"DiscriminatorReward / DiscriminatorRewardVector, or None to find it in the training env."
            )
        self.config = config if config is not None else DiscriminatorUpdateConfig()
        self.reward_env = reward_env
        self.sample_fake = sample_fake
        self.fakes: deque[np.ndarray] = deque(maxlen=fake_buffer_size)  # each (T,)
        self._rng = np.random.default_rng(seed)
        self._broadcast: list[int] | None = None  # env indices to load the trained weights into
        self.core: DiscriminatorUpdateCallback | None = None

    # -- setup ---------------------------------------------------------------------------------
    def _init_callback(self) -> None:
        env = self.training_env
        base = env.unwrapped
        n = env.num_envs
        if self.reward_env is not None:
            own = isinstance(base, TokenGenerationVecEnv) and self.reward_env is base.reward_env
            self._broadcast = None if own else list(range(n))
        elif isinstance(base, TokenGenerationVecEnv):
            self.reward_env, self._broadcast = base.reward_env, None
        elif isinstance(base, DummyVecEnv):
            self.reward_env = base.envs[0].get_wrapper_attr("update_discriminator").__self__
            self._broadcast = list(range(1, n)) or None
        else:
            try:
                trainer = env.get_attr("trainer", indices=[0])[0]
            except AttributeError as err:
                raise TypeError(
                    f"cannot find a discriminator in {type(base).__name__}: its envs have no 'trainer' (wrap them in "
                    f"DiscriminatorReward) -- or pass reward_env= (the trainer-side discriminator reward)."
                ) from err
            self.reward_env, self._broadcast = _TrainerCopy(trainer), list(range(n))
        if self.core is None:
            self.core = DiscriminatorUpdateCallback(
                self.reward_env, self.sample_fake or self._sample_from_rollouts, self.config
            )
        else:  # a second learn() call: keep the counters
            self.core.reward_env = self.reward_env

    # -- SB3 hooks -------------------------------------------------------------------------------
    def _on_step(self) -> bool:
        if self.sample_fake is None:
            for info in self.locals.get("infos", ()):
                final = info.get("terminal_observation")
                if final is None:
                    continue
                final = np.asarray(final, dtype=np.int64)  # (T,)
                if bool(complete_rows(torch.from_numpy(final).unsqueeze(0))[0]):  # the shape real rows have
                    self.fakes.append(final.copy())
        return True

    def _on_rollout_end(self) -> None:
        metrics = self.core.on_generator_update()
        if metrics is None:
            return
        if self._broadcast:
            # The state dict is a dict of CPU tensors; for a SubprocVecEnv, SB3 pickles
            # env_method's arguments through its worker pipes (in-memory IPC, no files).
            state = self.reward_env.discriminator_state()
            self.training_env.env_method("load_discriminator_state", state, indices=self._broadcast)
        for key, value in metrics.items():
            self.logger.record(key, value)

    # -- fakes ------------------------------------------------------------------------------------
    def _sample_from_rollouts(self, n: int) -> torch.Tensor:
        """(n, T) long: the newest finished sequences seen in rollouts (repeated if fewer than n)."""
        if not self.fakes:
            raise ValueError(
                "no validly finished generated sequence was seen in the rollouts before a discriminator update: "
                "collect longer rollouts (n_steps >= max_length) or pass sample_fake=."
            )
        kept = list(self.fakes)[-n:]
        if len(kept) < n:
            extra = self._rng.integers(len(kept), size=n - len(kept))
            kept = kept + [kept[i] for i in extra]
        return torch.from_numpy(np.stack(kept))  # (n, T)

    # -- counters ---------------------------------------------------------------------------------
    @property
    def num_generator_updates(self) -> int:
        return 0 if self.core is None else self.core.num_generator_updates

    @property
    def num_discriminator_updates(self) -> int:
        return 0 if self.core is None else self.core.num_discriminator_updates

    @property
    def last_metrics(self) -> dict[str, float] | None:
        return None if self.core is None else self.core.last_metrics


# ---------------------------------------------------------------------------------------------
# Factory
# ---------------------------------------------------------------------------------------------


def _monitored_env(seed: int, make_kwargs: dict[str, Any]) -> gym.Env:
    return Monitor(make_env(seed=seed, **make_kwargs))


def make_sb3_env(
    n_envs: int,
    backend: str = "native",
    seed: int = 0,
    monitor: bool = True,
    start_method: str | None = None,
    **make_kwargs: Any,
) -> VecEnv:
    """The SB3 training env: ``n_envs`` discriminator-paid token-generation episodes.

    ``backend="native"``: :class:`TokenGenerationVecEnv` over ``make_vector_env(n_envs,
    seed=seed, **make_kwargs)`` (one shared discriminator, batched; episode stats in
    ``info["episode"]`` when ``monitor``). ``"dummy"`` / ``"subproc"``: SB3's
    ``DummyVecEnv`` / ``SubprocVecEnv`` (``start_method`` passed on) of
    ``Monitor(make_env(seed=seed, **make_kwargs))`` -- every copy built with the same
    seed, so all start with identical discriminators and data (keep them in sync
    with :class:`SB3DiscriminatorCallback`). ``make_kwargs`` are the factories'
    arguments (``max_length``, ``reward_mode``, ``discriminator_model``, ...).
    """
    check_int("n_envs", n_envs)
    if backend == "native":
        if start_method is not None:
            raise ValueError(f"start_method={start_method!r} applies only to backend='subproc'.")
        return TokenGenerationVecEnv(make_vector_env(n_envs, seed=seed, **make_kwargs), monitor=monitor)
    if backend not in ("dummy", "subproc"):
        raise ValueError(f"backend={backend!r} is unknown: use 'native', 'dummy' or 'subproc'.")
    if "device" in make_kwargs or "return_torch" in make_kwargs or "decode_text" in make_kwargs:
        raise ValueError("device / return_torch / decode_text are options of backend='native' only.")
    fn = partial(_monitored_env, seed, dict(make_kwargs)) if monitor else partial(make_env, seed=seed, **make_kwargs)
    fns: list[Callable[[], gym.Env]] = [fn for _ in range(n_envs)]
    if backend == "dummy":
        if start_method is not None:
            raise ValueError(f"start_method={start_method!r} applies only to backend='subproc'.")
        return DummyVecEnv(fns)
    return SubprocVecEnv(fns, start_method=start_method)

