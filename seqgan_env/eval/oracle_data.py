"""Real data for the SeqGAN synthetic benchmark: sequences sampled from the oracle LSTM.

Contract
--------
* ``IntTokenizer(num_symbols=5000, offset=3)`` maps oracle token ``k`` in
  ``[0, num_symbols)`` to model id ``k + offset``; ids 0, 1, 2 stay PAD, BOS, EOS.
  ``vocab_size`` is the total number of ids, ``num_symbols + offset`` (5,003), the
  same meaning as ``CharTokenizer.vocab_size``, so the env and models take it as is.
* ``decode`` gives the oracle token numbers separated by single spaces, stops at the
  first EOS and skips PAD and BOS (``[1, 3, 7, 2, 5] -> "0 4"``).
* Saved as JSON ``{"type": "int", "format_version": 1, "special_tokens": [...],
  "num_symbols": 5000, "offset": 3}``.
* ``load_oracle_dataset`` samples ``n_train`` then ``n_valid`` sequences of 20
  tokens from the oracle with one ``torch.Generator`` seeded by ``seed``; the
  training set does not depend on ``n_valid``. Rows hold model ids (offset added)
  and never contain EOS or PAD: use the env with ``max_length=20, allow_eos=False``.
"""

from __future__ import annotations

import json
import operator
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seqgan_env.data.tokenizer import (
    BOS_ID,
    EOS_ID,
    PAD_ID,
    SPECIAL_TOKENS,
    read_tokenizer_json,
)
from seqgan_env.eval.likelihood import generator_nll
from seqgan_env.eval.oracle import SEQ_LEN, VOCAB_SIZE, OracleLSTM
from seqgan_env.utils.atomic import atomic_write_text
from seqgan_env.utils.validation import check_int, is_int

