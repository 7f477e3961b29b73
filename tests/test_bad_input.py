"""The bad-input matrix at the CLI: one clear message, exit 2, no traceback, nothing on disk damaged."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from seqgan_agents.lifecycle import new_run
from seqgan_env.cli import main

from .test_train import tiny_config

TINY_FLAGS = [
    "--set", "reinforce.batch_size=8", "--set", "d_updates.batch_size=8", "--set", "schedule.eval_samples=10",
    "--generator.hidden-size", "16", "--generator.intermediate-size", "32", "--generator.num-layers", "1",
]


def snapshot(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != "lock"
    }


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


DATA_CASES = {
    "missing": (lambda d: d / "nope.txt", "does not exist"),
    "empty": (lambda d: write(d / "empty.txt", b""), "empty"),
    "directory": (lambda d: d, "directory"),
    "binary": (lambda d: write(d / "bin.txt", b"ab\x00\xff\xfe\x01\n"), "UTF-8"),
    "non_utf8": (lambda d: write(d / "latin.txt", "anna\nren\xe9e\n".encode("latin-1")), ":2"),
    "only_blank": (lambda d: write(d / "blank.txt", b"\n\n  \n"), "blank"),
    "blank_line": (lambda d: write(d / "gap.txt", b"anna\n\nbob\n"), ":2"),
    "one_line": (lambda d: write(d / "one.txt", b"anna\n"), "at least 2"),
    "huge_line": (lambda d: write(d / "huge.txt", b"anna\n" + b"x" * 5000 + b"\n"), "max_length"),
}


@pytest.mark.parametrize("case", sorted(DATA_CASES))
def test_bad_data_file(case, tmp_path, capsys, monkeypatch):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    make, needle = DATA_CASES[case]
    path = make(data_dir)
    before = snapshot(tmp_path)
    monkeypatch.chdir(tmp_path)
    rc = main(["train", "--data", str(path), "--set", f"out_dir={tmp_path / 'runs'}", *TINY_FLAGS])
    err = capsys.readouterr().err
    assert rc == 2 and needle in err and "Traceback" not in err
    assert str(path.name) in err or case == "directory"
    assert snapshot(tmp_path) == before  # no run directory, nothing changed


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("trained")
    trainer = new_run(tiny_config(root, updates=2))
    trainer.fit(progress=False)
    trainer.run.close()
    return trainer.run.path


def _copy_run(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


def _edit_json(path: Path, fn) -> None:
    data = json.loads(path.read_text())
    fn(data)
    path.write_text(json.dumps(data))


RUN_CASES = {
    "missing_run_dir": (lambda r: r.parent / "no-such-run", ["train", "--resume"], "no-such-run"),
    "truncated_checkpoint": (
        lambda r: (lambda p: (p.write_bytes(p.read_bytes()[:64]), r)[1])(
            r / "checkpoints" / (r / "checkpoints" / "latest").read_text().strip() / "discriminator.safetensors"
        ),
        ["train", "--resume"],
        "discriminator.safetensors",
    ),
    "wrong_tensor_shapes": (
        lambda r: (_edit_json(r / "config.json", lambda d: d["config"]["generator"].update(hidden_size=32, intermediate_size=64)), r)[1],
        ["train", "--resume"],
        "does not match",
    ),
    "incompatible_version": (
        lambda r: (_edit_json(r / "config.json", lambda d: d.update(format_version=99)), r)[1],
        ["train", "--resume"],
        "format_version",
    ),
    "changed_data_file": (
        lambda r: (_edit_json(r / "config.json", lambda d: d["data"].update(sha256="0" * 64)), r)[1],
        ["train", "--resume"],
        "changed since",
    ),
    "tokenizer_mismatch": (
        lambda r: (_edit_json(r / "tokenizer.json", lambda d: d.update(symbols=d["symbols"][:5])), r)[1],
        ["sample"],
        "vocab_size",
    ),
    "corrupt_tokenizer": (
        lambda r: (write(r / "tokenizer.json", b"{not json"), r)[1],
        ["sample"],
        "tokenizer.json",
    ),
    "sample_zero": (lambda r: r, ["sample", "-n", "0"], "-n 0"),
}


@pytest.mark.parametrize("case", sorted(RUN_CASES))
def test_bad_run_dir_or_checkpoint(case, trained_run, tmp_path, capsys):
    run = _copy_run(trained_run, tmp_path / "run")
    damage, command, needle = RUN_CASES[case]
    target = damage(run)
    before = snapshot(tmp_path)
    argv = command[:1] + [str(target)] + command[1:] if command[0] == "sample" else command + [str(target)]
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2, err
    assert needle in err and "Traceback" not in err
    assert snapshot(tmp_path) == before  # the damaged run was not made worse, nothing else written
