"""Real text: the COCO captions shipped in seqgan_env/datasets/, `--data coco` and its preset, `--tokenizer`, the test-file
eval protocol (BLEU-2..5, self-BLEU, NLL-test), the run's tokenizer in env/sample/eval/resume, bad tokenizer
files at the CLI."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from seqgan_agents.trainer_config import DATA_PRESETS, DataConfig
from seqgan_env.cli import _train_config, build_parser, main
from seqgan_env.data.subword import HFTokenizer, train_tokenizer
from seqgan_env.data.text import COCO_TEST_PATH, COCO_TRAIN_PATH, DEFAULT_DATA_DIR
from seqgan_env.eval.text_benchmark import held_out_nll, sample_scores

TRAIN = [
    "a man riding a horse on a beach.", "two dogs play with a red ball in the park",
    "a plate of food with broccoli and rice.", "a cat sleeping on top of a laptop keyboard",
    "a group of people standing next to a bus.", "a red bus parked next to a building.",
    "a woman holding an umbrella in the rain.", "a small boat on a calm lake",
] * 4
TEST = ["a dog riding a horse on the beach.", "a man holding a red umbrella", "three cats on a bus."]
TINY = [
    "--no-progress", "--updates", "2", "--pretrain-steps", "2",
    "--set", "schedule.d_pretrain_steps=1", "--set", "schedule.eval_samples=16", "--set", "schedule.eval_every=2",
    "--set", "schedule.checkpoint_every=1", "--set", "d_updates.batch_size=8", "--set", "reinforce.batch_size=8",
    "--generator.hidden-size", "16", "--generator.intermediate-size", "32", "--generator.num-layers", "1",
]


def test_coco_files_ship_with_their_attribution():
    for path in (COCO_TRAIN_PATH, COCO_TEST_PATH):
        lines = path.read_text(encoding="utf-8").splitlines()
        assert path.parent == DEFAULT_DATA_DIR and len(lines) == 10_000 and all(line.strip() for line in lines)
    readme = (DEFAULT_DATA_DIR / "README.md").read_text()
    assert "Creative Commons Attribution 4.0" in readme and "COCO Consortium" in readme
    assert COCO_TRAIN_PATH.name in readme and COCO_TEST_PATH.name in readme


def test_data_coco_names_the_training_and_the_test_file(tmp_path):
    cfg = DataConfig(path="coco")
    assert (cfg.path, cfg.test_path) == (str(COCO_TRAIN_PATH), str(COCO_TEST_PATH))
    assert DataConfig(path="coco", test_path=str(tmp_path / "t.txt")).test_path == str(tmp_path / "t.txt")
    assert DataConfig().test_path is None
    with pytest.raises(ValueError, match="data.test_path does not fit data.path=oracle"):
        DataConfig(path="oracle", test_path="t.txt")
    with pytest.raises(ValueError, match="data.skip_long=true needs data.max_length"):
        DataConfig(path="coco", skip_long=True)


def _config(*argv: str):
    args, rest = build_parser().parse_known_args(["train", *argv])
    return _train_config(args, rest)


def test_coco_preset_sits_under_the_users_options(tmp_path):
    plain = _config()
    assert plain.tokenizer.kind == "auto" and plain.data.test_path is None
    coco = _config("--data", "coco")
    preset = dict(item.split("=", 1) for item in DATA_PRESETS["coco"])
    assert coco.tokenizer.kind == preset["tokenizer.kind"] == "bpe"
    for key, value in preset.items():  # every preset value is in the resolved config
        section, name = key.split(".")
        assert str(getattr(getattr(coco, section), name)).lower() == value.lower(), key
    assert _config("--data", "coco", "--tokenizer", "word").tokenizer.kind == "word"
    assert _config("--data", "coco", "--set", "schedule.updates=7").schedule.updates == 7
    assert _config("--data", "coco", "--schedule.updates", "9").schedule.updates == 9
    cfg_file = tmp_path / "c.json"
    cfg_file.write_text(json.dumps({"data": {"path": "coco"}, "tokenizer": {"kind": "unigram"}}))
    from_file = _config("--config", str(cfg_file))
    assert from_file.tokenizer.kind == "unigram" and from_file.data.test_path == str(COCO_TEST_PATH)
    # a pretrained generator brings its own tokenizer and architecture: the preset leaves those to it
    pre = _config("--data", "coco", "--set", f"generator.pretrained={tmp_path}")
    assert pre.tokenizer.kind == "auto" and pre.generator.hidden_size == 32 and pre.data.max_length == 32
    tok_file = tmp_path / "tok.json"
    assert (_config("--tokenizer", str(tok_file)).tokenizer.kind, _config("--tokenizer", str(tok_file)).tokenizer.path) \
        == ("file", str(tok_file))


def test_a_data_path_away_from_coco_drops_the_coco_test_file(tmp_path):
    """--data coco --data.path X: the COCO test captions do not belong to X (issue 23, class 8); a test file the
    user gave too is kept, whichever way it was given; --data.path on COCO's own training file keeps it."""
    own, test = tmp_path / "mine.txt", tmp_path / "my_test.txt"
    moved = _config("--data", "coco", "--data.path", str(own))
    assert (moved.data.path, moved.data.test_path) == (str(own), None)
    assert _config("--data", "coco", "--data.path", str(own), "--data.test-path", str(test)).data.test_path == str(test)
    kept = _config("--data", "coco", "--data.path", str(own), "--data.test-path", str(COCO_TEST_PATH))
    assert kept.data.test_path == str(COCO_TEST_PATH)  # given by the user: theirs, even if it is COCO's
    assert _config("--data", "coco", "--data.path", str(own), "--set",
                   f"data.test_path={COCO_TEST_PATH}").data.test_path == str(COCO_TEST_PATH)
    cfg_file = tmp_path / "c.json"
    cfg_file.write_text(json.dumps({"data": {"path": "coco", "test_path": str(COCO_TEST_PATH)}}))
    assert _config("--config", str(cfg_file), "--data.path", str(own)).data.test_path == str(COCO_TEST_PATH)
    assert _config("--data", "coco", "--data.path", str(COCO_TRAIN_PATH)).data.test_path == str(COCO_TEST_PATH)