TOKENIZER_TYPE = "int"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class IntTokenizer:
    """Oracle token ``k`` <-> model id ``k + offset`` (see the module contract)."""

    num_symbols: int = VOCAB_SIZE
    offset: int = len(SPECIAL_TOKENS)

    def __post_init__(self) -> None:
        for name, value, lo in (("num_symbols", self.num_symbols, 1), ("offset", self.offset, len(SPECIAL_TOKENS))):
            check_int(f"IntTokenizer.{name}", value, lo, "fix: use the defaults IntTokenizer(num_symbols=5000, offset=3)",
                      numpy=True)
            object.__setattr__(self, name, int(value))

    @property
    def num_special(self) -> int:
        """Number of special tokens (3: PAD, BOS, EOS)."""
        return len(SPECIAL_TOKENS)

    @property
    def vocab_size(self) -> int:
        """Total number of ids: ``num_symbols + offset`` (5,003 by default)."""
        return self.num_symbols + self.offset

    # ------------------------------------------------------------ conversions
    def encode(self, tokens: Iterable[int]) -> list[int]:
        """Oracle tokens -> model ids (``k + offset``); ValueError for a token out of range."""
        out = []
        for pos, k in enumerate(_int_list(tokens)):
            if not 0 <= k < self.num_symbols:
                raise ValueError(
                    f"oracle token {k} at position {pos} is out of range [0, {self.num_symbols}); "
                    f"fix: pass oracle tokens, not model ids (those are already offset by {self.offset})"
                )
            out.append(k + self.offset)
        return out

    def to_oracle(self, ids: torch.Tensor) -> torch.Tensor:
        """Model ids (N, L) -> oracle tokens (N, L) (``id - offset``) for ``OracleLSTM.nll``.

        Every id must be a symbol id, i.e. in ``[offset, vocab_size)``; else ValueError
        naming it (a PAD/BOS/EOS inside a sequence cannot be scored by the oracle).
        """
        ids = torch.as_tensor(ids)
        if ids.dtype.is_floating_point or ids.dtype == torch.bool:
            raise TypeError(f"token ids must be integers, got dtype {ids.dtype}; fix: .long()")
        bad = (ids < self.offset) | (ids >= self.vocab_size)
        if bool(bad.any()):
            where = tuple(int(i) for i in bad.nonzero()[0])
            raise ValueError(
                f"id {int(ids[where])} at index {where} is not an oracle symbol id (valid: "
                f"[{self.offset}, {self.vocab_size})); fix: generate with allow_eos=False and "
                f"max_length=20 so every row holds 20 symbols"
            )
        return ids.long() - self.offset

    def from_oracle(self, tokens: torch.Tensor) -> torch.Tensor:
        """Oracle tokens (N, L) -> model ids (N, L) (``k + offset``)."""
        tokens = torch.as_tensor(tokens).long()
        if tokens.numel() and (int(tokens.min()) < 0 or int(tokens.max()) >= self.num_symbols):
            raise ValueError(
                f"oracle tokens must lie in [0, {self.num_symbols}), got min {int(tokens.min())}, "
                f"max {int(tokens.max())}; fix: pass oracle samples, not model ids"
            )
        return tokens + self.offset

    def encode_batch(self, sequences: Sequence[Iterable[int]], max_length: int) -> torch.Tensor:
        """(N, max_length) LongTensor: ids, then EOS if shorter than ``max_length``, then PAD."""
        check_int("max_length", max_length, 1)
        out = torch.full((len(sequences), max_length), PAD_ID, dtype=torch.long)  # (N, T)
        for i, seq in enumerate(sequences):
            ids = self.encode(seq)
            if len(ids) > max_length:
                raise ValueError(
                    f"encode_batch: sequences[{i}] has length {len(ids)} > max_length={max_length}; "
                    f"fix: raise max_length to at least {len(ids)}"
                )
            out[i, : len(ids)] = torch.tensor(ids, dtype=torch.long)
            if len(ids) < max_length:
                out[i, len(ids)] = EOS_ID
        return out

    def decode(self, ids: Iterable[int] | np.ndarray | torch.Tensor) -> str:
        """Space-separated oracle tokens; stops at EOS, skips PAD and BOS.

        Ids must lie in ``[0, vocab_size)`` and not in the unused gap
        ``[3, offset)``; else ValueError naming the id and its position.
        """
        if isinstance(ids, (torch.Tensor, np.ndarray)):
            if ids.ndim != 1:
                raise ValueError(
                    f"decode expects a 1-D sequence of ids, got shape {tuple(ids.shape)}; "
                    f"fix: use decode_batch for (N, T)"
                )
            ids = ids.tolist()
        words = []
        for pos, i in enumerate(_int_list(ids)):
            if not 0 <= i < self.vocab_size or len(SPECIAL_TOKENS) <= i < self.offset:
                raise ValueError(
                    f"token id {i} at position {pos} is not a valid id of this tokenizer "
                    f"(vocab_size={self.vocab_size}, offset={self.offset}); fix: decode only ids "
                    f"produced with this tokenizer"
                )
            if i == EOS_ID:
                break
            if i in (PAD_ID, BOS_ID):
                continue
            words.append(str(i - self.offset))
        return " ".join(words)

    def decode_batch(self, tokens: torch.Tensor | np.ndarray) -> list[str]:
        """Decode a (N, T) integer tensor row by row (see ``decode``)."""
        tokens = torch.as_tensor(tokens)
        if tokens.dim() != 2:
            raise ValueError(
                f"decode_batch expects shape (N, T), got {tuple(tokens.shape)}; fix: use decode()"
            )
        return [self.decode(row) for row in tokens.detach().cpu().tolist()]

    # ---------------------------------------------------------- serialization
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description of the tokenizer."""
        return {
            "type": TOKENIZER_TYPE,
            "format_version": FORMAT_VERSION,
            "special_tokens": list(SPECIAL_TOKENS),
            "num_symbols": self.num_symbols,
            "offset": self.offset,
        }

    @classmethod
    def from_dict(cls, data: Any, source: str = "<dict>") -> IntTokenizer:
        """Inverse of ``to_dict``; ``source`` names the origin in error messages."""
        fix = "fix: regenerate it with IntTokenizer.save(path)"
        if not isinstance(data, dict):
            raise ValueError(f"tokenizer data from {source} must be a JSON object, got {type(data).__name__}; {fix}")
        if data.get("type") != TOKENIZER_TYPE:
            raise ValueError(
                f"tokenizer data from {source} has type={data.get('type')!r}, expected {TOKENIZER_TYPE!r}; "
                f"fix: load it with the matching tokenizer class (type 'char': CharTokenizer)"
            )
        missing = [k for k in ("format_version", "special_tokens", "num_symbols", "offset") if k not in data]
        if missing:
            raise ValueError(f"tokenizer data from {source} is missing key(s) {missing}; {fix}")
        if isinstance(data["format_version"], bool) or data["format_version"] != FORMAT_VERSION:
            raise ValueError(
                f"tokenizer data from {source} has format_version={data['format_version']!r}, "
                f"this code reads only {FORMAT_VERSION}; {fix}"
            )
        if data["special_tokens"] != list(SPECIAL_TOKENS):
            raise ValueError(
                f"tokenizer data from {source} has special_tokens={data['special_tokens']!r}, "
                f"expected {list(SPECIAL_TOKENS)}; {fix}"
            )
        try:
            return cls(num_symbols=data["num_symbols"], offset=data["offset"])
        except ValueError as err:
            raise ValueError(f"tokenizer data from {source} is invalid: {err}") from None

    def save(self, path: str | os.PathLike) -> Path:
        """Write the tokenizer as JSON atomically (temp file + ``os.replace``)."""
        path = Path(path)
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> IntTokenizer:
        """Read a tokenizer written by ``save``; errors name the path and the fix."""
        path = Path(path)
        data = read_tokenizer_json(path, cls.__name__)
        return cls.from_dict(data, source=repr(str(path)))


@dataclass
class OracleDataset:
    """Oracle samples as model ids: ``train`` (N_train, 20) and ``valid`` (N_valid, 20) long.

    ``train_texts``/``valid_texts`` are the decoded rows (space-separated oracle
    tokens), for code written against ``TextDataset``.
    """

    tokenizer: IntTokenizer
    oracle: OracleLSTM
    train: torch.Tensor  # (N_train, L) long, ids = oracle token + offset
    valid: torch.Tensor  # (N_valid, L) long
    seed: int
    max_length: int = SEQ_LEN

    @property
    def vocab_size(self) -> int:
        """Shortcut for ``tokenizer.vocab_size`` (5,003)."""
        return self.tokenizer.vocab_size

    @cached_property
    def train_texts(self) -> list[str]:
        return self.tokenizer.decode_batch(self.train)

    @cached_property
    def valid_texts(self) -> list[str]:
        return self.tokenizer.decode_batch(self.valid)

    def benchmark_metrics(self, generator: torch.nn.Module, samples: torch.Tensor) -> dict[str, float]:
        """The SeqGAN benchmark's two numbers for ``generator``.

        ``nll_oracle``: the oracle's mean NLL of ``samples`` (N, 20) model ids, which the
        caller drew from the generator at temperature 1 (quality); ``nll_test``: the
        generator's teacher-forced NLL of the held-out ``valid`` rows, PAD excluded
        (coverage).
        """
        return {"nll_oracle": self.oracle.nll_oracle(self.tokenizer.to_oracle(samples.cpu())),
                "nll_test": generator_nll(generator, self.valid)}


def load_oracle_dataset(
    n_train: int = 10_000,
    n_valid: int = 2_000,
    seed: int = 0,
    oracle: OracleLSTM | None = None,
    length: int = SEQ_LEN,
    tokenizer: IntTokenizer | None = None,
) -> OracleDataset:
    """Sample the benchmark's real data from ``oracle`` (default: the packaged file, CPU).

    One CPU ``torch.Generator`` seeded with ``seed`` draws ``n_train`` rows, then
    ``n_valid`` rows; the tensors are on CPU whatever the oracle's device.
    """
    for name, value, lo in (("n_train", n_train, 1), ("n_valid", n_valid, 0)):
        check_int(name, value, lo)
    if not is_int(seed):
        raise TypeError(f"seed must be an int, got {seed!r}")
    oracle = oracle if oracle is not None else OracleLSTM.from_npz()
    tokenizer = tokenizer if tokenizer is not None else IntTokenizer()
    if tokenizer.num_symbols != oracle.vocab_size:
        raise ValueError(
            f"tokenizer.num_symbols={tokenizer.num_symbols} differs from the oracle's vocabulary "
            f"{oracle.vocab_size}; fix: use IntTokenizer(num_symbols={oracle.vocab_size})"
        )
    gen = torch.Generator().manual_seed(seed)
    train = oracle.sample(n_train, length=length, generator=gen).cpu()  # (N_train, L)
    valid = oracle.sample(n_valid, length=length, generator=gen).cpu()  # (N_valid, L)
    return OracleDataset(
        tokenizer=tokenizer,
        oracle=oracle,
        train=tokenizer.from_oracle(train),
        valid=tokenizer.from_oracle(valid),
        seed=seed,
        max_length=length,
    )


def _int_list(values: Iterable[int]) -> list[int]:
    if isinstance(values, (str, bytes)):
        raise TypeError(f"expected a sequence of ints, got {type(values).__name__}")
    out = []
    for pos, v in enumerate(values):
        if isinstance(v, bool):
            raise TypeError(f"token at position {pos} is a bool ({v!r}); expected an int")
        try:
            out.append(operator.index(v))
        except TypeError:
            raise TypeError(f"token at position {pos} is {v!r} ({type(v).__name__}); expected an int") from None
    return out
