"""SB3 benchmark: PPO env throughput per VecEnv backend, and REINFORCE vs PPO on a toy task.

Every comparison is measured side by side in one process on this machine, so machine
speed cancels out of the ratios. Nothing here asserts on timing.

(a) **PPO env steps/s by backend.** ``PPO.learn`` timesteps per wall second (rollout
    collection + PPO updates + the discriminator callback) with identical
    hyper-parameters and policy (``sb3_policy_kwargs``: our ``TokenEmbeddingExtractor``),
    the default tiny discriminator and ``per_step`` reward, on
    ``make_sb3_env(n, backend="native")`` at each ``native_envs`` vs SB3's
    ``DummyVecEnv`` of ``dummy_envs`` single envs. Each side runs a one-rollout warm-up
    ``learn`` first; then the timed ``learn(ppo_timesteps)`` runs alternate between the
    sides ``repeats`` times and each side reports its best run.

(b) **REINFORCE vs PPO on a toy task with a known reward.** A weightless stub scorer
    gives prefix logit ``(#'a' so far) - 1``; reward ``per_step``/``prob`` (so a
    token's reward is sigmoid of that), ``toy_max_length`` tokens per episode
    (``allow_eos=False``). An all-'a' policy earns 0.88 per token, a uniform one about
    0.28. Both sides train until a rollout's mean reward per token (PPO: invalid
    actions count with their -1) reaches ``target_reward`` or ``time_limit_s`` passes.
    Reported: generator tokens/s (policy actions / training wall time) and wall time
    to the target ("not reached" when capped).

Usage::

    python -m seqgan_benchmarks.speed_sb3             # defaults, about 1 minute on a 2-core CPU
    from seqgan_benchmarks.speed_sb3 import SB3BenchConfig, bench_agents
    results = bench_agents(SB3BenchConfig(ppo_timesteps=4096))
"""

from __future__ import annotations

import math
import os
import string
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback

from seqgan_agents.reinforce import ReinforceAgent, ReinforceConfig
from seqgan_benchmarks.speed_env import machine_description
from seqgan_env.data.tokenizer import CharTokenizer
from seqgan_env.envs.vector_env import TokenGenerationVectorEnv
from seqgan_env.integrations.sb3 import (
    SB3DiscriminatorCallback,
    TokenGenerationVecEnv,
    make_sb3_env,
    sb3_policy_kwargs,
)
from seqgan_env.models.networks import ModelConfig, build_generator
from seqgan_env.rewards.callbacks import DiscriminatorUpdateConfig
from seqgan_env.rewards.wrappers import DiscriminatorRewardVector, RewardConfig
from seqgan_env.utils.validation import check_ints

__all__ = ["LetterScorer", "SB3BenchConfig", "bench_agents"]


@dataclass(frozen=True)
class SB3BenchConfig:
    """Sizes of the SB3 benchmark (see the module docstring for what each part measures).

    (a) ``max_length``: episode length cap; ``dummy_envs``: single envs in the
    ``DummyVecEnv``; ``native_envs``: sizes of the native adapter measured against it;
    ``ppo_timesteps``: timesteps of each timed ``learn`` (make it a multiple of every
    side's ``n_envs * n_steps``); ``repeats``: timed runs per side, interleaved, best
    kept; ``n_steps``, ``batch_size``, ``n_epochs``, ``learning_rate``: PPO's
    hyper-parameters, shared by every PPO run including (b).
    (b) ``toy_max_length``: tokens per episode; ``toy_ppo_envs``: native envs of PPO;
    ``toy_reinforce_batch``: rows per REINFORCE rollout; ``reinforce_lr``;
    ``target_reward``: mean reward per token to reach; ``time_limit_s``: cap per side.
    ``torch_threads``: ``torch.set_num_threads`` for the run (restored afterwards); None
    keeps the current setting. Default 1: for these tiny models two threads that wait on
    each other were up to 10x slower on a 2-core CPU shared with other jobs.
    """

    max_length: int = 12
    dummy_envs: int = 8
    native_envs: tuple[int, ...] = (8, 64)
    ppo_timesteps: int = 8192
    repeats: int = 2
    n_steps: int = 64
    batch_size: int = 256
    n_epochs: int = 4
    learning_rate: float = 1e-3
    toy_max_length: int = 8
    toy_ppo_envs: int = 64
    toy_reinforce_batch: int = 256
    reinforce_lr: float = 3e-3
    target_reward: float = 0.7
    time_limit_s: float = 45.0
    torch_threads: int | None = 1
    seed: int = 0

    def __post_init__(self) -> None:
        ints = ("max_length", "dummy_envs", "ppo_timesteps", "repeats", "n_steps", "batch_size", "n_epochs",
                "toy_max_length", "toy_ppo_envs", "toy_reinforce_batch")
        check_ints(self, ints)
        if not self.native_envs or any(not isinstance(n, int) or n < 1 for n in self.native_envs):
            raise ValueError(f"native_envs={self.native_envs!r} is invalid: give one or more ints >= 1.")
        for name in ("learning_rate", "reinforce_lr", "time_limit_s"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"{name}={value!r} is invalid: it must be a finite number > 0.")
        if self.torch_threads is not None and (not isinstance(self.torch_threads, int) or self.torch_threads < 1):
            raise ValueError(f"torch_threads={self.torch_threads!r} is invalid: use None or an int >= 1.")
        if not 0.0 < self.target_reward < 1.0:
            raise ValueError(f"target_reward={self.target_reward!r} is invalid: per-token rewards are probabilities, "
                             f"use a number in (0, 1), e.g. 0.7.")


