"""Factories behind ``gymnasium.make("seqgan_env:SeqGAN-v1")`` and ``make_vec``.

Each builds a complete environment: the real data (the embedded census first
names unless ``data_path`` is given: a file, or ``coco``), the tokenizer built from it
(one id per character, or ``tokenizer``: ``bpe`` | ``unigram`` | ``word`` trained on the
file, a tokenizer.json / tokenizer directory, or a tokenizer object), a freshly
initialised discriminator (seeded by ``seed``) and the token-generation env
wrapped in the discriminator reward. ``reward_sources``: the weighted reward sources (a spec
string such as ``"discriminator=1.0,mypkg.rewards:brevity=0.1"``, or a list of RewardSource /
spec items / callables; see ``seqgan_env.rewards.sources``); None: the discriminator alone.
"""

from __future__ import annotations

import weakref
from dataclasses import fields, replace
from typing import Any

import torch

from seqgan_env.data.subword import TRAINED_KINDS, TokenizerConfig, build_tokenizer
from seqgan_env.data.text import DEFAULT_DATA_PATH, NAMED_DATA, load_dataset, load_texts
from seqgan_env.envs.env import TokenGenerationEnv
from seqgan_env.envs.spec import EnvConfig
from seqgan_env.envs.vector_env import TokenGenerationVectorEnv
from seqgan_env.models.discriminator import Discriminator, DiscriminatorConfig
from seqgan_env.models.networks import ModelConfig
from seqgan_env.rewards.d_trainer import DiscriminatorTrainer
from seqgan_env.rewards.wrappers import DiscriminatorReward, DiscriminatorRewardVector, RewardConfig


def _as_config(cls, value: Any, name: str):
    if value is None:
        return cls()
    if isinstance(value, cls):
        return value
    if isinstance(value, dict):
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(value) - known)
        if unknown:
            raise ValueError(f"{name} has unknown keys {unknown}: valid keys are {sorted(known)}.")
        return cls(**value)
    raise ValueError(f"{name} must be a {cls.__name__} or a dict, got {type(value).__name__}.")


def _tokenizer(tokenizer: Any, data_path) -> Any:
    """None (characters), a tokenizer object as given, or one built from a kind name / a path."""
    if tokenizer is None or hasattr(tokenizer, "encode_batch"):
        return tokenizer
    if not isinstance(tokenizer, str):
        raise ValueError(f"tokenizer must be None, a kind ({list(TRAINED_KINDS)}), a path or a tokenizer object, got "
                         f"{type(tokenizer).__name__}.")
    cfg = TokenizerConfig(kind=tokenizer) if tokenizer in TRAINED_KINDS else TokenizerConfig(kind="file", path=tokenizer)
    texts = load_texts(data_path, None, check_length=False) if cfg.kind != "file" else []
    return build_tokenizer(cfg, texts)


def _components(data_path, max_length, allow_eos, valid_fraction, seed, discriminator_model, discriminator_config,
                device, tokenizer=None):
    """The data set and a fresh discriminator; with ``max_length`` None the data decides the length.

    A length chosen by the data also raises the discriminator's position table to fit it
    (max_length + 1 positions, BOS included); an explicit one is checked, not changed.
    """
    data_path = data_path or DEFAULT_DATA_PATH
    if data_path in NAMED_DATA:
        data_path = NAMED_DATA[data_path][0]
    dataset = load_dataset(
        data_path, max_length=max_length, valid_fraction=valid_fraction, seed=seed,
        allow_eos=allow_eos, tokenizer=_tokenizer(tokenizer, data_path),
    )
    model_config = _as_config(ModelConfig, discriminator_model, "discriminator_model")
    if max_length is None and model_config.max_position_embeddings < dataset.max_length + 1:
        model_config = replace(model_config, max_position_embeddings=dataset.max_length + 1)
    disc = Discriminator(
        dataset.tokenizer.vocab_size,
        model_config=model_config,
        config=_as_config(DiscriminatorConfig, discriminator_config, "discriminator_config"),
        device=device,
        seed=seed,
    )
    return dataset, disc


class _Group:
    """What the envs of one discriminator group share: the data set and D's trainer (D inside)."""

    def __init__(self, dataset: Any, trainer: DiscriminatorTrainer) -> None:
        self.dataset, self.trainer = dataset, trainer


# Live groups of this process, keyed by every argument that shapes the data or D; an entry goes when
# the last env holding its group is collected.
_GROUPS: weakref.WeakValueDictionary[tuple, _Group] = weakref.WeakValueDictionary()


def _group_key(reward: RewardConfig, data_path, max_length, allow_eos, valid_fraction, seed, discriminator_model,
               discriminator_config, device, tokenizer) -> tuple:
    tok = tokenizer if tokenizer is None or isinstance(tokenizer, str) else ("object", id(tokenizer))
    d_schedule = (reward.update_every, reward.update_batch_size, reward.buffer_size, reward.update_steps,
                  reward.update_until_accuracy, reward.update_max_steps)
    return (str(data_path or DEFAULT_DATA_PATH), max_length, allow_eos, valid_fraction, seed,
            repr(discriminator_model), repr(discriminator_config), str(torch.device(device)), tok, d_schedule)


