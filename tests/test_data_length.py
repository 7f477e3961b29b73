"""The episode length comes from the data unless given: any text file works as it is."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import pytest

from seqgan_env import make_env, make_vector_env
from seqgan_env.cli import main
from seqgan_env.data.text import AUTO_MAX_LENGTH_LIMIT, DataError, load_dataset, needed_max_length
from seqgan_env.data.tokenizer import EOS_ID

TINY = ["--generator.hidden-size", "16", "--generator.intermediate-size", "32", "--generator.num-layers", "1"]


def write_names(tmp_path: Path, longest: int = 15, name: str = "names.txt") -> Path:
    """A file of 40 lines over 'abcde' whose longest line (line 30) has ``longest`` symbols."""
    lines = ["abcde"[: 1 + i % 4] * (1 + i % 3) for i in range(40)]  # at most 12 symbols
    lines[29] = ("abcde" * 10)[:longest]
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("allow_eos,expected", [(True, 16), (False, 15)])
def test_needed_max_length_is_longest_line_plus_eos_room(allow_eos, expected):
    assert needed_max_length(["ab", "a" * 15, "abc"], allow_eos) == expected


def test_load_dataset_without_max_length_fits_every_line_with_eos(tmp_path):
    data = load_dataset(write_names(tmp_path), valid_fraction=0.2, seed=0)
    assert data.max_length == 16 and data.stats["max_length"] == 16
    assert data.train.shape[1] == data.valid.shape[1] == 16
    assert (data.train == EOS_ID).any(1).all() and (data.valid == EOS_ID).any(1).all()  # every real row ends in EOS


def test_explicit_max_length_too_small_keeps_the_clear_error(tmp_path):
    with pytest.raises(DataError, match=r"line 30 .* length 15 > max_length=12"):
        load_dataset(write_names(tmp_path), max_length=12)


def test_very_long_line_is_refused_without_explicit_length(tmp_path):
    path = tmp_path / "long.txt"
    path.write_text("abc\n" + "a" * 5000 + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=rf"line 2 .* length 5000, more than {AUTO_MAX_LENGTH_LIMIT}.*max_length=5001"):
        load_dataset(path)
    assert load_dataset(path, max_length=5001, valid_fraction=0.0).max_length == 5001  # explicit: the user's choice


def test_allow_eos_false_refuses_lines_that_would_need_eos(tmp_path):
    with pytest.raises(DataError, match=r"allow_eos=False"):
        load_dataset(write_names(tmp_path), allow_eos=False)
    same = tmp_path / "same.txt"
    same.write_text("abcd\ndcba\nbbbb\n", encoding="utf-8")
    data = load_dataset(same, allow_eos=False, valid_fraction=0.0)  # every row fills max_length: no EOS anywhere
    assert data.max_length == 4 and not (data.train == EOS_ID).any()


@pytest.mark.parametrize("factory", ["make_env", "make_vector_env", "gym.make"])
def test_env_factories_take_their_length_from_the_data(tmp_path, factory):
    path = str(write_names(tmp_path))
    if factory == "make_env":
        env = make_env(data_path=path)
    elif factory == "make_vector_env":
        env = make_vector_env(2, data_path=path)
    else:
        env = gym.make("seqgan_env:SeqGAN-v1", data_path=path)
    assert env.observation_space.shape[-1] == 16
    disc = env.get_wrapper_attr("discriminator") if factory == "gym.make" else env.discriminator
    assert disc.model_config.max_position_embeddings >= 17
    env.close()


def test_cli_train_on_a_file_with_a_15_symbol_line(tmp_path, capsys):
    path = write_names(tmp_path)
    rc = main(["train", "--data", str(path), "--no-progress", "--updates", "2", "--pretrain-steps", "1",
               "--set", f"out_dir={tmp_path / 'runs'}", "--set", "schedule.eval_samples=10",
               "--set", "schedule.d_pretrain_steps=1", "--set", "reinforce.batch_size=8",
               "--set", "d_updates.batch_size=8", *TINY])
    assert rc == 0, capsys.readouterr().err
    run = next((tmp_path / "runs").iterdir())
    config = json.loads((run / "config.json").read_text())["config"]
    assert config["data"]["max_length"] == 16  # recorded, so resume and sample use the same length
    assert config["generator"]["max_position_embeddings"] >= 17
    assert config["discriminator_model"]["max_position_embeddings"] >= 17
    capsys.readouterr()
    assert main(["sample", str(run), "-n", "5"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 5


def test_cli_train_long_line_names_line_and_choice(tmp_path, capsys):
    path = tmp_path / "long.txt"
    path.write_text("abc\nabd\n" + "a" * 5000 + "\n", encoding="utf-8")
    assert main(["train", "--data", str(path), "--set", f"out_dir={tmp_path / 'runs'}"]) == 2
    err = capsys.readouterr().err
    assert "line 3" in err and "data.max_length=5001" in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


@pytest.mark.slow
def test_default_train_command_on_a_15_symbol_file(tmp_path):
    """The issue's command exactly: `seqgan-env train --data FILE`, nothing else (the full default run)."""
    path = write_names(tmp_path)
    exe = Path(sys.executable).with_name("seqgan-env")
    proc = subprocess.run([str(exe), "train", "--data", str(path), "--no-progress"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    run = next((tmp_path / "runs").iterdir())
    assert json.loads((run / "config.json").read_text())["config"]["data"]["max_length"] == 16
