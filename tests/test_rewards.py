"""Reward modes and transforms against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from seqgan_env.rewards.modes import REWARD_MODES, REWARD_TRANSFORMS, get_mode, get_transform, step_rewards

LOGITS = torch.tensor([[0.0, math.log(3.0), -math.log(3.0)]])  # p = 0.5, 0.75, 0.25


def _sig(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


HAND = {
    "prob": [0.5, 0.75, 0.25],
    "centered": [0.0, 0.5, -0.5],
    "log": [math.log(0.5), math.log(0.75), math.log(0.25)],
    "logit": [0.0, math.log(3.0), -math.log(3.0)],
}


@pytest.mark.parametrize("name", sorted(REWARD_TRANSFORMS))
def test_transform_hand_values(name):
    got = get_transform(name)(LOGITS)[0].tolist()
    assert got == pytest.approx(HAND[name], abs=1e-6)


@pytest.mark.parametrize("transform", sorted(REWARD_TRANSFORMS))
@pytest.mark.parametrize("mode", sorted(REWARD_MODES))
def test_mode_hand_values_over_an_episode(mode, transform):
    s = HAND[transform]
    baseline = 0.2
    expected = {
        "final": [0.0, 0.0, s[2]],
        "per_step": s,
        "potential": [s[0] - baseline, s[1] - s[0], s[2] - s[1]],
    }[mode]
    got = [
        float(step_rewards(LOGITS, torch.tensor([t]), torch.tensor([t == 2]), mode, transform, baseline)[0])
        for t in range(3)
    ]
    assert got == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("transform", sorted(REWARD_TRANSFORMS))
def test_potential_sums_to_final_minus_baseline(transform):
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(5, 9, generator=g)
    baseline = -0.3
    total = sum(
        step_rewards(logits, torch.full((5,), t), torch.full((5,), t == 8), "potential", transform, baseline)
        for t in range(9)
    )
    final = step_rewards(logits, torch.full((5,), 8), torch.ones(5, dtype=torch.bool), "final", transform)
    assert torch.allclose(total, final - baseline, atol=1e-5)


def test_batched_rows_use_their_own_position():
    logits = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    r = step_rewards(logits, torch.tensor([2, 0]), torch.tensor([False, True]), "per_step", "logit")
    assert r.tolist() == [3.0, 4.0]


@pytest.mark.parametrize("getter,name", [(get_mode, "sparse"), (get_transform, "softmax")])
def test_unknown_names_list_the_choices(getter, name):
    with pytest.raises(ValueError, match="choose one of"):
        getter(name)
