"""SeqGAN's generator family: an LSTM language model behind the generator contract the Llama keeps.

SeqGAN (Yu et al., 2017) generates with an embedding (32), one LSTM layer (hidden 32) and a
linear output layer; the oracle of its synthetic task has exactly that shape. This module
gives the library the same family, usable wherever a generator is:

* ``forward(input_ids (B, S), attention_mask=None, cache=None, use_cache=False,
  logits_to_keep=0)`` returns :class:`LSTMOutput` with ``.logits`` (B, S or k, V) and
  ``.cache`` (an :class:`LSTMCache`), the call shape of a transformers causal LM;
  ``position_ids`` is accepted and ignored (an LSTM's position is its state). Columns whose
  ``attention_mask`` is 0 leave the state unchanged, so left-padded prefixes prefill as if
  unpadded (the Monte-Carlo rollout does that).
* :class:`LSTMCache` holds ``(h, c)`` per layer under the names transformers' cache layers
  use (``layers[i].keys`` = h, ``layers[i].values`` = c, each (B, H)): code that repeats
  cache rows or hands the buffers to a step decoder treats both families alike.
* :class:`LSTMStepDecoder` is the lean one-token step that
  ``seqgan_env.models.fastllama.make_step_decoder`` picks for this family: ``new_cache`` and
  ``step`` with the Llama decoder's signature; ``step`` overwrites the (h, c) buffers in place.
* ``save_pretrained(directory)`` writes config.json (``model_type`` ``seqgan_lstm``) and
  model.safetensors; :func:`load_lstm_export` reads them back loudly. No pickle.
* ``mle_loss(input_ids, targets)``: the teacher-forced cross-entropy without the (B S, V) logits
  (``seqgan_env.models.linear_ce``), which the agent's MLE step uses.
* ``config`` carries ``vocab_size`` and ``num_hidden_layers`` like a transformers config.

Token ids: PAD=0, BOS=1, EOS=2. Shapes: B rows, S input columns, E embedding, H hidden, V vocab.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from seqgan_env.data.tokenizer import BOS_ID, EOS_ID, PAD_ID
from seqgan_env.models.linear_ce import linear_cross_entropy
from seqgan_env.utils.atomic import atomic_save_tensors, atomic_write_text
from seqgan_env.utils.validation import check_int, check_number

MODEL_TYPE = "seqgan_lstm"
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"


@dataclass
class LSTMConfig:
    """Shape of an :class:`LSTMGenerator`; SeqGAN's: embedding 32, hidden 32, one layer.

    ``dropout``: in training mode, the probability of zeroing each unit of the embedded inputs and of
    every LSTM layer's output (the usual LSTM language-model regulariser; 0 in SeqGAN; sampling and
    scoring run in eval mode, without it). ``init_std``: every weight and bias starts as N(0, init_std^2), SeqGAN's initialiser
    (0.1); the forget-gate bias then starts near 0 as in SeqGAN, not at PyTorch's U(+-1/sqrt(H)).
    """

    vocab_size: int
    embedding_size: int = 32
    hidden_size: int = 32
    num_layers: int = 1
    dropout: float = 0.0
    init_std: float = 0.1
    model_type: str = MODEL_TYPE
    pad_token_id: int = PAD_ID
    bos_token_id: int = BOS_ID
    eos_token_id: int = EOS_ID

    def __post_init__(self) -> None:
        check_int("vocab_size", self.vocab_size, max(PAD_ID, BOS_ID, EOS_ID) + 1,
                  "pass the tokenizer's full vocabulary size")
        for name in ("embedding_size", "hidden_size", "num_layers"):
            check_int(f"generator.{name}", getattr(self, name), 1, f"SeqGAN uses {name}={32 if 'size' in name else 1}")
        check_number("generator.dropout", self.dropout, 0, 1, "fix: 0.0 disables it, e.g. 0.3", high_open=True)
        check_number("init_std", self.init_std, 0, fix="SeqGAN initialises with std 0.1", low_open=True)
        if self.model_type != MODEL_TYPE:
            raise ValueError(f"model_type={self.model_type!r} is not an LSTM generator's ({MODEL_TYPE!r}).")

    @property
    def num_hidden_layers(self) -> int:
        """The transformers name of ``num_layers`` (code that sizes caches reads it)."""
        return self.num_layers

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class LSTMLayerState:
    """One layer's state under transformers' cache-layer names: ``keys`` = h, ``values`` = c, each (B, H)."""

    keys: torch.Tensor
    values: torch.Tensor


@dataclass
class LSTMCache:
    """The LSTM's "cache": (h, c) per layer; empty until the first forward fills it."""

    layers: list[LSTMLayerState] = field(default_factory=list)

    def get_seq_length(self) -> int:  # transformers' name; an LSTM does not count columns
        return 0


@dataclass
class LSTMOutput:
    """``logits`` (B, S, V) (the last ``logits_to_keep`` columns when given); ``cache`` when ``use_cache``."""

    logits: torch.Tensor
    cache: LSTMCache | None = None


