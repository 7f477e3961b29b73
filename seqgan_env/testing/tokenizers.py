"""check_tokenizer: the tokenizer protocol the env, the data loader and the models expect."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Sequence

import torch

from seqgan_env.data.tokenizer import BOS_ID, EOS_ID, PAD_ID, SPECIAL_TOKENS
from seqgan_env.testing.errors import CheckError, fail

NUM_SPECIAL = len(SPECIAL_TOKENS)
_ID_ATTRS = {"pad": PAD_ID, "bos": BOS_ID, "eos": EOS_ID}
_FIX_IDS = "put PAD, BOS, EOS at ids 0, 1, 2 and the symbols from id 3 on (seqgan_env.data.tokenizer's contract)"


def _default_texts(tok: Any) -> list[str]:
    symbols = getattr(tok, "symbols", None)
    if not symbols:
        raise ValueError("check_tokenizer needs texts= for a tokenizer without `symbols`: pass a few lines of your "
                         "data (each must round-trip through encode/decode).")
    s = list(symbols)
    return [s[0], "".join(s[:5]), "".join(reversed(s[-7:])), s[-1] * 3, "".join(s[::2][:9])]


def _special_names(tok: Any) -> tuple[str, ...]:
    names = getattr(tok, "special_tokens", SPECIAL_TOKENS)
    if isinstance(names, (tuple, list)) and len(names) == NUM_SPECIAL and all(isinstance(n, str) for n in names):
        return tuple(names)
    fail(f"tokenizer.special_tokens is {names!r}, not the 3 strings of PAD, BOS, EOS", _FIX_IDS)
    return ()  # unreachable


def _check_refused_in_data(tok: Any, names: Sequence[str]) -> int:
    """Each special token's spelling, as a line of data, is refused by the loader or read as plain symbols."""
    from seqgan_env.data.text import DataError, load_texts

    refused = 0
    for name in names:
        try:
            ids = list(tok.encode(name))
        except (ValueError, KeyError):
            refused += 1  # e.g. UnknownSymbolError: a char tokenizer without '<'
            continue
        if not any(i < NUM_SPECIAL for i in ids):
            continue  # spelled with ordinary symbols: plain text, and the round trip is checked elsewhere
        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / "line.txt"
            path.write_text(f"{name}\n", encoding="utf-8")
            try:
                load_texts(path, None, tokenizer=tok, check_length=False)
            except DataError:
                refused += 1
                continue
        fail(f"a data line {name!r} encodes to the special ids {ids} and the data loader accepted it",
             "a line must never hold PAD/BOS/EOS: load data with seqgan_env.data.text.load_texts(..., tokenizer=tok)")
    return refused


