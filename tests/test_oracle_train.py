"""`seqgan-env train --data oracle`: the SeqGAN synthetic task end to end on tiny models."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from seqgan_env.cli import main

TINY = [
    "--no-progress", "--data", "oracle", "--updates", "2", "--pretrain-steps", "2",
    "--set", "data.max_length=20", "--set", "data.oracle_train=64", "--set", "data.oracle_valid=32",
    "--set", "schedule.d_pretrain_steps=1", "--set", "schedule.eval_samples=16", "--set", "schedule.eval_every=2",
    "--set", "reinforce.batch_size=8", "--set", "d_updates.batch_size=8",
    "--generator.hidden-size", "16", "--generator.intermediate-size", "32", "--generator.num-layers", "1",
]


def test_oracle_train_sample_eval_resume(tmp_path, capsys):
    assert main(["train", *TINY, "--set", f"out_dir={tmp_path}"]) == 0
    run = next(Path(tmp_path).iterdir())
    assert json.loads((run / "tokenizer.json").read_text())["type"] == "int"
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    nll = [m["eval/nll_oracle"] for m in lines if "eval/nll_oracle" in m]
    assert nll and all(math.isfinite(v) and 5.0 < v < 12.0 for v in nll)  # between the oracle itself and uniform
    nll_test = [m["eval/nll_test"] for m in lines if "eval/nll_test" in m]
    assert len(nll_test) == len(nll) and all(0.0 < v < math.log(5003) + 1.0 for v in nll_test)
    assert not any(k in m for m in lines for k in ("eval/bigram_nll", "eval/mean_length"))  # character metrics
    capsys.readouterr()
    assert main(["sample", str(run), "-n", "3"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert len(rows) == 3 and all(len(r.split()) == 20 and all(x.isdigit() for x in r.split()) for r in rows)
    assert main(["eval", str(run), "-n", "16"]) == 0
    report = json.loads((run / "eval.json").read_text())
    assert 5.0 < report["nll_oracle"] < 12.0
    assert 0.0 < report["nll_test"] < math.log(5003) + 1.0  # held-out NLL of a barely trained generator
    assert "bigram_nll" not in report and "mean_length" not in report  # character metrics do not apply
    cfg = run / "config.json"
    info = json.loads(cfg.read_text())
    info["config"]["schedule"]["updates"] = 3
    cfg.write_text(json.dumps(info))
    assert main(["train", "--no-progress", "--resume", str(run)]) == 0


def test_oracle_needs_length_20(capsys):
    # data.max_length None resolves to the oracle's 20 (DataConfig); an explicit other length is refused
    assert main(["train", "--data", "oracle", "--set", "data.max_length=12"]) == 2
    assert "data.max_length=20" in capsys.readouterr().err


@pytest.mark.parametrize(
    "extra,needle",
    [
        (["--set", "data.allow_eos=true"], "data.allow_eos=true"),
        (["--set", "data.oracle_train=0"], "data.oracle_train=0"),
        (["--set", "data.oracle_valid=-1"], "data.oracle_valid=-1"),
    ],
)
def test_oracle_bad_config(extra, needle, capsys, tmp_path):
    rc = main(["train", "--data", "oracle", "--set", "data.max_length=20", "--set", f"out_dir={tmp_path}", *extra])
    err = capsys.readouterr().err
    assert rc == 2 and needle in err and "Traceback" not in err
    assert not any(Path(tmp_path).iterdir())


def test_oracle_seeds_summarize_the_oracle_metrics(tmp_path, capsys):
    assert main(["train", *TINY, "--seeds", "0,1", "--set", f"out_dir={tmp_path}"]) == 0
    out = capsys.readouterr().out
    assert "eval/nll_oracle" in out and "eval/nll_test" in out and "eval/bigram_nll" not in out
    (group,) = Path(tmp_path).iterdir()
    summary = json.loads((group / "summary.json").read_text())
    assert summary["metrics"]["eval/nll_oracle"]["n"] == 2 and summary["metrics"]["eval/nll_test"]["n"] == 2


def test_oracle_sweep_on_a_character_metric_is_refused(tmp_path, capsys):
    space = tmp_path / "space.json"
    space.write_text(json.dumps({"reinforce.lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}}))
    rc = main(["sweep", "--trials", "1", "--space", str(space), "--dir", str(tmp_path / "sw"), *TINY[1:]])
    assert rc == 2
    err = capsys.readouterr().err
    assert "--metric eval/bigram_nll" in err and "eval/nll_oracle" in err
    assert not (tmp_path / "sw").exists()  # refused before anything was written
