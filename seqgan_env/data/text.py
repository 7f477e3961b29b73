"""Loading line-per-sequence text files into tokenized train/valid tensors.

Contract
--------
* A data file is UTF-8 text with one sequence per line; only the trailing
  ``"\\n"`` / ``"\\r\\n"`` of each line is stripped (a leading UTF-8 BOM is ignored).
* Every problem with a data file raises ``DataError`` whose message names the
  file (and ``file:line`` where relevant) and the fix.
* ``split_train_valid`` is deterministic in its ``seed`` and never touches the
  global RNGs.
"""

from __future__ import annotations

import hashlib
import math
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch

from seqgan_env.data.tokenizer import SPECIAL_TOKENS, CharTokenizer, UnknownSymbolError, _check_max_length
from seqgan_env.utils.resources import datasets_dir
from seqgan_env.utils.validation import is_int

# The data shipped in the package (seqgan_env/datasets/, package data found with importlib.resources).
DEFAULT_DATA_DIR = datasets_dir()
DEFAULT_DATA_PATH = DEFAULT_DATA_DIR / "census_first_names.txt"
# MS COCO 2014 captions as the text-GAN literature ships them (CC BY 4.0, seqgan_env/datasets/README.md): train on the
# first file, score against the second (BLEU references, NLL-test).
COCO_TRAIN_PATH = DEFAULT_DATA_DIR / "coco_captions_train.txt"
COCO_TEST_PATH = DEFAULT_DATA_DIR / "coco_captions_test.txt"
#: Data sets chosen by name (``--data coco``): name -> (training file, held-out test file).
NAMED_DATA: dict[str, tuple[Path, Path]] = {"coco": (COCO_TRAIN_PATH, COCO_TEST_PATH)}

_BOM = "\ufeff"

# The longest episode a data file may ask for when no max_length is given: a longer line is
# far more likely a stray paragraph than a sequence to generate, and would silently make
# every episode that long.
AUTO_MAX_LENGTH_LIMIT = 256


class DataError(ValueError):
    """A data file is unusable; the message names the file (and line) and the fix.

    Attributes ``path`` and ``line`` (1-based, or None) are set when known.
    """

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None):
        super().__init__(message)
        self.path = path
        self.line = line


