"""The experiment workflow from the CLI: notes, runs list/diff, --seeds summary, a resumable sweep."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from seqgan_env.cli import main

TINY = [
    "--no-progress", "--updates", "2", "--pretrain-steps", "1",
    "--set", "schedule.d_pretrain_steps=1", "--set", "schedule.eval_samples=20", "--set", "schedule.eval_every=2",
    "--set", "d_updates.batch_size=8",
    "--generator.hidden-size", "16", "--generator.intermediate-size", "32", "--generator.num-layers", "1",
]


def test_two_variants_list_and_diff(tmp_path, capsys):
    for bs, note in ((8, "small batch"), (16, "bigger batch")):
        assert main(["train", *TINY, "--set", f"out_dir={tmp_path}", "--set", f"reinforce.batch_size={bs}",
                     "--name", f"b{bs}", "--note", note]) == 0
    capsys.readouterr()
    a, b = sorted(Path(tmp_path).iterdir())
    assert main(["runs", "list", str(tmp_path)]) == 0
    table = capsys.readouterr().out
    assert "small batch" in table and "bigger batch" in table and table.count("finished") == 2
    assert main(["runs", "diff", str(a), str(b)]) == 0
    diff = capsys.readouterr().out
    assert "reinforce.batch_size" in diff and "8" in diff and "16" in diff
    assert "seed" not in [line.split()[0] for line in diff.splitlines() if line.strip()]  # same seed: not listed


def test_seeds_summary_equals_per_seed_aggregates(tmp_path, capsys):
    assert main(["train", *TINY, "--set", f"out_dir={tmp_path}", "--set", "reinforce.batch_size=8", "--seeds", "0,1,2"]) == 0
    out = capsys.readouterr().out
    group = next(Path(tmp_path).iterdir())
    summary = json.loads((group / "summary.json").read_text())
    runs = sorted(p for p in group.iterdir() if p.is_dir())
    assert len(runs) == 3
    finals = []
    for run in runs:
        lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
        finals.append([m["eval/bigram_nll"] for m in lines if "eval/bigram_nll" in m][-1])
    stats = summary["metrics"]["eval/bigram_nll"]
    assert stats["mean"] == pytest.approx(np.mean(finals)) and stats["std"] == pytest.approx(np.std(finals))
    assert stats["min"] == pytest.approx(min(finals)) and stats["n"] == 3
    assert "eval/bigram_nll" in out and "±" in out
    assert main(["plot", str(group)]) == 0  # seeds overlaid with a mean ± std band
    pngs = capsys.readouterr().out.split()
    assert len(pngs) == 2 and all(Path(p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    assert main(["plot", str(runs[0])]) == 0
    names = sorted(Path(p).name for p in capsys.readouterr().out.split())
    assert names == ["discriminator.png", "eval.png", "reward.png"]
    assert main(["plot", str(tmp_path / "nope")]) == 2


def test_seeds_bad_value(capsys):
    assert main(["train", "--seeds", "0,x"]) == 2
    assert "--seeds" in capsys.readouterr().err


def test_sweep_two_trials_then_resume(tmp_path, capsys):
    space = tmp_path / "space.json"
    space.write_text(json.dumps({"reinforce.lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}}))
    args = ["sweep", "--trials", "1", "--space", str(space), "--dir", str(tmp_path / "sw"), *TINY[1:],
            "--set", "reinforce.batch_size=8"]
    assert main(args) == 0
    args[args.index("--trials") + 1] = "2"  # resume the same study for one more trial
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "2" in out
    runs = list((tmp_path / "sw" / "runs").iterdir())
    assert len(runs) == 2  # trial 0 was not rerun
