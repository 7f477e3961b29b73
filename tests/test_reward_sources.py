"""Weighted reward sources: hand-computed sums, per-source info and metrics, bad sources, config round trip."""

from __future__ import annotations

import json
import math
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode, SyncVectorEnv

import seqgan_env  # noqa: F401  registers SeqGAN-v1
from seqgan_agents.lifecycle import resume_run
from seqgan_agents.trainer_config import TrainConfig, train_config_from_dict
from seqgan_env import TokenGenerationEnv, TokenGenerationVectorEnv
from seqgan_env.cli import main
from seqgan_env.envs.spec import EOS_ID, PAD_ID
from seqgan_env.rewards.modes import step_rewards
from seqgan_env.rewards.sources import RewardSource, as_sources, split_kl, weighted
from seqgan_env.rewards.wrappers import DiscriminatorReward, DiscriminatorRewardVector, RewardConfig
from seqgan_env.runs.configio import config_to_dict

from .conftest import tiny_discriminator
from .test_train import tiny_config

A, B_, C = 3, 4, 5  # token ids of 'a', 'b', 'c' in the conftest tokenizer
HERE = "tests.test_reward_sources"


def text_length(tokens: torch.Tensor, texts: list[str]) -> list[float]:
    """(K, T), K texts -> K scores: the number of characters (an import-path source of these tests)."""
    return [float(len(t)) for t in texts]


def ends_in_a(tokens: torch.Tensor, texts: list[str]) -> torch.Tensor:
    """1 for a sequence whose last symbol is 'a', from the tokens (EOS and PAD skipped)."""
    ids = torch.where(tokens == EOS_ID, PAD_ID, tokens)  # (K, T)
    last = ids.gather(1, ((ids != PAD_ID).sum(1) - 1).clamp(min=0).unsqueeze(1)).squeeze(1)  # (K,)
    return (last == A).float()


def _episode(env, actions):
    env.reset(seed=0)
    out = [env.step(a) for a in actions]
    return [o[1] for o in out], [o[4] for o in out]


# "aba" + EOS under CountScorer('a') with mode per_step, transform logit: D pays 0, 0, 1, 1.
# text_length("aba") = 3 and ends_in_a = 1, both paid on the last step only.
@pytest.mark.parametrize(
    "sources,expected",
    [
        (None, {"discriminator": [0, 0, 1, 1]}),
        (f"discriminator=0.5,{HERE}:text_length=2", {"discriminator": [0, 0, 0.5, 0.5], "text_length": [0, 0, 0, 6]}),
        ([RewardSource("discriminator", weight=-1.0), text_length, RewardSource("ends_in_a", ends_in_a, 0.25)],
         {"discriminator": [0, 0, -1, -1], "text_length": [0, 0, 0, 3], "ends_in_a": [0, 0, 0, 0.25]}),
        (f"{HERE}:text_length=0.1", {"text_length": [0, 0, 0, 0.3]}),  # no discriminator at all
        ("discriminator=0", {"discriminator": [0, 0, 0, 0]}),
    ],
)
def test_single_env_pays_the_weighted_sum_and_reports_each_source(tokenizer, count_scorer, sources, expected):
    env = DiscriminatorReward(TokenGenerationEnv(tokenizer=tokenizer, max_length=6), count_scorer,
                              RewardConfig(mode="per_step", transform="logit"), sources=sources)
    rewards, infos = _episode(env, [A, B_, A, EOS_ID])
    total = [sum(parts[t] for parts in expected.values()) for t in range(4)]
    assert rewards == pytest.approx(total, abs=1e-6)
    for name, values in expected.items():
        assert [info[f"reward/{name}"] for info in infos] == pytest.approx(values, abs=1e-6)
    assert {k for k in infos[-1] if k.startswith("reward/")} == {f"reward/{n}" for n in expected}
    assert ("disc_score" in infos[-1]) == ("discriminator" in expected)


