"""A stub discriminator with scripted scores, for deterministic reward tests."""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import torch


class ScriptedDiscriminator:
    """A ``PrefixScorer`` whose realness logits are scripted, and whose ``update`` only records its calls.

    Implements what the reward wrappers and the D trainer use: ``score_logits(tokens (B, T)) ->
    (B, T)`` (the logit of every prefix), ``update(real, fake) -> metrics``, ``state_dict()`` and
    ``load_state_dict()``. Its scores never change unless you change them, so an env paid by it
    gives the same rewards on every run, also when the wrapper "co-trains" it (``update_every``
    set): an update is recorded in ``updates`` and counted in ``num_updates``, nothing more.

    Build it from a function of the tokens (``ScriptedDiscriminator(fn)``), a table of prefixes
    (:meth:`from_table`) or per-token weights summed along the prefix (:meth:`token_sum`,
    :meth:`count`). With neither, every logit is ``default``.

    Args:
        fn: ``fn(tokens (B, T) long) -> (B, T)`` float logits. It must be causal (the logit at t
            depends on ``tokens[:, :t+1]`` only), as a real discriminator is; the reward wrappers
            rely on it.
        default: the logit of every prefix when ``fn`` is None.

    Raises:
        TypeError: ``fn`` is given and not callable.
    """

    def __init__(self, fn: Callable[[torch.Tensor], Any] | None = None, *, default: float = 0.0) -> None:
        if fn is not None and not callable(fn):
            raise TypeError(f"ScriptedDiscriminator fn={fn!r} is not callable; fix: pass fn(tokens (B, T)) -> (B, T).")
        self.fn = fn
        self.default = float(default)
        self.num_updates = 0
        self.updates: list[tuple[torch.Tensor, torch.Tensor]] = []  # (real, fake) of every update
        self.loaded: list[dict] = []  # every state dict given to load_state_dict
        self.calls = 0  # score_logits calls

    # -- constructors ----------------------------------------------------------------
    @classmethod
    def token_sum(cls, weights: Mapping[int, float] | Sequence[float], bias: float = 0.0) -> "ScriptedDiscriminator":
        """Logit of a prefix = ``bias`` + the sum of its tokens' weights (causal by construction).

        Args:
            weights: token id -> weight (a mapping; ids not in it weigh 0), or a sequence indexed
                by token id (ids past its end weigh 0).
            bias: added to every prefix's sum.

        Returns:
            The scorer.

        Raises:
            ValueError: a token id in ``weights`` is negative.
        """
        table = dict(weights) if isinstance(weights, Mapping) else dict(enumerate(weights))
        if any(int(k) < 0 for k in table):
            raise ValueError(f"token_sum weights have a negative token id {min(table)}; fix: use ids >= 0.")
        size = max(table, default=-1) + 1
        w = torch.zeros(size + 1)  # the last slot weighs every id >= size
        for k, v in table.items():
            w[int(k)] = float(v)

        def fn(tokens: torch.Tensor) -> torch.Tensor:
            return bias + w[tokens.clamp(max=size)].cumsum(dim=1)  # (B, T)

        return cls(fn)

    @classmethod
    def count(cls, token: int, bias: float = -1.0) -> "ScriptedDiscriminator":
        """Logit of a prefix = (number of ``token`` in it) + ``bias``: hand-computable rewards.

        Args:
            token: the token id counted.
            bias: the logit of a prefix without it (default -1).

        Returns:
            The scorer.

        Raises:
            ValueError: ``token`` is negative.
        """
        return cls.token_sum({int(token): 1.0}, bias)

    @classmethod
    def from_table(cls, table: Mapping[Sequence[int], float], default: float = 0.0) -> "ScriptedDiscriminator":
        """Logit of a prefix looked up in ``table`` (a tuple of token ids -> logit), ``default`` if absent.

        Args:
            table: prefix (tuple of ids, as written, PAD never included) -> logit.
            default: the logit of a prefix not in the table.

        Returns:
            The scorer.

        Raises:
            ValueError: a key is not a sequence of ints.
        """
        keys = {}
        for k, v in table.items():
            try:
                keys[tuple(int(i) for i in k)] = float(v)
            except TypeError:
                raise ValueError(f"from_table key {k!r} is not a sequence of token ids; fix: use tuples such as "
                                 f"(3, 4).") from None

        def fn(tokens: torch.Tensor) -> torch.Tensor:
            rows = tokens.tolist()
            return torch.tensor([[keys.get(tuple(r[: t + 1]), default) for t in range(len(r))] for r in rows],
                                dtype=torch.float32).reshape(tokens.shape)

        return cls(fn)

    # -- the PrefixScorer protocol ---------------------------------------------------
    def score_logits(self, tokens: Any) -> torch.Tensor:
        """(B, T) token ids -> (B, T) float32 realness logits of every prefix.

        Args:
            tokens: (B, T) integer ids (tensor, array or nested lists).

        Returns:
            (B, T) float32 tensor on the tokens' device.

        Raises:
            ValueError: ``tokens`` is not 2-D, or the scripted function returns another shape.
        """
        tokens = torch.as_tensor(tokens).long()
        if tokens.dim() != 2:
            raise ValueError(f"score_logits expects (B, T) tokens, got shape {tuple(tokens.shape)}.")
        self.calls += 1
        if self.fn is None:
            return torch.full(tokens.shape, self.default, dtype=torch.float32, device=tokens.device)
        out = torch.as_tensor(self.fn(tokens)).to(tokens.device, torch.float32)
        if out.shape != tokens.shape:
            raise ValueError(f"the scripted fn returned shape {tuple(out.shape)} for tokens {tuple(tokens.shape)}; "
                             f"fix: return one logit per prefix, shape (B, T).")
        return out

    def score(self, tokens: Any) -> torch.Tensor:
        """(B, T) -> (B, T) probabilities: ``sigmoid(score_logits(tokens))``.

        Args:
            tokens: (B, T) integer ids (tensor, array or nested lists).

        Returns:
            (B, T) float32 probabilities that each prefix is real.
        """
        return torch.sigmoid(self.score_logits(tokens))

    # -- what the D trainer calls ----------------------------------------------------
    def update(self, real: Any, fake: Any) -> dict[str, float]:
        """Record one "update" (the scores do not change) and return metrics shaped like ``Discriminator.update``'s.

        Args:
            real: (Nr, T) real sequences.
            fake: (Nf, T) generated sequences.

        Returns:
            ``loss`` (0.0), ``acc_real`` / ``acc_fake`` (fraction of whole sequences scored above /
            at or below logit 0), ``grad_norm`` (0.0), ``lr`` (0.0).

        Raises:
            ValueError: ``real`` or ``fake`` is not 2-D.
        """
        real, fake = torch.as_tensor(real).long(), torch.as_tensor(fake).long()
        self.updates.append((real.clone(), fake.clone()))
        self.num_updates += 1
        acc_real = float((self._last(real) > 0).float().mean()) if len(real) else 0.0
        acc_fake = float((self._last(fake) <= 0).float().mean()) if len(fake) else 0.0
        return {"loss": 0.0, "acc_real": acc_real, "acc_fake": acc_fake, "grad_norm": 0.0, "lr": 0.0}

    def _last(self, rows: torch.Tensor) -> torch.Tensor:
        logits = self.score_logits(rows)  # (N, T)
        n = (rows != 0).sum(dim=1).clamp(min=1) - 1  # (N,) index of the last written token (PAD = 0)
        return logits.gather(1, n.unsqueeze(1)).squeeze(1)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """What a checkpoint or a weight broadcast carries.

        Returns:
            ``{"num_updates": tensor}``.
        """
        return {"num_updates": torch.tensor(self.num_updates)}

    def load_state_dict(self, state_dict: dict, source: str = "state dict") -> None:
        """Record ``state_dict`` in ``loaded`` and take its ``num_updates`` (the scores do not change).

        Args:
            state_dict: a dict as ``state_dict()`` returns it.
            source: how the dict is named in an error message.

        Raises:
            ValueError: ``state_dict`` has no ``num_updates``.
        """
        if "num_updates" not in state_dict:
            raise ValueError(f"{source} has no 'num_updates': it is not a ScriptedDiscriminator's state dict.")
        self.loaded.append(dict(state_dict))
        self.num_updates = int(state_dict["num_updates"])
