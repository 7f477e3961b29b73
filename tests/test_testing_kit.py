"""seqgan_env.testing: each check passes on the project's real pieces and fails, with a clear message, on broken ones."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

import seqgan_env.testing as kit
from seqgan_env import TokenGenerationEnv, TokenGenerationVectorEnv, make_env, make_vector_env
from seqgan_env.data.tokenizer import CharTokenizer
from seqgan_env.envs.spec import EOS_ID, PAD_ID
from seqgan_env.rewards.wrappers import DiscriminatorReward, DiscriminatorRewardVector, RewardConfig
from seqgan_env.testing import (CheckError, ScriptedDiscriminator, check_env, check_reward_source, check_tokenizer,
                                check_vector_env)

from .conftest import TINY

pytestmark = pytest.mark.usefixtures("one_torch_thread")
ROOT = Path(__file__).resolve().parent.parent
MODES = ["final", "per_step", "potential"]
TINY_D = dict(hidden_size=16, intermediate_size=32, num_heads=2, num_layers=1, max_position_embeddings=16)


@pytest.fixture(scope="module")
def data_file(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("kit") / "names.txt"
    path.write_text("abc\ncab\nba\nbb\nacab\n", encoding="utf-8")
    return str(path)


def test_public_api_is_exported_and_documented():
    for name in kit.__all__:
        obj = getattr(kit, name)
        if callable(obj) and not isinstance(obj, type(CheckError)):
            doc = obj.__doc__ or ""
            assert "Args:" in doc and "Returns:" in doc and "Raises:" in doc, name
    assert issubclass(CheckError, AssertionError)


# -- reward sources ----------------------------------------------------------------------------
def length_score(tokens, texts):
    return [float(len(t)) for t in texts]


def ends_in_eos(tokens, texts):
    return (tokens == EOS_ID).any(dim=1).float()  # a tensor, from the tokens


def _noisy():
    rng = np.random.default_rng()
    return lambda tokens, texts: rng.random(len(texts))


def _batch_mean(tokens, texts):
    x = np.array([len(t) for t in texts], dtype=float)
    return x - x.mean()  # depends on the other rows


@pytest.mark.parametrize("source", [length_score, ends_in_eos, "tests.test_reward_sources:text_length",
                                    "tests.test_reward_sources:ends_in_a", lambda tokens, texts: np.ones(len(texts))])
def test_reward_source_passes(source):
    scores = check_reward_source(source)
    assert scores.shape == (len(kit.SAMPLE_TEXTS),) and np.isfinite(scores).all()


def test_reward_source_with_the_envs_tokenizer(tokenizer):
    tokens = tokenizer.encode_batch(["abc", "ab", "c"], 3)
    assert check_reward_source(length_score, tokens, tokenizer=tokenizer).tolist() == [3.0, 2.0, 1.0]


@pytest.mark.parametrize(
    "source,match",
    [
        (lambda tokens, texts: [1.0] * (len(texts) + 1), r"returned \d+ scores for \d+ sequences"),
        (lambda tokens, texts: torch.ones(len(texts), 1), r"shape \(\d+, 1\).*squeeze"),
        (lambda tokens, texts: [math.nan] * len(texts), "non-finite score nan"),
        (lambda tokens, texts: [float("inf")] + [0.0] * (len(texts) - 1), "non-finite score inf"),
        (lambda tokens, texts: 1.0, "returned a float"),
        (lambda tokens, texts: None, "returned None.*return"),
        (lambda tokens, texts: ["good"] * len(texts), "not numbers"),
        (lambda tokens, texts: np.ones(len(texts), dtype=complex), "dtype complex"),
        (_noisy(), "not deterministic"),
        (_batch_mean, "alone"),
        (lambda tokens, texts: 1 / 0, "raised ZeroDivisionError"),
        ("discriminator", "built-in term"),
        ("nosuchmodule_xyz:f", "cannot import"),
    ],
    ids=["length", "column", "nan", "inf", "scalar", "none", "strings", "complex", "nondeterministic", "batch-mean",
         "raises", "reserved", "import"],
)
def test_reward_source_fails_clearly(source, match):
    with pytest.raises(CheckError, match=match) as err:
        check_reward_source(source)
    assert "fix:" in str(err.value) or "cannot" in str(err.value)


# -- tokenizers ---------------------------------------------------------------------------------
class _Delegate:
    def __init__(self, tok):
        self.tok = tok

    def __getattr__(self, name):
        return getattr(self.tok, name)


class DropsLastChar(_Delegate):
    def decode(self, ids):
        return self.tok.decode(ids)[:-1]


class PadsWithLastId(_Delegate):
    """Its PAD is the last id (as some tokenizers put specials at the end)."""

    pad_token_id = None

    def encode_batch(self, texts, max_length):
        rows = self.tok.encode_batch(texts, max_length)
        return rows.masked_fill(rows == PAD_ID, self.tok.vocab_size - 1)


class SaysPadIsFive(_Delegate):
    pad_token_id = 5


class AddsEos(_Delegate):
    def encode(self, text):
        return self.tok.encode(text) + [EOS_ID]


def test_tokenizer_passes_char(tokenizer):
    assert check_tokenizer(tokenizer)["texts"] == 5
    assert check_tokenizer(CharTokenizer.from_texts(["hello world"]), ["hello", "world", "low"], max_length=7)


def test_tokenizer_passes_trained_subword():
    pytest.importorskip("tokenizers")
    from seqgan_env.data.subword import train_tokenizer

    texts = ["the cat sat", "the dog sat", "a cat ran"] * 5
    tok = train_tokenizer("word", texts, vocab_size=30, min_frequency=1)
    out = check_tokenizer(tok, ["the cat sat", "a dog ran"])
    assert out["refused_specials"] == 3  # "<eos>" in a data line: the loader refuses it


@pytest.mark.parametrize(
    "broken,match",
    [
        (DropsLastChar, r"decode\(encode\('a'\)\) is ''"),
        (PadsWithLastId, r"slot \d+ holds 5 where the env expects PAD \(id 0\)"),
        (SaysPadIsFive, "pad_token_id is 5, but the env writes PAD as id 0"),
        (AddsEos, r"gave id 2 \(EOS\)"),
    ],
)
def test_tokenizer_fails_clearly(tokenizer, broken, match):
    with pytest.raises(CheckError, match=match) as err:
        check_tokenizer(broken(tokenizer))
    assert "fix:" in str(err.value)


# -- scripted discriminator -------------------------------------------------------------------------
def test_scripted_discriminator_is_a_prefix_scorer(tokenizer):
    d = ScriptedDiscriminator.count(3)
    x = torch.tensor([[3, 4, 3, EOS_ID], [5, 0, 0, 0]])
    assert d.score_logits(x).tolist() == [[0.0, 0.0, 1.0, 1.0], [-1.0, -1.0, -1.0, -1.0]]
    t = ScriptedDiscriminator.from_table({(3,): 2.0, (3, 4): -1.0}, default=0.5)
    assert t.score_logits(x).tolist() == [[2.0, -1.0, 0.5, 0.5], [0.5, 0.5, 0.5, 0.5]]
    metrics = d.update(x[:1], x[1:])
    assert d.num_updates == 1 and len(d.updates) == 1 and metrics["acc_real"] == 1.0 and metrics["acc_fake"] == 1.0
    d2 = ScriptedDiscriminator()
    d2.load_state_dict(d.state_dict())
    assert d2.num_updates == 1 and d2.loaded and (d2.score_logits(x) == 0).all()
    with pytest.raises(ValueError, match="shape"):
        ScriptedDiscriminator(lambda tokens: tokens[:, :1].float()).score_logits(x)


def test_co_trained_scripted_env_pays_the_same_every_run(tokenizer):
    real = tokenizer.encode_batch(["abc", "cab"], 4)
    d = ScriptedDiscriminator.count(3)
    env = DiscriminatorReward(TokenGenerationEnv(tokenizer=tokenizer, max_length=4), d, real_data=real,
                              mode="potential", update_every=1, update_batch_size=1, buffer_size=4)
    check_env(env)
    assert d.num_updates > 0  # the wrapper "trained" it during the check; the scores never moved


# -- single env ---------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
def test_made_env_passes(data_file, mode):
    env = make_env(data_path=data_file, max_length=6, reward_mode=mode, discriminator_model=TINY_D,
                   update_every=2, update_batch_size=2)  # co-training on: the checks stay exact
    stats = check_env(env)
    assert stats["checkers"] == ["gymnasium", "stable_baselines3"] and stats["episodes"] == 8


def test_gym_make_env_passes(data_file):
    check_env(gym.make("seqgan_env:SeqGAN-v1", data_path=data_file, max_length=6, discriminator_model=TINY_D))


class AddsBonus(gym.Wrapper):
    """Pays 0.1 more than its sources report."""

    def step(self, action):
        obs, r, te, tr, info = self.env.step(action)
        return obs, r + 0.1, te, tr, info


class ScalesLastStep(gym.Wrapper):
    """Doubles the discriminator's pay on the last step, and reports it: potential no longer telescopes."""

    def step(self, action):
        obs, r, te, tr, info = self.env.step(action)
        if te and "reward/discriminator" in info and not info.get("invalid_action"):
            r += info["reward/discriminator"]
            info["reward/discriminator"] *= 2
        return obs, r, te, tr, info


