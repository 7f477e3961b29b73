"""Test your own reward source with seqgan-env's test kit: run `python -m pytest examples/test_custom_reward.py`.

`vowel_ratio` is a user's reward source: f(tokens (K, T), texts) -> K scores, one per finished
sequence. `check_reward_source` checks the contract the env calls it with (shape, finite numbers,
determinism, each row scored on its own). The env test then pays an env with it, next to a
ScriptedDiscriminator whose scores never change (so the rewards are deterministic even though the
wrapper "co-trains" it), and `check_env` checks the token rule and the reward accounting.
"""

import numpy as np
import pytest

from seqgan_env import RewardSource, TokenGenerationEnv
from seqgan_env.data.tokenizer import CharTokenizer
from seqgan_env.rewards.wrappers import DiscriminatorReward, RewardConfig
from seqgan_env.testing import CheckError, ScriptedDiscriminator, check_env, check_reward_source


def vowel_ratio(tokens, texts):
    """The share of vowels in each finished text (0 for an empty one)."""
    return np.array([sum(c in "aeiou" for c in t) / max(len(t), 1) for t in texts])


def vowel_ratio_batch_normalised(tokens, texts):
    """A common mistake: centring on the batch mean makes a score depend on the other rows."""
    x = vowel_ratio(tokens, texts)
    return x - x.mean()


def test_vowel_ratio_meets_the_contract():
    scores = check_reward_source(vowel_ratio)
    assert ((0 <= scores) & (scores <= 1)).all()


def test_the_kit_catches_a_batch_dependent_score():
    with pytest.raises(CheckError, match="alone"):
        check_reward_source(vowel_ratio_batch_normalised)


@pytest.mark.parametrize("mode", ["final", "per_step", "potential"])
def test_an_env_paid_by_vowel_ratio(mode):
    tok = CharTokenizer.from_texts(["anna", "bob", "eve"])
    d = ScriptedDiscriminator.count(tok.encode("a")[0])  # logit: the number of a's so far, minus one
    env = DiscriminatorReward(
        TokenGenerationEnv(tokenizer=tok, max_length=6), d, RewardConfig(mode=mode),
        real_data=tok.encode_batch(["anna", "bob", "eve"], 6), update_every=2, update_batch_size=2,
        sources=[RewardSource("discriminator"), RewardSource("vowel_ratio", vowel_ratio, weight=0.5)],
    )
    check_env(env)
