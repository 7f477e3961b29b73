"""benchmark gan: the verdict logic by hand, and one tiny end-to-end run (JSON, table, frontier PNG)."""

from __future__ import annotations

import json

import pytest
import torch

from seqgan_benchmarks import quality_gan
from seqgan_benchmarks.quality_gan import (
    GanBenchmarkConfig,
    format_table,
    frontier_quality,
    run_benchmark,
    split_test,
    summarize,
)
from seqgan_env.eval.ratio_d import RatioDConfig

TEMPS = (0.8, 1.0, 1.2)


def _seed(mle, arm):
    """One seed's result: {arm: {temperature: metrics}} from (coverage, quality) per temperature."""
    def metrics(cov, q):
        return {"quality": q, "coverage": cov, "bigram_js": 0.1, "length_tv": 0.1, "uniqueness": 1.0,
                "novelty": 1.0, "self_bleu3": 0.3}
    return {"arms": {"mle": {str(t): metrics(*p) for t, p in zip(TEMPS, mle)},
                     "adversarial": {str(t): metrics(*p) for t, p in zip(TEMPS, arm)}}}


def test_frontier_quality_interpolates_and_refuses_outside():
    pts = [(2.0, 3.0), (3.0, 2.0), (4.0, 1.5)]
    assert frontier_quality(pts, 2.5) == pytest.approx(2.5)
    assert frontier_quality(pts, 3.5) == pytest.approx(1.75)
    assert frontier_quality(pts, 5.0) is None


@pytest.mark.parametrize(
    "arm_t1,beats,below",
    [
        ((3.0, 1.9), True, True),  # better quality at the same coverage: beats, below the frontier
        ((3.5, 1.9), False, False),  # better quality bought with coverage, on MLE's curve
        ((2.9, 2.5), False, False),  # worse quality
    ],
)
def test_verdicts_by_hand(arm_t1, beats, below):
    mle = [(4.0, 1.5), (3.0, 2.0), (2.0, 3.0)]  # (coverage, quality) at T 0.8, 1.0, 1.2: hotter, more diverse, worse
    arm = [(4.0, 1.5), arm_t1, (2.0, 3.0)]
    cfg = GanBenchmarkConfig(arms=("mle", "adversarial"), temperatures=TEMPS)
    verdict = summarize(cfg, [_seed(mle, arm)] * 3)["verdicts"]["adversarial"]
    assert verdict["beats_mle_at_t1"] is beats
    assert verdict["below_mle_frontier"] == [below] * 3


def test_split_test_is_fixed_and_disjoint():
    texts = [f"t{i}" for i in range(100)]
    rest, test = split_test(texts, 0.1, 5)
    assert len(test) == 10 and not set(rest) & set(test) and split_test(texts, 0.1, 5) == (rest, test)


@pytest.mark.parametrize("kwargs,match", [({"arms": ("d_filter",)}, "add mle"), ({"temperatures": (0.8,)}, "1.0"),
                                          ({"seeds": (0, 0)}, "distinct"), ({"samples": 0}, "samples=0"),
                                          ({"arms": ("tilted",)}, "add mle"), ({"mle_patience": -1}, "mle_patience"),
                                          ({"mle_max_steps": 0}, "mle_max_steps"), ({"ratio_d": {}}, "RatioDConfig"),
                                          ({"data": "oracle", "arms": ("mle", "tilted")}, "not run on the oracle"),
                                          ({"arms": ("mle", "distill")}, "add tilted"),
                                          ({"arms": ("mle", "distill", "tilted")}, "before distill"),
                                          ({"distill_fraction": 1.0}, "distill_fraction")])
def test_bad_config_is_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GanBenchmarkConfig(**kwargs)


TINY = ("generator.hidden_size=16", "generator.intermediate_size=32", "generator.num_layers=1",
        "discriminator_model.hidden_size=16", "discriminator_model.intermediate_size=32",
        "discriminator_model.num_layers=1", "schedule.updates=2", "schedule.pretrain_steps=2",
        "schedule.d_pretrain_steps=1", "schedule.eval_every=2", "schedule.eval_samples=10",
        "reinforce.batch_size=8", "d_updates.batch_size=8")