class EosDoesNotEnd(gym.Wrapper):
    """Reports EOS as not terminated."""

    def step(self, action):
        obs, r, te, tr, info = self.env.step(action)
        return obs, r, te and action != EOS_ID, tr, info


class MasksAllowPad(gym.Wrapper):
    def action_masks(self):
        m = self.env.unwrapped.action_masks().copy()
        m[PAD_ID] = True
        return m


class WritesTwice(gym.Wrapper):
    """Shows the token written twice in the observation."""

    def step(self, action):
        obs, r, te, tr, info = self.env.step(action)
        obs = obs.copy()
        n = int((obs != PAD_ID).sum())
        if 0 < n < len(obs):
            obs[n] = obs[n - 1]
        return obs, r, te, tr, info


class FinalPaysEarly(gym.Wrapper):
    """Mode 'final', but pays (and reports) 0.5 on every step."""

    def step(self, action):
        obs, r, te, tr, info = self.env.step(action)
        if not info.get("invalid_action"):
            r += 0.5
            info["reward/discriminator"] += 0.5
        return obs, r, te, tr, info


@pytest.mark.parametrize(
    "wrap,mode,recompute,match",
    [
        (AddsBonus, "per_step", None, "but its sources sum to"),
        (ScalesLastStep, "potential", None, "the discriminator part is 2.0, but .* give 1.0"),
        (ScalesLastStep, "potential", False, "must telescope"),  # without recomputing: the episode's sum
        (FinalPaysEarly, "final", None, "discriminator part is"),
        (FinalPaysEarly, "final", False, "only the last step pays"),
        (EosDoesNotEnd, "per_step", None, "terminated=False after (EOS|a masked action)"),
        (MasksAllowPad, "per_step", None, r"action_masks\(\) after 0 written tokens"),
        (WritesTwice, "per_step", None, "the token rule gives"),
    ],
)
def test_broken_env_wrapper_fails_clearly(tokenizer, wrap, mode, recompute, match):
    env = wrap(DiscriminatorReward(TokenGenerationEnv(tokenizer=tokenizer, max_length=5),
                                   ScriptedDiscriminator.count(3), RewardConfig(mode=mode, transform="logit")))
    with pytest.raises(CheckError, match=match) as err:
        check_env(env, gym_checker=False, sb3_checker=False, recompute_rewards=recompute)
    assert "fix:" in str(err.value)


