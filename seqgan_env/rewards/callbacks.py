"""The discriminator-update schedule of adversarial training, independent of any RL library.

:class:`DiscriminatorUpdateCallback` is told about every generator update
(:meth:`~DiscriminatorUpdateCallback.on_generator_update`) and, every
``config.every`` of them, runs a discriminator *phase* of ``config.d_steps``
updates, each on a fresh batch of ``config.batch_size`` generated sequences.

Contract
--------
* ``reward_env.update_discriminator(fake)`` takes ``fake`` (N, T) long token ids
  and returns a ``dict[str, float]`` of metrics (our reward wrappers
  ``DiscriminatorReward`` / ``DiscriminatorRewardVector`` do; they pair ``fake``
  with real sequences from ``trainer.real_data``).
* ``sample_fake(n)`` returns ``n`` freshly generated, finished sequences (n, T);
  it is called under ``torch.no_grad()``.
* ``freeze=True`` never samples and never updates D (the exploit check: the
  generator trains against a fixed discriminator).
* ``replay_fraction`` r: each D batch is ``round(r * batch_size)`` rows drawn from a
  buffer of the last ``replay_size`` fresh fakes and the rest fresh, so D keeps
  rejecting what the generator wrote a while ago (it cannot be won back by cycling).
* ``until_accuracy`` a: a phase runs ``d_steps`` updates, then more (up to
  ``max_d_steps``) until the batch accuracy (mean of acc_real and acc_fake) reaches a.
* The counters are the whole state: :meth:`state_dict` is JSON-able.

The SB3 adapter is ``seqgan_env.integrations.sb3.SB3DiscriminatorCallback``.

Subclasses may override the template hooks :meth:`_on_phase_start`,
:meth:`_on_d_update` and :meth:`_on_phase_end` (no-ops here).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable, Protocol

import torch

from seqgan_env.utils.validation import check_int, check_number

PREFIX = "discriminator/"


def batch_accuracy(metrics: dict[str, Any], needed_by: str) -> float:
    """The mean of a D update's ``acc_real`` and ``acc_fake``: what train-until-accuracy compares.

    Args:
        metrics: one D update's metrics.
        needed_by: the setting that asks for it, named in the error.

    Returns:
        The batch accuracy in [0, 1].

    Raises:
        ValueError: the metrics have no ``acc_real`` / ``acc_fake``.
    """
    if "acc_real" not in metrics or "acc_fake" not in metrics:
        raise ValueError(f"{needed_by} needs update_discriminator() metrics acc_real and acc_fake.")
    return 0.5 * (float(metrics["acc_real"]) + float(metrics["acc_fake"]))


class SupportsDiscriminatorUpdate(Protocol):
    def update_discriminator(self, fake: torch.Tensor) -> dict[str, float]: ...


@dataclass
class DiscriminatorUpdateConfig:
    """When and how much the discriminator trains.

    A phase is ``d_steps`` D updates (more, up to ``max_d_steps``, while its batch accuracy is
    below ``until_accuracy``) after every ``every`` generator updates. Each field's meaning and
    range is documented with the field (the attributes below).

    Raises:
        ValueError: a field out of range, naming the value and the fix.
    """

    # The defaults serve every door (``seqgan-env train``, the env's own co-training, SB3 and TRL callbacks):
    # 3 to 5 D updates per phase, stopping early once D's batch accuracy reaches 0.65, on whole-sequence
    # batches of 128 (the measurements are in benchmarks/README.md, "The default schedule").
    every: int = 1
    """Generator updates between D phases (>= 1)."""
    d_steps: int = 3
    """D updates per phase (>= 1)."""
    batch_size: int = 128
    """Generated (and as many real) sequences per D update."""
    freeze: bool = False
    """Never update D (the exploit check: the generator against a fixed D)."""
    replay_fraction: float = 0.0
    """Share of each fake batch replayed from earlier fakes, in [0, 1); 0: all fresh."""
    replay_size: int = 2048
    """Fresh fakes kept for replay (>= batch_size)."""
    until_accuracy: float | None = 0.65
    """Keep updating D after d_steps until its batch accuracy reaches this, in (0.5, 1]; None: off."""
    max_d_steps: int = 5
    """Cap on D updates per phase with until_accuracy (>= d_steps)."""

    def __post_init__(self) -> None:
        check_int("every", self.every, 1, "use 1 to train D after every generator update")
        check_int("d_steps", self.d_steps, 1, "use 1 D update per phase, or freeze=True to never train D")
        check_int("batch_size", self.batch_size, 1, "use e.g. batch_size=64")
        if not isinstance(self.freeze, bool):
            raise ValueError(f"freeze={self.freeze!r} is invalid: it must be True or False.")
        check_number("replay_fraction", self.replay_fraction, 0, 1, "use 0.0 for fresh fakes only, or e.g. 0.5",
                     high_open=True)
        check_int("replay_size", self.replay_size, self.batch_size, "at least batch_size")
        if self.until_accuracy is not None:
            check_number("until_accuracy", self.until_accuracy, 0.5, 1, "None disables it; e.g. 0.6",
                         low_open=True)
        check_int("max_d_steps", self.max_d_steps, self.d_steps, "at least d_steps")

    def to_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (``DiscriminatorUpdateConfig(**config.to_dict())`` round-trips).

        Returns:
            Field name -> value.
        """
        return asdict(self)


