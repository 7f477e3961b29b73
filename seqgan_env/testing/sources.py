"""check_reward_source: the contract of a reward source callable ``f(tokens, texts) -> scores``."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from seqgan_env.data.tokenizer import CharTokenizer
from seqgan_env.rewards.sources import _NAME, RewardSource, as_sources, score_source
from seqgan_env.testing.errors import CheckError, fail

#: The default sample: short and long texts, a repeat, and (the longest) one that fills the row without EOS.
SAMPLE_TEXTS = ("ab", "cab", "a", "abc ba", "ab", "bcab", "c ab c")

_FIX_SHAPE = "return one score per sequence: a list, numpy array or tensor of shape (K,)"


def _resolve(source: Any) -> RewardSource:
    if isinstance(source, RewardSource):
        s = source
    elif callable(source) and not isinstance(source, str) and not _NAME.match(getattr(source, "__name__", "")):
        s = RewardSource("source", source)  # a lambda or a callable object: checked under a neutral name
    elif isinstance(source, str) or callable(source):
        try:
            (s,) = as_sources([source])
        except ValueError as err:
            raise CheckError(f"reward source {source!r} cannot be used: {err}") from None
    else:
        raise CheckError(f"reward source {source!r} is a {type(source).__name__}; fix: pass a function f(tokens, "
                         f"texts) -> scores, a RewardSource or a 'module:function' import path")
    if s.fn is None:
        raise CheckError(f"reward source {s.name!r} is a built-in term, not a callable; fix: check your own "
                         f"function, e.g. check_reward_source(mypkg.rewards.brevity)")
    return s


def _as_scores(raw: Any, k: int, texts: Sequence[str], where: str) -> np.ndarray:
    """The (K,) float64 scores of one call's return value, or CheckError naming what is wrong."""
    if raw is None:
        fail(f"{where} returned None", f"{_FIX_SHAPE} (is a `return` missing?)")
    if isinstance(raw, (str, bytes, dict, set)) or not isinstance(raw, (list, tuple, np.ndarray, torch.Tensor)):
        fail(f"{where} returned a {type(raw).__name__} ({raw!r:.60}), not a sequence of scores", _FIX_SHAPE)
    if torch.is_tensor(raw):
        if raw.dtype.is_complex:
            fail(f"{where} returned a tensor of dtype {raw.dtype}", "return real numbers (float32 or float64)")
        arr = raw.detach().cpu().double().numpy()
    else:
        if isinstance(raw, np.ndarray) and raw.dtype.kind not in "biuf":
            fail(f"{where} returned an array of dtype {raw.dtype}", "return real numbers (float32 or float64)")
        try:
            arr = np.asarray(raw, dtype=np.float64)
        except (TypeError, ValueError):
            fail(f"{where} returned {type(raw).__name__} {raw!r:.80}, which is not numbers", _FIX_SHAPE)
    if arr.shape != (k,):
        hint = " (squeeze the trailing axis)" if arr.shape == (k, 1) else ""
        got = f"{arr.shape[0]} scores" if arr.ndim == 1 else f"shape {arr.shape}"
        fail(f"{where} returned {got} for {k} sequences", f"{_FIX_SHAPE}, here ({k},){hint}")
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        i = int(bad[0])
        fail(f"{where} returned a non-finite score {arr[i]} for sequence {i} ({texts[i]!r})",
             "return finite numbers (guard divisions by zero, clip logs, replace NaN)")
    return arr


def _call(source: RewardSource, tokens: torch.Tensor, texts: list[str], where: str) -> np.ndarray:
    try:
        raw = source.fn(tokens.clone(), list(texts))
    except Exception as err:  # noqa: BLE001  the user's function: report, with the input that broke it
        raise CheckError(f"{where} raised {type(err).__name__}: {err} (on {len(texts)} sequences such as "
                         f"{texts[:2]}); fix: accept tokens (K, T) long and K texts, for any K >= 1") from err
    return _as_scores(raw, len(texts), texts, where)


