"""DDO fine-tuning (agents/ddo.py) and `seqgan-env train --agent ddo`, on tiny models."""

from __future__ import annotations

import json
import math

import pytest
import torch

from seqgan_agents.ddo import DDOConfig, DDOUpdater, ddo_loss, sequence_log_probs
from seqgan_agents.lifecycle import new_run, resume_run
from seqgan_agents.reinforce import ReinforceAgent, ReinforceConfig
from seqgan_agents.trainer_config import TrainConfig, train_config_from_dict
from seqgan_env.cli import main
from seqgan_env.envs.spec import EOS_ID, PAD_ID
from seqgan_env.models.networks import GeneratorConfig, build_generator
from seqgan_env.runs.configio import config_to_dict
from tests.test_train import _metric_lines, tiny_config

V = 8  # PAD, BOS, EOS and five symbols


def tiny_agent(seed: int = 0, lr: float = 1e-2) -> ReinforceAgent:
    torch.manual_seed(seed)
    gen = build_generator(GeneratorConfig(hidden_size=16, intermediate_size=32, num_heads=2, num_layers=1,
                                          max_position_embeddings=8), V)
    return ReinforceAgent(gen, ReinforceConfig(device="cpu", lr=lr, max_grad_norm=None), seed=seed)


def rows(*seqs: list[int], width: int = 5) -> torch.Tensor:
    """(N, width) right-padded rows, each ending with EOS."""
    out = torch.full((len(seqs), width), PAD_ID, dtype=torch.long)
    for i, s in enumerate(seqs):
        out[i, : len(s) + 1] = torch.tensor([*s, EOS_ID])
    return out


REAL = rows([3, 4], [3, 4, 5], [3, 3])
FAKE = rows([6, 7, 7], [7], [5, 6, 6, 7])


def fixed_sampler(tokens: torch.Tensor):
    """A sampler returning the rows of ``tokens`` over and over (the tests choose the reference samples)."""
    def sample(n: int) -> torch.Tensor:
        return tokens[torch.arange(n) % len(tokens)]
    return sample


def test_sequence_log_probs_sum_the_tokens_and_skip_pad():
    logits = torch.randn(2, 3, V)  # (N, T, V)
    tokens = torch.tensor([[3, EOS_ID, PAD_ID], [4, 5, EOS_ID]])
    logp = torch.log_softmax(logits, -1)
    expected = torch.stack([logp[0, 0, 3] + logp[0, 1, EOS_ID],
                            logp[1, 0, 4] + logp[1, 1, 5] + logp[1, 2, EOS_ID]])
    torch.testing.assert_close(sequence_log_probs(logits, tokens), expected)


@pytest.mark.parametrize("beta,alpha", [(1.0, 1.0), (0.3, 2.0)])
def test_ddo_loss_is_the_gan_loss_of_the_implicit_discriminator(beta, alpha):
    r_real, r_fake = torch.tensor([0.5, -1.0]), torch.tensor([2.0, 0.1, -0.4])
    d_real, d_fake = torch.sigmoid(beta * r_real), torch.sigmoid(beta * r_fake)
    expected = -torch.log(d_real).mean() - alpha * torch.log(1 - d_fake).mean()
    torch.testing.assert_close(ddo_loss(r_real, r_fake, beta, alpha), expected)


@pytest.mark.parametrize("alpha", [1.0, 0.5])
def test_at_the_reference_d_is_half_and_the_gradient_is_known(alpha):
    """θ = ref: d = 1/2 everywhere, loss (1 + α) log 2, gradient β/2 (−mean ∇log p(real) + α mean ∇log p(fake))."""
    beta = 0.7
    agent = tiny_agent()
    ddo = DDOUpdater(agent, DDOConfig(beta=beta, alpha=alpha, ref_samples=3), fixed_sampler(FAKE))
    agent.set_reference()
    loss, m = ddo.loss(REAL, FAKE)
    assert m["d_real"] == pytest.approx(0.5) and m["d_fake"] == pytest.approx(0.5)
    assert float(loss.detach()) == pytest.approx((1 + alpha) * math.log(2), rel=1e-6)
    params = [p for p in agent.generator.parameters()]
    got = torch.autograd.grad(loss, params)

    def mean_logp(x: torch.Tensor) -> torch.Tensor:
        inp = agent._teacher_input(x)
        return sequence_log_probs(agent.generator(input_ids=inp).logits, x).mean()

    target = beta / 2 * (-mean_logp(REAL) + alpha * mean_logp(FAKE))
    want = torch.autograd.grad(target, params)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("mle_coef", [0.0, 0.5])
