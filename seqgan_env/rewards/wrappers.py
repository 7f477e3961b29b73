"""DiscriminatorReward: pay the generator with a discriminator's score (single and vector).

The wrapped env writes tokens; this wrapper replaces the reward of every valid
step with a score computed from the discriminator's per-prefix realness logits
(see ``seqgan_env.rewards.modes`` for the modes and transforms). Masked actions keep
the env's ``invalid_action_reward``. The discriminator scores in eval mode with
no gradient; it trains only inside ``update_discriminator``.

Co-training (the default): given ``real_data``, the wrapper keeps a buffer of finished,
complete generated sequences and, every ``RewardConfig.update_every`` finished episodes,
runs a D *phase* (``update_steps`` updates, more until ``update_until_accuracy``, at most
``update_max_steps``) on them against real rows: the schedule ``seqgan-env train`` uses.
The single env reports the phase's metrics in that step's ``info`` as
``discriminator/<name>``; both keep them in ``wrapper.trainer.last_metrics``. To schedule
D yourself (a callback), pass ``update_every=None`` and call ``update_discriminator()``
between rollouts. ``load_discriminator_state`` replaces the weights (to sync subprocess
copies). Wrappers given the same ``trainer`` share one D, one buffer and one episode count.

Weighted sources (``seqgan_env.rewards.sources``): ``RewardConfig.sources`` (a spec string) or
the wrappers' ``sources`` argument (RewardSource objects, spec items or callables; it replaces
the config's) list the discriminator and plain callables with their weights. A valid step pays
the weighted sum and reports each weighted contribution as ``info["reward/<name>"]``; the
default, the discriminator alone at weight 1, pays exactly what it paid before sources existed.
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass, replace
from typing import Any, Callable, Protocol

import gymnasium as gym
import numpy as np
import torch

from seqgan_env.envs.spec import PAD_ID
from seqgan_env.rewards.callbacks import DiscriminatorUpdateConfig
from seqgan_env.rewards.d_trainer import DiscriminatorTrainer
from seqgan_env.rewards.deferred import DeferredWindow
from seqgan_env.rewards.modes import RewardMode, RewardTransform, get_mode, get_transform, step_rewards
from seqgan_env.rewards.scoring import IncrementalPrefixScorer
from seqgan_env.rewards.sources import DEFAULT_SPEC, SourceCombiner, as_sources
from seqgan_env.utils.validation import check_int, check_number


class PrefixScorer(Protocol):
    """Anything that scores every prefix: (B, T) token ids -> (B, T) realness logits."""

    def score_logits(self, tokens: torch.Tensor) -> torch.Tensor: ...


#: Finished episodes between the wrapper's own D phases: one phase per 128 episodes, as the trainer
#: runs one per generator update of 128 episodes (``ReinforceConfig`` batch in ``seqgan-env train``).
DEFAULT_UPDATE_EVERY = 128


@dataclass(frozen=True)
class RewardConfig:
    """How discriminator scores become rewards, and when the wrapper trains D itself.

    The defaults are the ones ``seqgan-env train`` uses: ``potential``/``prob`` pays each
    prefix's change in D's probability (no bias towards long or short sequences), and D
    co-trains out of the box on the schedule of ``DiscriminatorUpdateConfig``.

    Attributes:
        mode: ``final`` | ``per_step`` | ``potential``.
        transform: ``prob`` | ``centered`` | ``log`` | ``logit``.
        potential_baseline: s_{-1} of ``potential``.
        update_every: finished episodes between the wrapper's own D phases; None: never (D
            stays fixed, or a callback calls ``update_discriminator``).
        update_batch_size: real and generated sequences per D update.
        update_steps: D updates per phase.
        update_until_accuracy: after ``update_steps``, keep updating until D's batch accuracy
            reaches this, in (0.5, 1]; None: off.
        update_max_steps: cap on D updates per phase (>= update_steps).
        buffer_size: finished generated sequences kept for D updates.
        sources: the weighted reward sources, a spec string such as
            ``"discriminator=1.0,mypkg.rewards:brevity=0.1"`` (see ``seqgan_env.rewards.sources``;
            checked, and its callables imported, on construction).

    Raises:
        ValueError: a field out of range, naming the value and the fix.
    """

    mode: RewardMode = "potential"
    transform: RewardTransform = "prob"
    potential_baseline: float = 0.0
    update_every: int | None = DEFAULT_UPDATE_EVERY
    update_batch_size: int = DiscriminatorUpdateConfig.batch_size
    buffer_size: int = 1024
    sources: str = DEFAULT_SPEC
    update_steps: int = DiscriminatorUpdateConfig.d_steps
    update_until_accuracy: float | None = DiscriminatorUpdateConfig.until_accuracy
    update_max_steps: int = DiscriminatorUpdateConfig.max_d_steps

    def __post_init__(self) -> None:
        get_mode(self.mode)
        get_transform(self.transform)
        check_number("potential_baseline", self.potential_baseline)
        if self.update_every is not None:
            check_int("update_every", self.update_every, 1,
                      "finished episodes between D phases, or None to leave D updates to a callback")
        check_int("update_batch_size", self.update_batch_size, 1)
        check_int("buffer_size", self.buffer_size, self.update_batch_size, "at least update_batch_size")
        check_int("update_steps", self.update_steps, 1, "use 1 D update per phase, or update_every=None for none")
        if self.update_until_accuracy is not None:
            check_number("update_until_accuracy", self.update_until_accuracy, 0.5, 1, "None disables it; e.g. 0.65",
                         low_open=True)
        check_int("update_max_steps", self.update_max_steps, self.update_steps, "at least update_steps")
        if not isinstance(self.sources, str):
            raise ValueError(f"sources={self.sources!r} must be a spec string such as 'discriminator=1.0'; pass "
                             f"RewardSource objects or callables as the wrapper's `sources` argument instead.")
        as_sources(self.sources)

    def make_trainer(self, scorer: Any, real_data: torch.Tensor | None, seed: int = 0) -> DiscriminatorTrainer:
        """The ``DiscriminatorTrainer`` of ``scorer`` on this config's schedule.

        Args:
            scorer: the discriminator to train (a ``PrefixScorer`` with an ``update`` method).
            real_data: (N, T) real token rows D learns from; None: D cannot train.
            seed: seeds the trainer's draws of real rows.

        Returns:
            A trainer with this config's ``update_every``, batch size, buffer and phase length.
        """
        return DiscriminatorTrainer(scorer, real_data, self.update_every, self.update_batch_size, self.buffer_size,
                                    seed, d_steps=self.update_steps, until_accuracy=self.update_until_accuracy,
                                    max_d_steps=self.update_max_steps)

    def to_dict(self) -> dict:
        """The fields as a plain dict (``RewardConfig(**config.to_dict())`` round-trips).

        Returns:
            Field name -> value.
        """
        return asdict(self)


def _own_trainer(trainer: DiscriminatorTrainer | None, scorer: Any, config: RewardConfig,
                 real_data: torch.Tensor | None, seed: int, overrides: dict) -> DiscriminatorTrainer:
    """``trainer`` when shared with other wrappers (it must train ``scorer``), else a new one from ``config``.

    Without ``real_data`` D cannot train, so the wrapper only scores: the default ``update_every``
    does not apply, and an explicit one is refused.
    """
    if trainer is None:
        if real_data is None:
            if overrides.get("update_every") is not None:
                raise ValueError(f"update_every={overrides['update_every']} needs real_data, the real sequences D "
                                 f"trains on: pass real_data=..., or drop update_every to only score.")
            config = replace(config, update_every=None)
        return config.make_trainer(scorer, real_data, seed)
    if trainer.scorer is not scorer:
        raise ValueError("trainer trains another scorer than the one that pays the rewards: pass the trainer "
                         "of this scorer (e.g. another wrapper's .trainer), or trainer=None for a new one.")
    return trainer


def _phase_info(metrics: dict[str, float]) -> dict[str, float]:
    """A D phase's metrics as info entries ``discriminator/<name>``."""
    return {f"discriminator/{k}": float(v) for k, v in metrics.items()}


