"""`seqgan-env bench policy`: the SB3 generator policy stepped with and without its KV cache.

SB3 calls a policy once per env step with the whole observed prefix of every row.
``GeneratorPolicy`` (``seqgan_env.integrations.sb3_policy``) reuses the generator's cache
when every row extended its prefix by one token or restarted
(``seqgan_env.models.sampling.PrefixDecoder``); without it, each call is a full forward
over ``[BOS, prefix]``. Two policies with the same weights (the default generator of
``seqgan-env train``, the env's token rule) step their own ``make_vec_env`` of the
registered env, as PPO's rollout collection does (``policy(obs)`` under ``no_grad``,
then ``env.step``); only the policy calls are timed. The two alternate in blocks of
``block`` steps, ``rounds`` times (machine noise hits both alike); reported: ms per
policy call of each and their ratio, per batch size.

Usage::

    python -m seqgan_benchmarks.speed_policy
    from seqgan_benchmarks.speed_policy import PolicyBenchConfig, bench_policy
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import torch

from seqgan_agents.trainer_config import TrainConfig
from seqgan_benchmarks.speed_env import machine_description
from seqgan_env.utils.validation import check_ints

__all__ = ["PolicyBenchConfig", "bench_policy"]


@dataclass(frozen=True)
class PolicyBenchConfig:
    """Sizes of ``bench policy``: the batch sizes (n_envs), steps per block, rounds, seed."""

    n_envs: tuple[int, ...] = (8, 32)
    block: int = 48
    rounds: int = 3
    seed: int = 0

    def __post_init__(self) -> None:
        check_ints(self, ("block", "rounds"))
        if not self.n_envs or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in self.n_envs):
            raise ValueError(f"n_envs={self.n_envs!r} is invalid: it must be a non-empty tuple of ints >= 1; "
                             f"fix: e.g. (8, 32).")


def _side(n_envs: int, kv_cache: bool, seed: int, state: dict | None):
    """(vec env, policy, observation) of one side; ``state``: the generator weights to load."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    from seqgan_env.envs.spec import EnvConfig
    from seqgan_env.integrations.sb3_policy import GeneratorPolicy

    env = make_vec_env("seqgan_env:SeqGAN-v1", n_envs=n_envs, seed=seed)
    base = env.envs[0].unwrapped
    spec = EnvConfig(vocab_size=int(env.action_space.n), max_length=int(env.observation_space.shape[0]),
                     min_length=base.config.min_length, allow_eos=base.config.allow_eos)
    torch.manual_seed(seed)
    model = PPO(GeneratorPolicy, env, n_steps=8, batch_size=8 * n_envs, seed=seed, device="cpu",
                policy_kwargs=dict(generator_config=TrainConfig().generator, spec=spec, kv_cache=kv_cache))
    policy = model.policy
    policy.set_training_mode(False)  # as in PPO's rollout collection
    if state is not None:
        policy.generator.load_state_dict(state)
    return env, policy, env.reset()


def bench_policy(cfg: PolicyBenchConfig = PolicyBenchConfig(), log: Callable[[str], None] = print) -> dict[str, float]:
    """Time the cached and the uncached policy side by side; returns {"policy_ms[...]": ..., "cache_speedup[n]": ...}."""
    results: dict[str, float] = {}
    log(f"machine: {machine_description()}")
    for n in cfg.n_envs:
        cached = _side(n, True, cfg.seed, None)
        full = _side(n, False, cfg.seed, cached[1].generator.state_dict())
        sides = {"kv cache": list(cached), "full forward": list(full)}
        spent = {name: 0.0 for name in sides}
        calls = {name: 0 for name in sides}
        for r in range(cfg.rounds + 1):  # round 0 warms up both
            for name, side in sides.items():
                env, policy, obs = side
                for _ in range(cfg.block):
                    x = torch.as_tensor(obs, dtype=torch.float32)
                    t0 = time.perf_counter()
                    with torch.no_grad():
                        actions, _, _ = policy(x)
                    dt = time.perf_counter() - t0
                    obs, _, _, _ = env.step(actions.numpy())
                    if r:
                        spent[name] += dt
                        calls[name] += 1
                side[2] = obs
        ms = {name: 1e3 * spent[name] / calls[name] for name in sides}
        results[f"policy_ms[kv cache, n_envs={n}]"] = ms["kv cache"]
        results[f"policy_ms[full forward, n_envs={n}]"] = ms["full forward"]
        results[f"cache_speedup[n_envs={n}]"] = ms["full forward"] / ms["kv cache"]
        length = int(cached[0].observation_space.shape[0])
        log(f"  n_envs={n:3d}, max_length={length}: policy call {ms['kv cache']:.2f} ms with the KV cache, "
            f"{ms['full forward']:.2f} ms with a full forward: {results[f'cache_speedup[n_envs={n}]']:.2f}x "
            f"({calls['kv cache']} calls each, {cfg.rounds} interleaved rounds)")
    return results


if __name__ == "__main__":
    bench_policy()
