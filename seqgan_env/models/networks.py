"""Tiny Llama-style networks for the SeqGAN environment.

Two networks share one architecture description (:class:`ModelConfig`):

* the **generator** is a plain ``transformers.LlamaForCausalLM`` that writes a
  sequence token by token (:func:`build_generator`);
* the **discriminator** (:class:`DiscriminatorNet`) is a ``LlamaModel``
  backbone plus a linear head.  Because the backbone is causal, the head output
  at position ``t`` only sees tokens ``<= t``: a single forward pass scores
  *every* prefix of the sequence, which is what the environment uses as its
  per-step reward.

Token conventions (shared with ``seqgan_env.data.tokenizer``): PAD=0, BOS=1, EOS=2.
Discriminator inputs are the env observations: symbol ids, then EOS, then
right-padding with PAD up to the fixed length ``T`` (no BOS).  Left-padded
input together with a 2D attention mask is supported too.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Any, Iterator

import torch
import torch.nn as nn
import transformers

from seqgan_env.data.tokenizer import BOS_ID, EOS_ID, PAD_ID
from seqgan_env.utils.validation import check_int, check_number


def _check_positive_int(name: str, value: Any) -> None:
    check_int(name, value, 1, f"pass e.g. {name}=32")


ATTN_IMPLEMENTATIONS = ("sdpa", "eager")


@dataclass
class ModelConfig:
    """Architecture of the generator / discriminator backbone (a tiny Llama).

    ``hidden_size`` must be divisible by ``num_heads`` and the per-head size
    ``hidden_size // num_heads`` must be even (rotary embeddings rotate pairs
    of channels).
    """

    hidden_size: int = 32
    intermediate_size: int = 64
    num_heads: int = 4
    num_layers: int = 2
    rope_theta: float = 10000.0
    tie_word_embeddings: bool = True
    attention_dropout: float = 0.0
    max_position_embeddings: int = 64
    attn_implementation: str = "sdpa"

    def __post_init__(self) -> None:
        if self.attn_implementation not in ATTN_IMPLEMENTATIONS:
            raise ValueError(
                f"attn_implementation={self.attn_implementation!r} is invalid: use one of "
                f"{list(ATTN_IMPLEMENTATIONS)} ('eager' is faster for one-token steps on a CPU)."
            )
        for name in ("hidden_size", "intermediate_size", "num_heads", "num_layers",
                     "max_position_embeddings"):
            _check_positive_int(name, getattr(self, name))
        if self.hidden_size % self.num_heads != 0:
            raise ValueError(
                f"hidden_size={self.hidden_size} is not divisible by num_heads="
                f"{self.num_heads}: hidden_size must be a multiple of num_heads; "
                f"change hidden_size to a multiple of {self.num_heads} "
                f"(e.g. {self.num_heads * max(2, math.ceil(self.hidden_size / self.num_heads))}) "
                f"or num_heads to a divisor of {self.hidden_size}."
            )
        head_dim = self.hidden_size // self.num_heads
        if head_dim % 2 != 0:
            raise ValueError(
                f"head size hidden_size/num_heads = {self.hidden_size}/{self.num_heads} = "
                f"{head_dim} is odd: rotary embeddings need an even head size; "
                f"choose hidden_size and num_heads so that hidden_size // num_heads is even "
                f"(e.g. hidden_size={2 * self.hidden_size})."
            )
        self.rope_theta = check_number("rope_theta", self.rope_theta, 0, fix="the usual value is 10000.0",
                                       low_open=True)
        self.attention_dropout = check_number("attention_dropout", self.attention_dropout, 0, 1,
                                              "use 0.0 to disable dropout", high_open=True)
        if not isinstance(self.tie_word_embeddings, bool):
            raise ValueError(
                f"tie_word_embeddings={self.tie_word_embeddings!r} is invalid: it must be "
                f"True or False."
            )

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads


GENERATOR_FAMILIES = ("llama", "lstm")


@dataclass
class GeneratorConfig(ModelConfig):
    """The generator's architecture (a :class:`ModelConfig`), or ``pretrained``: a directory holding
    any causal LM ``transformers`` can load, with its tokenizer (``seqgan_env.models.pretrained``).

    ``family``: ``llama`` (a tiny Llama of the ModelConfig fields) or ``lstm`` (SeqGAN's generator,
    ``seqgan_env.models.lstm``: an embedding of ``embedding_size``, ``num_layers`` LSTM layers of
    ``hidden_size``, a linear output; the attention fields are not used). With ``pretrained`` set
    the architecture fields are not used: the directory's config.json is.
    """

    pretrained: str | None = None  # a directory with any causal LM transformers loads, and its tokenizer
    family: str = "llama"  # llama | lstm (SeqGAN's: --generator.family lstm --generator.num-layers 1)
    embedding_size: int | None = None  # lstm only: the token embedding's width; None: hidden_size
    dropout: float = 0.0  # lstm only: dropout of the embedded inputs and LSTM outputs while training

    def __post_init__(self) -> None:
        if self.family not in GENERATOR_FAMILIES:
            raise ValueError(
                f"generator.family={self.family!r} is invalid: choose one of {list(GENERATOR_FAMILIES)} (llama: a tiny "
                f"Llama; lstm: SeqGAN's LSTM generator); fix: --generator.family lstm or drop the option."
            )
        if self.family == "lstm":  # the attention fields do not apply: check only what an LSTM uses
            for name in ("hidden_size", "num_layers", "max_position_embeddings"):
                _check_positive_int(f"generator.{name}", getattr(self, name))
            if self.embedding_size is not None:
                _check_positive_int("generator.embedding_size", self.embedding_size)
            self.dropout = check_number("generator.dropout", self.dropout, 0, 1, "fix: 0.0 disables it, e.g. 0.3",
                                        high_open=True)
            if self.pretrained is not None:
                raise ValueError(f"generator.pretrained={self.pretrained!r} does not fit generator.family=lstm (a "
                                 f"pretrained directory brings its own architecture); fix: drop one of them.")
            return
        super().__post_init__()
        if self.embedding_size is not None:
            raise ValueError(f"generator.embedding_size={self.embedding_size!r} is used only by generator.family=lstm "
                             f"(a Llama's embedding is hidden_size wide); fix: drop it or --generator.family lstm.")
        if self.dropout != 0.0:
            raise ValueError(f"generator.dropout={self.dropout!r} is used only by generator.family=lstm (a Llama's is "
                             f"attention_dropout); fix: drop it or --generator.family lstm.")
        if self.pretrained is not None and (not isinstance(self.pretrained, str) or not self.pretrained):
            raise ValueError(f"generator.pretrained={self.pretrained!r} is invalid: it must be a directory path "
                             f"(or None for a fresh tiny Llama).")


def to_llama_config(
    cfg: ModelConfig,
    vocab_size: int,
    pad_token_id: int = PAD_ID,
    bos_token_id: int = BOS_ID,
    eos_token_id: int = EOS_ID,
) -> transformers.LlamaConfig:
    """Translate a :class:`ModelConfig` into a ``transformers.LlamaConfig``.

    Uses full multi-head attention (``num_key_value_heads == num_heads``).
    ``vocab_size`` must exceed every special token id.
    """
    _check_positive_int("vocab_size", vocab_size)
    biggest_special = max(pad_token_id, bos_token_id, eos_token_id)
    if vocab_size <= biggest_special:
        raise ValueError(
            f"vocab_size={vocab_size} is too small: it must be > the largest special token "
            f"id ({biggest_special}); pass the tokenizer's full vocabulary size."
        )
    return transformers.LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        num_key_value_heads=cfg.num_heads,
        head_dim=cfg.head_dim,
        max_position_embeddings=cfg.max_position_embeddings,
        rope_parameters={"rope_type": "default", "rope_theta": cfg.rope_theta},
        attention_dropout=cfg.attention_dropout,
        tie_word_embeddings=cfg.tie_word_embeddings,
        pad_token_id=pad_token_id,
        bos_token_id=bos_token_id,
        eos_token_id=eos_token_id,
        attn_implementation=cfg.attn_implementation,
    )


def build_generator(cfg: ModelConfig, vocab_size: int) -> torch.nn.Module:
    """A freshly initialised generator over ``vocab_size`` tokens (uses the global RNG): a
    ``transformers.LlamaForCausalLM``, or SeqGAN's LSTM for a :class:`GeneratorConfig` of family ``lstm``."""
    if getattr(cfg, "family", "llama") == "lstm":
        from seqgan_env.models.lstm import LSTMConfig, LSTMGenerator

        emb = cfg.embedding_size if cfg.embedding_size is not None else cfg.hidden_size
        return LSTMGenerator(LSTMConfig(vocab_size, emb, cfg.hidden_size, cfg.num_layers, dropout=cfg.dropout))
    return transformers.LlamaForCausalLM(to_llama_config(cfg, vocab_size))


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' progress bars ("Loading weights", "Writing model shards") and its
    info/warning logs while the block runs; the previous settings come back afterwards.

    A command's output shows what the command means to say, not a library's chatter.
    """
    from transformers.utils import logging as hf_logging

    bars, level = hf_logging.is_progress_bar_enabled(), hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def last_token_index(input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
                     ) -> torch.Tensor:
    """Index of the last real token of each row, shape ``(B,)`` (long).

    * ``attention_mask is None`` (right padding): the last position whose token
      is not PAD; a row with no real token gives index 0.
    * ``attention_mask`` given (2D 0/1, e.g. left padding): the last position
      where the mask is 1; a row with an all-zero mask gives index 0.
    """
    if input_ids.dim() != 2:
        raise ValueError(f"input_ids must be (B, T), got shape {tuple(input_ids.shape)}.")
    if attention_mask is None:
        valid = input_ids != PAD_ID  # (B, T)
    else:
        if attention_mask.shape != input_ids.shape:
            raise ValueError(
                f"attention_mask shape {tuple(attention_mask.shape)} must equal input_ids "
                f"shape {tuple(input_ids.shape)} (a 2D 0/1 mask)."
            )
        valid = attention_mask != 0  # (B, T)
    T = input_ids.shape[1]
    positions = torch.arange(T, device=input_ids.device).expand_as(valid)  # (B, T)
    return torch.where(valid, positions, torch.full_like(positions, -1)).amax(dim=1).clamp(min=0)


def positions_from_mask(attention_mask: torch.Tensor, q_len: int) -> torch.Tensor:
    """Position ids ``(B, q_len)`` for the last ``q_len`` columns of a 2D 0/1 mask.

    Each real token gets its index among the real tokens (``cumsum - 1``,
    clamped at 0), so left padding does not shift the rotary positions.
    """
    pos = attention_mask.long().cumsum(dim=-1) - 1  # (B, kv_len)
    return pos.clamp(min=0)[:, -q_len:]  # (B, q_len)


@dataclass
class DiscriminatorOutput:
    """Output of :meth:`DiscriminatorNet.forward`.

    ``logits`` (B, T): realness logit of the prefix ending at each position
    (``sigmoid(logits)`` is P(real)); ``head`` (B, T, K): raw head outputs;
    ``cache``: the transformers cache when ``use_cache=True``, else None.
    """

    logits: torch.Tensor
    head: torch.Tensor
    cache: Any = None


class DiscriminatorNet(nn.Module):
    """Causal Llama backbone + linear head scoring every prefix in one pass.

    ``num_outputs`` is 1 (a single realness logit) or 2 (class logits
    [fake, real]; the realness logit is ``out[..., 1] - out[..., 0]`` so that
    ``sigmoid(logit) == softmax(out)[..., 1]``).
    """

    def __init__(self, cfg: ModelConfig, vocab_size: int, num_outputs: int = 1,
                 backbone: nn.Module | None = None) -> None:
        """``backbone``: a pretrained base model (``seqgan_env.models.pretrained``) instead of a fresh
        tiny Llama built from ``cfg``; it must map (B, T) ids to ``last_hidden_state`` (B, T, C)."""
        super().__init__()
        if num_outputs not in (1, 2):
            raise ValueError(
                f"num_outputs={num_outputs!r} is invalid: it must be 1 (single logit, for "
                f"'bce'/'mse') or 2 (two-class logits, for 'ce')."
            )
        self.cfg = cfg
        self.vocab_size = vocab_size
        self.num_outputs = num_outputs
        self.backbone = backbone if backbone is not None else transformers.LlamaModel(to_llama_config(cfg, vocab_size))
        self.head = nn.Linear(self.backbone.config.hidden_size, num_outputs)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        cache: Any = None,
        use_cache: bool = False,
    ) -> DiscriminatorOutput:
        """Score every prefix of ``input_ids`` (B, T).

        ``attention_mask`` is None, a 2D 0/1 mask (B, kv_len) or a 4D float
        additive mask (B, 1, T, kv_len).  With a 2D mask and no
        ``position_ids``, positions are derived from the mask so left padding
        scores like unpadded input.  Logits at padded positions are meaningless.
        """
        if input_ids.dim() != 2:
            raise ValueError(f"input_ids must be (B, T), got shape {tuple(input_ids.shape)}.")
        if attention_mask is not None and attention_mask.dim() == 2 and position_ids is None:
            position_ids = positions_from_mask(attention_mask, input_ids.shape[1])  # (B, T)
        out = self.backbone(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            use_cache=use_cache,
        )
        h = out.last_hidden_state  # (B, T, C)
        head = self.head(h)  # (B, T, K)
        return DiscriminatorOutput(logits=self._realness(head), head=head,
                                   cache=out.cache if use_cache else None)

    def _realness(self, head: torch.Tensor) -> torch.Tensor:
        """Realness logit from head outputs (..., K) -> (...)."""
        if self.num_outputs == 1:
            return head[..., 0]
        return head[..., 1] - head[..., 0]

    def logits_from_hidden(self, hidden: torch.Tensor) -> torch.Tensor:
        """Realness logits (...) from the backbone's final (normed) hidden states (..., C)."""
        return self._realness(self.head(hidden))

    def sequence_logits(self, input_ids: torch.Tensor,
                        attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Realness logit of each whole sequence, taken at its last real token, (B,)."""
        if attention_mask is not None and attention_mask.dim() != 2:
            raise ValueError(
                "sequence_logits needs a 2D (B, T) 0/1 attention_mask (or None for right "
                f"padding), got shape {tuple(attention_mask.shape)}."
            )
        logits = self(input_ids, attention_mask=attention_mask).logits  # (B, T)
        idx = last_token_index(input_ids, attention_mask)  # (B,)
        return logits.gather(1, idx[:, None]).squeeze(1)  # (B,)
