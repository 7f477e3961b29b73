"""Training alarms: cheap checks that name a known GAN failure while it happens.

Five alarms (names in :data:`ALARM_NAMES`):

* ``eos_collapse`` (samples): the share of samples shorter than ``short_len``
  symbols is above ``empty_share`` — the generator learned to stop at once.
* ``mode_collapse`` (samples): uniqueness (distinct / samples) below
  ``min_uniqueness``, or one symbol making up more than ``max_symbol_share`` of
  all generated symbols.
* ``d_overpower`` (updates): ``discriminator/acc_fake`` above ``d_overpower_acc``
  for ``d_overpower_patience`` consecutive updates that report it.
* ``d_uninformative`` (evaluations): the discriminator's held-out AUC (``d_auc``:
  held-out real rows against fresh generated rows, D in eval mode) below
  ``d_uninformative_auc`` for ``d_uninformative_patience`` consecutive evaluations —
  D cannot tell real from fake, so its reward is noise.
* ``reward_oscillation`` (updates): over the last ``oscillation_window``
  ``reward_mean`` values, the share of sign changes of the first difference is
  above ``oscillation_sign_changes`` *and* the population std of the window is
  above ``oscillation_min_std``.  i.i.d. noise alone changes sign about 2/3 of the
  time, so ``oscillation_min_std`` is what separates a swinging reward from a
  noisy but stable one.

Contract
--------
* ``check_samples`` is stateless; ``check_update`` keeps a streak counter and a
  reward window.  An update without ``discriminator/acc_fake`` (D did not train
  that update) neither extends nor resets the streak; an update without a finite
  ``reward_mean`` (a skipped update) is not added to the window.
* An alarm is returned on every check while its condition holds; ``Alarm.new`` is
  True only on the first check of such a stretch, so a caller can log once.
* ``state_dict()`` is JSON-able and ``load_state_dict`` restores streak, window
  and active alarms, so a resumed run raises exactly what an uninterrupted one would.
* ``enabled=False``: every check returns ``[]`` and no state changes.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from seqgan_env.utils.validation import is_int, is_number

SAMPLE_ALARMS = ("eos_collapse", "mode_collapse")
UPDATE_ALARMS = ("d_overpower", "reward_oscillation")
EVAL_ALARMS = ("d_uninformative",)
ALARM_NAMES = SAMPLE_ALARMS + UPDATE_ALARMS + EVAL_ALARMS
STATE_VERSION = 1


@dataclass
class AlarmConfig:
    """Alarm thresholds (semantics in the module docstring); validated on construction."""

    short_len: int = 2
    empty_share: float = 0.5
    min_uniqueness: float = 0.5
    max_symbol_share: float = 0.5
    d_overpower_acc: float = 0.99
    d_overpower_patience: int = 20
    oscillation_window: int = 20
    oscillation_sign_changes: float = 0.6
    oscillation_min_std: float = 0.05
    d_uninformative_auc: float = 0.55
    d_uninformative_patience: int = 3
    enabled: bool = True

    def __post_init__(self) -> None:
        ints = {"short_len": 1, "d_overpower_patience": 1, "oscillation_window": 3, "d_uninformative_patience": 1}
        for name, minimum in ints.items():
            value = getattr(self, name)
            if not is_int(value) or value < minimum:
                raise ValueError(f"alarms.{name}={value!r} is invalid: it must be an int >= {minimum}; "
                                 f"use the default {getattr(AlarmConfig, name)}.")
        shares = ("empty_share", "min_uniqueness", "max_symbol_share", "d_overpower_acc", "oscillation_sign_changes",
                  "d_uninformative_auc")
        for name in shares:
            value = getattr(self, name)
            if not is_number(value) or not 0 <= value <= 1:
                raise ValueError(f"alarms.{name}={value!r} is invalid: it must be a number in [0, 1]; "
                                 f"use the default {getattr(AlarmConfig, name)}.")
        if not is_number(self.oscillation_min_std) or self.oscillation_min_std < 0:
            raise ValueError(f"alarms.oscillation_min_std={self.oscillation_min_std!r} is invalid: it must be a "
                             f"number >= 0; use the default {AlarmConfig.oscillation_min_std}.")
        if not isinstance(self.enabled, bool):
            raise ValueError(f"alarms.enabled={self.enabled!r} is invalid: it must be true or false.")


@dataclass
class Alarm:
    """One raised alarm: ``message`` names the measured value, the threshold and what to try."""

    name: str
    message: str
    value: float
    threshold: float
    new: bool = True

    def __str__(self) -> str:
        return f"alarm {self.name}: {self.message}"


class AlarmMonitor:
    """Checks sample batches and per-update metrics against an :class:`AlarmConfig`."""

    def __init__(self, config: AlarmConfig | None = None) -> None:
        self.config = config if config is not None else AlarmConfig()
        if not isinstance(self.config, AlarmConfig):
            raise TypeError(f"config must be an AlarmConfig, got {type(self.config).__name__}.")
        self.d_streak = 0
        self.auc_streak = 0
        self.rewards: deque[float] = deque(maxlen=self.config.oscillation_window)
        self.active: set[str] = set()

    # -- bookkeeping ---------------------------------------------------------------
    def _settle(self, raised: list[Alarm], checked: Sequence[str]) -> list[Alarm]:
        """Mark alarms new/old and forget the checked alarms that did not fire."""
        names = {a.name for a in raised}
        for a in raised:
            a.new = a.name not in self.active
        self.active = (self.active - set(checked)) | names
        return raised

    # -- samples ---------------------------------------------------------------------
    def check_samples(self, texts: Sequence[str]) -> list[Alarm]:
        """``eos_collapse`` / ``mode_collapse`` of one batch of generated texts ([] for an empty batch)."""
        cfg = self.config
        if not cfg.enabled:
            return []
        if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
            raise ValueError("texts must be a list of str (decoded samples, one per sequence).")
        n = len(texts)
        if n == 0:
            return []
        raised: list[Alarm] = []
        short = sum(len(t) < cfg.short_len for t in texts) / n
        if short > cfg.empty_share:
            raised.append(Alarm(
                "eos_collapse",
                f"{short:.0%} of {n} samples are shorter than {cfg.short_len} symbols (alarm above "
                f"{cfg.empty_share:.0%}): the generator ends sequences at once. Try reward.mode=potential "
                f"(per_step/log makes every step cost), a larger reinforce.mle_coef, a lower reinforce.lr, "
                f"or data.min_length.",
                short, cfg.empty_share))
        unique = len(set(texts)) / n
        if unique < cfg.min_uniqueness:
            raised.append(Alarm(
                "mode_collapse",
                f"uniqueness {unique:.3f} of {n} samples is below {cfg.min_uniqueness}: the generator repeats "
                f"a few sequences. Try reinforce.entropy_coef > 0, a larger reinforce.mle_coef, a lower "
                f"reinforce.lr, or a slower discriminator (larger d_updates.every).",
                unique, cfg.min_uniqueness))
        counts = Counter(ch for t in texts for ch in t)
        total = sum(counts.values())
        if total:
            symbol, top = counts.most_common(1)[0]
            share = top / total
            if share > cfg.max_symbol_share:
                raised.append(Alarm(
                    "mode_collapse",
                    f"symbol {symbol!r} is {share:.0%} of all {total} generated symbols (alarm above "
                    f"{cfg.max_symbol_share:.0%}): the generator repeats one symbol. Try reinforce.entropy_coef "
                    f"> 0, a larger reinforce.mle_coef or a lower reinforce.lr.",
                    share, cfg.max_symbol_share))
        return self._settle(raised, SAMPLE_ALARMS)

    # -- updates ---------------------------------------------------------------------
    def check_update(self, metrics: dict[str, Any]) -> list[Alarm]:
        """``d_overpower`` / ``reward_oscillation`` after one update's metrics.

        Reads ``discriminator/acc_fake`` and ``reward_mean`` when present (other keys ignored).
        """
        cfg = self.config
        if not cfg.enabled:
            return []
        if not isinstance(metrics, dict):
            raise ValueError(f"metrics must be a dict (one update's metrics), got {type(metrics).__name__}.")
        raised: list[Alarm] = []
        acc = metrics.get("discriminator/acc_fake")
        if is_number(acc):
            self.d_streak = self.d_streak + 1 if acc > cfg.d_overpower_acc else 0
        if self.d_streak >= cfg.d_overpower_patience:
            raised.append(Alarm(
                "d_overpower",
                f"discriminator/acc_fake was above {cfg.d_overpower_acc} for {self.d_streak} consecutive "
                f"D updates (alarm at {cfg.d_overpower_patience}): D separates every fake, so the "
                f"reward carries little signal. Try a larger d_updates.every, fewer d_updates.d_steps, a lower "
                f"discriminator.lr, or more schedule.pretrain_steps.",
                float(self.d_streak), float(cfg.d_overpower_patience)))
        reward = metrics.get("reward_mean")
        if is_number(reward):
            self.rewards.append(float(reward))
        if len(self.rewards) == cfg.oscillation_window:
            window = np.asarray(self.rewards, dtype=float)
            signs = np.sign(np.diff(window))
            pairs = signs[:-1] * signs[1:]
            share = float(np.mean(pairs < 0))
            std = float(window.std(ddof=0))
            if share > cfg.oscillation_sign_changes and std > cfg.oscillation_min_std:
                raised.append(Alarm(
                    "reward_oscillation",
                    f"reward_mean changed direction in {share:.0%} of the last {cfg.oscillation_window} updates "
                    f"(alarm above {cfg.oscillation_sign_changes:.0%}) with std {std:.3f} (alarm above "
                    f"{cfg.oscillation_min_std}): generator and discriminator are chasing each other. Try a lower "
                    f"reinforce.lr, a larger reinforce.batch_size, or a larger d_updates.every.",
                    share, cfg.oscillation_sign_changes))
        return self._settle(raised, UPDATE_ALARMS)

    # -- evaluations -----------------------------------------------------------------
    def check_eval(self, metrics: dict[str, Any]) -> list[Alarm]:
        """``d_uninformative`` after one evaluation's metrics (reads ``d_auc``; an evaluation without it is skipped)."""
        cfg = self.config
        if not cfg.enabled:
            return []
        auc = metrics.get("d_auc")
        if is_number(auc):
            self.auc_streak = self.auc_streak + 1 if auc < cfg.d_uninformative_auc else 0
        raised: list[Alarm] = []
        if self.auc_streak >= cfg.d_uninformative_patience:
            raised.append(Alarm(
                "d_uninformative",
                f"the discriminator's held-out AUC was below {cfg.d_uninformative_auc} for {self.auc_streak} "
                f"consecutive evaluations (last {auc:.3f}; 0.5 is chance): its reward cannot tell real from fake. "
                f"Try more schedule.d_pretrain_steps, more d_updates.d_steps or a larger d_updates.batch_size, "
                f"discriminator.prefix_loss=false (a whole-sequence loss), or a larger discriminator_model.",
                float(auc) if is_number(auc) else float("nan"), cfg.d_uninformative_auc))
        return self._settle(raised, EVAL_ALARMS)

    # -- resume ----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """JSON-able state: streak, reward window, active alarms."""
        return {"version": STATE_VERSION, "d_streak": self.d_streak, "auc_streak": self.auc_streak,
                "rewards": list(self.rewards),
                "active": sorted(self.active)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`; a window longer than ``oscillation_window`` keeps its newest values."""
        fix = "pass the dict returned by AlarmMonitor.state_dict(), or start with a fresh AlarmMonitor"
        if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
            raise ValueError(f"alarm state {state!r:.200} is not a version-{STATE_VERSION} alarm state; {fix}.")
        streak, rewards, active = state.get("d_streak"), state.get("rewards"), state.get("active")
        if not is_int(streak) or streak < 0:
            raise ValueError(f"alarm state d_streak={streak!r} must be an int >= 0; {fix}.")
        if not isinstance(rewards, list) or not all(is_number(r) for r in rewards):
            raise ValueError(f"alarm state rewards must be a list of finite numbers; {fix}.")
        if not isinstance(active, list) or not set(active) <= set(ALARM_NAMES):
            raise ValueError(f"alarm state active={active!r} must be a list of names from {list(ALARM_NAMES)}; {fix}.")
        auc_streak = state.get("auc_streak", 0)  # absent in states written before the d_uninformative alarm
        if not is_int(auc_streak) or auc_streak < 0:
            raise ValueError(f"alarm state auc_streak={auc_streak!r} must be an int >= 0; {fix}.")
        self.d_streak = streak
        self.auc_streak = auc_streak
        self.rewards = deque((float(r) for r in rewards), maxlen=self.config.oscillation_window)
        self.active = set(active)


def alarm_metrics(alarms: Iterable[Alarm], checked: Iterable[str] = ()) -> dict[str, float]:
    """``{"alarm/<name>": 1.0}`` per raised alarm, plus 0.0 for names in ``checked`` that did not fire.

    E.g. per update: ``metrics.update(alarm_metrics(monitor.check_update(metrics), UPDATE_ALARMS))``.
    """
    out = {f"alarm/{name}": 0.0 for name in checked}
    for a in alarms:
        out[f"alarm/{a.name}"] = 1.0
    return out
