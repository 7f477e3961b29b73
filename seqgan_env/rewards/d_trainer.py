"""The discriminator's own trainer: real rows, a buffer of generated rows, one update.

The reward wrappers own one (``wrapper.trainer``) so that a wrapped env can train its
discriminator by itself (``RewardConfig.update_every``) or when a callback asks
(``update_discriminator``); the SB3 adapter ships a copy of it to the trainer process.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import torch

from seqgan_env.envs.spec import complete_rows


class DiscriminatorTrainer:
    """Trains a scorer on real rows against a buffer of finished generated rows.

    ``scorer`` has ``update(real, fake) -> metrics`` (a ``Discriminator``, or an
    MC-rollout scorer around one). ``real_data`` (N, T) long: the real rows, drawn
    uniformly with ``seed``. ``update_every`` K: :meth:`add_finished` says an update is
    due every K finished episodes (None: never; a callback calls :meth:`update`).
    ``batch_size``: fake rows per update (the newest buffered) and as many real rows;
    ``buffer_size``: finished rows kept. Attributes ``finished_episodes``,
    ``num_updates``, ``last_metrics``.
    """

    def __init__(self, scorer: Any, real_data: torch.Tensor | None, update_every: int | None = None,
                 batch_size: int = 64, buffer_size: int = 1024, seed: int = 0):
        self.scorer = scorer
        self.update_every, self.batch_size = update_every, batch_size
        if real_data is not None:
            real_data = torch.as_tensor(real_data, dtype=torch.long)
            if real_data.ndim != 2 or len(real_data) == 0:
                raise ValueError(
                    f"real_data must be a non-empty (N, max_length) tensor of token ids, got shape "
                    f"{tuple(real_data.shape)}."
                )
        if update_every is not None and real_data is None:
            raise ValueError("update_every is set but real_data is None: pass the real sequences D trains on.")
        self.real_data = real_data  # (N, T)
        self.fake_buffer: deque[torch.Tensor] = deque(maxlen=buffer_size)  # each (T,)
        self.generator = torch.Generator().manual_seed(seed)
        self.finished_episodes = 0
        self.num_updates = 0
        self.last_metrics: dict[str, float] = {}

    def add_finished(self, sequences: torch.Tensor) -> bool:
        """Count (K, T) finished sequences and buffer the complete ones; True when an update is due.

        An update falls due every ``update_every`` finished episodes, and is skipped while the buffer
        holds no complete row (an update would have no fakes to train on and raise).

        Only ``complete_rows`` are buffered: an episode cut short by a masked action or
        with nothing written has a shape no real row has (see ``complete_rows``).
        """
        due = False
        sequences = sequences.cpu()
        keep = complete_rows(sequences)  # (K,)
        for row, complete in zip(sequences, keep.tolist()):
            if complete:
                self.fake_buffer.append(row.clone())
            self.finished_episodes += 1
            every = self.update_every
            if every is not None and self.finished_episodes % every == 0:
                due = True
        return due and len(self.fake_buffer) > 0  # none complete yet (all ended by masked actions): nothing to train on

    def update(self, fake: torch.Tensor | None = None) -> dict[str, float]:
        if not hasattr(self.scorer, "update"):
            raise TypeError(f"{type(self.scorer).__name__} has no update(real, fake): it cannot be trained.")
        if self.real_data is None:
            raise ValueError("update_discriminator needs real_data: pass it to the wrapper.")
        n = self.batch_size
        if fake is None:
            if len(self.fake_buffer) == 0:
                raise ValueError(
                    "no complete generated sequence yet (ended by EOS or filling max_length; episodes ended by a "
                    "masked action are not used): step the env further before updating D."
                )
            fake = torch.stack(list(self.fake_buffer)[-n:])  # (n, T) most recent
        idx = torch.randint(len(self.real_data), (len(fake),), generator=self.generator)
        real = self.real_data[idx]  # (n, T)
        if real.shape[1] != fake.shape[1]:
            raise ValueError(
                f"real sequences have length {real.shape[1]} but generated ones {fake.shape[1]}: "
                f"encode the real data with the env's max_length."
            )
        self.last_metrics = self.scorer.update(real, fake)
        self.num_updates += 1
        return self.last_metrics
