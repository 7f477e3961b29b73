"""render_mode="rgb_array": fixed-shape legible frames, the checkers, and SB3's make_vec_env door."""

from __future__ import annotations

import string
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from gymnasium.wrappers import RenderCollection
from sb3_contrib import MaskablePPO
from sb3_contrib.common.maskable.utils import get_action_masks, is_masking_supported
from stable_baselines3 import A2C, DQN, PPO
from stable_baselines3.common.env_checker import check_env as sb3_check_env
from stable_baselines3.common.env_util import make_vec_env

from seqgan_env.envs.env import TokenGenerationEnv
from seqgan_env.envs.render import CHAR_WIDTH, FRAME_HEIGHT, MARGIN, text_frame
from seqgan_env.envs.spec import EOS_ID
from seqgan_env.envs.vector_env import TokenGenerationVectorEnv
from seqgan_env.integrations.sb3 import make_sb3_env

WHITE = 255


def _single(tokenizer, max_length):
    return TokenGenerationEnv(tokenizer=tokenizer, max_length=max_length, render_mode="rgb_array")


def _frames_after(env, actions):
    """Frames of ``env`` after reset and after each action."""
    env.reset(seed=0)
    frames = [env.render()]
    for a in actions:
        env.step(a)
        frames.append(env.render())
    return frames


# -- the frame itself -------------------------------------------------------------------------


@pytest.mark.parametrize("max_length", [1, 4, 12])
@pytest.mark.parametrize(
    "actions",
    [[], [3], [3, 4], [5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5], [4, EOS_ID]],
    ids=["empty", "a", "ab", "full", "b-eos"],
)
def test_single_env_frame_shape_is_fixed_by_max_length(tokenizer, max_length, actions):
    env = _single(tokenizer, max_length)
    expected = (FRAME_HEIGHT, 2 * MARGIN + CHAR_WIDTH * max_length, 3)  # one character per token
    for frame in _frames_after(env, actions[:max_length]):
        assert isinstance(frame, np.ndarray)
        assert frame.dtype == np.uint8
        assert frame.shape == expected


def test_frame_width_covers_numeric_ids_without_tokenizer():
    # No tokenizer: text is space-separated ids, at most 5 x "49" + 4 spaces = 14 characters.
    env = TokenGenerationEnv(vocab_size=50, max_length=5, render_mode="rgb_array")
    frames = _frames_after(env, [49, 49, 49, 49, 49])
    assert env.text == "49 49 49 49 49"
    assert {f.shape for f in frames} == {(FRAME_HEIGHT, 2 * MARGIN + CHAR_WIDTH * 14, 3)}


def test_different_texts_give_different_frames(tokenizer):
    ab = _frames_after(_single(tokenizer, 4), [3, 4])[-1]
    ba = _frames_after(_single(tokenizer, 4), [4, 3])[-1]
    empty = _frames_after(_single(tokenizer, 4), [])[-1]
    assert ab.shape == ba.shape == empty.shape
    assert not np.array_equal(ab, ba)
    assert not np.array_equal(ab, empty)


def test_empty_episode_is_a_blank_frame_of_the_same_shape(tokenizer):
    env = _single(tokenizer, 4)
    empty = _frames_after(env, [])[0]
    full = _frames_after(env, [3, 4, 5, 3])[-1]
    assert empty.shape == full.shape
    assert (empty == WHITE).all()
    assert (full < WHITE).any()  # the text is drawn


def test_every_glyph_fits_its_text_area_so_nothing_is_clipped():
    columns = 3
    for char in string.printable[:94] + "éÅÿ":  # every visible ASCII character and some Latin-1
        ink = text_frame(char * columns, columns) < WHITE  # (H, W, 3)
        cols = np.flatnonzero(ink.any(axis=(0, 2)))
        rows = np.flatnonzero(ink.any(axis=(1, 2)))
        assert cols.size > 0, char
        assert MARGIN <= cols.min() and cols.max() < MARGIN + CHAR_WIDTH * columns, char
        assert MARGIN <= rows.min() and rows.max() < FRAME_HEIGHT - 1, char


def test_undrawable_characters_are_question_marks_and_overlong_text_is_refused():
    assert np.array_equal(text_frame("€\n", 2), text_frame("??", 2))
    with pytest.raises(ValueError, match="columns=2"):
        text_frame("abc", 2)
    with pytest.raises(ValueError, match="columns=0"):
        text_frame("", 0)


# -- vector env: Gymnasium's convention, a tuple with one frame per sub-env ---------------------