class LSTMGenerator(nn.Module):
    """Embedding -> ``num_layers`` LSTM -> linear over the vocabulary (SeqGAN's generator)."""

    def __init__(self, config: LSTMConfig) -> None:
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.embedding_size)
        self.lstm = nn.LSTM(config.embedding_size, config.hidden_size, config.num_layers, batch_first=True,
                            dropout=config.dropout if config.num_layers > 1 else 0.0)  # between layers
        self.drop = nn.Dropout(config.dropout)  # inputs and last layer's outputs
        self.head = nn.Linear(config.hidden_size, config.vocab_size)
        with torch.no_grad():
            for p in self.parameters():
                p.normal_(0.0, config.init_std)

    # -- the cell, shared by the masked prefill and the step decoder -------------------------
    def layer_weights(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(W_ih^T (E_i, 4H), W_hh^T (H, 4H), b (4H,)) of layer ``i``, gates in PyTorch's order i, f, g, o."""
        lstm = self.lstm
        w_ih, w_hh = getattr(lstm, f"weight_ih_l{i}"), getattr(lstm, f"weight_hh_l{i}")
        b = getattr(lstm, f"bias_ih_l{i}") + getattr(lstm, f"bias_hh_l{i}")
        return w_ih.t(), w_hh.t(), b

    @staticmethod
    def cell(x: torch.Tensor, h: torch.Tensor, c: torch.Tensor, weights: tuple) -> tuple[torch.Tensor, torch.Tensor]:
        """One LSTM step: x (B, E), h/c (B, H) -> new (h, c), exactly ``nn.LSTM``'s equations."""
        w_ih, w_hh, b = weights
        z = torch.addmm(b, x, w_ih).addmm_(h, w_hh)  # (B, 4H)
        i, f, g, o = z.chunk(4, dim=1)  # (B, H) each
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)  # (B, H)
        return torch.sigmoid(o) * torch.tanh(c), c

    def zero_state(self, batch: int) -> LSTMCache:
        w = self.head.weight
        zeros = [torch.zeros(batch, self.config.hidden_size, device=w.device, dtype=w.dtype) for _ in range(2)]
        return LSTMCache([LSTMLayerState(zeros[0].clone(), zeros[1].clone()) for _ in range(self.config.num_layers)])

    # -- the transformers-style call -------------------------------------------------------
    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        cache: LSTMCache | None = None,
        use_cache: bool = False,
        logits_to_keep: int = 0,
        **_: Any,
    ) -> LSTMOutput:
        """Logits of the next token after every column of ``input_ids`` (B, S), from ``cache``'s state (or zeros).

        ``attention_mask`` (B, S) 0/1, or wider with the past's columns first (transformers' layout): a 0
        column leaves the state as it was (left padding);
        ``cache`` is filled with the final state in place when given (as transformers fills its caches).
        """
        if input_ids.dim() != 2:
            raise ValueError(f"input_ids must be (B, S), got shape {tuple(input_ids.shape)}.")
        b, s = input_ids.shape
        if cache is not None and not isinstance(cache, LSTMCache):
            raise TypeError(f"an LSTM generator's cache is an LSTMCache, got {type(cache).__name__}; fix: pass "
                            f"None or the cache of the previous call (seqgan_env.models.kvcache.generation_cache).")
        state = cache if cache is not None and cache.layers else self.zero_state(b)
        if attention_mask is not None:  # transformers' masks cover the cached past too: the last S columns are ours
            attention_mask = attention_mask[:, -s:]  # (B, S)
        x = self.drop(self.embedding(input_ids))  # (B, S, E)
        masked = attention_mask is not None and not bool(attention_mask.bool().all())
        if masked:  # step by step so that masked columns keep the state (left-padded prefixes)
            keep = attention_mask.bool()  # (B, S)
            hs, cs = [layer.keys for layer in state.layers], [layer.values for layer in state.layers]
            weights = [self.layer_weights(i) for i in range(self.config.num_layers)]
            outs = []
            for t in range(s):
                inp = x[:, t]  # (B, E)
                m = keep[:, t : t + 1]  # (B, 1)
                for i, w in enumerate(weights):
                    h, c = self.cell(inp, hs[i], cs[i], w)
                    hs[i], cs[i] = torch.where(m, h, hs[i]), torch.where(m, c, cs[i])
                    inp = hs[i]
                outs.append(inp)
            y = torch.stack(outs, dim=1)  # (B, S, H)
            h_n, c_n = torch.stack(hs), torch.stack(cs)  # (L, B, H)
        else:  # the fused kernel: training and unpadded prefill
            h0 = torch.stack([layer.keys for layer in state.layers])  # (L, B, H)
            c0 = torch.stack([layer.values for layer in state.layers])  # (L, B, H)
            y, (h_n, c_n) = self.lstm(x, (h0, c0))  # (B, S, H)
        y = self.drop(y)
        if logits_to_keep:
            y = y[:, -logits_to_keep:]  # (B, k, H)
        logits = self.head(y)  # (B, S or k, V)
        out_cache = None
        if use_cache or cache is not None:
            out_cache = cache if cache is not None else LSTMCache()
            out_cache.layers = [LSTMLayerState(h_n[i], c_n[i]) for i in range(self.config.num_layers)]
        return LSTMOutput(logits=logits, cache=out_cache)

    def mle_loss(self, input_ids: torch.Tensor, targets: torch.Tensor, ignore_index: int = PAD_ID) -> torch.Tensor:
        """Mean cross-entropy of ``targets`` (B, S) given teacher-forced ``input_ids`` (B, S), targets equal to
        ``ignore_index`` left out: ``F.cross_entropy(self(input_ids).logits, targets)`` without the (B S, V)
        logits (``seqgan_env.models.linear_ce``), for the MLE step."""
        b, s = input_ids.shape
        h0 = torch.zeros(self.config.num_layers, b, self.config.hidden_size, device=input_ids.device,
                         dtype=self.head.weight.dtype)  # (L, B, H)
        y, _ = self.lstm(self.drop(self.embedding(input_ids)), (h0, h0))  # (B, S, H)
        y = self.drop(y)
        return linear_cross_entropy(y.reshape(b * s, -1), self.head.weight, self.head.bias, targets.reshape(-1),
                                    ignore_index)

    # -- export ----------------------------------------------------------------------------
    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        """config.json + model.safetensors in ``directory`` (created), each written atomically."""
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path / CONFIG_FILE, json.dumps(self.config.to_dict(), indent=2) + "\n")
        atomic_save_tensors(path / WEIGHTS_FILE, {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()})
        return path


