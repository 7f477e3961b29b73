"""Models the user already has (seqgan_env.models.pretrained): tiny Llama and GPT-2 directories the tests
build and save themselves (nothing is downloaded), loaded as the generator and as the discriminator's
backbone, aligned to the run's ids, trained one update through the CLI; bad directories exit 2 with one line."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import pytest
import torch
import transformers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from seqgan_env.cli import main
from seqgan_env.data.subword import load_tokenizer_source
from seqgan_env.data.tokenizer import BOS_ID, EOS_ID, PAD_ID
from seqgan_env.models.pretrained import fingerprint, pretrained_backbone, pretrained_generator
from tests._hf_tiny import CAPTIONS

TEXTS = CAPTIONS * 10

# architecture -> (special tokens of its tokenizer, the names a tokenizer_config.json gives them)
ARCHS = {
    "llama": (["<unk>", "<s>", "</s>"], {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}),
    "gpt2": (["<|endoftext|>"], {"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>"}),  # no pad, bos == eos
}


def _save_tiny(directory: Path, arch: str) -> Path:
    """A causal LM of ``arch`` with a byte-level BPE tokenizer whose specials are NOT at ids 0, 1, 2."""
    specials, names = ARCHS[arch]
    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    raw.train_from_iterator(TEXTS, trainers.BpeTrainer(vocab_size=300, special_tokens=specials, show_progress=False,
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    vocab = raw.get_vocab_size()
    torch.manual_seed(0)
    if arch == "llama":
        cfg = transformers.LlamaConfig(vocab_size=vocab, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                       num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=128,
                                       bos_token_id=raw.token_to_id("<s>"), eos_token_id=raw.token_to_id("</s>"))
        model = transformers.LlamaForCausalLM(cfg)
    else:
        cfg = transformers.GPT2Config(vocab_size=vocab, n_embd=16, n_layer=1, n_head=2, n_positions=128,
                                      bos_token_id=0, eos_token_id=0)
        model = transformers.GPT2LMHeadModel(cfg)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(directory))
    transformers.PreTrainedTokenizerFast(tokenizer_object=raw, **names).save_pretrained(str(directory))
    return directory


@pytest.fixture(scope="module", params=list(ARCHS))
def tiny_dir(request, tmp_path_factory) -> tuple[str, Path]:
    return request.param, _save_tiny(tmp_path_factory.mktemp(request.param) / "model", request.param)


def test_aligned_generator_computes_the_same_distribution(tiny_dir):
    """Logits of the aligned model on project ids == the original's on its own ids, column j <- source[j]."""
    arch, path = tiny_dir
    tok, source = load_tokenizer_source(path)
    assert tok.special_tokens[EOS_ID] == ARCHS[arch][1]["eos_token"]
    original = transformers.AutoModelForCausalLM.from_pretrained(str(path)).eval()
    aligned = pretrained_generator(path, tok)
    assert aligned.config.vocab_size == tok.vocab_size == len(source)
    assert (aligned.config.pad_token_id, aligned.config.bos_token_id, aligned.config.eos_token_id) == (0, 1, 2)
    raw = Tokenizer.from_file(str(path / "tokenizer.json"))
    text = TEXTS[0]
    new_ids = torch.tensor([tok.encode(text)])  # (1, L)
    old_ids = torch.tensor([raw.encode(text, add_special_tokens=False).ids])  # (1, L)
    assert torch.equal(torch.tensor(source)[new_ids], old_ids)
    with torch.no_grad():
        old = original(input_ids=old_ids).logits  # (1, L, V_old)
        new = aligned(input_ids=new_ids).logits  # (1, L, V_new)
    torch.testing.assert_close(new, old[..., source], atol=1e-5, rtol=1e-5)


def test_aligned_backbone_gives_the_same_hidden_states(tiny_dir):
    arch, path = tiny_dir
    tok, source = load_tokenizer_source(path)
    base = transformers.AutoModel.from_pretrained(str(path)).eval()
    aligned = pretrained_backbone(path, tok, tok.vocab_size)
    ids = torch.tensor([tok.encode(TEXTS[1])])
    with torch.no_grad():
        torch.testing.assert_close(aligned(input_ids=ids).last_hidden_state,
                                   base(input_ids=torch.tensor(source)[ids]).last_hidden_state)


def test_backbone_with_another_tokenizer_is_refused(tiny_dir, tmp_path):
    from seqgan_env.data.subword import train_tokenizer

    _, path = tiny_dir
    other = train_tokenizer("word", TEXTS, 50, min_frequency=1)
    with pytest.raises(ValueError, match="the directory's tokenizer is not the run's"):
        pretrained_backbone(path, other, other.vocab_size)


# ------------------------------------------------------------------------------ through the CLI
def _tiny_args(data: Path, root: Path, *extra: str) -> list[str]:
    return ["train", "--no-progress", "--data", str(data), "--updates", "1", "--pretrain-steps", "1",
            "--set", "schedule.d_pretrain_steps=1", "--set", "schedule.eval_samples=8", "--set", "schedule.eval_every=1",
            "--set", "reinforce.batch_size=8", "--set", "d_updates.batch_size=8", "--set", f"out_dir={root}", *extra]


