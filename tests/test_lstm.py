"""SeqGAN's LSTM generator family behind the generator contract: forward, step decoding, fused loss, export, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from seqgan_agents.reinforce import ReinforceAgent, ReinforceConfig
from seqgan_env.cli import main
from seqgan_env.data.tokenizer import BOS_ID, PAD_ID
from seqgan_env.models.fastllama import make_step_decoder
from seqgan_env.models.linear_ce import linear_cross_entropy
from seqgan_env.models.lstm import LSTMGenerator, LSTMStepDecoder
from seqgan_env.models.networks import GeneratorConfig, build_generator
from seqgan_env.rewards.mc_rollout import make_mc_rollout_scorer
from seqgan_env.runs.rundir import load_generator_export, save_generator_export

V = 40


def _lstm(num_layers: int = 1, seed: int = 0, embedding_size: int | None = None) -> LSTMGenerator:
    torch.manual_seed(seed)
    return build_generator(GeneratorConfig(family="lstm", hidden_size=16, num_layers=num_layers,
                                           embedding_size=embedding_size), V)


def _ids(b: int = 5, t: int = 9, seed: int = 1) -> torch.Tensor:
    return torch.randint(3, V, (b, t), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("num_layers,embedding_size", [(1, None), (2, 8)])
def test_step_decoder_equals_teacher_forced_logits(num_layers, embedding_size):
    g = _lstm(num_layers, embedding_size=embedding_size)
    ids = _ids()
    full = g(input_ids=ids).logits  # (B, T, V)
    dec = make_step_decoder(g)
    assert isinstance(dec, LSTMStepDecoder) and make_step_decoder(g, dec) is dec
    keys, values = dec.new_cache(ids.shape[0], ids.shape[1])
    with torch.no_grad():
        steps = torch.stack([dec.step(ids[:, t], t, keys, values, t) for t in range(ids.shape[1])], dim=1)
    torch.testing.assert_close(steps, full, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("fast_decode", [True, False])
def test_agent_stepper_equals_teacher_forced_logits(fast_decode):
    """The agent's one decoder choice: the LSTM step decoder, or the forward with its (h, c) cache."""
    agent = ReinforceAgent(_lstm(2), ReinforceConfig(device="cpu"))
    agent.fast_decode = fast_decode
    ids = _ids()
    inp = agent._teacher_input(ids)
    full = agent.generator(input_ids=inp).logits
    nxt = agent._stepper(ids.shape[0], ids.shape[1] + 1)
    with torch.no_grad():
        steps = torch.stack([nxt(inp[:, t : t + 1], t) for t in range(ids.shape[1])], dim=1)
    torch.testing.assert_close(steps, full, atol=1e-5, rtol=1e-5)


def test_masked_columns_keep_the_state():
    """Left padding (the Monte-Carlo rollout's prefill) gives the logits of the unpadded rows."""
    g = _lstm(2)
    ids = _ids()
    pad = torch.cat([torch.full((ids.shape[0], 3), PAD_ID), ids], dim=1)
    mask = (pad != PAD_ID).long()
    out = g(input_ids=pad, attention_mask=mask, use_cache=True)
    torch.testing.assert_close(out.logits[:, 3:], g(input_ids=ids).logits, atol=1e-5, rtol=1e-5)
    cont = g(input_ids=ids[:, :2], cache=out.cache, use_cache=True).logits  # the cache carries on
    ref = g(input_ids=torch.cat([ids, ids[:, :2]], 1)).logits[:, -2:]
    torch.testing.assert_close(cont, ref, atol=1e-5, rtol=1e-5)
    wide = torch.cat([mask, torch.ones_like(mask[:, :2])], 1)  # transformers' layout: past columns, then ours
    torch.testing.assert_close(g(input_ids=ids[:, :2], attention_mask=wide, cache=g(
        input_ids=pad, attention_mask=mask, use_cache=True).cache).logits, ref, atol=1e-5, rtol=1e-5)
    with pytest.raises(TypeError, match="LSTMCache"):
        g(input_ids=ids, cache=object())


@pytest.mark.parametrize("chunk", [1, 7, 128])
@pytest.mark.parametrize("with_pad", [False, True])
def test_linear_cross_entropy_equals_the_plain_loss(chunk, with_pad):
    torch.manual_seed(0)
    h = torch.randn(23, 6, requires_grad=True)
    w = torch.randn(V, 6, requires_grad=True)
    b = torch.randn(V, requires_grad=True)
    t = torch.randint(0, V, (23,))
    if with_pad:
        t[::4] = PAD_ID
    ref = F.cross_entropy(F.linear(h, w, b), t, ignore_index=PAD_ID if with_pad else -100)
    ours = linear_cross_entropy(h, w, b, t, PAD_ID if with_pad else None, chunk=chunk)
    torch.testing.assert_close(ours, ref, atol=1e-6, rtol=1e-6)
    for a, c in zip(torch.autograd.grad(ref, [h, w, b]), torch.autograd.grad(ours, [h, w, b])):
        torch.testing.assert_close(c, a, atol=1e-6, rtol=1e-5)


