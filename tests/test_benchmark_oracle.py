"""The oracle benchmark: config validation, the table and verdict from known numbers, a tiny real run."""

import json

import pytest
import torch

from seqgan_benchmarks.quality_oracle import (
    ROWS,
    ConstantScorer,
    OracleBenchmarkConfig,
    format_table,
    run_benchmark,
    summarize,
    verdict,
)
from seqgan_benchmarks.speed_oracle import OracleBenchConfig, bench_oracle
from seqgan_env.cli import main


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"seeds": ()}, "seeds"),
        ({"seeds": (0, 0)}, "repeats"),
        ({"seeds": (-1,)}, "seeds"),
        ({"rows": ("mle", "gail")}, "rows"),
        ({"budget": 0}, "budget"),
        ({"budget": float("nan")}, "budget"),
        ({"updates": 0}, "updates"),
        ({"lr": -1.0}, "lr"),
        ({"rollout_rate": 1.5}, "rollout_rate"),
    ],
)
def test_bad_config_names_the_value(kwargs, match):
    with pytest.raises(ValueError, match=match):
        OracleBenchmarkConfig(**kwargs)


@pytest.mark.parametrize("budget, steps, expected", [(1.0, 40, 40), (0.5, 40, 20), (0.01, 40, 1), (3.0, 0, 0)])
def test_budget_scales_steps(budget, steps, expected):
    assert OracleBenchmarkConfig(budget=budget).scaled(steps) == expected


def _seed(nll_o, nll_t, secs):
    return {"rows": {row: {"nll_oracle": o, "nll_test": t, "seconds": s}
                     for row, o, t, s in zip(("pretrained", "mle", "seqgan"), nll_o, nll_t, secs)}}


def test_summary_table_and_verdict_from_known_numbers():
    per_seed = [_seed((9.5, 9.2, 8.6), (7.0, 7.0, 7.5), (10, 1, 100)),
                _seed((9.7, 9.4, 8.8), (7.2, 7.0, 7.5), (12, 3, 110))]
    summary = summarize(per_seed)
    assert summary["mle"]["nll_oracle"] == pytest.approx((9.3, 0.1))  # mean, population std
    assert summary["seqgan"]["seconds"] == pytest.approx((105.0, 5.0))
    table = format_table(summary, 2)
    assert "| MLE only | 9.300 ± 0.100 | 7.000 ± 0.000 | 2 ± 1 | 9.038 |" in table
    assert "8.736" in table
    lines = verdict(summary)
    seqgan = next(line for line in lines if line.startswith("SeqGAN"))
    assert "8.700 beats" in seqgan and "NLL-test +0.400" in seqgan and "mode dropping" in seqgan
    mle = next(line for line in lines if line.startswith("MLE only"))
    assert "does not beat" in mle and "mode dropping" not in mle


def test_constant_scorer_gives_probability_one_half():
    logits = ConstantScorer().score_logits(torch.ones(3, 5, dtype=torch.long))
    assert logits.shape == (3, 5) and torch.sigmoid(logits).eq(0.5).all()


def test_tiny_benchmark_runs_every_row_and_writes_json(tmp_path):
    cfg = OracleBenchmarkConfig(
        seeds=(0, 1), batch_size=8, num_rollouts=2, pretrain_steps=3, d_pretrain_steps=1, updates=2, d_steps=1,
        eval_samples=16, oracle_train=64, oracle_valid=16, device="cpu",
    )
    logs = []
    result = run_benchmark(cfg, tmp_path / "out.json", log=logs.append)
    saved = json.loads((tmp_path / "out.json").read_text())
    assert saved["summary"].keys() == {"untrained", "pretrained", *ROWS}
    for seed in saved["seeds"]:
        for row in ("untrained", "pretrained", *ROWS):
            r = seed["rows"][row]
            assert 0 < r["nll_test"] < 20 and 0 < r["nll_oracle"] < 20
    assert result["seeds"][0]["rows"]["mle"] != result["seeds"][1]["rows"]["mle"]  # seeds differ
    assert any(line.startswith("| method |") for line in logs)


def test_tiny_bench_oracle_reports_ratios():
    logs = []
    res = bench_oracle(OracleBenchConfig(batch_size=4, num_rollouts=2, mc_updates=1, per_step_updates=1,
                                         train_sequences=16, device="cpu"), log=logs.append)
    for key in ("mc_rollout_tokens_per_s", "per_step_tokens_per_s", "mle_epoch_s"):
        assert res[key] > 0
    assert res["mc_rollout_vs_peer"] == pytest.approx(res["mc_rollout_tokens_per_s"] / 45.0)
    assert any("x peer" in line for line in logs)
    for arm in ("lstm", "peer", "llama"):  # MLE epochs measured side by side, one time per round
        assert len(res[f"mle_epoch_{arm}_rounds"]) == 3 and res[f"mle_epoch_{arm}_s"] > 0
        assert res[f"mle_epoch_{arm}_vs_peer"] == pytest.approx(res["mle_epoch_peer_s"] / res[f"mle_epoch_{arm}_s"])
    assert res["mle_epoch_peer_vs_peer"] == pytest.approx(1.0)


@pytest.mark.parametrize("argv, match", [
    (["benchmark", "oracle", "--seeds", "a,b"], "--seeds"),
    (["benchmark", "oracle", "--rows", "mle,nope"], "rows"),
    (["benchmark", "oracle", "--budget", "-1"], "budget"),
    (["benchmark", "oracle", "--out", "."], "is a directory"),
])
def test_cli_bad_benchmark_input_exits_2_with_message(argv, match, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    assert match in capsys.readouterr().err
    assert not (tmp_path / "benchmarks").exists() or not any((tmp_path / "benchmarks").iterdir())


def test_seqgan_mle_recipe_early_stops_on_its_own_split(tmp_path):
    """--mle-recipe seqgan: the LSTM family, epochs early-stopped on rows apart from the NLL-test rows."""
    from seqgan_benchmarks.quality_oracle import early_stop_split
    from seqgan_env.eval.oracle_data import load_oracle_dataset

    cfg = OracleBenchmarkConfig.with_recipe(
        "seqgan", seeds=(0,), rows=("mle",), batch_size=16, pretrain_epochs=3, pretrain_patience=1, d_pretrain_steps=1,
        updates=1, eval_samples=16, oracle_train=64, oracle_valid=16, stop_valid=16, device="cpu",
    )
    assert cfg.generator.family == "lstm" and cfg.pretrain_lr == 0.01 and cfg.pretrain_clip == 5.0
    result = run_benchmark(cfg, tmp_path / "out.json", log=lambda _: None)
    pre = result["seeds"][0]["pretrain"]
    assert 1 <= pre["best_epoch"] <= pre["epochs"] <= 3 and len(pre["history"]) == pre["epochs"]
    assert pre["best_valid_nll"] == min(h["valid_nll"] for h in pre["history"])
    data = load_oracle_dataset(64, 16, seed=0)
    stop = early_stop_split(data, 16, 0)
    assert not any(torch.equal(stop[i], data.valid[j]) for i in range(16) for j in range(16))
    with pytest.raises(ValueError, match="--mle-recipe 'nope' is unknown"):
        OracleBenchmarkConfig.with_recipe("nope")
