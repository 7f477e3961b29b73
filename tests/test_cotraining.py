"""Co-training through the public doors: gym.make, gym.make_vec, SB3's make_vec_env, a plain loop.

With no callback and no extra argument the discriminator trains on the episodes it scores,
every sub-env of one process scores with one discriminator, and SeqGAN-v0 keeps its old
behaviour for reproducing earlier results.
"""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch

import seqgan_env
from seqgan_env.eval.discriminator_health import health_report
from seqgan_env.rewards.callbacks import DiscriminatorUpdateCallback
from seqgan_env.rewards.wrappers import DEFAULT_UPDATE_EVERY, RewardConfig

ID = f"seqgan_env:{seqgan_env.ENV_ID}"


def _weights(disc) -> torch.Tensor:
    return torch.cat([p.detach().flatten().clone() for p in disc.state_dict().values()])


def _finished_rows(venv, n: int, act) -> torch.Tensor:
    """(n, T): the first finished episode of each of ``venv``'s n sub-envs, actions from ``act(obs, masks)``."""
    obs, _ = venv.reset(seed=0)
    rows = torch.zeros(n, venv.unwrapped.config.max_length, dtype=torch.long)
    got = np.zeros(n, dtype=bool)
    while not got.all():
        obs, _, term, trunc, _ = venv.step(act(obs, venv.action_masks()))
        done = (term | trunc) & ~got
        for i in np.flatnonzero(done):
            rows[i] = torch.as_tensor(venv.unwrapped.tokens[i]).clone()
        got |= done
    return rows


def _random_rows(n: int, seed: int) -> torch.Tensor:
    """(n, T) finished rows of a uniformly random masked policy, from a D-free env."""
    rng = np.random.default_rng(seed)
    venv = seqgan_env.make_vector_env(n, update_every=None, share_discriminator=False, seed=seed)
    rows = _finished_rows(venv, n, lambda obs, masks: np.array([rng.choice(np.flatnonzero(m)) for m in masks]))
    venv.close()
    return rows


def test_defaults_are_the_trainers():
    from seqgan_agents.trainer_config import TrainConfig

    cfg, env_cfg = TrainConfig(), RewardConfig()
    assert (env_cfg.mode, env_cfg.transform) == (cfg.reward.mode, cfg.reward.transform) == ("potential", "prob")
    assert env_cfg.update_every == DEFAULT_UPDATE_EVERY and cfg.reward.update_every is None  # the trainer's clock
    assert env_cfg.update_batch_size == cfg.d_updates.batch_size
    assert (env_cfg.update_steps, env_cfg.update_until_accuracy, env_cfg.update_max_steps) == (
        cfg.d_updates.d_steps, cfg.d_updates.until_accuracy, cfg.d_updates.max_d_steps)
    env = gym.make(ID)
    assert env.unwrapped.spec.id == seqgan_env.ENV_ID == "SeqGAN-v1"
    assert env.get_wrapper_attr("discriminator").config == cfg.discriminator  # whole-sequence D loss in both
    env.close()


def test_gym_make_vec_plain_loop_cotrains_discriminator():
    env = gym.make_vec(ID, num_envs=32, vectorization_mode="vector_entry_point", seed=0)
    disc = env.discriminator
    before = _weights(disc)
    real = env.dataset.valid[:256]
    fake = _random_rows(256, seed=1)
    auc_before = health_report(disc.sequence_scores, real, fake)["auc"]
    rng = np.random.default_rng(0)
    env.reset(seed=0)
    while env.trainer.num_phases < 2:
        masks = env.action_masks()
        env.step(np.array([rng.choice(np.flatnonzero(m)) for m in masks]))
    assert env.trainer.finished_episodes >= 2 * DEFAULT_UPDATE_EVERY
    assert not torch.equal(before, _weights(disc))
    auc_after = health_report(disc.sequence_scores, real, _random_rows(256, seed=2))["auc"]
    assert auc_after > 0.6 and auc_after > auc_before + 0.05, (auc_before, auc_after)
    env.close()


def test_gym_make_single_env_cotrains_and_reports_the_phase():
    env = gym.make(ID, seed=0, update_every=4)
    disc = env.get_wrapper_attr("discriminator")
    before = _weights(disc)
    rng = np.random.default_rng(0)
    phase_infos = []
    for ep in range(8):
        env.reset(seed=ep)
        done = False
        while not done:
            mask = env.get_wrapper_attr("action_masks")()
            _, _, term, trunc, info = env.step(int(rng.choice(np.flatnonzero(mask))))
            done = term or trunc
        if "discriminator/loss" in info:
            phase_infos.append(info)
    assert len(phase_infos) == 2 and all(i["discriminator/phase_steps"] >= 1 for i in phase_infos)
    assert not torch.equal(before, _weights(disc))
    env.close()


