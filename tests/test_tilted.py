"""The tilted generator q(v | x<t) ~ p_G(v | x<t) exp(alpha s(x<t v)): normalised, exact, alpha=0 is the generator."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from seqgan_env.envs.spec import BOS_ID, EOS_ID, PAD_ID, EnvConfig
from seqgan_env.eval.likelihood import generator_nll
from seqgan_env.models.networks import ModelConfig, build_generator
from seqgan_env.models.tilted import sample_tilted, tilted_log_probs, tilted_nll, tilted_nll_by_alpha

from .conftest import tiny_discriminator

V = 5  # PAD, BOS, EOS and two symbols (3, 4)
L = 3
GEN = ModelConfig(hidden_size=16, intermediate_size=32, num_heads=2, num_layers=1, max_position_embeddings=16)


def _models(seed: int = 0):
    torch.manual_seed(seed)
    gen = build_generator(GEN, V)
    disc = tiny_discriminator(V, seed=seed)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():  # weights large enough for D's logits (and so the tilt) to vary by about a nat
        for p in list(gen.parameters()) + list(disc.net.parameters()):
            p.add_(0.5 * torch.randn(p.shape, generator=g))
    return gen, disc


def _all_rows(spec: EnvConfig) -> torch.Tensor:
    """(R, L) every complete row the env can write: k >= min_length symbols then EOS, or L symbols."""
    rows = []
    symbols = range(3, V)
    for k in range(spec.min_length, L + 1):
        for syms in itertools.product(symbols, repeat=k):
            row = list(syms) + ([EOS_ID] if k < L else [])
            rows.append(row + [PAD_ID] * (L - len(row)))
    return torch.tensor(rows)


def _brute_force_log_prob(gen, disc, row: list[int], alpha: float, spec: EnvConfig) -> float:
    """log q(row) from the definition, one prefix and one candidate at a time."""
    total = 0.0
    for t, tok in enumerate(row):
        if tok == PAD_ID:
            break
        prefix = row[:t]
        logits = gen(input_ids=torch.tensor([[BOS_ID] + prefix])).logits[0, -1].double()  # (V,)
        weights = []
        for v in range(V):
            if not bool(spec.is_valid(torch.tensor(v), torch.tensor(t))):
                weights.append(0.0)
                continue
            s = float(disc.score_logits(torch.tensor([prefix + [v]]))[0, t])
            weights.append(math.exp(float(logits[v]) + alpha * s))
        total += math.log(weights[tok] / sum(weights))
    return total


@pytest.mark.parametrize("spec", [None, EnvConfig(vocab_size=V, max_length=L, min_length=2)])
@pytest.mark.parametrize("alpha", [0.0, 0.7, 2.0])
def test_every_step_sums_to_one(spec, alpha):
    gen, disc = _models()
    rows = torch.tensor([[3, 4, EOS_ID], [4, 4, 3], [3, EOS_ID, PAD_ID]])
    logq = tilted_log_probs(gen, disc, rows, alpha, spec=spec, batch_size=2)  # (3, L, V)
    assert logq.shape == (3, L, V)
    assert torch.allclose(logq.exp().sum(-1), torch.ones(3, L), atol=1e-5)
    if spec is not None:
        assert torch.isinf(logq[:, :, [PAD_ID, BOS_ID]]).all()
        assert torch.isinf(logq[:, :2, EOS_ID]).all() and torch.isfinite(logq[:, 2, EOS_ID]).all()  # min_length 2


def test_alpha_zero_is_the_generator():
    gen, disc = _models(seed=1)
    rows = torch.tensor([[3, 4, EOS_ID], [4, 4, 3], [3, EOS_ID, PAD_ID], [4, EOS_ID, PAD_ID]])
    assert tilted_nll(gen, disc, rows, 0.0) == pytest.approx(generator_nll(gen, rows), abs=1e-6)
    spec = EnvConfig(vocab_size=V, max_length=L)
    logits = gen(input_ids=torch.cat([torch.full((4, 1), BOS_ID), rows[:, :-1]], 1)).logits  # (4, L, V)
    for t in range(L):
        logits[:, t] = spec.mask_logits_(logits[:, t].clone(), torch.full((4,), t))
    assert torch.allclose(tilted_log_probs(gen, disc, rows, 0.0, spec=spec), torch.log_softmax(logits, -1), atol=1e-6)
    assert tilted_nll(gen, disc, rows, 0.5) != pytest.approx(generator_nll(gen, rows), abs=1e-3)  # the tilt acts


@pytest.mark.parametrize("alpha", [0.0, 1.0, -0.8])
def test_exact_likelihood_matches_brute_force_enumeration(alpha):
    gen, disc = _models(seed=2)
    spec = EnvConfig(vocab_size=V, max_length=L, min_length=1)
    rows = _all_rows(spec)  # (14, L)
    assert len(rows) == 2 + 4 + 8
    logq = tilted_log_probs(gen, disc, rows, alpha, spec=spec, batch_size=5)  # (14, L, V)
    tok = logq.gather(2, rows[..., None]).squeeze(2).masked_fill(rows == PAD_ID, 0.0)  # (14, L)
    row_logq = tok.double().sum(1)  # (14,)
    assert float(row_logq.exp().sum()) == pytest.approx(1.0, abs=1e-5)  # a distribution over complete rows
    with torch.no_grad():
        brute = torch.tensor([_brute_force_log_prob(gen, disc, r.tolist(), alpha, spec) for r in rows])
    assert torch.allclose(row_logq, brute.double(), atol=1e-4)
    # tilted_nll is the same numbers, per token
    n_tokens = int((rows != PAD_ID).sum())
    assert tilted_nll(gen, disc, rows, alpha, spec=spec) == pytest.approx(float(-brute.sum()) / n_tokens, abs=1e-5)


def test_samples_follow_the_exact_distribution():
    gen, disc = _models(seed=3)
    spec = EnvConfig(vocab_size=V, max_length=L, min_length=1)
    rows = _all_rows(spec)
    logq = tilted_log_probs(gen, disc, rows, 1.0, spec=spec)
    probs = logq.gather(2, rows[..., None]).squeeze(2).masked_fill(rows == PAD_ID, 0.0).sum(1).exp()  # (14,)
    n = 6000
    samples = sample_tilted(gen, disc, n, 1.0, spec, seed=0)  # (n, L)
    assert samples.shape == (n, L)
    assert torch.equal(sample_tilted(gen, disc, 50, 1.0, spec, seed=7), sample_tilted(gen, disc, 50, 1.0, spec, seed=7))
    match = (samples[:, None, :] == rows[None]).all(-1)  # (n, 14)
    assert bool(match.any(1).all())  # every sample is a complete row the env can write
    freq = match.double().mean(0)  # (14,)
    se = (probs.double() * (1 - probs.double()) / n).sqrt()
    assert bool(((freq - probs.double()).abs() <= 4.5 * se + 1e-3).all()), (freq, probs)


def test_bad_arguments_are_named():
    gen, disc = _models()
    rows = torch.tensor([[3, EOS_ID, PAD_ID]])
    with pytest.raises(ValueError, match="alpha=nan"):
        tilted_log_probs(gen, disc, rows, float("nan"))
    with pytest.raises(ValueError, match="tokens must be"):
        tilted_log_probs(gen, disc, torch.tensor([3, 2]), 1.0)
    with pytest.raises(ValueError, match="score_logits"):
        tilted_log_probs(gen, object(), rows, 1.0)
    with pytest.raises(ValueError, match="spec.vocab_size=9"):
        tilted_log_probs(gen, disc, rows, 1.0, spec=EnvConfig(vocab_size=9))
    with pytest.raises(ValueError, match="probability 0"):
        tilted_nll(gen, disc, torch.tensor([[EOS_ID, PAD_ID, PAD_ID]]), 1.0, spec=EnvConfig(vocab_size=V, max_length=L))
    with pytest.raises(ValueError, match="only PAD"):
        tilted_nll(gen, disc, torch.zeros(2, 3, dtype=torch.long), 1.0)
    with pytest.raises(ValueError, match="needs the env's EnvConfig"):
        sample_tilted(gen, disc, 3, 1.0, None)
    with pytest.raises(ValueError, match="n=0"):
        sample_tilted(gen, disc, 0, 1.0, EnvConfig(vocab_size=V, max_length=L))


@pytest.mark.parametrize("spec", [None, EnvConfig(vocab_size=V, max_length=L, min_length=1)])
def test_nll_by_alpha_is_tilted_nll_at_each_alpha(spec):
    gen, disc = _models(seed=4)
    rows = torch.tensor([[3, 4, EOS_ID], [4, 4, 3], [3, EOS_ID, PAD_ID], [4, EOS_ID, PAD_ID]])
    curve = tilted_nll_by_alpha(gen, disc, rows, [0.0, 0.5, 1.5], spec=spec, batch_size=3)
    assert set(curve) == {0.0, 0.5, 1.5}
    for a, v in curve.items():
        assert v == pytest.approx(tilted_nll(gen, disc, rows, a, spec=spec), abs=1e-6)
    with pytest.raises(ValueError, match="alphas"):
        tilted_nll_by_alpha(gen, disc, rows, [])
    with pytest.raises(ValueError, match="alpha=inf"):
        tilted_nll_by_alpha(gen, disc, rows, [0.0, float("inf")])


def test_sampling_temperature_sharpens_and_is_checked():
    gen, disc = _models(seed=5)
    spec = EnvConfig(vocab_size=V, max_length=L, min_length=1)
    # temperature 1 is the default sampler; a very low temperature draws the greedy path of q every time
    assert torch.equal(sample_tilted(gen, disc, 20, 1.0, spec, seed=3, temperature=1.0),
                       sample_tilted(gen, disc, 20, 1.0, spec, seed=3))
    cold = sample_tilted(gen, disc, 50, 1.0, spec, seed=3, temperature=1e-4)
    assert (cold == cold[0]).all()
    greedy = []
    for t in range(L):  # the greedy path of q, step by step
        lq = tilted_log_probs(gen, disc, torch.tensor([greedy + [PAD_ID] * (L - t)]), 1.0, spec=spec)[0, t]
        greedy.append(int(lq.argmax()))
        if greedy[-1] == EOS_ID:
            break
    assert cold[0, : len(greedy)].tolist() == greedy
    with pytest.raises(ValueError, match="temperature=0"):
        sample_tilted(gen, disc, 3, 1.0, spec, temperature=0)