def test_invalid_action_pays_the_env_penalty_and_no_source(tokenizer, count_scorer):
    env = DiscriminatorReward(TokenGenerationEnv(tokenizer=tokenizer, max_length=6, invalid_action_reward=-7.0),
                              count_scorer, sources=f"discriminator,{HERE}:text_length")
    rewards, infos = _episode(env, [A, PAD_ID])  # PAD is never valid: the episode ends unscored
    assert rewards == [0.5, -7.0]
    assert infos[-1]["reward/discriminator"] == 0.0 and infos[-1]["reward/text_length"] == 0.0


@pytest.mark.parametrize("mode", ["per_step", "potential", "final"])
def test_vector_wrapper_matches_sync_vector_env_of_single_wrappers(tokenizer, count_scorer, mode):
    spec = f"discriminator=0.5,{HERE}:text_length=2,{HERE}:ends_in_a=-1"
    cfg = RewardConfig(mode=mode, transform="logit", sources=spec)
    n, t = 4, 4
    vec = DiscriminatorRewardVector(TokenGenerationVectorEnv(n, tokenizer=tokenizer, max_length=t), count_scorer, cfg)
    sync = SyncVectorEnv([lambda: DiscriminatorReward(TokenGenerationEnv(tokenizer=tokenizer, max_length=t),
                                                      count_scorer, cfg) for _ in range(n)],
                         autoreset_mode=AutoresetMode.NEXT_STEP)
    vec.reset(seed=0)
    sync.reset(seed=0)
    rng = np.random.default_rng(1)
    paid = {"text_length": 0.0, "ends_in_a": 0.0}
    for _ in range(40):
        masks = vec.action_masks()
        actions = np.array([rng.choice(np.flatnonzero(m)) for m in masks])
        actions[rng.random(n) < 0.05] = PAD_ID  # a masked action now and then
        _, r_vec, term_vec, _, info_vec = vec.step(actions)
        _, r_sync, term_sync, _, info_sync = sync.step(actions)
        assert np.allclose(r_vec, r_sync, atol=1e-6) and (term_vec == term_sync).all()
        for key in ("reward/discriminator", "reward/text_length", "reward/ends_in_a"):
            assert np.allclose(info_vec[key], info_sync.get(key, np.zeros(n)), atol=1e-6), key
        paid = {k: v + float(np.abs(info_vec[f"reward/{k}"]).sum()) for k, v in paid.items()}
        assert np.allclose(r_vec, sum(info_vec[k] for k in info_vec if k.startswith("reward/"))
                           + np.where(info_vec.get("invalid_action", np.zeros(n, bool)), -1.0, 0.0), atol=1e-6)
    assert all(v > 0 for v in paid.values())  # the callables did pay something


@pytest.mark.parametrize("mode", ["per_step", "potential", "final"])
@pytest.mark.parametrize("sources", [None, "discriminator", [RewardSource("discriminator", weight=1)]])
def test_default_sources_pay_the_discriminator_reward_bit_for_bit(mode, sources):
    """D alone at weight 1 pays exactly step_rewards of one causal pass, as before sources existed."""
    disc = tiny_discriminator(8, seed=3)
    vec = DiscriminatorRewardVector(TokenGenerationVectorEnv(6, vocab_size=8, max_length=5), disc,
                                    RewardConfig(mode=mode, transform="log"), incremental=False, sources=sources)
    base = vec.unwrapped
    vec.reset(seed=0)
    rng = np.random.default_rng(0)
    for _ in range(20):
        actions = np.array([rng.choice(np.flatnonzero(m)) for m in vec.action_masks()])
        _, rewards, terminated, _, _ = vec.step(actions)
        pos = (base.lengths - 1).clamp(min=0)
        done = torch.as_tensor(terminated)
        # final mode scores only the finished rows (a narrower pass); the others every row's prefixes
        rows = (base.last_written & done) if mode == "final" else torch.ones_like(done)
        expected = torch.zeros(6)
        if bool(rows.any()):
            with torch.no_grad():
                logits = disc.score_logits(base.tokens[rows, : max(int(base.lengths[rows].max()), 1)])
            expected[rows] = step_rewards(logits, pos[rows], done[rows], mode, "log")
        expected = torch.where(base.last_written, expected, torch.zeros_like(expected))
        assert torch.equal(torch.as_tensor(rewards), expected)
    x = torch.randn(4)
    assert weighted(x, 1.0) is x  # weight 1 multiplies nothing: not even a rounding