def _shared_components(share: bool, reward: RewardConfig, data_path, max_length, allow_eos, valid_fraction, seed,
                       discriminator_model, discriminator_config, device, tokenizer) -> _Group:
    """The data set and D's trainer: the live group's when ``share`` and one has the same arguments, else new."""
    if not isinstance(share, bool):
        raise ValueError(f"share_discriminator={share!r} is invalid: it must be True (envs made with the same "
                         f"arguments in this process score with one discriminator) or False (a fresh one).")
    key = _group_key(reward, data_path, max_length, allow_eos, valid_fraction, seed, discriminator_model,
                     discriminator_config, device, tokenizer)
    group = _GROUPS.get(key) if share else None
    if group is None:
        dataset, disc = _components(data_path, max_length, allow_eos, valid_fraction, seed, discriminator_model,
                                    discriminator_config, device, tokenizer)
        group = _Group(dataset, reward.make_trainer(disc, dataset.train.to(device), seed))
        if share:
            _GROUPS[key] = group
    return group


def make_env(
    data_path: str | None = None,
    max_length: int | None = None,
    min_length: int = EnvConfig.min_length,
    allow_eos: bool = EnvConfig.allow_eos,
    invalid_action_reward: float = EnvConfig.invalid_action_reward,
    reward_mode: str = RewardConfig.mode,
    reward_transform: str = RewardConfig.transform,
    potential_baseline: float = RewardConfig.potential_baseline,
    update_every: int | None = RewardConfig.update_every,
    update_batch_size: int = RewardConfig.update_batch_size,
    update_steps: int = RewardConfig.update_steps,
    update_until_accuracy: float | None = RewardConfig.update_until_accuracy,
    update_max_steps: int = RewardConfig.update_max_steps,
    valid_fraction: float = 0.1,
    discriminator_model: ModelConfig | dict | None = None,
    discriminator_config: DiscriminatorConfig | dict | None = None,
    seed: int = 0,
    render_mode: str | None = None,
    tokenizer: Any = None,
    reward_sources: Any = None,
    share_discriminator: bool = True,
) -> DiscriminatorReward:
    """The environment behind ``gymnasium.make("seqgan_env:SeqGAN-v1")``: one episode writes one sequence.

    Spec sheet: observation (max_length,) int64 token ids, BOS first, right-padded with PAD=0;
    action Discrete(vocab_size), one token per step (``action_masks()`` marks the valid ones: no
    PAD/BOS, no EOS before ``min_length``); a masked action pays ``invalid_action_reward`` and ends
    the episode; EOS or the last slot ends it. A valid step pays the discriminator's score of the
    prefix (``reward_mode``/``reward_transform``, see ``seqgan_env.rewards.modes``) plus any other
    ``reward_sources``. The discriminator co-trains on the complete episodes the env sees
    (``update_every``) and is shared by the envs of this process made with the same arguments.
    Version history: ``seqgan_env.envs.versions``.

    Args:
        data_path: real data, one sequence per line; None: the embedded census first names;
            ``"coco"``: the shipped COCO captions.
        max_length: token slots per episode; None: what the data needs (its longest line, plus
            one slot for EOS when ``allow_eos``). A length shorter than a line raises ``DataError``.
        min_length: fewest symbols before EOS is valid.
        allow_eos: whether episodes may end early with EOS.
        invalid_action_reward: reward of a masked action (which ends the episode).
        reward_mode: ``potential`` (default: the change in D's probability; no length bias),
            ``per_step`` (D's score of every prefix) or ``final`` (D's score of the whole sequence).
        reward_transform: ``prob`` | ``centered`` | ``log`` | ``logit``.
        potential_baseline: s_{-1} of ``potential``.
        update_every: finished episodes between D phases; None: D stays fixed unless you call
            ``update_discriminator()`` (or a callback does).
        update_batch_size: real and generated sequences per D update.
        update_steps: D updates per phase.
        update_until_accuracy: keep updating after ``update_steps`` until D's batch accuracy
            reaches this (at most ``update_max_steps``); None: off.
        update_max_steps: cap on D updates per phase.
        valid_fraction: share of the data held out of D's real rows (``env.dataset.valid``).
        discriminator_model: ``ModelConfig`` (or dict) of D's network.
        discriminator_config: ``DiscriminatorConfig`` (or dict) of D's training.
        seed: seeds the data split, D's initial weights and its real-row draws.
        render_mode: ``"ansi"`` or ``"rgb_array"``.
        tokenizer: None (one id per character), ``"bpe"`` | ``"unigram"`` | ``"word"`` (trained on
            the data file), a tokenizer.json / tokenizer directory, or a tokenizer object.
        reward_sources: weighted reward sources, a spec string such as
            ``"discriminator=1.0,mypkg.rewards:brevity=0.1"`` or a list of ``RewardSource`` /
            spec items / callables (see ``seqgan_env.rewards.sources``); None: D alone.
        share_discriminator: True: envs made in this process with the same data, model, seed
            and D schedule arguments score with one discriminator and train it on all their
            episodes (the sub-envs of SB3's ``DummyVecEnv``); False: a private one.

    Returns:
        A ``DiscriminatorReward`` around a ``TokenGenerationEnv``; ``.discriminator``,
        ``.trainer`` (D's trainer: ``last_metrics``, ``num_phases``) and ``.dataset`` (the
        ``TextDataset``: ``train`` rows D learns from, ``valid`` rows it never sees).

    Raises:
        ValueError: an argument out of range, naming the value and the fix.
        DataError: the data cannot be read or does not fit ``max_length``.
    """
    reward = RewardConfig(reward_mode, reward_transform, potential_baseline, update_every, update_batch_size,
                          update_steps=update_steps, update_until_accuracy=update_until_accuracy,
                          update_max_steps=update_max_steps)
    group = _shared_components(
        share_discriminator, reward, data_path, max_length, allow_eos, valid_fraction, seed, discriminator_model,
        discriminator_config, "cpu", tokenizer,
    )
    dataset, trainer = group.dataset, group.trainer
    env = TokenGenerationEnv(
        tokenizer=dataset.tokenizer,
        max_length=dataset.max_length,
        min_length=min_length,
        allow_eos=allow_eos,
        invalid_action_reward=invalid_action_reward,
        render_mode=render_mode,
    )
    wrapper = DiscriminatorReward(env, trainer.scorer, reward, real_data=dataset.train, seed=seed,
                                  sources=reward_sources, trainer=trainer)
    wrapper._discriminator_group = group  # keeps the group alive while this env is
    wrapper.dataset = dataset
    return wrapper