def is_lstm(model: Any) -> bool:
    """Whether ``model`` is an :class:`LSTMGenerator` (the step decoder choice asks)."""
    return isinstance(model, LSTMGenerator)


def lstm_from_export(raw: dict[str, Any], weights: dict[str, torch.Tensor], where: str, fix: str) -> LSTMGenerator:
    """An :class:`LSTMGenerator` from a config.json dict and its weights; ValueError naming ``where`` and ``fix``."""
    try:
        config = LSTMConfig(**raw)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where} does not describe an LSTM generator ({exc}); {fix}.") from None
    with torch.random.fork_rng(devices=[]):  # the initial draws are overwritten; the global RNG stays
        model = LSTMGenerator(config)
    try:
        model.load_state_dict(weights)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ValueError(f"the weights next to {where} do not match it ({first}); {fix}.") from None
    return model.eval()


class LSTMStepDecoder:
    """One new token per row through an :class:`LSTMGenerator`, with the (h, c) state as the cache.

    The signature is the Llama step decoder's (``seqgan_env.models.fastllama.LlamaStepDecoder``),
    so the agent and the Monte-Carlo rollout drive both alike: ``keys[i]`` / ``values[i]`` are layer
    i's h / c (B, H), overwritten in place; ``position``, ``column`` and ``allowed`` are not needed
    (the state is the whole past; left padding was skipped when the prefix was prefilled).
    """

    def __init__(self, model: LSTMGenerator) -> None:
        if not is_lstm(model):
            raise ValueError(f"LSTMStepDecoder decodes an LSTMGenerator, got {type(model).__name__}.")
        self.model = model

    def begin(self) -> None:
        """Nothing to re-read: every step reads the model's parameters directly."""

    def new_cache(self, batch: int, capacity: int = 0, device=None, dtype=None) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Zero (h, c) per layer as (keys, values) lists of (B, H); ``capacity`` is not needed by an LSTM."""
        state = self.model.zero_state(batch)
        keys = [layer.keys.to(device=device, dtype=dtype) for layer in state.layers]
        values = [layer.values.to(device=device, dtype=dtype) for layer in state.layers]
        return keys, values

    def step(self, input_ids: torch.Tensor, position: Any, keys: list[torch.Tensor], values: list[torch.Tensor],
             column: int = 0, allowed: torch.Tensor | None = None,
             return_hidden: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Feed one token per row (B,) or (B, 1); update (h, c) in place; return logits (B, V)
        (``return_hidden``: and the last layer's h (B, H), the output layer's input)."""
        m = self.model
        x = F.embedding(input_ids.reshape(-1), m.embedding.weight)  # (B, E)
        for i in range(m.config.num_layers):
            h, c = m.cell(x, keys[i], values[i], m.layer_weights(i))  # (B, H) each
            keys[i].copy_(h)
            values[i].copy_(c)
            x = h
        logits = torch.addmm(m.head.bias, x, m.head.weight.t())  # (B, V)
        return (logits, x) if return_hidden else logits


__all__ = ["LSTMCache", "LSTMConfig", "LSTMGenerator", "LSTMOutput", "LSTMStepDecoder", "MODEL_TYPE", "is_lstm",
           "lstm_from_export"]
