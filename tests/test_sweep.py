"""Tests for seqgan_env.runs.sweep: search-space files, resumable Optuna sweeps with a fake train_fn."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field

import optuna
import pytest

from seqgan_env.runs.sweep import (
    SweepConfig,
    best_trial_summary,
    load_space,
    run_sweep,
    trial_config,
    validate_space,
)

optuna.logging.set_verbosity(optuna.logging.WARNING)

SPACE = {
    "reinforce.lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
    "reward.mode": {"type": "categorical", "choices": ["per_step", "potential"]},
    "reinforce.batch_size": {"type": "int", "low": 16, "high": 128},
}
BASE = {"name": "base", "out_dir": "runs", "seed": 0,
        "reinforce": {"lr": 2e-3, "batch_size": 128, "gamma": 1.0}, "reward": {"mode": "potential"}}


def fake_value(config: dict) -> float:
    r = config["reinforce"]
    return (math.log10(r["lr"]) + 3) ** 2 + r["batch_size"] / 128 + (config["reward"]["mode"] != "potential")


class FakeTrain:
    """Records each call; raises ``fail_with`` on call number ``fail_on`` (0-based)."""

    def __init__(self, fail_on: int | None = None, fail_with: BaseException | None = None):
        self.calls: list[tuple[int, dict]] = []
        self.fail_on, self.fail_with = fail_on, fail_with

    def __call__(self, config: dict, trial_number: int) -> float:
        self.calls.append((trial_number, config))
        if len(self.calls) - 1 == self.fail_on:
            raise self.fail_with
        return fake_value(config)


def states(study) -> list[str]:
    return [t.state.name for t in study.get_trials(deepcopy=False)]


# ----------------------------------------------------------------------------
# config and space


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(trials=0), "trials=0 .*int >= 1"),
        (dict(trials=2.0), "trials=2.0"),
        (dict(trials=2, direction="down"), "direction='down' .*minimize"),
        (dict(trials=2, metric=""), "metric"),
        (dict(trials=2, seed=-1), "seed=-1"),
    ],
)
def test_sweep_config_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SweepConfig(**kwargs)


def write(tmp_path, name: str, text: str):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_load_space_json_and_toml_agree(tmp_path):
    from_json = load_space(write(tmp_path, "space.json", json.dumps(SPACE)))
    toml = """
["reinforce.lr"]
type = "float"
low = 1e-4
high = 1e-2
log = true

["reward.mode"]
type = "categorical"
choices = ["per_step", "potential"]

