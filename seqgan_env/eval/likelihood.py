"""NLL-test: how well a generator explains held-out real sequences.

The SeqGAN oracle benchmark reports NLL-oracle (the oracle's NLL of the
generator's samples: quality) next to NLL-test (the generator's NLL of held-out
real data: coverage). A generator that collapses onto a few good sequences wins
NLL-oracle and loses NLL-test, so the two are read together.

Contract of :func:`generator_nll`: teacher forcing with BOS prepended, the
generator's raw distribution (temperature 1, no top-p, no action masking), mean
over the real tokens only (PAD positions excluded; an EOS that ends a sequence is
a real token), in nats per token. Pass held-out data, never the training set.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from seqgan_env.envs.spec import BOS_ID, PAD_ID
from seqgan_env.utils.validation import check_int, check_number


@torch.no_grad()
def generator_nll(generator: torch.nn.Module, sequences: torch.Tensor, batch_size: int = 512,
                  temperature: float = 1.0) -> float:
    """Mean per-token negative log-likelihood (nats) of ``sequences`` (N, T) under ``generator``.

    ``temperature`` > 0 scores the distribution softmax(logits / temperature) the generator
    samples from at that temperature (1: its raw distribution, the contract above).

    ``generator`` is a causal LM called as ``generator(input_ids=...)`` returning
    ``.logits`` (N, T, V). Sequences are right-padded with PAD. The generator is put in
    eval mode for the computation and its previous mode is restored.
    """
    seq = torch.as_tensor(sequences)
    if seq.ndim != 2 or seq.is_floating_point() or len(seq) == 0:
        raise ValueError(
            f"sequences must be a non-empty (N, T) tensor of token ids, got shape {tuple(seq.shape)} "
            f"and dtype {seq.dtype}; pass the held-out split (e.g. dataset.valid)."
        )
    check_int("batch_size", batch_size, 1, "use e.g. 512")
    check_number("temperature", temperature, 0, fix="use 1.0 for the generator's own distribution", low_open=True)
    device = next(generator.parameters()).device
    was_training = generator.training
    generator.eval()
    total, count = 0.0, 0
    try:
        for start in range(0, len(seq), batch_size):
            real = seq[start : start + batch_size].to(device, torch.long)  # (n, T)
            bos = torch.full_like(real[:, :1], BOS_ID)  # (n, 1)
            inp = torch.cat([bos, real[:, :-1]], dim=1)  # (n, T)
            logits = generator(input_ids=inp).logits.float() / temperature  # (n, T, V)
            nll = F.cross_entropy(logits.flatten(0, 1), real.flatten(), ignore_index=PAD_ID, reduction="sum")
            total += float(nll)
            count += int((real != PAD_ID).sum())
    finally:
        generator.train(was_training)
    if count == 0:
        raise ValueError("sequences hold only PAD tokens: there is nothing to score.")
    return total / count


__all__ = ["generator_nll"]
