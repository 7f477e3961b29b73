"""The generator's teacher-forced forward as one module call (the module DDP wraps)."""

from __future__ import annotations

import torch

from seqgan_env.models.fastllama_train import supports as supports_lean_forward
from seqgan_env.models.fastllama_train import teacher_forced_logits


class TeacherForced(torch.nn.Module):
    """The generator's teacher-forced logits for one or more input batches, in ONE module call.

    The agent's trainable forward: ``forward(*input_ids)`` with each input (N_i, T_i)
    long returns a tuple of (N_i, T_i, V) logits. In data-parallel training
    DistributedDataParallel wraps this module, so the policy-gradient batch and the MLE
    batch of one update are a single DDP forward followed by a single backward (DDP
    all-reduces every gradient once per backward, and refuses two forwards per backward).
    """

    #: On a CPU, compute the logits with ``seqgan_env.models.fastllama_train.teacher_forced_logits``
    #: (the same function and gradients as the transformers forward, tested to 1e-5, with
    #: fewer kernels and a cheaper attention backward) when it supports the generator;
    #: False always uses the transformers forward (as on CUDA, where its SDPA kernels win).
    lean: bool = True

    def __init__(self, generator: torch.nn.Module) -> None:
        super().__init__()
        self.generator = generator

    def forward(self, *input_ids: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if self.lean and input_ids and input_ids[0].device.type == "cpu" and supports_lean_forward(self.generator):
            return teacher_forced_logits(self.generator, *input_ids)  # each (N_i, T_i, V)
        return tuple(self.generator(input_ids=x).logits for x in input_ids)  # each (N_i, T_i, V)
