"""The lean one-token decoder (seqgan_env.models.fastllama) equals the transformers forward.

Every fast path is checked against the transformers model it reads its weights from:
generator logits, discriminator prefix scores with per-row positions and masks (autoreset,
EOS, cache compaction), rewards through the env, the agent's rollouts and samples, and
weights changed in place or replaced after the decoder was built.
"""

from __future__ import annotations

import pytest
import torch
import transformers

from seqgan_agents.reinforce import ReinforceAgent, ReinforceConfig
from seqgan_env import TokenGenerationVectorEnv
from seqgan_env.data.tokenizer import CharTokenizer
from seqgan_env.models.discriminator import Discriminator, DiscriminatorConfig
from seqgan_env.models.fastllama import LlamaStepDecoder, supports
from seqgan_env.models.networks import DiscriminatorNet, ModelConfig, build_generator, to_llama_config
from seqgan_env.rewards.scoring import IncrementalPrefixScorer
from seqgan_env.rewards.wrappers import DiscriminatorRewardVector, RewardConfig
from tests._tiny_llamas import CONFIGS, TOL
from tests._tiny_llamas import randomize as _randomize


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"h{c.hidden_size}l{c.num_layers}{c.attn_implementation}")
@pytest.mark.parametrize("batch", [1, 7])
def test_generator_step_equals_full_forward(cfg, batch):
    torch.manual_seed(0)
    gen = build_generator(cfg, 11).eval()
    _randomize(gen, 1)
    ids = torch.randint(0, 11, (batch, 20))
    dec = LlamaStepDecoder(gen)
    with torch.no_grad():
        full = gen(input_ids=ids).logits  # (B, T, V)
        keys, values = dec.new_cache(batch, 24)
        steps = torch.stack([dec.step(ids[:, t], t, keys, values, t) for t in range(20)], dim=1)
    assert steps.shape == full.shape
    torch.testing.assert_close(steps, full, atol=TOL, rtol=TOL)


@pytest.mark.parametrize("cfg", CONFIGS[:3], ids=lambda c: f"h{c.hidden_size}l{c.num_layers}")
@pytest.mark.parametrize("num_outputs", [1, 2])
def test_backbone_step_with_rows_positions_and_mask(cfg, num_outputs):
    """Per-row positions and an arbitrary per-row column mask: equals the transformers forward."""
    torch.manual_seed(0)
    net = DiscriminatorNet(cfg, 9, num_outputs=num_outputs).eval()
    _randomize(net, 2)
    b, c = 5, 12
    ids = torch.randint(0, 9, (b, c))
    positions = torch.randint(0, 30, (b, c))
    allowed = torch.rand(b, c, c) < 0.6
    allowed |= torch.eye(c, dtype=torch.bool)  # each query sees itself
    allowed &= torch.ones(c, c, dtype=torch.bool).tril()  # and nothing after it
    dec = LlamaStepDecoder(net.backbone)
    keys, values = dec.new_cache(b, c)
    with torch.no_grad():
        for t in range(c):
            h = dec.step(ids[:, t], positions[:, t], keys, values, t, allowed[:, t, : t + 1])
            ref = net(ids[:, : t + 1], attention_mask=torch.zeros(b, 1, t + 1, t + 1).masked_fill(
                ~allowed[:, None, : t + 1, : t + 1], torch.finfo(torch.float32).min), position_ids=positions[:, : t + 1])
            torch.testing.assert_close(net.logits_from_hidden(h), ref.logits[:, t], atol=TOL, rtol=TOL)


def _env_pair(tok, disc, b, t, capacity=None, **env):
    envs = []
    for fast in (False, True):
        base = TokenGenerationVectorEnv(b, tokenizer=tok, max_length=t, return_torch=True, **env)
        venv = DiscriminatorRewardVector(base, disc, RewardConfig(mode="potential", transform="prob"))
        venv._incremental.fast_decode = fast
        if capacity is not None:
            venv._incremental.capacity = capacity
            venv._incremental.valid = torch.zeros(b, capacity, dtype=torch.bool)
        envs.append(venv)
    return envs


