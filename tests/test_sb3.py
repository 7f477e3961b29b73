"""Stable-Baselines3 integration: VecEnv adapter, features extractor, D-update callback, factory."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

pytest.importorskip("stable_baselines3")
pytest.importorskip("sb3_contrib")

from sb3_contrib import MaskablePPO  # noqa: E402
from stable_baselines3 import A2C, DQN, PPO  # noqa: E402
from stable_baselines3.common.logger import KVWriter, Logger  # noqa: E402
from stable_baselines3.common.monitor import Monitor  # noqa: E402
from stable_baselines3.common.vec_env import DummyVecEnv  # noqa: E402

from seqgan_env import (  # noqa: E402
    DiscriminatorReward,
    DiscriminatorRewardVector,
    TokenGenerationEnv,
    TokenGenerationVectorEnv,
    make_env,
)
from seqgan_env.envs.spec import PAD_ID  # noqa: E402
from seqgan_env.integrations.sb3 import (  # noqa: E402
    SB3DiscriminatorCallback,
    TokenEmbeddingExtractor,
    TokenGenerationVecEnv,
    make_sb3_env,
    sb3_policy_kwargs,
)
from seqgan_env.rewards.callbacks import DiscriminatorUpdateConfig  # noqa: E402

from .conftest import TINY, CountScorer, tiny_discriminator  # noqa: E402

T = 6
REAL_TEXTS = ["abc", "cab", "bca", "aab", "cc", "ba", "acb", "abca", "bb", "caab", "cba", "aa"]
SMALL_POLICY = sb3_policy_kwargs(embed_dim=8, features_dim=16, net_arch=[16])
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def state_sha(state: dict[str, torch.Tensor]) -> str:
    """sha256 of a state dict's tensors, concatenated in key order."""
    h = hashlib.sha256()
    for key in sorted(state):
        h.update(key.encode())
        h.update(state[key].detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


class RecordingWriter(KVWriter):
    """An SB3 logger output that keeps every dumped key/value dict."""

    def __init__(self) -> None:
        self.dumps: list[dict] = []

    def write(self, key_values, key_excluded, step=0) -> None:
        self.dumps.append(dict(key_values))

    def close(self) -> None:
        pass


@pytest.fixture(scope="module")
def data_file(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("data") / "names.txt"
    path.write_text("\n".join(REAL_TEXTS) + "\n")
    return str(path)


def count_adapter(tok, n, mode="per_step", transform="prob", monitor=True) -> TokenGenerationVecEnv:
    vec = TokenGenerationVectorEnv(n, tokenizer=tok, max_length=T)
    return TokenGenerationVecEnv(DiscriminatorRewardVector(vec, CountScorer(3), mode=mode, transform=transform),
                                 monitor=monitor)


def count_dummy(tok, n, mode="per_step", transform="prob") -> DummyVecEnv:
    def one():
        env = TokenGenerationEnv(tokenizer=tok, max_length=T)
        return Monitor(DiscriminatorReward(env, CountScorer(3), mode=mode, transform=transform))

    return DummyVecEnv([one for _ in range(n)])


def disc_adapter(tok, n, seed=0) -> TokenGenerationVecEnv:
    real = tok.encode_batch(REAL_TEXTS, T)  # (N, T)
    vec = TokenGenerationVectorEnv(n, tokenizer=tok, max_length=T)
    return TokenGenerationVecEnv(DiscriminatorRewardVector(vec, tiny_discriminator(tok.vocab_size, seed=seed),
                                                           real_data=real, update_batch_size=8, update_every=None))


# -- adapter ------------------------------------------------------------------------------------


def test_same_step_autoreset(tokenizer):
    env = count_adapter(tokenizer, 3)
    obs = env.reset()
    assert obs.shape == (3, T) and obs.dtype == np.int64 and (obs == PAD_ID).all()
    a, b, eos = 3, 4, 2
    # env 0 writes "ab" then EOS; env 1 writes b until max_length; env 2 tries EOS first (masked).
    script = [[a, b, eos], [b, b, a], [eos, b, a], [a, b, a], [a, b, a], [a, b, a], [a, a, a]]
    seen_done = {0: False, 1: False, 2: False}
    for actions in script:
        prev = obs.copy()
        obs, rewards, dones, infos = env.step(np.array(actions))
        assert rewards.dtype == np.float32 and rewards.shape == (3,)
        assert dones.dtype == bool and dones.shape == (3,)
        assert isinstance(infos, list) and len(infos) == 3
        for i in range(3):
            if not dones[i]:
                assert "terminal_observation" not in infos[i]
                continue
            seen_done[i] = True
            final = infos[i]["terminal_observation"]
            expected = prev[i].copy()
            if not infos[i].get("invalid_action", False):
                expected[int((prev[i] != PAD_ID).sum())] = actions[i]
            np.testing.assert_array_equal(final, expected)  # the last obs before the reset
            assert (obs[i] == PAD_ID).all()  # the returned obs is the reset one
            assert infos[i]["episode"]["l"] >= 1 and "t" in infos[i]["episode"]
            assert "text" in infos[i]
        masks = env.action_masks()
        assert masks.shape == (3, tokenizer.vocab_size) and masks.dtype == bool
        for i in np.flatnonzero(dones):
            assert not masks[i, eos]  # a fresh episode: EOS not yet allowed (min_length=1)
    assert all(seen_done.values())
    # The step after a reset writes the first token of the new episode.
    obs, _, _, _ = env.step(np.array([a, a, a]))
    assert (obs[:, 0] == a).all()


@pytest.mark.parametrize("mode,transform", [("per_step", "prob"), ("potential", "log"), ("final", "logit")])
def test_matches_dummy_vec_env(tokenizer, mode, transform):
    n = 4
    native, dummy = count_adapter(tokenizer, n, mode, transform), count_dummy(tokenizer, n, mode, transform)
    np.testing.assert_array_equal(native.reset(), dummy.reset())
    rng = np.random.default_rng(0)
    n_done = 0
    for _ in range(80):
        # Mostly valid symbols, sometimes EOS or a masked PAD/BOS.
        actions = rng.choice(tokenizer.vocab_size, size=n, p=[0.03, 0.03, 0.14, 0.3, 0.25, 0.25])
        o1, r1, d1, i1 = native.step(actions)
        o2, r2, d2, i2 = dummy.step(actions)
        np.testing.assert_array_equal(o1, o2)
        np.testing.assert_array_equal(r1, r2)  # CountScorer: exact
        np.testing.assert_array_equal(d1, d2)
        for a, b in zip(i1, i2):
            assert set(a) == set(b)
            for key in ("text", "invalid_action", "TimeLimit.truncated"):
                assert a.get(key) == b.get(key)
            if "disc_score" in b:
                assert a["disc_score"] == pytest.approx(b["disc_score"], abs=1e-6)
            if "terminal_observation" in b:
                np.testing.assert_array_equal(a["terminal_observation"], b["terminal_observation"])
                assert a["episode"]["r"] == pytest.approx(b["episode"]["r"], abs=1e-5)
                assert a["episode"]["l"] == b["episode"]["l"]
        np.testing.assert_array_equal(native.action_masks(), np.stack(dummy.env_method("action_masks")))
        n_done += int(d1.sum())
    assert n_done > 20


def test_matches_dummy_vec_env_with_kv_cache(tokenizer):
    """A real Discriminator scores incrementally (KV cache); same-step resets keep it consistent."""
    n = 4
    native = TokenGenerationVecEnv(DiscriminatorRewardVector(
        TokenGenerationVectorEnv(n, tokenizer=tokenizer, max_length=T), tiny_discriminator(tokenizer.vocab_size)))
    assert native.env._incremental is not None
    dummy = DummyVecEnv([
        lambda: DiscriminatorReward(TokenGenerationEnv(tokenizer=tokenizer, max_length=T),
                                    tiny_discriminator(tokenizer.vocab_size))
        for _ in range(n)
    ])
    native.reset(), dummy.reset()
    rng = np.random.default_rng(1)
    for _ in range(60):
        actions = rng.choice(tokenizer.vocab_size, size=n, p=[0.02, 0.02, 0.16, 0.3, 0.25, 0.25])
        o1, r1, d1, _ = native.step(actions)
        o2, r2, d2, _ = dummy.step(actions)
        np.testing.assert_array_equal(o1, o2)
        np.testing.assert_array_equal(d1, d2)
        np.testing.assert_allclose(r1, r2, atol=1e-5)


def test_env_method_get_set_attr(tokenizer):
    env = disc_adapter(tokenizer, 3)
    env.reset()
    for _ in range(T):
        env.step(np.full(3, 3))
    masks = env.env_method("action_masks", indices=[0, 2])
    assert len(masks) == 2 and masks[0].shape == (tokenizer.vocab_size,)
    wrapper = env.env
    assert env.reward_env is wrapper
    before = state_sha(wrapper.discriminator_state())
    results = env.env_method("update_discriminator")  # trains the one shared D once
    assert wrapper.trainer.num_updates == 1 and len(results) == 3 and "loss" in results[0]
    assert state_sha(env.env_method("discriminator_state", indices=1)[0]) != before
    other = tiny_discriminator(tokenizer.vocab_size, seed=5).state_dict()
    assert env.env_method("load_discriminator_state", other) == [None, None, None]
    assert state_sha(wrapper.discriminator_state()) == state_sha(other)
    assert env.get_attr("reward_config")[0].mode == "potential"  # RewardConfig's default
    assert env.has_attr("action_masks") and not env.has_attr("no_such_attribute")
    env.set_attr("decode_text", False)
    assert env.base.decode_text is False
    with pytest.raises(ValueError, match="indices=None"):
        env.set_attr("decode_text", True, indices=[0])
    with pytest.raises(ValueError, match="out of range"):
        env.get_attr("decode_text", indices=[3])
    assert env.env_is_wrapped(DiscriminatorRewardVector) == [True] * 3
    assert env.env_is_wrapped(Monitor) == [False] * 3
    assert env.seed(7) == [7, 8, 9]
    env.reset()
    env.close()


def test_adapter_rejects_other_envs():
    with pytest.raises(TypeError, match="TokenGenerationVectorEnv"):
        TokenGenerationVecEnv(object())
    with pytest.raises(ValueError, match="unknown"):
        make_sb3_env(2, backend="threads")


# -- features extractor ---------------------------------------------------------------------------


@pytest.mark.parametrize("encoder", ["gru", "transformer"])
def test_extractor_shapes_and_prefix(tokenizer, encoder):
    env = TokenGenerationEnv(tokenizer=tokenizer, max_length=T)
    torch.manual_seed(0)
    ext = TokenEmbeddingExtractor(env.observation_space, embed_dim=8, features_dim=12, encoder=encoder)
    assert ext.vocab_size == tokenizer.vocab_size and ext.features_dim == 12
    obs = torch.tensor([[0, 0, 0, 0, 0, 0], [3, 0, 0, 0, 0, 0], [3, 4, 0, 0, 0, 0], [3, 4, 5, 3, 4, 5]])
    feats = ext(obs.float())  # SB3 hands Box observations over as float
    assert feats.shape == (4, 12) and torch.isfinite(feats).all()
    assert not torch.allclose(feats[1], feats[2])
    # The features of a prefix depend on the prefix only: batch-independent, PAD-free.
    np.testing.assert_allclose(ext(obs[2:3].float()).detach(), feats[2:3].detach(), atol=1e-5)
    feats.sum().backward()
    assert ext.embedding.weight.grad is not None
    with pytest.raises(ValueError, match="encoder"):
        TokenEmbeddingExtractor(env.observation_space, encoder="lstm")


def test_policy_kwargs():
    kw = sb3_policy_kwargs(embed_dim=4, features_dim=8, net_arch=[8])
    assert kw["features_extractor_class"] is TokenEmbeddingExtractor
    assert kw["features_extractor_kwargs"]["embed_dim"] == 4 and kw["net_arch"] == [8]
    with pytest.raises(ValueError, match="features_extractor"):
        sb3_policy_kwargs(features_extractor_kwargs={})


# -- algorithms + callback ------------------------------------------------------------------------


@pytest.mark.parametrize("algo", [PPO, A2C, MaskablePPO])
def test_learn_with_callback(tokenizer, algo, monkeypatch):
    n_envs, n_steps, rollouts = 4, 16, 4
    env = disc_adapter(tokenizer, n_envs)
    wrapper = env.env
    update_times: list[int] = []
    original = wrapper.update_discriminator

    def spy(fake=None):
        assert fake is not None and fake.shape[1] == T and (fake[:, 0] != PAD_ID).all()
        update_times.append(model.num_timesteps)
        return original(fake)

    monkeypatch.setattr(wrapper, "update_discriminator", spy)
    kwargs = dict(n_steps=n_steps, policy_kwargs=SMALL_POLICY, seed=0, device="cpu")
    if algo is not A2C:
        kwargs.update(batch_size=32, n_epochs=1)
    model = algo("MlpPolicy", env, **kwargs)
    writer = RecordingWriter()
    model.set_logger(Logger(None, [writer]))
    before = state_sha(wrapper.discriminator_state())
    callback = SB3DiscriminatorCallback(DiscriminatorUpdateConfig(every=2, d_steps=2, batch_size=8, until_accuracy=None))
    model.learn(rollouts * n_steps * n_envs, callback=callback, log_interval=1)
    assert callback.num_generator_updates == rollouts
    assert callback.num_discriminator_updates == (rollouts // 2) * 2
    # D changes only between rollouts: at whole multiples of the rollout size.
    assert update_times and all(t % (n_steps * n_envs) == 0 for t in update_times)
    assert state_sha(wrapper.discriminator_state()) != before
    logged = [d for d in writer.dumps if "discriminator/loss" in d]
    assert logged and {"discriminator/acc_real", "discriminator/acc_fake"} <= set(logged[-1])
    assert any("rollout/ep_rew_mean" in d for d in writer.dumps)  # info["episode"] reached SB3


def test_dqn_single_env(data_file):
    env = make_env(data_path=data_file, max_length=T, discriminator_model=TINY)
    model = DQN("MlpPolicy", env, learning_starts=50, train_freq=4, batch_size=16, buffer_size=500, seed=0,
                policy_kwargs=sb3_policy_kwargs(embed_dim=8, features_dim=16, encoder="transformer", net_arch=[16]))
    model.learn(300)
    assert model.num_timesteps == 300


@pytest.mark.parametrize("backend", ["dummy", "subproc"])
def test_callback_broadcasts_weights(data_file, backend):
    env = make_sb3_env(2, backend=backend, data_path=data_file, max_length=T, discriminator_model=TINY,
                       update_every=None)
    try:
        initial = {state_sha(s) for s in env.env_method("discriminator_state")}
        assert len(initial) == 1  # one seed: identical discriminators
        callback = SB3DiscriminatorCallback(DiscriminatorUpdateConfig(every=1, d_steps=1, batch_size=8, until_accuracy=None))
        # Masked actions: every episode ends validly, so each rollout yields fake sequences.
        model = MaskablePPO("MlpPolicy", env, n_steps=16, batch_size=32, n_epochs=1, policy_kwargs=SMALL_POLICY,
                            seed=0)
        model.learn(64, callback=callback)
        assert callback.num_generator_updates == 2 and callback.num_discriminator_updates == 2
        trainer = state_sha(callback.reward_env.discriminator_state())
        workers = [state_sha(s) for s in env.env_method("discriminator_state")]
        assert workers == [trainer, trainer] and trainer not in initial
    finally:
        env.close()


def test_native_factory_learns_with_callback(data_file):
    env = make_sb3_env(4, backend="native", data_path=data_file, max_length=T, discriminator_model=TINY,
                       update_batch_size=8, update_every=None)
    callback = SB3DiscriminatorCallback(DiscriminatorUpdateConfig(every=1, d_steps=1, batch_size=8, until_accuracy=None))
    model = MaskablePPO("MlpPolicy", env, n_steps=8, batch_size=32, n_epochs=1, policy_kwargs=SMALL_POLICY, seed=0)
    model.learn(64, callback=callback)
    assert callback.num_discriminator_updates == 2 and callback.reward_env is env.env


def test_callback_needs_finished_sequences(tokenizer):
    env = disc_adapter(tokenizer, 1)
    model = PPO("MlpPolicy", env, n_steps=2, batch_size=2, n_epochs=1, policy_kwargs=SMALL_POLICY, seed=0)
    # Rollouts of 2 steps rarely finish an episode of 6 slots; a user sampler avoids the empty buffer.
    fake = tokenizer.encode_batch(["ab", "ca"], T)
    callback = SB3DiscriminatorCallback(DiscriminatorUpdateConfig(d_steps=1, batch_size=2, until_accuracy=None), sample_fake=lambda n: fake[:n])
    model.learn(4, callback=callback)
    assert callback.num_discriminator_updates == 2


# -- learning ----------------------------------------------------------------------------------


def fraction_of_a(model, env, steps=40) -> float:
    obs = env.reset()
    actions = []
    for _ in range(steps):
        action, _ = model.predict(obs, deterministic=False)
        actions.append(action)
        obs, _, _, _ = env.step(action)
    return float((np.concatenate(actions) == 3).mean())


def test_ppo_learns_to_write_a(tokenizer):
    env = count_adapter(tokenizer, 16)
    model = PPO("MlpPolicy", env, n_steps=16, batch_size=64, n_epochs=4, learning_rate=3e-3, gamma=0.95,
                policy_kwargs=SMALL_POLICY, seed=0)
    probe = count_adapter(tokenizer, 16)
    before = fraction_of_a(model, probe)
    model.learn(16 * 16 * 12)
    after = fraction_of_a(model, probe)
    assert after > before + 0.2, (before, after)