def test_make_vec_env_sub_envs_share_one_discriminator():
    from stable_baselines3.common.env_util import make_vec_env

    venv = make_vec_env(ID, n_envs=4, seed=0)
    discs = venv.get_attr("discriminator")
    trainers = venv.get_attr("trainer")
    assert all(d is discs[0] for d in discs) and all(t is trainers[0] for t in trainers)
    # every sub-env's finished episodes go to the one trainer
    venv.reset()
    rng = np.random.default_rng(0)
    for _ in range(40):
        masks = np.stack(venv.env_method("action_masks"))
        venv.step(np.array([rng.choice(np.flatnonzero(m)) for m in masks]))
    assert trainers[0].finished_episodes >= 4
    venv.close()
    # another process-level group: other arguments, another D
    other = gym.make(ID, seed=1)
    assert other.get_wrapper_attr("discriminator") is not discs[0]
    other.close()


def test_share_discriminator_false_builds_a_fresh_one():
    a = gym.make(ID, seed=0)
    b = gym.make(ID, seed=0)
    c = gym.make(ID, seed=0, share_discriminator=False)
    assert a.get_wrapper_attr("discriminator") is b.get_wrapper_attr("discriminator")
    assert c.get_wrapper_attr("discriminator") is not a.get_wrapper_attr("discriminator")
    assert torch.equal(_weights(c.get_wrapper_attr("discriminator")), _weights(a.get_wrapper_attr("discriminator")))


@pytest.mark.parametrize("bad, match", [
    (dict(share_discriminator="yes"), "share_discriminator='yes'"),
    (dict(update_steps=0), "update_steps=0"),
    (dict(update_until_accuracy=0.4), "update_until_accuracy=0.4"),
    (dict(update_steps=3, update_max_steps=2), "update_max_steps=2"),
    (dict(update_every=0), "update_every=0"),
])
def test_bad_cotraining_arguments_name_the_value(bad, match):
    with pytest.raises(ValueError, match=match):
        gym.make(ID, **bad)


def test_sb3_ppo_cotrains_through_make_vec_env():
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    venv = make_vec_env(ID, n_envs=4, seed=0, env_kwargs=dict(update_every=32))
    disc = venv.get_attr("discriminator")[0]
    before = _weights(disc)
    model = PPO("MlpPolicy", venv, n_steps=64, batch_size=64, n_epochs=1, seed=0, device="cpu")
    model.learn(512)
    trainer = venv.get_attr("trainer")[0]
    assert trainer.num_phases >= 1 and not torch.equal(before, _weights(disc))
    # held-out AUC of the co-trained D: validation names against fresh episodes of the policy
    probe = seqgan_env.make_vector_env(64, update_every=None, share_discriminator=False, seed=5)

    def act(obs, masks):
        actions, _ = model.predict(obs, deterministic=False)
        return np.where(masks[np.arange(64), actions], actions, masks.argmax(1))  # a masked pick ends nothing early

    rows = _finished_rows(probe, 64, act)
    real = venv.get_attr("dataset")[0].valid[:256]
    fresh = seqgan_env.make_vector_env(2, seed=0, share_discriminator=False).discriminator
    auc_fresh = health_report(fresh.sequence_scores, real, rows)["auc"]
    auc = health_report(disc.sequence_scores, real, rows)["auc"]
    assert auc > 0.6 and auc > auc_fresh, (auc_fresh, auc)
    venv.close()


def test_v0_keeps_its_old_behaviour_and_warns():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        env = gym.make("seqgan_env:SeqGAN-v0")
    assert any("out of date" in str(w.message) for w in caught)
    cfg = env.get_wrapper_attr("reward_config")
    assert (cfg.mode, cfg.transform, cfg.update_every) == ("per_step", "prob", None)
    assert env.get_wrapper_attr("discriminator").config.prefix_loss is True
    again = gym.make("seqgan_env:SeqGAN-v0")
    assert again.get_wrapper_attr("discriminator") is not env.get_wrapper_attr("discriminator")


def test_callback_refuses_an_env_that_trains_d_itself():
    env = seqgan_env.make_vector_env(4, seed=0)
    with pytest.raises(ValueError, match="update_every=128"):
        DiscriminatorUpdateCallback(env, lambda n: torch.zeros(n, 4, dtype=torch.long))
    DiscriminatorUpdateCallback(seqgan_env.make_vector_env(4, seed=0, update_every=None),
                                lambda n: torch.zeros(n, 4, dtype=torch.long))


def test_d_trainer_refuses_a_phase_cap_below_its_steps():
    from seqgan_env.rewards.d_trainer import DiscriminatorTrainer
    from seqgan_env.testing import ScriptedDiscriminator

    with pytest.raises(ValueError, match="max_d_steps=2"):
        DiscriminatorTrainer(ScriptedDiscriminator(), None, d_steps=3, max_d_steps=2)
    assert DiscriminatorTrainer(ScriptedDiscriminator(), None, d_steps=3).max_d_steps == 3  # None: d_steps