@pytest.mark.parametrize("capacity", [None, 6], ids=["default", "compacting"])
@pytest.mark.parametrize("ce", [False, True], ids=["bce", "ce"])
def test_env_rewards_equal_with_and_without_fast_scoring(capacity, ce):
    """Random actions with EOS, autoreset and (small capacity) cache compaction: same rewards."""
    tok = CharTokenizer.from_texts(["abcdef", "fed"])
    cfg = ModelConfig(hidden_size=16, intermediate_size=32, num_heads=2, num_layers=2, max_position_embeddings=32)
    disc = Discriminator(tok.vocab_size, model_config=cfg, config=DiscriminatorConfig(loss="ce" if ce else "bce"), seed=0)
    _randomize(disc.net, 3)
    slow, fast = _env_pair(tok, disc, 9, 5, capacity=capacity, min_length=1)
    g = torch.Generator().manual_seed(0)
    slow.reset()
    fast.reset()
    for _ in range(40):
        a = torch.randint(2, tok.vocab_size, (9,), generator=g)  # EOS (2) included, never PAD/BOS
        out_s, out_f = slow.step(a), fast.step(a)
        torch.testing.assert_close(out_f[1], out_s[1], atol=TOL, rtol=TOL)
        assert torch.equal(out_f[2], out_s[2])
        torch.testing.assert_close(fast._logits, slow._logits, atol=TOL, rtol=TOL)


@pytest.mark.parametrize("reset", [True, False], ids=["reset", "mid-episode"])
def test_env_rewards_equal_after_discriminator_change_and_rebuild(reset):
    """A D weight change + invalidation (as after a D update), then a rebuild: from fresh episodes
    (one column, the lean path reusing the old cache's buffers) or mid-episode (a full pass)."""
    tok = CharTokenizer.from_texts(["abcdef", "fed"])
    cfg = ModelConfig(hidden_size=16, intermediate_size=32, num_heads=2, num_layers=2, max_position_embeddings=32)
    disc = Discriminator(tok.vocab_size, model_config=cfg, seed=0)
    _randomize(disc.net, 3)
    slow, fast = _env_pair(tok, disc, 6, 7, allow_eos=False)
    g = torch.Generator().manual_seed(1)
    old_cache = None
    for phase in range(3):
        if phase == 0 or reset:
            slow.reset()
            fast.reset()
        for i in range(4 + phase):
            a = torch.randint(3, tok.vocab_size, (6,), generator=g)
            out_s, out_f = slow.step(a), fast.step(a)
            torch.testing.assert_close(out_f[1], out_s[1], atol=TOL, rtol=TOL)
            if i == 0 and phase > 0:  # fresh episodes rebuild on the old buffers, a mid-episode rebuild does not
                assert (fast._incremental.cache is old_cache) == reset
        _randomize(disc.net, 10 + phase)  # in place, as an optimizer step
        old_cache = fast._incremental.cache
        slow._incremental.invalidate()
        fast._incremental.invalidate()


def test_fast_scoring_reads_weights_changed_in_place_mid_episode():
    """Weights changed in place between steps (no invalidation): the fast step uses the new
    weights for the new token over the cached columns, exactly as the transformers step does."""
    tok = CharTokenizer.from_texts(["abc"])
    cfg = ModelConfig(hidden_size=16, intermediate_size=32, num_heads=2, num_layers=2, max_position_embeddings=32)
    disc = Discriminator(tok.vocab_size, model_config=cfg, seed=0)
    params = list(disc.net.backbone.layers[1].parameters())
    original = [p.detach().clone() for p in params]
    tokens = torch.tensor([[3, 4, 5, 3, 0, 0]] * 4)
    yes, no = torch.ones(4, dtype=torch.bool), torch.zeros(4, dtype=torch.bool)
    out = {}
    for fast in (False, True):
        with torch.no_grad():
            for p, o in zip(params, original):
                p.copy_(o)
        scorer = IncrementalPrefixScorer(disc, 4, 6, torch.device("cpu"))
        scorer.fast_decode = fast
        zs = [scorer.step(tokens, torch.full((4,), n), yes, no) for n in (1, 2)]  # rebuild, then one step
        with torch.no_grad():
            for p in params:
                p.mul_(1.5)  # as an optimizer step would, in place
        zs += [scorer.step(tokens, torch.full((4,), n), yes, no) for n in (3, 4)]
        out[fast] = torch.stack(zs)
    torch.testing.assert_close(out[True], out[False], atol=TOL, rtol=TOL)
    assert not torch.allclose(out[True][2:], out[True][:2].mean() + 0 * out[True][2:])  # the change mattered


