"""torchrl integration: the env and the natively batched vector env as torchrl environments.

* :func:`make_torchrl_env` -- ``make_env`` / ``make_vector_env`` behind
  ``torchrl.envs.GymWrapper`` with token-id actions (``categorical_action_encoding=True``:
  ``td["action"]`` is a token id, not a one-hot vector of the vocabulary) and, with
  ``action_mask=True``, ``td["action_mask"]`` plus torchrl's ``ActionMask`` transform, so
  ``env.rand_action`` and masked policies draw only valid tokens.
* :class:`DisabledAutoresetVector` -- the Gymnasium vector wrapper that lets torchrl drive
  the native vector env. torchrl (0.14, Gymnasium >= 1.1) accepts only vector envs whose
  autoreset mode is ``DISABLED`` (it resets finished sub-envs itself, with
  ``reset(options={"reset_mask": done})``) or ``SAME_STEP``; the native env is
  ``NEXT_STEP``, so it raises without this wrapper.
* :class:`ActionMaskInfo` -- the single env's ``action_masks()`` in ``info["action_mask"]``.

The two wrappers are plain Gymnasium; only :func:`make_torchrl_env` imports ``torchrl``,
lazily (install the extra with ``pip install 'seqgan-env[torchrl]'``). The single env needs
no adapter: ``GymWrapper(gymnasium.make("seqgan_env:SeqGAN-v1"), categorical_action_encoding=True)``
works as is.

Example::

    from torchrl.envs.utils import check_env_specs
    from seqgan_env.integrations.torchrl import make_torchrl_env

    env = make_torchrl_env(num_envs=16, max_length=12)   # batch_size (16,)
    check_env_specs(env)
    rollout = env.rollout(12, break_when_any_done=False)  # rollout["next", "reward"]: (16, 12, 1)
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode

from seqgan_env.envs.vector_env import TokenGenerationVectorEnv
from seqgan_env.rewards.registration import make_env, make_vector_env

__all__ = ["ActionMaskInfo", "DisabledAutoresetVector", "make_torchrl_env"]

INSTALL_HINT = "pip install 'seqgan-env[torchrl]'"
MASK_KEY = "action_mask"


def _numpy(x: Any) -> np.ndarray:
    return x.detach().cpu().numpy() if torch.is_tensor(x) else np.asarray(x)


class ActionMaskInfo(gym.Wrapper):
    """Adds ``info["action_mask"]``, the (vocab_size,) bool valid set of the next step, to reset and step.

    torchrl reads it with an info-dict reader; the mask is ``env.action_masks()`` (the
    episode spec's rule), so it is the same one MaskablePPO gets.
    """

    def _with_mask(self, info: dict) -> dict:
        info = dict(info)
        info[MASK_KEY] = _numpy(self.env.get_wrapper_attr("action_masks")()).astype(bool)
        return info

    def reset(self, *, seed=None, options=None):
        obs, info = self.env.reset(seed=seed, options=options)
        return obs, self._with_mask(info)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, reward, terminated, truncated, self._with_mask(info)


class DisabledAutoresetVector(gym.vector.VectorWrapper):
    """The native vector env with Gymnasium's ``AutoresetMode.DISABLED``: finished sub-envs wait for a reset.

    ## Contract
    ``step`` passes through; a sub-env that ended must be reset with
    ``reset(options={"reset_mask": mask})`` before it is stepped again (stepping it raises
    ``RuntimeError`` naming it, where the native env would silently autoreset it and drop
    the action). ``reset`` without a mask resets every sub-env through the whole wrapper
    chain. ``info["action_mask"]`` ((num_envs, vocab_size) bool, with ``"_action_mask"``
    all True) is added on reset and step when ``action_mask=True``.

    ## How a partial reset is done
    A mask of rows that all ended on the last step goes to the *base* env only (one
    batched partial reset, as the SB3 adapter does): the reward wrapper already treats
    the rows that ended on step t as restarted on step t+1, and keeps its prefix-score
    cache for the others. Any other mask goes through the wrapper chain's ``reset``,
    which resets those rows' reward state too (and rescores every row on the next step).
    So rewards equal those of single ``DiscriminatorReward`` envs on the same actions
    (tested).
    """

    metadata = {**TokenGenerationVectorEnv.metadata, "autoreset_mode": AutoresetMode.DISABLED}

    def __init__(self, env: gym.vector.VectorEnv, action_mask: bool = True) -> None:
        base = getattr(env, "unwrapped", None)
        if not isinstance(base, TokenGenerationVectorEnv):
            raise TypeError(f"DisabledAutoresetVector needs a TokenGenerationVectorEnv (or a vector wrapper around one, "
                            f"e.g. make_vector_env(...)); got {type(env).__name__} whose unwrapped env is "
                            f"{type(base).__name__}.")
        super().__init__(env)
        self.metadata = {**env.metadata, "autoreset_mode": AutoresetMode.DISABLED}
        self.autoreset_mode = AutoresetMode.DISABLED  # what torchrl reads
        self.base = base
        self.action_mask = action_mask
        self._ended = np.zeros(self.num_envs, dtype=bool)  # (n,) ended and not reset since

    def _with_mask(self, info: dict) -> dict:
        if not self.action_mask:
            return info
        info = dict(info)
        info[MASK_KEY] = _numpy(self.base.action_masks()).astype(bool)  # (n, V)
        info["_" + MASK_KEY] = np.ones(self.num_envs, dtype=bool)
        return info

    def reset(self, *, seed=None, options=None):
        options = dict(options or {})
        mask = options.pop("reset_mask", None)
        if mask is not None:
            mask = _numpy(mask)
            if mask.shape != (self.num_envs,) or mask.dtype != bool:
                raise ValueError(f"options['reset_mask'] must be a bool array of shape ({self.num_envs},), got dtype "
                                 f"{mask.dtype} and shape {mask.shape}.")
        if mask is None or mask.all():
            obs, info = self.env.reset(seed=seed, options=options or None)
            self._ended[:] = False
        elif seed is None and not options and not (mask & ~self._ended).any():
            obs, info = self.base.reset(options={"reset_mask": mask})  # only rows that just ended: the base alone
            self._ended &= ~mask
        else:
            obs, info = self.env.reset(seed=seed, options={**options, "reset_mask": mask})
            self._ended &= ~mask
        return obs, self._with_mask(info)

    def step(self, actions):
        if self._ended.any():
            raise RuntimeError(f"sub-envs {np.flatnonzero(self._ended).tolist()} ended and were not reset: with "
                               f"autoreset DISABLED, reset them first with reset(options={{'reset_mask': mask}}).")
        obs, rewards, terminated, truncated, info = self.env.step(actions)
        self._ended = _numpy(terminated).astype(bool) | _numpy(truncated).astype(bool)
        return obs, rewards, terminated, truncated, self._with_mask(info)

    def action_masks(self):
        return self.base.action_masks()


def make_torchrl_env(num_envs: int | None = None, *, action_mask: bool = True, env: Any = None,
                     **env_kwargs: Any):
    """A torchrl env over the SeqGAN env: one env (``num_envs=None``) or the native vector env.

    ``env_kwargs`` go to ``make_env`` / ``make_vector_env`` (``max_length``, ``reward_mode``,
    ``seed``, ...); or pass a ready Gymnasium ``env`` (single, or vector around a
    ``TokenGenerationVectorEnv``). Actions are token ids (``Categorical(vocab_size)``);
    ``action_mask=True`` adds ``td["action_mask"]`` and torchrl's ``ActionMask`` transform
    (the result is then a ``TransformedEnv``). Batch size: ``()`` or ``(num_envs,)``.
    """
    try:
        from torchrl.data import Binary
        from torchrl.envs import ActionMask, GymWrapper, TransformedEnv, default_info_dict_reader
    except ImportError as e:
        raise ImportError(f"make_torchrl_env needs torchrl ({e}); install the extra: {INSTALL_HINT}") from e
    if env is not None and (num_envs is not None or env_kwargs):
        raise ValueError("pass either env=<a Gymnasium env> or num_envs/env keyword arguments, not both.")
    if env is None:
        env = make_env(**env_kwargs) if num_envs is None else make_vector_env(num_envs, **env_kwargs)
    if isinstance(env, gym.vector.VectorEnv):
        n = env.num_envs
        gym_env = DisabledAutoresetVector(env, action_mask=action_mask)
        mask_shape: tuple[int, ...] = (n, env.single_action_space.n)
    else:
        gym_env = ActionMaskInfo(env) if action_mask else env
        mask_shape = (env.action_space.n,)
    out = GymWrapper(gym_env, categorical_action_encoding=True)
    if not action_mask:
        return out
    out.set_info_dict_reader(default_info_dict_reader([MASK_KEY], spec=[Binary(shape=mask_shape, dtype=torch.bool)]))
    return TransformedEnv(out, ActionMask())
