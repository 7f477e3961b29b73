"""`seqgan-env train` pretrains by MLE until the validation NLL stops improving, then restores the best weights."""

from __future__ import annotations

import copy
import json

import pytest
import torch

import seqgan_agents.mle as mle_module
from seqgan_agents.lifecycle import new_run, resume_run
from seqgan_agents.trainer_config import ScheduleConfig, train_config_from_dict
from seqgan_env.runs.configio import config_to_dict
from tests.test_train import _metric_lines, tiny_config


def scripted_nll(monkeypatch, scores: list[float]) -> list[dict]:
    """Make the trainer's validation NLL follow ``scores``; returns the generator's weights at each score."""
    seen: list[dict] = []

    def fake(generator, sequences, *args, **kwargs):
        seen.append(copy.deepcopy(generator.state_dict()))
        return scores[len(seen) - 1] if len(seen) <= len(scores) else scores[-1]

    monkeypatch.setattr(mle_module, "generator_nll", fake)
    return seen


def resume_with_more_updates(part, updates: int):
    """Resume the finished run ``part`` with its schedule extended to ``updates`` (its config.json edited)."""
    cfg_path = part.run.path / "config.json"
    info = json.loads(cfg_path.read_text())
    info["config"]["schedule"]["updates"] = updates
    cfg_path.write_text(json.dumps(info))
    return resume_run(part.run.path)


def early_config(tmp_path, cap=12, every=2, patience=2, valid_fraction=0.1, **kw):
    data = config_to_dict(tiny_config(tmp_path, pretrain_steps=cap, pretrain_eval_every=every,
                                      pretrain_patience=patience, d_pretrain_steps=None, **kw))
    data["data"]["valid_fraction"] = valid_fraction
    return train_config_from_dict(data)


def test_stops_on_a_plateau_and_restores_the_best_weights(tmp_path, monkeypatch):
    seen = scripted_nll(monkeypatch, [3.0, 2.0, 2.5, 2.6, 1.0])  # best at the 2nd score (step 4), then 2 worse
    trainer = new_run(early_config(tmp_path, cap=12, every=2, patience=2, pretrain_lr_drop=None))
    trainer._pretrain_generator()
    assert len(seen) == 4  # the 5th score (which would have been better) is never reached
    assert trainer.mle_steps == 8 and trainer.mle_best_step == 4 and trainer.mle_valid_nll == 2.0
    now = trainer.agent.generator.state_dict()
    assert all(torch.equal(now[k], v) for k, v in seen[1].items())  # the weights of step 4
    assert any(not torch.equal(now[k], v) for k, v in seen[3].items())  # not the last ones
    assert trainer.pretrain_metrics() == {"pretrain/mle_steps": 8, "pretrain/best_step": 4, "pretrain/valid_nll": 2.0}
    trainer.run.close()


@pytest.mark.parametrize("patience,valid_fraction,scored", [(None, 0.1, 0), (2, 0.0, 0), (50, 0.1, 6)])
def test_trains_the_whole_cap_without_early_stopping(tmp_path, monkeypatch, patience, valid_fraction, scored):
    seen = scripted_nll(monkeypatch, [3.0, 2.9, 2.8, 2.7, 2.6, 2.5])
    trainer = new_run(early_config(tmp_path, cap=12, every=2, patience=patience, valid_fraction=valid_fraction))
    trainer._pretrain_generator()
    assert trainer.mle_steps == 12 and len(seen) == scored
    trainer.run.close()


def test_d_pretraining_is_a_quarter_of_the_mle_steps_trained(tmp_path, monkeypatch):
    scripted_nll(monkeypatch, [3.0, 3.1, 3.2])  # best at step 4, stops at step 12 (patience 2)
    trainer = new_run(early_config(tmp_path, cap=40, every=4, patience=2, pretrain_lr_drop=None))
    calls = []
    update = trainer.venv.update_discriminator
    monkeypatch.setattr(trainer.venv, "update_discriminator", lambda fake: calls.append(1) or update(fake))
    trainer.pretrain()
    assert trainer.mle_steps == 12 and len(calls) == 3
    trainer.run.close()


@pytest.mark.parametrize("mle_steps,d_steps,expected", [(800, None, 200), (2, None, 1), (0, None, 0), (800, 7, 7)])
def test_d_pretrain_for(mle_steps, d_steps, expected):
    assert ScheduleConfig(d_pretrain_steps=d_steps).d_pretrain_for(mle_steps) == expected


@pytest.mark.parametrize("field,value", [("pretrain_patience", 0), ("pretrain_patience", 1.5),
                                         ("pretrain_eval_every", 0), ("pretrain_steps", -1),
                                         ("pretrain_lr_drop", 0), ("pretrain_lr_drop", -0.1), ("pretrain_lr_drop", 1.5),
                                         ("pretrain_lr_drop", True), ("pretrain_lr_drop", float("nan")),
                                         ("pretrain_lr_drop", "0.1")])
def test_bad_early_stopping_values_name_the_field(field, value):
    with pytest.raises(ValueError, match=rf"schedule\.{field}="):
        ScheduleConfig(**{field: value})


