"""sample_categorical draws from softmax(logits) and never from -inf tokens."""

import math

import pytest
import torch

from seqgan_env.models.sampling import sample_categorical


@pytest.mark.parametrize("log_probs", [False, True], ids=["logits", "log_probs"])
@pytest.mark.parametrize("vocab", [3, 50, 5003])
def test_empirical_frequencies_match_softmax(vocab, log_probs):
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(1, vocab, generator=g) * 2  # (1, V)
    n = 40_000
    given = torch.log_softmax(logits, -1) if log_probs else logits
    draws = sample_categorical(given.expand(n, vocab), torch.Generator().manual_seed(1), log_probs=log_probs)  # (n,)
    p = torch.softmax(logits[0], 0)
    top = p.argsort(descending=True)[:3]
    freq = torch.bincount(draws, minlength=vocab).float() / n
    for k in top.tolist():  # the three likeliest tokens within 4 standard errors
        se = math.sqrt(p[k] * (1 - p[k]) / n)
        assert abs(freq[k] - p[k]) < 4 * se + 1e-4


@pytest.mark.parametrize("log_probs", [False, True], ids=["logits", "log_probs"])
@pytest.mark.parametrize("vocab", [10, 1000])  # one level; two levels (blocks of 64 and a 40-token tail)
def test_masked_tokens_are_never_drawn_and_seed_reproduces(vocab, log_probs):
    logits = torch.zeros(4000, vocab)
    banned = [0, 1, 5, vocab - 1]  # first, second, a middle and the last token
    if vocab > 200:
        banned += list(range(64, 128)) + list(range(960, 999))  # a whole block and all but one tail token
    logits[:, banned] = float("-inf")
    if log_probs:
        logits = torch.log_softmax(logits, -1)
    a = sample_categorical(logits, torch.Generator().manual_seed(3), log_probs=log_probs)
    b = sample_categorical(logits, torch.Generator().manual_seed(3), log_probs=log_probs)
    assert torch.equal(a, b)
    allowed = set(range(vocab)) - set(banned)
    drawn = set(a.tolist())
    assert drawn <= allowed
    assert len(drawn) >= min(len(allowed), 600)  # draws spread over the allowed tokens


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
