"""Scoring the newest prefix of many running episodes with the discriminator's KV cache.

Each env step appends one token per sub-env, so the discriminator only needs to
run on that one token, attending to the cached keys/values of the earlier tokens
of the same episode. Sub-envs start episodes at different steps (autoreset), so
the cache is shared in time, not in position: every step adds one cache column for
all rows; a per-row validity mask hides the columns of earlier episodes and of
steps where a row wrote nothing, and per-row position ids restart at each episode.
When the cache reaches ``capacity`` columns, each row's live columns are moved
to the front (a gather, no recompute); when the discriminator's weights change,
it is rebuilt with one full causal pass over the current tokens.
"""

from __future__ import annotations

import torch

from seqgan_env.models.fastllama import LlamaStepDecoder, make_step_decoder
from seqgan_env.models.kvcache import PreallocatedLayer, generation_cache, preallocated_cache  # re-exported: their old home


class IncrementalPrefixScorer:
    """Per-step realness logits of the prefix each row just extended.

    ``discriminator`` must have ``net`` (a ``DiscriminatorNet``) and keep it in eval
    mode outside its updates. Results equal a full causal pass over the same
    tokens up to float rounding (checked in the tests to 1e-5).
    """

    #: Score each step with ``seqgan_env.models.fastllama.LlamaStepDecoder`` (the same function as the
    #: transformers forward over the cache, far fewer kernel calls) when it supports the
    #: backbone; False always uses the transformers forward. Rebuilds of more than one column use transformers.
    fast_decode: bool = True

    def __init__(self, discriminator, num_rows: int, max_length: int, device: torch.device, capacity: int | None = None):
        self.discriminator = discriminator
        self.num_rows = num_rows
        self.max_length = max_length
        self.device = torch.device(device)
        # Headroom of a quarter of max_length (>= 8) before compaction: wider caches cost attention
        # time every step, narrower ones compact too often (measured at B=256, T=32).
        self.capacity = capacity if capacity is not None else max_length + max(8, max_length // 4)
        if self.capacity < max_length:
            raise ValueError(f"capacity={self.capacity} must be >= max_length={max_length}.")
        self.valid = torch.zeros(num_rows, self.capacity, dtype=torch.bool, device=self.device)  # (B, C)
        self.cache = None
        self.columns = 0
        self.refreshed: torch.Tensor | None = None  # (B, m) all prefix logits after a rebuild, else None
        self._step_decoder: LlamaStepDecoder | None = None
        self._spare = None  # the last cache, its buffers reused by a one-column rebuild
        self._holes = True  # some row may have a dead column among the cached ones (then attention is masked)

    @torch.inference_mode()
    def invalidate(self) -> None:
        """Forget the cache (call after the discriminator's weights change)."""
        if self.cache is not None:
            self._spare = self.cache
        self.cache = None
        self.columns = 0

    @torch.inference_mode()  # rewards are constants for the agent; cheaper dispatch than no_grad
    def step(
        self, tokens: torch.Tensor, lengths: torch.Tensor, written: torch.Tensor, restarted: torch.Tensor
    ) -> torch.Tensor:
        """Logits of each row's newest prefix after this env step.

        tokens: (B, T) tokens after the step; lengths: (B,) tokens written so far;
        written: (B,) this step appended a token; restarted: (B,) the row began a new
        episode this step (its earlier columns are dropped).
        Returns (B,) logits; rows with ``written`` False get a meaningless value.
        """
        net = self.discriminator.net
        if net.training:
            raise RuntimeError("the discriminator must be in eval mode while scoring rewards.")
        self.valid.masked_fill_(restarted.unsqueeze(1), False)  # no index_put: no read-back of the mask
        self.refreshed = None
        if self.cache is None:
            return self._rebuild(net, tokens, lengths)
        if self.columns + 1 > self.capacity:
            self._compact()
        b, c = self.num_rows, self.columns
        position = (lengths - 1).clamp(min=0).unsqueeze(1)  # (B, 1)
        new_token = tokens.gather(1, position)  # (B, 1)
        self.valid[:, c] = True  # each query attends at least to itself
        allowed = self.valid[:, : c + 1]  # (B, C+1)
        dec = self._decoder(net)
        if dec is not None:  # the same function with far fewer kernel calls (tested equal to 1e-5)
            layers = self.cache.layers
            # No dead column in any row (no restart, every row written since the rebuild): no mask at
            # all. Two (B,) checks per step until the first hole, instead of a (B, C) one.
            if not self._holes and bool(restarted.any()):
                self._holes = True
            mask_arg = allowed if self._holes else None
            h = dec.step(new_token, position.squeeze(1), [l.keys for l in layers], [l.values for l in layers], c, mask_arg)
            for layer in layers:
                layer.length = c + 1
            self.valid[:, c] = written
            if not self._holes and not bool(written.all()):
                self._holes = True
            self.columns = c + 1
            return net.logits_from_hidden(h)  # (B,)
        dtype = net.head.weight.dtype
        heads = net.backbone.config.num_attention_heads
        # Expanded per head and contiguous: the CPU attention kernel is faster than with a broadcast mask.
        mask = torch.zeros(b, heads, 1, c + 1, dtype=dtype, device=self.device)
        mask.masked_fill_(~allowed[:, None, None, :], torch.finfo(dtype).min)  # (B, H, 1, C+1)
        out = net(new_token, attention_mask=mask, position_ids=position, cache=self.cache, use_cache=True)
        self.cache = out.cache
        self.valid[:, c] = written
        self.columns = c + 1
        self._holes = True  # not tracked on this path: a later lean step masks (always correct)
        return out.logits[:, 0]  # (B,)

    def _decoder(self, net) -> LlamaStepDecoder | None:
        """The lean step decoder of ``net``'s backbone, or None (``fast_decode`` off or unsupported)."""
        if not hasattr(net, "logits_from_hidden"):
            return None
        self._step_decoder = make_step_decoder(net.backbone, self._step_decoder, self.fast_decode)
        return self._step_decoder

    def _rebuild_first_column(self, net, dec: LlamaStepDecoder, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """``_rebuild`` when no row has more than one token: the lean step at column 0 (same scores to 1e-5)."""
        w = net.backbone.embed_tokens.weight
        cache = self._spare
        if cache is None or cache.layers[0].keys.dtype != w.dtype or cache.layers[0].keys.device != w.device:
            cache = preallocated_cache(net.backbone.config.num_hidden_layers, self.capacity)
            keys, values = dec.new_cache(self.num_rows, 1, device=w.device, dtype=w.dtype)  # (B, H, 1, D) templates
            for layer, k, v in zip(cache.layers, keys, values):
                layer.lazy_initialization(k, v)
        self._spare = None
        layers = cache.layers
        dec.begin()
        h = dec.step(tokens[:, 0], 0, [l.keys for l in layers], [l.values for l in layers], 0)  # (B, C)
        for layer in layers:
            layer.length = 1
        self.cache = cache
        self.valid[:, 0] = lengths > 0
        self.columns = 1
        self._holes = not bool(self.valid[:, 0].all())
        logits = net.logits_from_hidden(h)  # (B,)
        self.refreshed = logits.unsqueeze(1)  # (B, 1)
        return logits

    def _compact(self) -> None:
        """Move each row's live columns to the front of the cache, in order (no recompute).

        Cached keys carry RoPE at their within-episode positions, which do not change
        when the columns move, so scores after compaction are those before it.
        """
        order = torch.argsort((~self.valid).to(torch.uint8), dim=1, stable=True)  # (B, C) live columns first
        live = int(self.valid.sum(dim=1).max())
        keep = order[:, :live]  # (B, m)
        for layer in self.cache.layers:
            b, h, _, d = layer.keys.shape
            idx = keep[:, None, :, None].expand(b, h, live, d)  # (B, H, m, D)
            layer.keys[:, :, :live] = layer.keys.gather(2, idx)
            layer.values[:, :, :live] = layer.values.gather(2, idx.expand(b, h, live, layer.values.shape[-1]))
            layer.length = live
        self.valid[:, :live] = self.valid.gather(1, keep)
        self.valid[:, live:] = False
        self.columns = live
        self._holes = not bool(self.valid[:, :live].all())

    def _rebuild(self, net, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """One full causal pass over the current episodes; leaves a fresh cache."""
        m = int(lengths.max())
        self.valid.zero_()
        if m == 0:
            self.cache, self.columns = None, 0
            return torch.zeros(self.num_rows, device=self.device)
        dec = self._decoder(net)
        if m == 1 and dec is not None:  # fresh episodes (e.g. after reset): one lean step, no transformers call
            return self._rebuild_first_column(net, dec, tokens, lengths)
        cache = preallocated_cache(net.backbone.config.num_hidden_layers, self.capacity)
        out = net(tokens[:, :m], cache=cache, use_cache=True)  # right-padded: causal mask alone is exact
        self.cache = out.cache
        self.valid[:, :m] = torch.arange(m, device=self.device).unsqueeze(0) < lengths.unsqueeze(1)
        self.columns = m
        self._holes = not bool(self.valid[:, :m].all())
        self.refreshed = out.logits  # (B, m)
        return out.logits.gather(1, (lengths - 1).clamp(min=0).unsqueeze(1)).squeeze(1)  # (B,)


__all__ = ["IncrementalPrefixScorer", "PreallocatedLayer", "generation_cache", "preallocated_cache"]
