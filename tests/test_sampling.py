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


# -- the one sampling loop: TokenSampler, decode, KVStepper -------------------------------------------------

from seqgan_env.envs.spec import EnvConfig  # noqa: E402
from seqgan_env.models.networks import GeneratorConfig, build_generator  # noqa: E402
from seqgan_env.models.sampling import (  # noqa: E402
    KVStepper,
    TokenSampler,
    decode,
    sample_sequences,
    sampling_logits,
    top_p_keep_mask,
)

SPEC = EnvConfig(vocab_size=12, max_length=7, min_length=2)


@pytest.mark.parametrize("temperature,top_p", [(1.0, 1.0), (0.7, 1.0), (1.3, 0.8)])
def test_lengths_and_masks_are_one_rule_and_logp_is_the_sampled_distribution(temperature, top_p):
    logits = torch.randn(64, 12, generator=torch.Generator().manual_seed(0)) * 3  # (B, V)
    lengths = torch.arange(64) % 4  # (B,) below, at and above min_length
    by_len = TokenSampler(SPEC, temperature, top_p, torch.Generator().manual_seed(1), with_logp=True)
    by_mask = TokenSampler(None, temperature, top_p, torch.Generator().manual_seed(1), with_logp=True)
    a, b = by_len(logits.clone(), lengths), by_mask(logits.clone(), SPEC.valid_tokens(lengths))
    assert torch.equal(a.action, b.action) and torch.equal(a.logp, b.logp)
    x = sampling_logits(logits, SPEC.valid_tokens(lengths), temperature, top_p)  # (B, V)
    assert bool(torch.isfinite(x.gather(1, a.action[:, None])).all())  # never a refused or cut token
    assert torch.allclose(a.logp, torch.log_softmax(x, -1).gather(1, a.action[:, None]).squeeze(1))
    if top_p < 1:
        masked = sampling_logits(logits, SPEC.valid_tokens(lengths), temperature)
        assert torch.equal(a.keep, top_p_keep_mask(masked, top_p))
    else:
        assert a.keep is None


def test_temperature_zero_is_the_argmax_and_bad_values_are_named():
    logits = torch.randn(8, 12, generator=torch.Generator().manual_seed(2))
    draw = TokenSampler(SPEC, 0.0)(logits.clone(), torch.zeros(8, dtype=torch.long))
    expected = SPEC.mask_logits_(logits.clone(), torch.zeros(8, dtype=torch.long)).argmax(-1)
    assert torch.equal(draw.action, expected)
    for kwargs in (dict(temperature=-1.0), dict(top_p=0.0), dict(top_p=1.5)):
        with pytest.raises(ValueError, match="temperature=.*top_p="):
            TokenSampler(SPEC, **kwargs)
    with pytest.raises(ValueError, match="no spec"):
        TokenSampler(None)(logits, torch.zeros(8, dtype=torch.long))


def test_decode_stops_when_no_row_runs_and_feeds_each_step_back():
    fed = []

    def next_logits(action, s):
        fed.append((s, action.clone()))
        return torch.zeros(3, 12)

    done_after = torch.tensor([1, 3, 2])  # the step at which each row finishes

    def observe(s, draw):
        return done_after > s

    steps = decode(torch.zeros(3, 12), next_logits, TokenSampler(SPEC, rng=torch.Generator().manual_seed(0)), 7,
                   lambda s: torch.full((3,), s), observe)
    assert steps == 4  # rows finish after steps 1, 3, 2: the loop ends after step index 3
    assert [s for s, _ in fed] == [1, 2, 3]


@pytest.mark.parametrize("fast", [True, False], ids=["lean-step", "model-forward"])
@pytest.mark.parametrize("family", ["llama", "lstm"])
def test_kv_stepper_logits_equal_the_full_forward(family, fast):
    torch.manual_seed(0)
    cfg = GeneratorConfig(hidden_size=16, intermediate_size=32, num_layers=2, num_heads=2, family=family)
    gen = build_generator(cfg, 12).eval()
    ids = torch.randint(3, 12, (5, 6))  # (B, S) with BOS first
    ids[:, 0] = 1
    step = KVStepper(gen, fast=fast).start(5, 7)
    with torch.no_grad():
        full = gen(input_ids=ids).logits  # (B, S, V)
        for t in range(6):
            assert torch.allclose(step(ids[:, t : t + 1], t), full[:, t], atol=1e-5)


def test_sample_sequences_with_and_without_the_cache_agree():
    torch.manual_seed(0)
    gen = build_generator(GeneratorConfig(hidden_size=16, intermediate_size=32, num_layers=1, num_heads=2), 12).eval()
    a = sample_sequences(gen, 16, SPEC, TokenSampler(SPEC, rng=torch.Generator().manual_seed(4)))
    b = sample_sequences(gen, 16, SPEC, TokenSampler(SPEC, rng=torch.Generator().manual_seed(4)), use_cache=False)
    assert torch.equal(a, b) and a.shape == (16, SPEC.max_length)