def test_mle_mix_adds_the_per_token_nll_of_the_real_rows(mle_coef):
    agent = tiny_agent()
    agent.set_reference()
    ddo = DDOUpdater(agent, DDOConfig(mle_coef=mle_coef), fixed_sampler(FAKE))
    loss, m = ddo.loss(REAL, FAKE)
    tokens = int((REAL != PAD_ID).sum())
    mle = -sequence_log_probs(agent.generator(input_ids=agent._teacher_input(REAL)).logits, REAL).sum() / tokens
    assert m["mle_loss"] == pytest.approx(float(mle.detach()), rel=1e-5)
    assert float(loss.detach()) == pytest.approx(m["ddo_loss"] + mle_coef * m["mle_loss"], rel=1e-5)


def test_a_step_raises_real_rows_over_reference_samples():
    agent = tiny_agent(lr=1e-2)
    ddo = DDOUpdater(agent, DDOConfig(ref_samples=3, round_steps=10, lr=1e-2), fixed_sampler(FAKE))
    first = ddo.step(REAL)  # begins round 1: ref = θ, so the implicit d starts at 1/2
    assert first["d_real"] == pytest.approx(0.5) and first["round"] == 1
    for _ in range(3):
        m = ddo.step(REAL)
    _, after = ddo.loss(REAL, FAKE)
    assert after["ratio_real"] > 0 > after["ratio_fake"]  # log p_θ / p_ref: up on real rows, down on ref samples
    assert after["d_real"] > 0.5 > after["d_fake"]
    assert m["ddo_loss"] < first["ddo_loss"]


def test_rounds_move_the_reference_to_the_generator():
    agent = tiny_agent()
    draws = []

    def sample(n: int) -> torch.Tensor:
        draws.append(n)
        return fixed_sampler(FAKE)(n)

    ddo = DDOUpdater(agent, DDOConfig(ref_samples=2, round_steps=3, lr=1e-2), sample)
    for i in range(7):
        m = ddo.step(REAL)
        assert m["round"] == i // 3 + 1
        if i % 3 == 0:  # a new round: the reference is the generator that began it
            assert m["d_real"] == pytest.approx(0.5) and m["d_fake"] == pytest.approx(0.5)
    assert draws == [6, 6, 6]  # one pool of round_steps x ref_samples per round
    assert ddo.rounds == 3 and ddo.pos == 2


@pytest.mark.parametrize("field,value", [
    ("beta", 0), ("beta", -1.0), ("beta", float("nan")), ("alpha", 0), ("round_steps", 0), ("batch_size", 0),
    ("ref_samples", -2), ("lr", 0.0), ("mle_coef", -0.1), ("round_steps", 1.5), ("beta", True),
])
def test_bad_ddo_config_names_the_field(field, value):
    with pytest.raises(ValueError, match=rf"ddo\.{field}="):
        DDOConfig(**{field: value})


def test_ddo_refuses_the_reinforce_kl_term():
    data = config_to_dict(TrainConfig())
    data["agent"] = "ddo"
    data["reinforce"]["kl_coef"] = 0.1
    with pytest.raises(ValueError, match="reinforce.kl_coef=0.1 .*agent=ddo"):
        train_config_from_dict(data)


def ddo_config(tmp_path, updates: int = 4, **ddo) -> TrainConfig:
    data = config_to_dict(tiny_config(tmp_path, updates=updates))
    data["agent"] = "ddo"
    data["ddo"].update(dict(batch_size=8, ref_samples=4, round_steps=3, lr=1e-3) | ddo)
    return train_config_from_dict(data)