def test_tiny_end_to_end(tmp_path):
    cfg = GanBenchmarkConfig(seeds=(0,), overrides=TINY, temperatures=(0.9, 1.0), samples=30, mle_eval_every=2,
                             d_filter_steps=2, d_filter_batch=8, mle_max_steps=8, mle_patience=2, ratio_d=TINY_RATIO,
                             distill_pool=40)
    out = tmp_path / "gan.json"
    result = run_benchmark(cfg, out, log=lambda m: None, workdir=tmp_path)
    saved = json.loads(out.read_text())
    seed = saved["seeds"][0]
    assert set(seed["arms"]) == {"mle", "adversarial", "scratch", "d_filter", "tilted", "distill"}
    assert set(seed["arms"]["mle"]) == {"0.9", "1.0"}
    assert set(saved["summary"]["verdicts"]) == {"adversarial", "scratch", "d_filter", "tilted", "distill"}
    # the nll column: a number for every arm with a likelihood, None for d_filter
    assert seed["nll"]["d_filter"] is None and all(seed["nll"][a] > 0 for a in ("mle", "adversarial", "scratch", "tilted",
                                                                                   "distill"))
    assert seed["nll_rows"] > 0
    # equal compute: the arms' generator steps follow the mle arm's best step; D steps counted
    best = seed["mle"]["best_step"]
    assert seed["generator_steps"]["tilted"] == seed["generator_steps"]["d_filter"] == best
    assert seed["generator_steps"]["adversarial"] == best + 2
    assert seed["d_steps"]["tilted"] == seed["ratio_d"]["steps"] and seed["d_steps"]["d_filter"] == 2
    assert seed["generator_steps"]["distill"] == seed["distill"]["best_step"] <= 8
    if seed["ratio_d"]["alpha"] == 0.0:  # D did not beat the generator on validation: the tilted arm is the mle arm
        assert seed["nll"]["tilted"] == pytest.approx(seed["nll"]["mle"], abs=1e-6)
    assert out.with_suffix(".png").stat().st_size > 1000
    assert json.loads(json.dumps(result["summary"])) == saved["summary"]


def test_the_adversarial_arm_starts_from_the_mle_arms_best_weights(tmp_path, monkeypatch):
    """The arm's pretraining replays the mle arm's rule: after a learning-rate drop it keeps the same weights."""
    import seqgan_agents.mle as mle_module
    from seqgan_agents.lifecycle import new_run

    def script():  # best at step 4, plateau and drop at 8, a new best at 10, stop at 14
        scores = iter([3.0, 2.0, 2.5, 2.6, 1.9, 2.2, 2.3])
        monkeypatch.setattr(mle_module, "generator_nll", lambda *a, **k: next(scores))

    cfg = GanBenchmarkConfig(seeds=(0,), overrides=TINY, temperatures=(1.0,), samples=10, mle_eval_every=2,
                             mle_max_steps=20, mle_patience=2)
    (tmp_path / "train.txt").write_text("\n".join(f"name{i}" for i in range(60)) + "\n", encoding="utf-8")
    base = cfg.train_config(0, str(tmp_path))
    script()
    mle, info = quality_gan._train_mle(base, cfg.mle_eval_every, 20, cfg.mle_patience, lambda m: None)
    assert (info["lr_drop_step"], info["best_step"], info["steps"]) == (8, 10, 14)
    script()
    arm = new_run(quality_gan.replay_mle(cfg, base, cfg.train_config(0, str(tmp_path), "adversarial")))
    arm._pretrain_generator()
    assert (arm.mle_best_step, arm.mle_steps) == (10, 14)
    want = mle.agent.generator.state_dict()
    assert all(torch.equal(v, want[k]) for k, v in arm.agent.generator.state_dict().items())
    mle.run.close()
    arm.run.close()


def test_coco_uses_its_test_file_and_preset(tmp_path, monkeypatch):
    """benchmark gan --data coco: the named training file, its own test file (no split), the coco preset's
    tokenizer, and word BLEU-4 beside the character numbers (toy caption files stand in for the real ones)."""
    from seqgan_env.data import text

    train = ["a man riding a horse on a beach.", "two dogs play in the park", "a red bus next to a building.",
             "a cat on a laptop keyboard", "a plate of food with rice.", "a small boat on a lake"] * 5
    test = ["a dog on a beach.", "a red boat on the lake", "two cats play in a park"]
    (tmp_path / "tr.txt").write_text("\n".join(train) + "\n")
    (tmp_path / "te.txt").write_text("\n".join(test) + "\n")
    monkeypatch.setitem(text.NAMED_DATA, "coco", (tmp_path / "tr.txt", tmp_path / "te.txt"))
    tiny = ("generator.hidden_size=16", "generator.intermediate_size=32", "generator.num_layers=1",
            "discriminator_model.hidden_size=16", "discriminator_model.intermediate_size=32",
            "discriminator_model.num_layers=1", "schedule.updates=2", "schedule.pretrain_steps=2",
            "schedule.d_pretrain_steps=1", "schedule.eval_every=2", "schedule.eval_samples=10",
            "reinforce.batch_size=8", "d_updates.batch_size=8", "tokenizer.vocab_size=300")
    cfg = GanBenchmarkConfig(data="coco", seeds=(0,), arms=("mle", "adversarial"), overrides=tiny,
                             temperatures=(1.0,), samples=12, mle_eval_every=2)
    assert cfg.train_config(0, str(tmp_path)).tokenizer.kind == "bpe"
    logs: list[str] = []
    result = run_benchmark(cfg, tmp_path / "gan.json", log=logs.append, workdir=tmp_path)
    assert f"{len(train)} rows for training (and validation), {len(test)} held out" in logs[0]
    m = result["seeds"][0]["arms"]["adversarial"]["1.0"]
    assert 0.0 <= m["bleu4"] <= 1.0 and "bleu4" in result["summary"]["arms"]["adversarial"]["diff_vs_mle"]