class DiscriminatorReward(gym.Wrapper):
    """Single-env discriminator reward: one causal pass over the current prefix per step.

    ``info["disc_score"]`` at the end of an episode is the probability D assigns to
    the whole sequence. See the module docstring for modes and self-training.
    ``make_env`` builds one with its data set and a shared trainer.

    Args:
        env: a ``TokenGenerationEnv`` (or a wrapper around one).
        scorer: what pays the rewards: (B, T) token ids -> (B, T) realness logits.
        config: the reward mode, transform and D schedule; None: ``RewardConfig()``.
        real_data: (N, T) real token rows D trains on; None: D only scores (no self-training).
        seed: seeds the trainer's draws of real rows.
        sources: the weighted reward sources (a spec string, or a list of ``RewardSource`` /
            spec items / callables); None: ``config.sources``.
        trainer: a ``DiscriminatorTrainer`` shared with other wrappers (it must train
            ``scorer``); None: a new one from ``config``.
        **overrides: ``RewardConfig`` fields that replace those of ``config``.

    Raises:
        ValueError: a config field out of range, ``update_every`` without ``real_data``, or a
            ``trainer`` of another scorer.
    """

    def __init__(
        self,
        env: gym.Env,
        scorer: PrefixScorer,
        config: RewardConfig | None = None,
        real_data: torch.Tensor | None = None,
        seed: int = 0,
        sources: Any = None,
        trainer: DiscriminatorTrainer | None = None,
        **overrides: Any,
    ) -> None:
        super().__init__(env)
        self.reward_config = RewardConfig(**{**(config.to_dict() if config else {}), **overrides})
        self.combiner = SourceCombiner(self.reward_config.sources if sources is None else sources)
        self.scorer = scorer
        self.trainer = _own_trainer(trainer, scorer, self.reward_config, real_data, seed, overrides)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        comb = self.combiner
        if not info.get("invalid_action", False):
            tokens = torch.as_tensor(obs, dtype=torch.long).unsqueeze(0)  # (1, T)
            length = int((tokens != PAD_ID).sum())
            cfg = self.reward_config
            d_reward = None
            if comb.uses_discriminator and (cfg.mode != "final" or terminated):
                logits = self.scorer.score_logits(tokens[:, :length])  # (1, length)
                pos = torch.tensor([length - 1])
                done = torch.tensor([bool(terminated)])
                d_reward = step_rewards(logits, pos, done, cfg.mode, cfg.transform, cfg.potential_baseline)  # (1,)
                if terminated:
                    info["disc_score"] = float(torch.sigmoid(logits[0, -1]))
            elif comb.uses_discriminator:
                d_reward = torch.zeros(1)
            finished = torch.tensor([bool(terminated)])  # (1,) a valid last token ends the sequence
            total, parts = comb.combine(d_reward, finished, tokens, lambda idx: [info["text"]])
            reward = float(total[0])
            info.update({key: float(part[0]) for key, part in parts.items()})
        else:
            info.update(dict.fromkeys(comb.info_keys, 0.0))
        if terminated or truncated:
            if self.trainer.add_finished(torch.as_tensor(obs, dtype=torch.long).unsqueeze(0)):
                info.update(_phase_info(self.trainer.run_phase()))
        return obs, float(reward), terminated, truncated, info

    def update_discriminator(self, fake: torch.Tensor | None = None) -> dict[str, float]:
        """One D update on real data vs ``fake`` (default: the newest buffered sequences).

        Args:
            fake: (B, T) generated token rows; None: the newest finished episodes in the buffer.

        Returns:
            The update's metrics (loss, accuracy, ...) by name.
        """
        return self.trainer.update(fake)

    @property
    def discriminator(self) -> PrefixScorer:
        """The scorer that pays the rewards (the discriminator, or an MC-rollout scorer around one)."""
        return self.scorer

    def load_discriminator_state(self, state_dict: dict[str, torch.Tensor]) -> None:
        """Replace the discriminator's weights (e.g. broadcast from a trainer process).

        Args:
            state_dict: the weights, as ``discriminator_state()`` returns them.
        """
        self.scorer.load_state_dict(state_dict)
        self.trainer.mark_changed()

    def discriminator_state(self) -> dict[str, torch.Tensor]:
        """The discriminator's weights.

        Returns:
            The scorer's ``state_dict()``.
        """
        return self.scorer.state_dict()

    def action_masks(self) -> np.ndarray:
        """The valid actions of the current step, for sb3-contrib's MaskablePPO.

        Returns:
            (vocab_size,) bool: True where the token may be written now.
        """
        return self.env.unwrapped.action_masks()


