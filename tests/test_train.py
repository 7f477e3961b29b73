"""The adversarial trainer and `seqgan-env train/sample` wired together on tiny models."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import pytest
import torch

from seqgan_agents.lifecycle import new_run, resume_run
from seqgan_agents.trainer import Trainer
from seqgan_agents.trainer_config import TrainConfig, train_config_from_dict
from seqgan_env.cli import main
from seqgan_env.runs.configio import apply_overrides, config_to_dict

TINY_MODEL = dict(hidden_size=16, intermediate_size=32, num_heads=2, num_layers=1, max_position_embeddings=16)


def tiny_config(tmp_path: Path, scorer: str = "discriminator", reinforce: dict | None = None, **schedule) -> TrainConfig:
    data = config_to_dict(TrainConfig())
    data.update(out_dir=str(tmp_path / "runs"), name="t", reward_scorer=scorer)
    data["mc_rollout"].update(num_rollouts=2)
    data["generator"] = dict(TINY_MODEL)
    data["discriminator_model"] = dict(TINY_MODEL)
    data["reinforce"].update(batch_size=16, device="cpu", **(reinforce or {}))
    data["d_updates"].update(batch_size=16)
    data["schedule"].update(
        dict(updates=4, pretrain_steps=2, d_pretrain_steps=1, eval_every=2, eval_samples=20, checkpoint_every=2) | schedule
    )
    return train_config_from_dict(data)


def d_hash(trainer: Trainer) -> str:
    h = hashlib.sha256()
    for k, v in sorted(trainer.discriminator.state_dict().items()):
        h.update(k.encode() + v.numpy().tobytes())
    return h.hexdigest()


@pytest.mark.parametrize("every,freeze", [(2, False), (3, False), (1, True)])
def test_discriminator_changes_only_on_schedule(tmp_path, every, freeze):
    cfg = tiny_config(tmp_path)
    data = config_to_dict(cfg)
    data["d_updates"].update(every=every, freeze=freeze)
    cfg = train_config_from_dict(data)
    trainer = new_run(cfg)
    trainer.pretrain()
    hashes = [d_hash(trainer)]
    gen_before = [p.detach().clone() for p in trainer.agent.generator.parameters()]
    for _ in range(6):
        trainer.train_step()
        hashes.append(d_hash(trainer))
    changed = [hashes[i] != hashes[i - 1] for i in range(1, 7)]
    expected = [False] * 6 if freeze else [(i % every == 0) for i in range(1, 7)]
    assert changed == expected
    assert any(not torch.equal(a, b) for a, b in zip(gen_before, trainer.agent.generator.parameters()))
    trainer.run.close()


def _metric_lines(run_path: Path) -> list[dict]:
    drop = {"wall_time", "update_seconds"}
    lines = [json.loads(x) for x in (run_path / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in m.items() if k not in drop} for m in lines]


KL = {"kl_coef": 0.1, "kl_target": 0.01}  # the KL term: its frozen reference and adapted coefficient must resume too


@pytest.mark.parametrize("scorer,reinforce", [("discriminator", None), ("mc_rollout", None), ("discriminator", KL)])
def test_resume_equals_uninterrupted(tmp_path, scorer, reinforce):
    full = new_run(tiny_config(tmp_path / "a", scorer, reinforce, updates=4))
    full.fit(progress=False)
    full.run.close()
    if reinforce:
        assert "kl" in _metric_lines(full.run.path)[-2] or any("kl" in m for m in _metric_lines(full.run.path))

    half = new_run(tiny_config(tmp_path / "b", scorer, reinforce, updates=2))
    half.fit(progress=False)
    half.run.close()
    # raise the budget in the run's config, as a user extending a run would
    cfg_path = half.run.path / "config.json"
    info = json.loads(cfg_path.read_text())
    info["config"]["schedule"]["updates"] = 4
    cfg_path.write_text(json.dumps(info))
    resumed = resume_run(half.run.path)
    assert resumed.step == 2
    resumed.fit(progress=False)
    resumed.run.close()

    a, b = _metric_lines(full.run.path), _metric_lines(half.run.path)
    steps_a = [m for m in a if m["step"] in (3, 4)]
    steps_b = [m for m in b if m["step"] in (3, 4)]
    assert len(steps_a) >= 2 and len(steps_a) == len(steps_b)
    for ma, mb in zip(steps_a, steps_b):
        assert ma.keys() == mb.keys()
        for k in ma:
            if isinstance(ma[k], float):
                assert ma[k] == pytest.approx(mb[k], rel=1e-5, abs=1e-6), k
            else:
                assert ma[k] == mb[k], k


def test_run_directory_contents_and_export(tmp_path):
    from transformers import LlamaForCausalLM

    trainer = new_run(tiny_config(tmp_path))
    trainer.fit(progress=False)
    trainer.run.close()
    run = trainer.run.path
    info = json.loads((run / "config.json").read_text())
    assert info["seed"] == 0 and len(info["data"]["sha256"]) == 64
    assert {"torch", "transformers", "gymnasium", "git_commit"} <= set(info["environment"])
    assert (run / "tokenizer.json").is_file() and any((run / "samples").iterdir())
    assert any((run / "tb").iterdir())
    metrics = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    per_update = [m for m in metrics if "policy_loss" in m]
    assert [m["step"] for m in per_update] == [1, 2, 3, 4]
    for key in ("reward_mean", "reward_std", "return_mean", "entropy", "discriminator/loss", "discriminator/acc_real", "lr"):
        assert key in per_update[0]
    model = LlamaForCausalLM.from_pretrained(run / "generator")
    assert model.config.vocab_size == trainer.data.tokenizer.vocab_size
    assert not list(run.rglob("*.pkl")) and not list(run.rglob("*.bin"))


def test_cli_train_then_sample_pipes(tmp_path, capsys):
    rc = main(
        [
            "train", "--no-progress", "--updates", "2", "--pretrain-steps", "2",
            "--set", f"out_dir={tmp_path}", "--set", "schedule.eval_samples=10", "--set", "schedule.d_pretrain_steps=1",
            "--set", "reinforce.batch_size=8", "--set", "d_updates.batch_size=8",
            "--generator.hidden-size", "16", "--generator.intermediate-size", "32", "--generator.num-layers", "1",
        ]
    )
    assert rc == 0
    run = next(Path(tmp_path).iterdir())
    capsys.readouterr()
    assert main(["sample", str(run), "-n", "7", "--seed", "3"]) == 0
    out = capsys.readouterr()
    lines = out.out.splitlines()
    assert len(lines) == 7 and all(line.isalpha() or line == "" for line in lines)
    assert main(["sample", str(run), "-n", "7", "--seed", "3"]) == 0
    assert capsys.readouterr().out.splitlines() == lines  # same seed, same samples
    assert main(["eval", str(run), "-n", "50"]) == 0
    printed = capsys.readouterr().out
    saved = json.loads((run / "eval.json").read_text())
    assert saved["samples"] == 50 and 0.0 <= saved["uniqueness"] <= 1.0 and "bigram_nll_drop" in saved
    assert f"{saved['bigram_nll']:.4f}" in printed


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["train", "--set", "reinforce.gama=0.9"], "unknown key 'gama'"),
        (["train", "--set", "reinforce.gamma=1.5"], "gamma=1.5"),
        (["train", "--set", "reinforce.batch_size=-4"], "batch_size=-4"),
        (["train", "--set", "schedule.updates=0"], "schedule.updates=0"),
        (["train", "--set", "nonsense"], "key=value"),
        (["train", "--set", "data.min_length=20"], "data.min_length=20"),
        (["train", "--set", "generator.hidden_size=30"], "hidden_size=30"),
        (["train", "--set", "reinforce.top_p=0"], "top_p"),
        (["train", "--set", "reinforce.batch_size=\"big\""], "batch_size"),
        (["train", "--agent", "ppo", "--set", "ppo.gamma=2"], "ppo.gamma=2"),
        (["train", "--agent", "ppo", "--set", "ppo.policy=gpt"], "ppo.policy='gpt' is unknown"),
        (["train", "--agent", "ppo", "--set", "ppo.value_hidden=0"], "ppo.value_hidden"),
        pytest.param(
            ["train", "--device", "cuda"], "no CUDA device",
            marks=pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA"),
        ),
        (["train", "--data", "/no/such/file.txt"], "/no/such/file.txt"),
        (["train", "--config", "/no/such/config.toml"], "config file"),
        (["sample", "/no/such/run"], "/no/such/run"),
        (["train", "--resume", "/no/such/run"], "/no/such/run"),
        (["eval", "/no/such/run"], "/no/such/run"),
    ],
)
def test_cli_bad_input_one_clear_message(argv, needle, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2
    assert needle in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_cli_corrupt_checkpoint_on_resume(tmp_path, capsys):
    trainer = new_run(tiny_config(tmp_path, updates=2))
    trainer.fit(progress=False)
    trainer.run.close()
    ckpt = trainer.run.latest_checkpoint()
    victim = ckpt / "agent.safetensors"
    victim.write_bytes(victim.read_bytes()[:100])
    rc = main(["train", "--resume", str(trainer.run.path)])
    err = capsys.readouterr().err
    assert rc == 2 and "agent.safetensors" in err and "Traceback" not in err


def test_apply_overrides_errors_name_the_key():
    data = config_to_dict(TrainConfig())
    with pytest.raises(ValueError, match="is a section"):
        apply_overrides(data, ["reinforce=3"], TrainConfig)
    out = apply_overrides(data, ["reinforce.betas=[0.5, 0.9]", "reward.mode=final"], TrainConfig)
    cfg = train_config_from_dict(out)
    assert cfg.reinforce.betas == (0.5, 0.9) and cfg.reward.mode == "final"


def _nan_loss_after(trainer: Trainer, good_calls: int, bad_calls: int):
    """Make agent._loss return NaN for `bad_calls` calls after `good_calls` normal ones."""
    real_loss = trainer.agent._loss
    calls = {"n": 0}

    def loss(rollout, real):
        calls["n"] += 1
        out = real_loss(rollout, real)
        if good_calls < calls["n"] <= good_calls + bad_calls:
            return (out[0] * float("nan"),) + tuple(out[1:])
        return out

    trainer.agent._loss = loss


def test_nonfinite_update_is_skipped_and_counted(tmp_path):
    trainer = new_run(tiny_config(tmp_path, updates=4, max_nonfinite=3))
    _nan_loss_after(trainer, good_calls=1, bad_calls=2)
    trainer.fit(progress=False)
    trainer.run.close()
    lines = [json.loads(x) for x in (trainer.run.path / "metrics.jsonl").read_text().splitlines()]
    assert sum(1 for m in lines if m.get("skipped_nonfinite")) == 2
    assert trainer.step == 4 and trainer.nonfinite_total == 2


def test_too_many_nonfinite_updates_stop_with_checkpoint_intact(tmp_path):
    trainer = new_run(tiny_config(tmp_path, updates=6, max_nonfinite=3, checkpoint_every=2))
    _nan_loss_after(trainer, good_calls=2, bad_calls=100)
    with pytest.raises(FloatingPointError, match="3 updates in a row"):
        trainer.fit(progress=False)
    trainer.run.close()
    assert trainer.run.latest_checkpoint().name.endswith("2")
    resumed = resume_run(trainer.run.path)  # the last good checkpoint loads
    assert resumed.step == 2
    resumed.run.close()


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT"])
def test_signal_saves_checkpoint_then_resume(tmp_path, sig):
    import signal
    import subprocess
    import sys
    import time

    cmd = [
        sys.executable, "-m", "seqgan_env.cli", "train", "--no-progress", "--updates", "500", "--pretrain-steps", "1",
        "--set", f"out_dir={tmp_path}", "--set", "schedule.d_pretrain_steps=1", "--set", "schedule.eval_samples=10",
        "--set", "schedule.checkpoint_every=1000", "--set", "reinforce.batch_size=8", "--set", "d_updates.batch_size=8",
        "--generator.hidden-size", "16", "--generator.intermediate-size", "32", "--generator.num-layers", "1",
    ]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    metrics = None
    while time.time() < deadline:
        runs = list(Path(tmp_path).glob("*/metrics.jsonl"))
        if runs and sum(1 for line in runs[0].read_text().splitlines() if '"policy_loss"' in line) >= 3:
            metrics = runs[0]
            break
        time.sleep(0.2)
    assert metrics is not None, "training did not start"
    proc.send_signal(getattr(signal, sig))
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert "checkpoint saved" in err and "Traceback" not in err
    run = metrics.parent
    resumed = resume_run(run)
    assert resumed.step >= 3
    resumed.run.close()


def test_second_trainer_on_same_run_is_refused(tmp_path):
    trainer = new_run(tiny_config(tmp_path, updates=2))
    trainer.fit(progress=False)  # leaves a checkpoint; the run stays open (locked) until close()
    import subprocess
    import sys

    code = f"from seqgan_agents.lifecycle import resume_run; resume_run({str(trainer.run.path)!r})"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode != 0 and "in use by process" in out.stderr
    trainer.run.close()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-1000:]


def test_stale_lock_is_taken_over(tmp_path):
    trainer = new_run(tiny_config(tmp_path, updates=2))
    trainer.fit(progress=False)
    trainer.run.close()
    (trainer.run.path / "lock").write_text("999999999")  # a pid that does not exist (a killed trainer)
    resumed = resume_run(trainer.run.path)
    assert (trainer.run.path / "lock").read_text() == str(__import__("os").getpid())
    resumed.run.close()


@pytest.mark.parametrize("agent", ["ppo", "maskable_ppo"])
def test_cli_train_sb3_agents_same_run_layout(tmp_path, capsys, agent):
    rc = main(
        [
            "train", "--no-progress", "--agent", agent, "--updates", "3",
            "--set", f"out_dir={tmp_path}", "--set", "ppo.n_envs=8", "--set", "ppo.n_steps=16",
            "--set", "ppo.batch_size=64", "--set", "schedule.eval_every=3", "--set", "d_updates.batch_size=8",
            "--set", "schedule.pretrain_steps=2", "--set", "reinforce.batch_size=16",
        ]
    )
    assert rc == 0, capsys.readouterr().err
    run = next(Path(tmp_path).iterdir())
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    updates = [m for m in lines if "reward_mean" in m]
    assert [m["step"] for m in updates] == [1, 2, 3]
    assert all("discriminator/loss" in m for m in updates)  # d_updates.every=1: D trained after each rollout
    # the discriminator, the only reward source, pays every episode's reward but the masked-action penalties
    # (plain PPO samples masked actions; MaskablePPO never does)
    for m in updates:
        if agent == "maskable_ppo":
            assert m["reward/discriminator"] == pytest.approx(m["reward_mean"], abs=1e-4)
        else:
            assert m["reward/discriminator"] >= m["reward_mean"] - 1e-4
    assert any("eval/uniqueness" in m for m in lines) and any((run / "samples").iterdir())
    assert (run / "checkpoints" / "latest").is_file() and (run / "config.json").is_file()
    assert (run / "generator" / "config.json").is_file()  # ppo.policy=generator: exported as REINFORCE runs are
    capsys.readouterr()
    assert main(["sample", str(run), "-n", "3"]) == 0, capsys.readouterr().err
    assert main(["eval", str(run), "-n", "5"]) == 0, capsys.readouterr().err
    __import__("shutil").rmtree(run / "generator")  # an interrupted run: the generator comes from the checkpoint
    assert main(["sample", str(run), "-n", "3"]) == 0, capsys.readouterr().err
    assert main(["train", "--no-progress", "--resume", str(run)]) == 0, capsys.readouterr().err  # finished: nothing left


def test_cli_train_ppo_mlp_policy_keeps_the_token_encoder(tmp_path, capsys):
    rc = main(["train", "--no-progress", "--agent", "ppo", "--updates", "1", "--set", f"out_dir={tmp_path}",
               "--set", "ppo.policy=mlp", "--set", "ppo.n_envs=8", "--set", "ppo.n_steps=16",
               "--set", "ppo.batch_size=64", "--set", "d_updates.batch_size=8", "--set", "schedule.eval_every=1"])
    assert rc == 0, capsys.readouterr().err
    run = next(Path(tmp_path).iterdir())
    assert json.loads((run / "config.json").read_text())["config"]["ppo"]["policy"] == "mlp"
    assert not (run / "generator").exists()
    capsys.readouterr()
    assert main(["train", "--resume", str(run)]) == 2
    err = capsys.readouterr().err
    assert "ppo.policy=mlp, which cannot be resumed" in err and "fix: start a new run" in err
    assert main(["sample", str(run)]) == 2 and "not a Llama generator" in capsys.readouterr().err


def test_ppo_starts_from_reinforces_mle_pretrained_generator(tmp_path):
    """--agent ppo and --agent reinforce with one seed: the same generator after pretraining."""
    reinforce = new_run(tiny_config(tmp_path / "r"))
    data = config_to_dict(tiny_config(tmp_path / "p"))
    data.update(agent="ppo")
    data["ppo"].update(n_envs=4, n_steps=8, batch_size=32)
    ppo = new_run(train_config_from_dict(data))
    try:
        before = {k: v.clone() for k, v in ppo.generator.state_dict().items()}
        assert all(torch.equal(v, reinforce.agent.generator.state_dict()[k]) for k, v in before.items())  # same init
        reinforce.pretrain()
        ppo.pretrain()
        after = ppo.generator.state_dict()
        assert any(not torch.equal(before[k], v) for k, v in after.items())  # MLE moved it
        for k, v in reinforce.agent.generator.state_dict().items():
            assert torch.equal(v, after[k]), k
        assert ppo.model.policy.generator is ppo.generator  # PPO trains that generator
    finally:
        reinforce.run.close()
        ppo.run.close()


def test_ppo_policy_is_validated():
    data = config_to_dict(TrainConfig())
    data["ppo"].update(policy="gpt")
    with pytest.raises(ValueError, match="ppo.policy='gpt' is unknown.*fix: --set ppo.policy=generator"):
        train_config_from_dict(data)


def test_nonfinite_discriminator_update_is_skipped(tmp_path):
    trainer = new_run(tiny_config(tmp_path, updates=3))
    real_update = trainer.discriminator.update
    calls = {"n": 0}

    def update(real, fake, *a, **k):
        calls["n"] += 1
        if calls["n"] == 3:  # the first update after pretraining (1 D pretrain step + 1 normal before)
            raise FloatingPointError("discriminator loss is nan; update skipped")
        return real_update(real, fake, *a, **k)

    trainer.discriminator.update = update
    trainer.fit(progress=False)
    trainer.run.close()
    lines = [json.loads(x) for x in (trainer.run.path / "metrics.jsonl").read_text().splitlines()]
    assert sum(1 for m in lines if m.get("discriminator/skipped_nonfinite")) == 1
    assert trainer.step == 3 and trainer.nonfinite_total == 1


def test_mc_rollout_policy_starts_as_pretrained_generator_and_lags_it(tmp_path):
    trainer = new_run(tiny_config(tmp_path, "mc_rollout", updates=1))
    try:
        assert trainer.venv.scorer is trainer.mc_scorer and trainer.mc_scorer.num_rollouts == 2
        trainer.pretrain()
        gen = dict(trainer.agent.generator.named_parameters())
        roll = dict(trainer.mc_scorer.rollout_generator.named_parameters())
        assert all(torch.equal(roll[k], gen[k]) for k in gen)  # a copy of the pretrained generator
        before = {k: v.detach().clone() for k, v in gen.items()}
        trainer.train_step()
        rate = trainer.config.mc_rollout.rate
        for k, p in trainer.agent.generator.named_parameters():
            expected = rate * before[k] + (1 - rate) * p.detach()
            assert torch.allclose(roll[k], expected, atol=1e-6), k
    finally:
        trainer.run.close()


@pytest.mark.parametrize(
    "change, match",
    [
        ({"reward_scorer": "oracle"}, "reward_scorer='oracle' is unknown"),
        ({"reward_scorer": "mc_rollout", "agent": "ppo"}, "needs agent=reinforce"),
        ({"reward_scorer": "mc_rollout", "reward": {"mode": "final"}}, "reward.mode=per_step"),
        ({"reward_scorer": "mc_rollout", "reward": {"mode": "per_step"}}, "fix: --set reinforce.gamma=0"),
        ({"reward_scorer": "mc_rollout", "reward": {"mode": "per_step"}, "reinforce": {"gamma": 0.95}}, "gamma=0.95"),
        ({"mc_rollout": {"num_rollouts": 0}}, "mc_rollout.num_rollouts=0"),
        ({"mc_rollout": {"rate": 2.0}}, "rate=2.0"),
        ({"mc_rollout": {"temperature": -1.0}}, "mc_rollout.temperature=-1.0"),
    ],
)
def test_bad_mc_rollout_config_names_the_value(tmp_path, change, match):
    data = config_to_dict(tiny_config(tmp_path))
    for key, value in change.items():
        if isinstance(value, dict):
            data[key].update(value)
        else:
            data[key] = value
    with pytest.raises(ValueError, match=match):
        train_config_from_dict(data)


def test_every_trainer_sample_obeys_min_length(tmp_path):
    """The progress-bar sample, D's fakes and the evaluation all follow data.min_length (as the env does)."""
    import dataclasses

    config = tiny_config(tmp_path)
    config = dataclasses.replace(config, data=dataclasses.replace(config.data, min_length=10))
    trainer = new_run(config)
    try:
        shown = []

        class Bar:
            def set_postfix(self, **kwargs):
                shown.append(kwargs["sample"])

        metrics = {"reward_mean": 0.0}
        for step in range(20):
            trainer.step = step
            trainer._show_progress(Bar(), metrics)
        assert all(len(text) >= 10 for text in shown), shown
        _, texts = trainer.evaluate(n=50)
        assert all(len(text) >= 10 for text in texts)
        fakes = trainer.data.tokenizer.decode_batch(trainer._sample_fake(50).cpu())
        assert all(len(text) >= 10 for text in fakes)
    finally:
        trainer.run.close()


