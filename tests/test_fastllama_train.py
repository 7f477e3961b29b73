"""The lean teacher-forced forward (seqgan_env.models.fastllama_train) equals the transformers forward.

Logits and every parameter gradient are compared with ``model(input_ids=...).logits``
on the model the lean forward reads its weights from; the agent's update with the lean
forward equals the update with the transformers forward; unsupported models are refused
(and the agent falls back to transformers for them).
"""

from __future__ import annotations

import pytest
import torch

from seqgan_agents.reinforce import ReinforceAgent, ReinforceConfig, Rollout, TeacherForced
from seqgan_env.models.fastllama_train import supports, teacher_forced_logits
from seqgan_env.models.networks import build_generator
from tests._tiny_llamas import CONFIGS, TOL
from tests._tiny_llamas import randomize as _randomize


def _grads(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"h{c.hidden_size}l{c.num_layers}{c.attn_implementation}")
@pytest.mark.parametrize("shape", [(1, 1), (5, 17), (3, 33)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_logits_and_gradients_equal_transformers(cfg, shape):
    torch.manual_seed(0)
    gen = build_generator(cfg, 13).eval()
    _randomize(gen, 1)
    ids = torch.randint(0, 13, shape)
    weight = torch.randn(*shape, 13)  # a loss that reaches every logit
    ref = gen(input_ids=ids).logits  # (N, T, V)
    (ref * weight).sum().backward()
    ref_grads = _grads(gen)
    gen.zero_grad(set_to_none=True)
    (out,) = teacher_forced_logits(gen, ids)
    assert out.shape == ref.shape
    torch.testing.assert_close(out, ref, atol=TOL, rtol=TOL)
    (out * weight).sum().backward()
    for name, g in _grads(gen).items():  # sums over many positions: tolerance relative to the largest entry
        ref_g = ref_grads[name]
        torch.testing.assert_close(g, ref_g, atol=TOL * max(1.0, float(ref_g.abs().max())), rtol=TOL,
                                   msg=lambda m: f"{name}: {m}")


@pytest.mark.parametrize("lengths", [(9, 5), (7, 7)], ids=["different", "same (one forward)"])
def test_several_inputs_in_one_call_equal_separate_calls(lengths):
    torch.manual_seed(0)
    gen = build_generator(CONFIGS[1], 13).eval()
    _randomize(gen, 2)
    a, b = torch.randint(0, 13, (4, lengths[0])), torch.randint(0, 13, (6, lengths[1]))
    la, lb = teacher_forced_logits(gen, a, b)
    torch.testing.assert_close(la, gen(input_ids=a).logits, atol=TOL, rtol=TOL)
    torch.testing.assert_close(lb, gen(input_ids=b).logits, atol=TOL, rtol=TOL)


@pytest.mark.parametrize("change", ["attention_bias", "dropout_in_training", "backbone_only"])
def test_unsupported_models_are_refused_and_the_agent_falls_back(change):
    torch.manual_seed(0)
    gen = build_generator(CONFIGS[1], 13).eval()
    model = gen
    if change == "attention_bias":
        gen.config.attention_bias = True
    elif change == "dropout_in_training":
        gen.config.attention_dropout = 0.1
        gen.train()
    else:
        model = gen.model  # a LlamaModel has no LM head: no logits to compute
    assert not (supports(model) and hasattr(model, "lm_head"))
    with pytest.raises(ValueError, match="does not support"):
        teacher_forced_logits(model, torch.zeros(1, 3, dtype=torch.long))
    if change != "backbone_only":  # the agent's module uses the transformers forward instead
        ids = torch.randint(0, 13, (2, 4))
        torch.manual_seed(1)
        ref = gen(input_ids=ids).logits
        torch.manual_seed(1)
        (out,) = TeacherForced(gen)(ids)
        torch.testing.assert_close(out, ref)


@pytest.mark.parametrize("mle", [False, True], ids=["pg", "pg+mle"])
def test_agent_update_with_lean_forward_equals_transformers_forward(mle, monkeypatch):
    """Two agents from the same weights, one update each on the same rollout: same metrics and weights."""
    vocab, b, t = 13, 6, 8
    torch.manual_seed(0)
    gen = build_generator(CONFIGS[1], vocab)
    _randomize(gen, 3)
    state = {k: v.clone() for k, v in gen.state_dict().items()}
    g = torch.Generator().manual_seed(4)
    tokens = torch.randint(3, vocab, (b, t), generator=g)
    mask = torch.ones(b, t, dtype=torch.bool)
    mask[0, 5:] = False
    rollout = Rollout(tokens, torch.rand(b, t, generator=g), mask, torch.ones(b, t, vocab, dtype=torch.bool), None,
                      torch.zeros(b, t), [None] * b)
    real = torch.randint(3, vocab, (4, t), generator=g) if mle else None
    results = []
    for lean in (True, False):
        monkeypatch.setattr(TeacherForced, "lean", lean)
        model = build_generator(CONFIGS[1], vocab)
        model.load_state_dict(state)
        agent = ReinforceAgent(model, ReinforceConfig(batch_size=b, mle_coef=0.5, device="cpu"))
        metrics = agent.update(rollout, real)
        results.append((metrics, {k: v.clone() for k, v in model.state_dict().items()}))
    (m_lean, w_lean), (m_ref, w_ref) = results
    for key in ("policy_loss", "entropy", "grad_norm") + (("mle_loss",) if mle else ()):
        assert m_lean[key] == pytest.approx(m_ref[key], rel=1e-5, abs=1e-6), key
    for name, w in w_lean.items():
        torch.testing.assert_close(w, w_ref[name], atol=TOL, rtol=TOL, msg=lambda m: f"{name}: {m}")