def load_texts_with_stats(
    path: str | os.PathLike,
    max_length: int | None,
    tokenizer: Any = None,
    skip_blank: bool = False,
    allow_eos: bool = True,
    check_length: bool = True,
    skip_long: bool = False,
) -> tuple[list[str], dict[str, int]]:
    """Read one sequence per line; return ``(texts, {"lines": n, "skipped_blank": k, "max_length": L})``.

    ``lines`` counts the returned texts, ``skipped_blank`` the blank lines skipped
    (only with ``skip_blank=True``). A line is blank if it is empty or whitespace only.
    ``max_length`` None means: what the file needs (``needed_max_length``), reported
    as ``stats["max_length"]``. Raises DataError for: a missing file, a directory, an
    empty (0-byte) file, non-UTF-8 bytes, a blank line (unless ``skip_blank``), no
    non-blank line at all, a stray ``"\\r"`` inside a line, a line longer than
    ``max_length`` characters, or tokens of a subword ``tokenizer`` (or, with ``max_length=None``, than
    ``AUTO_MAX_LENGTH_LIMIT``), with ``allow_eos=False`` a line shorter than
    ``max_length`` (it would need an EOS no generated row can write), and (when
    ``tokenizer`` is a ``CharTokenizer``) a character outside its vocabulary.
    Lengths count characters, or with any other tokenizer (``HFTokenizer``) its tokens.
    ``check_length=False`` skips the length rules (to read the lines a tokenizer is trained on,
    before their lengths in its tokens are known). ``skip_long=True`` (with an explicit
    ``max_length``) leaves out the lines longer than it instead of refusing them, counted in
    ``stats["skipped_long"]`` (a key only present with ``skip_long``).
    """
    auto = max_length is None
    if not auto:
        _check_max_length(max_length)
    limit = AUTO_MAX_LENGTH_LIMIT if auto else max_length
    p = Path(path)
    name = str(p)
    if not p.exists():
        shipped = DEFAULT_DATA_DIR / p.name
        hint = (f"a file of that name ships in the package: {str(shipped)!r} (the shipped data moved from the "
                f"checkout's data/ into seqgan_env/datasets/)" if p.name and shipped.is_file()
                else f"default data lives in {str(DEFAULT_DATA_DIR)!r}")
        raise DataError(f"data file {name!r} does not exist; fix: check the path ({hint})", path=name)
    if p.is_dir():
        raise DataError(
            f"data path {name!r} is a directory, expected a text file with one sequence "
            f"per line; fix: pass the path of a file inside it",
            path=name,
        )
    raw = p.read_bytes()
    if not raw:
        raise DataError(
            f"data file {name!r} is empty (0 bytes); fix: write one sequence per line into it",
            path=name,
        )

    raw_lines = raw.split(b"\n")
    if raw_lines[-1] == b"":  # final newline terminates the last line
        raw_lines.pop()

    texts: list[str] = []
    line_numbers: list[int] = []
    lengths: list[int] = []
    subword = tokenizer is not None and not isinstance(tokenizer, CharTokenizer)
    skipped = 0
    skipped_long = 0
    for lineno, raw_line in enumerate(raw_lines, start=1):
        if raw_line.endswith(b"\r"):
            raw_line = raw_line[:-1]
        where = f"{name}:{lineno}"
        try:
            line = raw_line.decode("utf-8")
        except UnicodeDecodeError as err:
            raise DataError(
                f"{where}: line {lineno} of {name!r} is not valid UTF-8 (byte "
                f"{raw_line[err.start:err.start + 1]!r} at byte offset {err.start}); "
                f"fix: re-encode the file as UTF-8 or remove the line",
                path=name,
                line=lineno,
            ) from None
        if lineno == 1 and line.startswith(_BOM):
            line = line[len(_BOM):]
        if not line.strip():
            if skip_blank:
                skipped += 1
                continue
            raise DataError(
                f"{where}: line {lineno} of {name!r} is blank; fix: remove it or pass "
                f"skip_blank=True to skip blank lines",
                path=name,
                line=lineno,
            )
        if "\r" in line:
            raise DataError(
                f"{where}: line {lineno} of {name!r} contains a carriage return '\\r' before "
                f"its end; fix: convert the file to '\\n' or '\\r\\n' line endings",
                path=name,
                line=lineno,
            )
        try:
            ids = tokenizer.encode(line) if subword else None
        except UnknownSymbolError as err:  # a vocabulary without <unk> (a run's character tokenizer, exported)
            col = err.position + 1
            raise DataError(
                f"{name}:{lineno}:{col}: character {err.char!r} (line {lineno}, column {col} of {name!r}) is not "
                f"in the tokenizer vocabulary, which has no unknown token; fix: remove the character, or use a "
                f"tokenizer built from this data",
                path=name,
                line=lineno,
            ) from None
        if subword and any(i < len(SPECIAL_TOKENS) for i in ids):
            names = getattr(tokenizer, "special_tokens", SPECIAL_TOKENS)
            special = next(names[i] for i in ids if i < len(SPECIAL_TOKENS))
            raise DataError(
                f"{where}: line {lineno} of {name!r} spells the tokenizer's special token {special!r} (pad, begin "
                f"and end ids 0, 1, 2 may not appear inside a sequence); fix: remove or rewrite that text",
                path=name,
                line=lineno,
            )
        n = len(ids) if subword else len(line)
        size = f"{n} tokens" if subword else f"length {n}"
        if n > limit and check_length and skip_long and not auto:
            skipped_long += 1
            continue
        if n > limit and check_length:
            if auto:
                raise DataError(
                    f"{where}: line {lineno} of {name!r} has {size}, more than "
                    f"{AUTO_MAX_LENGTH_LIMIT}, the longest episode chosen without an explicit "
                    f"max_length; fix: shorten or remove the line, or pass max_length="
                    f"{n + int(allow_eos)} (--set data.max_length={n + int(allow_eos)}) "
                    f"if you do want episodes that long",
                    path=name,
                    line=lineno,
                )
            raise DataError(
                f"{where}: line {lineno} of {name!r} has {size} > max_length="
                f"{max_length}; fix: raise max_length to at least {n}, leave it unset (the "
                f"data then decides), or shorten the line",
                path=name,
                line=lineno,
            )
        if tokenizer is not None and not subword:
            try:
                tokenizer.encode(line)
            except UnknownSymbolError as err:
                col = err.position + 1
                raise DataError(
                    f"{name}:{lineno}:{col}: character {err.char!r} (line {lineno}, column "
                    f"{col} of {name!r}) is not in the tokenizer vocabulary; fix: rebuild the "
                    f"tokenizer from this data (tokenizer=None) or remove the character",
                    path=name,
                    line=lineno,
                ) from None
        texts.append(line)
        line_numbers.append(lineno)
        lengths.append(n)

    if not texts and skipped_long:
        raise DataError(
            f"data file {name!r}: all {skipped_long} non-blank line(s) are longer than max_length={max_length} and "
            f"were left out (skip_long); fix: raise max_length (--data.max-length), or use a tokenizer with fewer "
            f"tokens per line",
            path=name,
        )
    if not texts:
        raise DataError(
            f"data file {name!r} has no non-blank lines ({skipped} blank line(s) skipped); "
            f"fix: write at least one sequence into it",
            path=name,
        )
    if auto:
        max_length = max(lengths) + (1 if allow_eos else 0)  # needed_max_length, counted in tokens
    if not allow_eos and check_length:
        for lineno, n in zip(line_numbers, lengths):
            if n < max_length:
                raise DataError(
                    f"{name}:{lineno}: line {lineno} of {name!r} has {n} symbols, fewer than "
                    f"max_length={max_length}, but allow_eos=False: a real row that short ends in EOS, "
                    f"which no generated row can write, so the discriminator would tell them apart by "
                    f"length alone; fix: keep allow_eos=True (the default for text files), or make "
                    f"every line exactly max_length symbols long",
                    path=name,
                    line=lineno,
                )
    stats = {"lines": len(texts), "skipped_blank": skipped, "max_length": max_length}
    if skip_long:
        stats["skipped_long"] = skipped_long
    return texts, stats