TINY_RATIO = RatioDConfig(steps=4, batch_size=8, pool_size=64, eval_every=2, gain_samples=16, hidden_size=8,
                          num_layers=1)


TINY = ("generator.hidden_size=16", "generator.intermediate_size=32", "generator.num_layers=1",
        "discriminator_model.hidden_size=16", "discriminator_model.intermediate_size=32",
        "discriminator_model.num_layers=1", "schedule.updates=2", "schedule.pretrain_steps=2",
        "schedule.d_pretrain_steps=1", "schedule.eval_every=2", "schedule.eval_samples=10",
        "reinforce.batch_size=8", "d_updates.batch_size=8")


@pytest.mark.parametrize("variants,match", [(("rloo",), "NAME:KEY=VALUE"), (("rloo:gamma",), "NAME:KEY=VALUE"),
                                             (("mle:reinforce.gamma=0.9",), "taken"),
                                             (("a:x=1", "a:y=2"), "taken"), (("1x:a=1",), "NAME:KEY=VALUE"),
                                             (("typo:reinforce.gama=0.9",), "unknown key 'gama'")])
def test_bad_variant_is_named(variants, match):
    with pytest.raises(ValueError, match=match):
        GanBenchmarkConfig(variants=variants)


def test_variants_are_adversarial_arms_with_their_overrides(tmp_path):
    cfg = GanBenchmarkConfig(variants=("rloo:reinforce.baseline=rloo,reinforce.gamma=0.9",), overrides=TINY)
    assert cfg.arms == ("mle", "adversarial", "scratch", "d_filter", "tilted", "distill", "rloo")
    tc = cfg.train_config(0, str(tmp_path), "rloo")
    assert (tc.reinforce.baseline, tc.reinforce.gamma, tc.generator.hidden_size) == ("rloo", 0.9, 16)
    assert cfg.train_config(0, str(tmp_path)).reinforce.baseline == "ewma"
    with pytest.raises(ValueError, match="arms"):
        GanBenchmarkConfig(arms=("mle", "nope"))


def test_score_on_valid_never_scores_the_test_split(tmp_path, monkeypatch):
    import seqgan_benchmarks.quality_gan as qg

    texts = [f"name{chr(97 + i % 26)}{chr(97 + i // 26 % 26)}" for i in range(300)]
    (tmp_path / "names.txt").write_text("\n".join(texts) + "\n")
    cfg = GanBenchmarkConfig(data=str(tmp_path / "names.txt"), seeds=(0,), arms=("mle", "adversarial"),
                             overrides=TINY, temperatures=(1.0,), samples=12, mle_eval_every=2, score_on="valid")
    rest, test = split_test(texts, cfg.test_fraction, cfg.split_seed)
    seen: list = []
    real = qg.run_seed

    def spy(c, seed, trained, scored, workdir, log):
        seen.append((list(trained), list(scored)))
        return real(c, seed, trained, scored, workdir, log)

    monkeypatch.setattr(qg, "run_seed", spy)
    logs: list[str] = []
    run_benchmark(cfg, tmp_path / "gan.json", log=logs.append, workdir=tmp_path)
    trained, scored = seen[0]
    assert not set(scored) & set(test) and not set(trained) & set(test) and not set(trained) & set(scored)
    assert len(trained) + len(scored) == len(rest) and "test not scored" in logs[0]


def test_oracle_arms_metrics_and_refusals(tmp_path):
    with pytest.raises(ValueError, match="no NLL-test"):
        GanBenchmarkConfig(data="oracle", arms=("mle", "d_filter"))
    cfg = GanBenchmarkConfig(data="oracle", seeds=(0,), overrides=TINY + ("data.oracle_train=64", "data.oracle_valid=32"),
                             temperatures=(0.9, 1.0), samples=16, mle_eval_every=2, oracle_test=24)
    assert cfg.arms == ("mle", "adversarial", "scratch") and cfg.metrics == ("quality", "coverage")
    assert cfg.train_config(0, str(tmp_path)).data.is_oracle
    result = run_benchmark(cfg, tmp_path / "gan.json", log=lambda m: None, workdir=tmp_path)
    m = result["seeds"][0]["arms"]["mle"]
    # NLL-oracle and NLL-test of a barely trained generator: near log(5000) = 8.5 nats per token, finite
    assert all(5.0 < m[t][k] < 12.0 for t in ("0.9", "1.0") for k in ("quality", "coverage"))
    assert m["0.9"]["coverage"] != m["1.0"]["coverage"]  # NLL-test follows the temperature
    assert set(result["summary"]["verdicts"]) == {"adversarial", "scratch"}


