"""`seqgan-env bench agent`: REINFORCE update throughput and KV-cache vs no-cache sampling.

All numbers come from one process, measured back to back: generator tokens/s of
a full REINFORCE update (sampling through the vector env with the discriminator
reward, then the backward pass) and the ratio of sampling time without and with
the transformers KV cache. The update is timed in the default configuration and,
interleaved round by round (so machine noise hits all alike), in variants: with
the transformers forward instead of the lean one-token decoder
(``seqgan_env.fastllama``, generator and discriminator), with the transformers
teacher-forced forward instead of the lean one (``seqgan_env.fastllama_train``),
with both, and with the option ``ReinforceAgent.overlap_env`` (the env step in a
worker thread) switched on.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Callable

import torch

from agents.reinforce import ReinforceAgent, ReinforceConfig
from agents.trainer import TrainConfig
from seqgan_env.bench import machine_description
from seqgan_env.data import DEFAULT_DATA_PATH, load_dataset
from seqgan_env.discriminator import Discriminator
from seqgan_env.models import build_generator
from seqgan_env.validation import check_ints
from seqgan_env.vector_env import TokenGenerationVectorEnv
from seqgan_env.wrappers import DiscriminatorRewardVector


@dataclass(frozen=True)
class AgentBenchConfig:
    """Sizes of ``bench agent``: batch, sequence length, updates and sampling repeats timed."""

    batch_size: int = 256
    max_length: int = 32
    updates: int = 10
    sample_repeats: int = 5
    device: str = "auto"
    seed: int = 0
    ablations: bool = True  # also time the update in the variants

    def __post_init__(self) -> None:
        check_ints(self, ("batch_size", "max_length", "updates", "sample_repeats"))


def bench_agent(cfg: AgentBenchConfig = AgentBenchConfig(), log: Callable[[str], None] = print) -> dict[str, float]:
    defaults = TrainConfig()
    data = load_dataset(DEFAULT_DATA_PATH, max_length=cfg.max_length, seed=cfg.seed)
    tok = data.tokenizer
    gen_cfg = defaults.generator
    if gen_cfg.max_position_embeddings < cfg.max_length + 1:
        gen_cfg = type(gen_cfg)(**{**gen_cfg.__dict__, "max_position_embeddings": cfg.max_length + 1})
    torch.manual_seed(cfg.seed)
    agent = ReinforceAgent(
        build_generator(gen_cfg, tok.vocab_size),
        ReinforceConfig(**{**defaults.reinforce.__dict__, "batch_size": cfg.batch_size, "device": cfg.device}),
        seed=cfg.seed,
    )
    dev = agent.device
    disc_model = defaults.discriminator_model
    if disc_model.max_position_embeddings < cfg.max_length + 1:
        disc_model = type(disc_model)(**{**disc_model.__dict__, "max_position_embeddings": cfg.max_length + 1})
    disc = Discriminator(tok.vocab_size, disc_model, defaults.discriminator, device=dev, seed=cfg.seed)
    venv = DiscriminatorRewardVector(
        # allow_eos=False: every row writes max_length tokens, so an update is exactly B x T tokens
        TokenGenerationVectorEnv(
            cfg.batch_size, tokenizer=tok, max_length=cfg.max_length, allow_eos=False, device=dev,
            return_torch=True, decode_text=False,
        ),
        disc,
        defaults.reward,
    )

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize()

    scorer = venv._incremental
    variants = {  # name: (lean decoder, lean training forward, env step overlapped)
        "default": (True, True, False),
        "transformers decode (G and D)": (False, True, False),
        "transformers training forward": (True, False, False),
        "transformers decode + training forward": (False, False, False),
        "lean decoder + overlap_env": (True, True, True),
    }
    if not cfg.ablations:
        variants = {"default": variants["default"]}

    def configure(fast: bool, lean_train: bool, overlap: bool) -> None:
        agent.fast_decode = fast
        agent.overlap_env = overlap
        agent.train_module.lean = lean_train  # this agent only
        if scorer is not None:
            scorer.fast_decode = fast

    for flags in variants.values():  # warm-up of every path
        configure(*flags)
        agent.update(agent.collect(venv))
    timing = {name: [0.0, 0.0, 0] for name in variants}  # collect s, update s, tokens
    per_update: list[float] = []  # seconds of each default update (collect + learn), for the median
    for _ in range(cfg.updates):  # round robin: each round times one update of every variant
        for name, flags in variants.items():
            configure(*flags)
            sync()
            t0 = time.perf_counter()
            rollout = agent.collect(venv)
            sync()
            t1 = time.perf_counter()
            agent.update(rollout)
            sync()
            t2 = time.perf_counter()
            timing[name][0] += t1 - t0
            timing[name][1] += t2 - t1
            timing[name][2] += int(rollout.mask.sum())
            if name == "default":
                per_update.append(t2 - t0)
    configure(*variants["default"])
    t_collect, t_update, tokens = timing["default"]
    total = t_collect + t_update

    def time_sampling(use_cache: bool) -> float:
        agent.sample(cfg.batch_size, cfg.max_length, seed=0, use_cache=use_cache, allow_eos=False)
        sync()
        t0 = time.perf_counter()
        for i in range(cfg.sample_repeats):
            agent.sample(cfg.batch_size, cfg.max_length, seed=i, use_cache=use_cache, allow_eos=False)
        sync()
        return (time.perf_counter() - t0) / cfg.sample_repeats

    t_cache = time_sampling(True)  # KV cache, lean decoder
    agent.fast_decode = False
    t_hf_cache = time_sampling(True)  # KV cache, transformers forward
    agent.fast_decode = True
    t_nocache = time_sampling(False)
    median_s = statistics.median(per_update)
    results = {
        "update_tokens_per_s": tokens / total,
        "update_ms": 1e3 * total / cfg.updates,
        "update_tokens_per_s_median": tokens / cfg.updates / median_s,
        "update_ms_median": 1e3 * median_s,
        "sampling_fraction": t_collect / total,
        "sample_cache_ms": 1e3 * t_cache,
        "sample_nocache_ms": 1e3 * t_nocache,
        "sample_transformers_cache_ms": 1e3 * t_hf_cache,
        "cache_vs_nocache": t_nocache / t_cache,
    }
    for name, (c, u, n) in timing.items():
        if name != "default":
            results[f"update_tokens_per_s[{name}]"] = n / (c + u)
    device_name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else machine_description()
    log(f"machine: {device_name}")
    log(
        f"bench agent: B={cfg.batch_size}, T={cfg.max_length} (no EOS: B x T tokens per update), default models, "
        f"reward={defaults.reward.mode}/{defaults.reward.transform} scored through the env every step"
    )
    log(f"  REINFORCE update      {results['update_tokens_per_s']:12,.0f} generator tokens/s ({results['update_ms']:.1f} ms/update, "
        f"mean of {cfg.updates}; median update {results['update_ms_median']:.1f} ms = "
        f"{results['update_tokens_per_s_median']:,.0f} tokens/s)")
    log(f"  time in collection    {100 * results['sampling_fraction']:11.0f} %  (sampling + env + D reward)")
    for name, (c, u, n) in timing.items():
        if name != "default":
            log(f"    variant: {name:30s} {n / (c + u):10,.0f} tokens/s "
                f"({1e3 * (c + u) / cfg.updates:.1f} ms/update, collect {1e3 * c / cfg.updates:.1f} ms)")
    log(f"  sampling, KV cache    {results['sample_cache_ms']:12.1f} ms for B x {cfg.max_length} tokens (lean decoder; "
        f"transformers forward with the cache: {results['sample_transformers_cache_ms']:.1f} ms)")
    log(f"  sampling, no cache    {results['sample_nocache_ms']:12.1f} ms")
    log(f"  ratio no-cache/cache  {results['cache_vs_nocache']:12.1f}x")
    return results
