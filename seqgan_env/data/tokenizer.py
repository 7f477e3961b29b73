"""Character-level tokenizer with three fixed special tokens.

Contract
--------
* Ids 0, 1, 2 are always ``<pad>``, ``<bos>``, ``<eos>`` (``PAD_ID``, ``BOS_ID``,
  ``EOS_ID``); the symbol ``symbols[i]`` has id ``3 + i``.
* ``encode`` maps symbols only (no BOS/EOS); ``encode_batch`` produces fixed-width
  rows ``symbols.. [EOS] PAD..``. A text of exactly ``max_length`` symbols has no
  EOS: an episode that reaches ``max_length`` ends without EOS.
* ``decode`` stops at the first EOS and skips PAD and BOS.
* A tokenizer is saved as JSON::

      {"type": "char", "format_version": 1,
       "special_tokens": ["<pad>", "<bos>", "<eos>"], "symbols": [...]}
"""

from __future__ import annotations

import functools
import json
import operator
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch

from seqgan_env.utils.atomic import atomic_write_text
from seqgan_env.utils.validation import is_int

PAD_ID = 0
BOS_ID = 1
EOS_ID = 2
SPECIAL_TOKENS: tuple[str, ...] = ("<pad>", "<bos>", "<eos>")

TOKENIZER_TYPE = "char"
FORMAT_VERSION = 1

_FORBIDDEN_SYMBOLS = ("\n", "\r")


class UnknownSymbolError(ValueError):
    """A text contains a character that is not in the tokenizer's vocabulary.

    Attributes ``char`` (the character) and ``position`` (its 0-based index in the
    text) are set when known.
    """

    def __init__(self, message: str, *, char: str | None = None, position: int | None = None):
        super().__init__(message)
        self.char = char
        self.position = position


