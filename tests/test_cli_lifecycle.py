"""A run checkpoints at the end of each pretraining phase: a reward source that raises at the first adversarial
update leaves a run that resumes after pretraining, and the message names the source, its file and line."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

from seqgan_agents.trainer import Trainer
from seqgan_env.cli import main
from seqgan_env.runs.rundir import RunDir

TINY = [
    "--no-progress", "--updates", "2", "--pretrain-steps", "2", "--set", "schedule.d_pretrain_steps=2",
    "--set", "schedule.eval_samples=10", "--set", "reinforce.batch_size=8", "--set", "d_updates.batch_size=8",
    "--generator.hidden-size", "16", "--generator.intermediate-size", "32", "--generator.num-layers", "1",
]

RAISES = "def explode(tokens, texts):\n    raise RuntimeError('boom')\n"
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
    assert f"{module}:2" in last and "--resume" in last and "after pretraining" in last, last
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