class LetterScorer:
    """Stub discriminator: the logit of every prefix is (#``target`` tokens in it) - 1.

    ``score_logits(tokens (B, T)) -> (B, T)``; deterministic, no weights, nothing to train.
    """

    def __init__(self, target: int) -> None:
        self.target = target

    def score_logits(self, tokens: torch.Tensor) -> torch.Tensor:
        return (torch.as_tensor(tokens) == self.target).float().cumsum(dim=1) - 1.0  # (B, T)


def _ppo(cfg: SB3BenchConfig, env: Any) -> PPO:
    """PPO with the benchmark's shared hyper-parameters and token-embedding policy."""
    return PPO(
        "MlpPolicy", env, n_steps=cfg.n_steps, batch_size=cfg.batch_size, n_epochs=cfg.n_epochs,
        learning_rate=cfg.learning_rate, seed=cfg.seed, device="cpu",
        policy_kwargs=sb3_policy_kwargs(embed_dim=32, features_dim=64, net_arch=[64]),
    )


def _ppo_throughputs(cfg: SB3BenchConfig, sides: list[tuple[str, int]]) -> list[float]:
    """Best timesteps/s of ``learn(ppo_timesteps)`` per (backend, n_envs) side, repeats interleaved.

    Each side is built and warmed up (one-rollout ``learn``) first; then the timed runs
    alternate between the sides ``repeats`` times, so a burst of load from other
    processes hits every side alike, and each side keeps its best run.
    """
    runs = []
    for backend, n_envs in sides:
        env = make_sb3_env(n_envs, backend=backend, seed=cfg.seed, max_length=cfg.max_length,
                           reward_mode="per_step", reward_transform="prob", update_every=None)
        model = _ppo(cfg, env)
        callback = SB3DiscriminatorCallback(DiscriminatorUpdateConfig(every=1, d_steps=1, batch_size=64))
        model.learn(n_envs * cfg.n_steps, callback=callback)  # warm-up: one rollout + update
        runs.append((env, model, callback))
    best = [0.0] * len(sides)
    try:
        for _ in range(cfg.repeats):
            for i, (_, model, callback) in enumerate(runs):
                start = time.perf_counter()
                model.learn(cfg.ppo_timesteps, callback=callback, reset_num_timesteps=True)
                best[i] = max(best[i], model.num_timesteps / (time.perf_counter() - start))
    finally:
        for env, _, _ in runs:
            env.close()
    return best


def _toy_env(cfg: SB3BenchConfig, n: int, return_torch: bool) -> tuple[DiscriminatorRewardVector, int]:
    """The toy task's vector env over ``n`` rows and the token id of 'a'."""
    tok = CharTokenizer.from_texts([string.ascii_lowercase])  # PAD, BOS, EOS + 26 letters
    target = tok.encode("a")[0]
    base = TokenGenerationVectorEnv(n, tokenizer=tok, max_length=cfg.toy_max_length, allow_eos=False,
                                    return_torch=return_torch, decode_text=False)
    return DiscriminatorRewardVector(base, LetterScorer(target), RewardConfig("per_step", "prob")), tok.vocab_size


