"""seqgan_env.runs.plots on hand-written metrics: which PNGs a run's metrics give."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from seqgan_env.runs.plots import plot_run


def _write(run: Path, rows: list[dict]) -> None:
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"format_version": 1, "config": {}}))
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.mark.parametrize("with_kl,with_sources", [(False, False), (True, False), (False, True), (True, True),
                                                   (False, "discriminator only")])
def test_kl_and_sources_panels_only_when_the_run_has_them(tmp_path, with_kl, with_sources):
    rows = []
    for step in range(1, 6):
        row = {"step": step, "reward_mean": 0.1 * step, "reward_std": 0.01, "discriminator/loss": 0.69,
               "discriminator/acc_real": 0.5, "discriminator/acc_fake": 0.5, "discriminator/phase_steps": step % 3 + 1}
        if with_kl:
            row.update(kl=0.01 * step, kl_coef=0.1 * 1.02 ** step)
        if with_sources == "discriminator only":  # the default run: one source, reward.png says it all
            row.update({"reward/discriminator": 0.1 * step})
        elif with_sources:
            row.update({"reward/discriminator": 0.2 * step, "reward/brevity": -0.1 * step, "reward/kl": -0.001})
        rows.append(row)
    rows.append({"step": 5, "eval/d_auc": 0.61, "eval/bigram_nll": 2.4})
    _write(tmp_path / "run", rows)
    paths = plot_run(tmp_path / "run")
    names = sorted(p.name for p in paths)
    expected = (["discriminator.png", "eval.png", "reward.png"] + (["kl.png"] if with_kl else [])
                + (["reward_sources.png"] if with_sources is True else []))
    assert names == sorted(expected)
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in paths)
