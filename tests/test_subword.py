"""Subword / word tokenizers (seqgan_env.data.subword): the id contract, round trips, reordering, bad files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from seqgan_env.data.subword import (
    BPE_MIN_VOCAB,
    HFTokenizer,
    TokenizerConfig,
    load_tokenizer_source,
    save_tokenizer_files,
    to_project_ids,
    train_tokenizer,
)
from seqgan_env.data.text import DataError, load_dataset
from seqgan_env.data.tokenizer import BOS_ID, EOS_ID, PAD_ID, SPECIAL_TOKENS
from tests._hf_tiny import CAPTIONS

TEXTS = CAPTIONS[:5] * 20
KINDS = ("bpe", "unigram", "word")
VOCAB = {"bpe": 300, "unigram": 120, "word": 60}


@pytest.fixture(scope="module", params=KINDS)
def trained(request) -> HFTokenizer:
    return train_tokenizer(request.param, TEXTS, VOCAB[request.param], min_frequency=1)


def test_trained_specials_are_the_contracts(trained):
    assert trained.special_tokens == SPECIAL_TOKENS
    assert [trained.tokenizer.token_to_id(t) for t in SPECIAL_TOKENS] == [PAD_ID, BOS_ID, EOS_ID]
    asked = VOCAB[{"BPE": "bpe", "Unigram": "unigram", "WordLevel": "word"}[trained.kind]]
    assert len(SPECIAL_TOKENS) < trained.vocab_size <= asked


def test_round_trip_train_save_load(trained, tmp_path):
    path = trained.save(tmp_path / "tokenizer.json")
    loaded = HFTokenizer.load(path)
    assert loaded == trained and loaded.vocab_size == trained.vocab_size
    for text in TEXTS[:5]:
        assert loaded.encode(text) == trained.encode(text)
        assert loaded.decode(loaded.encode(text)) == text
    # the file is the Hugging Face format: the library itself reads it
    assert Tokenizer.from_file(str(path)).encode(TEXTS[0], add_special_tokens=False).ids == trained.encode(TEXTS[0])


def test_transformers_reads_the_saved_directory(trained, tmp_path):
    from transformers import AutoTokenizer

    save_tokenizer_files(trained, tmp_path)
    auto = AutoTokenizer.from_pretrained(str(tmp_path), local_files_only=True)
    assert (auto.pad_token_id, auto.bos_token_id, auto.eos_token_id) == (PAD_ID, BOS_ID, EOS_ID)
    assert auto(TEXTS[1], add_special_tokens=False)["input_ids"] == trained.encode(TEXTS[1])


def test_encode_batch_rows_and_decode(trained):
    ids = trained.encode(TEXTS[0])
    n = len(ids)
    rows = trained.encode_batch([TEXTS[0], TEXTS[0]], n + 3)  # (2, n+3)
    assert rows.shape == (2, n + 3) and rows.dtype == torch.long
    assert rows[0, :n].tolist() == ids and rows[0, n] == EOS_ID and rows[0, n + 1:].eq(PAD_ID).all()
    exact = trained.encode_batch([TEXTS[0]], n)  # exactly max_length tokens: no EOS
    assert EOS_ID not in exact[0].tolist()
    assert trained.decode_batch(rows) == [TEXTS[0], TEXTS[0]]
    assert trained.decode([BOS_ID, *ids, EOS_ID, *ids]) == TEXTS[0]  # stops at EOS, skips BOS
    with pytest.raises(ValueError, match=rf"texts\[1\] has {n} tokens > max_length={n - 1}"):
        trained.encode_batch(["a", TEXTS[0]], n - 1)
    with pytest.raises(ValueError, match="out of range"):
        trained.decode([trained.vocab_size])


LINE_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"  # what str.splitlines splits on


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_characters=LINE_BREAKS, blacklist_categories=("Cs",)), max_size=40))
def test_bpe_round_trips_any_text(text):
    """Byte-level BPE: every one-line string, seen in training or not, decodes back exactly."""
    tok = _BPE
    assert tok.decode(tok.encode(text)) == text


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(3, 299), max_size=30))
def test_decoded_samples_are_one_line(ids):
    """Any id sequence a generator may write decodes to one line (a byte token can spell a line break)."""
    for text in (_BPE.decode(ids), _BPE.decode_batch(torch.tensor([ids or [3]]))[0]):
        assert len(text.splitlines()) <= 1 and not any(c in text for c in LINE_BREAKS)


_BPE = train_tokenizer("bpe", TEXTS, 300, min_frequency=1)


def test_word_and_unigram_map_unseen_to_unk():
    word = train_tokenizer("word", TEXTS, 60, min_frequency=1)
    assert word.decode(word.encode("a zebra on a beach.")) == "a <unk> on a beach."
    uni = train_tokenizer("unigram", TEXTS, 120)
    assert "<unk>" in uni.decode(uni.encode("a man \u4e00"))


def test_trained_bpe_is_deterministic():
    assert train_tokenizer("bpe", TEXTS, 300) == train_tokenizer("bpe", TEXTS, 300)


# ------------------------------------------------------------------ reordering a foreign tokenizer
def _foreign(specials: list[str]) -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(TEXTS, trainers.BpeTrainer(vocab_size=300, special_tokens=specials, show_progress=False,
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    return tok


@pytest.mark.parametrize("specials, heads, added", [
    (["<unk>", "<s>", "</s>", "<pad>"], ("<pad>", "<s>", "</s>"), 0),  # all present, in another order
    (["<|endoftext|>"], ("<pad>", "<bos>", "<|endoftext|>"), 2),  # GPT-2: one token for begin and end, no pad
    (["</s>", "<pad>"], ("<pad>", "<bos>", "</s>"), 1),  # no begin token
])
def test_to_project_ids_moves_specials_and_keeps_meaning(specials, heads, added):
    raw = _foreign(specials)
    tok, source = to_project_ids(raw)
    assert tok.special_tokens == heads
    assert tok.vocab_size == raw.get_vocab_size() + added == len(source)
    eos_old = raw.token_to_id(heads[EOS_ID])
    for j in range(tok.vocab_size):  # every new id names the token its source names (added ones: the end row)
        new_token = tok.tokenizer.id_to_token(j)
        assert new_token == raw.id_to_token(source[j]) or source[j] == eos_old
    for text in TEXTS[:5]:  # same segmentation, renumbered
        assert [source[i] for i in tok.encode(text)] == raw.encode(text, add_special_tokens=False).ids
        assert tok.decode(tok.encode(text)) == text


def test_to_project_ids_of_an_ordered_tokenizer_is_the_identity():
    raw = _foreign(list(SPECIAL_TOKENS))
    tok, source = to_project_ids(raw)
    assert source == list(range(raw.get_vocab_size())) and tok.to_str() == raw.to_str()


def test_to_project_ids_named_tokens_win():
    raw = _foreign(["<unk>", "[A]", "[B]", "[C]"])
    tok, _ = to_project_ids(raw, {"pad": "[C]", "bos": "[A]", "eos": "[B]"})
    assert tok.special_tokens == ("[C]", "[A]", "[B]")


def test_to_project_ids_without_an_end_token_names_the_fix():
    with pytest.raises(ValueError, match="no end-of-text token.*fix: name it with --tokenizer.eos-token"):
        to_project_ids(_foreign(["<unk>"]))
    with pytest.raises(ValueError, match=r"the eos token '<nope>' is not in its vocabulary; fix"):
        to_project_ids(_foreign(["</s>"]), {"eos": "<nope>"})


def test_directory_names_its_specials(tmp_path):
    from transformers import PreTrainedTokenizerFast

    raw = _foreign(["<unk>", "[A]", "[B]", "[C]"])
    PreTrainedTokenizerFast(tokenizer_object=raw, pad_token="[C]", bos_token="[A]", eos_token="[B]").save_pretrained(
        str(tmp_path))
    tok, _ = load_tokenizer_source(tmp_path)
    assert tok.special_tokens == ("[C]", "[A]", "[B]")


# ------------------------------------------------------------------------------ bad files
@pytest.mark.parametrize("make, match", [
    (lambda p: p, "does not exist"),
    (lambda p: (p.write_text("[1, 2"), p)[1], "not valid UTF-8 JSON"),
    (lambda p: (p.write_bytes(b"\xff\xfe"), p)[1], "not valid UTF-8 JSON"),
    (lambda p: (p.write_text('{"type": "char"}'), p)[1], "not a Hugging Face tokenizer"),
    (lambda p: (p.write_text('{"model": {"type": "BPE", "vocab": 3}}'), p)[1], "not a usable tokenizer"),
    (lambda p: (p.mkdir(), p)[1], "holds no tokenizer"),
])
def test_bad_tokenizer_files_name_the_file_and_the_fix(tmp_path, make, match):
    path = make(tmp_path / "tok.json")
    with pytest.raises((ValueError, FileNotFoundError), match=match) as info:
        load_tokenizer_source(path)
    assert str(path) in str(info.value) and "fix:" in str(info.value)


def test_hftokenizer_refuses_a_tokenizer_without_ids_0_to_2():
    tok = Tokenizer(models.WordLevel({w: 5 + i for i, w in enumerate("abcdef")}, unk_token="a"))
    with pytest.raises(ValueError, match="has no token with id 0"):
        HFTokenizer(tok)
    gapped = Tokenizer(models.WordLevel({"p": 0, "b": 1, "e": 2, "x": 3, "y": 9}, unk_token="x"))
    with pytest.raises(ValueError, match="no token with id 4 although it has 5 ids"):
        HFTokenizer(gapped)


# ------------------------------------------------------------------------------ config + data
@pytest.mark.parametrize("kwargs, match", [
    ({"kind": "sentencepiece"}, "tokenizer.kind='sentencepiece' is unknown"),
    ({"kind": "bpe", "vocab_size": 100}, f"needs at least {BPE_MIN_VOCAB} ids"),
    ({"kind": "file"}, "needs tokenizer.path"),
    ({"kind": "bpe", "path": "x.json"}, "only read with tokenizer.kind=file"),
    ({"kind": "word", "vocab_size": 2}, "tokenizer.vocab_size=2 is invalid"),
    ({"kind": "word", "min_frequency": 0}, "tokenizer.min_frequency=0 is invalid"),
    ({"kind": "file", "path": "t.json", "eos_token": ""}, "tokenizer.eos_token='' is invalid"),
])
def test_tokenizer_config_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TokenizerConfig(**kwargs)


def test_dataset_lengths_count_tokens(tmp_path):
    path = tmp_path / "d.txt"
    path.write_text("\n".join(TEXTS[:5]) + "\n")
    data = load_dataset(path, None, valid_fraction=0.2, tokenizer=_BPE)
    assert data.max_length == max(len(_BPE.encode(t)) for t in TEXTS[:5]) + 1  # longest, plus EOS
    assert data.max_length < max(map(len, TEXTS[:5]))  # tokens, not characters
    assert data.tokenizer.decode_batch(data.train) == data.train_texts
    longest = max(len(_BPE.encode(t)) for t in TEXTS[:5])
    with pytest.raises(DataError, match=rf"has {longest} tokens > max_length={longest - 1}"):
        load_dataset(path, longest - 1, tokenizer=_BPE)


def test_saved_tokenizer_json_is_plain_json(tmp_path):
    data = json.loads(Path(_BPE.save(tmp_path / "t.json")).read_text())
    assert data["model"]["type"] == "BPE" and data["added_tokens"][0]["content"] == "<pad>"


def test_registered_env_takes_a_subword_tokenizer(tmp_path):
    """gym.make(..., tokenizer="bpe"): the env's vocabulary and lengths are the trained tokenizer's."""
    import gymnasium as gym

    path = tmp_path / "d.txt"
    path.write_text("\n".join(TEXTS[:5]) + "\n")
    env = gym.make("seqgan_env:SeqGAN-v1", data_path=str(path), tokenizer="bpe")
    tok = env.unwrapped.tokenizer
    assert isinstance(tok, HFTokenizer) and env.action_space.n == tok.vocab_size
    assert env.unwrapped.config.max_length == max(len(tok.encode(t)) for t in TEXTS[:5]) + 1
    obs, _ = env.reset(seed=0)
    text = None
    for _ in range(env.unwrapped.config.max_length):
        obs, _, term, trunc, info = env.step(int(env.unwrapped.action_masks().nonzero()[0][-1]))
        if term or trunc:
            text = info.get("text")
            break
    assert isinstance(text, str) and "\n" not in text


def test_a_line_spelling_a_special_token_is_refused(tmp_path):
    """A data line with the text '<eos>' would put EOS inside a real row: named with its line and the fix."""
    path = tmp_path / "d.txt"
    path.write_text("a man on a horse\na cat <eos> on a mat\n")
    with pytest.raises(DataError, match=r"d.txt:2: .*spells the tokenizer's special token '<eos>'.*fix: remove"):
        load_dataset(path, None, tokenizer=_BPE)


def test_from_str_round_trip_and_bad_text():
    assert HFTokenizer.from_str(_BPE.to_str()) == _BPE
    with pytest.raises(ValueError, match="not a usable tokenizer"):
        HFTokenizer.from_str('{"model": {}}')


def test_skip_long_leaves_out_and_counts_longer_lines(tmp_path):
    path = tmp_path / "d.txt"
    path.write_text("\n".join(TEXTS[:5]) + "\n")
    lengths = [len(_BPE.encode(t)) for t in TEXTS[:5]]
    cut = sorted(lengths)[2]  # two lines are longer than this
    data = load_dataset(path, cut, valid_fraction=0.0, tokenizer=_BPE, skip_long=True)
    assert data.stats["skipped_long"] == sum(n > cut for n in lengths) == 2
    assert sorted(data.train_texts) == sorted(t for t, n in zip(TEXTS[:5], lengths) if n <= cut)
    with pytest.raises(DataError, match="tokens > max_length"):  # without skip_long: refused, as before
        load_dataset(path, cut, tokenizer=_BPE)
