"""Messages that name the real problem, and nothing left behind: a model directory passed as a run, a missing
pretrained directory, a failed start in a new --out-dir."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from seqgan_agents.lifecycle import new_run
from seqgan_env.cli import main

from .test_bad_input import snapshot
from .test_train import tiny_config


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    trainer = new_run(tiny_config(tmp_path_factory.mktemp("msg"), updates=2))
    trainer.fit(progress=False)
    trainer.run.close()
    return trainer.run.path


@pytest.mark.parametrize("argv", [
    ["sample", "{m}", "-n", "2"], ["eval", "{m}", "-n", "5"], ["train", "--resume", "{m}"],
    ["runs", "note", "{m}", "hello"], ["runs", "diff", "{m}", "{r}"], ["sample", "{m}", "--d-filter", "sir"],
])
def test_model_directory_is_not_a_run(trained, tmp_path, capsys, argv):
    run = Path(shutil.copytree(trained, tmp_path / "r"))
    model = run / "generator"
    before = snapshot(tmp_path)
    assert main([a.format(m=model, r=run) for a in argv]) == 2
    err = capsys.readouterr().err
    assert f"'{model}' is a model directory" in err and f"(e.g. '{run}')" in err and "fix: " in err, err
    assert "format_version" not in err and "RunDir.create" not in err and err.count("\n") == 1
    assert snapshot(tmp_path) == before  # runs note wrote no note.txt into the model directory


def test_directory_with_other_config_json_is_not_a_run(tmp_path, capsys):
    (tmp_path / "config.json").write_text(json.dumps({"lr": 1}))
    assert main(["sample", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "is not a run directory" in err and "seqgan-env train" in err and err.count("\n") == 1


def test_missing_discriminator_pretrained_is_named(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--discriminator.pretrained", str(tmp_path / "nope"), "--set", f"out_dir={tmp_path / 'o'}"]) == 2
    err = capsys.readouterr().err
    assert f"discriminator.pretrained='{tmp_path / 'nope'}' does not exist" in err and "fix: " in err
    assert "Errno" not in err and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def test_failed_start_leaves_no_new_out_dir(tmp_path, capsys, monkeypatch):
    """The start fails after the run directory was made (D's pretrained weights do not load): the run directory
    and the --out-dir folders it created are removed."""
    bad = tmp_path / "bad-model"
    bad.mkdir()
    (bad / "config.json").write_text(json.dumps({"model_type": "llama"}))
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--discriminator.pretrained", str(bad), "--set", f"out_dir={tmp_path / 'o' / 'deep'}"]) == 2
    assert "discriminator.pretrained" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad-model"]


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_run_files_follow_the_umask(tmp_path, umask):
    """Every file and directory of a run gets the mode the umask gives (no 0600 from temp files)."""
    import os
    import stat

    old = os.umask(umask)
    try:
        trainer = new_run(tiny_config(tmp_path, updates=2))
        trainer.fit(progress=False)
        trainer.run.close()
    finally:
        os.umask(old)
    modes = {str(p.relative_to(tmp_path)): stat.S_IMODE(p.stat().st_mode) for p in trainer.run.path.rglob("*")
             if p.name != "lock"}
    want = {p: (0o777 if (tmp_path / p).is_dir() else 0o666) & ~umask for p in modes}
    assert modes == want


@pytest.mark.parametrize("command", [["sample"], ["eval"], ["train", "--resume"]])
def test_edited_run_config_names_config_json(trained, tmp_path, capsys, command):
    run = Path(shutil.copytree(trained, tmp_path / "r"))
    info = json.loads((run / "config.json").read_text())
    info["config"]["generator"]["family"] = "foo"
    (run / "config.json").write_text(json.dumps(info))
    before = snapshot(tmp_path)
    assert main([*command, str(run)]) == 2
    err = capsys.readouterr().err
    assert f"{run / 'config.json'} holds a config" in err and "generator.family='foo'" in err, err
    assert "--generator.family" not in err and "fix: restore the file" in err and err.count("\n") == 1
    assert snapshot(tmp_path) == before


def test_benchmark_gan_bad_data_leaves_no_benchmarks_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["benchmark", "gan", "--data", str(tmp_path / "missing.txt"), "--seeds", "0"]) == 2
    assert "missing.txt" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("task", ["gan", "oracle"])
def test_benchmark_unwritable_out_is_named(task, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("x")
    for out, needle in ((tmp_path / "afile" / "d" / "r.json", "is a file, not a directory"),
                        (Path("/proc/no-such-dir/r.json"), "cannot be written (No such file or directory")):
        assert main(["benchmark", task, "--out", str(out), "--seeds", "0"]) == 2
        err = capsys.readouterr().err
        assert f"--out '{out}'" in err and needle in err and "fix: " in err and "Errno" not in err, err
        assert err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


def test_ppo_run_leaves_no_sb3_temp_folder(tmp_path, capsys, monkeypatch):
    import tempfile

    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))  # where SB3's default logger would make SB3-<time>
    rc = main(["train", "--no-progress", "--agent", "ppo", "--updates", "1", "--set", f"out_dir={tmp_path / 'runs'}",
               "--set", "ppo.n_envs=8", "--set", "ppo.n_steps=16", "--set", "ppo.batch_size=64",
               "--set", "schedule.eval_every=1", "--set", "d_updates.batch_size=8", "--set", "schedule.eval_samples=10",
               "--set", "schedule.pretrain_steps=2", "--set", "reinforce.batch_size=16"])
    assert rc == 0, capsys.readouterr().err
    assert list(tmp.iterdir()) == []


@pytest.mark.parametrize("spec, needle", [
    ({"reinforce.gamma": {"type": "float", "low": 0.5, "high": 2.0}}, "'reinforce.gamma': high 2.0 is refused"),
    ({"reinforce.batch_size": {"type": "int", "low": -4, "high": 16}}, "'reinforce.batch_size': low -4 is refused"),
    ({"reward.mode": {"type": "categorical", "choices": ["potential", "nope"]}}, "'reward.mode': choice 'nope'"),
])
def test_sweep_space_outside_the_config_is_refused_before_a_trial(spec, needle, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    space = tmp_path / "space.json"
    space.write_text(json.dumps(spec))
    sweep = tmp_path / "sw"
    assert main(["sweep", "--trials", "2", "--space", str(space), "--dir", str(sweep)]) == 2
    err = capsys.readouterr().err
    assert needle in err and "fix: narrow the range" in err and "Traceback" not in err and err.count("\n") == 1, err
    assert not sweep.exists()  # no study.db with a failed trial


def test_run_that_would_drop_most_of_its_data_stops(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "long.txt"
    data.write_text("ab\nabcdefghij\nabcdefghijk\nabcdefghijkl\nabcdefghijklm\nxy\n")
    assert main(["train", "--data", str(data), "--set", "data.max_length=4", "--set", "data.skip_long=true",
                 "--set", f"out_dir={tmp_path / 'runs'}"]) == 2
    err = capsys.readouterr().err
    assert "left out 4 of 6 lines" in err and "only 2 would be trained on" in err and "fix: raise --data.max-length" in err
    assert err.count("\n") == 1 and sorted(p.name for p in tmp_path.iterdir()) == ["long.txt"]


def test_relative_data_path_is_recorded_absolute_and_eval_checks_it(tmp_path, capsys, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    (work / "names.txt").write_text("anna\nbob\ncarl\ndora\nemil\nfrida\ngus\nhanna\n")
    monkeypatch.chdir(work)
    assert main(["train", "--no-progress", "--data", "names.txt", "--updates", "1", "--pretrain-steps", "1",
                 "--set", "schedule.d_pretrain_steps=1", "--set", "schedule.eval_samples=10",
                 "--set", "reinforce.batch_size=8", "--set", "d_updates.batch_size=8",
                 "--generator.hidden-size", "16", "--generator.intermediate-size", "32", "--generator.num-layers", "1",
                 "--set", f"out_dir={tmp_path / 'runs'}"]) == 0
    (run,) = (tmp_path / "runs").iterdir()
    assert json.loads((run / "config.json").read_text())["config"]["data"]["path"] == str(work / "names.txt")
    monkeypatch.chdir(tmp_path)  # another directory: eval still finds the data
    capsys.readouterr()
    assert main(["eval", str(run), "-n", "5"]) == 0
    (work / "names.txt").write_text("zed\nyan\nxia\nwu\n")  # changed since the run: eval refuses, as --resume does
    capsys.readouterr()
    assert main(["eval", str(run), "-n", "5"]) == 2
    err = capsys.readouterr().err
    assert "changed since run" in err and str(work / "names.txt") in err and err.count("\n") == 1


def test_all_lines_too_long_with_skip_long_says_so(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "long.txt"
    data.write_text("abc\nabcd\n")
    assert main(["train", "--data", str(data), "--set", "data.max_length=2", "--set", "data.skip_long=true",
                 "--set", f"out_dir={tmp_path / 'runs'}"]) == 2
    err = capsys.readouterr().err
    assert "all 2 non-blank line(s) are longer than max_length=2" in err and "no non-blank lines" not in err
    assert "fix: raise max_length" in err and err.count("\n") == 1 and not (tmp_path / "runs").exists()


@pytest.mark.parametrize("argv, needle", [
    (["--tokenizer.vocab-size", "1000000000"], "tokenizer.vocab_size=1000000000"),
    (["--schedule.updates", "abc"], "--schedule.updates"),
    (["--reward.mode", "bad"], "'bad'"),
    (["--no-such.option", "3"], "--no-such.option"),
])
def test_generated_flags_fail_in_one_line(tmp_path, capsys, argv, needle):
    """A bad --section.field flag gets the same one-line error as --set (tyro's box is not shown)."""
    from seqgan_env.cli import main

    out = tmp_path / "runs"
    assert main(["train", *argv, "--out-dir", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needle in err and "fix: " in err, err
    assert not set(err) & set("╭╰│─") and "Traceback" not in err
    assert not out.exists()
