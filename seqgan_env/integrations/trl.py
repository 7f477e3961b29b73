"""TRL integration: the co-trained discriminator as a TRL reward function, and its D-update callback.

A TRL user gets SeqGAN-style adversarial rewards on any Hugging Face causal LM:

* :class:`DiscriminatorRewardFunction` -- a ``reward_funcs`` callable for TRL's
  ``GRPOTrainer`` / ``RLOOTrainer``: the reward of a completion is the discriminator's
  realness score of it (a :mod:`seqgan_env.rewards.modes` transform of the logit at its
  last token). It keeps the newest scored completions as the discriminator's fakes.
* :class:`DiscriminatorTrainerCallback` -- a ``transformers.TrainerCallback`` that trains
  the discriminator every ``every`` optimizer steps on those fresh completions against
  real text, on the schedule of :class:`~seqgan_env.rewards.callbacks.DiscriminatorUpdateCallback`
  (the one the REINFORCE loop and SB3 use), and saves it beside each Trainer checkpoint.
* :func:`build_discriminator` (a fresh discriminator over a tokenizer's vocabulary) and
  :func:`make_adversarial_trainer` (all of the above plus a prompt dataset and the TRL
  trainer in one call).

Only :func:`make_adversarial_trainer` and :func:`prompt_dataset` import ``trl`` /
``datasets``, lazily: the reward function and the callback need only ``transformers``.
Install the extra with ``pip install 'seqgan-env[trl]'``.

Example::

    from trl import GRPOConfig
    from seqgan_env.integrations.trl import make_adversarial_trainer

    args = GRPOConfig(output_dir="out", max_steps=200, per_device_train_batch_size=16, num_generations=8,
                      max_completion_length=16)
    trainer = make_adversarial_trainer("my-model-dir", tokenizer, real_texts, args)
    trainer.train()

The discriminator's token space
-------------------------------
The discriminator keeps the project's one token contract (PAD=0, BOS=1, EOS=2, rows
right-padded with PAD), so every discriminator tool of the library works on it: id ``i``
of the Hugging Face tokenizer is id ``i + 3`` of the discriminator (:data:`ID_OFFSET`),
and a finished sequence ends with EOS=2. Real and fake rows are built by one function
(:meth:`DiscriminatorRewardFunction.rows`), with one length rule, so the discriminator
can only win on content:

* real text: ``tokenizer(text, add_special_tokens=False)`` ids, finished;
* completion: TRL's ``completion_ids`` (cut after the first EOS, EOS included), finished
  when it ends with an EOS id, unfinished when it ran out of ``max_completion_length``;
* a finished row of ``n < max_length`` tokens gets EOS; otherwise the first
  ``max_length`` tokens and no EOS (as the env: a sequence that fills ``max_length``
  ends without EOS).

The discriminator judges completions alone; prompts are not shown to it (SeqGAN's
unconditional setting: the prompt is usually just BOS).
"""

from __future__ import annotations

import copy
import dataclasses
import os
from collections.abc import Callable, Sequence
from typing import Any

import torch
import transformers
from transformers import TrainerCallback

from seqgan_env.data.tokenizer import EOS_ID, PAD_ID
from seqgan_env.models.discriminator import Discriminator, DiscriminatorConfig
from seqgan_env.models.networks import ModelConfig, last_token_index
from seqgan_env.rewards.callbacks import DiscriminatorUpdateCallback, DiscriminatorUpdateConfig
from seqgan_env.rewards.d_trainer import DiscriminatorTrainer
from seqgan_env.rewards.modes import get_transform
from seqgan_env.utils.atomic import atomic_write_json
from seqgan_env.utils.codec import read_json
from seqgan_env.utils.validation import check_int

__all__ = [
    "ID_OFFSET",
    "DiscriminatorRewardFunction",
    "DiscriminatorTrainerCallback",
    "build_discriminator",
    "make_adversarial_trainer",
    "prompt_dataset",
]

