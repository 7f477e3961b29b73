"""`seqgan-env bench agent`: REINFORCE update throughput and KV-cache vs no-cache sampling.

All numbers come from one process, measured back to back: generator tokens/s of
a full REINFORCE update (sampling through the vector env with the discriminator
reward, then the backward pass) and the ratio of sampling time without and with
the transformers KV cache. The headline is the default configuration timed alone
(mean and median of its updates). Then the variants are timed interleaved round
by round with the default (so machine noise hits all alike) and reported as
ratios to it: with
the transformers forward instead of the lean one-token decoder
(``seqgan_env.models.fastllama``, generator and discriminator), with the transformers
teacher-forced forward instead of the lean one (``seqgan_env.models.fastllama_train``),
and with both.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from seqgan_agents.reinforce import ReinforceAgent, ReinforceConfig
from seqgan_agents.trainer_config import TrainConfig
from seqgan_benchmarks.speed_env import machine_description
from seqgan_env.data.text import DEFAULT_DATA_PATH, load_dataset
from seqgan_env.data.tokenizer import BOS_ID, EOS_ID, PAD_ID
from seqgan_env.envs.vector_env import TokenGenerationVectorEnv
from seqgan_env.models.discriminator import Discriminator
from seqgan_env.models.networks import build_generator
from seqgan_env.rewards.wrappers import DiscriminatorRewardVector
from seqgan_env.utils.validation import check_ints


class PrototypeLoop:
    """The baseline: a plain REINFORCE loop with the transformers KV cache.

    A reconstruction, for side-by-side timing only: the same generator and discriminator
    models, but none of the product's machinery. Sampling feeds one token per step
    through ``generator(input_ids, cache=..., use_cache=True, logits_to_keep=1)`` (a
    ``DynamicCache``) and draws with ``torch.multinomial`` (PAD, BOS and EOS masked, so
    every row writes T tokens); the rewards come from ONE causal discriminator pass over
    the finished batch (potential/prob: sigmoid score differences), not through an env;
    then returns (gamma 1), a batch-mean baseline, the teacher-forced transformers
    forward, backward, clipping and an AdamW step.
    """

    def __init__(self, generator: torch.nn.Module, discriminator: Discriminator, lr: float) -> None:
        self.generator = generator
        self.discriminator = discriminator
        self.optimizer = torch.optim.AdamW(generator.parameters(), lr=lr)

    def collect(self, batch: int, length: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T) sampled tokens and (B, T) rewards."""
        gen = self.generator
        dev = next(gen.parameters()).device
        with torch.no_grad():
            inp = torch.full((batch, 1), BOS_ID, dtype=torch.long, device=dev)  # (B, 1)
            cache, steps = None, []
            for _ in range(length):
                out = gen(input_ids=inp, cache=cache, use_cache=True, logits_to_keep=1)
                cache = out.cache
                logits = out.logits[:, -1].float()  # (B, V)
                logits[:, [PAD_ID, BOS_ID, EOS_ID]] = float("-inf")
                inp = torch.multinomial(torch.softmax(logits, -1), 1)  # (B, 1)
                steps.append(inp)
            tokens = torch.cat(steps, 1)  # (B, T)
            scores = torch.sigmoid(self.discriminator.score_logits(tokens))  # (B, T) one causal pass
            rewards = scores - F.pad(scores[:, :-1], (1, 0))  # (B, T) potential: s_t - s_{t-1}, s_{-1} = 0
        return tokens, rewards

    def update(self, tokens: torch.Tensor, rewards: torch.Tensor) -> None:
        returns = rewards.flip(1).cumsum(1).flip(1)  # (B, T) gamma = 1
        adv = returns - returns.mean(0, keepdim=True)  # (B, T) batch-mean baseline per step
        inp = torch.cat([torch.full_like(tokens[:, :1], BOS_ID), tokens[:, :-1]], 1)  # (B, T)
        logits = self.generator(input_ids=inp).logits  # (B, T, V)
        logp = torch.log_softmax(logits.float(), -1).gather(2, tokens[..., None]).squeeze(2)  # (B, T)
        loss = -(logp * adv).mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.generator.parameters(), 1.0)
        self.optimizer.step()


