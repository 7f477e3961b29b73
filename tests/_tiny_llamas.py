"""Shared by the lean-path tests: tiny Llama configs covering the supported shapes, and weight noise."""

from __future__ import annotations

import torch

from seqgan_env.models.networks import ModelConfig

TOL = 1e-5
CONFIGS = [
    ModelConfig(hidden_size=16, intermediate_size=32, num_heads=2, num_layers=1, max_position_embeddings=40),
    ModelConfig(hidden_size=32, intermediate_size=64, num_heads=4, num_layers=2, max_position_embeddings=40),
    ModelConfig(hidden_size=64, intermediate_size=128, num_heads=4, num_layers=2, max_position_embeddings=40,
                rope_theta=500.0, tie_word_embeddings=False),
    ModelConfig(hidden_size=24, intermediate_size=40, num_heads=2, num_layers=3, max_position_embeddings=40,
                attn_implementation="eager"),
]


def randomize(model: torch.nn.Module, seed: int) -> None:
    """Norm weights other than 1 (they are folded into the fused matmuls), other weights perturbed."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_((0.3 if p.dim() == 1 else 0.02) * torch.randn(p.shape, generator=g))
