"""DiscriminatorReward wrappers: hand-computed rewards, one-pass scoring, eval mode, self-training."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from seqgan_env import TokenGenerationEnv, TokenGenerationVectorEnv
from seqgan_env.envs.spec import EOS_ID
from seqgan_env.rewards.wrappers import DiscriminatorReward, DiscriminatorRewardVector, RewardConfig

from .conftest import tiny_discriminator

A, B_, C = 3, 4, 5  # token ids of 'a', 'b', 'c' in the conftest tokenizer


def _sig(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


def _episode(env, actions):
    env.reset(seed=0)
    out = [env.step(a) for a in actions]
    return [o[1] for o in out], out[-1][4]


# Episode "aba" + EOS under CountScorer('a'): prefix logits a:0, ab:0, aba:1, abaEOS:1.
HAND_LOGITS = [0.0, 0.0, 1.0, 1.0]


@pytest.mark.parametrize(
    "mode,transform,expected",
    [
        ("final", "prob", [0, 0, 0, _sig(1.0)]),
        ("per_step", "prob", [0.5, 0.5, _sig(1.0), _sig(1.0)]),
        ("per_step", "centered", [0.0, 0.0, 2 * _sig(1.0) - 1, 2 * _sig(1.0) - 1]),
        ("per_step", "log", [math.log(0.5), math.log(0.5), math.log(_sig(1.0)), math.log(_sig(1.0))]),
        ("per_step", "logit", HAND_LOGITS),
        ("potential", "logit", [0.0 - 0.25, 0.0, 1.0, 0.0]),
        ("potential", "prob", [0.5 - 0.25, 0.0, _sig(1.0) - 0.5, 0.0]),
    ],
)
def test_single_wrapper_hand_computed(tokenizer, count_scorer, mode, transform, expected):
    env = DiscriminatorReward(
        TokenGenerationEnv(tokenizer=tokenizer, max_length=6),
        count_scorer,
        RewardConfig(mode=mode, transform=transform, potential_baseline=0.25),
    )
    rewards, info = _episode(env, [A, B_, A, EOS_ID])
    assert rewards == pytest.approx(expected, abs=1e-6)
    assert info["text"] == "aba" and info["disc_score"] == pytest.approx(_sig(1.0))
    if mode == "potential":
        final = HAND_LOGITS[-1] if transform == "logit" else _sig(1.0)
        assert sum(rewards) == pytest.approx(final - 0.25, abs=1e-6)


def test_invalid_action_keeps_env_penalty(tokenizer, count_scorer):
    env = DiscriminatorReward(
        TokenGenerationEnv(tokenizer=tokenizer, max_length=6, invalid_action_reward=-7.0), count_scorer
    )
    rewards, info = _episode(env, [A, 0])
    assert rewards == [0.5, -7.0] and info["invalid_action"]


def test_vector_wrapper_hand_computed(tokenizer, count_scorer):
    vec = DiscriminatorRewardVector(
        TokenGenerationVectorEnv(2, tokenizer=tokenizer, max_length=3), count_scorer,
        RewardConfig(mode="per_step", transform="logit")
    )
    vec.reset()
    rows = [vec.step(np.array(a))[1].tolist() for a in ([A, C], [A, EOS_ID], [C, A])]
    # row 0: a, aa, aac -> 0, 1, 1 ; row 1: c, cEOS (done), then autoreset step -> -1, -1, 0
    assert rows == [[0.0, -1.0], [1.0, -1.0], [1.0, 0.0]]


@pytest.mark.parametrize("num_outputs_loss", ["bce", "ce"])
def test_one_pass_equals_per_prefix_recomputation(num_outputs_loss):
    disc = tiny_discriminator(8, seed=3, loss=num_outputs_loss)
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(3, 8, (16, 10), generator=g)  # (B, T)
    one = disc.score_logits(tokens)  # (B, T)
    per = torch.stack([disc.score_logits(tokens[:, : t + 1])[:, -1] for t in range(10)], dim=1)
    assert torch.allclose(one, per, atol=1e-5)


def test_single_wrapper_per_step_equals_prefix_recomputation(tokenizer):
    disc = tiny_discriminator(tokenizer.vocab_size, seed=4)
    env = DiscriminatorReward(TokenGenerationEnv(tokenizer=tokenizer, max_length=6), disc,
                              RewardConfig(mode="per_step", transform="logit"))
    actions = [C, A, B_, B_, A, C]
    rewards, _ = _episode(env, actions)
    full = disc.score_logits(torch.tensor([actions]))[0].tolist()
    assert rewards == pytest.approx(full, abs=1e-5)


@pytest.mark.parametrize("vector", [False, True])
def test_rewards_use_eval_mode_with_dropout(tokenizer, vector):
    """Attention dropout 0.5: identical sequences get identical rewards; D is in eval mode after updates."""
    from seqgan_env.models.discriminator import Discriminator, DiscriminatorConfig
    from seqgan_env.models.networks import ModelConfig

    disc = Discriminator(
        tokenizer.vocab_size,
        model_config=ModelConfig(hidden_size=16, intermediate_size=32, num_heads=2, num_layers=1, attention_dropout=0.5),
        config=DiscriminatorConfig(),
        seed=0,
    )
    real = tokenizer.encode_batch(["abc", "cab"], 4)
    actions = [A, B_, C, EOS_ID]
    if vector:
        env = DiscriminatorRewardVector(TokenGenerationVectorEnv(3, tokenizer=tokenizer, max_length=4), disc, real_data=real)
        env.reset()
        rewards = np.stack([env.step(np.full(3, a))[1] for a in actions])  # (T, 3)
        assert (rewards == rewards[:, :1]).all()  # the 3 identical rows got identical rewards
        env.update_discriminator(tokenizer.encode_batch(["cc", "bb"], 4))
        assert not disc.net.training
        env.reset()
        again = np.stack([env.step(np.full(3, a))[1] for a in actions])
        assert (again == again[:, :1]).all()
    else:
        env = DiscriminatorReward(TokenGenerationEnv(tokenizer=tokenizer, max_length=4), disc, real_data=real)
        first, _ = _episode(env, actions)
        second, _ = _episode(env, actions)
        assert first == second
        env.update_discriminator()
        assert not disc.net.training


@pytest.mark.parametrize("vector", [False, True])
def test_self_training_every_k_episodes(tokenizer, vector):
    disc = tiny_discriminator(tokenizer.vocab_size, seed=5)
    real = tokenizer.encode_batch(["abc", "cab", "ba"], 4)
    cfg = RewardConfig(update_every=3, update_batch_size=2, buffer_size=8, update_steps=1, update_until_accuracy=None)
    snap = lambda: {k: v.clone() for k, v in disc.state_dict().items()}  # noqa: E731
    changed = lambda a, b: any(not torch.equal(a[k], b[k]) for k in a)  # noqa: E731
    if vector:
        env = DiscriminatorRewardVector(TokenGenerationVectorEnv(1, tokenizer=tokenizer, max_length=4), disc, cfg, real_data=real)
        env.reset()
        run_episode = lambda: [env.step(np.array([a])) for a in (A, EOS_ID, A)]  # noqa: E731  (3rd step: autoreset)
    else:
        env = DiscriminatorReward(TokenGenerationEnv(tokenizer=tokenizer, max_length=4), disc, cfg, real_data=real)
        run_episode = lambda: _episode(env, [A, EOS_ID])  # noqa: E731
    before = snap()
    for _ in range(2):
        run_episode()
    assert disc.num_updates == 0 and not changed(before, snap())
    run_episode()
    assert disc.num_updates == 1 and changed(before, snap())
    assert env.trainer.finished_episodes == 3 and len(env.trainer.fake_buffer) == 3


@pytest.mark.parametrize("vector", [False, True])
def test_load_discriminator_state_replaces_weights(tokenizer, vector):
    d1, d2 = tiny_discriminator(tokenizer.vocab_size, seed=6), tiny_discriminator(tokenizer.vocab_size, seed=7)
    if vector:
        env = DiscriminatorRewardVector(TokenGenerationVectorEnv(1, tokenizer=tokenizer, max_length=4), d1,
                                        RewardConfig(mode="per_step"))
        env.reset()
        env.step(np.array([A]))  # builds a KV cache with d1's weights
        env.load_discriminator_state(d2.state_dict())
        r = env.step(np.array([B_]))[1][0]
    else:
        env = DiscriminatorReward(TokenGenerationEnv(tokenizer=tokenizer, max_length=4), d1, RewardConfig(mode="per_step"))
        env.reset()
        env.step(A)
        env.load_discriminator_state(d2.state_dict())
        r = env.step(B_)[1]
    expected = float(torch.sigmoid(d2.score_logits(torch.tensor([[A, B_]]))[0, 1]))
    assert r == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(mode="sparse"), "reward mode 'sparse'"),
        (dict(transform="exp"), "reward transform 'exp'"),
        (dict(update_every=0), "update_every=0"),
        (dict(update_batch_size=0), "update_batch_size=0"),
        (dict(buffer_size=4, update_batch_size=8), "buffer_size=4"),
        (dict(potential_baseline=float("inf")), "potential_baseline"),
    ],
)
def test_reward_config_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        RewardConfig(**kwargs)


def test_update_every_needs_real_data(tokenizer, count_scorer):
    with pytest.raises(ValueError, match="real_data"):
        DiscriminatorReward(TokenGenerationEnv(tokenizer=tokenizer), count_scorer, update_every=2)


def test_update_without_episodes_is_a_clear_error(tokenizer):
    disc = tiny_discriminator(tokenizer.vocab_size)
    env = DiscriminatorReward(TokenGenerationEnv(tokenizer=tokenizer, max_length=4), disc, real_data=tokenizer.encode_batch(["ab"], 4))
    with pytest.raises(ValueError, match="no complete generated sequence"):
        env.update_discriminator()
