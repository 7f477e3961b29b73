"""Smoke test of the SB3 benchmark: a tiny configuration runs and returns finite, positive numbers."""

import math

import pytest

pytest.importorskip("stable_baselines3")

from seqgan_benchmarks.speed_sb3 import SB3BenchConfig, bench_agents  # noqa: E402


def test_bench_agents_tiny_config_returns_all_numbers():
    cfg = SB3BenchConfig(dummy_envs=2, native_envs=(2, 4), ppo_timesteps=64, repeats=1, n_steps=16, batch_size=32,
                         n_epochs=1, toy_ppo_envs=4, toy_reinforce_batch=8, time_limit_s=1.0,
                         torch_threads=1)
    lines: list[str] = []
    results = bench_agents(cfg, log=lines.append)

    rates = ["dummy2_steps_per_s", "native2_steps_per_s", "native4_steps_per_s", "native2_vs_dummy",
             "native4_vs_dummy", "reinforce_tokens_per_s", "ppo_tokens_per_s", "reinforce_vs_ppo_tokens"]
    for key in rates:
        assert math.isfinite(results[key]) and results[key] > 0, key
    for side in ("reinforce", "ppo"):
        assert -1.0 <= results[f"{side}_final_reward"] <= 1.0  # mean per-token reward (invalid actions: -1)
        t = results[f"{side}_time_to_target_s"]
        assert math.isnan(t) or 0 < t <= 1.0 + 5.0  # NaN = "not reached" within the cap
    assert "ppo_vs_reinforce_time" in results
    assert lines[0].startswith("machine: ") and any("REINFORCE/PPO" in line for line in lines)
