"""`seqgan-env bench policy` runs end to end at a tiny size and reports both sides and their ratio."""

from __future__ import annotations

import math

import pytest

pytest.importorskip("stable_baselines3")

from seqgan_benchmarks.speed_policy import PolicyBenchConfig, bench_policy  # noqa: E402


def test_bench_policy_tiny_reports_both_sides():
    lines: list[str] = []
    res = bench_policy(PolicyBenchConfig(n_envs=(2,), block=4, rounds=1), log=lines.append)
    for key in ("policy_ms[kv cache, n_envs=2]", "policy_ms[full forward, n_envs=2]", "cache_speedup[n_envs=2]"):
        assert math.isfinite(res[key]) and res[key] > 0, key
    assert any("KV cache" in line and "full forward" in line for line in lines)


@pytest.mark.parametrize("kwargs", [dict(n_envs=()), dict(n_envs=(0,)), dict(block=0), dict(rounds=0)])
def test_bad_sizes_are_named(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        PolicyBenchConfig(**kwargs)
