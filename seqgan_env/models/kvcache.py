"""Generation caches written in place: a transformers cache of preallocated columns, or an LSTM's state.

``DynamicLayer`` (transformers' default cache layer) concatenates on every update, a full
copy of the past per token; :class:`PreallocatedLayer` allocates its columns once and
writes each new token in place. The sampler (``seqgan_env.models.sampling``), the
discriminator's prefix scorer and the MC rollout completions all take their caches here.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers.cache_utils import Cache, DynamicLayer

from seqgan_env.models.lstm import LSTMCache, is_lstm

__all__ = ["PreallocatedLayer", "generation_cache", "preallocated_cache"]


class PreallocatedLayer(DynamicLayer):
    """A transformers cache layer with a fixed ``capacity`` of columns, written in place.

    ``DynamicLayer`` concatenates on every update (a full copy of the cache per
    token); this layer allocates (B, H, capacity, D) once and returns views of the
    filled part, so one decoding step costs no copy of the past.
    """

    def __init__(self, capacity: int):
        super().__init__()
        self.capacity = capacity
        self.length = 0

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        b, h, _, d = key_states.shape
        self.device = key_states.device
        self.keys = key_states.new_zeros(b, h, self.capacity, d)  # (B, H, C, D)
        self.values = value_states.new_zeros(b, h, self.capacity, value_states.shape[-1])  # (B, H, C, Dv)
        self.length = 0
        self.is_initialized = True

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        q = key_states.shape[-2]
        end = self.length + q
        if end > self.capacity:
            raise RuntimeError(f"cache capacity {self.capacity} exceeded ({end} columns): rebuild the cache first.")
        self.keys[:, :, self.length : end] = key_states
        self.values[:, :, self.length : end] = value_states
        self.length = end
        return self.keys[:, :, :end], self.values[:, :, :end]

    def get_seq_length(self) -> int:
        return self.length if self.is_initialized else 0


def preallocated_cache(num_layers: int, capacity: int) -> Cache:
    """A transformers ``Cache`` of ``num_layers`` :class:`PreallocatedLayer`."""
    return Cache(layers=[PreallocatedLayer(capacity) for _ in range(num_layers)])


def generation_cache(model: torch.nn.Module, capacity: int) -> Any:
    """An empty cache for ``model``'s forward: an LSTM generator's (h, c) state, else a
    :func:`preallocated_cache` of ``capacity`` columns per layer (filled by the first call)."""
    if is_lstm(model):
        return LSTMCache()
    return preallocated_cache(model.config.num_hidden_layers, capacity)