PROTOTYPE = "prototype loop (issue 4's baseline)"  # a metric key that results and tests read


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
    generator = build_generator(gen_cfg, tok.vocab_size)
    initial_state = {k: v.clone() for k, v in generator.state_dict().items()}
    agent = ReinforceAgent(
        generator,
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
    variants = {  # name: (lean decoder, lean training forward)
        "default": (True, True),
        "transformers decode (G and D)": (False, True),
        "transformers training forward": (True, False),
        "transformers decode + training forward": (False, False),
    }
    if not cfg.ablations:
        variants = {"default": variants["default"]}

    def configure(fast: bool, lean_train: bool) -> None:
        agent.fast_decode = fast
        agent.train_module.lean = lean_train  # this agent only
        if scorer is not None:
            scorer.fast_decode = fast

    def timed_update() -> tuple[float, float, int]:
        """(collect s, learn s, tokens) of one update in the current configuration."""
        sync()
        t0 = time.perf_counter()
        rollout = agent.collect(venv)
        sync()
        t1 = time.perf_counter()
        agent.update(rollout)
        sync()
        return t1 - t0, time.perf_counter() - t1, int(rollout.mask.sum())

    # The headline: the default configuration alone, as a user runs it (the other paths, timed
    # in between, measurably slow it down: allocator and thread-pool state).
    configure(*variants["default"])
    for _ in range(3):  # warm-up (allocator and thread pool settle over the first updates)
        agent.update(agent.collect(venv))
    alone = [timed_update() for _ in range(cfg.updates)]
    t_collect = sum(c for c, _, _ in alone)
    t_update = sum(u for _, u, _ in alone)
    tokens = sum(n for _, _, n in alone)
    total = t_collect + t_update
    median_s = statistics.median(c + u for c, u, _ in alone)

    # The prototype loop, with a copy of the generator's initial weights.
    proto_gen = build_generator(gen_cfg, tok.vocab_size).to(dev).eval()
    proto_gen.load_state_dict(initial_state)
    proto = PrototypeLoop(proto_gen, disc, lr=defaults.reinforce.lr)

    def timed_prototype() -> tuple[float, float, int]:
        sync()
        t0 = time.perf_counter()
        tokens_, rewards_ = proto.collect(cfg.batch_size, cfg.max_length)
        sync()
        t1 = time.perf_counter()
        proto.update(tokens_, rewards_)
        sync()
        return t1 - t0, time.perf_counter() - t1, tokens_.numel()

    # Side by side: round robin, each round one update of every variant (the default and the
    # prototype included), so machine noise hits all alike; reported as ratios to that default.
    timing = {name: [0.0, 0.0, 0] for name in [*variants, PROTOTYPE]}  # collect s, update s, tokens
    for flags in variants.values():  # warm-up of every path
        configure(*flags)
        agent.update(agent.collect(venv))
    timed_prototype()
    for _ in range(cfg.updates):
        for name in timing:
            if name == PROTOTYPE:
                times = timed_prototype()
            else:
                configure(*variants[name])
                times = timed_update()
            for i, x in enumerate(times):
                timing[name][i] += x
    configure(*variants["default"])

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
    ref = timing["default"]
    for name, (c, u, n) in timing.items():
        if name != "default":
            results[f"update_tokens_per_s[{name}]"] = n / (c + u)
            results[f"speedup_vs[{name}]"] = (ref[2] / (ref[0] + ref[1])) / (n / (c + u))
    device_name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else machine_description()
    log(f"machine: {device_name}")
    log(
        f"bench agent: B={cfg.batch_size}, T={cfg.max_length} (no EOS: B x T tokens per update), default models, "
        f"reward={defaults.reward.mode}/{defaults.reward.transform} scored through the env (the collection defers D to "
        f"causal passes over finished rows)"
    )
    log(f"  REINFORCE update      {results['update_tokens_per_s']:12,.0f} generator tokens/s ({results['update_ms']:.1f} ms/update, "
        f"mean of {cfg.updates}; median update {results['update_ms_median']:.1f} ms = "
        f"{results['update_tokens_per_s_median']:,.0f} tokens/s)")
    log(f"  time in collection    {100 * results['sampling_fraction']:11.0f} %  (sampling + env + D reward)")
    log(f"  side by side, round robin ({cfg.updates} rounds); default in these rounds: "
        f"{ref[2] / (ref[0] + ref[1]):,.0f} tokens/s")
    for name, (c, u, n) in timing.items():
        if name != "default":
            log(f"    {'' if name == PROTOTYPE else 'variant: '}{name:40s} {n / (c + u):10,.0f} tokens/s "
                f"({1e3 * (c + u) / cfg.updates:.1f} ms/update, {'sampling + D pass' if name == PROTOTYPE else 'collect'} "
                f"{1e3 * c / cfg.updates:.1f} ms); default is {results[f'speedup_vs[{name}]']:.2f}x")
    log(f"  sampling, KV cache    {results['sample_cache_ms']:12.1f} ms for B x {cfg.max_length} tokens (lean decoder; "
        f"transformers forward with the cache: {results['sample_transformers_cache_ms']:.1f} ms)")
    log(f"  sampling, no cache    {results['sample_nocache_ms']:12.1f} ms")
    log(f"  ratio no-cache/cache  {results['cache_vs_nocache']:12.1f}x")
    return results
