"""Reward sources: the discriminator, plain Python callables and the agent's KL term, weighted and summed.

A reward is a weighted list of sources (as TRL's ``reward_funcs`` + ``reward_weights``):

- ``discriminator``: the wrapper's per-step discriminator reward (its mode and transform),
  times the weight.
- a callable ``f(tokens, texts) -> scores``: ``tokens`` (K, T) long, K finished sequences on
  the env's device, right-padded with PAD (EOS included where written); ``texts`` their K
  decoded strings; ``scores`` K finite numbers (a list, numpy array or tensor of shape (K,)).
  Paid, times the weight, on the step that writes a sequence's last token (0 on the other
  steps; an episode ended by a masked action keeps the env's ``invalid_action_reward`` and is
  not scored).
- ``kl``: the agent's KL(policy || reference) term. Only the trainer takes it (its weight is
  ``reinforce.kl_coef``); the env wrappers refuse it, because an env has no policy to compare.

A valid step's reward is the sum of the weighted contributions, and each contribution is
reported on its own as ``info["reward/<name>"]``. In configs and on the command line the list
is a spec string: ``"discriminator=1.0,mypkg.rewards:brevity=0.1"`` (``=weight`` optional,
default 1; a callable is named by its function's name, as TRL names reward functions).
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib
import inspect
import math
import os
import re
import sys
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch

from seqgan_env.utils.validation import check_number

DISCRIMINATOR = "discriminator"
KL = "kl"
RESERVED = (DISCRIMINATOR, KL)
INFO_PREFIX = "reward/"  # info and metric key of a source: reward/<name>
DEFAULT_SPEC = "discriminator=1.0"

ScoreFn = Callable[[torch.Tensor, list], Any]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
_FIX_SPEC = ('fix: write e.g. "discriminator=1.0,mypkg.rewards:brevity=0.1" (sources separated by commas, each '
             '"discriminator", "kl" or a "module:function" import path, with an optional =weight)')


@dataclass(frozen=True)
class RewardSource:
    """One weighted source. ``fn`` is None for the reserved ``discriminator`` and ``kl``, a callable otherwise.

    ``path``: the ``module:function`` it was imported from (None for an object given directly);
    it is what a config records.
    """

    name: str
    fn: ScoreFn | None = None
    weight: float = 1.0
    path: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise ValueError(f"reward source name {self.name!r} is invalid: it must be a non-empty identifier "
                             f"(letters, digits, _ . -); fix: rename the function or the source.")
        if self.name in RESERVED and self.fn is not None:
            raise ValueError(f"reward source name {self.name!r} is reserved for the built-in {self.name} term; "
                             f"fix: give your callable another name.")
        if self.name not in RESERVED and not callable(self.fn):
            raise ValueError(f"reward source {self.name!r} has fn={self.fn!r}, which is not callable: a source "
                             f"other than {list(RESERVED)} needs a function f(tokens, texts) -> scores.")
        object.__setattr__(self, "weight", check_number(
            f"reward source {self.name!r} weight", self.weight, fix="give a finite number, e.g. 0.1"))

    @property
    def spec(self) -> str | None:
        """The spec item that rebuilds this source (None for a callable without an import path)."""
        target = self.name if self.fn is None else self.path
        return None if target is None else f"{target}={self.weight:g}"


#: True inside ``deferred_imports()``: spec strings are checked for form only, nothing is imported.
_DEFER_IMPORTS: contextvars.ContextVar[bool] = contextvars.ContextVar("seqgan_defer_reward_imports", default=False)


@contextlib.contextmanager
def deferred_imports():
    """Parse reward-source specs without importing their modules (no user code runs).

    For commands that read a run's config but compute no reward (`seqgan-env sample`, `eval`): a
    ``module:function`` source becomes a placeholder that refuses to be called.
    """
    token = _DEFER_IMPORTS.set(True)
    try:
        yield
    finally:
        _DEFER_IMPORTS.reset(token)


class _NotImported:
    """Stands for a ``module:function`` source parsed under ``deferred_imports()``."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __call__(self, tokens, texts):
        raise RuntimeError(f"reward source {self.path!r} was parsed without importing it (deferred_imports()); "
                           f"build the config outside deferred_imports() to compute rewards.")