ID_OFFSET = 3  # tokenizer id i -> discriminator id i + 3; ids 0, 1, 2 stay PAD, BOS, EOS
INSTALL_HINT = "pip install 'seqgan-env[trl]'"
CHECKPOINT_SUBDIR = "seqgan_discriminator"  # inside each Trainer checkpoint-<step>/ directory
CALLBACK_STATE_FILE = "callback_state.json"


def _require(module: str):
    """Import ``trl`` or ``datasets`` or raise ImportError naming the extra that provides it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(f"seqgan_env.integrations.trl needs the '{module}' package ({e}); install the extra: "
                          f"{INSTALL_HINT}") from e


def _tokenizer_size(tokenizer: Any) -> int:
    if isinstance(tokenizer, (str, bytes, os.PathLike)):  # len("gpt2") would be taken for a vocabulary size
        raise TypeError(f"tokenizer={tokenizer!r} is a {type(tokenizer).__name__}, not a tokenizer; fix: load it "
                        f"first, e.g. transformers.AutoTokenizer.from_pretrained(local_dir, local_files_only=True).")
    try:
        return len(tokenizer)
    except TypeError:
        raise TypeError(f"tokenizer must be a Hugging Face tokenizer (len(tokenizer) = its vocabulary size), got "
                        f"{type(tokenizer).__name__}.") from None


def _is_token_id(x: Any) -> bool:
    """An integer token id: a Python or NumPy int, or a 0-d integer tensor (never a float or a bool)."""
    if torch.is_tensor(x):
        return x.ndim == 0 and not x.is_floating_point() and not x.is_complex() and x.dtype != torch.bool
    import numpy as np

    return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))


def _local_model_dir(model: str | os.PathLike) -> str:
    """``model`` as a str if it is a local model directory; never a Hub name (this package stays local-only)."""
    path = os.fspath(model)
    fix = ("fix: pass a local directory written by save_pretrained (config.json, weights, tokenizer), or the "
           "loaded model; nothing is downloaded")
    if not os.path.exists(path):
        raise ValueError(f"model={path!r} is not a local directory (it does not exist; a Hugging Face Hub name is "
                         f"not fetched); {fix}.")
    if not os.path.isdir(path):
        raise ValueError(f"model={path!r} is not a directory; {fix}.")
    if not os.path.isfile(os.path.join(path, "config.json")):
        raise ValueError(f"model={path!r} has no config.json; {fix}.")
    return path


def build_discriminator(tokenizer: Any, max_length: int, model_config: ModelConfig | None = None,
                        config: DiscriminatorConfig | None = None, vocab_size: int | None = None,
                        seed: int = 0, device: str | torch.device = "cpu") -> Discriminator:
    """A freshly initialised discriminator over ``tokenizer``'s ids (shifted by :data:`ID_OFFSET`).

    ``vocab_size``: the generator's vocabulary when it is larger than ``len(tokenizer)``
    (models often pad their embedding matrix); default ``len(tokenizer)``.
    ``max_length``: the longest row it will score; its position table is raised to fit.
    """
    check_int("max_length", max_length, 1, "pass the trainer's max_completion_length")
    n = _tokenizer_size(tokenizer) if vocab_size is None else vocab_size
    check_int("vocab_size", n, 1, "pass model.config.vocab_size or leave it None for len(tokenizer)")
    model_config = model_config if model_config is not None else ModelConfig()
    if model_config.max_position_embeddings < max_length:
        model_config = dataclasses.replace(model_config, max_position_embeddings=max_length)
    return Discriminator(n + ID_OFFSET, model_config=model_config, config=config, device=device, seed=seed)


class DiscriminatorRewardFunction:
    """A TRL ``reward_funcs`` callable paid by a co-trained discriminator (see the module docstring).

    ## Call contract (TRL's custom reward functions)
    ``reward(prompts, completions, completion_ids, **kwargs) -> list[float]``, one reward
    per completion: ``transform(logit)`` of D's realness logit at the row's last token
    (``transform`` ``prob`` gives D(x), SeqGAN's reward; also ``centered``, ``log``,
    ``logit``). Extra keyword arguments (dataset columns, ``trainer_state``) are ignored,
    except ``log_metric``: the metrics of the latest D phase are logged through it
    (``discriminator/loss``, ``discriminator/acc_real``, ...), so they show in the
    trainer's logs. Completions longer than ``max_length`` are scored on their first
    ``max_length`` tokens.

    ## Fakes and D updates
    Real rows, fakes and the update are the library's
    :class:`~seqgan_env.rewards.d_trainer.DiscriminatorTrainer` (``self.trainer``, as in
    the env's reward wrappers): every scored completion of the real rows' shape (ending
    in EOS or filling ``max_length``: ``complete_rows``) is kept, the newest
    ``buffer_size``; :meth:`sample_fake` returns the newest ``n`` (repeated if fewer
    were kept, as the SB3 callback does); :meth:`update_discriminator` pairs fakes with
    as many real rows drawn uniformly (``seed``) and takes one D optimizer step.

    ## Arguments
    ``discriminator``: a :class:`Discriminator` whose ``vocab_size`` covers the
    generator's ids + :data:`ID_OFFSET` (:func:`build_discriminator`); ``tokenizer``: the
    generator's Hugging Face tokenizer (it encodes the real texts); ``real_texts``:
    non-empty strings; ``max_length``: row width, at most D's position table;
    ``eos_token_ids``: ids that finish a completion (default the tokenizer's EOS).
    """

    __name__ = "discriminator"  # TRL names the reward by it: rewards/discriminator/mean

    def __init__(self, discriminator: Discriminator, tokenizer: Any, real_texts: Sequence[str], max_length: int,
                 transform: str = "prob", eos_token_ids: Sequence[int] | None = None, buffer_size: int = 1024,
                 seed: int = 0) -> None:
        if not isinstance(discriminator, Discriminator):
            raise TypeError(f"discriminator must be a seqgan_env Discriminator (build_discriminator(tokenizer, ...)), "
                            f"got {type(discriminator).__name__}.")
        check_int("max_length", max_length, 1, "pass the trainer's max_completion_length")
        if isinstance(tokenizer, (str, bytes, os.PathLike)):  # a name or a path is not a tokenizer
            _tokenizer_size(tokenizer)
        positions = discriminator.model_config.max_position_embeddings
        if max_length > positions:
            raise ValueError(f"max_length={max_length} exceeds the discriminator's max_position_embeddings="
                             f"{positions}; build it with build_discriminator(tokenizer, max_length={max_length}) "
                             f"or lower max_length.")
        check_int("buffer_size", buffer_size, 1, "keep e.g. the newest 1024 completions")
        self.transform_name = transform
        self._transform = get_transform(transform)
        self._discriminator = discriminator
        self.tokenizer = tokenizer
        self.max_length = max_length
        if eos_token_ids is None:
            eos = getattr(tokenizer, "eos_token_id", None)
            if eos is None:
                raise ValueError("the tokenizer has no eos_token_id, so a finished completion cannot be told from a "
                                 "truncated one; pass eos_token_ids=[...] (the ids that end a completion).")
            eos_token_ids = [eos]
        self.eos_token_ids = frozenset(int(i) for i in eos_token_ids)
        self.real = self._encode_real(real_texts)  # (N, T)
        self.trainer = DiscriminatorTrainer(discriminator, self.real, buffer_size=buffer_size, seed=seed)
        self.pending_metrics: dict[str, float] = {}

    @property
    def discriminator(self) -> Discriminator:
        """The discriminator that pays the rewards and trains (also ``self.trainer.scorer``)."""
        return self._discriminator

    @discriminator.setter
    def discriminator(self, value: Discriminator) -> None:
        self._discriminator = self.trainer.scorer = value

    @property
    def fakes(self):
        """The kept fake rows, newest last (a deque of (T,) tensors)."""
        return self.trainer.fake_buffer

    # -- rows ------------------------------------------------------------------------------------
    def rows(self, id_lists: Sequence[Sequence[int]], finished: Sequence[bool]) -> torch.Tensor:
        """Discriminator rows (N, max_length) long from tokenizer ids: the one rule for real and fake rows.

        Ids are shifted by :data:`ID_OFFSET`; a finished sequence of fewer than
        ``max_length`` tokens gets EOS; rows are right-padded with PAD.
        """
        t = self.max_length
        limit = self.discriminator.vocab_size - ID_OFFSET
        out = torch.full((len(id_lists), t), PAD_ID, dtype=torch.long)  # (N, T)
        for i, (ids, done) in enumerate(zip(id_lists, finished)):
            not_int = next((x for x in ids if not _is_token_id(x)), None)
            if not_int is not None:
                raise TypeError(f"token id {not_int!r} (row {i}) is a {type(not_int).__name__}, not an integer; fix: "
                                f"pass integer ids (TRL's completion_ids, or tensor.long().tolist()).")
            body = [int(x) for x in ids[:t]]
            bad = [x for x in body if not 0 <= x < limit]
            if bad:
                raise ValueError(f"token id {bad[0]} (row {i}) is outside the discriminator's vocabulary of {limit} "
                                 f"tokenizer ids; build it with build_discriminator(tokenizer, ..., "
                                 f"vocab_size=model.config.vocab_size).")
            if body:
                out[i, : len(body)] = torch.tensor(body) + ID_OFFSET
            if done and len(ids) < t:
                out[i, len(ids)] = EOS_ID
        return out

    def _encode_real(self, texts: Sequence[str]) -> torch.Tensor:
        if isinstance(texts, str) or not isinstance(texts, Sequence) or len(texts) == 0:
            raise ValueError(f"real_texts must be a non-empty list of strings, got {type(texts).__name__}"
                             f"{' of length 0' if isinstance(texts, Sequence) and not isinstance(texts, str) else ''}; "
                             f"pass e.g. seqgan_env.data.text.load_texts(path, max_length=None).")
        for i, text in enumerate(texts):
            if not isinstance(text, str) or not text:
                raise ValueError(f"real_texts[{i}] = {text!r} is not a non-empty string; remove it from the list.")
        ids = self.tokenizer(list(texts), add_special_tokens=False)["input_ids"]
        return self.rows(ids, [True] * len(ids))

    def completion_rows(self, completion_ids: Sequence[Sequence[int]]) -> torch.Tensor:
        """Rows (N, max_length) of TRL completions; one that ends with an EOS id is finished (EOS stripped)."""
        bodies, finished = [], []
        for i, ids in enumerate(completion_ids):
            ids = list(ids)
            if not ids:
                raise ValueError(f"completion_ids[{i}] is empty: a completion needs at least one token "
                                 f"(check max_completion_length >= 1).")
            if not _is_token_id(ids[-1]):
                raise TypeError(f"token id {ids[-1]!r} (row {i}) is a {type(ids[-1]).__name__}, not an integer; fix: "
                                f"pass integer ids (TRL's completion_ids, or tensor.long().tolist()).")
            done = int(ids[-1]) in self.eos_token_ids
            bodies.append(ids[:-1] if done else ids)
            finished.append(done)
        return self.rows(bodies, finished)

    def generated_rows(self, sequences: torch.Tensor, prompt_length: int) -> torch.Tensor:
        """Rows (N, max_length) of ``model.generate`` output (N, prompt_length + new), cut as TRL cuts.

        The completion is what follows the prompt, up to and including its first EOS id
        (the padding ``generate`` adds after it is dropped): use it to pretrain D on the
        starting generator's samples before the TRL run.
        """
        check_int("prompt_length", prompt_length, 0)
        completions = []
        for row in torch.as_tensor(sequences)[:, prompt_length:].tolist():
            end = next((i for i, x in enumerate(row) if x in self.eos_token_ids), len(row) - 1)
            completions.append(row[: end + 1])
        return self.completion_rows(completions)

    # -- scoring -----------------------------------------------------------------------------------
    def score_rows(self, rows: torch.Tensor) -> torch.Tensor:
        """Rewards (N,) float of discriminator rows: the transform of the logit at each row's last token."""
        logits = self.discriminator.score_logits(rows)  # (N, T)
        last = last_token_index(rows.to(logits.device))  # (N,)
        return self._transform(logits.gather(1, last[:, None]).squeeze(1)).cpu()  # (N,)

    def __call__(self, prompts: Sequence[Any] | None = None, completions: Sequence[Any] | None = None,
                 completion_ids: Sequence[Sequence[int]] | None = None, **kwargs: Any) -> list[float]:
        if completion_ids is None:
            raise ValueError("the discriminator reward needs completion_ids (TRL's GRPOTrainer and RLOOTrainer pass "
                             "them); call it as reward(prompts=..., completions=..., completion_ids=[[ids], ...]).")
        rows = self.completion_rows(completion_ids)  # (N, T)
        self.trainer.add_finished(rows)  # keeps the rows of the real rows' shape as fakes
        log_metric: Callable[[str, float], None] | None = kwargs.get("log_metric")
        if log_metric is not None and self.pending_metrics:
            for name, value in self.pending_metrics.items():
                log_metric(name, float(value))
            self.pending_metrics = {}
        return self.score_rows(rows).tolist()

    # -- discriminator training ------------------------------------------------------------------
    def sample_fake(self, n: int) -> torch.Tensor:
        """The newest ``n`` kept completions as rows (n, T); repeated when fewer were kept."""
        check_int("n", n, 1)
        if not self.fakes:
            raise ValueError("no finished completion has been scored yet (one ending in EOS or reaching max_length), "
                             "so there are no fakes to train the discriminator on; let the trainer call the reward "
                             "function first (train D after a step), or check that max_length <= "
                             "max_completion_length.")
        kept = list(self.fakes)[-n:]
        reps = -(-n // len(kept))
        return torch.stack((kept * reps)[:n])  # (n, T)

    def update_discriminator(self, fake: torch.Tensor) -> dict[str, float]:
        """One D optimizer step on ``fake`` (n, T) rows against ``n`` real rows; returns D's metrics."""
        return self.trainer.update(torch.as_tensor(fake).long())


class DiscriminatorTrainerCallback(TrainerCallback):
    """Trains the discriminator of a :class:`DiscriminatorRewardFunction` during a TRL run.

    ## Schedule
    ``on_step_end`` (after each optimizer step) counts one generator update with the
    library's :class:`DiscriminatorUpdateCallback`; every ``config.every`` of them it runs
    ``config.d_steps`` D updates on the ``config.batch_size`` newest completions the
    reward function scored, each against as many real rows. Rewards already computed for
    the current generation batch are not recomputed (as SB3: D changes between
    rollouts), so with ``steps_per_generation > 1`` the new D pays from the next batch.
    The phase metrics are kept in :attr:`history` (with the step and
    ``discriminator/updates``, the count so far) and logged with the next rewards through
    TRL's ``log_metric`` (``discriminator/loss``, ``discriminator/acc_real``,
    ``discriminator/acc_fake``, ``discriminator/grad_norm``, ``discriminator/lr``; TRL
    averages them over each logging window).

    ## Checks at ``on_train_begin``
    One process only (each rank would train its own copy of D, and the copies would
    drift apart); ``reward.max_length`` at most the trainer's ``max_completion_length``
    (else real rows may be longer than any completion can be, and D wins on length).

    ## Checkpoints
    ``on_save`` writes D (safetensors + JSON) and the schedule's counters into
    ``<checkpoint-N>/seqgan_discriminator/``; :meth:`load_checkpoint` restores both.
    """

    def __init__(self, reward: DiscriminatorRewardFunction, config: DiscriminatorUpdateConfig | None = None) -> None:
        if not isinstance(reward, DiscriminatorRewardFunction):
            raise TypeError(f"reward must be a DiscriminatorRewardFunction, got {type(reward).__name__}.")
        self.reward = reward
        self.core = DiscriminatorUpdateCallback(reward, reward.sample_fake, config)
        self.history: list[dict[str, float]] = []

    @property
    def config(self) -> DiscriminatorUpdateConfig:
        return self.core.config

    def on_train_begin(self, args, state, control, **kwargs):
        world = getattr(args, "world_size", 1)
        if world != 1:
            raise RuntimeError(f"DiscriminatorTrainerCallback runs on one process; this run has world_size={world}, "
                               f"and each rank would train its own discriminator copy. Launch it without "
                               f"accelerate/torchrun (one process), or freeze D (config.freeze=True).")
        longest = getattr(args, "max_completion_length", None)
        if longest is not None and self.reward.max_length > longest:
            raise ValueError(f"reward.max_length={self.reward.max_length} exceeds the trainer's "
                             f"max_completion_length={longest}: real rows could be longer than any completion and "
                             f"D would win on length alone; build the reward with max_length={longest}.")

    def on_step_end(self, args, state, control, **kwargs):
        metrics = self.core.on_generator_update()
        if metrics is not None:
            self.history.append({"step": state.global_step, **metrics})
            # the counter is not a per-step quantity: TRL would average it over the logging window
            self.reward.pending_metrics = {k: v for k, v in metrics.items() if k != "discriminator/updates"}

    def on_save(self, args, state, control, **kwargs):
        directory = os.path.join(args.output_dir, f"checkpoint-{state.global_step}", CHECKPOINT_SUBDIR)
        self.save(directory)

    def save(self, directory: str | os.PathLike) -> None:
        """Write D and the schedule's counters into ``directory``."""
        self.reward.discriminator.save(directory)
        atomic_write_json(os.path.join(directory, CALLBACK_STATE_FILE), self.core.state_dict())

    def load_checkpoint(self, directory: str | os.PathLike) -> None:
        """Restore D (weights, optimizer) and the counters written by :meth:`save` / ``on_save``.

        ``directory`` is a ``checkpoint-N`` folder or its ``seqgan_discriminator`` subfolder.
        Call it before ``trainer.train(resume_from_checkpoint=...)``.
        """
        directory = os.fspath(directory)
        if os.path.isdir(os.path.join(directory, CHECKPOINT_SUBDIR)):
            directory = os.path.join(directory, CHECKPOINT_SUBDIR)
        disc = Discriminator.load(directory, device=self.reward.discriminator.device)
        if disc.vocab_size != self.reward.discriminator.vocab_size:
            raise ValueError(f"the discriminator in {directory} has vocab_size={disc.vocab_size}, this run's has "
                             f"{self.reward.discriminator.vocab_size}: it belongs to another tokenizer.")
        self.reward.discriminator = disc
        self.core.load_state_dict(read_json(os.path.join(directory, CALLBACK_STATE_FILE),
                                            "fix: resume from a checkpoint written by DiscriminatorTrainerCallback"))


def prompt_dataset(n: int, prompt: str = ""):
    """A ``datasets.Dataset`` of ``n`` copies of ``prompt`` (column ``prompt``): SeqGAN's unconditional task."""
    check_int("n", n, 1)
    datasets = _require("datasets")
    return datasets.Dataset.from_dict({"prompt": [prompt] * n})


def make_adversarial_trainer(model: Any, tokenizer: Any, real_texts: Sequence[str], args: Any, *,
                             algorithm: str = "grpo", prompt: str = "", num_prompts: int = 1024,
                             max_length: int | None = None, discriminator: Discriminator | None = None,
                             discriminator_model: ModelConfig | None = None,
                             discriminator_config: DiscriminatorConfig | None = None,
                             d_updates: DiscriminatorUpdateConfig | None = None, transform: str = "prob",
                             seed: int = 0, **trainer_kwargs: Any):
    """A TRL ``GRPOTrainer`` (``algorithm="grpo"``) or ``RLOOTrainer`` (``"rloo"``) paid by a co-trained D.

    ``model``: a causal LM or a local directory ``transformers`` loads (``local_files_only``: a
    name that is not a local directory raises ValueError, nothing is downloaded); ``tokenizer``: its
    tokenizer (``processing_class``); ``args``: a ``GRPOConfig`` / ``RLOOConfig``;
    ``prompt``: every example's prompt (it must encode to at least one token, e.g. a
    tokenizer that adds BOS, or a short text). ``max_length`` defaults to
    ``args.max_completion_length``; ``d_updates`` defaults to one D phase per step on
    that step's completions, on the schedule ``DiscriminatorUpdateConfig`` defines for every door
    (``batch_size = per_device_train_batch_size * gradient_accumulation_steps``). The reward's EOS ids are the trainer's (the tokenizer's
    and every one in the model's ``generation_config``). Returns the trainer; its reward
    function and callback are ``trainer.seqgan_reward`` and ``trainer.seqgan_callback``.
    """
    trl = _require("trl")  # a missing extra is named first: nothing below can work without it
    if isinstance(model, (str, os.PathLike)):  # a local directory only: checked here, loaded local_files_only
        model = _local_model_dir(model)
        init_kwargs = getattr(args, "model_init_kwargs", None)
        if init_kwargs is None or isinstance(init_kwargs, dict):
            args = copy.copy(args)  # the caller's args stay as they were
            args.model_init_kwargs = {**(init_kwargs or {}), "local_files_only": True}
    trainers = {"grpo": "GRPOTrainer", "rloo": "RLOOTrainer"}
    if algorithm not in trainers:
        raise ValueError(f"algorithm={algorithm!r} is unknown: choose one of {sorted(trainers)}.")
    if not tokenizer(prompt)["input_ids"]:
        raise ValueError(f"prompt={prompt!r} encodes to no tokens with this tokenizer (it adds no BOS), and "
                         f"generation needs at least one; pass prompt=tokenizer.bos_token or a short text.")
    max_length = max_length if max_length is not None else args.max_completion_length
    if discriminator is None:
        # The model's vocabulary may be larger than the tokenizer's (padded embeddings): D must cover every id.
        config = transformers.AutoConfig.from_pretrained(model, local_files_only=True) \
            if isinstance(model, str) else getattr(model, "config", None)
        model_vocab = getattr(getattr(config, "get_text_config", lambda: config)(), "vocab_size", None)
        vocab_size = max(_tokenizer_size(tokenizer), model_vocab or 0)
        discriminator = build_discriminator(tokenizer, max_length, discriminator_model, discriminator_config,
                                            vocab_size=vocab_size, seed=seed)
    reward = DiscriminatorRewardFunction(discriminator, tokenizer, real_texts, max_length, transform=transform,
                                         seed=seed)
    if d_updates is None:
        d_updates = DiscriminatorUpdateConfig(
            batch_size=args.per_device_train_batch_size * args.gradient_accumulation_steps)
    callback = DiscriminatorTrainerCallback(reward, d_updates)
    callbacks = [*(trainer_kwargs.pop("callbacks", None) or []), callback]
    trainer = getattr(trl, trainers[algorithm])(
        model=model, reward_funcs=reward, args=args, train_dataset=prompt_dataset(num_prompts, prompt),
        processing_class=tokenizer, callbacks=callbacks, **trainer_kwargs)
    # TRL ends a completion at every eos id the model declares (e.g. an end-of-turn token), not only the
    # tokenizer's: the reward must call the same completions finished.
    if getattr(trainer, "eos_token_ids", None):
        reward.eos_token_ids = frozenset(int(i) for i in trainer.eos_token_ids)
    trainer.seqgan_reward, trainer.seqgan_callback = reward, callback
    return trainer
