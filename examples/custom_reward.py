"""Plug your own scorer into the environment: anything with score_logits((B, T)) -> (B, T).

Here a hand-written scorer likes vowels after consonants; a random policy is scored
per prefix. Replace VowelScorer with your model. Runs in seconds on a CPU.
"""

import numpy as np
import torch

from seqgan_env import DiscriminatorRewardVector, RewardConfig, TokenGenerationVectorEnv
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


tok = load_dataset(max_length=12).tokenizer
env = DiscriminatorRewardVector(TokenGenerationVectorEnv(8, tokenizer=tok, max_length=12), VowelScorer(tok),
                                RewardConfig(mode="per_step", transform="centered"))
rng = np.random.default_rng(0)
env.reset(seed=0)
returns, shown = np.zeros(8), 0
while shown < 8:
    masks = env.action_masks()
    _, rewards, terminated, _, infos = env.step(np.array([rng.choice(np.flatnonzero(m)) for m in masks]))
    returns += rewards
    for i in np.flatnonzero(terminated):
        print(f"{infos['text'][i]:<12} return {returns[i]:+.2f}")
        returns[i], shown = 0.0, shown + 1
