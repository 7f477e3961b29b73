"""Reward-path invariants: D's fakes have the shape real rows have; partial resets keep running rows' scores."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seqgan_env import TokenGenerationEnv, TokenGenerationVectorEnv
from seqgan_env.envs.spec import EOS_ID, PAD_ID, complete_rows
from seqgan_env.rewards.wrappers import DiscriminatorReward, DiscriminatorRewardVector, RewardConfig

from .conftest import CountScorer

A, B_, C = 3, 4, 5  # 'a', 'b', 'c' in the conftest tokenizer
T = 4


class LastCountScorer(CountScorer):
    """A ``score_last`` scorer (like mc_rollout's): logit of each row's newest prefix only."""

    def score_last(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        logits = self.score_logits(tokens)  # (N, T)
        return logits.gather(1, (lengths - 1).clamp(min=0).unsqueeze(1)).squeeze(1)  # (N,)


@pytest.mark.parametrize(
    "row,complete",
    [
        ([A, EOS_ID, PAD_ID, PAD_ID], True),  # ended by EOS
        ([A, B_, C, A], True),  # filled max_length
        ([A, B_, PAD_ID, PAD_ID], False),  # cut short by a masked action
        ([PAD_ID] * T, False),  # nothing written
    ],
)
def test_complete_rows(row, complete):
    assert complete_rows(torch.tensor([row])).tolist() == [complete]


def test_every_real_row_is_complete(tokenizer):
    real = tokenizer.encode_batch(["a", "ab", "abc", "abca"], T)  # (4, T): EOS, EOS, EOS, full
    assert complete_rows(real).all()


# Episodes: "a"+EOS (complete), "ab" then PAD (masked: ends the episode, incomplete), PAD first (incomplete),
# "abca" (fills T: complete).
EPISODES = [[A, EOS_ID], [A, B_, PAD_ID], [PAD_ID], [A, B_, C, A]]


@pytest.mark.parametrize("vector", [False, True])
def test_fake_buffer_holds_only_complete_rows(tokenizer, vector):
    scorer = CountScorer(A)
    real = tokenizer.encode_batch(["abc", "cab"], T)
    if vector:
        env = DiscriminatorRewardVector(TokenGenerationVectorEnv(1, tokenizer=tokenizer, max_length=T), scorer,
                                        RewardConfig(), real_data=real)
        env.reset()
        for episode in EPISODES:
            for a in episode:
                env.step(np.array([a]))
            env.step(np.array([A]))  # the autoreset step (NEXT_STEP mode) starts the next episode
            env.reset()
    else:
        env = DiscriminatorReward(TokenGenerationEnv(tokenizer=tokenizer, max_length=T), scorer, RewardConfig(),
                                  real_data=real)
        for episode in EPISODES:
            env.reset()
            for a in episode:
                env.step(a)
    assert env.trainer.finished_episodes == 4
    buffered = torch.stack(list(env.trainer.fake_buffer))
    assert buffered.tolist() == [[A, EOS_ID, PAD_ID, PAD_ID], [A, B_, C, A]]


@pytest.mark.parametrize("scorer_cls", [CountScorer, LastCountScorer])
def test_partial_reset_keeps_the_previous_score_of_running_rows(tokenizer, scorer_cls):
    """potential/logit pays s_t - s_{t-1}; a row that keeps running through a partial reset keeps s_{t-1}."""
    env = DiscriminatorRewardVector(
        TokenGenerationVectorEnv(2, tokenizer=tokenizer, max_length=6), scorer_cls(A),
        RewardConfig(mode="potential", transform="logit", potential_baseline=0.0),
    )
    env.reset()
    env.step(np.array([A, A]))  # both rows "a": s = 0
    env.step(np.array([A, A]))  # "aa": s = 1
    env.reset(options={"reset_mask": np.array([False, True])})  # row 1 starts over, row 0 keeps running
    _, rewards, *_ = env.step(np.array([A, A]))  # row 0: "aaa" s = 2; row 1: "a" s = 0
    assert np.asarray(rewards).tolist() == pytest.approx([2.0 - 1.0, 0.0 - 0.0])
