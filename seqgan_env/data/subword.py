"""Subword and word tokenizers through Hugging Face ``tokenizers``, under the project's id contract.

Contract
--------
* :class:`HFTokenizer` wraps a ``tokenizers.Tokenizer`` whose ids 0, 1, 2 are the
  pad, begin and end tokens: ``PAD_ID``, ``BOS_ID``, ``EOS_ID`` of
  ``seqgan_env.data.tokenizer`` keep their meaning, so the env, the models and the
  discriminator need no change. Its methods are those of ``CharTokenizer``:
  ``encode`` (no BOS/EOS), ``encode_batch`` (rows ``ids.. [EOS] PAD..``), ``decode``
  (stops at the first EOS, skips PAD and BOS), ``decode_batch``, ``vocab_size``,
  ``save`` / ``load``. Lengths (``max_length``) count tokens, not characters.
* A decoded text never holds a line break (any character ``str.splitlines`` splits on):
  byte-level tokens can spell one, and a sample is one line of a samples file or of
  `seqgan-env sample`'s output; each becomes U+FFFD, as an invalid byte sequence does.
* A tokenizer is saved as the library's own ``tokenizer.json``: any Hugging Face tool
  reads it (``tokenizers.Tokenizer.from_file``, ``PreTrainedTokenizerFast``), and
  :func:`save_tokenizer_files` adds a ``tokenizer_config.json`` naming the three tokens,
  so ``transformers.AutoTokenizer.from_pretrained(directory)`` reads it too.
* :func:`train_tokenizer` trains ``bpe`` (byte-level BPE: every text encodes and decodes
  back exactly), ``unigram`` (SentencePiece-style, characters unseen in training become
  ``<unk>``) or ``word`` (whitespace-split words; words outside the vocabulary become
  ``<unk>``, and decoding joins words with single spaces) with ``<pad>``, ``<bos>``,
  ``<eos>`` at ids 0, 1, 2.
* :func:`load_tokenizer_source` reads any ``tokenizer.json`` or tokenizer directory. When
  its pad/begin/end tokens are not at ids 0, 1, 2 the vocabulary is reordered (and a
  missing pad or begin token added) by :func:`to_project_ids`, which also returns
  ``source``: for each new id, the old id whose embedding row a pretrained model should
  take (``seqgan_env.models.pretrained`` applies it).
* Every unreadable or unusable file raises ``ValueError`` naming the file and the fix.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch

from seqgan_env.data.tokenizer import (
    BOS_ID,
    CharTokenizer,
    EOS_ID,
    PAD_ID,
    SPECIAL_TOKENS,
    UnknownSymbolError,
    _check_max_length,
    _checked_matrix,
    _to_id_list,
    _write_row,
)
from seqgan_env.utils.atomic import atomic_write_text
from seqgan_env.utils.validation import check_int

#: ``tokenizer.kind`` values: the character tokenizer, three trained ones, ``file`` (``tokenizer.path``)
#: and ``auto`` (the pretrained generator's tokenizer when there is one, else ``char``).
TOKENIZER_KINDS = ("auto", "char", "bpe", "unigram", "word", "file")
TRAINED_KINDS = ("bpe", "unigram", "word")
UNK_TOKEN = "<unk>"
#: The fewest ids byte-level BPE can have: the three specials and the 256 byte symbols.
BPE_MIN_VOCAB = len(SPECIAL_TOKENS) + 256

# Names of the pad / begin / end tokens in common tokenizers, tried in order when a loaded
# tokenizer.json does not say which is which (a directory's tokenizer_config.json does).
_PAD_NAMES = ("<pad>", "[PAD]", "<|pad|>", "<|padding|>")
_BOS_NAMES = ("<bos>", "<s>", "[BOS]", "<|startoftext|>", "<|begin_of_text|>", "<|im_start|>")
_EOS_NAMES = ("<eos>", "</s>", "[EOS]", "<|endoftext|>", "<|end_of_text|>", "<|im_end|>")


#: Largest ``tokenizer.vocab_size`` a run may train (2**18: the largest vocabularies of released models, e.g.
#: Gemma's 256k). The tokenizer library aborts the process (no Python error) on sizes it cannot allocate.
MAX_VOCAB_SIZE = 2**18


@dataclass
class TokenizerConfig:
    """Which tokenizer a run uses (``--tokenizer.*``; ``--tokenizer X`` is the shortcut).

    kind: ``auto`` (the tokenizer of ``generator.pretrained`` when set, else ``char``),
    ``char`` (one id per character, the default for short strings), ``bpe`` | ``unigram`` |
    ``word`` (trained on the run's data file; see :func:`train_tokenizer`), or ``file``
    (``path``: a ``tokenizer.json`` or a tokenizer directory). vocab_size: ids of a trained
    tokenizer, specials included (bpe needs >= 259: 3 specials + 256 bytes). min_frequency:
    fewest occurrences of a merge (bpe) or a word (word). pad_token / bos_token / eos_token:
    the names of those tokens in a loaded tokenizer, when neither it nor its directory says.
    """

    kind: str = "auto"
    path: str | None = None
    vocab_size: int = 2000
    min_frequency: int = 2
    pad_token: str | None = None
    bos_token: str | None = None
    eos_token: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in TOKENIZER_KINDS:
            raise ValueError(
                f"tokenizer.kind={self.kind!r} is unknown: choose one of {list(TOKENIZER_KINDS)}; "
                f"fix: --tokenizer bpe, or --tokenizer PATH for a tokenizer.json file or directory."
            )
        if self.kind == "file" and not self.path:
            raise ValueError("tokenizer.kind=file needs tokenizer.path (a tokenizer.json file or a directory); "
                             "fix: --tokenizer PATH.")
        if self.kind != "file" and self.path is not None:
            raise ValueError(f"tokenizer.path={self.path!r} is only read with tokenizer.kind=file, not "
                             f"kind={self.kind!r}; fix: --tokenizer {self.path} (sets both) or drop the path.")
        check_int("tokenizer.vocab_size", self.vocab_size, len(SPECIAL_TOKENS) + 2,
                  f"the ids of a trained tokenizer, specials included; fix: e.g. --tokenizer.vocab-size 2000 (at "
                  f"most {MAX_VOCAB_SIZE}, as large as released models' vocabularies)", maximum=MAX_VOCAB_SIZE)
        if self.kind == "bpe" and self.vocab_size < BPE_MIN_VOCAB:
            raise ValueError(
                f"tokenizer.vocab_size={self.vocab_size} is too small for kind=bpe: byte-level BPE needs at "
                f"least {BPE_MIN_VOCAB} ids (3 specials + 256 bytes); fix: --tokenizer.vocab-size 2000."
            )
        check_int("tokenizer.min_frequency", self.min_frequency, 1, "use 2 (1 keeps every merge and word)")
        for name in ("pad_token", "bos_token", "eos_token"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value):
                raise ValueError(f"tokenizer.{name}={value!r} is invalid: it must be a non-empty token string.")


# ---------------------------------------------------------------------------------------
# the wrapper
# ---------------------------------------------------------------------------------------
class HFTokenizer:
    """A ``tokenizers.Tokenizer`` with PAD, BOS, EOS at ids 0, 1, 2 (see the module contract)."""

    def __init__(self, tokenizer: Any, source: str = "<tokenizer>") -> None:
        size = tokenizer.get_vocab_size(with_added_tokens=True)
        if size <= len(SPECIAL_TOKENS):
            raise ValueError(f"tokenizer {source} has {size} ids, too few: PAD, BOS, EOS and at least one symbol "
                             f"are needed; fix: train it with a larger vocab_size.")
        for i in (PAD_ID, BOS_ID, EOS_ID):
            if tokenizer.id_to_token(i) is None:
                raise ValueError(f"tokenizer {source} has no token with id {i}; fix: load it with "
                                 f"load_tokenizer_source(path), which puts PAD, BOS, EOS at ids 0, 1, 2.")
        gap = next((i for i in range(size) if tokenizer.id_to_token(i) is None), None)
        if gap is not None:  # vocab_size is the number of ids: every id below it must name a token
            raise ValueError(f"tokenizer {source} has no token with id {gap} although it has {size} ids; fix: "
                             f"renumber its vocabulary without gaps.")
        self.tokenizer = tokenizer
        self._size = size

    # -- sizes -----------------------------------------------------------------------
    @property
    def num_special(self) -> int:
        """Number of the contract's special tokens (3: PAD, BOS, EOS)."""
        return len(SPECIAL_TOKENS)

    @property
    def vocab_size(self) -> int:
        """Total number of ids, added tokens included."""
        return self._size

    @property
    def special_tokens(self) -> tuple[str, str, str]:
        """The strings of ids 0, 1, 2 (e.g. ``("<pad>", "<bos>", "<eos>")``)."""
        return tuple(self.tokenizer.id_to_token(i) for i in (PAD_ID, BOS_ID, EOS_ID))  # type: ignore[return-value]

    @property
    def unk_id(self) -> int | None:
        """The id its model gives text outside the vocabulary (``<unk>``), None when it has none (byte-level BPE)."""
        unk = getattr(self.tokenizer.model, "unk_token", None)
        if not unk:
            unk_id = getattr(self.tokenizer.model, "unk_id", None)  # Unigram keeps an id
            return int(unk_id) if isinstance(unk_id, int) and 0 <= unk_id < self._size else None
        return self.tokenizer.token_to_id(unk)

    @property
    def kind(self) -> str:
        """The model type of the underlying tokenizer (``BPE``, ``Unigram``, ``WordLevel``, ...)."""
        return json.loads(self.tokenizer.to_str())["model"]["type"]

    # -- encoding --------------------------------------------------------------------
    def encode(self, text: str) -> list[int]:
        """The ids of ``text`` (no BOS/EOS added, no post-processor templates)."""
        if not isinstance(text, str):
            raise TypeError(f"encode expects a str, got {type(text).__name__}")
        return self._encode_batch([text])[0].ids

    def _encode_batch(self, texts: list[str]) -> list:
        """``tokenizers``' encodings of ``texts``; a character a vocabulary without ``<unk>`` lacks (a character
        tokenizer's, :func:`char_to_hf`) raises UnknownSymbolError naming it, not the library's bare Exception."""
        try:
            return self.tokenizer.encode_batch(texts, add_special_tokens=False)
        except Exception as exc:  # tokenizers raises a plain Exception: "WordLevel error: Missing [UNK] token ..."
            if "Missing" not in str(exc):
                raise
            for i, text in enumerate(texts):
                for pos, char in enumerate(text):
                    try:
                        self.tokenizer.encode(char, add_special_tokens=False)
                    except Exception:
                        raise UnknownSymbolError(
                            f"character {char!r} at position {pos} of texts[{i}] is not in the tokenizer's "
                            f"vocabulary, which has no unknown token; fix: remove the character, or use a "
                            f"tokenizer built from this data", char=char, position=pos) from None
            raise

    def lengths(self, texts: Sequence[str]) -> list[int]:
        """Number of tokens of each text (one batched call)."""
        return [len(e.ids) for e in self._encode_batch(list(texts))]

    def encode_batch(self, texts: Sequence[str], max_length: int) -> torch.Tensor:
        """(N, max_length) long: each row the text's ids, then EOS if shorter than ``max_length``, then PAD.

        A text of more than ``max_length`` tokens raises ValueError naming its index and length.
        """
        if isinstance(texts, str):
            raise TypeError("encode_batch expects a sequence of texts, got a single str; "
                            "fix: wrap it in a list: encode_batch([text], max_length)")
        _check_max_length(max_length)
        texts = list(texts)
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"encode_batch: texts[{i}] is {type(text).__name__}, expected str")
        out = torch.full((len(texts), max_length), PAD_ID, dtype=torch.long)  # (N, T)
        for i, enc in enumerate(self._encode_batch(texts)):
            ids = enc.ids
            if len(ids) > max_length:
                raise ValueError(
                    f"encode_batch: texts[{i}] has {len(ids)} tokens > max_length={max_length}; "
                    f"fix: raise max_length to at least {len(ids)} or shorten/drop the text"
                )
            _write_row(out, i, ids)
        return out

    # -- decoding --------------------------------------------------------------------
    def decode(self, ids: Iterable[int] | np.ndarray | torch.Tensor) -> str:
        """Decode a 1-D sequence of ids: stop at the first EOS, skip PAD and BOS."""
        id_list = _to_id_list(ids)
        for pos, i in enumerate(id_list):
            self._check_id(i, f"position {pos}")
        return _one_line(self.tokenizer.decode(_symbols(id_list), skip_special_tokens=False))

    def decode_batch(self, tokens: torch.Tensor | np.ndarray) -> list[str]:
        """Decode a (N, T) integer tensor row by row (see ``decode``), in one batched call."""
        if isinstance(tokens, np.ndarray):
            tokens = torch.from_numpy(np.ascontiguousarray(tokens))
        if not isinstance(tokens, torch.Tensor) or tokens.dim() != 2:
            raise ValueError(f"decode_batch expects a (N, T) tensor, got "
                             f"{tuple(tokens.shape) if isinstance(tokens, torch.Tensor) else type(tokens).__name__}")
        tokens = _checked_matrix(tokens, self.vocab_size, self._check_id)  # (N, T)
        rows = [_symbols(r) for r in tokens.tolist()]
        return [_one_line(t) for t in self.tokenizer.decode_batch(rows, skip_special_tokens=False)]

    def _check_id(self, i: int, where: str) -> None:
        if not 0 <= i < self.vocab_size:
            raise ValueError(
                f"token id {i} at {where} is out of range [0, {self.vocab_size}) for this tokenizer; "
                f"fix: decode only ids produced with this tokenizer (model vocab size must equal tokenizer.vocab_size)"
            )

    # -- files -----------------------------------------------------------------------
    def to_str(self) -> str:
        """The ``tokenizer.json`` text."""
        return self.tokenizer.to_str()

    def save(self, path: str | os.PathLike) -> Path:
        """Write ``tokenizer.json`` (the Hugging Face format) atomically."""
        path = Path(path)
        atomic_write_text(path, self.tokenizer.to_str(pretty=True) + "\n")
        return path

    @classmethod
    def from_str(cls, text: str, source: str = "<tokenizer.json text>") -> "HFTokenizer":
        """From the ``tokenizer.json`` text of :meth:`to_str`."""
        from tokenizers import Tokenizer

        try:
            return cls(Tokenizer.from_str(text), source=source)
        except Exception as err:  # tokenizers raises plain Exceptions
            raise ValueError(f"tokenizer {source} is not a usable tokenizer ({' '.join(str(err).split())})") from None

    @classmethod
    def load(cls, path: str | os.PathLike) -> "HFTokenizer":
        """Read a ``tokenizer.json`` written by :meth:`save` (ids 0, 1, 2 must be PAD, BOS, EOS)."""
        path = Path(path)
        tok = _tokenizer_from_file(path)
        return cls(tok, source=repr(str(path)))

    def __eq__(self, other: object) -> bool:
        """Same tokenizer.json, floats (Unigram scores) to 12 significant digits: a saved and
        reloaded Unigram tokenizer differs in the last bits of its scores, not in what it does."""
        return isinstance(other, HFTokenizer) and \
            _canonical(json.loads(self.to_str())) == _canonical(json.loads(other.to_str()))

    def __repr__(self) -> str:
        return f"HFTokenizer(kind={self.kind}, vocab_size={self.vocab_size}, specials={self.special_tokens})"