def test_a_run_on_another_file_after_data_coco_evaluates(files, tmp_path, capsys):
    train, _ = files
    root = tmp_path / "runs"
    assert main(["train", *TINY, "--data", "coco", "--data.path", str(train), "--set", f"out_dir={root}"]) == 0
    (run,) = root.iterdir()
    assert json.loads((run / "config.json").read_text())["config"]["data"]["test_path"] is None
    capsys.readouterr()
    assert main(["eval", str(run), "-n", "8"]) == 0
    assert "BLEU-2" in capsys.readouterr().out


# ------------------------------------------------------------------------------ the eval protocol by hand
def test_sample_scores_by_hand():
    refs = ["a b c d e", "v w x y z"]
    exact = sample_scores(["a b c d e", "v w x y z"], refs)
    assert all(exact[f"BLEU-{n}"] == pytest.approx(1.0) for n in (2, 3, 4, 5))
    # "a b x y z": unigrams 5/5; bigrams "a b", "x y", "y z" match, "b x" not: p2 = 3/4; length 5: BP 1
    one = sample_scores(["a b x y z", "a b x y z"], refs)
    assert one["BLEU-2"] == pytest.approx(math.sqrt(1.0 * 0.75))
    assert one["self_BLEU-2"] == pytest.approx(1.0)  # each sample is the other one
    assert exact["self_BLEU-2"] < 0.2 and exact["length_distance"] == pytest.approx(0.0)


class _Uniform(torch.nn.Module):
    """A generator whose logits are all 0: every token costs log V nats."""

    def __init__(self, vocab: int):
        super().__init__()
        self.vocab = vocab
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def forward(self, input_ids):
        return SimpleNamespace(logits=torch.zeros(*input_ids.shape, self.vocab))


def test_held_out_nll_by_hand():
    tok = train_tokenizer("bpe", TRAIN, 300, min_frequency=1)
    out = held_out_nll(_Uniform(tok.vocab_size), tok, TEST, batch_size=2)
    tokens = sum(len(tok.encode(t)) + 1 for t in TEST)  # every caption's tokens and its EOS
    words = sum(len(t.split()) + 1 for t in TEST)  # words and one end per caption
    assert out["test_tokens"] == tokens and out["test_skipped"] == 0
    assert out["nll_test"] == pytest.approx(math.log(tok.vocab_size))
    assert out["nll_test_per_word"] == pytest.approx(math.log(tok.vocab_size) * tokens / words)


