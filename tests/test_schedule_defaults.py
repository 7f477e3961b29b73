"""The trainer's schedule scales with the run: D pretraining follows the MLE pretraining it is given."""

from __future__ import annotations

import dataclasses

import pytest

from seqgan_agents.trainer_config import ScheduleConfig, TrainConfig


@pytest.mark.parametrize("pretrain, d_pretrain, expected", [
    (800, None, 200), (2, None, 1), (0, None, 0), (800, 7, 7), (2, 0, 0),
])
def test_d_pretraining_scales_with_mle_pretraining(pretrain, d_pretrain, expected):
    assert ScheduleConfig(pretrain_steps=pretrain, d_pretrain_steps=d_pretrain).d_pretrain == expected


def test_a_shortened_run_gets_short_d_pretraining():
    """--pretrain-steps rewrites the schedule after it was built; D pretraining must follow it."""
    short = dataclasses.replace(TrainConfig().schedule, pretrain_steps=2)
    assert short.d_pretrain == 1


def test_bad_d_pretrain_steps_names_the_value():
    with pytest.raises(ValueError, match="schedule.d_pretrain_steps=-1"):
        ScheduleConfig(d_pretrain_steps=-1)