def _canonical(node: Any) -> Any:
    if isinstance(node, float):
        return float(f"{node:.12g}")
    if isinstance(node, list):
        return [_canonical(x) for x in node]
    if isinstance(node, dict):
        return {k: _canonical(v) for k, v in node.items()}
    return node


#: Every character ``str.splitlines`` splits on -> U+FFFD (see the module contract).
_LINE_BREAKS = {ord(c): "\ufffd" for c in "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"}


def _one_line(text: str) -> str:
    return text.translate(_LINE_BREAKS)


def _symbols(id_list: list[int]) -> list[int]:
    """The ids up to the first EOS, without PAD and BOS."""
    out = []
    for i in id_list:
        if i == EOS_ID:
            break
        if i not in (PAD_ID, BOS_ID):
            out.append(i)
    return out


def char_to_hf(tokenizer: CharTokenizer) -> HFTokenizer:
    """The character tokenizer as a Hugging Face ``tokenizers`` one with the same ids: a WordLevel vocabulary
    (``<pad>``, ``<bos>``, ``<eos>`` at 0, 1, 2, symbol ``i`` at ``3 + i``), one token per character, and a
    decoder that joins characters without spaces. Same ``encode`` and ``decode`` on the symbols' texts."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers

    vocab = {t: i for i, t in enumerate(SPECIAL_TOKENS)}
    vocab.update({c: len(SPECIAL_TOKENS) + i for i, c in enumerate(tokenizer.symbols)})
    raw = Tokenizer(models.WordLevel(vocab, unk_token=UNK_TOKEN))  # no <unk> id: an unknown character is refused
    raw.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")  # one token per character
    raw.decoder = decoders.Fuse()
    return HFTokenizer(raw, source="the character tokenizer")


def save_tokenizer_files(tokenizer: Any, directory: str | os.PathLike) -> None:
    """``tokenizer.json`` in ``directory`` in the Hugging Face format (a :class:`CharTokenizer` as
    :func:`char_to_hf`, same ids) and ``tokenizer_config.json`` naming pad/bos/eos, so
    ``transformers.AutoTokenizer.from_pretrained(directory)`` loads it and the directory is a
    ``--generator.pretrained``. Other tokenizers (the oracle's integers) write their own JSON."""
    directory = Path(directory)
    if isinstance(tokenizer, CharTokenizer):
        tokenizer = char_to_hf(tokenizer)
    tokenizer.save(directory / "tokenizer.json")
    if isinstance(tokenizer, HFTokenizer):
        pad, bos, eos = tokenizer.special_tokens
        config = {"backend": "tokenizers", "tokenizer_class": "PreTrainedTokenizerFast",
                  "pad_token": pad, "bos_token": bos, "eos_token": eos, "model_max_length": 1_000_000}
        atomic_write_text(directory / "tokenizer_config.json", json.dumps(config, indent=2) + "\n")


def is_hf_tokenizer_json(data: Any) -> bool:
    """Whether parsed JSON is a Hugging Face ``tokenizer.json`` (it has a ``model`` object)."""
    return isinstance(data, dict) and isinstance(data.get("model"), dict)


# ---------------------------------------------------------------------------------------
# training
# ---------------------------------------------------------------------------------------
def train_tokenizer(kind: str, texts: Sequence[str], vocab_size: int = 2000, min_frequency: int = 2) -> HFTokenizer:
    """Train a ``bpe`` | ``unigram`` | ``word`` tokenizer on ``texts``, specials at ids 0, 1, 2 (see module)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    if kind not in TRAINED_KINDS:
        raise ValueError(f"train_tokenizer: kind={kind!r} is not trainable: choose one of {list(TRAINED_KINDS)}.")
    texts = list(texts)
    if not texts:
        raise ValueError("train_tokenizer got no texts; fix: pass the lines of a non-empty data file.")
    specials = list(SPECIAL_TOKENS)
    if kind == "bpe":
        tok = Tokenizer(models.BPE())
        # Byte-level: every string is encodable and decodes back exactly; no leading space is
        # invented, so a caption starts like the data's captions do.
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=specials,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    elif kind == "unigram":
        tok = Tokenizer(models.Unigram())
        tok.pre_tokenizer = pre_tokenizers.Metaspace()
        tok.decoder = decoders.Metaspace()
        trainer = trainers.UnigramTrainer(vocab_size=vocab_size, special_tokens=[*specials, UNK_TOKEN],
                                          unk_token=UNK_TOKEN, show_progress=False)
    else:
        tok = Tokenizer(models.WordLevel(unk_token=UNK_TOKEN))
        tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
        trainer = trainers.WordLevelTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                            special_tokens=[*specials, UNK_TOKEN], show_progress=False)
    try:
        tok.train_from_iterator(texts, trainer)
    except Exception as exc:  # the Rust trainers raise plain Exceptions
        raise ValueError(f"training a {kind} tokenizer with vocab_size={vocab_size} failed ({exc}); "
                         f"fix: change --tokenizer.vocab-size or the data.") from None
    for i, name in enumerate(specials):  # the trainers put special_tokens first, in order
        if tok.token_to_id(name) != i:
            raise RuntimeError(f"the {kind} trainer put {name!r} at id {tok.token_to_id(name)}, not {i}")
    return HFTokenizer(tok, source=f"<trained {kind}>")


# ---------------------------------------------------------------------------------------
# loading any tokenizer.json / directory, reordered to the contract
# ---------------------------------------------------------------------------------------
def _tokenizer_from_file(path: Path):
    """A ``tokenizers.Tokenizer`` from a tokenizer.json; every failure names the file and the fix."""
    from tokenizers import Tokenizer

    fix = "fix: pass a Hugging Face tokenizer.json (tokenizer.save(path)) or a directory holding one"
    if not path.exists():
        raise FileNotFoundError(f"tokenizer file {str(path)!r} does not exist; {fix}")
    if path.is_dir():
        raise ValueError(f"tokenizer path {str(path)!r} is a directory, expected a tokenizer.json file; {fix}")
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        reason = " ".join(str(err).split())
        raise ValueError(f"tokenizer file {str(path)!r} is not valid UTF-8 JSON ({reason}); {fix}") from None
    if not is_hf_tokenizer_json(data):
        raise ValueError(f"tokenizer file {str(path)!r} is JSON but not a Hugging Face tokenizer (no 'model' "
                         f"object); {fix}")
    try:
        return Tokenizer.from_str(text)
    except Exception as err:  # tokenizers raises plain Exceptions for a bad model
        reason = " ".join(str(err).split())
        raise ValueError(f"tokenizer file {str(path)!r} is not a usable tokenizer ({reason}); {fix}") from None


def _directory_specials(directory: Path) -> dict[str, str]:
    """pad/bos/eos token strings named by a directory's tokenizer_config.json / special_tokens_map.json."""
    found: dict[str, str] = {}
    for name in ("special_tokens_map.json", "tokenizer_config.json"):  # the second wins, as in transformers
        p = directory / name
        if not p.is_file():
            continue
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ValueError(f"{p} is not valid UTF-8 JSON ({' '.join(str(err).split())}); fix: repair or delete "
                             f"it (the tokenizer's special tokens are then found by name).") from None
        for key in ("pad", "bos", "eos"):
            value = data.get(f"{key}_token") if isinstance(data, dict) else None
            if isinstance(value, dict):
                value = value.get("content")
            if isinstance(value, str) and value:
                found[key] = value
    return found


_SLOW_TOKENIZER_FILES = ("tokenizer_config.json", "vocab.json", "vocab.txt", "tokenizer.model", "spiece.model")


def _tokenizer_from_directory(directory: Path):
    """The fast tokenizer of a directory: its tokenizer.json, else whatever AutoTokenizer converts (local only)."""
    if (directory / "tokenizer.json").is_file():
        return _tokenizer_from_file(directory / "tokenizer.json")
    fix = "fix: save the tokenizer with tokenizer.save_pretrained(directory) (it writes tokenizer.json)"
    from transformers import AutoTokenizer

    # Without any tokenizer file AutoTokenizer may still build an empty tokenizer from config.json alone.
    if not any((directory / name).is_file() for name in _SLOW_TOKENIZER_FILES):
        raise ValueError(f"directory {str(directory)!r} holds no tokenizer (no tokenizer.json, "
                         f"{', '.join(_SLOW_TOKENIZER_FILES)}); {fix}.")
    try:
        auto = AutoTokenizer.from_pretrained(str(directory), local_files_only=True)
        backend = getattr(auto, "backend_tokenizer", None)
        if backend is not None:
            return backend
    except Exception:  # any failure means: no usable tokenizer here (reported below)
        pass
    raise ValueError(f"directory {str(directory)!r} holds no tokenizer.json (and transformers could not build a "
                     f"fast tokenizer from it); {fix}.")


def load_tokenizer_source(path: str | os.PathLike, pad_token: str | None = None, bos_token: str | None = None,
                          eos_token: str | None = None) -> tuple[HFTokenizer, list[int]]:
    """(tokenizer under the contract, ``source``) of a ``tokenizer.json`` file or a tokenizer directory.

    The pad/begin/end tokens are, in order of precedence: the arguments, a directory's
    ``tokenizer_config.json`` / ``special_tokens_map.json``, common names (``<pad>``,
    ``<s>``, ``</s>``, ``<|endoftext|>``, ...). See :func:`to_project_ids` for ``source``.
    """
    path = Path(path)
    if path.is_dir():
        tok = _tokenizer_from_directory(path)
        named = _directory_specials(path)
    else:
        tok = _tokenizer_from_file(path)
        named = {}
    for key, value in (("pad", pad_token), ("bos", bos_token), ("eos", eos_token)):
        if value is not None:
            named[key] = value
    return to_project_ids(tok, named, source=str(path))


def _find(tok, names: Iterable[str]) -> int | None:
    for name in names:
        i = tok.token_to_id(name)
        if i is not None:
            return i
    return None


def to_project_ids(tok, named: dict[str, str] | None = None, source: str = "<tokenizer>"
                   ) -> tuple[HFTokenizer, list[int]]:
    """Reorder ``tok``'s ids so that its pad, begin and end tokens are 0, 1, 2; returns (tokenizer, source).

    ``named``: {"pad"|"bos"|"eos": token string}; unnamed ones are looked up by common names.
    The end token must exist. A missing begin token, or one equal to the end token (GPT-2's
    ``<|endoftext|>`` is both), becomes a new ``<bos>``; a missing pad token (or one equal to
    another) a new ``<pad>``. The other ids keep their order after the three. ``source[j]``
    is the old id of new id ``j``; an added token's source is the end token's id (a pretrained
    model then starts a sequence as it would after an end of text). A tokenizer already in
    order comes back unchanged, with ``source == list(range(vocab_size))``.
    """
    named = dict(named or {})
    old_size = tok.get_vocab_size(with_added_tokens=True)
    ids: dict[str, int | None] = {}
    for key, names in (("pad", _PAD_NAMES), ("bos", _BOS_NAMES), ("eos", _EOS_NAMES)):
        if key in named:
            i = tok.token_to_id(named[key])
            if i is None:
                raise ValueError(f"tokenizer {source}: the {key} token {named[key]!r} is not in its vocabulary; "
                                 f"fix: name one it has with --tokenizer.{key}-token TOKEN.")
            ids[key] = i
        else:
            ids[key] = _find(tok, names)
    if ids["eos"] is None:
        raise ValueError(f"tokenizer {source} has no end-of-text token under a known name ({', '.join(_EOS_NAMES)}) "
                         f"and its directory names none; fix: name it with --tokenizer.eos-token TOKEN.")
    if ids["bos"] == ids["eos"]:
        ids["bos"] = None
    if ids["pad"] in (ids["bos"], ids["eos"]):
        ids["pad"] = None
    if (ids["pad"], ids["bos"], ids["eos"]) == (PAD_ID, BOS_ID, EOS_ID):
        return HFTokenizer(tok, source=source), list(range(old_size))
    old_tokens = [tok.id_to_token(i) for i in range(old_size)]
    if any(t is None for t in old_tokens):
        raise ValueError(f"tokenizer {source} has gaps in its ids; fix: re-save it with tokenizers.")
    taken = set(old_tokens)

    def fresh(base: str) -> str:
        name, k = base, 1
        while name in taken:
            name, k = f"{base[:-1]}_{k}>", k + 1
        taken.add(name)
        return name

    head: list[tuple[str, int, bool]] = []  # (token, source id, added?) for new ids 0, 1, 2
    for key, base in (("pad", SPECIAL_TOKENS[PAD_ID]), ("bos", SPECIAL_TOKENS[BOS_ID]), ("eos", None)):
        i = ids[key]
        head.append((old_tokens[i], i, False) if i is not None else (fresh(base), ids["eos"], True))
    moved = {i for _, i, added in head if not added}
    order = head + [(old_tokens[i], i, False) for i in range(old_size) if i not in moved]
    new_id = {src: j for j, (_, src, added) in enumerate(order) if not added}  # old id -> new id
    data = json.loads(tok.to_str())
    _reorder_json(data, order, new_id, source)
    from tokenizers import Tokenizer

    try:
        new = Tokenizer.from_str(json.dumps(data))
    except Exception as err:
        raise ValueError(f"tokenizer {source} could not be reordered to PAD, BOS, EOS = 0, 1, 2 "
                         f"({' '.join(str(err).split())}); fix: save one whose ids 0, 1, 2 are pad, begin and end "
                         f"tokens.") from None
    expected = [t for t, _, _ in order]
    got = [new.id_to_token(j) for j in range(len(order))]
    if got != expected or new.get_vocab_size(with_added_tokens=True) != len(order):
        raise ValueError(f"tokenizer {source} could not be reordered to PAD, BOS, EOS = 0, 1, 2 (its format keeps "
                         f"ids this code does not move); fix: save one whose ids 0, 1, 2 are pad, begin and end "
                         f"tokens.")
    return HFTokenizer(new, source=source), [src for _, src, _ in order]


def _reorder_json(data: dict, order: list[tuple[str, int, bool]], new_id: dict[int, int], source: str) -> None:
    """Rewrite a tokenizer.json in place: every token of ``order`` gets its index as id.

    All tokens move into the model's vocabulary (an added token that sat after it must,
    to take a low id) and stay in ``added_tokens`` with their new ids, specials included.
    """
    model = data["model"]
    kind = model.get("type")
    if kind in ("BPE", "WordLevel", "WordPiece"):
        model["vocab"] = {tok: j for j, (tok, _, _) in enumerate(order)}
    elif kind == "Unigram":
        scores = {piece: score for piece, score in model["vocab"]}
        floor = min(scores.values(), default=0.0) - 10.0  # never preferred when segmenting plain text
        if model.get("unk_id") is not None:
            model["unk_id"] = new_id[model["unk_id"]]
        model["vocab"] = [[tok, scores.get(tok, floor)] for tok, _, _ in order]
    else:
        raise ValueError(f"tokenizer {source} has model type {kind!r}, whose ids this code cannot reorder; fix: "
                         f"use a BPE, Unigram, WordLevel or WordPiece tokenizer whose ids 0, 1, 2 are pad, begin, end.")
    added = []
    for entry in data.get("added_tokens") or []:
        entry = dict(entry, id=new_id[entry["id"]])
        added.append(entry)
    present = {e["content"] for e in added}
    for j, (tok, _, is_new) in enumerate(order):
        if is_new or (j < len(SPECIAL_TOKENS) and tok not in present):
            added.append({"id": j, "content": tok, "single_word": False, "lstrip": False, "rstrip": False,
                          "normalized": False, "special": True})
    data["added_tokens"] = sorted(added, key=lambda e: e["id"])
    data["post_processor"] = _remap_ids(data.get("post_processor"), new_id)
    data["padding"] = None  # rows are padded by encode_batch (PAD_ID), never by the tokenizer
    data["truncation"] = None


def _remap_ids(node: Any, new_id: dict[int, int]) -> Any:
    """Post-processor JSON with token ids renumbered (TemplateProcessing ``ids``, Bert/Roberta ``cls``/``sep``)."""
    if isinstance(node, list):
        return [_remap_ids(x, new_id) for x in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key == "ids" and isinstance(value, list) and all(isinstance(v, int) for v in value):
            out[key] = [new_id[v] for v in value]
        elif key in ("cls", "sep") and isinstance(value, list) and len(value) == 2 and isinstance(value[1], int):
            out[key] = [value[0], new_id[value[1]]]
        else:
            out[key] = _remap_ids(value, new_id)
    return out


def build_tokenizer(config: TokenizerConfig, texts: Sequence[str]) -> HFTokenizer:
    """The tokenizer ``config`` names for data ``texts``: trained on them, or loaded from ``config.path``.

    Not for ``char`` / ``auto`` (the data layer builds the character tokenizer itself).
    """
    if config.kind in TRAINED_KINDS:
        return train_tokenizer(config.kind, texts, config.vocab_size, config.min_frequency)
    if config.kind == "file":
        tok, _ = load_tokenizer_source(config.path, config.pad_token, config.bos_token, config.eos_token)
        return tok
    raise ValueError(f"build_tokenizer: tokenizer.kind={config.kind!r} is not a subword tokenizer.")


__all__ = ["BPE_MIN_VOCAB", "HFTokenizer", "MAX_VOCAB_SIZE", "TOKENIZER_KINDS", "TRAINED_KINDS", "TokenizerConfig", "UNK_TOKEN",
           "build_tokenizer", "char_to_hf", "is_hf_tokenizer_json", "load_tokenizer_source", "save_tokenizer_files",
           "to_project_ids", "train_tokenizer"]
