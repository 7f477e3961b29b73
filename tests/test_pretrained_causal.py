"""A bidirectional model is refused as --generator.pretrained and --discriminator.pretrained (issue 23, class 1).

A BERT masked LM lets position 0 see token 4: teacher-forced log-probs and per-prefix rewards
would read the future. Refused from its config.json (before the run's directory exists) and,
for what a config cannot say, by a causality probe on the loaded weights. The tiny models are
built here (nothing is downloaded).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
import transformers

from seqgan_env.cli import main
from seqgan_env.models.pretrained import check_causal_config, check_causal_model, pretrained_backbone, \
    pretrained_generator
from tests._hf_tiny import CAPTIONS, char_tokenizer, tiny_llama

FIX = "use a causal LM such as a Llama/GPT-2 directory"


def _bert_config(tok, **kw) -> transformers.BertConfig:
    return transformers.BertConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                   num_attention_heads=2, max_position_embeddings=64, pad_token_id=0, **kw)


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory) -> Path:
    """A tiny BERT masked-LM directory with its tokenizer, as save_pretrained writes it."""
    tok = char_tokenizer("abcdefghijklmnopqrstuvwxyz .")
    torch.manual_seed(0)
    model = transformers.BertForMaskedLM(_bert_config(tok))
    path = tmp_path_factory.mktemp("bert") / "model"
    model.save_pretrained(str(path))
    tok.save_pretrained(str(path))
    return path


@pytest.fixture(scope="module")
def data_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "captions.txt"
    path.write_text("\n".join(CAPTIONS * 5) + "\n")
    return path


@pytest.mark.parametrize("flag", ["generator.pretrained", "discriminator.pretrained"])
def test_cli_refuses_a_masked_lm_one_line_nothing_left(flag, bert_dir, data_file, tmp_path, capsys):
    root = tmp_path / "runs"
    args = ["train", "--no-progress", "--data", str(data_file), "--updates", "1", "--pretrain-steps", "1",
            "--set", f"out_dir={root}", "--set", f"{flag}={bert_dir}"]
    capsys.readouterr()
    assert main(args) == 2
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out + err, err
    assert flag in lines[0] and str(bert_dir) in lines[0] and "masked LM" in lines[0] and FIX in lines[0], lines[0]
    assert not root.exists() or not any(root.iterdir())


def test_api_refuses_a_masked_lm(bert_dir):
    from seqgan_env.data.subword import load_tokenizer_source

    with pytest.raises(ValueError, match="masked LM.*" + FIX):
        pretrained_generator(bert_dir, load_tokenizer_source(bert_dir)[0])
    with pytest.raises(ValueError, match="masked LM.*" + FIX):
        pretrained_backbone(bert_dir, None, 31)


@pytest.mark.parametrize("changes, named", [
    ({"architectures": ["BertModel"]}, "an encoder (model_type 'bert'"),  # a base BERT: still bidirectional
    ({"architectures": None, "model_type": "roberta"}, "an encoder (model_type 'roberta'"),
    ({"is_encoder_decoder": True, "model_type": "t5", "architectures": ["T5ForConditionalGeneration"]},
     "an encoder-decoder model"),
])
def test_config_flags_name_the_reason(changes, named, bert_dir, tmp_path):
    cfg = json.loads((bert_dir / "config.json").read_text())
    cfg.update(changes)
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match=re.escape(named)) as info:
        check_causal_config(tmp_path, "generator.pretrained")
    assert str(tmp_path) in str(info.value) and FIX in str(info.value)


def test_a_bert_decoder_passes_the_config_check_and_the_probe(tmp_path):
    """BERT with is_decoder true (BertLMHeadModel) is causal: neither check refuses it."""
    tok = char_tokenizer()
    torch.manual_seed(0)
    model = transformers.BertLMHeadModel(_bert_config(tok, is_decoder=True)).eval()
    model.save_pretrained(str(tmp_path))
    check_causal_config(tmp_path, "generator.pretrained")
    check_causal_model(model, tmp_path, "generator.pretrained")


def test_probe_refuses_what_the_config_does_not_say(tmp_path):
    """The probe: a bidirectional model refused from its outputs; causal Llama / GPT-2 models (LM and base) pass."""
    tok = char_tokenizer()
    torch.manual_seed(0)
    for model in (transformers.BertForMaskedLM(_bert_config(tok)), transformers.BertModel(_bert_config(tok))):
        with pytest.raises(ValueError, match="is not causal.*" + FIX):
            check_causal_model(model.eval(), tmp_path, "discriminator.pretrained")
    gpt2 = transformers.GPT2Config(vocab_size=40, n_embd=16, n_layer=1, n_head=2, n_positions=32)
    llama = tiny_llama(len(tok))
    for model in (llama, llama.model, transformers.GPT2LMHeadModel(gpt2), transformers.GPT2Model(gpt2)):
        check_causal_model(model.eval(), tmp_path, "generator.pretrained")
