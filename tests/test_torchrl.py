"""torchrl drives the env: GymWrapper / GymEnv on the single env, the native vector env through the
DISABLED-autoreset adapter, check_env_specs, masks, and rewards equal to single envs on the same actions.

Needs the ``torchrl`` extra (``pip install 'seqgan-env[torchrl]'``).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

torchrl = pytest.importorskip("torchrl", reason="the torchrl integration needs the torchrl extra: "
                                                "pip install 'seqgan-env[torchrl]'")

from torchrl.envs import GymEnv, GymWrapper  # noqa: E402
from torchrl.envs.utils import check_env_specs  # noqa: E402

import seqgan_env  # noqa: E402, F401  (registers seqgan_env:SeqGAN-v1)
from seqgan_env.integrations.torchrl import DisabledAutoresetVector, make_torchrl_env  # noqa: E402
from seqgan_env.rewards.registration import make_env, make_vector_env  # noqa: E402

KW = dict(max_length=12, reward_mode="per_step", seed=0)
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("build", [
    lambda: GymWrapper(gym.make("seqgan_env:SeqGAN-v1", **KW), categorical_action_encoding=True),
    lambda: GymEnv("seqgan_env:SeqGAN-v1", categorical_action_encoding=True, **KW),
    lambda: make_torchrl_env(**KW),
    lambda: make_torchrl_env(num_envs=4, **KW),
], ids=["GymWrapper", "GymEnv", "make_torchrl_env", "make_torchrl_env-vector"])
def test_check_env_specs(build):
    env = build()
    check_env_specs(env, seed=0)
    assert env.action_spec.space.n == 29  # token ids, not one-hot vectors (the census names: 26 + 3 specials)
    env.close()


def test_the_native_vector_env_needs_the_adapter():
    """torchrl refuses NEXT_STEP autoreset: the reason DisabledAutoresetVector exists."""
    with pytest.raises((RuntimeError, AttributeError)):
        GymWrapper(make_vector_env(4, **KW), categorical_action_encoding=True)


@pytest.mark.parametrize("num_envs", [None, 8])
def test_masked_random_rollouts_never_take_an_invalid_action(num_envs):
    env = make_torchrl_env(num_envs, **KW)
    env.set_seed(0)
    td = env.rollout(60, break_when_any_done=False)
    actions, masks = td["action"], td["action_mask"]  # (..., S), (..., S, V)
    assert masks.gather(-1, actions.unsqueeze(-1)).all()  # every action was in its step's mask
    assert (actions > 2).any() and not (actions < 2).any()  # symbols written; PAD/BOS never
    assert (td["next", "reward"] >= 0).all()  # no invalid_action_reward (-1): valid tokens are paid D(x) in [0, 1]
    assert td["next", "done"].sum() >= (num_envs or 1) * 4  # episodes (<= 12 tokens) ended and restarted


def test_unmasked_random_rollouts_do_take_invalid_actions():
    """The check above has teeth: without the mask, random tokens include PAD/BOS and end episodes at -1."""
    env = make_torchrl_env(8, action_mask=False, **KW)
    env.set_seed(0)
    td = env.rollout(30, break_when_any_done=False)
    assert (td["next", "reward"] == -1.0).any()


def _single_env_rewards(actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rewards and dones of one DiscriminatorReward env replaying ``actions`` (S,), resetting when done."""
    env = make_env(**KW)
    env.reset(seed=0)
    rewards, dones = [], []
    for a in actions:
        _, r, term, trunc, _ = env.step(int(a))
        rewards.append(r)
        dones.append(term or trunc)
        if term or trunc:
            env.reset()
    return np.array(rewards, dtype=np.float32), np.array(dones)


def test_vector_rewards_equal_single_envs_on_the_same_actions():
    env = make_torchrl_env(6, **KW)
    env.set_seed(1)
    td = env.rollout(40, break_when_any_done=False)
    actions = td["action"].numpy()  # (6, 40)
    rewards = td["next", "reward"].squeeze(-1).numpy()  # (6, 40)
    dones = td["next", "done"].squeeze(-1).numpy()
    assert dones.sum(1).min() >= 2  # every row restarted at least twice: the partial-reset path ran
    for i in range(6):
        r, d = _single_env_rewards(actions[i])
        np.testing.assert_array_equal(dones[i], d)
        np.testing.assert_allclose(rewards[i], r, atol=1e-5)


