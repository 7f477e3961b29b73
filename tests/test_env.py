"""TokenGenerationEnv: spec, masks, checkers, registration, and fuzzed invariants."""

from __future__ import annotations

import subprocess
import sys
import warnings

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seqgan_env.envs.env import TokenGenerationEnv
from seqgan_env.envs.spec import BOS_ID, EOS_ID, PAD_ID
from seqgan_env.testing import check_env

MODES = ["final", "per_step", "potential"]


@pytest.mark.parametrize("allow_eos,min_length", [(True, 0), (True, 1), (True, 3), (False, 1)])
def test_raw_env_passes_both_checkers(tokenizer, allow_eos, min_length):
    """Gymnasium's and SB3's checkers, then the token rule (seqgan_env.testing.check_env)."""
    env = TokenGenerationEnv(tokenizer=tokenizer, max_length=5, min_length=min_length, allow_eos=allow_eos)
    stats = check_env(env)
    assert stats["checkers"] == ["gymnasium", "stable_baselines3"]


@pytest.mark.parametrize("mode", MODES)
def test_made_env_passes_both_checkers_for_every_mode(mode):
    """The registered env: both checkers, the token rule and the reward accounting of its mode."""
    env = gym.make("seqgan_env:SeqGAN-v1", reward_mode=mode)
    check_env(env.unwrapped, sb3_checker=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "env is wrapped" advice from the gymnasium checker
        check_env(env)


def test_registration_in_fresh_interpreter():
    code = (
        "import gymnasium as gym\n"
        "env = gym.make('seqgan_env:SeqGAN-v1')\n"
        "from seqgan_env.rewards.wrappers import DiscriminatorReward\n"
        "assert isinstance(env.unwrapped, __import__('seqgan_env').TokenGenerationEnv)\n"
        "assert any(isinstance(w, DiscriminatorReward) for w in [env.env.env])\n"
        "obs, _ = env.reset(seed=0); obs, r, te, tr, info = env.step(3)\n"
        "print(type(r).__name__, obs.shape)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "float (12,)"


def test_spaces(tokenizer):
    env = TokenGenerationEnv(tokenizer=tokenizer, max_length=7)
    assert env.action_space == gym.spaces.Discrete(6)
    assert env.observation_space.shape == (7,) and env.observation_space.dtype == np.int64
    obs, info = env.reset(seed=1)
    assert (obs == PAD_ID).all() and info == {}


@pytest.mark.parametrize(
    "allow_eos,min_length,written,eos_valid",
    [(True, 1, 0, False), (True, 1, 1, True), (True, 0, 0, True), (True, 3, 2, False), (False, 1, 4, False)],
)
def test_action_masks(tokenizer, allow_eos, min_length, written, eos_valid):
    env = TokenGenerationEnv(tokenizer=tokenizer, max_length=6, min_length=min_length, allow_eos=allow_eos)
    env.reset()
    for _ in range(written):
        env.step(3)
    mask = env.action_masks()
    assert mask.shape == (6,) and mask.dtype == bool
    assert not mask[PAD_ID] and not mask[BOS_ID]
    assert mask[EOS_ID] == eos_valid
    assert mask[3:].all()


@pytest.mark.parametrize("bad", [PAD_ID, BOS_ID, EOS_ID])
def test_masked_action_has_defined_outcome(tokenizer, bad):
    env = TokenGenerationEnv(tokenizer=tokenizer, max_length=6, min_length=1, invalid_action_reward=-2.5)
    env.reset()
    obs, reward, terminated, truncated, info = env.step(bad)  # EOS at length 0 < min_length is masked too
    assert terminated and not truncated
    assert reward == -2.5
    assert info["invalid_action"] is True and info["text"] == ""
    assert (obs == PAD_ID).all()  # nothing written


def test_episode_ends_on_eos_with_text(tokenizer):
    env = TokenGenerationEnv(tokenizer=tokenizer, max_length=6)
    env.reset()
    for tok in (4, 3):  # "ba"
        _, r, term, trunc, info = env.step(tok)
        assert (r, term, trunc, info) == (0.0, False, False, {})
    obs, r, term, trunc, info = env.step(EOS_ID)
    assert term and not trunc and r == 0.0
    assert info == {"text": "ba"}
    assert obs.tolist() == [4, 3, EOS_ID, 0, 0, 0]


def test_episode_ends_at_max_length_as_terminated(tokenizer):
    env = TokenGenerationEnv(tokenizer=tokenizer, max_length=3)
    env.reset()
    flags = [env.step(5)[2:4] for _ in range(3)]
    assert flags == [(False, False), (False, False), (True, False)]
    assert env.text == "ccc"


def test_step_after_end_needs_reset(tokenizer):
    env = TokenGenerationEnv(tokenizer=tokenizer, max_length=1)
    env.reset()
    env.step(3)
    with pytest.raises(RuntimeError, match="call reset"):
        env.step(3)


@pytest.mark.parametrize("action,match", [(6, "outside the action space"), (-1, "outside"), (2.5, "integer"), ([3, 4], "shape")])
def test_bad_actions_raise(tokenizer, action, match):
    env = TokenGenerationEnv(tokenizer=tokenizer, max_length=4)
    env.reset()
    with pytest.raises(ValueError, match=match):
        env.step(action)


def test_render_ansi(tokenizer):
    env = TokenGenerationEnv(tokenizer=tokenizer, max_length=4, render_mode="ansi")
    env.reset()
    env.step(5)
    env.step(3)
    assert env.render() == "ca"


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(max_length=0), "max_length=0"),
        (dict(min_length=5, max_length=4), "min_length=5"),
        (dict(render_mode="human"), "render_mode"),
        (dict(invalid_action_reward=float("nan")), "invalid_action_reward"),
    ],
)
def test_bad_config_raises(tokenizer, kwargs, match):
    with pytest.raises(ValueError, match=match):
        TokenGenerationEnv(tokenizer=tokenizer, **kwargs)


def test_reset_rejects_unknown_options(tokenizer):
    env = TokenGenerationEnv(tokenizer=tokenizer)
    with pytest.raises(ValueError, match="not supported"):
        env.reset(options={"prefix": "ab"})


@settings(max_examples=60, deadline=None)
@given(
    actions=st.lists(st.integers(min_value=0, max_value=5), min_size=1, max_size=30),
    max_length=st.integers(min_value=1, max_value=6),
    min_length=st.integers(min_value=0, max_value=2),
)
def test_fuzz_invariants(actions, max_length, min_length):
    """The token rule on fuzzed action sequences (the kit's step-by-step model of the spec)."""
    tok_env = TokenGenerationEnv(vocab_size=6, max_length=max_length, min_length=min(min_length, max_length))
    check_env(tok_env, actions=actions, gym_checker=False, sb3_checker=False)
