"""A run's own character-tokenizer export is a Hugging Face model directory (issue 23, "Also").

RUN/generator/tokenizer.json is a valid ``tokenizers`` file with the run's ids, so
``AutoTokenizer.from_pretrained(RUN/generator)`` loads it and ``--generator.pretrained RUN/generator``
continues from it; a character the export's vocabulary lacks ends with one line naming it.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest
import transformers

from seqgan_env.cli import main
from seqgan_env.data.subword import char_to_hf
from seqgan_env.data.tokenizer import BOS_ID, EOS_ID, PAD_ID, CharTokenizer

NAMES = ["anna", "bob", "cora", "dave", "emma", "finn", "gina", "hugo", "ivy", "jack", "mary ann"]
TINY = ["--no-progress", "--updates", "1", "--pretrain-steps", "1", "--set", "schedule.d_pretrain_steps=1",
        "--set", "schedule.eval_samples=8", "--set", "reinforce.batch_size=8", "--set", "d_updates.batch_size=8"]
SMALL = ["--generator.hidden-size", "16", "--generator.intermediate-size", "32", "--generator.num-layers", "1"]


@pytest.fixture(scope="module")
def data_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "names.txt"
    path.write_text("\n".join(NAMES) + "\n")
    return path


@pytest.fixture(scope="module")
def run(data_file, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        assert main(["train", "--data", str(data_file), *TINY, *SMALL, "--set", f"out_dir={root}"]) == 0, err.getvalue()
    (path,) = root.iterdir()
    return path


def test_char_to_hf_keeps_the_ids_and_the_text():
    char = CharTokenizer.from_texts(NAMES)
    hf = char_to_hf(char)
    assert hf.vocab_size == char.vocab_size
    for text in NAMES:
        assert hf.encode(text) == char.encode(text)
        assert hf.decode(char.encode(text)) == char.decode(char.encode(text)) == text


def test_auto_tokenizer_loads_the_export_with_the_runs_ids(run):
    char = CharTokenizer.load(run / "tokenizer.json")  # the run's own file keeps its format
    auto = transformers.AutoTokenizer.from_pretrained(str(run / "generator"))
    assert (auto.pad_token_id, auto.bos_token_id, auto.eos_token_id) == (PAD_ID, BOS_ID, EOS_ID)
    for text in NAMES:
        assert auto(text, add_special_tokens=False)["input_ids"] == char.encode(text)
        assert auto.decode(char.encode(text)) == text


def test_the_export_is_a_generator_pretrained(run, data_file, tmp_path, capsys):
    root = tmp_path / "runs"
    assert main(["train", "--data", str(data_file), *TINY, "--generator.pretrained", str(run / "generator"),
                 "--set", f"out_dir={root}"]) == 0
    (second,) = root.iterdir()
    assert transformers.AutoTokenizer.from_pretrained(str(second / "generator")).eos_token_id == EOS_ID
    # a character the export's vocabulary lacks: one line naming it, nothing left behind
    other = tmp_path / "other.txt"
    other.write_text("anna\nzed\n")
    capsys.readouterr()
    assert main(["train", "--data", str(other), *TINY, "--generator.pretrained", str(run / "generator"),
                 "--set", f"out_dir={tmp_path / 'runs2'}"]) == 2
    out, err = capsys.readouterr()
    assert err.count("\n") == 1 and "Traceback" not in out + err, err
    assert "other.txt:2:1: character 'z'" in err and "fix: " in err
    assert not (tmp_path / "runs2").exists()
