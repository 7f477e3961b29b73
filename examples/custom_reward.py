"""Plug your own rewards into the environment: a prefix scorer and plain Python callables, weighted.

The prefix scorer (anything with score_logits((B, T)) -> (B, T)) takes the discriminator's
place: here a hand-written one likes vowels after consonants, paid per prefix. A callable
f(tokens (K, T), texts) -> (K,) scores each finished sequence: here `brevity` prefers short
names, at weight 0.5. Each source's share of the return is printed. Replace either with your
model or metric. Runs in seconds on a CPU.
"""

import numpy as np
import torch

from seqgan_env import DiscriminatorRewardVector, RewardConfig, RewardSource, TokenGenerationVectorEnv
from seqgan_env.data.text import load_dataset


class VowelScorer:
    """Realness logit of every prefix: +1 for each consonant-vowel alternation so far, -1 otherwise."""

    def __init__(self, tokenizer):
        vowels = [tokenizer.encode(v)[0] for v in "aeiou"]
        self.is_vowel = torch.zeros(tokenizer.vocab_size, dtype=torch.bool)
        self.is_vowel[vowels] = True

    def score_logits(self, tokens: torch.Tensor) -> torch.Tensor:  # (B, T) -> (B, T)
        v = self.is_vowel[tokens]  # (B, T)
        alternates = torch.cat([torch.zeros_like(v[:, :1]), v[:, 1:] != v[:, :-1]], dim=1)  # (B, T)
        return (2.0 * alternates.float() - 1.0).cumsum(dim=1)


def brevity(tokens: torch.Tensor, texts: list[str]) -> list[float]:
    """One score per finished sequence: 1 for an empty name, 0 at 12 letters."""
    return [1.0 - len(t) / 12 for t in texts]


tok = load_dataset(max_length=12).tokenizer
sources = [RewardSource("discriminator", weight=1.0), RewardSource("brevity", brevity, weight=0.5)]
env = DiscriminatorRewardVector(TokenGenerationVectorEnv(8, tokenizer=tok, max_length=12), VowelScorer(tok),
                                RewardConfig(mode="per_step", transform="centered"), sources=sources)
rng = np.random.default_rng(0)
env.reset(seed=0)
returns, vowels, short, shown = np.zeros(8), np.zeros(8), np.zeros(8), 0
while shown < 8:
    masks = env.action_masks()
    _, rewards, terminated, _, infos = env.step(np.array([rng.choice(np.flatnonzero(m)) for m in masks]))
    returns += rewards
    vowels += infos["reward/discriminator"]  # each source's weighted share of the reward
    short += infos["reward/brevity"]
    for i in np.flatnonzero(terminated):
        print(f"{infos['text'][i]:<12} return {returns[i]:+.2f} = vowels {vowels[i]:+.2f} + brevity {short[i]:+.2f}")
        returns[i] = vowels[i] = short[i] = 0.0
        shown += 1
