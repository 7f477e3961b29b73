"""`seqgan-env bench`: side-by-side speed ratios measured in one run on this machine.

Every number is a ratio of two measurements taken in the same process, one right
after the other, so machine speed cancels out. Nothing here is asserted by tests.
"""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass
from typing import Callable

import gymnasium as gym
import numpy as np
import torch

from .data import DEFAULT_DATA_PATH, load_dataset
from .discriminator import Discriminator
from .env import TokenGenerationEnv
from .validation import check_ints
from .vector_env import TokenGenerationVectorEnv
from .wrappers import DiscriminatorReward, DiscriminatorRewardVector, RewardConfig


@dataclass(frozen=True)
class EnvBenchConfig:
    """Sizes of ``bench env``: batch, sequence length, steps timed per side, reward mode."""

    num_envs: int = 256
    max_length: int = 32
    vector_steps: int = 300
    sync_steps: int = 20
    prefix_repeats: int = 5
    repeats: int = 2  # each side timed this many times, interleaved; the best run counts (less noise)
    reward_mode: str = "per_step"
    seed: int = 0

    def __post_init__(self) -> None:
        check_ints(self, ("num_envs", "max_length", "vector_steps", "sync_steps", "prefix_repeats", "repeats"))


def _timed(fn: Callable[[], None]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def machine_description() -> str:
    return f"{platform.machine()}, {torch.get_num_threads()} torch threads, {platform.processor() or 'cpu'}, torch {torch.__version__}"


def bench_env(cfg: EnvBenchConfig = EnvBenchConfig(), log: Callable[[str], None] = print) -> dict[str, float]:
    """Native vector env vs SyncVectorEnv of single envs, and one causal pass vs one pass per prefix."""
    data = load_dataset(DEFAULT_DATA_PATH, max_length=cfg.max_length, seed=cfg.seed)
    tok = data.tokenizer
    disc = Discriminator(tok.vocab_size, seed=cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    b, t = cfg.num_envs, cfg.max_length
    # Actions: EOS or a symbol, uniformly (EOS before min_length is a masked action on both sides).
    steps = max(cfg.vector_steps, cfg.sync_steps)
    actions = rng.integers(2, tok.vocab_size, size=(steps, b))  # (S, B)
    reward = RewardConfig(mode=cfg.reward_mode)

    venv = DiscriminatorRewardVector(
        TokenGenerationVectorEnv(b, tokenizer=tok, max_length=t), disc, reward
    )
    venv.reset(seed=cfg.seed)

    def run_vector() -> None:
        for i in range(cfg.vector_steps):
            venv.step(actions[i])

    sync = gym.vector.SyncVectorEnv(
        [lambda: DiscriminatorReward(TokenGenerationEnv(tokenizer=tok, max_length=t), disc, reward) for _ in range(b)],
        autoreset_mode=gym.vector.AutoresetMode.NEXT_STEP,
    )

    def run_sync() -> None:
        for i in range(cfg.sync_steps):
            sync.step(actions[i])

    for i in range(10):  # warm-up
        venv.step(actions[i])
    t_vec = t_sync = float("inf")
    for _ in range(cfg.repeats):  # interleaved, best of each side
        venv.reset(seed=cfg.seed)
        t_vec = min(t_vec, _timed(run_vector))
        sync.reset(seed=cfg.seed)
        t_sync = min(t_sync, _timed(run_sync))
    vec_sps = cfg.vector_steps * b / t_vec
    sync_sps = cfg.sync_steps * b / t_sync

    # Per-step rewards of finished sequences: one causal pass vs recomputing D on each prefix.
    tokens = data.train[:b]  # (B, T)
    if len(tokens) < b:
        tokens = tokens.repeat((b + len(tokens) - 1) // len(tokens), 1)[:b]
    disc.score_logits(tokens)

    def one_pass() -> None:
        for _ in range(cfg.prefix_repeats):
            disc.score_logits(tokens)  # (B, T) every prefix at once

    def per_prefix() -> None:
        for _ in range(cfg.prefix_repeats):
            for k in range(1, t + 1):
                disc.score_logits(tokens[:, :k])[:, -1]  # (B,) one prefix per pass

    t_one = _timed(one_pass) / cfg.prefix_repeats
    t_per = _timed(per_prefix) / cfg.prefix_repeats

    results = {
        "vector_steps_per_s": vec_sps,
        "sync_steps_per_s": sync_sps,
        "vector_vs_sync": vec_sps / sync_sps,
        "one_pass_ms": t_one * 1e3,
        "per_prefix_ms": t_per * 1e3,
        "one_pass_vs_per_prefix": t_per / t_one,
    }
    log(f"machine: {machine_description()}")
    log(f"bench env: B={b}, max_length={t}, reward={cfg.reward_mode}/prob, default tiny discriminator")
    log(f"  native vector env   {vec_sps:12,.0f} env steps/s  ({cfg.vector_steps} steps, best of {cfg.repeats})")
    log(f"  SyncVectorEnv       {sync_sps:12,.0f} env steps/s  ({cfg.sync_steps} steps, best of {cfg.repeats})")
    log(f"  ratio vector/sync   {results['vector_vs_sync']:12.1f}x")
    log(f"  one causal pass     {t_one * 1e3:12.2f} ms for B x T prefix scores")
    log(f"  one pass per prefix {t_per * 1e3:12.2f} ms ({t} passes)")
    log(f"  ratio               {results['one_pass_vs_per_prefix']:12.1f}x  (target >= max_length/4 = {t / 4:.0f})")
    return results
