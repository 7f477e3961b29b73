"""Tests for seqgan_env.data.tokenizer.CharTokenizer."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seqgan_env.data.tokenizer import (
    BOS_ID,
    EOS_ID,
    PAD_ID,
    SPECIAL_TOKENS,
    CharTokenizer,
    UnknownSymbolError,
)

ABC = CharTokenizer(("a", "b", "c"))  # a=3, b=4, c=5

# Any single character except line breaks (surrogates are excluded by default).
symbol_chars = st.characters(blacklist_characters="\n\r")
tokenizers = st.sets(symbol_chars, min_size=1, max_size=20).map(
    lambda chars: CharTokenizer(tuple(sorted(chars)))
)


def test_constants():
    assert (PAD_ID, BOS_ID, EOS_ID) == (0, 1, 2)
    assert SPECIAL_TOKENS == ("<pad>", "<bos>", "<eos>")


def test_ids_and_sizes():
    assert ABC.vocab_size == 6
    assert ABC.num_special == 3
    assert ABC.encode("cab") == [5, 3, 4]
    assert ABC.encode("") == []


def test_from_texts_sorted_and_deterministic():
    tok = CharTokenizer.from_texts(["cab", "ba", "zz"])
    assert tok.symbols == ("a", "b", "c", "z")
    assert tok == CharTokenizer.from_texts(iter(["zz", "ba", "cab"]))


@pytest.mark.parametrize(
    "symbols, match",
    [
        ((), "empty"),
        (("ab",), "single character"),
        (("",), "single character"),
        (("a", "b", "a"), "duplicate 'a'"),
        (("a", "\n"), "line break"),
        (("\r",), "line break"),
    ],
)
def test_invalid_symbols(symbols, match):
    with pytest.raises(ValueError, match=match):
        CharTokenizer(symbols)


def test_symbols_list_is_converted_to_tuple_and_hashable():
    tok = CharTokenizer(["a", "b"])  # type: ignore[arg-type]
    assert tok.symbols == ("a", "b")
    assert hash(tok) == hash(CharTokenizer(("a", "b")))


def test_encode_unknown_symbol_names_char_position_and_fix():
    with pytest.raises(UnknownSymbolError, match=r"'x' at position 2.*rebuild the vocabulary") as info:
        ABC.encode("abxc")
    assert info.value.char == "x" and info.value.position == 2
    assert isinstance(info.value, ValueError)
    # Survives pickling (e.g. across vector-env worker processes).
    again = pickle.loads(pickle.dumps(info.value))
    assert str(again) == str(info.value) and again.char == "x" and again.position == 2


def test_decode_stops_at_eos_and_skips_pad_bos():
    assert ABC.decode([BOS_ID, 3, PAD_ID, 4, EOS_ID, 5, 5]) == "ab"
    assert ABC.decode([EOS_ID, 3]) == ""
    assert ABC.decode([]) == ""


@pytest.mark.parametrize(
    "ids",
    [
        [3, 4, 5, EOS_ID],
        np.array([3, 4, 5, EOS_ID], dtype=np.int32),
        torch.tensor([3, 4, 5, EOS_ID]),
        (i for i in [3, 4, 5]),
    ],
    ids=["list", "numpy", "torch", "generator"],
)
def test_decode_accepts_iterables_arrays_tensors(ids):
    assert ABC.decode(ids) == "abc"


@pytest.mark.parametrize("bad", [6, -1, 100])
def test_decode_out_of_range_names_id(bad):
    with pytest.raises(ValueError, match=rf"token id {bad} at position 1 .*\[0, 6\)"):
        ABC.decode([3, bad])


def test_decode_rejects_float_and_2d():
    with pytest.raises(TypeError, match="integer dtype"):
        ABC.decode(torch.tensor([3.0, 4.0]))
    with pytest.raises(ValueError, match="decode_batch"):
        ABC.decode(torch.tensor([[3, 4]]))


def test_encode_batch_layout():
    out = ABC.encode_batch(["ab", "", "abc", "c"], max_length=3)
    assert out.dtype == torch.long and out.shape == (4, 3)
    expected = torch.tensor(
        [
            [3, 4, EOS_ID],
            [EOS_ID, PAD_ID, PAD_ID],
            [3, 4, 5],  # exactly max_length symbols: no EOS
            [5, EOS_ID, PAD_ID],
        ]
    )
    assert torch.equal(out, expected)


def test_encode_batch_empty_list():
    out = ABC.encode_batch([], max_length=4)
    assert out.shape == (0, 4) and out.dtype == torch.long


def test_encode_batch_too_long_names_index_and_lengths():
    with pytest.raises(ValueError, match=r"texts\[1\] has length 4 > max_length=3"):
        ABC.encode_batch(["a", "abca"], max_length=3)


def test_encode_batch_unknown_names_text_index():
    with pytest.raises(UnknownSymbolError, match=r"'z' at position 1 of texts\[1\]"):
        ABC.encode_batch(["a", "az"], max_length=3)


@pytest.mark.parametrize("max_length", [0, -1, 2.5, True])
def test_encode_batch_bad_max_length(max_length):
    with pytest.raises(ValueError, match="max_length must be an int >= 1"):
        ABC.encode_batch(["a"], max_length=max_length)


def test_decode_batch_and_errors():
    tokens = torch.tensor([[3, EOS_ID, 5], [BOS_ID, 5, 4]])  # (2, 3)
    assert ABC.decode_batch(tokens) == ["a", "cb"]
    with pytest.raises(ValueError, match=r"token id 9 at row 1, column 2"):
        ABC.decode_batch(torch.tensor([[3, 4, 5], [3, 4, 9]]))
    with pytest.raises(ValueError, match=r"shape \(N, T\)"):
        ABC.decode_batch(torch.tensor([3, 4]))


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_roundtrip_property(data):
    tok = data.draw(tokenizers)
    alphabet = st.sampled_from(tok.symbols)
    text = data.draw(st.text(alphabet=alphabet, max_size=30))
    assert tok.decode(tok.encode(text)) == text

    max_length = data.draw(st.integers(min_value=1, max_value=12))
    texts = data.draw(st.lists(st.text(alphabet=alphabet, max_size=max_length), max_size=8))
    batch = tok.encode_batch(texts, max_length)  # (N, T)
    assert batch.shape == (len(texts), max_length)
    assert tok.decode_batch(batch) == texts


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(tok=tokenizers)
def test_save_load_roundtrip_property(tok, tmp_path):
    path = tmp_path / "tok.json"
    tok.save(path)
    loaded = CharTokenizer.load(path)
    assert loaded == tok
    assert CharTokenizer.from_dict(tok.to_dict()) == tok
    # Atomic write leaves no temp files behind.
    assert [p.name for p in tmp_path.iterdir()] == ["tok.json"]


def test_saved_json_format(tmp_path):
    path = ABC.save(tmp_path / "t.json")
    assert json.loads(path.read_text()) == {
        "type": "char",
        "format_version": 1,
        "special_tokens": ["<pad>", "<bos>", "<eos>"],
        "symbols": ["a", "b", "c"],
    }


def test_load_missing_file(tmp_path):
    path = tmp_path / "nope.json"
    with pytest.raises(FileNotFoundError, match=r"nope\.json.*does not exist.*fix"):
        CharTokenizer.load(path)


def test_load_directory(tmp_path):
    with pytest.raises(ValueError, match="is a directory"):
        CharTokenizer.load(tmp_path)


def test_load_corrupt_json(tmp_path):
    path = tmp_path / "corrupt.json"
    path.write_text('{"type": "char", "symbols": [')
    with pytest.raises(ValueError, match=r"corrupt\.json.*not valid UTF-8 JSON.*fix: regenerate"):
        CharTokenizer.load(path)


@pytest.mark.parametrize(
    "change, match",
    [
        ({"type": "bpe"}, r"type='bpe', expected 'char'"),
        ({"format_version": 2}, r"format_version=2"),
        ({"special_tokens": ["<bos>", "<pad>", "<eos>"]}, r"special_tokens="),
        ({"symbols": ["a", "a"]}, r"duplicate 'a'"),
        ({"symbols": "abc"}, r"'symbols' must be a list"),
    ],
)
def test_load_wrong_content(tmp_path, change, match):
    path = tmp_path / "wrong.json"
    path.write_text(json.dumps({**ABC.to_dict(), **change}))
    with pytest.raises(ValueError, match=r"wrong\.json.*" + match):
        CharTokenizer.load(path)


def test_load_missing_key(tmp_path):
    path = tmp_path / "partial.json"
    data = ABC.to_dict()
    del data["symbols"]
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"partial\.json.*missing key\(s\) \['symbols'\]"):
        CharTokenizer.load(path)


def test_load_non_object_json(tmp_path):
    path = tmp_path / "list.json"
    path.write_text("[1, 2]")
    with pytest.raises(ValueError, match=r"list\.json.*must be a JSON object"):
        CharTokenizer.load(path)
