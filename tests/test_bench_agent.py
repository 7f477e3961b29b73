"""`seqgan-env bench agent` runs end to end at a tiny size and reports every number."""

from __future__ import annotations

import math

import torch

from seqgan_benchmarks.speed_agent import AgentBenchConfig, bench_agent


def test_bench_agent_tiny_reports_default_and_ablations():
    lines: list[str] = []
    threads = torch.get_num_threads()
    res = bench_agent(AgentBenchConfig(batch_size=8, max_length=16, updates=1, sample_repeats=1, device="cpu"),
                      log=lines.append)
    assert torch.get_num_threads() == threads
    for key in ("update_tokens_per_s", "update_ms", "sample_cache_ms", "sample_nocache_ms", "cache_vs_nocache",
                "sample_transformers_cache_ms", "update_tokens_per_s[transformers decode (G and D)]",
                "update_tokens_per_s[transformers training forward]",
                "update_tokens_per_s[transformers decode + training forward]", "update_tokens_per_s_median",
                "update_ms_median", "update_tokens_per_s[prototype loop (issue 4's baseline)]"):
        assert math.isfinite(res[key]) and res[key] > 0, key
    text = "\n".join(lines)
    assert "REINFORCE update" in text and "variant" in text and "default is" in text
    assert all(res[k] > 0 for k in res if k.startswith("speedup_vs["))


def test_prototype_loop_does_the_work_it_is_timed_for():
    """The baseline is a real REINFORCE loop: T tokens per row (no PAD/BOS/EOS), potential rewards that
    telescope to the final discriminator score, and an update that moves the generator."""
    from seqgan_benchmarks.speed_agent import PrototypeLoop
    from seqgan_env.models.discriminator import Discriminator
    from seqgan_env.models.networks import ModelConfig, build_generator

    torch.manual_seed(0)
    cfg = ModelConfig(hidden_size=16, intermediate_size=32, num_heads=2, num_layers=1, max_position_embeddings=16)
    gen = build_generator(cfg, 12).eval()
    disc = Discriminator(12, cfg, seed=0)
    loop = PrototypeLoop(gen, disc, lr=1e-2)
    tokens, rewards = loop.collect(6, 9)
    assert tokens.shape == rewards.shape == (6, 9) and int(tokens.min()) >= 3
    final = torch.sigmoid(disc.score_logits(tokens))[:, -1]
    torch.testing.assert_close(rewards.sum(1), final)
    before = [p.detach().clone() for p in gen.parameters()]
    loop.update(tokens, rewards)
    assert any(not torch.equal(b, p) for b, p in zip(before, gen.parameters()))
