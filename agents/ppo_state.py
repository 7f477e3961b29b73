"""What a PPO run's checkpoint holds beyond the weights: SB3's counters and last observations, the
native vector env mid-episode, the discriminator's schedule, and every random stream.

A checkpoint is taken between two generator updates (after one update's ``train()``, before the
next rollout starts), so SB3's rollout buffer is empty and not saved. Everything is tensors
(safetensors) and JSON; SB3's own pickle-based ``save`` is never used. The reward wrapper's KV
cache is not saved: taking a checkpoint makes the env rescore its running prefixes from the tokens
(as after a D phase), in the run that goes on and in the one resumed from it alike, so the two
continue identically.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

import numpy as np
import torch

from seqgan_env.runs.rundir import rng_state, set_rng_state

__all__ = ["capture", "restore"]

# the native env's per-row tensors (TokenGenerationVectorEnv) and the reward wrapper's (DiscriminatorRewardVector)
_BASE = ("tokens", "lengths", "autoreset", "last_written", "last_invalid")
_WRAPPER = ("_logits", "_prev_done")


def _finite(values: dict[str, Any]) -> dict[str, float]:
    """JSON-able finite numbers of ``values`` (a NaN is read back as missing, which its readers treat alike)."""
    out = {}
    for key, value in values.items():
        try:
            v = float(value)
        except (TypeError, ValueError):
            continue
        if math.isfinite(v):
            out[key] = v
    return out


def capture(model: Any, venv: Any, d_callback: Any, extra: dict[str, Any]) -> tuple[dict, dict]:
    """The continuation state of an SB3 run on ``venv`` as (tensor groups, JSON meta).

    Args:
        model: the SB3 ``PPO`` / ``MaskablePPO`` (``_last_obs`` None before its first ``learn``).
        venv: the :class:`~seqgan_env.integrations.sb3.TokenGenerationVecEnv` it trains on.
        d_callback: its :class:`~seqgan_env.integrations.sb3.SB3DiscriminatorCallback`.
        extra: JSON-able state of the caller (e.g. its per-env running sums), stored as ``meta["run"]``.

    Returns:
        ``({"rng": ..., "sb3": ...}, {"rng": ..., "sb3": ..., "run": extra})``.
    """
    reward_env, base = venv.reward_env, venv.base
    rng_t, rng_m = rng_state()
    rng_t["d_trainer"] = reward_env.trainer.generator.get_state()
    core = d_callback.core
    meta: dict[str, Any] = {"rng": rng_m, "run": extra, "started": model._last_obs is not None}
    meta["d_callback_rng"] = d_callback._rng.bit_generator.state
    if base._np_random is not None:
        meta["env_np_random"] = base._np_random.bit_generator.state
    t = reward_env.trainer
    meta["d_trainer"] = {"finished_episodes": t.finished_episodes, "num_updates": t.num_updates,
                         "num_phases": t.num_phases, "since_phase": t._since_phase}
    if core is not None:
        meta["d_schedule"] = core.state_dict()
        rng_t["d_replay"] = core._replay_gen.get_state()
    sb3: dict[str, torch.Tensor] = {}
    if model._last_obs is not None:
        reward_env.trainer.mark_changed()  # the cache is not saved: from here on, both runs rescore from the tokens
        sb3["last_obs"] = torch.from_numpy(np.asarray(model._last_obs).copy())  # (n, T)
        sb3["last_episode_starts"] = torch.from_numpy(np.asarray(model._last_episode_starts, dtype=bool).copy())  # (n,)
        for name in _BASE:
            sb3[f"env.{name}"] = getattr(base, name).detach().cpu().clone()
        for name in _WRAPPER:
            sb3[f"reward.{name}"] = getattr(reward_env, name).detach().cpu().clone()
        sb3["monitor.returns"] = torch.from_numpy(venv._episode_returns.copy())  # (n,) float64
        sb3["monitor.lengths"] = torch.from_numpy(venv._episode_lengths.copy())  # (n,) int64
        if d_callback.fakes:
            sb3["d_callback.fakes"] = torch.from_numpy(np.stack(list(d_callback.fakes)))  # (k, T)
        if core is not None and core._replay is not None:
            sb3["d_replay"] = core._replay.clone()
        meta["sb3"] = {
            "num_timesteps": int(model.num_timesteps), "n_updates": int(model._n_updates),
            "episode_num": int(model._episode_num), "env_started": bool(base._started),
            "ep_info_buffer": [_finite(e) for e in (model.ep_info_buffer or [])],
            "logged": _finite(model.logger.name_to_value),
        }
    return {"rng": rng_t, "sb3": sb3}, meta


def restore(model: Any, venv: Any, d_callback: Any, tensors: dict, meta: dict) -> dict[str, Any]:
    """Put the state of :func:`capture` back into a freshly built run; returns ``meta["run"]``.

    Raises:
        KeyError: a group or key of :func:`capture` is missing (a checkpoint of another version).
    """
    from seqgan_env.rewards.callbacks import DiscriminatorUpdateCallback

    reward_env, base = venv.reward_env, venv.base
    rng = dict(tensors["rng"])
    reward_env.trainer.generator.set_state(rng.pop("d_trainer"))
    t, tm = reward_env.trainer, meta["d_trainer"]
    t.finished_episodes, t.num_updates = int(tm["finished_episodes"]), int(tm["num_updates"])
    t.num_phases, t._since_phase = int(tm["num_phases"]), int(tm["since_phase"])
    reward_env.trainer.mark_changed()  # D's weights were loaded: rescore from the tokens
    d_callback._rng.bit_generator.state = meta["d_callback_rng"]
    if "env_np_random" in meta:
        base._np_random = np.random.Generator(getattr(np.random, meta["env_np_random"]["bit_generator"])())
        base._np_random.bit_generator.state = meta["env_np_random"]
    if "d_schedule" in meta:  # the callback builds its core at learn(); one built now is kept (with its counters)
        d_callback.core = DiscriminatorUpdateCallback(reward_env, d_callback.sample_fake or d_callback._sample_from_rollouts,
                                                      d_callback.config)
        d_callback.core.load_state_dict(meta["d_schedule"])
        d_callback.core._replay_gen.set_state(rng.pop("d_replay"))
    sb3 = tensors.get("sb3", {})
    if meta.get("started"):
        s = meta["sb3"]
        model._last_obs = sb3["last_obs"].numpy().copy()
        model._last_episode_starts = sb3["last_episode_starts"].numpy().copy()
        model.num_timesteps, model._n_updates = int(s["num_timesteps"]), int(s["n_updates"])
        model._episode_num = int(s["episode_num"])
        model.ep_info_buffer = deque(s["ep_info_buffer"], maxlen=model._stats_window_size)
        model.ep_success_buffer = deque(maxlen=model._stats_window_size)
        model.logger.name_to_value.update(s["logged"])
        for name in _BASE:
            getattr(base, name).copy_(sb3[f"env.{name}"])
        base._started = bool(s["env_started"])
        for name in _WRAPPER:
            getattr(reward_env, name).copy_(sb3[f"reward.{name}"])
        venv._episode_returns[:] = sb3["monitor.returns"].numpy()
        venv._episode_lengths[:] = sb3["monitor.lengths"].numpy()
        d_callback.fakes.clear()
        if "d_callback.fakes" in sb3:
            d_callback.fakes.extend(row.copy() for row in sb3["d_callback.fakes"].numpy())
        if "d_replay" in sb3 and d_callback.core is not None:
            d_callback.core._replay = sb3["d_replay"].clone()
    set_rng_state(rng, meta["rng"])  # last: nothing above draws from them
    return dict(meta.get("run", {}))
