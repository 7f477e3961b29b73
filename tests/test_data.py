"""Tests for seqgan_env.data.text: loading, validation, splitting, dataset building."""

from __future__ import annotations

import hashlib
import random
import re

import pytest
import torch

from seqgan_env.data.text import (
    DEFAULT_DATA_DIR,
    DEFAULT_DATA_PATH,
    DataError,
    TextDataset,
    file_sha256,
    load_dataset,
    load_texts,
    load_texts_with_stats,
    split_train_valid,
)
from seqgan_env.data.tokenizer import EOS_ID, CharTokenizer


def write(tmp_path, content: bytes | str, name: str = "data.txt"):
    path = tmp_path / name
    if isinstance(content, str):
        content = content.encode("utf-8")
    path.write_bytes(content)
    return path


# --------------------------------------------------------------- load_texts
@pytest.mark.parametrize(
    "content",
    [b"ab\ncd\n", b"ab\ncd", b"ab\r\ncd\r\n", b"\xef\xbb\xbfab\ncd\n"],
    ids=["lf", "no-final-newline", "crlf", "bom"],
)
def test_load_texts_line_endings(tmp_path, content):
    assert load_texts(write(tmp_path, content), max_length=5) == ["ab", "cd"]


def test_load_texts_keeps_inner_and_edge_spaces(tmp_path):
    assert load_texts(write(tmp_path, " a b \nc\n"), max_length=8) == [" a b ", "c"]


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"missing\.txt.*does not exist.*fix"):
        load_texts(tmp_path / "missing.txt", max_length=5)


def test_missing_file_named_like_shipped_data_points_to_the_package(tmp_path):
    # a run recorded before the data moved into the package names the old data/ folder
    with pytest.raises(DataError, match=r"does not exist.*ships in the package.*" + re.escape(str(DEFAULT_DATA_PATH))):
        load_texts(tmp_path / "data" / DEFAULT_DATA_PATH.name, max_length=12)


def test_directory(tmp_path):
    with pytest.raises(DataError, match=re.escape(str(tmp_path)) + r".*is a directory.*fix"):
        load_texts(tmp_path, max_length=5)


def test_empty_file(tmp_path):
    path = write(tmp_path, b"", "empty.txt")
    with pytest.raises(DataError, match=r"empty\.txt.*empty \(0 bytes\).*fix"):
        load_texts(path, max_length=5)


def test_non_utf8(tmp_path):
    path = write(tmp_path, b"ab\ncd\nz\xff\xfez\n", "latin.txt")
    with pytest.raises(DataError, match=r"latin\.txt:3: line 3 .*not valid UTF-8.*fix") as info:
        load_texts(path, max_length=5)
    assert info.value.line == 3 and info.value.path == str(path)


@pytest.mark.parametrize("blank", ["", "   ", "\t"])
def test_blank_line(tmp_path, blank):
    path = write(tmp_path, f"ab\n{blank}\ncd\n", "blank.txt")
    with pytest.raises(DataError, match=r"blank\.txt:2: line 2 .*blank.*skip_blank=True"):
        load_texts(path, max_length=5)


def test_skip_blank_counts(tmp_path):
    path = write(tmp_path, "\nab\n\n  \ncd\r\n\r\nef\n\n")
    texts, stats = load_texts_with_stats(path, max_length=5, skip_blank=True)
    assert texts == ["ab", "cd", "ef"]
    assert stats == {"lines": 3, "skipped_blank": 5, "max_length": 5}
    assert load_texts(path, max_length=5, skip_blank=True) == texts


def test_stats_without_blanks(tmp_path):
    _, stats = load_texts_with_stats(write(tmp_path, "ab\ncd\n"), max_length=5)
    assert stats == {"lines": 2, "skipped_blank": 0, "max_length": 5}


def test_only_blank_lines_with_skip_blank(tmp_path):
    path = write(tmp_path, "\n \n\r\n", "blanks.txt")
    with pytest.raises(DataError, match=r"blanks\.txt.*no non-blank lines \(3 blank"):
        load_texts(path, max_length=5, skip_blank=True)


def test_too_long_line(tmp_path):
    path = write(tmp_path, "ab\nabcdefg\n", "long.txt")
    with pytest.raises(
        DataError, match=r"long\.txt:2: line 2 .*length 7 > max_length=5.*raise max_length"
    ):
        load_texts(path, max_length=5)


def test_exactly_max_length_is_ok(tmp_path):
    assert load_texts(write(tmp_path, "abcde\n"), max_length=5) == ["abcde"]


def test_stray_carriage_return(tmp_path):
    path = write(tmp_path, b"ab\nc\rd\n", "cr.txt")
    with pytest.raises(DataError, match=r"cr\.txt:2: .*carriage return"):
        load_texts(path, max_length=5)


def test_unknown_symbol_vs_tokenizer(tmp_path):
    tok = CharTokenizer(tuple("abc"))
    path = write(tmp_path, "abc\ncab\nbaXc\n", "vocab.txt")
    with pytest.raises(DataError, match=r"vocab\.txt:3:3: character 'X' .*line 3, column 3.*fix"):
        load_texts(path, max_length=5, tokenizer=tok)


def test_bad_max_length(tmp_path):
    with pytest.raises(ValueError, match="max_length must be an int >= 1"):
        load_texts(write(tmp_path, "ab\n"), max_length=0)


# ------------------------------------------------------- tokenizer JSON files
def test_corrupt_tokenizer_json(tmp_path):
    path = write(tmp_path, '{"type": "char", ', "tok.json")
    with pytest.raises(ValueError, match=r"tok\.json.*not valid UTF-8 JSON.*fix"):
        CharTokenizer.load(path)