def _sample(tokens: Any, texts: Sequence[str] | None, tokenizer: Any) -> tuple[torch.Tensor, list[str]]:
    if tokens is None:
        texts = list(SAMPLE_TEXTS if texts is None else texts)
        tokenizer = tokenizer or CharTokenizer.from_texts(texts)
        width = max(len(tokenizer.encode(t)) for t in texts)  # the longest text fills its row: no EOS
        return tokenizer.encode_batch(texts, width), texts
    tokens = torch.as_tensor(tokens)
    if tokens.dim() != 2 or tokens.dtype != torch.long:
        raise ValueError(f"check_reward_source: tokens must be a (K, T) long tensor, got dtype {tokens.dtype} and "
                         f"shape {tuple(tokens.shape)}.")
    if texts is None:
        if tokenizer is None:
            raise ValueError("check_reward_source: with tokens, pass their texts or the tokenizer that decodes them.")
        texts = tokenizer.decode_batch(tokens)
    texts = list(texts)
    if len(texts) != tokens.shape[0]:
        raise ValueError(f"check_reward_source: {tokens.shape[0]} token rows but {len(texts)} texts.")
    return tokens, texts


def check_reward_source(
    source: Any,
    tokens: Any = None,
    texts: Sequence[str] | None = None,
    *,
    tokenizer: Any = None,
    atol: float = 1e-6,
) -> np.ndarray:
    """Check a reward source against the contract the env wrappers call it with.

    The contract (``seqgan_env.rewards.sources``): ``f(tokens, texts) -> scores`` gets ``tokens``
    (K, T) long, K finished sequences right-padded with PAD (EOS included where written), and
    their K decoded ``texts``; it returns K finite numbers (a list, numpy array or tensor of
    shape (K,)). Checked on a sample: the return's type, dtype, shape and finiteness; that the
    env's own conversion (``score_source``) accepts it; determinism (the same input twice gives
    the same scores); and batch/row consistency (each row scored alone, and the batch in reverse
    order, give the batch's scores: a score may depend only on its own sequence).

    Args:
        source: the function, a ``RewardSource`` around it, or its ``"module:function"`` path.
        tokens: (K, T) long sample sequences (default: ``SAMPLE_TEXTS`` encoded with ``tokenizer``,
            the longest filling its row without EOS).
        texts: their K texts (default: decoded with ``tokenizer``); without ``tokens``, the sample
            texts to encode.
        tokenizer: encodes / decodes the sample (default: a character tokenizer of the texts).
            Pass your env's tokenizer if your source reads token ids.
        atol: absolute tolerance of the determinism and batch/row comparisons.

    Returns:
        The (K,) float64 scores of the sample.

    Raises:
        CheckError: (an AssertionError) the source breaks the contract; the message says how and
            the fix.
        ValueError: the sample itself is malformed (tokens not (K, T) long, texts of another length).
    """
    s = _resolve(source)
    tokens, texts = _sample(tokens, texts, tokenizer)
    where = f"reward source {s.name!r}"
    scores = _call(s, tokens, texts, where)
    try:
        score_source(s, tokens.clone(), list(texts))
    except ValueError as err:
        raise CheckError(f"the env refuses what {where} returned: {err}") from None
    again = _call(s, tokens, texts, where)
    diff = np.flatnonzero(~np.isclose(scores, again, atol=atol, rtol=0))
    if diff.size:
        i = int(diff[0])
        fail(f"{where} is not deterministic: sequence {i} ({texts[i]!r}) scored {scores[i]} and then {again[i]} on "
             f"the same input", "make the score a function of the sequence (seed any randomness from the input, "
             "or drop it); the env compares and replays rewards")
    for i in range(len(texts)):
        alone = _call(s, tokens[i : i + 1], [texts[i]], where)[0]
        if not np.isclose(alone, scores[i], atol=atol, rtol=0):
            fail(f"{where} scored sequence {i} ({texts[i]!r}) {scores[i]} in a batch of {len(texts)} but {alone} "
                 f"alone", "score each sequence on its own (no normalisation over the batch, no dependence on "
                 "the other rows or the row's position); the env batches whichever episodes end together")
    rev = _call(s, tokens.flip(0), texts[::-1], where)[::-1]
    diff = np.flatnonzero(~np.isclose(scores, rev, atol=atol, rtol=0))
    if diff.size:
        i = int(diff[0])
        fail(f"{where} scored sequence {i} ({texts[i]!r}) {scores[i]} in order but {rev[i]} with the batch reversed",
             "score each sequence on its own, whatever its position in the batch")
    return scores
