"""benchmark agents: the config's checks, the verdict by hand, the CLI's messages, and one tiny run end to end."""

from __future__ import annotations

import json
import statistics

import pytest

from seqgan_benchmarks.quality_agents import AGENTS, AgentsBenchmarkConfig, at_equal_wall, run_benchmark, verdict
from seqgan_env.cli import main

TINY = ("generator.hidden_size=16", "generator.intermediate_size=32", "generator.num_layers=1",
        "discriminator_model.hidden_size=16", "discriminator_model.intermediate_size=32",
        "discriminator_model.num_layers=1", "schedule.pretrain_steps=2", "schedule.d_pretrain_steps=1",
        "reinforce.batch_size=8", "d_updates.batch_size=8", "ppo.n_envs=4", "ppo.n_steps=12", "ppo.batch_size=16",
        "ppo.n_epochs=1")


@pytest.mark.parametrize("kwargs,match", [
    ({"seeds": (0, 0)}, "seeds=.*distinct"),
    ({"agents": ("reinforce", "dqn")}, "agents=.*choose distinct agents among"),
    ({"agents": ()}, "agents=.*choose"),
    ({"env_steps": 0}, "env_steps"),
    ({"samples": 1}, "samples"),
    ({"eval_at": (0.5,)}, "eval_at=.*ending at 1.0"),
    ({"eval_at": (0.5, 0.25, 1.0)}, "eval_at=.*increasing"),
    ({"test_fraction": 0.7}, "test_fraction=0.7"),
    ({"data": "coco"}, "data='coco'.*fix: pass a text file"),
    ({"overrides": ("ppo.gamma=2",)}, "ppo.gamma"),
    ({"overrides": ("agent=ppo",)}, "agent=ppo in --set.*fix: drop"),
    ({"overrides": ("reward_scorer=mc_rollout", "reward.mode=per_step", "reinforce.gamma=0")}, "reward_scorer"),
])
def test_bad_config_is_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AgentsBenchmarkConfig(**kwargs)


def _rows(scores: dict[str, list[float]]) -> list[dict[str, dict]]:
    n = len(next(iter(scores.values())))
    return [{a: {"score": s[i]} for a, s in scores.items()} for i in range(n)]


@pytest.mark.parametrize("scores,best,runner", [
    ({"reinforce": [8.0, 8.1, 8.2], "ppo": [8.5, 8.4, 8.6], "a2c": [8.1, 8.0, 8.4]}, "reinforce", "a2c"),
    ({"reinforce": [8.5, 8.4, 8.6], "ppo": [8.0, 8.1, 8.2], "a2c": [9.0, 9.0, 9.0]}, "ppo", "reinforce"),
])
def test_verdict_names_the_lowest_mean_score_and_the_margins(scores, best, runner):
    cfg = AgentsBenchmarkConfig(agents=tuple(scores))
    v = verdict(cfg, _rows(scores), "equal_env_steps")
    assert v["best"] == best and v["runner_up"] == runner
    gap = statistics.fmean(scores[runner]) - statistics.fmean(scores[best])
    assert v["margins"][runner][0] == pytest.approx(gap)
    assert f"use {best}" in v["text"] and f"{runner} by {gap:.3f}" in v["text"] and "equal env steps" in v["text"]


def test_equal_wall_takes_each_agents_last_point_within_the_fastest_agents_time():
    seed = {"agents": {"fast": {"points": [{"wall": 0.0, "score": 9}, {"wall": 2.0, "score": 8}]},
                       "slow": {"points": [{"wall": 0.0, "score": 9}, {"wall": 1.5, "score": 8.5},
                                           {"wall": 6.0, "score": 7}]}}}
    wall, points = at_equal_wall(seed)
    assert wall == 2.0 and points["fast"]["score"] == 8 and points["slow"]["score"] == 8.5


def test_tiny_end_to_end_writes_json_table_plot_and_a_verdict_that_follows_the_numbers(tmp_path):
    cfg = AgentsBenchmarkConfig(seeds=(0, 1), overrides=TINY, env_steps=96, eval_at=(0.5, 1.0), samples=12)
    out = tmp_path / "agents.json"
    run_benchmark(cfg, out, log=lambda m: None, workdir=tmp_path)
    saved = json.loads(out.read_text())
    for s in saved["seeds"]:
        assert set(s["agents"]) == set(AGENTS)
        for a in s["agents"].values():
            pts = a["points"]
            assert pts[0]["env_steps"] == 0 and pts[-1]["env_steps"] >= cfg.env_steps and len(pts) >= 3
            assert all(p["wall"] <= q["wall"] for p, q in zip(pts, pts[1:])) and 0 <= pts[-1]["d_auc"] <= 1
        # one pretrained start for all: the same generator and D give the same first evaluation
        starts = [a["points"][0] for a in s["agents"].values()]
        assert all(p == starts[0] for p in starts)
    summary = saved["summary"]
    for view in ("equal_env_steps", "equal_wall"):
        rows = [{n: a["points"][-1] for n, a in s["agents"].items()} if view == "equal_env_steps"
                else at_equal_wall(s)[1] for s in saved["seeds"]]
        means = {a: statistics.fmean(r[a]["score"] for r in rows) for a in AGENTS}
        best = min(means, key=means.get)
        assert summary["verdicts"][view]["best"] == best and f"use {best}" in summary["verdicts"][view]["text"]
        assert summary[view][best]["score"][0] == pytest.approx(means[best])
    table = out.with_suffix(".md").read_text()
    assert "| ppo_sb3vec |" in table and summary["verdicts"]["equal_wall"]["text"] in table
    assert out.with_suffix(".png").stat().st_size > 1000


@pytest.mark.parametrize("argv,needle", [
    (["--env-steps", "0"], "env_steps=0"),
    (["--agents", "reinforce,dqn"], "agents="),
    (["--rows", "mle"], "belong to `benchmark oracle`"),
    (["--set", "ppo.policy=gpt"], "ppo.policy='gpt' is unknown"),
])
def test_cli_bad_value_is_one_line_and_exit_2(argv, needle, capsys, tmp_path):
    assert main(["benchmark", "agents", "--out", str(tmp_path / "a.json"), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1


def test_cli_env_steps_belongs_to_agents(capsys):
    assert main(["benchmark", "gan", "--env-steps", "5"]) == 2
    assert "belong to `benchmark agents`" in capsys.readouterr().err


def test_help_shows_the_agents_task(capsys):
    with pytest.raises(SystemExit):
        main(["benchmark", "--help"])
    out = capsys.readouterr().out
    assert "agents" in out and "--env-steps" in out and "--agents" in out