def test_tokenizer_json_wrong_type(tmp_path):
    path = write(
        tmp_path,
        '{"type": "word", "format_version": 1, "special_tokens": ["<pad>", "<bos>", "<eos>"],'
        ' "symbols": ["a"]}',
        "tok.json",
    )
    with pytest.raises(ValueError, match=r"tok\.json.*type='word', expected 'char'.*fix"):
        CharTokenizer.load(path)


# ------------------------------------------------------------------- split
TEXTS = [f"t{i}" for i in range(100)]


def test_split_deterministic_and_seed_dependent():
    a = split_train_valid(TEXTS, 0.2, seed=1)
    assert a == split_train_valid(TEXTS, 0.2, seed=1)
    assert a != split_train_valid(TEXTS, 0.2, seed=2)


def test_split_does_not_use_global_rng():
    random.seed(123)
    torch.manual_seed(123)
    state_py, state_torch = random.getstate(), torch.get_rng_state()
    split_train_valid(TEXTS, 0.3, seed=0)
    assert random.getstate() == state_py
    assert torch.equal(torch.get_rng_state(), state_torch)


@pytest.mark.parametrize("fraction, n_valid", [(0.0, 0), (0.1, 10), (0.25, 25), (0.999, 99)])
def test_split_partition(fraction, n_valid):
    train, valid = split_train_valid(TEXTS, fraction, seed=7)
    assert len(valid) == n_valid
    assert not set(train) & set(valid)
    assert sorted(train + valid) == sorted(TEXTS)
    # Both parts keep the input order.
    assert train == [t for t in TEXTS if t in set(train)]


@pytest.mark.parametrize("n", [1, 2, 3])
def test_split_small_inputs(n):
    train, valid = split_train_valid(TEXTS[:n], 0.01, seed=0)
    assert len(train) >= 1
    assert len(valid) == (1 if n >= 2 else 0)


@pytest.mark.parametrize("fraction", [-0.1, 1.0, 1.5, float("nan"), True])
def test_split_fraction_bounds(fraction):
    with pytest.raises(ValueError, match=r"valid_fraction must be a float in \[0, 1\)"):
        split_train_valid(TEXTS, fraction, seed=0)


def test_split_empty_input():
    with pytest.raises(ValueError, match="0 texts"):
        split_train_valid([], 0.1, seed=0)


# ----------------------------------------------------------------- dataset
def test_file_sha256(tmp_path):
    path = write(tmp_path, b"ab\ncd\n")
    assert file_sha256(path) == hashlib.sha256(b"ab\ncd\n").hexdigest()


def test_default_paths_exist():
    assert DEFAULT_DATA_DIR.is_dir()
    assert DEFAULT_DATA_PATH.name == "census_first_names.txt" and DEFAULT_DATA_PATH.is_file()


@pytest.fixture(scope="module")
def census():
    return load_dataset(DEFAULT_DATA_PATH, max_length=12, valid_fraction=0.1, seed=0)


def test_load_dataset_census(census):
    n_lines = sum(1 for _ in DEFAULT_DATA_PATH.open(encoding="utf-8"))
    assert isinstance(census, TextDataset)
    assert census.tokenizer.vocab_size == 29 == census.vocab_size
    assert census.tokenizer.symbols == tuple("abcdefghijklmnopqrstuvwxyz")
    assert census.train.shape == (len(census.train_texts), 12)
    assert census.valid.shape == (len(census.valid_texts), 12)
    assert census.train.dtype == census.valid.dtype == torch.long
    assert len(census.train_texts) + len(census.valid_texts) == n_lines
    assert len(census.valid_texts) == round(0.1 * n_lines)
    assert census.stats == {
        "lines": n_lines,
        "skipped_blank": 0,
        "max_length": 12,
        "train": len(census.train_texts),
        "valid": len(census.valid_texts),
    }
    assert census.sha256 == file_sha256(DEFAULT_DATA_PATH)
    assert census.path == str(DEFAULT_DATA_PATH) and census.max_length == 12


def test_load_dataset_census_rows_decode(census):
    tok = census.tokenizer
    assert tok.decode_batch(census.train) == census.train_texts
    assert tok.decode_batch(census.valid) == census.valid_texts
    # Every census name is shorter than 12, so every row carries an EOS.
    assert bool((census.train == EOS_ID).any(dim=1).all())


def test_load_dataset_deterministic_and_with_given_tokenizer(tmp_path):
    path = write(tmp_path, "abc\nba\ncab\nc\nbb\n")
    a = load_dataset(path, max_length=4, valid_fraction=0.4, seed=3)
    b = load_dataset(path, max_length=4, valid_fraction=0.4, seed=3)
    assert a.train_texts == b.train_texts and torch.equal(a.train, b.train)
    assert len(a.valid_texts) == 2
    tok = CharTokenizer(tuple("abcd"))
    c = load_dataset(path, max_length=4, valid_fraction=0.4, seed=3, tokenizer=tok)
    assert c.tokenizer is tok and c.vocab_size == 7
    with pytest.raises(DataError, match=r"data\.txt:1:1: character 'a'"):
        load_dataset(path, max_length=4, tokenizer=CharTokenizer(("b", "c")))


def test_text_dataset_validates_shapes():
    tok = CharTokenizer(tuple("ab"))
    train = tok.encode_batch(["ab"], 3)  # (1, 3)
    with pytest.raises(ValueError, match=r"shape \(N, max_length=4\)"):
        TextDataset(tok, train, train, ["ab"], ["ab"], "p", "h", max_length=4, stats={})
    with pytest.raises(ValueError, match="2 entries"):
        TextDataset(tok, train, train, ["ab", "a"], ["ab"], "p", "h", max_length=3, stats={})
