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

from seqgan_env.data.text import DEFAULT_DATA_PATH, load_dataset
from seqgan_env.envs.env import TokenGenerationEnv
from seqgan_env.envs.vector_env import TokenGenerationVectorEnv
from seqgan_env.models.discriminator import Discriminator
from seqgan_env.rewards.wrappers import DiscriminatorReward, DiscriminatorRewardVector, RewardConfig
from seqgan_env.utils.validation import check_ints


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


@dataclass(frozen=True)
class RewardBenchConfig:
    """Sizes of ``bench reward``: B sequences of T tokens, K rollouts, vocab size, repeats."""

    batch_size: int = 64
    max_length: int = 20
    num_rollouts: int = 16
    vocab_size: int = 32  # a small synthetic vocab (ids 0-2 special), default tiny models
    repeats: int = 3  # each side timed this many times, interleaved; the best run counts
    seed: int = 0

    def __post_init__(self) -> None:
        check_ints(self, ("batch_size", "max_length", "num_rollouts", "vocab_size", "repeats"))


def bench_reward(cfg: RewardBenchConfig = RewardBenchConfig(), log: Callable[[str], None] = print) -> dict[str, float]:
    """Time per batch of per-step rewards: ``per_step`` (one causal D pass over (B, T)) vs
    ``mc_rollout`` (``MCRolloutScorer.score_logits``: K rollouts of every prefix).

    Returns ``{"per_step_ms", "mc_rollout_ms", "mc_vs_per_step"}``; the ratio is the
    cost of SeqGAN's credit assignment relative to a plain per-prefix score.
    """
    from seqgan_env.models.networks import ModelConfig, build_generator
    from seqgan_env.rewards.mc_rollout import make_mc_rollout_scorer

    b, t, v = cfg.batch_size, cfg.max_length, cfg.vocab_size
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        generator = build_generator(ModelConfig(), v).eval()
    disc = Discriminator(v, seed=cfg.seed)
    scorer = make_mc_rollout_scorer(disc, generator, num_rollouts=cfg.num_rollouts, max_length=t, seed=cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    tokens = torch.randint(3, v, (b, t), generator=gen)  # (B, T) full-length sequences, no EOS
    cut = torch.randint(1, t + 1, (b,), generator=gen)  # (B,) some rows end early with EOS
    col = torch.arange(t).unsqueeze(0)  # (1, T)
    tokens = torch.where(col == cut.unsqueeze(1) - 1, torch.full_like(tokens, 2), tokens)
    tokens = torch.where(col >= cut.unsqueeze(1), torch.zeros_like(tokens), tokens)
    tokens[: b // 2] = torch.where(tokens[: b // 2] == 0, torch.full_like(tokens[: b // 2], 3), tokens[: b // 2])
    tokens[: b // 2] = torch.where(tokens[: b // 2] == 2, torch.full_like(tokens[: b // 2], 3), tokens[: b // 2])

    def per_step() -> None:
        disc.score_logits(tokens)  # (B, T)

    def mc_rollout() -> None:
        scorer.score_logits(tokens)  # (B, T)

    per_step()
    mc_rollout()  # warm-up
    t_ps = t_mc = float("inf")
    for _ in range(cfg.repeats):
        t_ps = min(t_ps, _timed(per_step))
        t_mc = min(t_mc, _timed(mc_rollout))
    results = {"per_step_ms": t_ps * 1e3, "mc_rollout_ms": t_mc * 1e3, "mc_vs_per_step": t_mc / t_ps}
    log(f"machine: {machine_description()}")
    log(f"bench reward: B={b}, T={t}, vocab={v}, K={cfg.num_rollouts}, default tiny generator and discriminator")
    log("  (half the rows full length, half ended by EOS at a random length)")
    log(f"  per_step   one causal D pass   {t_ps * 1e3:10.2f} ms per batch  (best of {cfg.repeats})")
    log(f"  mc_rollout K={cfg.num_rollouts} rollouts/prefix {t_mc * 1e3:10.2f} ms per batch  (best of {cfg.repeats})")
    log(f"  ratio mc_rollout/per_step {results['mc_vs_per_step']:10.1f}x")
    return results
