"""A lean teacher-forced forward (with gradients) for the tiny transformers Llama models.

The REINFORCE update recomputes the log-probabilities of a sampled batch with one
causal forward over every position, then back-propagates. At hidden sizes of
32-64 on a CPU the transformers forward spends much of that time in many small
kernels (three q/k/v linears, rotate_half's slices and concatenations, separate
gate and up linears) and in a flash-attention backward built for long sequences.
:func:`teacher_forced_logits` computes the same function, differentiably, from
the model's own parameters with fewer and larger kernels:

* q, rotate_half(q), k, rotate_half(k) and v from one matmul (the weight rows
  permuted and signed as in :mod:`seqgan_env.models.fastllama`), so rotary embedding is
  two multiplies and an add; gate and up from one matmul; RMSNorm weights folded
  into the following matmul's columns;
* causal attention as one batched matmul onto an additive causal mask, a softmax
  and a second batched matmul (faster forward and backward than the CPU
  flash-attention kernel at these sizes, measured in ``seqgan-env bench agent``).

Gradients reach the model's parameters through the fusing ops (``cat``, ``mul``),
so an optimizer, ``clip_grad_norm_`` and DistributedDataParallel see ordinary
parameter gradients. Use it only where :func:`seqgan_env.models.fastllama.supports` holds
for the model: pure causal attention over the whole input (no padding mask), no
dropout. The tests compare logits and gradients with the transformers forward.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from seqgan_env.models.fastllama import _backbone, fuse_layer, rotary_tables, supports

__all__ = ["teacher_forced_logits", "supports"]


def _rms(x: torch.Tensor, eps: float) -> torch.Tensor:
    """x / rms(x) over the last dim, without the weight (folded into the next matmul)."""
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)


def teacher_forced_logits(model: torch.nn.Module, *input_ids: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Causal-LM logits of ``model`` (a ``LlamaForCausalLM``) for each (N_i, T_i) long input.

    Equals ``model(input_ids=x).logits`` (no attention mask: every position attends to
    all earlier ones) up to float rounding, with gradients to the model's parameters.
    The fused weights are built once per call and shared by all inputs; inputs of one
    length go through one forward together (rows never interact).
    Returns a tuple of (N_i, T_i, V) logits.
    """
    if not supports(model) or not hasattr(model, "lm_head"):
        raise ValueError(f"teacher_forced_logits does not support this model/config ({type(model).__name__}); "
                         f"use model(input_ids=...).logits.")
    backbone = _backbone(model)
    cfg = backbone.config
    h = cfg.num_attention_heads
    d = getattr(cfg, "head_dim", None) or cfg.hidden_size // h
    hd = h * d
    layers = [fuse_layer(layer, h) for layer in backbone.layers[: cfg.num_hidden_layers]]  # with gradients
    norm = backbone.norm
    head = (model.lm_head.weight * norm.weight).t()  # (C, V)
    emb, pad = backbone.embed_tokens.weight, backbone.embed_tokens.padding_idx
    if len(input_ids) > 1 and len({x.shape[1] for x in input_ids}) == 1:  # same length: one forward for all
        (logits,) = teacher_forced_logits(model, torch.cat(input_ids, 0))  # (sum N_i, T, V)
        return tuple(logits.split([x.shape[0] for x in input_ids], 0))
    outs = []
    for ids in input_ids:
        n, t = ids.shape
        x = F.embedding(ids, emb, padding_idx=pad).reshape(n * t, -1)  # (N T, C); no gradient to the padding row
        cos, sin = rotary_tables(backbone, t, d, x.device, x.dtype)  # (T, 2 H D)
        cos, sin = cos.view(t, 2, hd), sin.view(t, 2, hd)  # (T, 2, H D): [q, k] halves, broadcast over N
        causal = torch.full((t, t), float("-inf"), device=x.device, dtype=x.dtype).triu(1)  # (T, T)
        for eps1, w_qkv, w_o, eps2, w_gu, w_down in layers:
            o = torch.mm(_rms(x, eps1), w_qkv).view(n, t, 5, hd)  # (N, T, 5, H D): q, k, rot(q), rot(k), v
            # split/unbind, not slicing: their backward is one concatenation, not a zero fill per slice
            qk, rot, v = o.split([2, 2, 1], dim=2)  # (N, T, 2, H D), (N, T, 2, H D), (N, T, 1, H D)
            q, k = torch.addcmul(qk * cos, rot, sin).unbind(2)  # (N, T, H D) each; rotary, q scaled
            q = q.reshape(n, t, h, d).transpose(1, 2).reshape(n * h, t, d)  # (N H, T, D)
            k = k.reshape(n, t, h, d).transpose(1, 2).reshape(n * h, t, d)  # (N H, T, D)
            v = v.reshape(n, t, h, d).transpose(1, 2).reshape(n * h, t, d)  # (N H, T, D)
            s = torch.baddbmm(causal.expand(n * h, t, t), q, k.transpose(1, 2))  # (N H, T, T)
            a = torch.bmm(torch.softmax(s, dim=-1), v)  # (N H, T, D)
            a = a.reshape(n, h, t, d).transpose(1, 2).reshape(n * t, hd)  # (N T, H D)
            x = torch.addmm(x, a, w_o)  # residual + o_proj
            g, u = torch.mm(_rms(x, eps2), w_gu).chunk(2, dim=-1)  # (N T, I) each
            x = torch.addmm(x, F.silu(g) * u, w_down)  # residual + down_proj
        outs.append(torch.mm(_rms(x, norm.variance_epsilon), head).reshape(n, t, -1))  # (N, T, V)
    return tuple(outs)