def _reinforce_toy(cfg: SB3BenchConfig) -> dict[str, float]:
    """REINFORCE until a rollout's mean reward per token reaches the target (or the time cap)."""
    venv, vocab = _toy_env(cfg, cfg.toy_reinforce_batch, return_torch=True)
    torch.manual_seed(cfg.seed)
    gen = build_generator(ModelConfig(hidden_size=32, intermediate_size=64, num_layers=1, num_heads=2), vocab)
    agent = ReinforceAgent(gen, ReinforceConfig(batch_size=cfg.toy_reinforce_batch, lr=cfg.reinforce_lr,
                                                device="cpu"), seed=cfg.seed)
    tokens, reached_s, reward = 0, math.nan, math.nan
    start = time.perf_counter()
    while True:
        rollout = agent.collect(venv)
        mask = rollout.mask  # (B, T)
        reward = float(rollout.rewards[mask].mean())  # mean reward per token of this rollout
        tokens += int(mask.sum())
        if reward >= cfg.target_reward and math.isnan(reached_s):
            reached_s = time.perf_counter() - start
        agent.update(rollout)
        elapsed = time.perf_counter() - start
        if not math.isnan(reached_s) or elapsed >= cfg.time_limit_s:
            break
    return {"tokens_per_s": tokens / elapsed, "time_to_target_s": reached_s, "final_reward": reward,
            "tokens": float(tokens), "wall_s": elapsed}


class _TargetCallback(BaseCallback):
    """Stops PPO (at the next step) once a rollout's mean reward per step reaches ``target`` or time runs out."""

    def __init__(self, target: float, time_limit_s: float) -> None:
        super().__init__()
        self.target, self.time_limit_s = target, time_limit_s
        self.start = time.perf_counter()
        self.reached_s, self.reward, self.stop = math.nan, math.nan, False

    def _on_step(self) -> bool:
        return not (self.stop or time.perf_counter() - self.start >= self.time_limit_s)

    def _on_rollout_end(self) -> None:
        self.reward = float(self.model.rollout_buffer.rewards.mean())  # (n_steps, n_envs) per-step rewards
        if self.reward >= self.target and math.isnan(self.reached_s):
            self.reached_s = time.perf_counter() - self.start
            self.stop = True  # after this rollout's update


def _ppo_toy(cfg: SB3BenchConfig) -> dict[str, float]:
    """SB3 PPO on the native adapter over the toy reward, until the target (or the time cap)."""
    venv, _ = _toy_env(cfg, cfg.toy_ppo_envs, return_torch=False)
    env = TokenGenerationVecEnv(venv)
    model = _ppo(cfg, env)
    callback = _TargetCallback(cfg.target_reward, cfg.time_limit_s)
    callback.start = time.perf_counter()
    model.learn(10**9, callback=callback)  # stopped by the callback
    elapsed = time.perf_counter() - callback.start
    return {"tokens_per_s": model.num_timesteps / elapsed, "time_to_target_s": callback.reached_s,
            "final_reward": callback.reward, "tokens": float(model.num_timesteps), "wall_s": elapsed}


def _fmt_time(seconds: float, cap: float) -> str:
    return f"not reached in {cap:.0f} s" if math.isnan(seconds) else f"{seconds:.1f} s"


def bench_agents(cfg: SB3BenchConfig = SB3BenchConfig(), log: Callable[[str], None] = print) -> dict[str, float]:
    """Run (a) and (b), print the machine, the settings, both sides and the ratios; return the numbers.

    Keys: ``dummy{n}_steps_per_s``, ``native{n}_steps_per_s`` and ``native{n}_vs_dummy`` for each
    ``n`` in ``native_envs``; ``reinforce_tokens_per_s``, ``ppo_tokens_per_s``,
    ``reinforce_vs_ppo_tokens``; ``reinforce_time_to_target_s`` / ``ppo_time_to_target_s`` (NaN if
    not reached within ``time_limit_s``), ``ppo_vs_reinforce_time`` (NaN unless both reached),
    ``reinforce_final_reward``, ``ppo_final_reward``.
    """
    threads = torch.get_num_threads()
    if cfg.torch_threads is not None:
        torch.set_num_threads(cfg.torch_threads)
    try:
        return _bench(cfg, log)
    finally:
        torch.set_num_threads(threads)