def _shape_k1(tokens, texts):
    return torch.zeros(len(texts), 1)


def _strings(tokens, texts):
    return ["high"] * len(texts)


def _nan(tokens, texts):
    return [math.nan] * len(texts)


def _too_few(tokens, texts):
    return [1.0] * (len(texts) - 1)


@pytest.mark.parametrize(
    "fn,match",
    [(_shape_k1, r"'_shape_k1' returned shape \(1, 1\) for 1 sequences"), (_strings, "not numbers"),
     (_nan, "non-finite score"), (_too_few, r"shape \(0,\) for 1 sequences")],
)
def test_bad_callable_output_names_the_source_and_the_fix(tokenizer, count_scorer, fn, match):
    env = DiscriminatorReward(TokenGenerationEnv(tokenizer=tokenizer, max_length=6), count_scorer,
                              sources=["discriminator", fn])
    env.reset(seed=0)
    env.step(A)  # not finished: the callable is not asked yet
    with pytest.raises(ValueError, match=match) as err:
        env.step(EOS_ID)
    assert "fix:" in str(err.value)


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda: [RewardSource("x", 3)], "not callable"),
        (lambda: [RewardSource("discriminator", text_length)], "reserved"),
        (lambda: [RewardSource("two words", text_length)], "identifier"),
        (lambda: "discriminator=nan", "finite number"),
        (lambda: [RewardSource("discriminator", weight=True)], "finite number"),
        (lambda: "discriminator=high", "not a number"),
        (lambda: "discrimnator", "unknown"),
        (lambda: "no_such_module_17:score", "cannot import module 'no_such_module_17'"),
        (lambda: "math:no_such_function", "has no attribute"),
        (lambda: "math:pi", "not a function"),
        (lambda: f"discriminator,{HERE}:text_length,{HERE}:text_length=2", "twice"),
        (lambda: " , ", "name no source"),
        (lambda: 3.0, "spec string or a list"),
        (lambda: "discriminator,kl=0.1", "agent's KL term"),
    ],
)
def test_bad_sources_are_refused_with_the_value_and_the_fix(tokenizer, count_scorer, make, match):
    with pytest.raises(ValueError, match=match):
        DiscriminatorReward(TokenGenerationEnv(tokenizer=tokenizer, max_length=6), count_scorer, sources=make())


def test_reward_config_takes_only_a_spec_string():
    with pytest.raises(ValueError, match="must be a spec string"):
        RewardConfig(sources=[text_length])
    with pytest.raises(ValueError, match="cannot import module"):
        RewardConfig(sources="no_such_module_17:score")  # checked on construction, before any training


@pytest.mark.parametrize("vector", [False, True])
def test_gym_make_and_make_vec_take_reward_sources(vector):
    spec = f"discriminator=1.0,{HERE}:text_length=0.5"
    if vector:
        env = gym.make_vec("seqgan_env:SeqGAN-v1", num_envs=3, vectorization_mode="vector_entry_point",
                           reward_sources=spec)
    else:
        env = gym.make("seqgan_env:SeqGAN-v1", reward_sources=spec)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    finished = 0
    for _ in range(30):
        masks = env.unwrapped.action_masks() if not vector else env.action_masks()
        action = (np.array([rng.choice(np.flatnonzero(m)) for m in masks]) if vector
                  else int(rng.choice(np.flatnonzero(masks))))
        _, reward, terminated, _, info = env.step(action)
        assert np.allclose(reward, info["reward/discriminator"] + info["reward/text_length"], atol=1e-6)
        texts = np.atleast_1d(info.get("text", np.array([None] * (3 if vector else 1), dtype=object)))
        for i, done in enumerate(np.atleast_1d(terminated)):
            if done:
                assert np.atleast_1d(info["reward/text_length"])[i] == pytest.approx(0.5 * len(texts[i]))
                finished += 1
        if not vector and terminated:
            env.reset()
    assert finished > 0


