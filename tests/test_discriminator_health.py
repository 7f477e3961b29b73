"""Held-out discriminator AUC and calibration: hand values and a brute-force cross-check."""

from __future__ import annotations

import pytest
import torch

from seqgan_env.eval.discriminator_health import expected_calibration_error, health_report, roc_auc


@pytest.mark.parametrize(
    "real,fake,expected",
    [
        ([3.0, 4.0], [1.0, 2.0], 1.0),
        ([1.0, 2.0], [3.0, 4.0], 0.0),
        ([1.0], [1.0], 0.5),  # a tie counts half
        ([1.0, 3.0], [2.0], 0.5),
        ([2.0, 2.0, 5.0], [2.0, 1.0], (0.5 + 1 + 0.5 + 1 + 1 + 1) / 6),
    ],
)
def test_roc_auc_hand_values(real, fake, expected):
    assert roc_auc(torch.tensor(real), torch.tensor(fake)) == pytest.approx(expected)


@pytest.mark.parametrize("seed", range(5))
def test_roc_auc_equals_pairwise_count(seed):
    g = torch.Generator().manual_seed(seed)
    r = torch.randint(0, 6, (37,), generator=g).float()  # many ties
    f = torch.randint(0, 5, (23,), generator=g).float()
    pairs = (r[:, None] > f[None, :]).double() + 0.5 * (r[:, None] == f[None, :]).double()
    assert roc_auc(r, f) == pytest.approx(float(pairs.mean()))


def test_ece_hand_value():
    # bin [0.8, 0.9): probs 0.8, 0.8 with labels 1, 0 -> |0.5 - 0.8| * 2/4; bin [0.2, 0.3): 0.2, 0.2, labels 0, 0 -> 0.2 * 2/4
    probs = torch.tensor([0.8, 0.8, 0.2, 0.2])
    labels = torch.tensor([1.0, 0.0, 0.0, 0.0])
    assert expected_calibration_error(probs, labels) == pytest.approx(0.3 * 0.5 + 0.2 * 0.5)


def test_health_report_of_a_perfect_and_a_blind_scorer():
    real = torch.tensor([[3, 4, 2], [3, 3, 2]])
    fake = torch.tensor([[5, 2, 0], [5, 5, 2]])
    perfect = health_report(lambda x: (x[:, 0] == 3).float() * 0.98 + 0.01, real, fake)
    assert perfect["auc"] == 1.0 and perfect["ece"] == pytest.approx(0.01)
    blind = health_report(lambda x: torch.full((x.shape[0],), 0.5), real, fake)
    assert blind["auc"] == 0.5 and blind["real_mean"] == blind["fake_mean"] == 0.5


def test_health_report_with_logits_adds_the_gain_in_nats():
    real = torch.tensor([[3, 4, 2, 0], [3, 3, 3, 2]])  # 3 and 4 tokens
    fake = torch.tensor([[5, 2, 0, 0], [5, 5, 2, 0]])
    logits = lambda x: torch.where(x[:, 0] == 3, 1.0, -1.0)  # noqa: E731
    r = health_report(None, real, fake, sequence_logits=logits)
    assert r["auc"] == 1.0 and r["real_mean"] == pytest.approx(float(torch.sigmoid(torch.tensor(1.0))))
    assert r["gain_nats"] == pytest.approx(1.0 - (-1.0))  # E_real[s] - log E_G[exp(s)] = 1 - (-1)
    assert r["gain_nats_per_token"] == pytest.approx(2.0 / 3.5) and r["ess"] == pytest.approx(2.0)
    with pytest.raises(ValueError, match="sequence_probs or sequence_logits"):
        health_report(None, real, fake)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="needs real and fake"):
        roc_auc(torch.tensor([]), torch.tensor([1.0]))
    with pytest.raises(ValueError, match="bins=0"):
        expected_calibration_error(torch.tensor([0.5]), torch.tensor([1.0]), bins=0)
