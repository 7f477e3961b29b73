"""TokenGenerationVectorEnv: same behaviour as SyncVectorEnv over the single env, batched API."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode, SyncVectorEnv

from seqgan_env import TokenGenerationEnv, TokenGenerationVectorEnv
from seqgan_env.envs.spec import PAD_ID
from seqgan_env.rewards.wrappers import DiscriminatorReward, DiscriminatorRewardVector, RewardConfig
from seqgan_env.testing import assert_vector_matches_single, check_vector_env

from .conftest import CountScorer, tiny_discriminator

B, T, V = 6, 5, 6


def _pair(tokenizer, wrap_single=None, wrap_vector=None, **env_kw):
    single = lambda: TokenGenerationEnv(tokenizer=tokenizer, max_length=T, **env_kw)  # noqa: E731
    fns = [(lambda: wrap_single(single())) if wrap_single else single for _ in range(B)]
    sync = SyncVectorEnv(fns, autoreset_mode=AutoresetMode.NEXT_STEP)
    vec = TokenGenerationVectorEnv(B, tokenizer=tokenizer, max_length=T, **env_kw)
    return sync, (wrap_vector(vec) if wrap_vector else vec)


def _run_both(sync, vec, steps=60, seed=0, atol=0.0, on_step=None):
    """Same seed and actions (some masked): obs, flags, rewards and texts match step by step (the kit's comparison)."""
    out = assert_vector_matches_single(vec, sync, steps=steps, seed=seed, atol=atol, on_step=on_step)
    assert out["finished"] > 5  # many autoresets were exercised


@pytest.mark.parametrize("env_kw", [{}, dict(min_length=2), dict(allow_eos=False), dict(invalid_action_reward=-3.0)])
def test_matches_sync_vector_env_without_reward(tokenizer, env_kw):
    _run_both(*_pair(tokenizer, **env_kw))
    check_vector_env(_pair(tokenizer, **env_kw)[1])  # the token rule per row, partial reset, vector == single


@pytest.mark.parametrize("mode", ["final", "per_step", "potential"])
@pytest.mark.parametrize("transform", ["prob", "log"])
def test_matches_sync_with_stub_scorer_exactly(tokenizer, mode, transform):
    scorer = CountScorer(target=3)
    cfg = RewardConfig(mode=mode, transform=transform, potential_baseline=0.1)
    _run_both(
        *_pair(
            tokenizer,
            wrap_single=lambda e: DiscriminatorReward(e, scorer, cfg),
            wrap_vector=lambda v: DiscriminatorRewardVector(v, scorer, cfg),
        )
    )
    # the reward accounting of the mode per row (potential telescopes), also across a partial reset
    check_vector_env(_pair(tokenizer, wrap_vector=lambda v: DiscriminatorRewardVector(v, scorer, cfg))[1])


@pytest.mark.parametrize("mode", ["final", "per_step", "potential"])
@pytest.mark.parametrize("incremental", [True, False])
def test_matches_sync_with_discriminator(tokenizer, mode, incremental):
    disc = tiny_discriminator(V, seed=1)
    cfg = RewardConfig(mode=mode, transform="logit")
    _run_both(
        *_pair(
            tokenizer,
            wrap_single=lambda e: DiscriminatorReward(e, disc, cfg),
            wrap_vector=lambda v: DiscriminatorRewardVector(v, disc, cfg, incremental=incremental),
        ),
        steps=120,  # > capacity (4 x T) so the KV cache is rebuilt mid-episode
        atol=1e-5,
    )


def test_matches_sync_across_discriminator_updates(tokenizer):
    """D changes mid-run (as a callback would do between rollouts): rewards still match."""
    disc = tiny_discriminator(V, seed=2, lr=0.05)
    real = tokenizer.encode_batch(["abc", "cab", "ab"] * 4, T)
    cfg = RewardConfig(mode="potential", transform="prob")
    sync, vec = _pair(
        tokenizer,
        wrap_single=lambda e: DiscriminatorReward(e, disc, cfg),
        wrap_vector=lambda v: DiscriminatorRewardVector(v, disc, cfg, real_data=real),
    )
    fake = tokenizer.encode_batch(["cccc", "bb", "a"] * 4, T)
    before = {k: v.clone() for k, v in disc.state_dict().items()}

    def maybe_update(i):
        if i % 17 == 16:
            vec.update_discriminator(fake)  # updates the shared D and drops the vector KV cache

    _run_both(sync, vec, steps=70, atol=1e-5, on_step=maybe_update)
    assert any(not torch.equal(before[k], v) for k, v in disc.state_dict().items())


def test_make_vec_gives_native_vector_env():
    venv = gym.make_vec("seqgan_env:SeqGAN-v1", num_envs=4, vectorization_mode="vector_entry_point")
    assert isinstance(venv.unwrapped, TokenGenerationVectorEnv)
    assert isinstance(venv, DiscriminatorRewardVector)
    assert venv.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    obs, _ = venv.reset(seed=0)
    assert obs.shape == (4, 12) and venv.single_action_space == gym.spaces.Discrete(29)
    obs, r, te, tr, info = venv.step(np.full(4, 3))
    assert r.shape == (4,) and np.isfinite(r).all() and (obs[:, 0] == 3).all()


def test_torch_mode_keeps_tensors(tokenizer):
    vec = DiscriminatorRewardVector(
        TokenGenerationVectorEnv(B, tokenizer=tokenizer, max_length=T, return_torch=True), tiny_discriminator(V)
    )
    obs, _ = vec.reset()
    obs, r, te, tr, _ = vec.step(torch.full((B,), 4))
    assert all(torch.is_tensor(x) for x in (obs, r, te, tr))
    assert isinstance(vec.action_masks(), torch.Tensor) and vec.action_masks().shape == (B, V)


def test_next_step_autoreset_ignores_action(tokenizer):
    vec = TokenGenerationVectorEnv(2, tokenizer=tokenizer, max_length=2)
    vec.reset()
    vec.step(np.array([3, 3]))
    _, _, te, _, info = vec.step(np.array([4, 2]))
    assert te.tolist() == [True, True] and info["text"].tolist() == ["ab", "a"]
    obs, r, te, tr, info = vec.step(np.array([0, 0]))  # PAD would be masked, but this step only resets
    assert (obs == PAD_ID).all() and r.tolist() == [0.0, 0.0] and not te.any() and info == {}


def test_reset_mask_resets_only_chosen(tokenizer):
    vec = TokenGenerationVectorEnv(3, tokenizer=tokenizer, max_length=4)
    vec.reset()
    vec.step(np.array([3, 4, 5]))
    obs, _ = vec.reset(options={"reset_mask": np.array([True, False, True])})
    assert obs[:, 0].tolist() == [PAD_ID, 4, PAD_ID]


@pytest.mark.parametrize("mode", ["final", "per_step", "potential"])
def test_reset_mask_keeps_the_other_rows_rewards(tokenizer, mode):
    """Rows left out of reset_mask go on: their tokens, and the wrapper's cached prefix scores (the kit checks
    the rewards of those rows after a partial reset, potential's telescoping included)."""
    vec = DiscriminatorRewardVector(TokenGenerationVectorEnv(B, tokenizer=tokenizer, max_length=T), CountScorer(3),
                                    RewardConfig(mode=mode, transform="logit"))
    stats = check_vector_env(vec, steps=40)
    assert stats["partial_reset"] == [0, 2, 4] and stats["compared"]


@pytest.mark.parametrize(
    "actions,match",
    [
        (np.array([3, 3, 9]), r"actions\[2\]=9 is outside"),
        (np.array([3, 3]), "shape"),
        (np.array([3.0, 3.0, 3.0]), "integer"),
    ],
)
def test_bad_actions_raise(tokenizer, actions, match):
    vec = TokenGenerationVectorEnv(3, tokenizer=tokenizer, max_length=4)
    vec.reset()
    with pytest.raises(ValueError, match=match):
        vec.step(actions)


def test_step_before_reset_and_bad_options(tokenizer):
    vec = TokenGenerationVectorEnv(2, tokenizer=tokenizer)
    with pytest.raises(RuntimeError, match="reset"):
        vec.step(np.array([3, 3]))
    with pytest.raises(ValueError, match="reset_mask"):
        vec.reset(options={"reset_mask": np.array([1, 0])})
    with pytest.raises(ValueError, match="not supported"):
        vec.reset(options={"seed_everything": True})
    with pytest.raises(ValueError, match="num_envs=0"):
        TokenGenerationVectorEnv(0, tokenizer=tokenizer)


@pytest.mark.parametrize("seed, exc, named", [
    ([1, 2], ValueError, "has 2 seed(s) for 4 envs"),
    ([1, 2, 3, 4, 5], ValueError, "has 5 seed(s) for 4 envs"),
    ([], ValueError, "has 0 seed(s) for 4 envs"),
    ([1, 2, 3, 4.5], TypeError, "seed 4.5 is a float"),
    (1.5, TypeError, "seed must be an int or a list of 4 ints"),
    ("7", TypeError, "seed must be an int or a list of 4 ints"),
    (True, TypeError, "seed must be an int or a list of 4 ints"),
])
def test_reset_refuses_a_seed_list_not_one_per_env(seed, exc, named):
    """A list of seeds has one per env (Gymnasium's vector convention); the error names the value and the fix."""
    import re

    vec = TokenGenerationVectorEnv(4, vocab_size=8, max_length=4)
    with pytest.raises(exc, match=re.escape(named)):
        vec.reset(seed=seed)


def test_reset_takes_an_int_or_one_seed_per_env():
    vec = TokenGenerationVectorEnv(4, vocab_size=8, max_length=4)
    vec.reset(seed=3)
    first = vec.np_random.integers(1 << 30)
    vec.reset(seed=[3, 4, 5, 6])  # seeded from the first, as before
    assert vec.np_random.integers(1 << 30) == first
    vec.reset(seed=np.array([3, 4, 5, 6]))
    assert vec.np_random.integers(1 << 30) == first
