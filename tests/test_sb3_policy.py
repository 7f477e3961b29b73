"""GeneratorPolicy: SB3 PPO (and MaskablePPO) whose actor is our causal-LM generator."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("stable_baselines3")

from stable_baselines3 import PPO  # noqa: E402
from stable_baselines3.common.env_util import make_vec_env  # noqa: E402

from seqgan_env.envs.spec import BOS_ID, EOS_ID, PAD_ID, EnvConfig  # noqa: E402
from seqgan_env.integrations.sb3_policy import GeneratorPolicy, MaskableGeneratorPolicy  # noqa: E402
from seqgan_env.models.networks import GeneratorConfig, build_generator  # noqa: E402

TINY = GeneratorConfig(hidden_size=16, intermediate_size=32, num_layers=1, num_heads=2)


def _env(n_envs: int = 4):
    return make_vec_env("seqgan_env:SeqGAN-v1", n_envs=n_envs, seed=0)


def _prefixes(vocab: int, length: int) -> torch.Tensor:
    """(3, T) observations: empty, two symbols, five symbols then EOS; PAD-right-padded."""
    obs = torch.full((3, length), PAD_ID, dtype=torch.long)
    obs[1, :2] = torch.tensor([5, 7])
    obs[2, :6] = torch.tensor([3, 4, 5, 6, vocab - 1, EOS_ID])
    return obs


def test_ppo_learns_as_a_user_writes_it_and_starts_at_the_generators_softmax():
    env = _env()
    vocab, length = int(env.action_space.n), int(env.observation_space.shape[0])
    torch.manual_seed(0)
    generator = build_generator(TINY, vocab)
    model = PPO(GeneratorPolicy, env, n_steps=32, batch_size=64, n_epochs=2, seed=0,
                policy_kwargs=dict(generator=generator))
    assert model.policy.generator is generator
    obs = _prefixes(vocab, length)
    with torch.no_grad():
        probs = model.policy.get_distribution(obs.float()).distribution.probs  # (3, V)
        for row, n in zip(obs, (0, 2, 6)):
            inp = torch.cat([torch.tensor([BOS_ID]), row[:n]])[None]  # (1, 1+n)
            expected = generator(input_ids=inp).logits[0, -1].softmax(-1)
            assert torch.allclose(probs[int((obs == row).all(1).nonzero())], expected, atol=1e-6)
    before = {k: v.clone() for k, v in generator.state_dict().items()}
    model.learn(256)
    assert any(not torch.equal(before[k], v) for k, v in generator.state_dict().items())
    assert model.num_timesteps >= 256


def test_generator_is_built_from_the_config_and_the_envs_vocab_when_none_is_given():
    env = _env(2)
    model = PPO(GeneratorPolicy, env, n_steps=8, batch_size=16, policy_kwargs=dict(generator_config=TINY))
    assert model.policy.generator.config.vocab_size == env.action_space.n
    assert model.policy.generator.config.hidden_size == 16
    model.learn(16)


def test_spec_masks_the_tokens_the_env_forbids():
    env = _env(2)
    vocab, length = int(env.action_space.n), int(env.observation_space.shape[0])
    spec = EnvConfig(vocab_size=vocab, max_length=length, min_length=3)
    model = PPO(GeneratorPolicy, env, n_steps=8, batch_size=8, policy_kwargs=dict(generator_config=TINY, spec=spec))
    with torch.no_grad():
        probs = model.policy.get_distribution(_prefixes(vocab, length)).distribution.probs  # (3, V)
    assert float(probs[:, PAD_ID].max()) == 0 and float(probs[:, BOS_ID].max()) == 0
    assert float(probs[:2, EOS_ID].max()) == 0 and float(probs[2, EOS_ID]) > 0  # EOS only after 3 symbols
    assert torch.allclose(probs.sum(-1), torch.ones(3))


def test_maskable_ppo_learns_with_the_envs_masks():
    from sb3_contrib import MaskablePPO

    env = _env(2)
    model = MaskablePPO(MaskableGeneratorPolicy, env, n_steps=16, batch_size=32, n_epochs=1, seed=0,
                        policy_kwargs=dict(generator_config=TINY))
    before = {k: v.clone() for k, v in model.policy.generator.state_dict().items()}
    model.learn(32)
    assert any(not torch.equal(before[k], v) for k, v in model.policy.generator.state_dict().items())


@pytest.mark.parametrize("kwargs, needle", [
    (dict(generator="llama"), "generator='llama' is not a torch module"),
    (dict(generator_config=TINY, generator=torch.nn.Linear(2, 2)), "both given"),
    (dict(value_hidden=0), "value_hidden=0 is invalid"),
    (dict(spec=EnvConfig(vocab_size=7)), "spec.vocab_size=7 differs"),
])
def test_bad_arguments_are_named_with_the_fix(kwargs, needle):
    with pytest.raises((ValueError, TypeError), match=needle):
        PPO(GeneratorPolicy, _env(1), n_steps=8, batch_size=8, policy_kwargs=kwargs)


def test_a_generator_of_another_vocabulary_is_refused():
    with pytest.raises(ValueError, match="vocab_size=40 but the env has 29 actions"):
        PPO(GeneratorPolicy, _env(1), n_steps=8, batch_size=8, policy_kwargs=dict(generator=build_generator(TINY, 40)))
