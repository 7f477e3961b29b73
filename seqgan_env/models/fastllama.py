"""A lean one-token decoding step for the tiny transformers Llama models.

With hidden sizes of 32-64, one transformers forward of a single token per row
costs far more in per-call overhead (module hooks, mask construction, seven
separate linears per layer, a flash-attention kernel built for long queries)
than in arithmetic. :class:`LlamaStepDecoder` computes the same function for one
new token per row with few, larger kernels:

* q, rotate_half(q), k, rotate_half(k) and v from one matmul (the rotation is a
  signed permutation of rows of q_proj / k_proj, exact in floating point), so
  rotary embedding is two multiplies and an add with precomputed cos/sin tables;
* gate and up projections from one matmul;
* attention of the single query over the cache with two batched matmuls and a
  softmax (masked columns get -inf).

It holds **no copy of the parameters that could drift**: it reads the model's
own modules and re-fuses the weights whenever a parameter changed (tracked by
each tensor's in-place version counter, so an optimizer step or a
``load_state_dict`` is seen at the next call). The transformers model stays the
source of truth for training, full passes and ``save_pretrained``; the tests
check logits and rewards against its forward to 1e-5.

Keys and values live in caller-owned (B, H, C, D) buffers, the layout of
``seqgan_env.models.kvcache.PreallocatedLayer``, so a cache filled by a transformers
forward can be continued here and vice versa.

Configurations it does not cover (biases, grouped KV heads, non-default RoPE,
an activation other than SiLU, training-mode dropout) make :func:`supports`
return False; callers then use the transformers forward.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from seqgan_env.models.lstm import LSTMStepDecoder, is_lstm

__all__ = ["LlamaStepDecoder", "fuse_layer", "make_step_decoder", "rotary_tables", "supports"]


def _backbone(model: torch.nn.Module):
    """The ``LlamaModel`` of a ``LlamaForCausalLM`` (``.model``) or of a ``LlamaModel`` itself (any other
    architecture comes back as it is, and :func:`supports` then says no)."""
    return model.model if hasattr(model, "lm_head") and hasattr(model, "model") else model


def supports(model: torch.nn.Module) -> bool:
    """Whether :class:`LlamaStepDecoder` computes exactly ``model``'s forward."""
    backbone = _backbone(model)
    cfg = getattr(backbone, "config", None)
    if cfg is None or getattr(cfg, "model_type", None) != "llama" or not hasattr(backbone, "layers"):
        return False
    rope = getattr(cfg, "rope_parameters", None) or {}
    if rope.get("rope_type", "default") != "default":
        return False
    if getattr(cfg, "attention_bias", False) or getattr(cfg, "mlp_bias", False):
        return False
    if cfg.hidden_act != "silu" or cfg.num_key_value_heads != cfg.num_attention_heads:
        return False
    if getattr(backbone.rotary_emb, "attention_scaling", 1.0) != 1.0:
        return False
    if hasattr(model, "lm_head") and model.lm_head.bias is not None:
        return False
    if model.training and getattr(cfg, "attention_dropout", 0.0) > 0:
        return False
    return True


