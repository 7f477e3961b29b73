"""Tiny Hugging Face pieces built locally (no download): a character tokenizer and a tiny Llama.

Shared by the TRL tests. The tokenizer adds BOS to every encoding (so the empty prompt is one
token), keeps PAD/BOS/EOS at ids 0/1/2 and has an UNK at 3, then one id per character.
"""

from __future__ import annotations

import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

CHARS = "abcdefghijklmnopqrstuvwxyz"


# short captions in the COCO style, for tokenizers and models the tests train themselves
CAPTIONS = [
    "a man riding a horse on a beach.",
    "two dogs play with a red ball in the park",
    "a plate of food with broccoli and rice.",
    "a cat sleeping on top of a laptop keyboard",
    "a group of people standing next to a bus.",
    "a red bus parked next to a building.",
]


def char_tokenizer(chars: str = CHARS) -> PreTrainedTokenizerFast:
    vocab = {"<pad>": 0, "<bos>": 1, "<eos>": 2, "<unk>": 3}
    vocab.update({c: i + 4 for i, c in enumerate(sorted(set(chars)))})
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")  # one token per character
    tok.decoder = decoders.Fuse()  # join characters without spaces
    tok.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>",
                                   unk_token="<unk>")


def tiny_llama(vocab_size: int, seed: int = 0) -> LlamaForCausalLM:
    config = LlamaConfig(vocab_size=vocab_size, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=32,
                         pad_token_id=0, bos_token_id=1, eos_token_id=2)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return LlamaForCausalLM(config)