def _bench(cfg: SB3BenchConfig, log: Callable[[str], None]) -> dict[str, float]:
    results: dict[str, float] = {}
    log(f"machine: {machine_description()}; load average {os.getloadavg()[0]:.2f} at start "
        f"(other processes on the cores skew every number)")
    log(f"(a) PPO.learn env steps/s: max_length={cfg.max_length}, per_step/prob reward, default tiny D trained "
        f"after every rollout (SB3DiscriminatorCallback), PPO n_steps={cfg.n_steps} batch_size={cfg.batch_size} "
        f"n_epochs={cfg.n_epochs} lr={cfg.learning_rate:g}, TokenEmbeddingExtractor (GRU), "
        f"{cfg.ppo_timesteps} timed timesteps per run after a one-rollout warm-up, best of {cfg.repeats} "
        f"interleaved runs per side")
    sides = [("dummy", cfg.dummy_envs)] + [("native", n) for n in cfg.native_envs]
    dummy, *natives = _ppo_throughputs(cfg, sides)
    results[f"dummy{cfg.dummy_envs}_steps_per_s"] = dummy
    log(f"  DummyVecEnv x{cfg.dummy_envs:<4d}      {dummy:10,.0f} env steps/s")
    for n, native in zip(cfg.native_envs, natives):
        results[f"native{n}_steps_per_s"] = native
        results[f"native{n}_vs_dummy"] = native / dummy
        log(f"  native adapter x{n:<4d}  {native:10,.0f} env steps/s  = {native / dummy:5.1f}x DummyVecEnv "
            f"x{cfg.dummy_envs} (goal >= 6x)")

    log(f"(b) toy task: stub logit (#'a' so far) - 1, per_step/prob, {cfg.toy_max_length} tokens per episode "
        f"(no EOS); target {cfg.target_reward} mean reward per token (all-'a' = 0.88, uniform ~ 0.28); "
        f"cap {cfg.time_limit_s:.0f} s per side")
    rf = _reinforce_toy(cfg)
    log(f"  REINFORCE (tiny Llama, B={cfg.toy_reinforce_batch}, lr={cfg.reinforce_lr:g}, masked sampling): "
        f"{rf['tokens_per_s']:10,.0f} tokens/s, target {_fmt_time(rf['time_to_target_s'], cfg.time_limit_s)} "
        f"(last rollout {rf['final_reward']:.3f})")
    ppo = _ppo_toy(cfg)
    log(f"  SB3 PPO (native adapter x{cfg.toy_ppo_envs}, same PPO settings as (a)):  "
        f"{ppo['tokens_per_s']:10,.0f} tokens/s, target {_fmt_time(ppo['time_to_target_s'], cfg.time_limit_s)} "
        f"(last rollout {ppo['final_reward']:.3f}, invalid actions count -1)")
    for side, r in (("reinforce", rf), ("ppo", ppo)):
        results[f"{side}_tokens_per_s"] = r["tokens_per_s"]
        results[f"{side}_time_to_target_s"] = r["time_to_target_s"]
        results[f"{side}_final_reward"] = r["final_reward"]
    results["reinforce_vs_ppo_tokens"] = rf["tokens_per_s"] / ppo["tokens_per_s"]
    results["ppo_vs_reinforce_time"] = ppo["time_to_target_s"] / rf["time_to_target_s"]  # NaN unless both reached
    log(f"  ratio REINFORCE/PPO tokens/s      {results['reinforce_vs_ppo_tokens']:6.1f}x (goal ~10x)")
    speedup = results["ppo_vs_reinforce_time"]
    log(f"  ratio PPO/REINFORCE time to target {speedup:6.1f}x" if not math.isnan(speedup)
        else "  ratio PPO/REINFORCE time to target: n/a (a side did not reach the target)")
    log(f"load average {os.getloadavg()[0]:.2f} at the end")
    return results


if __name__ == "__main__":
    bench_agents()
