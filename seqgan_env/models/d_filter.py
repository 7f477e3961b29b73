"""Discriminator-guided sampling: reweight generator samples by D's estimate of p_data / p_model.

For a discriminator trained to tell real from generated rows, D/(1-D) estimates the
density ratio p_data(x) / p_model(x) (exactly so for the Bayes-optimal D of a 0/1
loss). Samples of the generator reweighted by it are, in the limit, samples of the
data distribution; this uses D even where its gradient signal is too weak for
policy gradient (Azadi et al. 2019, "Discriminator Rejection Sampling").

* ``sir``: sampling-importance-resampling: draw ``oversample * n`` candidates, keep
  ``n`` of them drawn without replacement with probability proportional to the
  weight (without replacement, so a heavy candidate is not repeated).
* ``rejection``: accept each candidate with probability ``w / w_max``, ``w_max`` the
  largest weight seen so far (DRS's running estimate), until ``n`` are accepted.

``beta`` tempers the weights (w ** beta): 0 is plain sampling, 1 the estimated
ratio. Weights are computed in log space and clipped at ``max_log_weight`` so a
saturated D (P(real) = 1) cannot dominate the draw.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal

import torch

from seqgan_env.utils.validation import check_int, check_number

METHODS = ("sir", "rejection")
#: Most candidates per kept sample (sir) or per round and kept sample (rejection).
MAX_OVERSAMPLE = 10_000


@dataclass(frozen=True)
class DFilterConfig:
    """How D filters samples.

    method: ``sir`` or ``rejection``. oversample: candidates per kept sample (SIR) and
    per round (rejection), an int in [1, ``MAX_OVERSAMPLE``]. beta: weight exponent >= 0. max_log_weight:
    clip of log w (> 0). max_rounds: rejection rounds before giving up with an error.
    """

    method: Literal["sir", "rejection"] = "sir"
    oversample: int = 4
    beta: float = 1.0
    max_log_weight: float = 10.0
    max_rounds: int = 100

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method={self.method!r} is unknown: choose one of {list(METHODS)}.")
        check_int("oversample", self.oversample, 1, maximum=MAX_OVERSAMPLE,
                  fix=f"fix: 4 is the default (each candidate is drawn and scored, so more than {MAX_OVERSAMPLE} per "
                      f"kept sample is refused)")
        check_int("max_rounds", self.max_rounds, 1)
        check_number("beta", self.beta, 0, fix="1 is the D/(1-D) ratio")
        check_number("max_log_weight", self.max_log_weight, 0, low_open=True)


class DFilterError(RuntimeError):
    """Rejection sampling accepted too few rows in ``max_rounds`` rounds."""


def log_weights(probs: torch.Tensor, beta: float = 1.0, max_log_weight: float = 10.0) -> torch.Tensor:
    """(N,) beta * log(p / (1 - p)) of P(real) ``probs`` (N,), clipped to +-max_log_weight."""
    p = probs.double().clamp(1e-12, 1 - 1e-12)
    return (beta * (p.log() - (-p).log1p())).clamp(-max_log_weight, max_log_weight)


def d_filter(
    sample: Callable[[int], torch.Tensor],
    sequence_probs: Callable[[torch.Tensor], torch.Tensor],
    n: int,
    config: DFilterConfig | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """(n, T) long: ``n`` generator rows kept by D's density-ratio weights.

    ``sample(k)`` draws (k, T) generator rows; ``sequence_probs(rows)`` gives (k,)
    P(real) of each (e.g. ``Discriminator.sequence_scores``). ``generator`` drives the
    resampling draws (the sampler's own randomness is its business).
    """
    cfg = config or DFilterConfig()
    check_int("n", n, 1)
    if cfg.method == "sir":
        cand = sample(cfg.oversample * n)  # (k, T)
        logw = log_weights(sequence_probs(cand).cpu(), cfg.beta, cfg.max_log_weight)  # (k,)
        # Gumbel-top-n of log w: n draws without replacement, each proportional to w among those left
        u = torch.rand(logw.shape, generator=generator, dtype=torch.double).clamp_min(1e-300)
        keys = logw - (-u.log()).log()
        keep = keys.topk(n).indices
        return cand[keep.to(cand.device)]
    kept: list[torch.Tensor] = []
    count, max_logw = 0, -float("inf")
    for _ in range(cfg.max_rounds):
        cand = sample(cfg.oversample * n)  # (k, T)
        logw = log_weights(sequence_probs(cand).cpu(), cfg.beta, cfg.max_log_weight)  # (k,)
        max_logw = max(max_logw, float(logw.max()))
        u = torch.rand(logw.shape, generator=generator, dtype=torch.double)
        accept = u.log() <= logw - max_logw  # (k,) accept with probability w / w_max
        kept.append(cand[accept.to(cand.device)])
        count += int(accept.sum())
        if count >= n:
            return torch.cat(kept)[:n]
    raise DFilterError(
        f"rejection sampling accepted {count} of {n} rows in max_rounds={cfg.max_rounds} rounds of "
        f"{cfg.oversample * n} candidates; fix: raise max_rounds or oversample, lower beta, or use method='sir'."
    )