def needed_max_length(texts: Sequence[str], allow_eos: bool = True) -> int:
    """The episode length ``texts`` need: the longest text, plus one slot for EOS when EOS is allowed.

    With that slot every real row ends in EOS, as a finished generated row does.
    """
    if not texts:
        raise ValueError("needed_max_length got no texts; fix: pass at least one text")
    return max(len(t) for t in texts) + (1 if allow_eos else 0)


def load_texts(
    path: str | os.PathLike,
    max_length: int | None,
    tokenizer: Any = None,
    skip_blank: bool = False,
    allow_eos: bool = True,
    check_length: bool = True,
    skip_long: bool = False,
) -> list[str]:
    """Read one sequence per line (see ``load_texts_with_stats`` for the errors)."""
    texts, _ = load_texts_with_stats(path, max_length, tokenizer=tokenizer, skip_blank=skip_blank, allow_eos=allow_eos,
                                     check_length=check_length, skip_long=skip_long)
    return texts


def split_train_valid(
    texts: Sequence[str], valid_fraction: float, seed: int
) -> tuple[list[str], list[str]]:
    """Split ``texts`` into ``(train, valid)`` deterministically by ``seed``.

    ``valid_fraction`` must lie in [0, 1). ``len(valid) = round(n * valid_fraction)``
    clamped so that train keeps at least one text and, when ``valid_fraction > 0``
    and ``n >= 2``, valid gets at least one. Both parts keep the input order.
    Uses ``random.Random(seed)``, never the global RNG.
    """
    if isinstance(texts, str):
        raise TypeError("split_train_valid expects a sequence of texts, got a single str")
    if (
        isinstance(valid_fraction, bool)
        or not isinstance(valid_fraction, (int, float))
        or not math.isfinite(valid_fraction)
        or not 0.0 <= valid_fraction < 1.0
    ):
        raise ValueError(
            f"valid_fraction must be a float in [0, 1), got {valid_fraction!r}; "
            f"fix: pass e.g. 0.1, or 0.0 for no validation split"
        )
    if not is_int(seed):
        raise TypeError(f"seed must be an int, got {seed!r}")
    n = len(texts)
    if n == 0:
        raise ValueError(
            "split_train_valid got 0 texts; at least 1 is needed for training; "
            "fix: load a non-empty data file"
        )
    n_valid = math.floor(n * valid_fraction + 0.5)
    if valid_fraction > 0 and n >= 2:
        n_valid = max(n_valid, 1)
    n_valid = min(n_valid, n - 1)

    order = list(range(n))
    random.Random(seed).shuffle(order)
    valid_idx = set(order[:n_valid])
    train = [t for i, t in enumerate(texts) if i not in valid_idx]
    valid = [t for i, t in enumerate(texts) if i in valid_idx]
    return train, valid


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of the file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class TextDataset:
    """Tokenized train/valid split of a text file.

    ``tokenizer``: a ``CharTokenizer`` or any tokenizer with the same methods (``HFTokenizer``).
    ``train`` is a LongTensor (N_train, max_length) and ``valid`` (N_valid, max_length),
    rows as produced by ``tokenizer.encode_batch``; ``train_texts``/``valid_texts``
    are the matching strings. ``path``/``sha256`` identify the source file.
    """

    tokenizer: Any
    train: torch.Tensor  # (N_train, T) long
    valid: torch.Tensor  # (N_valid, T) long
    train_texts: list[str]
    valid_texts: list[str]
    path: str
    sha256: str
    max_length: int
    stats: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_max_length(self.max_length)
        missing = [m for m in ("vocab_size", "encode_batch", "decode_batch", "save") if not hasattr(self.tokenizer, m)]
        if missing:
            raise TypeError(
                f"TextDataset.tokenizer must be a CharTokenizer (or a tokenizer with its methods), got "
                f"{type(self.tokenizer).__name__} without {missing}"
            )
        for split, tensor, texts in (
            ("train", self.train, self.train_texts),
            ("valid", self.valid, self.valid_texts),
        ):
            if not isinstance(tensor, torch.Tensor) or tensor.dtype != torch.long:
                raise TypeError(
                    f"TextDataset.{split} must be a torch.long tensor, got "
                    f"{getattr(tensor, 'dtype', type(tensor).__name__)}; fix: use encode_batch"
                )
            if tensor.dim() != 2 or tensor.shape[1] != self.max_length:
                raise ValueError(
                    f"TextDataset.{split} must have shape (N, max_length={self.max_length}), "
                    f"got {tuple(tensor.shape)}; fix: encode with the same max_length"
                )
            if tensor.shape[0] != len(texts):
                raise ValueError(
                    f"TextDataset.{split} has {tensor.shape[0]} rows but {split}_texts has "
                    f"{len(texts)} entries; fix: encode exactly {split}_texts"
                )
            if tensor.numel() and (int(tensor.min()) < 0 or int(tensor.max()) >= self.tokenizer.vocab_size):
                raise ValueError(
                    f"TextDataset.{split} has ids outside [0, {self.tokenizer.vocab_size}); "
                    f"fix: encode with this dataset's tokenizer"
                )
        if self.train.shape[0] < 1:
            raise ValueError("TextDataset.train is empty; at least 1 training sequence is needed")

    @property
    def vocab_size(self) -> int:
        """Shortcut for ``tokenizer.vocab_size``."""
        return self.tokenizer.vocab_size