@pytest.fixture(scope="module")
def data_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "captions.txt"
    path.write_text("\n".join(TEXTS) + "\n")
    return path


@pytest.fixture(scope="module")
def trained_run(tiny_dir, data_file, tmp_path_factory) -> tuple[str, Path, Path]:
    """One adversarial update of the pretrained generator against a discriminator on the same backbone."""
    arch, path = tiny_dir
    root = tmp_path_factory.mktemp(f"runs-{arch}")
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        rc = main(_tiny_args(data_file, root, "--generator.pretrained", str(path),
                             "--discriminator.pretrained", str(path)))
    assert rc == 0, err.getvalue()
    (run,) = root.iterdir()
    return arch, path, run


def test_pretrained_run_trains_and_records_its_inputs(trained_run):
    arch, path, run = trained_run
    info = json.loads((run / "config.json").read_text())
    assert info["config"]["generator"]["pretrained"] == str(path)
    assert info["config"]["discriminator"]["pretrained"] == str(path)
    assert info["pretrained"]["generator"] == fingerprint(path)
    tok, _ = load_tokenizer_source(path)
    exported = transformers.AutoModelForCausalLM.from_pretrained(str(run / "generator"))
    assert exported.config.model_type == arch
    start = pretrained_generator(path, tok)
    moved = [k for k, v in start.state_dict().items() if not torch.equal(v, exported.state_dict()[k])]
    assert moved, "one MLE step and one REINFORCE update must change the weights"
    # the export is itself a pretrained directory: transformers' own tokenizer reads it with our ids
    auto = transformers.AutoTokenizer.from_pretrained(str(run / "generator"))
    assert (auto.pad_token_id, auto.bos_token_id, auto.eos_token_id) == (PAD_ID, BOS_ID, EOS_ID)
    assert auto(TEXTS[0], add_special_tokens=False)["input_ids"] == tok.encode(TEXTS[0])
    disc = (run / "checkpoints").glob("step_*/discriminator.safetensors")
    from safetensors.torch import load_file

    keys = load_file(str(next(disc))).keys()
    assert any(k.startswith("backbone.") for k in keys) and "head.weight" in keys


def test_pretrained_run_samples_and_evaluates(trained_run, capsys):
    _, _, run = trained_run
    capsys.readouterr()
    assert main(["sample", str(run), "-n", "3", "--d-filter", "sir"]) == 0
    out, err = capsys.readouterr()
    assert len(out.splitlines()) == 3 and err == ""
    assert main(["eval", str(run), "-n", "8"]) == 0
    assert "BLEU-2" in capsys.readouterr().out


def test_resume_refuses_a_changed_pretrained_directory(trained_run, tmp_path, capsys):
    arch, path, run = trained_run
    moved = Path(shutil.copytree(path, tmp_path / "model"))
    copy = Path(shutil.copytree(run, tmp_path / "runs" / "r"))
    info = json.loads((copy / "config.json").read_text())
    info["pretrained"]["generator"]["path"] = str(moved)
    (copy / "config.json").write_text(json.dumps(info))
    (moved / "config.json").write_text((moved / "config.json").read_text() + "\n")  # same model, other bytes
    capsys.readouterr()
    assert main(["train", "--resume", str(copy), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "changed since run" in err and "fix:" in err


@pytest.mark.parametrize("make, extra, named", [
    (lambda d: d / "missing", (), "does not exist"),
    (lambda d: (d / "empty").mkdir() or d / "empty", (), "has no config.json"),
    (lambda d: _no_tokenizer(d), (), "holds no tokenizer"),
    (lambda d: _pickled_weights(d), (), "could not load it"),  # a pickled .bin is never unpickled
    (lambda d: _save_tiny(d / "m", "llama"), ("--tokenizer", "bpe"), "asks for another"),
])
def test_bad_pretrained_directory_exit_2_one_line(make, extra, named, data_file, tmp_path, capsys):
    path = make(tmp_path)
    capsys.readouterr()
    # --set: the CLI's own check of the pretrained directory, one line
    assert main(_tiny_args(data_file, tmp_path / "runs", "--set", f"generator.pretrained={path}", *extra)) == 2
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out + err, err
    assert named in lines[0] and str(path) in lines[0] and "fix" in lines[0], lines[0]
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())  # nothing left behind


def _no_tokenizer(directory: Path) -> Path:
    path = _save_tiny(directory / "m", "gpt2")
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        (path / name).unlink(missing_ok=True)
    return path


def _pickled_weights(directory: Path) -> Path:
    path = _save_tiny(directory / "m", "llama")
    model = transformers.AutoModelForCausalLM.from_pretrained(str(path))
    (path / "model.safetensors").unlink()
    torch.save(model.state_dict(), path / "pytorch_model.bin")
    return path