def _rotate_rows(w: torch.Tensor, heads: int) -> torch.Tensor:
    """Rows of a (H*D, C) projection such that ``x @ result.T == rotate_half(x @ w.T)`` per head."""
    hd, c = w.shape
    d = hd // heads
    w = w.view(heads, 2, d // 2, c)  # (H, 2, D/2, C): first and second halves of each head
    return torch.cat([-w[:, 1], w[:, 0]], dim=1).reshape(hd, c)  # (H*D, C)


def fuse_layer(layer: torch.nn.Module, heads: int) -> tuple:
    """(eps1, w_qkv (C, 5 H D), w_o (H D, C), eps2, w_gu (C, 2 I), w_down (I, C)) of one decoder layer.

    ``w_qkv`` gives [q, k, rotate_half(q), rotate_half(k), v] and ``w_gu`` [gate, up], each
    with the preceding RMSNorm weight folded into its rows; all are differentiable functions
    of the layer's parameters (callers that do not train wrap this in ``no_grad``).
    """
    att, mlp = layer.self_attn, layer.mlp
    ln1, ln2 = layer.input_layernorm, layer.post_attention_layernorm
    wq, wk = att.q_proj.weight, att.k_proj.weight
    w = torch.cat([wq, wk, _rotate_rows(wq, heads), _rotate_rows(wk, heads), att.v_proj.weight], dim=0)  # (5 H D, C)
    w_gu = torch.cat([mlp.gate_proj.weight, mlp.up_proj.weight], dim=0)  # (2 I, C)
    return (ln1.variance_epsilon, (w * ln1.weight).t(), att.o_proj.weight.t(),
            ln2.variance_epsilon, (w_gu * ln2.weight).t(), mlp.down_proj.weight.t())


def rotary_tables(backbone, positions: int, head_dim: int, device, dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotary tables of ``backbone``'s own module for positions 0..P-1: cos and sin, each (P, 2 H D).

    Rows are [cos for q, cos for k] (and the same for sin), with the attention scale
    1/sqrt(D) folded into the q half.
    """
    heads = backbone.config.num_attention_heads
    scale = head_dim ** -0.5
    with torch.no_grad():
        cos, sin = backbone.rotary_emb(torch.empty(0, device=device, dtype=dtype),
                                       position_ids=torch.arange(positions, device=device).unsqueeze(0))
    cos, sin = cos[0].repeat(1, heads), sin[0].repeat(1, heads)  # (P, H D)
    return torch.cat([cos * scale, cos], 1), torch.cat([sin * scale, sin], 1)  # (P, 2 H D) each


def make_step_decoder(model: torch.nn.Module, reuse: "LlamaStepDecoder | LSTMStepDecoder | None" = None,
                      enabled: bool = True) -> "LlamaStepDecoder | LSTMStepDecoder | None":
    """The one decoder choice: the lean step decoder of ``model`` when it computes exactly
    ``model``'s forward, else None (the caller then runs the model's forward with its cache).

    An LSTM generator (``seqgan_env.models.lstm``) gets its :class:`LSTMStepDecoder`. ``reuse``
    is returned when it already decodes ``model`` (it re-reads the weights after every update, so
    one decoder serves a whole run); ``enabled=False`` always chooses the model's forward.
    """
    if not enabled:
        return None
    if is_lstm(model):
        return reuse if isinstance(reuse, LSTMStepDecoder) and reuse.model is model else LSTMStepDecoder(model)
    if not supports(model):
        return None
    if reuse is not None and reuse.model is model:
        return reuse
    return LlamaStepDecoder(model)


class LlamaStepDecoder:
    """One new token per row through a transformers Llama, with the KV cache in (B, H, C, D) buffers.

    ``model`` is a ``LlamaForCausalLM`` (``step`` returns logits (B, V)) or a
    ``LlamaModel`` (``step`` returns the final normed hidden state (B, C)).
    """

    def __init__(self, model: torch.nn.Module):
        if not supports(model):
            raise ValueError(f"LlamaStepDecoder does not support this model/config ({type(model).__name__}).")
        self.model = model
        self.backbone = _backbone(model)
        cfg = self.backbone.config
        self.heads = cfg.num_attention_heads
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // self.heads
        self.num_layers = cfg.num_hidden_layers
        self._params: list[torch.Tensor] = []
        self._key: tuple | None = None
        self._fused: list[tuple] = []
        self._final: tuple = ()
        self._rms_consts: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}  # (1/C vector, eps) per size/dtype
        self._tables: tuple[torch.Tensor, torch.Tensor] | None = None

    # -- weights, read from the model -------------------------------------------------
    def _state_key(self) -> tuple:
        return tuple((p.data_ptr(), p._version) for p in self._params)

    def _refresh(self) -> None:
        """Fuse the weights again if any parameter changed (in place or re-allocated) since the last call."""
        if self._state_key() == self._key:
            return
        fused = []
        with torch.no_grad():
            for layer in self.backbone.layers[: self.num_layers]:
                eps1, w_qkv, w_o, eps2, w_gu, w_down = fuse_layer(layer, self.heads)
                fused.append((eps1, w_qkv.contiguous(), w_o, eps2, w_gu.contiguous(), w_down))
            norm = self.backbone.norm
            head = None
            if hasattr(self.model, "lm_head"):
                head = (self.model.lm_head.weight * norm.weight).t().contiguous()  # (C, V)
            self._final = (norm.variance_epsilon, norm.weight, head)
        self._fused = fused
        self._tables = None
        self._key = self._state_key()

    def _rotary(self, positions: int, device, dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """Rotary tables of the model's own module for positions 0..P-1 (P >= ``positions``).

        Rows are [cos for q, cos for k] and [sin for q, sin for k], (P, 2 H D), with the
        attention scale 1/sqrt(D) folded into the q half.
        """
        t = self._tables
        if t is None or t[0].shape[0] < positions or t[0].device != device or t[0].dtype != dtype:
            p = max(positions, self.backbone.config.max_position_embeddings)
            t = self._tables = rotary_tables(self.backbone, p, self.head_dim, device, dtype)
        return t

    def begin(self) -> None:
        """Re-read the model's parameter list (call once per decoded batch; ``step`` re-fuses on change)."""
        self._params = list(self.model.parameters())

    # -- the step ----------------------------------------------------------------------
    def new_cache(self, batch: int, capacity: int, device=None, dtype=None) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Zeroed (B, H, capacity, D) key and value buffers, one per layer (also calls :meth:`begin`)."""
        self.begin()
        w = self.backbone.embed_tokens.weight
        device = w.device if device is None else device
        dtype = w.dtype if dtype is None else dtype
        shape = (batch, self.heads, capacity, self.head_dim)
        keys = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(self.num_layers)]
        values = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(self.num_layers)]
        return keys, values

    def _rms(self, x: torch.Tensor, eps: float) -> torch.Tensor:
        """x / rms(x) for x (B, C), without the weight (folded into the next matmul).

        The mean of squares plus eps is one ``addmv`` (eps + (x*x) @ 1/C): fewer kernels than
        pow/mean/add (same value to float rounding).
        """
        key = (x.shape[1], eps, x.device, x.dtype)
        consts = self._rms_consts.get(key)
        if consts is None:
            c = x.shape[1]
            consts = self._rms_consts[key] = (torch.full((c,), 1.0 / c, device=x.device, dtype=x.dtype),
                                              torch.tensor(eps, device=x.device, dtype=x.dtype))
        inv_c, eps_t = consts
        return x * torch.addmv(eps_t, x * x, inv_c).rsqrt_().unsqueeze(1)  # (B, C)

    def step(
        self,
        input_ids: torch.Tensor,
        position: int | torch.Tensor,
        keys: list[torch.Tensor],
        values: list[torch.Tensor],
        column: int,
        allowed: torch.Tensor | None = None,
        return_hidden: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Feed one token per row; write its keys/values at cache column ``column``.

        input_ids: (B,) or (B, 1) long. position: the rotary position, an int (all rows)
        or a (B,) long tensor. keys/values: per-layer (B, H, C, D) buffers whose columns
        ``< column`` hold the past. allowed: None (attend to every column <= ``column``)
        or (B, column + 1) bool, the columns each row may attend to (must include its
        own). Returns logits (B, V) for a causal LM, else the final hidden state (B, C);
        ``return_hidden`` (a causal LM): (logits (B, V), the normed hidden state the output layer reads (B, C)).
        """
        if not self._params:
            self.begin()
        self._refresh()
        bb = self.backbone
        ids = input_ids.reshape(-1)  # (B,)
        b = ids.shape[0]
        h, d = self.heads, self.head_dim
        hd = h * d
        x = F.embedding(ids, bb.embed_tokens.weight)  # (B, C)
        # every position is < the cache capacity (a row's position <= its column), so tables of
        # that many positions cover tensor positions without reading them back
        cos, sin = self._rotary(max(keys[0].shape[2], position + 1 if isinstance(position, int) else 0), x.device, x.dtype)
        if isinstance(position, int):
            c_, s_ = cos[position], sin[position]  # (2 H D,)
        else:
            c_, s_ = cos.index_select(0, position), sin.index_select(0, position)  # (B, 2 H D)
        # additive mask, built once for all layers: adding it is cheaper than a broadcast masked_fill per layer
        bias = None if allowed is None else torch.zeros(b, 1, 1, allowed.shape[1], dtype=x.dtype, device=x.device).masked_fill_(
            ~allowed.view(b, 1, 1, -1), float("-inf"))  # (B, 1, 1, L)
        end = column + 1
        for i, (eps1, w_qkv, w_o, eps2, w_gu, w_down) in enumerate(self._fused):
            o = torch.mm(self._rms(x, eps1), w_qkv)  # (B, 5 H D): q, k, rot(q), rot(k), v
            qk = torch.addcmul(o[:, : 2 * hd] * c_, o[:, 2 * hd : 4 * hd], s_)  # (B, 2 H D) rotary; q scaled
            kc, vc = keys[i], values[i]
            kc[:, :, column] = qk[:, hd:].view(b, h, d)
            vc[:, :, column] = o[:, 4 * hd :].view(b, h, d)
            # 3-D bmm on (B H)-batched views of the buffers: less wrapper work than a 4-D matmul
            k3 = kc.view(b * h, kc.shape[2], d)[:, :end]  # (B H, L, D)
            v3 = vc.view(b * h, vc.shape[2], d)[:, :end]  # (B H, L, D)
            att = torch.bmm(qk[:, :hd].reshape(b * h, 1, d), k3.transpose(1, 2))  # (B H, 1, L)
            if bias is not None:
                att.view(b, h, 1, end).add_(bias)
            att = torch.softmax(att, dim=-1)
            x = torch.addmm(x, torch.bmm(att, v3).view(b, hd), w_o)  # residual + o_proj
            gu = torch.mm(self._rms(x, eps2), w_gu)  # (B, 2 I)
            g, u = gu.chunk(2, dim=-1)
            x = torch.addmm(x, F.silu(g) * u, w_down)  # residual + down_proj
        eps, norm_w, head = self._final
        if head is not None and return_hidden:
            normed = self._rms(x, eps)  # (B, C)
            return torch.mm(normed, head), normed * norm_w  # (B, V) logits, (B, C) the output layer's input
        if head is not None:
            return torch.mm(self._rms(x, eps), head)  # (B, V) logits
        return self._rms(x, eps) * norm_w  # (B, C)