# ------------------------------------------------------------------------------ through the CLI
@pytest.fixture(scope="module")
def files(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("text")
    (root / "train.txt").write_text("\n".join(TRAIN) + "\n")
    (root / "test.txt").write_text("\n".join(TEST) + "\n")
    return root / "train.txt", root / "test.txt"


@pytest.fixture(scope="module", params=["bpe", "word"])
def text_run(request, files, tmp_path_factory) -> tuple[str, Path]:
    train, test = files
    root = tmp_path_factory.mktemp(f"runs-{request.param}")
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        rc = main(["train", *TINY, "--data", str(train), "--set", f"data.test_path={test}", "--tokenizer",
                   request.param, "--tokenizer.vocab-size", "300", "--tokenizer.min-frequency", "1",
                   "--set", f"out_dir={root}"])
    assert rc == 0, err.getvalue()
    (run,) = root.iterdir()
    return request.param, run


def test_run_records_and_saves_its_tokenizer(text_run, files):
    kind, run = text_run
    info = json.loads((run / "config.json").read_text())
    assert info["config"]["tokenizer"]["kind"] == kind and info["config"]["tokenizer"]["vocab_size"] == 300
    assert info["config"]["data"]["test_path"] == str(files[1])
    assert info["test_data"]["sha256"] and info["test_data"]["path"] == str(files[1].resolve())
    tok = HFTokenizer.load(run / "tokenizer.json")
    assert tok == HFTokenizer.load(run / "generator" / "tokenizer.json")
    assert info["config"]["data"]["max_length"] == max(len(tok.encode(t)) for t in TRAIN) + 1  # tokens, + EOS
    samples = next((run / "samples").iterdir()).read_text().splitlines()
    assert len(samples) == 16  # one line per sample, decoded with the run's tokenizer


def test_sample_and_eval_use_the_run_tokenizer(text_run, capsys):
    _, run = text_run
    capsys.readouterr()
    assert main(["sample", str(run), "-n", "5", "--seed", "3"]) == 0
    out, err = capsys.readouterr()
    assert len(out.splitlines()) == 5 and err == ""
    assert main(["eval", str(run), "-n", "20"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    report = json.loads((run / "eval.json").read_text())
    for key in ("BLEU-2", "BLEU-3", "BLEU-4", "BLEU-5", "self_BLEU-2", "self_BLEU-5", "nll_test", "nll_test_per_word"):
        assert key in report and math.isfinite(report[key]) and key in out, key
    assert report["references"].startswith("test file") and "smoothing" not in report["references"]
    assert report["bleu_smoothing"].startswith("epsilon") and report["test_tokens"] > 0


def test_resume_reads_the_saved_tokenizer(text_run, tmp_path, capsys):
    from seqgan_agents.lifecycle import resume_run

    _, run = text_run
    copy = Path(shutil.copytree(run, tmp_path / "r"))
    trainer = resume_run(copy)
    try:
        assert trainer.data.tokenizer == HFTokenizer.load(run / "tokenizer.json")
        assert trainer.venv.unwrapped.tokenizer is trainer.data.tokenizer  # the env decodes with it too
        assert trainer.step == 2
    finally:
        trainer.run.close()


@pytest.mark.parametrize("make, named", [
    (lambda d: d / "missing.json", "does not exist"),
    (lambda d: (d / "t.json").write_text('{"model": ') and d / "t.json", "not valid UTF-8 JSON"),
    (lambda d: (d / "t.json").write_text('{"type": "char"}') and d / "t.json", "not a Hugging Face tokenizer"),
    (lambda d: (d / "dir").mkdir() or d / "dir", "holds no tokenizer"),
])
def test_bad_tokenizer_file_exit_2_one_line(make, named, files, tmp_path, capsys):
    path = make(tmp_path)
    capsys.readouterr()
    assert main(["train", *TINY, "--data", str(files[0]), "--tokenizer", str(path), "--set",
                 f"out_dir={tmp_path / 'runs'}"]) == 2
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out + err, err
    assert lines[0].startswith("seqgan-env: error: ") and named in lines[0] and str(path) in lines[0]
    assert "fix:" in lines[0] and not (tmp_path / "runs").exists()


def test_corrupt_run_tokenizer_exit_2_one_line(text_run, tmp_path, capsys):
    _, run = text_run
    copy = Path(shutil.copytree(run, tmp_path / "r"))
    (copy / "tokenizer.json").write_text('{"model": {"type": "BPE", "vocab": 3}}')
    capsys.readouterr()
    for argv in (["sample", str(copy), "-n", "2"], ["eval", str(copy), "-n", "4"]):
        assert main(argv) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and "r/tokenizer.json" in lines[0] and "fix:" in lines[0], lines


def test_missing_test_file_stops_before_the_run_directory(files, tmp_path, capsys):
    capsys.readouterr()
    assert main(["train", *TINY, "--data", str(files[0]), "--set", f"data.test_path={tmp_path / 'nope.txt'}",
                 "--set", f"out_dir={tmp_path / 'runs'}"]) == 2
    err = capsys.readouterr().err
    assert "nope.txt" in err and "does not exist" in err and not (tmp_path / "runs").exists()


def test_tiny_coco_run_and_eval(tmp_path, capsys):
    """`--data coco` end to end at toy sizes: the real files, the preset's tokenizer, the test-file protocol."""
    assert main(["train", "--data", "coco", *TINY, "--set", f"out_dir={tmp_path}"]) == 0
    (run,) = tmp_path.iterdir()
    capsys.readouterr()
    assert main(["eval", str(run), "-n", "20"]) == 0
    report = json.loads((run / "eval.json").read_text())
    assert "10000 lines" in report["references"] and report["test_skipped"] == 0
    assert HFTokenizer.load(run / "tokenizer.json").kind == "BPE"
