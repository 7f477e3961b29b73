"""Shared fixtures: a small tokenizer, a stub scorer with hand-computable logits, tiny discriminators."""

from __future__ import annotations

import pytest
import torch

from seqgan_env.data.tokenizer import CharTokenizer
from seqgan_env.models.discriminator import Discriminator, DiscriminatorConfig
from seqgan_env.models.networks import ModelConfig

TINY = ModelConfig(hidden_size=16, intermediate_size=32, num_heads=2, num_layers=1, max_position_embeddings=32)


class CountScorer:
    """Stub discriminator: the logit of a prefix is (#target tokens in it) - 1.

    Hand-computable, deterministic, with no weights: the reference for reward tests.
    """

    def __init__(self, target: int):
        self.target = target

    def score_logits(self, tokens: torch.Tensor) -> torch.Tensor:
        tokens = torch.as_tensor(tokens)
        return (tokens == self.target).float().cumsum(dim=1) - 1.0  # (B, T)


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models: one intra-op thread avoids OpenMP spin-waits when other processes share the CPUs.

    Opt in per module with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def tokenizer() -> CharTokenizer:
    return CharTokenizer.from_texts(["abc", "cab"])  # ids: a=3, b=4, c=5; vocab 6


@pytest.fixture
def count_scorer() -> CountScorer:
    return CountScorer(target=3)  # counts 'a'


def tiny_discriminator(vocab_size: int, seed: int = 0, **config) -> Discriminator:
    return Discriminator(vocab_size, model_config=TINY, config=DiscriminatorConfig(**config), seed=seed)