def test_vector_env_frames_match_sync_vector_env(tokenizer):
    n, t = 3, 4
    native = TokenGenerationVectorEnv(n, tokenizer=tokenizer, max_length=t, render_mode="rgb_array")
    sync = gym.vector.SyncVectorEnv([lambda: _single(tokenizer, t) for _ in range(n)])
    native.reset(seed=0)
    sync.reset(seed=0)
    for actions in ([3, 4, 5], [4, EOS_ID, 3], [5, 3, 3]):
        a = np.array(actions)
        native.step(a)
        sync.step(a)
        got, want = native.render(), sync.render()
        assert isinstance(got, tuple) and len(got) == n
        for g, w in zip(got, want):
            assert g.dtype == np.uint8 and g.shape == w.shape
            assert np.array_equal(g, w)


def test_make_vec_native_passes_render_mode():
    venv = gym.make_vec("seqgan_env:SeqGAN-v1", num_envs=2, vectorization_mode="vector_entry_point", render_mode="rgb_array")
    assert venv.metadata["render_modes"] == ["ansi", "rgb_array"]
    venv.reset(seed=0)
    venv.step(np.array([3, 4]))
    frames = venv.render()
    assert len(frames) == 2 and frames[0].shape == frames[1].shape and frames[0].ndim == 3
    assert not np.array_equal(frames[0], frames[1])


def test_native_sb3_adapter_gives_images():
    venv = make_sb3_env(2, backend="native", render_mode="rgb_array")
    venv.reset()
    venv.step(np.array([3, 4]))
    images = venv.get_images()
    assert len(images) == 2 and all(im.dtype == np.uint8 and im.ndim == 3 for im in images)
    assert venv.render().ndim == 3  # SB3 tiles them


# -- checkers and wrappers --------------------------------------------------------------------


@pytest.mark.parametrize("checker", ["gymnasium", "sb3"])
@pytest.mark.parametrize("build", ["bare", "gym.make"])
def test_checkers_pass_with_rgb_array(tokenizer, checker, build):
    if build == "bare":
        env = TokenGenerationEnv(tokenizer=tokenizer, max_length=5, render_mode="rgb_array")
    else:
        env = gym.make("seqgan_env:SeqGAN-v1", render_mode="rgb_array")
    assert env.render_mode == "rgb_array"
    if checker == "gymnasium":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "env is wrapped" advice for gym.make's env
            gym_check_env(env, skip_render_check=False)
    else:
        sb3_check_env(env, warn=True, skip_render_check=False)


def test_render_collection_collects_frames_of_one_shape():
    env = RenderCollection(gym.make("seqgan_env:SeqGAN-v1", render_mode="rgb_array"))
    env.reset(seed=0)
    for a in (3, 4, 5):
        env.step(a)
    frames = env.render()
    assert len(frames) == 4  # reset + 3 steps
    assert len({f.shape for f in frames}) == 1 and all(f.dtype == np.uint8 for f in frames)


# -- the public door: SB3's make_vec_env, then each algorithm learns ------------------------------

TINY_NET = dict(net_arch=[16])
ALGOS = {
    "PPO": lambda venv: PPO("MlpPolicy", venv, n_steps=32, batch_size=64, n_epochs=1, policy_kwargs=TINY_NET, seed=0),
    "A2C": lambda venv: A2C("MlpPolicy", venv, n_steps=8, policy_kwargs=TINY_NET, seed=0),
    "DQN": lambda venv: DQN(
        "MlpPolicy", venv, buffer_size=1000, learning_starts=64, train_freq=4, batch_size=32,
        policy_kwargs=TINY_NET, seed=0,
    ),
    "MaskablePPO": lambda venv: MaskablePPO(
        "MlpPolicy", venv, n_steps=32, batch_size=64, n_epochs=1, policy_kwargs=TINY_NET, seed=0
    ),
}


@pytest.mark.parametrize("algo", sorted(ALGOS))
def test_make_vec_env_then_learn(algo):
    venv = make_vec_env("seqgan_env:SeqGAN-v1", n_envs=4)
    assert venv.render_mode == "rgb_array"
    venv.reset()
    assert venv.render().dtype == np.uint8  # the 4 frames tiled by SB3
    if algo == "MaskablePPO":
        assert is_masking_supported(venv)  # found through Monitor and the reward wrapper
        masks = get_action_masks(venv)
        vocab_size = venv.action_space.n
        assert masks.shape == (4, vocab_size) and masks.dtype == bool
        assert not masks[:, :EOS_ID + 1].any()  # PAD, BOS, and EOS before min_length are masked
    model = ALGOS[algo](venv)
    model.learn(256)
    assert model.num_timesteps >= 256
