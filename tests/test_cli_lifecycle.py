"""A run checkpoints at the end of each pretraining phase: a reward source that raises at the first adversarial
update leaves a run that resumes after pretraining, and the message names the source, its file and line."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

from seqgan_agents.trainer import Trainer
from seqgan_env.cli import main
from seqgan_env.runs.rundir import RunDir

TINY = [
    "--no-progress", "--updates", "2", "--pretrain-steps", "2", "--set", "schedule.d_pretrain_steps=2",
    "--set", "schedule.eval_samples=10", "--set", "reinforce.batch_size=8", "--set", "d_updates.batch_size=8",
    "--generator.hidden-size", "16", "--generator.intermediate-size", "32", "--generator.num-layers", "1",
]

# passes the config-time test call (the first call), raises at the first adversarial update
RAISES = "CALLS = []\ndef explode(tokens, texts):\n    CALLS.append(1)\n    if len(CALLS) > 1:\n        raise RuntimeError('boom')\n    return [0.0] * len(texts)\n"
WORKS = "def explode(tokens, texts):\n    return [0.0] * len(texts)\n"


def _write_module(path: Path, text: str) -> None:
    path.write_text(text)
    sys.modules.pop("seqgan_test_badreward", None)
    importlib.invalidate_caches()


def test_failing_reward_source_leaves_a_resumable_run_and_names_itself(tmp_path, monkeypatch, capsys):
    module = tmp_path / "seqgan_test_badreward.py"
    _write_module(module, RAISES)
    monkeypatch.syspath_prepend(str(tmp_path))
    out = tmp_path / "runs"
    rc = main(["train", *TINY, "--set", f"out_dir={out}",
               "--reward.sources", "discriminator=1.0,seqgan_test_badreward:explode=0.1"])
    err = capsys.readouterr().err
    assert rc == 2, err
    last = err.strip().splitlines()[-1]
    assert "Traceback" not in err
    assert "'explode' (seqgan_test_badreward:explode)" in last and "RuntimeError: boom" in last, last
    assert f"{module}:5" in last and "--resume" in last and "after pretraining" in last, last
    (run,) = out.iterdir()
    reader = RunDir.open(run, tensorboard=False)
    _, meta = reader.load_checkpoint(reader.latest_checkpoint())
    reader.close()
    assert meta["pretrained"] and meta["mle_pretrained"] and meta["train_step"] == 0

    _write_module(module, WORKS)
    assert main(["train", "--no-progress", "--resume", str(run)]) == 0
    err = capsys.readouterr().err
    assert "pretrain generator" not in err and "pretrain discriminator" not in err  # not repeated
    assert "trained 2 updates" in err


def test_resume_between_pretraining_phases_skips_mle(tmp_path, monkeypatch, capsys):
    """A run stopped during D pretraining resumes from the checkpoint after MLE: D pretraining only."""
    calls = {"n": 0}
    original = Trainer.save_checkpoint

    def stop_after_mle(self):
        path = original(self)
        calls["n"] += 1
        if calls["n"] == 1:  # the checkpoint at the end of the MLE phase
            raise KeyboardInterrupt
        return path

    monkeypatch.setattr(Trainer, "save_checkpoint", stop_after_mle)
    out = tmp_path / "runs"
    assert main(["train", *TINY, "--set", f"out_dir={out}"]) == 130
    (run,) = out.iterdir()
    monkeypatch.setattr(Trainer, "save_checkpoint", original)
    reader = RunDir.open(run, tensorboard=False)
    _, meta = reader.load_checkpoint(reader.latest_checkpoint())
    reader.close()
    assert meta["mle_pretrained"] and not meta["pretrained"]
    capsys.readouterr()
    assert main(["train", "--no-progress", "--resume", str(run)]) == 0
    err = capsys.readouterr().err
    assert "pretrain generator" not in err and "pretrain discriminator 2/2" in err and "trained 2 updates" in err


def test_sample_and_eval_do_not_import_reward_sources(tmp_path, monkeypatch, capsys):
    module = tmp_path / "seqgan_test_sideeffect.py"
    _write_module(module, "def brevity(tokens, texts):\n    return [-len(t) for t in texts]\n")
    sys.modules.pop("seqgan_test_sideeffect", None)
    monkeypatch.syspath_prepend(str(tmp_path))
    out = tmp_path / "runs"
    assert main(["train", *TINY, "--set", f"out_dir={out}",
                 "--reward.sources", "discriminator=1.0,seqgan_test_sideeffect:brevity=0.1"]) == 0
    (run,) = out.iterdir()
    # the module now has import-time code that fails: sample and eval must not run it
    module.write_text("raise ImportError('import-time code ran')\n")
    sys.modules.pop("seqgan_test_sideeffect", None)
    importlib.invalidate_caches()
    capsys.readouterr()
    assert main(["sample", str(run), "-n", "3"]) == 0
    assert main(["sample", str(run), "-n", "3", "--d-filter", "sir"]) == 0
    assert main(["eval", str(run), "-n", "10"]) == 0
    assert "seqgan_test_sideeffect" not in sys.modules
    assert capsys.readouterr().err == ""
    # resuming computes rewards, so it imports (and says what failed)
    assert main(["train", "--no-progress", "--resume", str(run)]) == 2
    assert "cannot import module 'seqgan_test_sideeffect'" in capsys.readouterr().err


BAD_SOURCES = [
    ("os:system", "cannot be called as f(tokens, texts)"),
    ("builtins:len", "cannot be called as f(tokens, texts)"),
    ("seqgan_test_probe:returns_none", "returned None (a missing return?)"),
    ("seqgan_test_probe:wrong_shape", "returned shape (1,) for 2 sequences"),
    ("seqgan_test_probe:raises", "raised KeyError"),
]


@pytest.mark.parametrize("spec, needle", BAD_SOURCES)
def test_bad_reward_callable_refused_at_config_time(spec, needle, tmp_path, monkeypatch, capsys):
    (tmp_path / "seqgan_test_probe.py").write_text(
        "def returns_none(tokens, texts):\n    return None\n"
        "def wrong_shape(tokens, texts):\n    return [1.0]\n"
        "def raises(tokens, texts):\n    return {}['x']\n"
    )
    sys.modules.pop("seqgan_test_probe", None)
    importlib.invalidate_caches()
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(Trainer, "pretrain", lambda *a, **k: pytest.fail("pretraining started"))
    out = tmp_path / "runs"
    try:
        rc = main(["train", *TINY, "--set", f"out_dir={out}", "--set", f"reward.sources=discriminator=1.0,{spec}=0.1"])
    except SystemExit as exc:  # pragma: no cover - the --set path is the CLI's own
        rc = exc.code
    err = capsys.readouterr().err
    assert rc == 2 and needle in err and spec in err and "fix" in err.lower(), err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists()
