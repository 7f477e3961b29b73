"""The discriminator's own trainer: real rows, a buffer of generated rows, one update or one phase.

The reward wrappers own one (``wrapper.trainer``) so that a wrapped env trains its
discriminator by itself (``RewardConfig.update_every``: a D *phase* every K finished
episodes, scheduled like the trainer's ``DiscriminatorUpdateConfig``) or when a callback
asks (``update_discriminator``); the SB3 adapter ships a copy of it to the trainer process.
Several wrappers in one process may share one trainer (``seqgan_env.rewards.registration``):
they then feed one buffer, count their finished episodes together and score with one D.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import torch

from seqgan_env.envs.spec import complete_rows
from seqgan_env.rewards.callbacks import batch_accuracy
from seqgan_env.utils.validation import check_int


class DiscriminatorTrainer:
    """Trains a scorer on real rows against a buffer of finished generated rows.

    Args:
        scorer: has ``update(real, fake) -> metrics`` (a ``Discriminator``, or an
            MC-rollout scorer around one).
        real_data: (N, T) long, the real rows, drawn uniformly with ``seed``; None when
            D never trains here.
        update_every: K, a phase is due every K finished episodes (None: never; a
            callback calls :meth:`update`).
        batch_size: fake rows per update and as many real rows.
        buffer_size: finished complete rows kept.
        seed: seeds the draws of real and buffered rows.
        d_steps: updates per phase.
        until_accuracy: after ``d_steps``, keep updating until the batch accuracy (mean of
            ``acc_real`` and ``acc_fake``) reaches it, at most ``max_d_steps`` updates; None: off.
            A scorer whose metrics carry no accuracy ends each phase after ``d_steps``.
        max_d_steps: cap on updates per phase (>= ``d_steps``); None: ``d_steps``.

    Raises:
        ValueError: ``real_data`` is not a non-empty 2-D tensor, ``update_every`` is set
            without ``real_data``, or ``max_d_steps`` is below ``d_steps``.

    Attributes ``finished_episodes``, ``num_updates``, ``num_phases``, ``last_metrics``, and
    ``version`` (bumped whenever D's weights change here or through :meth:`mark_changed`, so that
    caches of D's scores can tell they are stale).
    """

    def __init__(self, scorer: Any, real_data: torch.Tensor | None, update_every: int | None = None,
                 batch_size: int = 64, buffer_size: int = 1024, seed: int = 0, d_steps: int = 1,
                 until_accuracy: float | None = None, max_d_steps: int | None = None):
        self.scorer = scorer
        self.update_every, self.batch_size = update_every, batch_size
        max_d_steps = d_steps if max_d_steps is None else max_d_steps
        check_int("max_d_steps", max_d_steps, d_steps, "at least d_steps, or None for d_steps")
        self.d_steps, self.until_accuracy, self.max_d_steps = d_steps, until_accuracy, max_d_steps
        if real_data is not None:
            real_data = torch.as_tensor(real_data, dtype=torch.long)
            if real_data.ndim != 2 or len(real_data) == 0:
                raise ValueError(
                    f"real_data must be a non-empty (N, max_length) tensor of token ids, got shape "
                    f"{tuple(real_data.shape)}."
                )
        if update_every is not None and real_data is None:
            raise ValueError("update_every is set but real_data is None: pass the real sequences D trains on, or "
                             "update_every=None to leave D fixed (or to a callback).")
        self.real_data = real_data  # (N, T)
        self.fake_buffer: deque[torch.Tensor] = deque(maxlen=buffer_size)  # each (T,)
        self.generator = torch.Generator().manual_seed(seed)
        self.finished_episodes = 0
        self._since_phase = 0  # complete rows buffered since the last phase
        self.num_updates = 0
        self.num_phases = 0
        self.version = 0
        self.last_metrics: dict[str, float] = {}

    def add_finished(self, sequences: torch.Tensor) -> bool:
        """Count (K, T) finished sequences and buffer the complete ones; True when a phase is due.

        A phase falls due every ``update_every`` finished episodes, and is skipped while the buffer
        holds no complete row (it would have no fakes to train on).

        Only ``complete_rows`` are buffered: an episode cut short by a masked action or
        with nothing written has a shape no real row has (see ``complete_rows``).
        """
        sequences = sequences.cpu()
        kept = sequences[complete_rows(sequences)]  # (K', T) a copy: the buffer never aliases the caller's rows
        self.fake_buffer.extend(kept.unbind(0))
        self._since_phase += len(kept)
        before, self.finished_episodes = self.finished_episodes, self.finished_episodes + len(sequences)
        every = self.update_every
        due = every is not None and self.finished_episodes // every > before // every  # a multiple of every passed
        return due and len(self.fake_buffer) > 0

    def mark_changed(self) -> None:
        """Record that D's weights changed outside :meth:`update` (e.g. loaded from a state dict)."""
        self.version += 1

    def update(self, fake: torch.Tensor | None = None) -> dict[str, float]:
        """One D update on ``batch_size`` real rows against ``fake`` (default: the newest buffered rows).

        Returns:
            The scorer's metrics (e.g. ``loss``, ``acc_real``, ``acc_fake``).

        Raises:
            TypeError: the scorer cannot be trained.
            ValueError: no real data, nothing buffered yet, or lengths that differ.
        """
        self._check_ready(need_buffer=fake is None)
        if fake is None:
            fake = torch.stack(list(self.fake_buffer)[-self.batch_size:])  # (n, T) most recent
        return self._update(fake)

    def run_phase(self) -> dict[str, float]:
        """One D phase: ``d_steps`` updates, then more until ``until_accuracy`` (at most ``max_d_steps``).

        Each update draws ``batch_size`` fake rows from those buffered since the previous phase
        (at least the newest ``batch_size``), so D learns what the current policy writes.

        Returns:
            The phase's metrics averaged over its updates, plus ``phase_steps``.

        Raises:
            TypeError, ValueError: as :meth:`update`.
        """
        self._check_ready()
        pool = torch.stack(list(self.fake_buffer)[-max(self.batch_size, self._since_phase):])  # (P, T)
        sums: dict[str, float] = {}
        steps = 0
        while True:
            if len(pool) > self.batch_size:
                idx = torch.randperm(len(pool), generator=self.generator)[: self.batch_size]
                fake = pool[idx]  # (batch_size, T)
            else:
                fake = pool
            metrics = self._update(fake)
            steps += 1
            for k, v in metrics.items():
                sums[k] = sums.get(k, 0.0) + float(v)
            if steps >= self.max_d_steps or (steps >= self.d_steps and not self._wants_more(metrics)):
                break
        self._since_phase = 0
        self.num_phases += 1
        out = {k: v / steps for k, v in sums.items()}
        out["phase_steps"] = float(steps)
        self.last_metrics = out
        return out

    def _wants_more(self, metrics: dict[str, float]) -> bool:
        if self.until_accuracy is None or not {"acc_real", "acc_fake"} <= metrics.keys():
            return False  # a scorer that reports no accuracy ends its phase after d_steps (documented above)
        return batch_accuracy(metrics, "update_until_accuracy") < self.until_accuracy

    def _check_ready(self, need_buffer: bool = True) -> None:
        if not hasattr(self.scorer, "update"):
            raise TypeError(f"{type(self.scorer).__name__} has no update(real, fake): it cannot be trained.")
        if self.real_data is None:
            raise ValueError("update_discriminator needs real_data: pass it to the wrapper.")
        if need_buffer and len(self.fake_buffer) == 0:
            raise ValueError(
                "no complete generated sequence yet (ended by EOS or filling max_length; episodes ended by a "
                "masked action are not used): step the env further before updating D."
            )

    def _update(self, fake: torch.Tensor) -> dict[str, float]:
        """One update on ``fake`` (K, T) against as many real rows; the caller has run :meth:`_check_ready`."""
        idx = torch.randint(len(self.real_data), (len(fake),), generator=self.generator)
        real = self.real_data[idx]  # (n, T)
        if real.shape[1] != fake.shape[1]:
            raise ValueError(
                f"real sequences have length {real.shape[1]} but generated ones {fake.shape[1]}: "
                f"encode the real data with the env's max_length."
            )
        with torch.enable_grad():  # the env may be stepped under the caller's no_grad (e.g. sampling a policy)
            self.last_metrics = self.scorer.update(real, fake)
        self.num_updates += 1
        self.version += 1
        return self.last_metrics