def make_vector_env(
    num_envs: int,
    data_path: str | None = None,
    max_length: int | None = None,
    min_length: int = EnvConfig.min_length,
    allow_eos: bool = EnvConfig.allow_eos,
    invalid_action_reward: float = EnvConfig.invalid_action_reward,
    reward_mode: str = RewardConfig.mode,
    reward_transform: str = RewardConfig.transform,
    potential_baseline: float = RewardConfig.potential_baseline,
    update_every: int | None = RewardConfig.update_every,
    update_batch_size: int = RewardConfig.update_batch_size,
    update_steps: int = RewardConfig.update_steps,
    update_until_accuracy: float | None = RewardConfig.update_until_accuracy,
    update_max_steps: int = RewardConfig.update_max_steps,
    valid_fraction: float = 0.1,
    discriminator_model: ModelConfig | dict | None = None,
    discriminator_config: DiscriminatorConfig | dict | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
    return_torch: bool = False,
    decode_text: bool = True,
    render_mode: str | None = None,
    tokenizer: Any = None,
    reward_sources: Any = None,
    share_discriminator: bool = True,
) -> DiscriminatorRewardVector:
    """The natively batched environment behind ``gymnasium.make_vec("seqgan_env:SeqGAN-v1", ...)``.

    ``num_envs`` sub-envs stepped together, with one discriminator pass per step for all of
    them (a KV cache scores only the new token); Gymnasium's next-step autoreset;
    ``reset(options={"reset_mask": mask})`` restarts only some rows. Every other argument is
    ``make_env``'s.

    Args:
        num_envs: sub-envs (>= 1).
        device: where tokens and D live (``"cpu"`` or a CUDA device).
        return_torch: return observations and rewards as tensors on ``device``.
        decode_text: put each finished row's text in ``info["text"]``.

    Returns:
        A ``DiscriminatorRewardVector`` around a ``TokenGenerationVectorEnv``, with
        ``.discriminator``, ``.trainer`` and ``.dataset`` as ``make_env``'s.

    Raises:
        ValueError, DataError: as ``make_env``.
    """
    reward = RewardConfig(reward_mode, reward_transform, potential_baseline, update_every, update_batch_size,
                          update_steps=update_steps, update_until_accuracy=update_until_accuracy,
                          update_max_steps=update_max_steps)
    group = _shared_components(
        share_discriminator, reward, data_path, max_length, allow_eos, valid_fraction, seed, discriminator_model,
        discriminator_config, device, tokenizer,
    )
    dataset, trainer = group.dataset, group.trainer
    env = TokenGenerationVectorEnv(
        num_envs,
        tokenizer=dataset.tokenizer,
        max_length=dataset.max_length,
        min_length=min_length,
        allow_eos=allow_eos,
        invalid_action_reward=invalid_action_reward,
        device=device,
        return_torch=return_torch,
        decode_text=decode_text,
        render_mode=render_mode,
    )
    wrapper = DiscriminatorRewardVector(env, trainer.scorer, reward, real_data=trainer.real_data, seed=seed,
                                        sources=reward_sources, trainer=trainer)
    wrapper._discriminator_group = group  # keeps the group alive while this env is
    wrapper.dataset = dataset
    return wrapper
