"""A new run whose tokenizer maps most of the data to its unknown token stops before training (issue 23, class 2).

`--tokenizer word` on the census names: every name occurs once, min_frequency 2 keeps none, so the
vocabulary is PAD, BOS, EOS, <unk> and every token of the data is <unk>. The run stops before its
directory exists, with the numbers and the fix; a tokenizer that covers the data records its counts.
"""

from __future__ import annotations

import dataclasses

import pytest

from seqgan_agents.lifecycle import MAX_UNK_FRACTION, _check_unknown, load_run_data
from seqgan_env.cli import main
from seqgan_env.data.subword import TokenizerConfig

from .test_train import tiny_config


def test_word_tokenizer_on_the_names_stops_with_the_numbers_and_the_fix(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--tokenizer", "word", "--no-progress", "--set", f"out_dir={tmp_path / 'runs'}"]) == 2
    out, err = capsys.readouterr()
    assert err.count("\n") == 1 and "Traceback" not in out + err, err
    assert "(--tokenizer word, 4 ids) maps 5163 of the 5163 tokens of" in err and "census_first_names.txt" in err
    assert "(100%) to <unk>" in err and "fix: use a tokenizer that covers the data: --tokenizer char" in err
    assert "--tokenizer.min-frequency 1 (now 2)" in err
    assert list(tmp_path.iterdir()) == []  # no runs/ left behind


def _config(tmp_path, lines, **tok):
    path = tmp_path / "data.txt"
    path.write_text("\n".join(lines) + "\n")
    cfg = tiny_config(tmp_path)
    return dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, path=str(path)),
                               tokenizer=TokenizerConfig(kind="word", **tok))


def test_the_check_counts_unknown_tokens_against_a_threshold(tmp_path):
    # every word but "ran" occurs at least twice (kept with min_frequency 2); "ran" once: <unk>
    covered = _config(tmp_path, ["the cat", "the cat", "a dog", "one fox"] * 3 + ["a dog ran"], min_frequency=2)
    data = load_run_data(covered)
    _check_unknown(covered, data)  # 1 of 27 tokens
    assert data.stats["tokens"] == 27 and data.stats["unk_tokens"] == 1
    # "the" and "cat" occur twice; the other ten words once: <unk>
    rare = _config(tmp_path, ["the cat", "the cat", "a b", "c d", "e f", "g h", "i j"], min_frequency=2)
    data = load_run_data(rare)
    assert data.stats.get("unk_tokens") is None
    with pytest.raises(ValueError, match=r"maps 10 of the 14 tokens of .* \(71%\) to <unk>.*fix: "):
        _check_unknown(rare, data)
    assert 4 / 14 < MAX_UNK_FRACTION < 10 / 14
