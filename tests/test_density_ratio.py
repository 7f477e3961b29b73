"""d_gain_nats: the residual-EBM gain E_real[s] - log E_G[exp(s)] against exact values on toy distributions."""

from __future__ import annotations

import math

import pytest
import torch

from seqgan_env.eval.density_ratio import d_gain_nats


def _toy(seed: int = 0, k: int = 6):
    """Two categorical distributions over k 'sequences' and the exact log ratio and KL."""
    g = torch.Generator().manual_seed(seed)
    p_data = torch.softmax(torch.randn(k, generator=g, dtype=torch.double), 0)  # (k,)
    p_gen = torch.softmax(torch.randn(k, generator=g, dtype=torch.double), 0)  # (k,)
    log_ratio = p_data.log() - p_gen.log()  # (k,) the Bayes-optimal D's logit of each sequence
    kl = float((p_data * log_ratio).sum())
    return p_data, p_gen, log_ratio, kl


def _draw(p: torch.Tensor, n: int, g: torch.Generator) -> torch.Tensor:
    return torch.multinomial(p, n, replacement=True, generator=g)  # (n,) sequence ids


def test_exact_log_ratio_gives_kl_within_a_few_standard_errors():
    p_data, p_gen, log_ratio, kl = _toy()
    g = torch.Generator().manual_seed(1)
    real, fake = _draw(p_data, 40_000, g), _draw(p_gen, 40_000, g)
    r = d_gain_nats(log_ratio[real], log_ratio[fake])
    assert kl > 0.1  # a toy with something to know
    assert r["gain_se"] > 0
    assert abs(r["gain_nats"] - kl) < 4 * r["gain_se"], (r, kl)
    assert abs(r["gain_nats"] - kl) < 0.05
    assert 1.0 <= r["ess"] <= 40_000 and r["ess_frac"] == pytest.approx(r["ess"] / 40_000)
    # the exact ESS fraction in the limit is 1 / E_G[w^2] = 1 / sum p_data^2 / p_gen
    assert r["ess_frac"] == pytest.approx(1.0 / float((p_data**2 / p_gen).sum()), rel=0.1)


def test_standard_error_matches_the_spread_over_repeats():
    p_data, p_gen, log_ratio, kl = _toy(seed=2)
    g = torch.Generator().manual_seed(3)
    gains, ses = [], []
    for _ in range(300):
        r = d_gain_nats(log_ratio[_draw(p_data, 400, g)], log_ratio[_draw(p_gen, 400, g)])
        gains.append(r["gain_nats"])
        ses.append(r["gain_se"])
    spread = float(torch.tensor(gains).std())
    mean_se = sum(ses) / len(ses)
    assert 0.8 < spread / mean_se < 1.25, (spread, mean_se)
    assert abs(sum(gains) / len(gains) - kl) < 4 * spread / math.sqrt(len(gains))


def test_zero_scores_give_zero_gain_and_full_ess():
    r = d_gain_nats(torch.zeros(7), torch.zeros(11), lengths_real=torch.full((7,), 5))
    assert r["gain_nats"] == 0.0 and r["gain_se"] == 0.0
    assert r["ess"] == pytest.approx(11.0) and r["ess_frac"] == pytest.approx(1.0)
    assert r["gain_nats_per_token"] == 0.0 and r["gain_se_per_token"] == 0.0


def test_a_constant_shift_of_d_changes_nothing():
    """s + c tilts by the same distribution: E_real[s + c] - log E_G[exp(s + c)] is the same gain."""
    g = torch.Generator().manual_seed(4)
    sr, sf = torch.randn(50, generator=g, dtype=torch.double), torch.randn(60, generator=g, dtype=torch.double)
    a, b = d_gain_nats(sr, sf), d_gain_nats(sr + 30.0, sf + 30.0)
    for key in ("gain_nats", "gain_se", "ess"):
        assert a[key] == pytest.approx(b[key], rel=1e-9, abs=1e-9)


def test_per_token_numbers_divide_by_the_mean_length():
    sr, sf = torch.tensor([1.0, 2.0, 0.5]), torch.tensor([0.0, -1.0, 0.3, 0.2])
    lengths = torch.tensor([4, 6, 5])
    r = d_gain_nats(sr, sf, lengths_real=lengths)
    expected = float(sr.double().mean()) - (float(torch.logsumexp(sf.double(), 0)) - math.log(4))
    assert r["gain_nats"] == pytest.approx(expected)
    assert r["gain_nats_per_token"] == pytest.approx(expected / 5.0)
    assert r["gain_se_per_token"] == pytest.approx(r["gain_se"] / 5.0)


@pytest.mark.parametrize("real,fake,lengths,match", [
    (torch.zeros(0), torch.zeros(3), None, "scores_real"),
    (torch.zeros(2, 2), torch.zeros(3), None, "scores_real"),
    (torch.zeros(3), torch.tensor([0.0, float("inf")]), None, "scores_fake.*non-finite"),
    (torch.zeros(3), torch.zeros(3), torch.ones(2), "lengths_real"),
    (torch.zeros(3), torch.zeros(3), torch.tensor([1, 0, 2]), "lengths_real.*<= 0"),
])
def test_bad_inputs_are_named(real, fake, lengths, match):
    with pytest.raises(ValueError, match=match):
        d_gain_nats(real, fake, lengths_real=lengths)