def check_tokenizer(tok: Any, texts: Sequence[str] | None = None, *, max_length: int | None = None) -> dict:
    """Check a tokenizer against the protocol of ``seqgan_env.data.tokenizer`` / ``subword`` and the env spec.

    Checked: ``vocab_size`` (an int with room for PAD, BOS, EOS and a symbol); PAD=0, BOS=1, EOS=2
    (any ``pad_id`` / ``pad_token_id`` / ``bos_*`` / ``eos_*`` attribute, ``special_tokens`` if
    present); ``encode`` gives symbol ids only (in ``[3, vocab_size)``, no BOS/EOS added);
    ``decode(encode(t)) == t``; ``encode_batch(texts, T)`` is (N, T) long with rows
    ``ids.. [EOS] PAD..`` (no EOS in a row the text fills); ``decode`` of such a row, and of one
    with BOS before and symbols after EOS, gives the text back (it stops at EOS and skips PAD and
    BOS); ``decode_batch`` agrees; and a line of data spelling a special token is refused by the
    loader (or read as plain symbols).

    Args:
        tok: the tokenizer (``encode``, ``encode_batch``, ``decode``, ``decode_batch``, ``vocab_size``).
        texts: sample texts that must round-trip (default: built from ``tok.symbols``; required for
            a tokenizer without ``symbols``).
        max_length: the width of the ``encode_batch`` rows (default: the longest sample, which then
            fills its row without EOS).

    Returns:
        ``{"texts": N, "max_length": T, "refused_specials": k}``.

    Raises:
        CheckError: (an AssertionError) the tokenizer breaks the protocol; the message names the
            method, the input and the fix.
        ValueError: no ``texts`` for a tokenizer without ``symbols``, or ``max_length`` shorter than a sample.
    """
    name = type(tok).__name__
    v = getattr(tok, "vocab_size", None)
    if isinstance(v, bool) or not isinstance(v, int) or v <= NUM_SPECIAL:
        fail(f"{name}.vocab_size is {v!r}", f"an int > {NUM_SPECIAL}: PAD, BOS, EOS and at least one symbol")
    for kind, want in _ID_ATTRS.items():
        for attr in (f"{kind}_id", f"{kind}_token_id"):
            got = getattr(tok, attr, None)
            if got is not None and got != want:
                fail(f"{name}.{attr} is {got!r}, but the env writes {kind.upper()} as id {want}", _FIX_IDS)
    names = _special_names(tok)
    if len(set(names)) != NUM_SPECIAL:
        fail(f"{name}.special_tokens {names!r} are not 3 distinct strings", _FIX_IDS)
    texts = list(_default_texts(tok) if texts is None else texts)
    encoded = []
    for t in texts:
        try:
            ids = [int(i) for i in tok.encode(t)]
        except Exception as err:  # noqa: BLE001
            raise CheckError(f"{name}.encode({t!r}) raised {type(err).__name__}: {err}; fix: pass sample texts "
                             f"the tokenizer covers, or fix encode") from err
        bad = [i for i in ids if not NUM_SPECIAL <= i < v]
        if bad:
            what = {PAD_ID: "PAD", BOS_ID: "BOS", EOS_ID: "EOS"}.get(bad[0], "out of range")
            fail(f"{name}.encode({t!r}) gave id {bad[0]} ({what}) in {ids}: encode must give symbol ids in "
                 f"[{NUM_SPECIAL}, {v}) only, no BOS/EOS", _FIX_IDS)
        if t and not ids:
            fail(f"{name}.encode({t!r}) gave no ids", "encode every character of the text")
        back = tok.decode(ids)
        if back != t:
            fail(f"{name}.decode(encode({t!r})) is {back!r}: the round trip changes the text",
                 "make decode the inverse of encode on your data (no dropped, added or normalised characters)")
        encoded.append(ids)
    width = max(len(ids) for ids in encoded)
    width = max(width, 1) if max_length is None else max_length
    if width < max(len(ids) for ids in encoded):
        raise ValueError(f"check_tokenizer: max_length={max_length} is shorter than a sample text's {width} tokens.")
    rows = tok.encode_batch(texts, width)
    if not torch.is_tensor(rows) or rows.dtype != torch.long or tuple(rows.shape) != (len(texts), width):
        got = f"{type(rows).__name__} {getattr(rows, 'dtype', '')} {tuple(getattr(rows, 'shape', ()))}"
        fail(f"{name}.encode_batch({len(texts)} texts, {width}) returned {got}",
             f"return a torch.long tensor of shape ({len(texts)}, {width})")
    for i, (t, ids) in enumerate(zip(texts, encoded)):
        want = ids + ([EOS_ID] if len(ids) < width else [])
        want += [PAD_ID] * (width - len(want))
        got = rows[i].tolist()
        if got != want:
            j = next(k for k in range(width) if got[k] != want[k])
            role = "a symbol" if j < len(ids) else ("EOS" if j == len(ids) else "PAD (id 0)")
            fail(f"{name}.encode_batch row {i} ({t!r}) is {got}; slot {j} holds {got[j]} where the env expects "
                 f"{role} ({want[j]})", f"write rows as ids.. [EOS] PAD.. (EOS only if the text is shorter than the "
                                       f"row); {_FIX_IDS}")
        back = tok.decode(rows[i])
        if back != t:
            fail(f"{name}.decode(row {got}) is {back!r}, not {t!r}", "decode must stop at EOS and skip PAD")
        noisy = [BOS_ID, *ids, EOS_ID, *(ids[:1] or [NUM_SPECIAL]), PAD_ID]
        back = tok.decode(noisy)
        if back != t:
            fail(f"{name}.decode({noisy}) is {back!r}, not {t!r}", "decode must skip BOS and PAD and stop at the "
                                                                     "first EOS (what follows it is not text)")
    batch = list(tok.decode_batch(rows))
    if batch != texts:
        i = next(k for k in range(len(texts)) if k >= len(batch) or batch[k] != texts[k])
        fail(f"{name}.decode_batch gave {batch[i] if i < len(batch) else None!r} for row {i}, not {texts[i]!r}",
             "decode_batch(rows) must equal [decode(r) for r in rows]")
    refused = _check_refused_in_data(tok, names)
    return {"texts": len(texts), "max_length": width, "refused_specials": refused}