class DiscriminatorUpdateCallback:
    """Runs D phases on the schedule of a :class:`DiscriminatorUpdateConfig` (see module docstring).

    Call ``on_generator_update()`` after every generator update; the SB3 and TRL callbacks and
    ``seqgan-env train`` do.

    Args:
        reward_env: the env that trains D: anything with ``update_discriminator(fake)``
            (``DiscriminatorReward`` / ``DiscriminatorRewardVector``), made with
            ``update_every=None`` so that this callback is D's only schedule.
        sample_fake: ``n -> (n, T)`` tensor of finished generated token rows, D's fakes.
        config: the schedule; None: ``DiscriminatorUpdateConfig()``.
        mean_over_ranks: under data parallelism, averages a float over ranks (so every rank
            stops a train-until-accuracy phase after the same update); None: one process.

    Attributes:
        num_generator_updates: generator updates counted so far.
        num_discriminator_updates: D updates run so far.
        last_metrics: the metrics of the latest phase, or None.

    Raises:
        TypeError: ``reward_env`` has no ``update_discriminator``, or ``sample_fake`` is not callable.
        ValueError: ``reward_env`` already trains D on its own schedule (``update_every`` set).
    """

    def __init__(self, reward_env: SupportsDiscriminatorUpdate, sample_fake: Callable[[int], torch.Tensor],
                 config: DiscriminatorUpdateConfig | None = None,
                 mean_over_ranks: Callable[[float], float] | None = None) -> None:
        if not callable(getattr(reward_env, "update_discriminator", None)):
            raise TypeError(f"reward_env ({type(reward_env).__name__}) has no update_discriminator(fake); wrap the "
                            f"env in DiscriminatorReward / DiscriminatorRewardVector.")
        if not callable(sample_fake):
            raise TypeError("sample_fake must be a callable n -> (n, T) tensor of generated token ids.")
        every = getattr(getattr(reward_env, "trainer", None), "update_every", None)
        if isinstance(every, int):
            raise ValueError(
                f"the env already trains its discriminator itself, every {every} finished episodes "
                f"(update_every={every}); two schedules would train it twice. Fix: build the env with "
                f"update_every=None to schedule D with this callback, or drop the callback."
            )
        self.reward_env = reward_env
        self.sample_fake = sample_fake
        # Data-parallel: every rank must stop a train-until-accuracy phase after the same step (D's updates are
        # collectives), so the decision uses the accuracy averaged over ranks; None: one process.
        self.mean_over_ranks = mean_over_ranks
        self.config = config if config is not None else DiscriminatorUpdateConfig()
        self.num_generator_updates = 0
        self.num_discriminator_updates = 0
        self.last_metrics: dict[str, float] | None = None
        self._replay: torch.Tensor | None = None  # (<= replay_size, T) earlier fresh fakes, newest last
        self._replay_gen = torch.Generator().manual_seed(0)

    # -- template hooks ---------------------------------------------------------

    def _on_phase_start(self) -> None:
        """Called before the first D update of a phase."""

    def _on_d_update(self, metrics: dict[str, float]) -> None:
        """Called after every D update with that update's raw (unprefixed) metrics."""

    def _on_phase_end(self, metrics: dict[str, float]) -> None:
        """Called after a phase with its averaged, prefixed metrics."""

    # -- schedule ---------------------------------------------------------------

    def is_phase_due(self) -> bool:
        """Whether the generator update just counted triggers a D phase.

        Returns:
            True when D is not frozen and the count is a positive multiple of ``every``.
        """
        return not self.config.freeze and self.num_generator_updates > 0 \
            and self.num_generator_updates % self.config.every == 0

    def _sample(self) -> torch.Tensor:
        """(batch_size, T): fresh fakes, with ``replay_fraction`` of them replaced by earlier ones."""
        cfg = self.config
        n = cfg.batch_size
        with torch.no_grad():
            fake = self.sample_fake(n)
        fake = torch.as_tensor(fake)
        if fake.dim() != 2 or fake.shape[0] != n:
            raise ValueError(f"sample_fake({n}) returned shape {tuple(fake.shape)}; it must return ({n}, T) token "
                             f"ids (one finished generated sequence per row).")
        fake = fake.detach().long()
        if cfg.replay_fraction == 0:
            return fake
        k = round(cfg.replay_fraction * n) if self._replay is not None else 0
        batch = fake
        if k > 0:
            idx = torch.randint(len(self._replay), (k,), generator=self._replay_gen)
            batch = torch.cat([fake[: n - k], self._replay[idx].to(fake.device)])  # (n, T)
        kept = fake.cpu() if self._replay is None else torch.cat([self._replay, fake.cpu()])
        self._replay = kept[-cfg.replay_size:]
        return batch

    def on_generator_update(self) -> dict[str, float] | None:
        """Count one generator update; run a D phase when due.

        Returns:
            The phase's metrics averaged over its updates, keys prefixed ``discriminator/``
            (e.g. ``discriminator/loss``, ``discriminator/acc_real``, ``discriminator/acc_fake``),
            plus ``discriminator/updates`` (total D updates so far) and
            ``discriminator/phase_steps``; None when no phase ran.

        Raises:
            ValueError: ``sample_fake`` returned the wrong shape, or ``until_accuracy`` is set and
                ``update_discriminator`` reports no ``acc_real`` / ``acc_fake``.
        """
        self.num_generator_updates += 1
        if not self.is_phase_due():
            return None
        self._on_phase_start()
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}
        cfg = self.config
        steps = 0
        while True:
            metrics = self.reward_env.update_discriminator(self._sample())
            self.num_discriminator_updates += 1
            steps += 1
            metrics = dict(metrics or {})
            self._on_d_update(metrics)
            for k, v in metrics.items():
                try:
                    x = float(v)
                except (TypeError, ValueError):
                    continue  # non-numeric extras are not averaged
                sums[k] = sums.get(k, 0.0) + x
                counts[k] = counts.get(k, 0) + 1
            if steps >= cfg.max_d_steps or (steps >= cfg.d_steps and not self._wants_more(metrics)):
                break
        out = {PREFIX + k: sums[k] / counts[k] for k in sums}
        out[PREFIX + "updates"] = self.num_discriminator_updates
        out[PREFIX + "phase_steps"] = steps
        self.last_metrics = out
        self._on_phase_end(out)
        return out

    def _wants_more(self, metrics: dict[str, float]) -> bool:
        """Whether train-until-accuracy asks for another D update after these metrics."""
        target = self.config.until_accuracy
        if target is None:
            return False
        acc = batch_accuracy(metrics, "d_updates.until_accuracy")
        if self.mean_over_ranks is not None:
            acc = float(self.mean_over_ranks(acc))
        return acc < target

    # -- resume -------------------------------------------------------------------

    def state_dict(self) -> dict[str, int]:
        """JSON-able counters for resuming.

        Returns:
            ``num_generator_updates`` and ``num_discriminator_updates``.
        """
        return {"num_generator_updates": self.num_generator_updates,
                "num_discriminator_updates": self.num_discriminator_updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore counters from :meth:`state_dict`.

        Args:
            state: the dict ``state_dict()`` returned.

        Raises:
            ValueError: a counter missing, not an int, or negative.
        """
        for key in ("num_generator_updates", "num_discriminator_updates"):
            v = state.get(key) if isinstance(state, dict) else None
            check_int(f"callback state {key}", v, 0, "pass the dict from DiscriminatorUpdateCallback.state_dict()")
        self.num_generator_updates = state["num_generator_updates"]
        self.num_discriminator_updates = state["num_discriminator_updates"]


__all__ = ["DiscriminatorUpdateCallback", "DiscriminatorUpdateConfig", "PREFIX", "batch_accuracy"]
