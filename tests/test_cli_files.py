"""Every file a command reads goes through the loud loaders, and commands print only what they mean to say.

A corrupt file ends the command with exit 2 and one line naming the file and the fix,
never a traceback; on a good run `sample`, `eval` and `runs list` write nothing to stderr
(no "Loading weights" bar, no library warnings); `--seeds` refuses empty, repeated and
non-integer items.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from seqgan_env.cli import _parse_seeds, main

TINY = [
    "--no-progress", "--updates", "2", "--pretrain-steps", "1",
    "--set", "schedule.d_pretrain_steps=1", "--set", "schedule.eval_samples=20", "--set", "schedule.eval_every=2",
    "--set", "d_updates.batch_size=8", "--set", "reinforce.batch_size=8",
    "--generator.hidden-size", "16", "--generator.intermediate-size", "32", "--generator.num-layers", "1",
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, str]:
    """A finished tiny run (generator/ export + checkpoint) and what `train` wrote to stderr."""
    root = tmp_path_factory.mktemp("runs")
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        assert main(["train", *TINY, "--set", f"out_dir={root}"]) == 0
    (run,) = root.iterdir()
    return run, err.getvalue()


@pytest.fixture
def run(trained, tmp_path) -> Path:
    """A private copy of the trained run, to break."""
    return Path(shutil.copytree(trained[0], tmp_path / "runs" / "r"))


def _checkpoint(run: Path) -> Path:
    """The latest checkpoint (the one sample and --resume read; pretraining left earlier ones)."""
    return run / "checkpoints" / (run / "checkpoints" / "latest").read_text().strip()


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _edit_json(path: Path, **changes) -> None:
    obj = json.loads(path.read_text())
    obj.update(changes)
    path.write_text(json.dumps(obj))


# (id, break the run, file named in the message, commands that read it)
CASES = [
    ("generator-weights-truncated", lambda r: _truncate(r / "generator" / "model.safetensors"),
     "generator/model.safetensors", ["sample", "eval"]),
    ("generator-weights-empty", lambda r: (r / "generator" / "model.safetensors").write_bytes(b""),
     "generator/model.safetensors", ["sample"]),
    ("generator-config-corrupt", lambda r: (r / "generator" / "config.json").write_text('{"model_'),
     "generator/config.json", ["sample", "eval"]),
    ("generator-config-mismatch", lambda r: _edit_json(r / "generator" / "config.json", hidden_size=32),
     "generator/config.json", ["sample"]),
    ("generator-config-invalid", lambda r: _edit_json(r / "generator" / "config.json", num_attention_heads=3),
     "generator/config.json", ["sample"]),
    ("run-config-corrupt", lambda r: (r / "config.json").write_text('{"format_'),
     "r/config.json", ["sample", "eval", "runs list"]),
    ("metrics-corrupt-line", lambda r: (r / "metrics.jsonl").write_text('{"step": 1,\n{"step": 2}\n'),
     "metrics.jsonl", ["eval", "runs list", "plot"]),
    ("tokenizer-corrupt", lambda r: (r / "tokenizer.json").write_text("[1, 2"),
     "r/tokenizer.json", ["sample"]),
    ("checkpoint-generator-truncated",  # no export: sample reads the checkpoint
     lambda r: (shutil.rmtree(r / "generator"), _truncate(_checkpoint(r) / "agent.safetensors")),
     "agent.safetensors", ["sample", "train --resume"]),
    ("discriminator-truncated", lambda r: _truncate(_checkpoint(r) / "discriminator.safetensors"),
     "discriminator.safetensors", ["train --resume"]),
    ("discriminator-optimizer-truncated", lambda r: _truncate(_checkpoint(r) / "discriminator_optimizer.safetensors"),
     "discriminator_optimizer.safetensors", ["train --resume"]),
]


def _argv(command: str, run: Path) -> list[str]:
    return {
        "sample": ["sample", str(run), "-n", "3"],
        "eval": ["eval", str(run), "-n", "5"],
        "runs list": ["runs", "list", str(run.parent)],
        "plot": ["plot", str(run)],
        "train --resume": ["train", "--resume", str(run), "--no-progress"],
    }[command]


@pytest.mark.parametrize(
    "breaker, named, command",
    [pytest.param(b, n, c, id=f"{i}-{c.replace(' ', '_')}") for i, b, n, cs in CASES for c in cs],
)
def test_corrupt_file_exit_2_one_line_naming_it(run, breaker, named, command, capsys):
    breaker(run)
    capsys.readouterr()
    assert main(_argv(command, run)) == 2
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err  # one message, not a log
    assert lines[0].startswith("seqgan-env: error: ") and named in lines[0], lines[0]
    assert "fix" in lines[0] or "start a new run" in lines[0], lines[0]
    if command == "runs list":  # the table still lists the run, marked, before the reason
        assert "unreadable" in out


def test_run_config_fix_names_the_cli(run, capsys):
    (run / "config.json").write_text("{")
    assert main(["sample", str(run)]) == 2
    assert "seqgan-env train" in capsys.readouterr().err  # a CLI user's fix, not a library call


def test_console_script_truncated_generator(run):
    """The installed `seqgan-env sample` on a truncated export: exit 2, one line, no traceback."""
    _truncate(run / "generator" / "model.safetensors")
    proc = subprocess.run([sys.executable, "-m", "seqgan_env.cli", "sample", str(run), "-n", "2"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "generator/model.safetensors" in proc.stderr


def test_good_run_commands_write_nothing_to_stderr(trained):
    """sample, eval and runs list in a fresh interpreter (library warnings shown as users see them)."""
    path, _ = trained
    tmp = path.parent.parent / "quiet"
    shutil.copytree(path, tmp / "r", dirs_exist_ok=True)
    r = tmp / "r"
    script = (
        "import sys\n"
        "from seqgan_env.cli import main\n"
        f"for argv in ({['sample', str(r), '-n', '3']!r}, {['eval', str(r), '-n', '5']!r},"
        f" {['runs', 'list', str(tmp)]!r}):\n"
        "    rc = main(argv)\n"
        "    print('RC', rc)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHONWARNINGS")}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env)
    assert proc.stdout.count("RC 0") == 3, proc.stdout + proc.stderr
    assert "Loading weights" not in proc.stderr and "it/s" not in proc.stderr
    assert proc.stderr == ""  # nothing but what the commands mean to say (they say it on stdout)
    samples = proc.stdout.split("RC 0")[0].splitlines()
    assert len(samples) == 3  # sample: the samples, one per line, nothing else


def test_train_export_has_no_progress_bar(trained):
    _, err = trained
    assert "Writing model shards" not in err and "it/s" not in err
    assert "run directory:" in err  # the trainer's own lines are still there


def test_export_loads_like_from_pretrained(trained):
    """The loud loader gives the very model `from_pretrained` gives, and leaves the global RNG alone."""
    import torch
    from transformers import LlamaForCausalLM

    from seqgan_env.models.networks import quiet_transformers
    from seqgan_env.runs.rundir import load_generator_export

    export = trained[0] / "generator"
    with quiet_transformers():
        ref = LlamaForCausalLM.from_pretrained(export)
    state = torch.random.get_rng_state()
    model = load_generator_export(export)
    assert torch.equal(state, torch.random.get_rng_state())
    x = torch.randint(3, ref.config.vocab_size, (3, 7))  # (B, T)
    with torch.no_grad():
        assert torch.equal(model(x).logits, ref(x).logits)
    assert not model.training and model.lm_head.weight is model.model.embed_tokens.weight


@pytest.mark.parametrize(
    "value, says",
    [
        ("0,,1", "empty item"),
        (",0", "empty item"),
        ("0,1,", "empty item"),
        ("", "empty item"),
        (" ", "empty item"),
        ("0,0", "repeats seed 0"),
        ("1, 2,1", "repeats seed 1"),
        ("0,x", "'x' is not a non-negative integer"),
        ("1.5", "'1.5' is not a non-negative integer"),
        ("-1", "'-1' is not a non-negative integer"),
        ("1_0", "'1_0' is not a non-negative integer"),
    ],
)
@pytest.mark.parametrize("command", ["train", "benchmark"])
def test_bad_seeds_exit_2_naming_the_value(value, says, command, tmp_path, capsys):
    # The trailing options would also fail (a missing data file, --out a directory): the seeds must be refused first.
    argv = (["train", "--seeds", value, "--data", str(tmp_path / "missing.txt")] if command == "train"
            else ["benchmark", "oracle", "--seeds", value, "--out", str(tmp_path)])
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"--seeds {value!r}" in err and says in err and "fix: " in err and "--seeds 0,1,2" in err, err
    assert err.count("\n") == 1


def test_good_seeds_parse():
    assert _parse_seeds("0, 1,2") == [0, 1, 2]
    assert _parse_seeds("7") == [7]


def test_non_utf8_config_file_named(tmp_path, capsys):
    bad = tmp_path / "cfg.json"
    bad.write_bytes(b"\xff\xfe{}")
    assert main(["train", "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "UTF-8" in err and "fix:" in err and err.count("\n") == 1
