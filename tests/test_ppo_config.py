"""The ppo.* options: each bad value is one message naming it (exit 2 from the CLI), each shows in
`train --help`, and each lands in the run's config.json."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from seqgan_agents.ppo import PPOConfig
from seqgan_env.cli import main

BAD = [
    ("n_envs", "0"), ("n_steps", "-1"), ("batch_size", "x"), ("n_epochs", "0"), ("lr", "0"), ("gamma", "2"),
    ("gae_lambda", "-1"), ("clip_range", "0"), ("ent_coef", "-1"), ("embed_dim", "0"), ("features_dim", "1.5"),
    ("encoder", "lstm"), ("device", "tpu"), ("policy", "gpt"), ("value_hidden", "0"), ("value_hidden", "true"),
]


def test_every_field_has_a_bad_value_here():
    assert {f.name for f in dataclasses.fields(PPOConfig)} == {name for name, _ in BAD}


@pytest.mark.parametrize("name,value", BAD)
def test_bad_value_is_one_line_naming_it_and_exit_2(name, value, capsys, tmp_path):
    rc = main(["train", "--agent", "ppo", "--set", f"out_dir={tmp_path}", "--set", f"ppo.{name}={value}"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and f"ppo.{name}=" in err, err
    assert not any(Path(tmp_path).iterdir())  # refused before a run directory exists


def test_every_field_shows_in_train_help(capsys):
    assert main(["train", "--help"]) == 0
    out = capsys.readouterr().out
    for f in dataclasses.fields(PPOConfig):
        assert f"--ppo.{f.name.replace('_', '-')}" in out, f.name


def test_options_land_in_config_json(tmp_path, capsys):
    rc = main(["train", "--no-progress", "--agent", "ppo", "--updates", "1", "--set", f"out_dir={tmp_path}",
               "--set", "ppo.value_hidden=24", "--set", "ppo.n_envs=4", "--set", "ppo.n_steps=12",
               "--set", "ppo.batch_size=16", "--set", "ppo.n_epochs=1", "--set", "schedule.pretrain_steps=2",
               "--set", "reinforce.batch_size=8", "--set", "d_updates.batch_size=8",
               "--set", "generator.hidden_size=16", "--set", "generator.intermediate_size=32"])
    assert rc == 0, capsys.readouterr().err
    run = next(Path(tmp_path).iterdir())
    ppo = json.loads((run / "config.json").read_text())["config"]["ppo"]
    assert ppo == {**dataclasses.asdict(PPOConfig()), "value_hidden": 24, "n_envs": 4, "n_steps": 12,
                   "batch_size": 16, "n_epochs": 1}