def test_mle_step_uses_the_fused_loss_with_the_same_gradients():
    g = _lstm()
    ids = _ids()
    inp = torch.cat([torch.full_like(ids[:, :1], BOS_ID), ids[:, :-1]], 1)
    ref = F.cross_entropy(g(input_ids=inp).logits.flatten(0, 1), ids.flatten())
    ours = g.mle_loss(inp, ids)
    torch.testing.assert_close(ours, ref, atol=1e-6, rtol=1e-6)
    params = list(g.parameters())
    for a, c in zip(torch.autograd.grad(ref, params), torch.autograd.grad(ours, params)):
        torch.testing.assert_close(c, a, atol=1e-6, rtol=1e-5)
    agent = ReinforceAgent(g, ReinforceConfig(device="cpu"))
    assert abs(agent.mle_step(ids) - float(ref.detach())) < 1e-5


def test_export_round_trip_and_corrupt_weights(tmp_path):
    g = _lstm(2, embedding_size=8)
    save_generator_export(g, tmp_path / "gen")
    assert json.loads((tmp_path / "gen" / "config.json").read_text())["model_type"] == "seqgan_lstm"
    back = load_generator_export(tmp_path / "gen")
    assert isinstance(back, LSTMGenerator) and back.config == g.config
    ids = _ids()
    torch.testing.assert_close(back(input_ids=ids).logits, g(input_ids=ids).logits)
    (tmp_path / "gen" / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(ValueError, match="model.safetensors"):
        load_generator_export(tmp_path / "gen")


def test_agent_samples_updates_and_keeps_a_kl_reference():
    agent = ReinforceAgent(_lstm(), ReinforceConfig(device="cpu", kl_coef=0.1, batch_size=4))
    tokens = agent.sample(6, 8, seed=3, allow_eos=False)
    assert tokens.shape == (6, 8) and bool((tokens >= 3).all())
    torch.testing.assert_close(tokens, agent.sample(6, 8, seed=3, allow_eos=False, use_cache=False))
    agent.set_reference()
    assert agent.reference is not agent.generator and isinstance(agent.reference, LSTMGenerator)
    state = agent.state_dict()
    assert any(k.startswith("generator.lstm.") for k in state["tensors"])


def test_mc_rollout_completes_prefixes_with_the_lstm():
    class HalfD:
        def score_logits(self, tokens):  # (B, T) -> (B, T): P(real) 0.5 everywhere
            return torch.zeros(tokens.shape)

    g = _lstm()
    scorer = make_mc_rollout_scorer(HalfD(), g, num_rollouts=3, max_length=6, allow_eos=False, seed=0)
    prefixes = _ids(4, 6)
    comp = scorer._complete(prefixes[:, :3], torch.tensor([1, 2, 3, 0]))  # (N, K, L)
    assert comp.shape == (4, 3, 6) and bool((comp >= 3).all())
    assert torch.equal(comp[2, :, :3], prefixes[2, :3].expand(3, 3))  # prefixes are kept
    scorer.update_rollout_policy(g, rate=0.5)


@pytest.mark.parametrize("extra,needle", [
    (["--set", "generator.family=gru"], "generator.family='gru' is invalid"),
    (["--set", "generator.family=lstm", "--set", "generator.embedding_size=0"], "generator.embedding_size=0"),
    (["--set", "generator.embedding_size=8"], "generator.embedding_size=8 is used only by generator.family=lstm"),
    (["--set", "generator.dropout=0.2"], "generator.dropout=0.2 is used only by generator.family=lstm"),
    (["--set", "generator.family=lstm", "--set", "generator.dropout=1.0"], "generator.dropout=1.0"),
])
def test_bad_family_settings_are_refused(extra, needle, capsys, tmp_path):
    rc = main(["train", "--data", "oracle", "--set", f"out_dir={tmp_path}", *extra])
    err = capsys.readouterr().err
    assert rc == 2 and needle in err and ("fix:" in err or "e.g." in err) and "Traceback" not in err
    assert not any(Path(tmp_path).iterdir())


def test_train_oracle_with_the_lstm_then_resume(tmp_path, capsys):
    from tests.test_oracle_train import TINY

    args = ["train", *TINY, "--generator.family", "lstm", "--set", "reward_scorer=mc_rollout",
            "--set", "reward.mode=per_step", "--set", "reinforce.gamma=0", "--set", "mc_rollout.num_rollouts=2",
            "--set", "schedule.checkpoint_every=1", "--set", f"out_dir={tmp_path}"]
    assert main(args) == 0
    run = next(Path(tmp_path).iterdir())
    cfg = run / "config.json"
    info = json.loads(cfg.read_text())
    assert info["config"]["generator"]["family"] == "lstm"
    assert json.loads((run / "generator" / "config.json").read_text())["model_type"] == "seqgan_lstm"
    info["config"]["schedule"]["updates"] = 3
    cfg.write_text(json.dumps(info))
    assert main(["train", "--no-progress", "--resume", str(run)]) == 0
    steps = [json.loads(x)["step"] for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert max(steps) == 3
    capsys.readouterr()
    assert main(["sample", str(run), "-n", "2"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert len(rows) == 2 and all(len(r.split()) == 20 for r in rows)


def test_dropout_acts_in_training_mode_only():
    torch.manual_seed(0)
    g = build_generator(GeneratorConfig(family="lstm", hidden_size=16, dropout=0.5), V)
    ids = _ids()
    g.train()
    assert not torch.equal(g(input_ids=ids).logits, g(input_ids=ids).logits)
    g.eval()
    dec = make_step_decoder(g)
    keys, values = dec.new_cache(ids.shape[0])
    with torch.no_grad():
        steps = torch.stack([dec.step(ids[:, t], t, keys, values) for t in range(ids.shape[1])], dim=1)
    torch.testing.assert_close(steps, g(input_ids=ids).logits, atol=1e-5, rtol=1e-5)