def test_evaluations_log_discriminator_health(tmp_path):
    """eval/d_auc, eval/d_ece, eval/d_real, eval/d_fake at every evaluation, and the d_uninformative alarm's 0/1."""
    trainer = new_run(tiny_config(tmp_path, updates=4, eval_every=2))
    trainer.fit(progress=False)
    trainer.run.close()
    rows = [json.loads(line) for line in (trainer.run.path / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in rows if "eval/d_auc" in r]
    assert len(evals) >= 2
    for r in evals:
        assert 0.0 <= r["eval/d_auc"] <= 1.0 and 0.0 <= r["eval/d_ece"] <= 1.0
        assert 0.0 <= r["eval/d_fake"] <= 1.0 and "alarm/d_uninformative" in r
        # what D knows in nats (issue 26): finite, with its SE and the ESS of exp(s) over the eval_samples fakes
        for key in ("eval/d_gain_nats", "eval/d_gain_nats_per_token", "eval/d_gain_se", "eval/d_gain_ess"):
            assert key in r and math.isfinite(r[key]), (key, r)
        assert r["eval/d_gain_se"] >= 0.0 and 1.0 <= r["eval/d_gain_ess"] <= 20.0 + 1e-9
        assert abs(r["eval/d_gain_nats_per_token"]) <= abs(r["eval/d_gain_nats"])