def load_dataset(
    path: str | os.PathLike = DEFAULT_DATA_PATH,
    max_length: int | None = None,
    valid_fraction: float = 0.1,
    seed: int = 0,
    tokenizer: Any = None,
    skip_blank: bool = False,
    allow_eos: bool = True,
    skip_long: bool = False,
) -> TextDataset:
    """Load ``path``, split it, and encode both parts to (N, max_length) tensors.

    ``max_length`` None: what the file needs (its longest line, plus one slot for EOS
    when ``allow_eos``); the result's ``max_length`` says what was chosen. Without
    ``tokenizer`` one is built from ALL lines (train + valid), so both splits are
    encodable. Stats: ``lines``, ``skipped_blank``, ``max_length``, ``train``, ``valid``.
    """
    texts, stats = load_texts_with_stats(
        path, max_length, tokenizer=tokenizer, skip_blank=skip_blank, allow_eos=allow_eos, skip_long=skip_long
    )
    max_length = stats["max_length"]
    if tokenizer is None:
        try:
            tokenizer = CharTokenizer.from_texts(texts)
        except ValueError as err:
            raise DataError(
                f"cannot build a tokenizer from {str(path)!r}: {err}", path=str(path)
            ) from None
    train_texts, valid_texts = split_train_valid(texts, valid_fraction, seed)
    train = tokenizer.encode_batch(train_texts, max_length)  # (N_train, T)
    valid = tokenizer.encode_batch(valid_texts, max_length)  # (N_valid, T)
    stats = {**stats, "train": len(train_texts), "valid": len(valid_texts)}
    return TextDataset(
        tokenizer=tokenizer,
        train=train,
        valid=valid,
        train_texts=train_texts,
        valid_texts=valid_texts,
        path=str(path),
        sha256=file_sha256(path),
        max_length=max_length,
        stats=stats,
    )