def test_oracle_heldout_is_a_separate_fixed_sample():
    from seqgan_benchmarks.quality_gan import oracle_heldout
    from seqgan_env.eval.oracle import OracleLSTM
    from seqgan_env.eval.oracle_data import IntTokenizer, load_oracle_dataset

    oracle, tok = OracleLSTM.from_npz(), IntTokenizer()
    cfg = GanBenchmarkConfig(data="oracle", oracle_test=50)
    a, b = oracle_heldout(cfg, oracle, tok), oracle_heldout(cfg, oracle, tok)
    valid = oracle_heldout(GanBenchmarkConfig(data="oracle", oracle_test=50, score_on="valid"), oracle, tok)
    run_rows = load_oracle_dataset(n_train=50, n_valid=10, seed=0, oracle=oracle)
    assert torch.equal(a, b) and a.shape == (50, 20) and not torch.equal(a, valid)
    assert not torch.equal(a, run_rows.train)


def test_nll_column_and_verdict_by_hand():
    """nll: mean ± std per arm, blank for d_filter; the tilted verdict counts seeds below MLE by the margin."""
    mle = [(4.0, 1.5), (3.0, 2.0), (2.0, 3.0)]
    cfg = GanBenchmarkConfig(arms=("mle", "d_filter", "tilted"), temperatures=TEMPS)
    seeds = []
    for mle_nll, tilted in ((2.00, 1.98), (2.01, 2.005), (1.99, 1.97)):  # seed 1 wins by only 0.005
        s = _seed(mle, mle)
        s["arms"] = {"mle": s["arms"]["mle"], "d_filter": s["arms"]["mle"], "tilted": s["arms"]["mle"]}
        s["nll"] = {"mle": mle_nll, "d_filter": None, "tilted": tilted}
        seeds.append(s)
    summary = summarize(cfg, seeds)
    assert summary["arms"]["d_filter"]["nll"] is None and summary["arms"]["d_filter"]["diff_vs_mle"]["nll"] is None
    assert summary["arms"]["tilted"]["diff_vs_mle"]["nll"][0] == pytest.approx((-0.02 - 0.005 - 0.02) / 3)
    assert summary["verdicts"]["tilted"]["seeds_nll_below_mle_by_margin"] == 2
    assert "by >= 0.01 on 2/3 seeds" in summary["verdicts"]["tilted"]["text"]
    table = format_table(cfg, summary, 3)
    assert "| nll |" in table and "-0.0150 ± " in table
    d_filter_row = next(line for line in table.splitlines() if line.startswith("| d_filter |"))
    assert d_filter_row.split("|")[-5].strip() == ""  # no likelihood: the nll cell is blank


def test_tilted_alpha_is_chosen_on_the_trainers_validation_rows(tmp_path, monkeypatch):
    """fit_ratio_d (which chooses D's stopping step and alpha) sees the trainer's validation rows only, none of
    the rows the benchmark scores."""
    seen = {}
    real_fit = quality_gan.fit_ratio_d

    def spy(generator, sample_fn, train_rows, valid_rows, config, **kw):
        seen["valid"], seen["train"] = valid_rows.clone(), train_rows.clone()
        return real_fit(generator, sample_fn, train_rows, valid_rows, config, **kw)

    monkeypatch.setattr(quality_gan, "fit_ratio_d", spy)
    names = [f"{a}{b}{c}" for a in "abcdef" for b in "ghij" for c in "klm"]  # 72 distinct names
    data = tmp_path / "names.txt"
    data.write_text("\n".join(names) + "\n")
    cfg = GanBenchmarkConfig(data=str(data), seeds=(0,), arms=("mle", "tilted"), overrides=TINY, temperatures=(1.0,),
                             samples=10, mle_eval_every=2, mle_max_steps=4, ratio_d=TINY_RATIO, test_fraction=0.2)
    logs: list[str] = []
    result = run_benchmark(cfg, tmp_path / "gan.json", log=logs.append, workdir=tmp_path)
    _, test = split_test(names, 0.2, cfg.split_seed)
    from seqgan_env.data.tokenizer import CharTokenizer

    tok = CharTokenizer.from_texts(names)
    decode = lambda rows: set(tok.decode_batch(rows))  # noqa: E731
    assert decode(seen["valid"]) and not decode(seen["valid"]) & set(test) and not decode(seen["train"]) & set(test)
    assert not decode(seen["valid"]) & decode(seen["train"])
    assert result["seeds"][0]["nll_rows"] == len(test)