class DiscriminatorRewardVector(gym.vector.VectorWrapper):
    """Vector discriminator reward: one batched discriminator call per step for all sub-envs.

    Wraps ``TokenGenerationVectorEnv``. With a ``Discriminator`` (one that has a
    ``net``) the prefixes are scored incrementally with its KV cache
    (``seqgan_env.rewards.scoring``); any other ``PrefixScorer`` gets one causal pass over the
    current tokens; a scorer with ``score_last(tokens, lengths) -> (B,)`` (e.g.
    ``MCRolloutScorer``) scores only each row's newest prefix per step. Rewards equal
    those of ``DiscriminatorReward`` on the single env (to float rounding; not for
    the random Monte-Carlo scorer). ``info["disc_score"]`` carries D's probability
    of each finished sequence. ``make_vector_env`` builds one with its data set and a shared trainer.

    Args:
        env: a ``TokenGenerationVectorEnv`` (or a wrapper around one).
        scorer: what pays the rewards: (B, T) token ids -> (B, T) realness logits.
        config: the reward mode, transform and D schedule; None: ``RewardConfig()``.
        real_data: (N, T) real token rows D trains on; None: D only scores (no self-training).
        seed: seeds the trainer's draws of real rows.
        incremental: score with D's KV cache; None: whenever ``scorer`` is a ``Discriminator``
            (and the mode is not ``final``).
        sources: the weighted reward sources (a spec string, or a list of ``RewardSource`` /
            spec items / callables); None: ``config.sources``.
        trainer: a ``DiscriminatorTrainer`` shared with other wrappers (it must train
            ``scorer``); None: a new one from ``config``.
        **overrides: ``RewardConfig`` fields that replace those of ``config``.

    Raises:
        TypeError: ``env`` is not a ``TokenGenerationVectorEnv``.
        ValueError: a config field out of range, ``update_every`` without ``real_data``, a
            ``trainer`` of another scorer, or ``incremental=True`` with a scorer that has no ``net``.
    """

    def __init__(
        self,
        env: gym.vector.VectorEnv,
        scorer: PrefixScorer,
        config: RewardConfig | None = None,
        real_data: torch.Tensor | None = None,
        seed: int = 0,
        incremental: bool | None = None,
        sources: Any = None,
        trainer: DiscriminatorTrainer | None = None,
        **overrides: Any,
    ) -> None:
        super().__init__(env)
        base = env.unwrapped
        for attr in ("tokens", "lengths", "last_written", "last_invalid"):
            if not hasattr(base, attr):
                raise TypeError(f"DiscriminatorRewardVector needs a TokenGenerationVectorEnv, got {type(base).__name__}.")
        self.reward_config = RewardConfig(**{**(config.to_dict() if config else {}), **overrides})
        self.combiner = SourceCombiner(self.reward_config.sources if sources is None else sources)
        self.scorer = scorer
        self.trainer = _own_trainer(trainer, scorer, self.reward_config, real_data, seed, overrides)
        b, t = base.num_envs, base.config.max_length
        self._all_rows = np.ones(b, dtype=bool)  # the ``_reward/<name>`` masks: every row has a value every step
        can_cache = hasattr(scorer, "net") and not hasattr(scorer, "score_last")
        if incremental and not can_cache:
            raise ValueError("incremental=True needs a Discriminator with a `net`; this scorer has none.")
        use_cache = can_cache if incremental is None else incremental
        self._incremental = (
            IncrementalPrefixScorer(scorer, b, t, base.device) if use_cache and self.reward_config.mode != "final" else None
        )
        self._logits = torch.zeros(b, t, device=base.device)  # (B, T) logit of every prefix of the current episodes
        self._prev_done = torch.zeros(b, dtype=torch.bool, device=base.device)  # (B,)
        self._seen_version = self.trainer.version
        self._window: DeferredWindow | None = None  # open inside ``deferred_rewards``

    @contextlib.contextmanager
    def deferred_rewards(self, steps: int):
        """A window of ``steps`` env steps whose discriminator share is scored later, in causal passes.

        For a collector that reads the rewards only after its last step: inside the window
        ``step`` pays each step without the discriminator's share (the other sources as usual)
        and the window's ``rewards`` (B, steps) holds that share once the window closes, equal
        to what ``step`` pays outside a window to float rounding. ``info["disc_score"]`` and the
        D schedule are unchanged (rows are scored when they finish and before a D phase). Only
        for the discriminator scored whole-prefix (``per_step``/``potential``/``final`` with a
        ``Discriminator`` or a ``score_logits`` scorer); with a ``score_last`` scorer (Monte-Carlo
        rollouts) or no discriminator source the window is inactive and ``step`` pays as usual.

        Args:
            steps: the most ``step`` calls inside the window.

        Yields:
            The :class:`~seqgan_env.rewards.deferred.DeferredWindow`, or None when inactive.

        Raises:
            ValueError: ``steps`` below 1.
            RuntimeError: a window is already open, more than ``steps`` steps, or D changed
                outside this wrapper inside the window.
        """
        check_int("steps", steps, 1, "the number of env steps the collector takes")
        if self._window is not None:
            raise RuntimeError("deferred_rewards windows do not nest: close the open one first.")
        if not self.combiner.uses_discriminator or hasattr(self.scorer, "score_last"):
            yield None
            return
        base = self.env.unwrapped
        self._window = DeferredWindow(base.num_envs, base.config.max_length, steps, self.combiner.discriminator_weight,
                                      base.device)
        window = self._window
        try:
            yield window
        finally:
            self._flush(torch.ones(base.num_envs, dtype=torch.bool, device=base.device))
            self._window = None
            if self._incremental is not None:
                self._incremental.invalidate()  # it skipped the window's steps: rescore from the tokens

    def _flush(self, rows: torch.Tensor, done: torch.Tensor | None = None):
        """Score the open window's pending steps of ``rows`` (see ``DeferredWindow.flush``)."""
        base = self.env.unwrapped
        cfg = self.reward_config
        if done is None:
            done = torch.zeros(base.num_envs, dtype=torch.bool, device=base.device)
        return self._window.flush(rows, base.tokens, base.lengths, done, self.scorer.score_logits, cfg.mode,
                                  cfg.transform, cfg.potential_baseline, self._logits)

    def reset(self, *, seed=None, options=None):
        """Reset like the wrapped env; with ``options["reset_mask"]`` only those rows start over.

        Rows that keep running keep their cached prefix scores (a ``score_last`` scorer
        such as mc_rollout cannot recompute them, and ``potential`` needs s_{t-1}).

        Args:
            seed: seeds the wrapped env's RNG.
            options: the wrapped env's options; ``"reset_mask"``: (num_envs,) bool, the rows to restart.

        Returns:
            ``(obs, info)`` of the wrapped env.
        """
        base = self.env.unwrapped
        mask_in = (options or {}).get("reset_mask")
        if self._window is not None:  # the steps already paid are scored before their episodes go
            self._flush(torch.ones(base.num_envs, dtype=torch.bool, device=base.device))
        obs, info = self.env.reset(seed=seed, options=options)
        if mask_in is None:
            rows = torch.ones(base.num_envs, dtype=torch.bool, device=base.device)  # (B,)
        else:  # the env has validated its shape and dtype
            rows = torch.as_tensor(mask_in if torch.is_tensor(mask_in) else np.asarray(mask_in), device=base.device)
        self._logits[rows] = 0.0
        self._prev_done &= ~rows
        if self._incremental is not None:
            self._incremental.invalidate()  # the next step rescores every row from its tokens
        return obs, info

    def step(self, actions):
        if self.trainer.version != self._seen_version:
            if self._window is not None and bool(self._window.pending.any()):
                raise RuntimeError("the discriminator changed outside this wrapper inside a deferred_rewards window: "
                                   "its pending steps can no longer be scored by the D that paid them. Close the "
                                   "window before updating D (or update it through this wrapper).")
            if self._incremental is not None:
                self._incremental.invalidate()  # D changed (here or in an env sharing it): rescore from the tokens
        self._seen_version = self.trainer.version
        obs, rewards, terminated, truncated, infos = self.env.step(actions)
        base = self.env.unwrapped
        tokens, lengths = base.tokens, base.lengths  # (B, T), (B,)
        written, invalid = base.last_written, base.last_invalid  # (B,)
        restarted = self._prev_done  # rows that autoreset on this step
        done = torch.as_tensor(terminated, device=base.device) | torch.as_tensor(truncated, device=base.device)
        env_rewards = torch.as_tensor(rewards, device=base.device, dtype=torch.float32)
        pos = (lengths - 1).clamp(min=0)  # (B,)
        finished = written & done  # (B,) sequences completed by this step's token
        any_done = bool(done.any())
        d_rewards, new = (self._discriminator_rewards(tokens, lengths, written, restarted, done, pos, any_done)
                          if self.combiner.uses_discriminator else (None, None))
        total, parts = self.combiner.combine(d_rewards, finished, tokens, self._texts_of(infos))
        out = torch.where(written, total, torch.where(invalid, env_rewards, torch.zeros_like(env_rewards)))
        infos = dict(infos)
        for key, part in parts.items():
            value = torch.where(written, part, torch.zeros_like(part))  # (B,) 0 on invalid and autoreset steps
            infos[key], infos["_" + key] = (value if base.return_torch else value.cpu().numpy()), self._all_rows
        if new is not None and any_done and bool(finished.any()):
            score = np.zeros(base.num_envs, dtype=np.float32)
            score[finished.cpu().numpy()] = torch.sigmoid(new[finished]).cpu().numpy()
            infos["disc_score"], infos["_disc_score"] = score, finished.cpu().numpy()
        self._prev_done = done  # a fresh tensor (the | above)
        if any_done and self.trainer.add_finished(tokens[done]):
            if self._window is not None:  # the pending steps were paid by the D before this phase
                self._flush(torch.ones_like(done))
            self.trainer.run_phase()  # its metrics: self.trainer.last_metrics
            if self._window is not None:  # nothing pending; the KV scorer is rebuilt when the window closes
                self._seen_version = self.trainer.version
        return obs, (out if base.return_torch else out.cpu().numpy()), terminated, truncated, infos

    def _texts_of(self, infos: dict) -> Callable[[torch.Tensor], list[str]]:
        """idx (K,) -> the texts of those finished rows: the env's ``info["text"]``, or decoded here."""
        def texts(idx: torch.Tensor) -> list[str]:
            if "text" in infos:
                return [str(t) for t in infos["text"][idx.cpu().numpy()]]
            return self.env.unwrapped.decode_rows(self.env.unwrapped.tokens[idx].cpu().numpy())
        return texts

    def _discriminator_rewards(self, tokens, lengths, written, restarted, done, pos, any_done=True):
        """(d_rewards (B,), new (B,) logit of each row's newest prefix): one scoring of the current prefixes."""
        base = self.env.unwrapped
        cfg = self.reward_config
        if self._window is not None:  # paid later: 0 now, the window's rewards hold the share
            self._window.record(written, pos)
            new = None
            if any_done:  # finished episodes are complete: score them now (info["disc_score"])
                scored = self._flush(done, done & written)  # ``final`` pays only a step that wrote the last token
                if scored is not None:
                    new = torch.zeros(base.num_envs, device=base.device)  # (B,)
                    new[scored[0]] = scored[1]
            return torch.zeros(base.num_envs, device=base.device), new
        if cfg.mode == "final":
            scored = written & done
            new = torch.zeros(base.num_envs, device=base.device)
            if bool(scored.any()):
                idx = scored.nonzero().squeeze(1)
                m = int(lengths[idx].max())
                logits = self.scorer.score_logits(tokens[idx, :m])  # (K, m)
                new[idx] = logits.gather(1, pos[idx].unsqueeze(1)).squeeze(1)
        elif hasattr(self.scorer, "score_last"):  # e.g. MCRolloutScorer: score only each row's newest prefix
            new = torch.zeros(base.num_envs, device=base.device)  # (B,)
            if bool(written.any()):
                idx = written.nonzero().squeeze(1)
                new[idx] = self.scorer.score_last(tokens[idx], lengths[idx]).to(new.device, new.dtype)  # (N,)
        elif self._incremental is not None:
            new = self._incremental.step(tokens, lengths, written, restarted)  # (B,)
            if self._incremental.refreshed is not None:  # rebuilt: every prefix rescored by the current D
                m = self._incremental.refreshed.shape[1]
                self._logits[:, :m] = self._incremental.refreshed
        else:
            m = max(int(lengths.max()), 1)
            full = self.scorer.score_logits(tokens[:, :m])  # (B, m) every prefix, current D
            self._logits[:, :m] = full
            new = full.gather(1, pos.unsqueeze(1)).squeeze(1)  # (B,)
        keep = self._logits.gather(1, pos.unsqueeze(1)).squeeze(1)  # (B,)
        self._logits.scatter_(1, pos.unsqueeze(1), torch.where(written, new, keep).unsqueeze(1))
        d_rewards = step_rewards(self._logits, pos, done, cfg.mode, cfg.transform, cfg.potential_baseline)  # (B,)
        return d_rewards, new

    def update_discriminator(self, fake: torch.Tensor | None = None) -> dict[str, float]:
        """One D update on real data vs ``fake`` (default: the newest buffered sequences).

        Args:
            fake: (B, T) generated token rows; None: the newest finished episodes in the buffer.

        Returns:
            The update's metrics (loss, accuracy, ...) by name.
        """
        if self._window is not None:  # the pending steps were paid by the D before this update
            self._flush(torch.ones(self.env.unwrapped.num_envs, dtype=torch.bool, device=self.env.unwrapped.device))
        return self.trainer.update(fake)  # bumps trainer.version: the next step rescores from the tokens

    @property
    def discriminator(self) -> PrefixScorer:
        """The scorer that pays the rewards (the discriminator, or an MC-rollout scorer around one)."""
        return self.scorer

    def load_discriminator_state(self, state_dict: dict[str, torch.Tensor]) -> None:
        """Replace the discriminator's weights (e.g. broadcast from a trainer process).

        Args:
            state_dict: the weights, as ``discriminator_state()`` returns them.
        """
        if self._window is not None:  # the pending steps were paid by the D before this change
            self._flush(torch.ones(self.env.unwrapped.num_envs, dtype=torch.bool, device=self.env.unwrapped.device))
        self.scorer.load_state_dict(state_dict)
        self.trainer.mark_changed()  # the next step rescores from the tokens

    def discriminator_state(self) -> dict[str, torch.Tensor]:
        """The discriminator's weights.

        Returns:
            The scorer's ``state_dict()``.
        """
        return self.scorer.state_dict()

    def action_masks(self):
        """The valid actions of every sub-env's current step.

        Returns:
            (num_envs, vocab_size) bool: True where the token may be written now.
        """
        return self.env.unwrapped.action_masks()
