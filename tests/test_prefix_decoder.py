"""The SB3 generator policy's KV cache: SB3 steps the policy once per env step, and the cached
calls (``seqgan_env.models.sampling.PrefixDecoder``) give the distributions, log-probabilities and
values of the full forward over the prefix."""

from __future__ import annotations

import copy

import pytest
import torch

pytest.importorskip("stable_baselines3")

from stable_baselines3 import PPO  # noqa: E402
from stable_baselines3.common.env_util import make_vec_env  # noqa: E402

from seqgan_env.envs.spec import PAD_ID, EnvConfig  # noqa: E402
from seqgan_env.integrations.sb3_policy import GeneratorPolicy  # noqa: E402
from seqgan_env.models.networks import GeneratorConfig, build_generator  # noqa: E402
from seqgan_env.models.sampling import PrefixDecoder  # noqa: E402

LLAMA = GeneratorConfig(hidden_size=16, intermediate_size=32, num_layers=2, num_heads=2)
LSTM = GeneratorConfig(family="lstm", hidden_size=16, num_layers=2)


def _pair(config: GeneratorConfig, with_spec: bool, n_envs: int):
    """The env and two policies with the same weights: one cached, one with a full forward every call."""
    env = make_vec_env("seqgan_env:SeqGAN-v1", n_envs=n_envs, seed=0)
    vocab, length = int(env.action_space.n), int(env.observation_space.shape[0])
    spec = EnvConfig(vocab_size=vocab, max_length=length, min_length=2) if with_spec else None
    torch.manual_seed(0)
    gen = build_generator(config, vocab)
    with torch.no_grad():
        for p in gen.parameters():  # peaked distributions: EOS gets mass, so episodes end at many lengths
            p.mul_(4.0)
    models = [PPO(GeneratorPolicy, env, n_steps=8, batch_size=8, seed=0,
                  policy_kwargs=dict(generator=g, spec=spec, kv_cache=cached))
              for g, cached in ((gen, True), (copy.deepcopy(gen), False))]
    for model in models:
        model.policy.set_training_mode(False)  # as PPO's rollout collection does
    return env, models[0].policy, models[1].policy


@pytest.mark.parametrize("n_envs", [1, 4])
@pytest.mark.parametrize("with_spec", [True, False])
@pytest.mark.parametrize("fast", [True, False], ids=["lean-step", "model-forward"])
@pytest.mark.parametrize("config", [LLAMA, LSTM], ids=["llama", "lstm"])
def test_cached_stepping_equals_the_full_forward(config, fast, with_spec, n_envs, monkeypatch):
    env, cached, full = _pair(config, with_spec, n_envs)
    cached.prefix_decoder.fast_decode = fast
    steps = []
    real_step = PrefixDecoder._step

    def counting_step(self, *args):
        out = real_step(self, *args)
        steps.append(out is not None)
        return out

    monkeypatch.setattr(PrefixDecoder, "_step", counting_step)
    obs = env.reset()
    resets = 0
    with torch.no_grad():
        for _ in range(60):
            x = torch.as_tensor(obs, dtype=torch.float32)
            actions, values, logp = cached(x)  # what SB3's collect_rollouts calls
            ref_dist = full.get_distribution(x).distribution
            dist = cached.get_distribution(x).distribution  # the same observation again: the stored answer
            assert torch.allclose(dist.probs, ref_dist.probs, atol=1e-5)
            assert torch.allclose(logp, ref_dist.log_prob(actions), atol=1e-5)
            assert torch.allclose(values, full.predict_values(x), atol=1e-5)
            assert torch.allclose(cached.predict_values(x), values, atol=1e-6)
            obs, _, dones, _ = env.step(actions.numpy())
            resets += int(dones.sum())
    assert resets > 0  # episodes ended mid-batch: restarted rows went through the cache too
    assert sum(steps) >= 40  # the cache served most calls (a full forward only when a row did neither)


def test_training_mode_runs_the_full_forward():
    env, cached, _ = _pair(LLAMA, True, 2)
    cached.set_training_mode(True)  # PPO's update: dropout, if any, draws anew each call
    with torch.no_grad():
        cached(torch.as_tensor(env.reset(), dtype=torch.float32))
    assert not cached.prefix_decoder._states


def test_a_call_with_gradients_runs_the_full_forward_and_keeps_the_cache():
    env, cached, _ = _pair(LLAMA, True, 2)
    obs = torch.as_tensor(env.reset(), dtype=torch.float32)
    with torch.no_grad():
        cached(obs)
    state = cached.prefix_decoder._states[tuple(obs.shape)]
    values, logp, ent = cached.evaluate_actions(obs, torch.tensor([3, 4]))  # PPO's update: with grad
    assert values.requires_grad and logp.requires_grad
    assert cached.prefix_decoder._states[tuple(obs.shape)] is state


def test_weights_changed_by_an_update_are_seen():
    env, cached, full = _pair(LLAMA, False, 2)
    x = torch.as_tensor(env.reset(), dtype=torch.float32)
    with torch.no_grad():
        before = cached.get_distribution(x).distribution.probs.clone()
        for p in cached.generator.parameters():
            p.add_(0.1)  # an optimizer step changes the weights in place
        full.generator.load_state_dict(cached.generator.state_dict())
        after = cached.get_distribution(x).distribution.probs
        assert not torch.allclose(before, after)
        assert torch.allclose(after, full.get_distribution(x).distribution.probs, atol=1e-5)


def test_rows_that_jump_fall_back_to_the_full_forward():
    env, cached, full = _pair(LLAMA, False, 2)
    length = int(env.observation_space.shape[0])
    a = torch.full((2, length), PAD_ID)
    a[:, :2] = torch.tensor([[5, 6], [7, 8]])
    b = a.clone()
    b[:, 2:4] = torch.tensor([[9, 10], [11, 12]])  # two tokens more: not one step of SB3
    with torch.no_grad():
        for x in (a, b):
            got = cached.get_distribution(x.float()).distribution.probs
            assert torch.allclose(got, full.get_distribution(x.float()).distribution.probs, atol=1e-5)


@pytest.mark.parametrize("value", [1, "yes", None])
def test_bad_kv_cache_is_named(value):
    env = make_vec_env("seqgan_env:SeqGAN-v1", n_envs=1, seed=0)
    with pytest.raises(ValueError, match="kv_cache="):
        PPO(GeneratorPolicy, env, policy_kwargs=dict(generator_config=LLAMA, kv_cache=value))
