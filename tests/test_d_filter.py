"""Discriminator-guided sampling: with D/(1-D) = p_data/p_model the kept rows follow p_data."""

from __future__ import annotations

import pytest
import torch

from seqgan_env.models.d_filter import DFilterConfig, d_filter, log_weights

P_MODEL = torch.tensor([0.4, 0.3, 0.2, 0.1])  # the "generator" over 4 one-token rows
P_DATA = torch.tensor([0.1, 0.2, 0.3, 0.4])


def sampler(seed: int):
    g = torch.Generator().manual_seed(seed)
    return lambda k: torch.multinomial(P_MODEL, k, replacement=True, generator=g).unsqueeze(1)  # (k, 1)


def bayes_d(rows: torch.Tensor) -> torch.Tensor:
    """The optimal D for equal class priors: p_data / (p_data + p_model)."""
    x = rows[:, 0]
    return P_DATA[x] / (P_DATA[x] + P_MODEL[x])


def test_log_weights_are_the_log_ratio_clipped():
    w = log_weights(torch.tensor([0.5, 0.8, 1.0]), beta=1.0, max_log_weight=3.0)
    assert w.tolist() == pytest.approx([0.0, torch.log(torch.tensor(4.0)).item(), 3.0])


@pytest.mark.parametrize("method,oversample", [("rejection", 4), ("sir", 50)])
def test_filtered_rows_follow_the_data_distribution(method, oversample):
    cfg = DFilterConfig(method=method, oversample=oversample)
    rows = d_filter(sampler(0), bayes_d, 4000, cfg, generator=torch.Generator().manual_seed(1))
    assert rows.shape == (4000, 1)
    freq = torch.bincount(rows[:, 0], minlength=4).double() / 4000
    assert torch.allclose(freq, P_DATA.double(), atol=0.03), freq  # unfiltered: P_MODEL, off by 0.3


def test_beta_zero_is_plain_sampling():
    rows = d_filter(sampler(0), bayes_d, 4000, DFilterConfig(method="rejection", beta=0.0),
                    generator=torch.Generator().manual_seed(1))
    freq = torch.bincount(rows[:, 0], minlength=4).double() / 4000
    assert torch.allclose(freq, P_MODEL.double(), atol=0.03)


@pytest.mark.parametrize(
    "kwargs,match",
    [({"method": "best"}, "method='best'"), ({"oversample": 0}, "oversample=0"), ({"beta": -1.0}, "beta=-1.0"),
     ({"max_log_weight": 0.0}, "max_log_weight=0.0")],
)
def test_bad_config_is_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DFilterConfig(**kwargs)
