"""`seqgan-env sample` streams: chunks drawn and written one at a time, quiet on a closed pipe, Ctrl-C keeps
what was printed; sizes without a bound (-n, --d-filter-oversample, --tokenizer.vocab-size) are refused or chunked."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from seqgan_agents.lifecycle import new_run
from seqgan_agents.reinforce import ReinforceAgent
from seqgan_env import cli
from seqgan_env.cli import main

from .test_bad_input import snapshot
from .test_train import tiny_config


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    trainer = new_run(tiny_config(tmp_path_factory.mktemp("stream"), updates=2))
    trainer.fit(progress=False)
    trainer.run.close()
    return trainer.run.path


def _record_calls(monkeypatch, out: io.StringIO) -> list[tuple[int, int]]:
    """(rows asked for, lines already on stdout) of each sampler call."""
    calls: list[tuple[int, int]] = []
    original = ReinforceAgent.sample

    def sample(self, n, *a, **kw):
        calls.append((n, len(out.getvalue().splitlines())))
        return original(self, n, *a, **kw)

    monkeypatch.setattr(ReinforceAgent, "sample", sample)
    return calls


def test_sample_draws_in_chunks_and_writes_each_at_once(run, monkeypatch):
    monkeypatch.setattr(cli, "SAMPLE_CHUNK", 4)
    out = io.StringIO()
    calls = _record_calls(monkeypatch, out)
    with contextlib.redirect_stdout(out):
        assert main(["sample", str(run), "-n", "10", "--seed", "3"]) == 0
    assert calls == [(4, 0), (4, 4), (2, 8)]  # never more than a chunk; each chunk printed before the next is drawn
    assert len(out.getvalue().splitlines()) == 10
    again = io.StringIO()
    with contextlib.redirect_stdout(again):
        assert main(["sample", str(run), "-n", "10", "--seed", "3"]) == 0
    assert again.getvalue() == out.getvalue()  # reproducible
    first = io.StringIO()
    with contextlib.redirect_stdout(first):
        assert main(["sample", str(run), "-n", "4", "--seed", "3"]) == 0
    assert out.getvalue().startswith(first.getvalue())  # -n only adds chunks


def test_sample_d_filter_draws_in_chunks(run, monkeypatch):
    monkeypatch.setattr(cli, "SAMPLE_CHUNK", 8)
    out = io.StringIO()
    calls = _record_calls(monkeypatch, out)
    with contextlib.redirect_stdout(out):
        assert main(["sample", str(run), "-n", "5", "--d-filter", "sir", "--d-filter-oversample", "4"]) == 0
    # 2 rows kept per chunk, from 8 candidates each: [2, 2, 1] kept
    assert calls == [(8, 0), (8, 2), (4, 4)]
    assert len(out.getvalue().splitlines()) == 5


def test_sample_into_closed_pipe_exits_quietly(run):
    """`seqgan-env sample RUN -n 1000000 | head -1`: one line, then exit 0, nothing on stderr."""
    proc = subprocess.Popen([sys.executable, "-m", "seqgan_env.cli", "sample", str(run), "-n", "1000000"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    line = proc.stdout.readline()
    proc.stdout.close()  # as `head -1` does
    _, err = proc.communicate(timeout=300)
    assert line.strip() and proc.returncode == 0, err.decode()
    assert err == b""


def test_sample_ctrl_c_keeps_what_was_printed(run):
    # bufsize=0: readline must not buffer lines that communicate() (which reads the raw pipe) would then miss
    proc = subprocess.Popen([sys.executable, "-m", "seqgan_env.cli", "sample", str(run), "-n", "100000000"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0)
    first = proc.stdout.readline()
    proc.send_signal(signal.SIGINT)
    rest, err = proc.communicate(timeout=300)
    lines = (first + rest).decode().splitlines()
    assert proc.returncode == 130 and first.strip(), (proc.returncode, err.decode()[-2000:])
    assert "Traceback" not in err.decode() and err.decode().count("\n") == 1, err.decode()[-2000:]
    assert "interrupted after" in err.decode() and len(lines) >= int(err.split(b"after ")[1].split()[0])


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["--d-filter-oversample", "8"], "--d-filter-oversample is only used with --d-filter"),
        (["--d-filter-beta", "0.5"], "--d-filter-beta is only used with --d-filter"),
        (["--d-filter", "sir", "--d-filter-oversample", "1000000000"], "oversample=1000000000"),
        (["--d-filter", "rejection", "--d-filter-oversample", "10001"], "[1, 10000]"),
    ],
)
def test_sample_bad_d_filter_options(run, capsys, argv, needle):
    assert main(["sample", str(run), "-n", "3", *argv]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and needle in captured.err and "fix: " in captured.err
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err


def test_eval_n_too_large_is_refused_before_sampling(run, capsys, monkeypatch):
    monkeypatch.setattr(ReinforceAgent, "sample", lambda *a, **k: pytest.fail("sampled"))
    before = snapshot(run)
    assert main(["eval", str(run), "-n", "1000000000"]) == 2
    err = capsys.readouterr().err
    assert "-n 1000000000" in err and f"-n {cli.MAX_EVAL_SAMPLES} or fewer" in err and err.count("\n") == 1
    assert snapshot(run) == before


def test_eval_samples_in_chunks(run, monkeypatch, capsys):
    monkeypatch.setattr(cli, "SAMPLE_CHUNK", 8)
    calls = _record_calls(monkeypatch, io.StringIO())
    assert main(["eval", str(run), "-n", "20"]) == 0
    assert [n for n, _ in calls] == [8, 8, 4]


@pytest.mark.parametrize("size", ["1000000000", str(2**18 + 1)])
def test_huge_tokenizer_vocab_is_refused(size, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # a generated --section.field flag and a --set one give the same one-line error
    rc = main(["train", "--tokenizer", "bpe", "--tokenizer.vocab-size", size, "--set", f"out_dir={tmp_path / 'r'}"])
    assert rc == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"tokenizer.vocab_size={size}" in err and str(2**18) in err and "fix" in err.lower()
    assert "Traceback" not in err and os.listdir(tmp_path) == []
    rc = main(["train", "--set", "tokenizer.kind=bpe", "--set", f"tokenizer.vocab_size={size}",
               "--set", f"out_dir={tmp_path / 'r'}"])
    err = capsys.readouterr().err
    assert rc == 2
    assert f"tokenizer.vocab_size={size}" in err and str(2**18) in err and "fix" in err.lower()
    assert err.count("\n") == 1 and "Traceback" not in err
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    "extra, flag",
    [
        (["--updates", "50"], "--updates"),
        (["--data", "other.txt"], "--data"),
        (["--tokenizer", "bpe"], "--tokenizer"),
        (["--seed", "3"], "--seed"),
        (["--name", "x"], "--name"),
        (["--pretrain-steps", "5"], "--pretrain-steps"),
        (["--device", "cpu"], "--device"),
        (["--note", "hi"], "--note"),
        (["--set", "reinforce.lr=0.1"], "--set"),
        (["--generator.hidden-size", "32"], "--generator.hidden-size"),
        (["--reinforce.lr=0.1"], "--reinforce.lr"),
    ],
)
def test_resume_refuses_options_it_would_ignore(run, tmp_path, capsys, extra, flag):
    import shutil

    copy = Path(shutil.copytree(run, tmp_path / "r"))
    before = snapshot(copy)
    assert main(["train", "--no-progress", "--resume", str(copy), *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"seqgan-env: error: {flag} is not used with --resume") and "fix: drop" in err, err
    assert err.count("\n") == 1
    assert snapshot(copy) == before  # not trained, not touched


def test_sample_rejection_that_cannot_finish_is_one_line(run, capsys, monkeypatch):
    """Rejection sampling that accepts too few rows in max_rounds: exit 2, one line with the CLI's fix."""
    import torch

    import seqgan_env.models.d_filter as d_filter_mod

    def one_heavy(probs, beta=1.0, max_log_weight=10.0):  # one candidate per round w = e^10, the others e^-10
        w = torch.full((probs.shape[0],), -10.0, dtype=torch.double)
        w[0] = 10.0
        return w

    monkeypatch.setattr(d_filter_mod, "log_weights", one_heavy)
    assert main(["sample", str(run), "-n", "200", "--d-filter", "rejection"]) == 2
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and captured.err.count("\n") == 1
    assert "--d-filter rejection stopped after 0 of 200 samples" in captured.err and "--d-filter sir" in captured.err