def _check_signature(path: str, fn: Callable) -> None:
    """Refuse a callable that cannot be called as ``fn(tokens, texts)`` (before any call: ``os:system`` is never run)."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):  # some builtins have none: the test call decides
        return
    try:
        sig.bind(None, None)
    except TypeError as exc:
        raise ValueError(f"reward source {path!r} has signature {path.partition(':')[2]}{sig}, which cannot be "
                         f"called as f(tokens, texts) ({exc}); fix: name a function of two arguments, tokens (K, T) "
                         f"and K texts, returning K scores.") from None


#: The test call's batch: two finished sequences of ids 3..5 (any vocabulary has them), EOS (2), PAD (0) after.
_PROBE_TOKENS = ((3, 4, 2, 0), (5, 2, 0, 0))
_PROBE_TEXTS = ("ab", "c")


def check_source(source: "RewardSource") -> None:
    """A test call of a callable source on a two-sequence batch: it must return two finite scores.

    A source that raises, returns something else (None, strings, another shape) or non-finite scores is
    refused with its name, before any training.
    """
    tokens = torch.tensor(_PROBE_TOKENS, dtype=torch.long)  # (2, 4)
    try:
        score_source(source, tokens, list(_PROBE_TEXTS))
    except RewardSourceError as exc:
        cause = exc.__cause__
        where = f"reward source {source.name!r}" + (f" ({source.path})" if source.path else "")
        raise RewardSourceError(f"{where} raised {type(cause).__name__}: {cause} (at {_raised_at(cause)}) on a test "
                                f"call with 2 sequences {list(_PROBE_TEXTS)} at config time, before any training; "
                                f"fix: make it score any batch of finished sequences, tokens (K, T) and K texts.") \
            from cause
    except ValueError as exc:
        raise ValueError(f"{str(exc).rstrip('.')} (a test call with 2 sequences {list(_PROBE_TEXTS)} at config "
                         f"time).") from None


def import_callable(path: str) -> Callable:
    """``"module:function"`` (or ``module:Class.attr``) -> the callable, imported as ``python -m`` would.

    The current directory is searched after ``sys.path`` (a console script does not put it there),
    so a ``rewards.py`` beside the command is found.
    """
    module_name, sep, attr = path.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"reward source {path!r} is not an import path 'module:function'; {_FIX_SPEC}.")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.append(os.getcwd())
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"reward source {path!r}: cannot import module {module_name!r} ({exc}); fix: make it "
                         f"importable (run from its directory, set PYTHONPATH or pip install it).") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"reward source {path!r}: module {module_name!r} has no attribute {attr!r}; fix: check "
                             f"the function's name.")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ValueError(f"reward source {path!r} is a {type(obj).__name__}, not a function f(tokens, texts) -> "
                         f"scores.")
    return obj


def _parse_item(item: str) -> RewardSource:
    target, sep, raw = item.strip().rpartition("=")
    if not sep:
        target, raw = raw, "1"
    target = target.strip()
    try:
        weight = float(raw)
    except ValueError:
        raise ValueError(f"reward source {item.strip()!r} has weight {raw.strip()!r}, not a number; {_FIX_SPEC}.") \
            from None
    if target in RESERVED:
        return RewardSource(target, None, weight)
    if ":" not in target:
        raise ValueError(f"reward source {target!r} is unknown: it must be one of {list(RESERVED)} or an import path "
                         f"'module:function'; {_FIX_SPEC}.")
    name = target.rpartition(":")[2].rpartition(".")[2]
    if _DEFER_IMPORTS.get():
        module_name, _, attr = target.partition(":")
        if not module_name or not attr:
            raise ValueError(f"reward source {target!r} is not an import path 'module:function'; {_FIX_SPEC}.")
        return RewardSource(name, _NotImported(target), weight, target)
    fn = import_callable(target)
    _check_signature(target, fn)
    source = RewardSource(name, fn, weight, target)
    key = (target, id(fn))
    if key not in _PROBED:  # once per function and process: configs are built more than once
        check_source(source)
        _PROBED.add(key)
    return source


_PROBED: set[tuple[str, int]] = set()


def _as_source(item: Any) -> RewardSource:
    if isinstance(item, RewardSource):
        return item
    if isinstance(item, str):
        return _parse_item(item)
    if callable(item):
        return RewardSource(getattr(item, "__name__", type(item).__name__), item)
    raise ValueError(f"reward source {item!r} is a {type(item).__name__}: give a RewardSource, a spec string or a "
                     f"function f(tokens, texts) -> scores.")


def as_sources(value: str | Sequence[Any] | None) -> tuple[RewardSource, ...]:
    """The sources of a spec string, or of a list of RewardSource / spec items / callables; None: D alone.

    Refuses an empty list and two sources of one name.
    """
    if value is None:
        value = DEFAULT_SPEC
    if isinstance(value, str):
        items: Iterable[Any] = [s for s in value.split(",") if s.strip()]
    elif isinstance(value, (list, tuple)):
        items = value
    else:
        raise ValueError(f"reward sources must be a spec string or a list, got {type(value).__name__}; {_FIX_SPEC}.")
    sources = tuple(_as_source(item) for item in items)
    if not sources:
        raise ValueError(f"reward sources {value!r} name no source; {_FIX_SPEC}.")
    seen: dict[str, RewardSource] = {}
    for s in sources:
        if s.name in seen:
            raise ValueError(f"reward sources name {s.name!r} twice ({seen[s.name].path or s.name} and "
                             f"{s.path or s.name}): each is logged as reward/{s.name}; fix: drop one, or wrap one in "
                             f"a function with another name.")
        seen[s.name] = s
    return sources


def split_kl(value: str | Sequence[Any] | None) -> tuple[tuple[RewardSource, ...], float | None]:
    """(the env's sources, the KL term's weight or None): a trainer's list, split where it is paid."""
    sources = as_sources(value)
    kl = [s.weight for s in sources if s.name == KL]
    return tuple(s for s in sources if s.name != KL), (kl[0] if kl else None)