def test_resetting_a_running_row_goes_through_the_reward_wrapper():
    """A reset_mask with a row that did not end resets the wrappers too; its next rewards match a fresh env."""
    vec = DisabledAutoresetVector(make_vector_env(2, **KW))
    vec.reset(seed=0)
    a, b = [5, 6, 7, 8], [9, 10, 11, 12]
    vec.step(np.array([a[0], b[0]]))
    vec.step(np.array([a[1], b[1]]))
    vec.reset(options={"reset_mask": np.array([True, False])})  # row 0 restarts mid-episode, row 1 goes on
    got = [vec.step(np.array([a[k], b[k]]))[1] for k in (2, 3)]
    fresh = make_env(**KW)
    fresh.reset(seed=0)
    expect0 = [fresh.step(a[k])[1] for k in (2, 3)]
    fresh = make_env(**KW)
    fresh.reset(seed=0)
    expect1 = [fresh.step(x)[1] for x in b][2:]
    np.testing.assert_allclose([g[0] for g in got], expect0, atol=1e-5)
    np.testing.assert_allclose([g[1] for g in got], expect1, atol=1e-5)


def test_a_finished_row_must_be_reset_before_it_steps_again():
    vec = DisabledAutoresetVector(make_vector_env(2, **KW))
    _, info = vec.reset(seed=0)
    assert info["action_mask"].shape == (2, 29) and not info["action_mask"][:, :2].any()  # PAD, BOS never valid
    vec.step(np.array([3, 1]))  # row 1 writes BOS: a masked action ends its episode
    with pytest.raises(RuntimeError, match=r"sub-envs \[1\] ended and were not reset"):
        vec.step(np.array([3, 3]))
    vec.reset(options={"reset_mask": np.array([False, True])})
    vec.step(np.array([3, 3]))  # fine after the reset


def test_bad_arguments_are_named():
    with pytest.raises(TypeError, match="needs a TokenGenerationVectorEnv"):
        DisabledAutoresetVector(gym.vector.SyncVectorEnv([lambda: gym.make("CartPole-v1")]))
    vec = DisabledAutoresetVector(make_vector_env(2, **KW))
    with pytest.raises(ValueError, match=r"reset_mask'\] must be a bool array of shape \(2,\)"):
        vec.reset(options={"reset_mask": np.array([1, 0])})
    with pytest.raises(ValueError, match="not both"):
        make_torchrl_env(4, env=make_env(**KW))


def test_tensordict_reset_of_some_rows():
    """torchrl's own partial reset ("_reset") reaches the adapter as a reset_mask."""
    env = make_torchrl_env(3, **KW)
    td = env.reset()
    td["action"] = torch.tensor([3, 4, 5])
    td = env.step(td)["next"]
    assert (td["observation"][:, 0] == torch.tensor([3, 4, 5])).all()
    td.set("_reset", torch.tensor([[True], [False], [False]]))  # torchrl keeps the rows it does not reset from td
    td = env.reset(td)
    assert td["observation"][0].eq(0).all() and td["observation"][1, 0] == 4 and td["observation"][2, 0] == 5
    td["action"] = torch.tensor([6, 7, 8])
    obs = env.step(td)["next", "observation"]  # the env itself kept rows 1 and 2 running
    assert obs[:, :2].tolist() == [[6, 0], [4, 7], [5, 8]]


@pytest.mark.parametrize("vector", [False, True], ids=["GymWrapper", "make_torchrl_env-vector"])
def test_discriminator_cotrains_under_torchrl_with_no_callback(vector):
    if vector:
        inner = make_vector_env(8, seed=3, update_every=8)
        env, trainer = make_torchrl_env(env=inner), inner.trainer
    else:
        inner = gym.make("seqgan_env:SeqGAN-v1", seed=3, update_every=8)
        env, trainer = GymWrapper(inner, categorical_action_encoding=True), inner.get_wrapper_attr("trainer")
    before = {k: v.clone() for k, v in trainer.scorer.state_dict().items()}
    env.set_seed(0)
    env.rollout(120, break_when_any_done=False)
    assert trainer.num_phases >= 1 and trainer.finished_episodes >= 8
    assert any(not torch.equal(before[k], v) for k, v in trainer.scorer.state_dict().items())
    env.close()