def test_decoder_follows_optimizer_steps_and_load_state_dict():
    torch.manual_seed(0)
    cfg = CONFIGS[1]
    gen = build_generator(cfg, 13).eval()
    dec = LlamaStepDecoder(gen)
    ids = torch.randint(3, 13, (4, 6))

    def check():
        with torch.no_grad():
            full = gen(input_ids=ids).logits
            keys, values = dec.new_cache(4, 6)
            steps = torch.stack([dec.step(ids[:, t], t, keys, values, t) for t in range(6)], 1)
        torch.testing.assert_close(steps, full, atol=TOL, rtol=TOL)

    check()
    opt = torch.optim.AdamW(gen.parameters(), lr=0.05)
    gen(input_ids=ids).logits.square().mean().backward()
    opt.step()
    check()
    other = build_generator(cfg, 13)
    gen.load_state_dict(other.state_dict())
    check()
    # replaced Parameter objects (assign=True) are picked up by new_cache / begin
    gen.load_state_dict({k: v.clone() * 1.1 for k, v in other.state_dict().items()}, assign=True)
    check()


@pytest.mark.parametrize("change", ["attention_bias", "gqa", "rope_scaling", "act"])
def test_unsupported_configs_fall_back(change):
    cfg = to_llama_config(ModelConfig(hidden_size=16, intermediate_size=32, num_heads=2, num_layers=1), 8)
    if change == "attention_bias":
        cfg.attention_bias = True
    elif change == "gqa":
        cfg.num_key_value_heads = 1
    elif change == "rope_scaling":
        cfg.rope_parameters = {"rope_type": "linear", "factor": 2.0, "rope_theta": 10000.0}
    else:
        cfg.hidden_act = "gelu"
    gen = transformers.LlamaForCausalLM(cfg).eval()
    assert not supports(gen)
    with pytest.raises(ValueError):
        LlamaStepDecoder(gen)
    agent = ReinforceAgent(gen, ReinforceConfig(device="cpu"), seed=0)
    out = agent.sample(3, 5, seed=0)  # the transformers path
    assert out.shape == (3, 5)


# ----------------------------------------------------------------------------- the agent
def _agent_env(fast: bool, seed=0, b=12, t=7, allow_eos=True):
    tok = CharTokenizer.from_texts(["abcdef", "fed", "bad"])
    gcfg = ModelConfig(hidden_size=32, intermediate_size=64, num_heads=4, num_layers=2, max_position_embeddings=16)
    torch.manual_seed(seed)
    agent = ReinforceAgent(build_generator(gcfg, tok.vocab_size), ReinforceConfig(device="cpu"), seed=seed)
    agent.fast_decode = fast
    dcfg = ModelConfig(hidden_size=16, intermediate_size=32, num_heads=2, num_layers=2, max_position_embeddings=16)
    disc = Discriminator(tok.vocab_size, model_config=dcfg, seed=seed)
    base = TokenGenerationVectorEnv(b, tokenizer=tok, max_length=t, return_torch=True, allow_eos=allow_eos)
    venv = DiscriminatorRewardVector(base, disc, RewardConfig(mode="potential", transform="prob"))
    venv._incremental.fast_decode = fast
    return agent, venv


@pytest.mark.parametrize("allow_eos", [True, False])
def test_collect_same_rollout_fast_or_not(allow_eos):
    ref_agent, ref_env = _agent_env(fast=False, allow_eos=allow_eos)
    agent, venv = _agent_env(fast=True, allow_eos=allow_eos)
    for _ in range(2):  # the second rollout after an update: weights changed in place
        ref, got = ref_agent.collect(ref_env), agent.collect(venv)
        assert torch.equal(got.tokens, ref.tokens)
        assert torch.equal(got.mask, ref.mask)
        assert torch.equal(got.action_masks, ref.action_masks)
        torch.testing.assert_close(got.rewards, ref.rewards, atol=TOL, rtol=TOL)
        torch.testing.assert_close(got.sample_logp, ref.sample_logp, atol=TOL, rtol=TOL)
        assert got.texts == ref.texts
        ref_agent.update(ref)
        agent.update(got)


@pytest.mark.parametrize("use_cache", [True])
def test_sample_same_with_fast_decode(use_cache):
    a, _ = _agent_env(fast=False)
    b, _ = _agent_env(fast=True)
    for kwargs in ({}, {"temperature": 0.7, "top_p": 0.8}, {"allow_eos": False}):
        assert torch.equal(a.sample(9, 7, seed=4, use_cache=use_cache, **kwargs),
                           b.sample(9, 7, seed=4, use_cache=use_cache, **kwargs))