@dataclass(frozen=True)
class CharTokenizer:
    """Maps single characters to ids ``3 + i`` (ids 0-2 are PAD/BOS/EOS).

    ``symbols`` must be non-empty, each a single character, without duplicates and
    without ``"\\n"`` or ``"\\r"`` (one sequence per line in data files).
    """

    symbols: tuple[str, ...]

    def __post_init__(self) -> None:
        symbols = self.symbols
        if isinstance(symbols, str) or not isinstance(symbols, (tuple, list)):
            raise TypeError(
                f"CharTokenizer.symbols must be a tuple of single-character strings, got "
                f"{type(symbols).__name__}; fix: pass tuple(sorted(set(chars))) or use "
                f"CharTokenizer.from_texts(texts)"
            )
        symbols = tuple(symbols)
        if not symbols:
            raise ValueError(
                "CharTokenizer.symbols is empty; a tokenizer needs at least 1 symbol; "
                "fix: build it from non-empty texts with CharTokenizer.from_texts(texts)"
            )
        seen: dict[str, int] = {}
        for i, s in enumerate(symbols):
            if not isinstance(s, str) or len(s) != 1:
                raise ValueError(
                    f"CharTokenizer.symbols[{i}] = {s!r} is not a single character "
                    f"(str of length 1); fix: split it into characters"
                )
            if s in _FORBIDDEN_SYMBOLS:
                raise ValueError(
                    f"CharTokenizer.symbols[{i}] = {s!r} is a line break, which is not allowed "
                    f"as a symbol (data files hold one sequence per line); fix: remove it"
                )
            if s in seen:
                raise ValueError(
                    f"CharTokenizer.symbols has duplicate {s!r} at indices {seen[s]} and {i}; "
                    f"fix: deduplicate, e.g. tuple(sorted(set(symbols)))"
                )
            seen[s] = i
        object.__setattr__(self, "symbols", symbols)

    @functools.cached_property
    def _index(self) -> dict[str, int]:
        """symbol -> id lookup, built once per instance."""
        return {s: i + len(SPECIAL_TOKENS) for i, s in enumerate(self.symbols)}

    # ------------------------------------------------------------------ sizes
    @property
    def num_special(self) -> int:
        """Number of special tokens (3: PAD, BOS, EOS)."""
        return len(SPECIAL_TOKENS)

    @property
    def vocab_size(self) -> int:
        """Total number of ids: ``3 + len(symbols)``."""
        return len(SPECIAL_TOKENS) + len(self.symbols)

    # ----------------------------------------------------------- construction
    @classmethod
    def from_texts(cls, texts: Iterable[str]) -> "CharTokenizer":
        """Build a tokenizer from every character in ``texts`` (symbols sorted)."""
        if isinstance(texts, str):
            raise TypeError(
                "CharTokenizer.from_texts expects an iterable of texts, got a single str; "
                "fix: wrap it in a list: from_texts([text])"
            )
        chars: set[str] = set()
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(
                    f"CharTokenizer.from_texts: texts[{i}] is {type(text).__name__}, expected str"
                )
            chars.update(text)
        return cls(tuple(sorted(chars)))

    # --------------------------------------------------------------- encoding
    def encode(self, text: str) -> list[int]:
        """Return the ids of the symbols of ``text`` (no BOS/EOS added).

        Raises UnknownSymbolError for a character outside the vocabulary.
        """
        if not isinstance(text, str):
            raise TypeError(f"encode expects a str, got {type(text).__name__}")
        index = self._index
        try:
            return [index[ch] for ch in text]
        except KeyError:
            pos = next(i for i, ch in enumerate(text) if ch not in index)
            raise self._unknown(text[pos], pos, "") from None

    def _unknown(self, char: str, position: int, where: str) -> UnknownSymbolError:
        return UnknownSymbolError(
            f"unknown symbol {char!r} at position {position}{where}: not in the tokenizer "
            f"vocabulary of {len(self.symbols)} symbols; fix: rebuild the vocabulary from "
            f"the data (CharTokenizer.from_texts) or remove the character from the text",
            char=char,
            position=position,
        )

    def encode_batch(self, texts: Sequence[str], max_length: int) -> torch.Tensor:
        """Encode ``texts`` to a LongTensor of shape (N, max_length).

        Each row is the symbol ids, then EOS if ``len(text) < max_length``, then PAD.
        A text of exactly ``max_length`` symbols has no EOS. A longer text raises
        ValueError naming its index and length.
        """
        if isinstance(texts, str):
            raise TypeError(
                "encode_batch expects a sequence of texts, got a single str; "
                "fix: wrap it in a list: encode_batch([text], max_length)"
            )
        _check_max_length(max_length)
        texts = list(texts)
        out = torch.full((len(texts), max_length), PAD_ID, dtype=torch.long)  # (N, T)
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"encode_batch: texts[{i}] is {type(text).__name__}, expected str")
            if len(text) > max_length:
                raise ValueError(
                    f"encode_batch: texts[{i}] has length {len(text)} > max_length={max_length}; "
                    f"fix: raise max_length to at least {len(text)} or shorten/drop the text"
                )
            try:
                ids = self.encode(text)
            except UnknownSymbolError as err:
                raise self._unknown(err.char, err.position, f" of texts[{i}]") from None
            _write_row(out, i, ids)
        return out

    # --------------------------------------------------------------- decoding
    def decode(self, ids: Iterable[int] | np.ndarray | torch.Tensor) -> str:
        """Decode a 1-D sequence of ids: stop at the first EOS, skip PAD and BOS.

        Every id must lie in ``[0, vocab_size)``, else ValueError naming it.
        """
        id_list = _to_id_list(ids)
        for pos, i in enumerate(id_list):
            self._check_id(i, f"position {pos}")
        return self._decode_checked(id_list)

    def decode_batch(self, tokens: torch.Tensor | np.ndarray) -> list[str]:
        """Decode a (N, T) integer tensor row by row (see ``decode``)."""
        if isinstance(tokens, np.ndarray):
            tokens = torch.from_numpy(np.ascontiguousarray(tokens))
        if not isinstance(tokens, torch.Tensor):
            raise TypeError(
                f"decode_batch expects a torch.Tensor of shape (N, T), got {type(tokens).__name__}"
            )
        if tokens.dim() != 2:
            raise ValueError(
                f"decode_batch expects shape (N, T), got {tuple(tokens.shape)}; "
                f"fix: use decode() for a single 1-D sequence or reshape to (N, T)"
            )
        tokens = _checked_matrix(tokens, self.vocab_size, self._check_id)  # (N, T)
        return [self._decode_checked(row) for row in tokens.tolist()]

    def _check_id(self, i: int, where: str) -> None:
        if not 0 <= i < self.vocab_size:
            raise ValueError(
                f"token id {i} at {where} is out of range [0, {self.vocab_size}) for this "
                f"tokenizer (vocab_size={self.vocab_size}); fix: decode only ids produced with "
                f"this tokenizer (model vocab size must equal tokenizer.vocab_size)"
            )

    def _decode_checked(self, id_list: list[int]) -> str:
        chars: list[str] = []
        offset = len(SPECIAL_TOKENS)
        for i in id_list:
            if i == EOS_ID:
                break
            if i >= offset:
                chars.append(self.symbols[i - offset])
        return "".join(chars)

    # ---------------------------------------------------------- serialization
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description of the tokenizer."""
        return {
            "type": TOKENIZER_TYPE,
            "format_version": FORMAT_VERSION,
            "special_tokens": list(SPECIAL_TOKENS),
            "symbols": list(self.symbols),
        }

    @classmethod
    def from_dict(cls, data: Any, source: str = "<dict>") -> "CharTokenizer":
        """Inverse of ``to_dict``; ``source`` names the origin in error messages."""
        fix = "fix: regenerate it with CharTokenizer.save(path)"
        if not isinstance(data, dict):
            raise ValueError(
                f"tokenizer data from {source} must be a JSON object, got "
                f"{type(data).__name__}; {fix}"
            )
        missing = [k for k in ("type", "format_version", "special_tokens", "symbols") if k not in data]
        if missing:
            raise ValueError(f"tokenizer data from {source} is missing key(s) {missing}; {fix}")
        if data["type"] != TOKENIZER_TYPE:
            raise ValueError(
                f"tokenizer data from {source} has type={data['type']!r}, expected "
                f"{TOKENIZER_TYPE!r}; fix: load it with the matching tokenizer class or "
                f"regenerate it with CharTokenizer.save(path)"
            )
        version = data["format_version"]
        if isinstance(version, bool) or version != FORMAT_VERSION:
            raise ValueError(
                f"tokenizer data from {source} has format_version={version!r}, this code "
                f"reads only format_version={FORMAT_VERSION}; {fix}"
            )
        specials = data["special_tokens"]
        if not isinstance(specials, list) or tuple(specials) != SPECIAL_TOKENS:
            raise ValueError(
                f"tokenizer data from {source} has special_tokens={specials!r}, expected "
                f"{list(SPECIAL_TOKENS)} (ids 0, 1, 2); {fix}"
            )
        symbols = data["symbols"]
        if not isinstance(symbols, list):
            raise ValueError(
                f"tokenizer data from {source}: 'symbols' must be a list of single "
                f"characters, got {type(symbols).__name__}; {fix}"
            )
        try:
            return cls(tuple(symbols))
        except (TypeError, ValueError) as err:
            raise ValueError(f"tokenizer data from {source} is invalid: {err}") from None

    def save(self, path: str | os.PathLike) -> Path:
        """Write the tokenizer as JSON atomically (temp file + ``os.replace``)."""
        path = Path(path)
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2, ensure_ascii=True) + "\n")
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "CharTokenizer":
        """Read a tokenizer written by ``save``; errors name the path and the fix."""
        path = Path(path)
        data = read_tokenizer_json(path, cls.__name__)
        return cls.from_dict(data, source=repr(str(path)))


def read_tokenizer_json(path: Path, cls_name: str) -> Any:
    """The parsed JSON of a tokenizer file; a missing file, a directory or bad JSON names the path and the fix."""
    if not path.exists():
        raise FileNotFoundError(
            f"tokenizer file {str(path)!r} does not exist; fix: check the path or create it with {cls_name}.save(path)"
        )
    if path.is_dir():
        raise ValueError(
            f"tokenizer path {str(path)!r} is a directory, expected a JSON file; "
            f"fix: pass the path of the tokenizer .json file"
        )
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(
            f"tokenizer file {str(path)!r} is not valid UTF-8 JSON ({err}); fix: regenerate it with {cls_name}.save(path)"
        ) from None


def _check_max_length(max_length: int) -> None:
    if not is_int(max_length, numpy=True) or max_length < 1:
        raise ValueError(
            f"max_length must be an int >= 1, got {max_length!r}; fix: pass a positive int"
        )


def _write_row(out: torch.Tensor, i: int, ids: list[int]) -> None:
    """Row ``i`` of the PAD-filled (N, T) ``out``: ``ids``, then EOS where there is room (the episode layout)."""
    if ids:
        out[i, : len(ids)] = torch.tensor(ids, dtype=torch.long)
    if len(ids) < out.shape[1]:
        out[i, len(ids)] = EOS_ID


def _checked_matrix(tokens: torch.Tensor, vocab_size: int, check_id: Callable[[int, str], None]) -> torch.Tensor:
    """(N, T) integer ``tokens`` on the CPU; ``check_id`` raises on the first id outside [0, vocab_size)."""
    _check_integer_dtype(tokens.dtype)
    tokens = tokens.detach().cpu()  # (N, T)
    bad = (tokens < 0) | (tokens >= vocab_size)  # (N, T)
    if bool(bad.any()):
        row, col = (int(x) for x in bad.nonzero()[0])
        check_id(int(tokens[row, col]), f"row {row}, column {col}")
    return tokens


def _check_integer_dtype(dtype: torch.dtype) -> None:
    if dtype.is_floating_point or dtype.is_complex or dtype == torch.bool:
        raise TypeError(
            f"token ids must have an integer dtype, got {dtype}; fix: convert with .long()"
        )


def _to_id_list(ids: Iterable[int] | np.ndarray | torch.Tensor) -> list[int]:
    """Normalize a 1-D sequence of integer ids to a Python list of ints."""
    if isinstance(ids, np.ndarray):
        if not np.issubdtype(ids.dtype, np.integer):
            raise TypeError(
                f"token ids must have an integer dtype, got {ids.dtype}; fix: .astype(np.int64)"
            )
        ids = torch.from_numpy(np.ascontiguousarray(ids))
    if isinstance(ids, torch.Tensor):
        if ids.dim() != 1:
            raise ValueError(
                f"decode expects a 1-D sequence of ids, got shape {tuple(ids.shape)}; "
                f"fix: use decode_batch for (N, T) tensors"
            )
        _check_integer_dtype(ids.dtype)
        return ids.detach().cpu().tolist()
    if isinstance(ids, (str, bytes)):
        raise TypeError(f"decode expects integer ids, got {type(ids).__name__}")
    out: list[int] = []
    for pos, i in enumerate(ids):
        if isinstance(i, bool):
            raise TypeError(f"token id at position {pos} is a bool ({i!r}); expected an int")
        try:
            out.append(operator.index(i))
        except TypeError:
            raise TypeError(
                f"token id at position {pos} is {i!r} ({type(i).__name__}); expected an int"
            ) from None
    return out
