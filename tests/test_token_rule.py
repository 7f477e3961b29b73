"""One token-validity rule: env, vector env, agent sampling, MC rollout completions and the SB3 generator
policy all mask with the episode spec's function (``EnvConfig.valid_tokens``), checked on random states."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seqgan_agents.reinforce import ReinforceAgent, ReinforceConfig
from seqgan_env import TokenGenerationEnv, TokenGenerationVectorEnv
from seqgan_env.envs.spec import BOS_ID, EOS_ID, PAD_ID, EnvConfig
from seqgan_env.models.networks import build_generator
from seqgan_env.rewards.mc_rollout import MCRolloutScorer

from .conftest import TINY, tiny_discriminator

V, L = 9, 6
SPECS = [EnvConfig(V, L, min_length=m, allow_eos=e) for m in (0, 1, 3) for e in (True, False)]


def _ids(spec: EnvConfig) -> str:
    return f"min{spec.min_length}-eos{int(spec.allow_eos)}"


def _random_valid(mask: np.ndarray, rng: np.random.Generator) -> int:
    return int(rng.choice(np.flatnonzero(mask)))


def test_the_rule_by_hand():
    spec = EnvConfig(V, L, min_length=2, allow_eos=True)
    lengths = torch.tensor([0, 1, 2, 5])
    mask = spec.valid_tokens(lengths)  # (4, V)
    assert not mask[:, PAD_ID].any() and not mask[:, BOS_ID].any()
    assert mask[:, EOS_ID].tolist() == [False, False, True, True]
    assert mask[:, 3:].all()
    assert not EnvConfig(V, L, min_length=0, allow_eos=False).valid_tokens(torch.arange(L))[:, EOS_ID].any()
    logits = spec.mask_logits_(torch.zeros(4, V), lengths)
    assert torch.equal(torch.isfinite(logits), mask)


@pytest.mark.parametrize("spec", SPECS, ids=_ids)
def test_env_and_vector_env_masks_are_the_spec(spec):
    rng = np.random.default_rng(spec.min_length)
    kw = dict(vocab_size=V, max_length=L, min_length=spec.min_length, allow_eos=spec.allow_eos)
    env = TokenGenerationEnv(**kw)
    venv = TokenGenerationVectorEnv(4, **kw)
    env.reset(seed=0)
    venv.reset(seed=0)
    for _ in range(40):
        mask = env.action_masks()
        assert np.array_equal(mask, spec.valid_tokens(env.length).numpy())
        _, _, term, _, _ = env.step(_random_valid(mask, rng))
        if term:
            env.reset()
        vmask = venv.action_masks()
        next_len = np.where(venv.autoreset.numpy(), 0, venv.lengths.numpy())
        assert np.array_equal(vmask, spec.valid_tokens(torch.as_tensor(next_len)).numpy())
        # a random action, valid or not: the vector env refuses exactly what the spec refuses
        actions = rng.integers(0, V, size=4)
        before = venv.lengths.clone()
        active = ~venv.autoreset.clone()
        _, _, _, _, info = venv.step(actions)
        refused = info.get("invalid_action", np.zeros(4, dtype=bool)) & active.numpy()
        expect = ~spec.is_valid(torch.as_tensor(actions), before).numpy() & active.numpy()
        assert np.array_equal(refused, expect)


def _generator(seed: int):
    torch.manual_seed(seed)
    gen = build_generator(TINY, V).eval()
    with torch.no_grad():
        for p in gen.parameters():
            if p.ndim == 2:
                p.normal_(0.0, 0.5)  # peaked, so EOS and the specials get probability to refuse
    return gen


def _spy_mask_logits(monkeypatch) -> list:
    """Record (finite after masking, lengths, the spec used) of every EnvConfig.mask_logits_ call."""
    calls = []
    real = EnvConfig.mask_logits_

    def spy(self, logits, lengths):
        out = real(self, logits, lengths)
        calls.append((torch.isfinite(out).clone(), lengths.clone(), self))
        return out

    monkeypatch.setattr(EnvConfig, "mask_logits_", spy)
    return calls


@pytest.mark.parametrize("spec", SPECS, ids=_ids)
def test_agent_sampling_masks_are_the_spec(spec, monkeypatch):
    calls = _spy_mask_logits(monkeypatch)
    agent = ReinforceAgent(_generator(1), ReinforceConfig(batch_size=4, device="cpu"), seed=0)
    out = agent.sample(32, L, seed=0, min_length=spec.min_length, allow_eos=spec.allow_eos)  # (32, L)
    assert calls
    for t, (finite, lengths, used) in enumerate(calls):
        assert used == spec and bool((lengths == t).all())
        assert torch.equal(finite, spec.valid_tokens(lengths))
    for row in out:
        n = int((row != PAD_ID).sum())
        assert bool(spec.is_valid(row[:n], torch.arange(n)).all())


@pytest.mark.parametrize("spec", SPECS, ids=_ids)
def test_mc_rollout_completion_masks_are_the_spec(spec, monkeypatch):
    calls = _spy_mask_logits(monkeypatch)
    scorer = MCRolloutScorer(tiny_discriminator(V, seed=2), _generator(3), num_rollouts=3, max_length=L,
                             min_length=spec.min_length, allow_eos=spec.allow_eos, seed=5)
    prefixes = torch.tensor([[3, 4, 0, 0, 0, 0], [5, 0, 0, 0, 0, 0]])  # (2, L) unfinished rows
    completions, _ = scorer.sample_rollouts(prefixes)  # (B, T, K, L)
    assert calls
    for finite, lengths, used in calls:
        assert used == spec
        assert torch.equal(finite, spec.valid_tokens(lengths))
    for row in completions.reshape(-1, L):
        n = int((row != PAD_ID).sum())
        assert bool(spec.is_valid(row[:n], torch.arange(n)).all())


@pytest.mark.parametrize("spec", SPECS, ids=_ids)
def test_sb3_generator_policy_masks_are_the_spec(spec, monkeypatch):
    pytest.importorskip("stable_baselines3")
    from stable_baselines3 import PPO

    from stable_baselines3.common.vec_env import DummyVecEnv

    from seqgan_env.integrations.sb3_policy import GeneratorPolicy

    calls = _spy_mask_logits(monkeypatch)
    kw = dict(vocab_size=V, max_length=L, min_length=spec.min_length, allow_eos=spec.allow_eos)
    env = DummyVecEnv([lambda: TokenGenerationEnv(**kw) for _ in range(4)])
    model = PPO(GeneratorPolicy, env, n_steps=8, batch_size=8, seed=0,
                policy_kwargs=dict(generator=_generator(4), spec=spec))
    model.policy.set_training_mode(False)  # as in PPO's rollout collection: the KV-cached steps
    obs = env.reset()
    with torch.no_grad():
        for _ in range(3 * L):  # the cached steps and the full forwards, across episode ends
            x = torch.as_tensor(obs, dtype=torch.float32)
            probs = model.policy.get_distribution(x).distribution.probs  # (4, V)
            lengths = (x != PAD_ID).sum(1)
            assert torch.equal(probs > 0, spec.valid_tokens(lengths))
            actions, _, _ = model.policy(x)
            obs, _, _, _ = env.step(actions.numpy())
    assert calls and all(used == spec for _, _, used in calls)