["reinforce.batch_size"]
type = "int"
low = 16
high = 128
"""
    from_toml = load_space(write(tmp_path, "space.toml", toml))
    assert from_json == from_toml
    assert from_json["reinforce.lr"] == {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}
    assert from_json["reinforce.batch_size"] == {"type": "int", "low": 16, "high": 128, "log": False}


@pytest.mark.parametrize(
    "space, match",
    [
        ({"reinforce.lr": {"type": "normal", "low": 0, "high": 1}}, "'reinforce.lr' has type='normal': unknown type"),
        ({"reinforce.lr": {"low": 0, "high": 1}}, "'reinforce.lr' has type=None"),
        ({"reinforce.lr": {"type": "float", "low": 1e-2, "high": 1e-4}}, "'reinforce.lr' has low=0.01 >= high"),
        ({"reinforce.lr": {"type": "float", "low": 1.0, "high": 1.0}}, "low=1.0 >= high=1.0"),
        ({"reward.mode": {"type": "categorical", "choices": []}}, "'reward.mode' needs a non-empty list"),
        ({"reward.mode": {"type": "categorical"}}, "'reward.mode' needs a non-empty list"),
        ({"reward.mode": {"type": "categorical", "choices": ["a", "a"]}}, "repeated choices"),
        ({"reward.mode": {"type": "categorical", "choices": [{"x": 1}]}}, "not str/int/float/bool/null"),
        ({"reinforce.batch_size": {"type": "int", "low": 16.5, "high": 128}}, "'reinforce.batch_size' .*ints"),
        ({"reinforce.lr": {"type": "float", "low": 0.0, "high": 1.0, "log": True}}, "log scale needs low > 0"),
        ({"reinforce.lr": {"type": "float", "low": 0.1, "high": 1.0, "log": "yes"}}, "log='yes'"),
        ({"reinforce.lr": {"type": "float", "low": 0.1, "high": 1.0, "lo": 1}}, r"unknown field\(s\) \['lo'\]"),
        ({"reinforce.lr": {"type": "float", "low": 0.1, "high": 1.0, "step": 0}}, "step=0"),
        ({"reinforce.lr": {"type": "float", "low": 0.1, "high": 1.0, "step": 0.1, "log": True}}, "both log"),
        ({"reinforce.lr": 0.1}, "'reinforce.lr' must map to a table"),
        ({"reinforce lr": {"type": "float", "low": 0.1, "high": 1.0}}, "not a dotted config key"),
        ({}, "non-empty"),
        ([1, 2], "non-empty table"),
    ],
)
def test_bad_space_files_name_the_key(tmp_path, space, match):
    with pytest.raises(ValueError, match=match):
        validate_space(space)
    path = write(tmp_path, "space.json", json.dumps(space))
    with pytest.raises(ValueError, match="space.json: .*" + match):
        load_space(path)


@pytest.mark.parametrize(
    "name, text, match",
    [
        ("space.json", "{not json", "not valid JSON"),
        ("space.toml", "[a\nb = ", "not valid TOML"),
        ("space.yaml", "a: 1", r"must end in .json or .toml"),
    ],
)
def test_unreadable_space_files(tmp_path, name, text, match):
    with pytest.raises(ValueError, match=match):
        load_space(write(tmp_path, name, text))


def test_missing_space_file(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_space(tmp_path / "nope.json")


@dataclass
class _Inner:
    lr: float = 1e-3


@dataclass
class _Outer:
    seed: int = 0
    reinforce: _Inner = field(default_factory=_Inner)


@pytest.mark.parametrize(
    "key, match",
    [
        ("reinforce.lrr", "unknown key 'lrr' under reinforce; valid keys: \\['lr'\\]"),
        ("reinforcee.lr", "unknown key 'reinforcee' under the top level"),
        ("reinforce", "is a section"),
        ("seed.x", "'seed' is not a section"),
    ],
)
def test_space_keys_checked_against_config_class(key, match):
    space = {key: {"type": "float", "low": 0.1, "high": 1.0}}
    with pytest.raises(ValueError, match=match):
        validate_space(space, _Outer)
    assert validate_space({"reinforce.lr": space[key]}, _Outer)


def test_trial_configs_build_a_train_config():
    from seqgan_agents.trainer_config import TrainConfig, train_config_from_dict
    from seqgan_env.runs.configio import config_to_dict

    validate_space(SPACE, TrainConfig)
    base = config_to_dict(TrainConfig(name="sw"))
    cfg = trial_config(base, {"reinforce.lr": 5e-4, "reward.mode": "per_step", "reinforce.batch_size": 32}, 7, "x/runs")
    built = train_config_from_dict(cfg)
    assert (built.reinforce.lr, built.reward.mode, built.reinforce.batch_size) == (5e-4, "per_step", 32)
    assert (built.name, built.out_dir, built.reinforce.mle_coef) == ("sw-t007", "x/runs", TrainConfig().reinforce.mle_coef)
    assert base["reinforce"]["lr"] == 2e-3  # the base is not modified


# ----------------------------------------------------------------------------
# sweeps


def test_two_trial_sweep_completes(tmp_path):
    train = FakeTrain()
    study = run_sweep(tmp_path / "sw", SPACE, BASE, SweepConfig(trials=2), train)
    assert states(study) == ["COMPLETE", "COMPLETE"]
    assert [n for n, _ in train.calls] == [0, 1]
    for (number, cfg), trial in zip(train.calls, study.trials, strict=True):
        assert cfg["name"] == f"base-t{number:03d}" and cfg["out_dir"] == str(tmp_path / "sw" / "runs")
        assert cfg["reinforce"]["lr"] == trial.params["reinforce.lr"] and cfg["reinforce"]["gamma"] == 1.0
        assert 1e-4 <= cfg["reinforce"]["lr"] <= 1e-2 and 16 <= cfg["reinforce"]["batch_size"] <= 128
        assert trial.value == pytest.approx(fake_value(cfg))
    assert BASE["reinforce"]["lr"] == 2e-3
    assert (tmp_path / "sw" / "study.db").is_file() and not (tmp_path / "sw" / "lock").exists()
    spec = json.loads((tmp_path / "sw" / "sweep.json").read_text())
    assert spec["metric"] == "eval/bigram_nll" and spec["space"]["reward.mode"]["choices"] == ["per_step", "potential"]
    summary = best_trial_summary(study)
    best = min(study.trials, key=lambda t: t.value)
    assert f"best trial #{best.number}: eval/bigram_nll = " in summary and "2 complete" in summary
    assert "reinforce.lr" in summary and f"base-t{best.number:03d}" in summary


def test_same_seed_same_suggestions(tmp_path):
    a = run_sweep(tmp_path / "a", SPACE, BASE, SweepConfig(trials=3, seed=5), FakeTrain())
    b = run_sweep(tmp_path / "b", SPACE, BASE, SweepConfig(trials=3, seed=5), FakeTrain())
    assert [t.params for t in a.trials] == [t.params for t in b.trials]


def test_interrupted_sweep_resumes_without_rerunning(tmp_path):
    sweep_dir, cfg = tmp_path / "sw", SweepConfig(trials=2, seed=1)
    first = FakeTrain(fail_on=1, fail_with=KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        run_sweep(sweep_dir, SPACE, BASE, cfg, first)
    assert [n for n, _ in first.calls] == [0, 1]
    assert not (sweep_dir / "lock").exists()
    study = optuna.load_study(study_name="sweep", storage=f"sqlite:///{sweep_dir / 'study.db'}")
    assert states(study) == ["COMPLETE", "FAIL"]
    trial0 = study.trials[0]

    second = FakeTrain()
    study = run_sweep(sweep_dir, SPACE, BASE, cfg, second)
    assert [n for n, _ in second.calls] == [2]  # trial 0 not rerun; one new trial replaces the failed one
    assert states(study) == ["COMPLETE", "FAIL", "COMPLETE"]
    assert study.trials[0].params == trial0.params and study.trials[0].value == trial0.value
    assert second.calls[0][1]["reinforce"]["lr"] != trial0.params["reinforce.lr"]  # not a replay of trial 0

    third = FakeTrain()  # already done: nothing runs
    run_sweep(sweep_dir, SPACE, BASE, cfg, third)
    assert third.calls == []
    more = FakeTrain()
    study = run_sweep(sweep_dir, SPACE, BASE, SweepConfig(trials=3, seed=1), more)
    assert [n for n, _ in more.calls] == [3] and states(study).count("COMPLETE") == 3


def test_trial_left_running_by_a_killed_process_is_failed(tmp_path):
    sweep_dir, cfg = tmp_path / "sw", SweepConfig(trials=1)
    run_sweep(sweep_dir, SPACE, BASE, cfg, FakeTrain())
    study = optuna.load_study(study_name="sweep", storage=f"sqlite:///{sweep_dir / 'study.db'}")
    study.ask()  # a trial that never finished (its process was killed)
    assert states(study) == ["COMPLETE", "RUNNING"]
    train = FakeTrain()
    study = run_sweep(sweep_dir, SPACE, BASE, SweepConfig(trials=2), train)
    assert states(study) == ["COMPLETE", "FAIL", "COMPLETE"] and [n for n, _ in train.calls] == [2]


def test_resume_refuses_a_different_space_or_direction(tmp_path):
    sweep_dir = tmp_path / "sw"
    run_sweep(sweep_dir, SPACE, BASE, SweepConfig(trials=1), FakeTrain())
    other = {**SPACE, "reinforce.gamma": {"type": "float", "low": 0.9, "high": 1.0}}
    with pytest.raises(ValueError, match="different space"):
        run_sweep(sweep_dir, other, BASE, SweepConfig(trials=2), FakeTrain())
    with pytest.raises(ValueError, match="different direction"):
        run_sweep(sweep_dir, SPACE, BASE, SweepConfig(trials=2, direction="maximize"), FakeTrain())
    assert not (sweep_dir / "lock").exists()


def test_live_lock_refuses_a_second_sweep(tmp_path):
    sweep_dir = tmp_path / "sw"
    sweep_dir.mkdir()
    (sweep_dir / "lock").write_text(str(os.getppid()))  # a live process that is not this one
    with pytest.raises(ValueError, match="in use by process"):
        run_sweep(sweep_dir, SPACE, BASE, SweepConfig(trials=1), FakeTrain())
    (sweep_dir / "lock").write_text("999999999")  # stale: taken over
    study = run_sweep(sweep_dir, SPACE, BASE, SweepConfig(trials=1), FakeTrain())
    assert states(study) == ["COMPLETE"]


def test_caught_failures_and_bad_results(tmp_path):
    train = FakeTrain(fail_on=0, fail_with=FloatingPointError("diverged"))
    study = run_sweep(tmp_path / "a", SPACE, BASE, SweepConfig(trials=2), train)
    assert states(study) == ["FAIL", "COMPLETE"]  # caught: the sweep goes on, the failure is not replaced
    assert "1 complete" in best_trial_summary(study) and "1 fail" in best_trial_summary(study)

    with pytest.raises(ValueError, match="returned None"):
        run_sweep(tmp_path / "b", SPACE, BASE, SweepConfig(trials=1), lambda cfg, n: None)
    with pytest.raises(RuntimeError, match="bug"):
        run_sweep(tmp_path / "c", SPACE, BASE, SweepConfig(trials=1),
                  FakeTrain(fail_on=0, fail_with=RuntimeError("bug")))


def test_summary_without_completed_trials(tmp_path):
    study = run_sweep(tmp_path / "a", SPACE, BASE, SweepConfig(trials=1),
                      FakeTrain(fail_on=0, fail_with=FloatingPointError("x")))
    assert best_trial_summary(study).startswith("no completed trial yet (1 fail)")


def test_run_root_none_keeps_out_dir(tmp_path):
    train = FakeTrain()
    run_sweep(tmp_path / "a", SPACE, BASE, SweepConfig(trials=1), train, run_root=None)
    assert train.calls[0][1]["out_dir"] == "runs"