def test_the_run_records_the_early_stop_and_resumes_after_it(tmp_path):
    """Real validation scores; a run resumed after pretraining continues bit-identically and keeps the record."""
    cfg = early_config(tmp_path / "a", cap=30, every=3, patience=2, updates=4)
    full = new_run(cfg)
    full.fit(progress=False)
    full.run.close()
    rec = [m for m in _metric_lines(full.run.path) if "pretrain/mle_steps" in m]
    assert len(rec) == 1 and 3 <= rec[0]["pretrain/best_step"] <= rec[0]["pretrain/mle_steps"] <= 30
    assert rec[0]["pretrain/valid_nll"] == pytest.approx(rec[0]["eval/pretrained_valid_nll"])

    part = new_run(early_config(tmp_path / "b", cap=30, every=3, patience=2, updates=2))
    part.fit(progress=False)
    part.run.close()
    resumed = resume_with_more_updates(part, 4)
    assert (resumed.mle_steps, resumed.mle_best_step) == (rec[0]["pretrain/mle_steps"], rec[0]["pretrain/best_step"])
    resumed.fit(progress=False)
    resumed.run.close()
    a = [m for m in _metric_lines(full.run.path) if m["step"] > 2]
    b = [m for m in _metric_lines(part.run.path) if m["step"] > 2]
    assert a == b and a


@pytest.mark.parametrize("value", [None, 1, 0.1, 0.5])
def test_good_lr_drop_values_are_accepted(value):
    assert ScheduleConfig(pretrain_lr_drop=value).pretrain_lr_drop == value


def record_rates(monkeypatch, trainer) -> list[tuple[float, dict]]:
    """Record the optimizer's learning rate and the generator's weights before every MLE step."""
    seen: list[tuple[float, dict]] = []
    step = trainer.agent.mle_step

    def spy(real):
        seen.append((trainer.agent.optimizer.param_groups[0]["lr"], copy.deepcopy(trainer.agent.generator.state_dict())))
        return step(real)

    monkeypatch.setattr(trainer.agent, "mle_step", spy)
    return seen


@pytest.mark.parametrize("drop", [0.1, 0.5])
def test_the_first_plateau_drops_the_rate_from_the_best_weights_and_the_second_stops(tmp_path, monkeypatch, drop):
    # scores at steps 2, 4, ...: best at step 4, plateau at step 8 (drop), a new best at step 10, plateau at 14
    scores = scripted_nll(monkeypatch, [3.0, 2.0, 2.5, 2.6, 1.9, 2.2, 2.3, 1.0])
    trainer = new_run(early_config(tmp_path, cap=40, every=2, patience=2, pretrain_lr_drop=drop))
    lr = trainer.config.reinforce.lr
    steps = record_rates(monkeypatch, trainer)
    trainer._pretrain_generator()
    assert len(scores) == 7 and len(steps) == 14  # the 8th score (better still) is never reached
    assert [r for r, _ in steps] == [lr] * 8 + [pytest.approx(lr * drop)] * 6  # dropped once, after step 8
    assert all(torch.equal(steps[8][1][k], v) for k, v in scores[1].items())  # step 9 starts from step 4's weights
    assert trainer.mle_steps == 14 and trainer.mle_best_step == 10 and trainer.mle_valid_nll == 1.9
    now = trainer.agent.generator.state_dict()
    assert all(torch.equal(now[k], v) for k, v in scores[4].items())  # the weights of step 10 are kept
    assert trainer.agent.optimizer.param_groups[0]["lr"] == lr  # the adversarial phase runs at reinforce.lr
    trainer.run.close()


@pytest.mark.parametrize("drop", [None, 1])
def test_no_drop_stops_at_the_first_plateau(tmp_path, monkeypatch, drop):
    scores = scripted_nll(monkeypatch, [3.0, 2.0, 2.5, 2.6, 1.9])
    trainer = new_run(early_config(tmp_path, cap=40, every=2, patience=2, pretrain_lr_drop=drop))
    steps = record_rates(monkeypatch, trainer)
    trainer._pretrain_generator()
    assert len(scores) == 4 and trainer.mle_steps == 8 and trainer.mle_best_step == 4
    assert {r for r, _ in steps} == {trainer.config.reinforce.lr}
    trainer.run.close()


@pytest.mark.parametrize("drop", [None, 0.1])
def test_a_run_with_a_dropped_rate_resumes_bit_identically(tmp_path, monkeypatch, drop):
    """Scripted scores make the drop happen; a run resumed in its adversarial phase continues bit-identically."""
    script = [3.0, 2.0, 2.5, 2.6, 1.9, 2.2, 2.3]
    scripted_nll(monkeypatch, script)
    full = new_run(early_config(tmp_path / "a", cap=40, every=2, patience=2, updates=4, pretrain_lr_drop=drop))
    full.fit(progress=False)
    full.run.close()
    assert full.mle_steps == (14 if drop else 8)

    scripted_nll(monkeypatch, script)
    part = new_run(early_config(tmp_path / "b", cap=40, every=2, patience=2, updates=2, pretrain_lr_drop=drop))
    part.fit(progress=False)
    part.run.close()
    resumed = resume_with_more_updates(part, 4)
    assert (resumed.mle_steps, resumed.mle_best_step) == (full.mle_steps, full.mle_best_step)
    assert resumed.agent.optimizer.param_groups[0]["lr"] == full.config.reinforce.lr
    resumed.fit(progress=False)
    resumed.run.close()
    a = [m for m in _metric_lines(full.run.path) if m["step"] > 2]
    b = [m for m in _metric_lines(part.run.path) if m["step"] > 2]
    assert a == b and a