def weighted(x: torch.Tensor, weight: float) -> torch.Tensor:
    """``weight * x``, and ``x`` itself for weight 1: the default reward stays bit-identical."""
    return x if weight == 1.0 else weight * x


class RewardSourceError(ValueError):
    """A reward source's callable raised; the message names the source, its import path and the file:line of
    the raise (the original exception is chained as ``__cause__``)."""


def _raised_at(exc: BaseException) -> str:
    """``file:line`` of the innermost frame of ``exc``'s traceback (where it was raised)."""
    tb = exc.__traceback__
    if tb is None:
        return "an unknown place"
    while tb.tb_next is not None:
        tb = tb.tb_next
    return f"{tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}"


def score_source(source: RewardSource, tokens: torch.Tensor, texts: list[str]) -> torch.Tensor:
    """(K, T) long, K texts -> (K,) float32 unweighted scores of ``source.fn``, checked on the way out."""
    k = tokens.shape[0]
    where = f"reward source {source.name!r}" + (f" ({source.path})" if source.path else "")
    try:
        raw = source.fn(tokens, texts)
    except Exception as exc:  # the user's code: say which source, and where it raised
        raise RewardSourceError(f"{where} raised {type(exc).__name__}: {exc} (at {_raised_at(exc)}); fix: correct "
                                f"the function (it is called with tokens (K, T) and K texts).") from exc
    if raw is None:
        raise ValueError(f"{where} returned None (a missing return?); fix: return one score per sequence (a list, "
                         f"numpy array or tensor of shape ({k},)).")
    try:
        scores = (raw.detach() if torch.is_tensor(raw) else torch.as_tensor(np.asarray(raw, dtype=np.float64)))
        scores = scores.to(tokens.device, torch.float32)
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"{where} returned {type(raw).__name__} {raw!r:.80}, not numbers; fix: return one score per "
                         f"sequence (a list, numpy array or tensor of shape ({k},)).") from None
    if tuple(scores.shape) != (k,):
        raise ValueError(f"{where} returned shape {tuple(scores.shape)} for {k} sequences; fix: return one score per "
                         f"sequence, shape ({k},).")
    if not bool(torch.isfinite(scores).all()):
        bad = scores[~torch.isfinite(scores)][0].item()
        raise ValueError(f"{where} returned a non-finite score ({bad}) for one of {texts[:3]}...; fix: return finite "
                         f"numbers (clip or guard the division).")
    return scores


class SourceCombiner:
    """The env wrappers' half of the sources: D's weight, the callables, the weighted sum, the info entries.

    ``combine`` takes the batch's discriminator rewards and its finished rows and returns the
    total and each source's weighted contribution, all (B,). The KL term is the agent's: refused.
    """

    def __init__(self, sources: str | Sequence[Any] | None) -> None:
        self.sources = as_sources(sources)
        if any(s.name == KL for s in self.sources):
            raise ValueError("reward source 'kl' is the agent's KL term to its reference policy; an env wrapper has "
                             "no policy to compare with. Fix: drop it from the env's sources, and set it on the "
                             "agent (seqgan-env train: reward.sources kl=<w> or reinforce.kl_coef=<w>).")
        d = [s.weight for s in self.sources if s.name == DISCRIMINATOR]
        self.discriminator_weight: float | None = d[0] if d else None
        self.info_keys = tuple(INFO_PREFIX + s.name for s in self.sources)

    @property
    def uses_discriminator(self) -> bool:
        return self.discriminator_weight is not None

    @property
    def has_callables(self) -> bool:
        return any(s.fn is not None for s in self.sources)

    def combine(
        self, d_rewards: torch.Tensor | None, finished: torch.Tensor, tokens: torch.Tensor,
        texts_of: Callable[[torch.Tensor], list[str]],
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(total (B,), {"reward/<name>": weighted contribution (B,)}) in the sources' order.

        d_rewards (B,): the discriminator's per-step rewards (None when it is no source);
        finished (B,) bool: rows whose sequence ended with the token written this step;
        tokens (B, T) long; texts_of(idx (K,)) -> the K finished rows' texts (called only if needed).
        """
        parts: dict[str, torch.Tensor] = {}
        idx = finished.nonzero().squeeze(1) if self.has_callables else None  # (K,)
        texts = texts_of(idx) if idx is not None and idx.numel() else []
        for s in self.sources:
            if s.fn is None:  # the discriminator (kl was refused)
                parts[INFO_PREFIX + s.name] = weighted(d_rewards, s.weight)
                continue
            part = torch.zeros(finished.shape[0], dtype=torch.float32, device=tokens.device)  # (B,)
            if idx.numel():
                part[idx] = weighted(score_source(s, tokens[idx], texts), s.weight)
            parts[INFO_PREFIX + s.name] = part
        values = list(parts.values())
        total = values[0]
        for v in values[1:]:
            total = total + v
        return total, parts


__all__ = ["DEFAULT_SPEC", "DISCRIMINATOR", "INFO_PREFIX", "KL", "RewardSource", "RewardSourceError", "SourceCombiner",
           "as_sources", "check_source", "deferred_imports", "import_callable", "score_source", "split_kl", "weighted"]
