"""`seqgan-env bench agent` runs end to end at a tiny size and reports every number."""

from __future__ import annotations

import math

import torch

from agents.bench_agent import AgentBenchConfig, bench_agent


def test_bench_agent_tiny_reports_default_and_ablations():
    lines: list[str] = []
    threads = torch.get_num_threads()
    res = bench_agent(AgentBenchConfig(batch_size=8, max_length=16, updates=1, sample_repeats=1, device="cpu"),
                      log=lines.append)
    assert torch.get_num_threads() == threads  # the overlapped collect gives its threads back
    for key in ("update_tokens_per_s", "update_ms", "sample_cache_ms", "sample_nocache_ms", "cache_vs_nocache",
                "sample_transformers_cache_ms", "update_tokens_per_s[transformers decode (G and D)]",
                "update_tokens_per_s[lean decoder + overlap_env]", "update_tokens_per_s[transformers training forward]",
                "update_tokens_per_s[transformers decode + training forward]", "update_tokens_per_s_median",
                "update_ms_median", "update_tokens_per_s[prototype loop (issue 4's baseline)]"):
        assert math.isfinite(res[key]) and res[key] > 0, key
    text = "\n".join(lines)
    assert "REINFORCE update" in text and "variant" in text and "default is" in text
    assert all(res[k] > 0 for k in res if k.startswith("speedup_vs["))
