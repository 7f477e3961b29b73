"""sample_categorical draws from softmax(logits) and never from -inf tokens."""

import math

import pytest
import torch

from seqgan_env.sampling import sample_categorical


@pytest.mark.parametrize("vocab", [3, 50, 5003])
def test_empirical_frequencies_match_softmax(vocab):
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(1, vocab, generator=g) * 2  # (1, V)
    n = 40_000
    draws = sample_categorical(logits.expand(n, vocab), torch.Generator().manual_seed(1))  # (n,)
    p = torch.softmax(logits[0], 0)
    top = p.argsort(descending=True)[:3]
    freq = torch.bincount(draws, minlength=vocab).float() / n
    for k in top.tolist():  # the three likeliest tokens within 4 standard errors
        se = math.sqrt(p[k] * (1 - p[k]) / n)
        assert abs(freq[k] - p[k]) < 4 * se + 1e-4


def test_masked_tokens_are_never_drawn_and_seed_reproduces():
    logits = torch.zeros(2000, 10)
    logits[:, [0, 1, 9]] = float("-inf")  # first, second and last token masked
    logits[:, 5] = float("-inf")
    a = sample_categorical(logits, torch.Generator().manual_seed(3))
    b = sample_categorical(logits, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    assert set(a.tolist()) == {2, 3, 4, 6, 7, 8}


def test_single_allowed_token_and_bad_shape():
    logits = torch.full((4, 6), float("-inf"))
    logits[:, 5] = 0.0
    assert sample_categorical(logits).tolist() == [5, 5, 5, 5]
    with pytest.raises(ValueError, match="shape"):
        sample_categorical(torch.zeros(6))


def test_inplace_draws_the_same_tokens():
    logits = torch.randn(64, 300, generator=torch.Generator().manual_seed(5))
    logits[:, 0] = float("-inf")
    expected = sample_categorical(logits, torch.Generator().manual_seed(9))
    work = logits.clone()
    assert torch.equal(sample_categorical(work, torch.Generator().manual_seed(9), inplace=True), expected)
    assert not torch.equal(work, logits)  # the buffer was reused