def test_ddo_run_trains_no_discriminator_and_logs_its_numbers(tmp_path):
    trainer = new_run(ddo_config(tmp_path))
    d_before = {k: v.clone() for k, v in trainer.discriminator.state_dict().items()}
    trainer.fit(progress=False)
    trainer.run.close()
    assert all(torch.equal(v, trainer.discriminator.state_dict()[k]) for k, v in d_before.items())
    lines = _metric_lines(trainer.run.path)
    updates = [m for m in lines if "ddo/ddo_loss" in m]
    assert [m["step"] for m in updates] == [1, 2, 3, 4]
    assert [m["ddo/round"] for m in updates] == [1, 1, 1, 2]
    evals = [m for m in lines if "eval/valid_nll" in m]
    assert evals and not any("eval/d_auc" in m for m in lines)  # no D: no D health
    assert (trainer.run.path / "generator" / "config.json").is_file()
    info = json.loads((trainer.run.path / "config.json").read_text())
    assert info["config"]["agent"] == "ddo" and info["config"]["ddo"]["round_steps"] == 3


@pytest.mark.parametrize("half", [2, 3])  # mid-round (the pool is in the checkpoint) and at a round's end
def test_ddo_resume_equals_uninterrupted(tmp_path, half):
    full = new_run(ddo_config(tmp_path / "a", updates=5))
    full.fit(progress=False)
    full.run.close()
    part = new_run(ddo_config(tmp_path / "b", updates=half))
    part.fit(progress=False)
    part.run.close()
    cfg_path = part.run.path / "config.json"
    info = json.loads(cfg_path.read_text())
    info["config"]["schedule"]["updates"] = 5
    cfg_path.write_text(json.dumps(info))
    resumed = resume_run(part.run.path)
    assert resumed.step == half
    resumed.fit(progress=False)
    resumed.run.close()
    a = [m for m in _metric_lines(full.run.path) if m["step"] > half]
    b = [m for m in _metric_lines(part.run.path) if m["step"] > half]
    assert len(a) == len(b) >= 5 - half
    for ma, mb in zip(a, b):
        assert ma == mb  # bit-identical on CPU
    for (k, x), (_, y) in zip(sorted(full.agent.generator.state_dict().items()),
                              sorted(resumed.agent.generator.state_dict().items())):
        assert torch.equal(x, y), k


def test_cli_train_ddo_then_sample_and_eval(tmp_path, capsys):
    cfg_file = tmp_path / "c.json"
    cfg_file.write_text(json.dumps(config_to_dict(ddo_config(tmp_path))))
    assert main(["train", "--config", str(cfg_file), "--agent", "ddo", "--no-progress"]) == 0
    run = next((tmp_path / "runs").iterdir())
    capsys.readouterr()
    assert main(["sample", str(run), "-n", "3"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 3
    assert main(["eval", str(run), "-n", "20"]) == 0
    assert (run / "eval.json").is_file()


def test_cli_refuses_a_bad_ddo_value(tmp_path, capsys):
    assert main(["train", "--agent", "ddo", "--set", "ddo.beta=0", "--set", f"out_dir={tmp_path}"]) == 2
    err = capsys.readouterr().err
    assert "ddo.beta=0" in err and len(err.strip().splitlines()) == 1


def test_train_help_lists_ddo_fields(capsys):
    assert main(["train", "--help"]) == 0
    out = capsys.readouterr().out
    for flag in ("--ddo.beta", "--ddo.round-steps", "--ddo.ref-samples", "--ddo.mle-coef",
                 "--schedule.pretrain-patience", "--schedule.pretrain-eval-every"):
        assert flag in out, flag


def test_benchmark_gan_takes_ddo_as_a_variant(tmp_path):
    from seqgan_benchmarks.quality_gan import GanBenchmarkConfig

    cfg = GanBenchmarkConfig(seeds=(0,), arms=("mle", "ddo"), variants=("ddo:agent=ddo,ddo.beta=0.5",))
    arm = cfg.train_config(0, str(tmp_path), "ddo")
    assert arm.agent == "ddo" and arm.ddo.beta == 0.5
    with pytest.raises(ValueError, match="ddo.beta=0"):
        GanBenchmarkConfig(seeds=(0,), arms=("mle", "ddo"), variants=("ddo:agent=ddo,ddo.beta=0",))