# -- vector env ---------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
def test_made_vector_env_passes(data_file, mode):
    venv = make_vector_env(4, data_path=data_file, max_length=6, reward_mode=mode, discriminator_model=TINY_D,
                           update_every=2, update_batch_size=2)
    stats = check_vector_env(venv)
    assert stats["compared"] and stats["partial_reset"] == [0, 2] and stats["finished"] > 5
    assert stats["telescoped"] > 0


def test_raw_vector_env_passes(tokenizer):
    assert check_vector_env(TokenGenerationVectorEnv(3, tokenizer=tokenizer, max_length=5))["compared"]


class ResetsEverything(gym.vector.VectorWrapper):
    def reset(self, *, seed=None, options=None):
        return self.env.reset(seed=seed)  # drops the reset_mask


class BonusVector(gym.vector.VectorWrapper):
    def step(self, actions):
        obs, r, te, tr, info = self.env.step(actions)
        return obs, r + 0.1, te, tr, info


def _scripted_vector(tokenizer, mode="potential", **kw):
    return DiscriminatorRewardVector(TokenGenerationVectorEnv(4, tokenizer=tokenizer, max_length=5),
                                     ScriptedDiscriminator.count(3), RewardConfig(mode=mode), **kw)


def test_scripted_vector_env_passes(tokenizer):
    check_vector_env(_scripted_vector(tokenizer))


@pytest.mark.parametrize("wrap,match", [(ResetsEverything, r"it must keep its tokens"),
                                        (BonusVector, "but its sources sum to")])
def test_broken_vector_env_fails_clearly(tokenizer, wrap, match):
    with pytest.raises(CheckError, match=match) as err:
        check_vector_env(wrap(_scripted_vector(tokenizer)))
    assert "fix:" in str(err.value)


def test_vector_env_that_differs_from_single_fails(tokenizer):
    venv = _scripted_vector(tokenizer)
    other = ScriptedDiscriminator.count(4)  # the single envs are paid by another scorer
    fns = [lambda: DiscriminatorReward(TokenGenerationEnv(tokenizer=tokenizer, max_length=5), other,
                                       RewardConfig(mode="potential"))] * 4
    with pytest.raises(CheckError, match="vector reward .* != single"):
        check_vector_env(venv, single_env_fns=fns)


# -- the example ----------------------------------------------------------------------------------
def test_custom_reward_example_runs_under_pytest():
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          str(ROOT / "examples" / "test_custom_reward.py")],
                         capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert " passed" in out.stdout and "failed" not in out.stdout


def test_self_run_update_waits_for_a_complete_row():
    """Regression (found by check_env): update_every episodes all ended by masked actions left no fake row, and
    the due update raised instead of waiting."""
    from seqgan_env.rewards.d_trainer import DiscriminatorTrainer

    trainer = DiscriminatorTrainer(ScriptedDiscriminator(), torch.tensor([[3, EOS_ID, 0]]), update_every=2)
    cut_short = torch.tensor([[3, 0, 0]])  # no EOS, shorter than T: not a complete row
    assert not trainer.add_finished(cut_short) and not trainer.add_finished(cut_short)
    assert trainer.add_finished(torch.tensor([[3, 4, 5]])) is False  # 3rd episode: not a multiple of 2
    assert trainer.add_finished(torch.tensor([[4, EOS_ID, 0]]))  # 4th, with complete rows buffered: due