# -- the trainer -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec,kl_coef,expected",
    [
        ("discriminator,kl=0.1", 0.0, 0.1),  # kl sets reinforce.kl_coef
        ("discriminator,kl=0.1", 0.1, 0.1),  # or agrees with it
        ("discriminator", 0.2, 0.2),  # kl_coef alone still works (reward/kl logged all the same)
        ("discriminator,kl=0.1", 0.2, "disagree"),
        ("discriminator,kl=-0.1", 0.0, ">= 0"),
        ("kl=0.1", 0.0, "no source the env pays"),
    ],
)
def test_train_config_kl_source_is_reinforce_kl_coef(spec, kl_coef, expected):
    data = config_to_dict(TrainConfig())
    data["reward"]["sources"] = spec
    data["reinforce"]["kl_coef"] = kl_coef
    if isinstance(expected, str):
        with pytest.raises(ValueError, match=expected):
            train_config_from_dict(data)
        return
    cfg = train_config_from_dict(data)
    assert cfg.reinforce.kl_coef == expected
    assert train_config_from_dict(json.loads(json.dumps(config_to_dict(cfg)))) == cfg  # config.json round trip


def test_kl_source_needs_the_reinforce_agent():
    data = config_to_dict(TrainConfig())
    data.update(agent="ppo")
    data["reward"]["sources"] = "discriminator,kl=0.1"
    with pytest.raises(ValueError, match="agent=ppo has none"):
        train_config_from_dict(data)


def test_split_kl():
    env_sources, kl = split_kl(f"discriminator=2,kl=0.05,{HERE}:text_length")
    assert [s.name for s in env_sources] == ["discriminator", "text_length"] and kl == 0.05
    assert split_kl("discriminator")[1] is None
    assert [s.spec for s in as_sources(f"discriminator=2,{HERE}:text_length=0.5")] == [
        "discriminator=2", f"{HERE}:text_length=0.5"]


def test_cli_train_logs_every_source_then_resume_and_plot(tmp_path, capsys):
    spec = f"discriminator=1.0,{HERE}:text_length=-0.1,kl=0.05"
    rc = main([
        "train", "--no-progress", "--updates", "3", "--pretrain-steps", "2",
        "--set", f"out_dir={tmp_path}", "--set", "schedule.eval_samples=10", "--set", "schedule.d_pretrain_steps=1",
        "--set", "reinforce.batch_size=8", "--set", "d_updates.batch_size=8",
        "--generator.hidden-size", "16", "--generator.intermediate-size", "32", "--generator.num-layers", "1",
        "--reward.sources", spec,
    ])
    assert rc == 0, capsys.readouterr().err
    run = next(Path(tmp_path).iterdir())
    saved = json.loads((run / "config.json").read_text())["config"]
    assert saved["reward"]["sources"] == spec and saved["reinforce"]["kl_coef"] == 0.05
    updates = [m for m in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if "reward_mean" in m]
    assert len(updates) == 3
    for m in updates:
        # the env's sources add up to the env reward; text_length pays -0.1 x the mean text length
        assert m["reward/discriminator"] + m["reward/text_length"] == pytest.approx(m["reward_mean"], abs=1e-5)
        assert -0.1 * 13 <= m["reward/text_length"] < 0
        # reward/kl = -kl_coef x the episode's summed KL, mean over episodes = -kl_coef x kl x mean length
        assert m["reward/kl"] == pytest.approx(-m["kl_coef"] * m["kl"] * m["episode_length_mean"], rel=1e-4, abs=1e-9)
    assert main(["plot", str(run)]) == 0
    assert (run / "plots" / "reward_sources.png").is_file()
    resumed = resume_run(run)  # config.json rebuilds the sources: the callable is imported again
    try:
        assert [s.name for s in resumed.venv.combiner.sources] == ["discriminator", "text_length"]
        assert resumed.agent.kl_coef == pytest.approx(0.05)
    finally:
        resumed.run.close()


def test_trainer_default_logs_the_discriminator_as_the_only_source(tmp_path):
    from seqgan_agents.lifecycle import new_run

    trainer = new_run(tiny_config(tmp_path, updates=1))
    try:
        trainer.pretrain()
        m = trainer.train_step()
    finally:
        trainer.run.close()
    assert sorted(k for k in m if k.startswith("reward/")) == ["reward/discriminator"]
    assert m["reward/discriminator"] == pytest.approx(m["reward_mean"], abs=1e-6)
