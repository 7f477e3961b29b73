"""What the discriminator knows, in nats: the residual-EBM gain of tilting the generator by D.

A discriminator's logit ``s(x)`` of a whole sequence defines the residual energy-based
model ``p(x) = p_G(x) exp(s(x)) / Z`` with ``Z = E_{x~p_G}[exp(s(x))]`` (Deng et al. 2020,
"Residual Energy-Based Models for Text Generation"). Its held-out log-likelihood gain over
the generator, per real sequence, is

    gain = E_real[s] - log E_G[exp(s)]

estimated here from D's logits on held-out real rows and on fresh generator samples. When
``s = log p_data - log p_G`` exactly, the gain is ``KL(p_data || p_G)`` (the most any
D-based tilt can win); ``s = 0`` gives 0; a gain below 0 means tilting by ``exp(s)`` makes
held-out data *less* likely (e.g. a label-smoothed D, or one trained against an older
generator). It bounds what D can deliver to the generator, so it is the health number of
a D meant as a density ratio (issue 26).

The standard error is the delta method for independent real and fake samples:
``Var(s_real) / N + Var(w) / (M mean(w)^2)`` with ``w = exp(s_fake)``. The effective sample
size of the importance weights ``w`` over the fake samples, ``(sum w)^2 / sum w^2`` (from 1:
one sample carries all the weight, to M: uniform), says whether ``log E_G[exp(s)]`` can be
trusted: with an ESS of a handful the estimate of ``Z`` (and the SE) is itself unreliable.
"""

from __future__ import annotations

import math
from typing import Any

import torch

__all__ = ["d_gain_nats"]


def _as_scores(name: str, values: Any) -> torch.Tensor:
    t = torch.as_tensor(values)
    if t.ndim != 1 or t.numel() == 0:
        raise ValueError(
            f"{name} must be a non-empty 1-D array of whole-sequence logits (one per row), got shape "
            f"{tuple(t.shape)}; pass D's logit at each row's last real token (e.g. Discriminator.sequence_logits)."
        )
    t = t.detach().double().cpu()
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} holds non-finite values ({int((~torch.isfinite(t)).sum())} of {t.numel()}); "
                         f"fix: score the rows with a discriminator whose logits are finite.")
    return t


def d_gain_nats(scores_real: Any, scores_fake: Any, lengths_real: Any = None) -> dict[str, float]:
    """The residual-EBM gain ``E_real[s] - log E_G[exp(s)]`` in nats, its standard error and the weights' ESS.

    Args:
        scores_real: (N,) D's whole-sequence logits ``s`` of held-out real rows.
        scores_fake: (M,) D's whole-sequence logits of fresh generator samples (independent of D's training).
        lengths_real: optional (N,) number of tokens of each real row (symbols plus the EOS that ends it,
            as ``generator_nll`` counts them); adds the gain per token.

    Returns:
        ``gain_nats``: the gain per real sequence; ``gain_se``: its delta-method standard error;
        ``ess``: effective sample size of ``exp(s)`` over the M fakes, in [1, M]; ``ess_frac``: ess / M;
        with ``lengths_real``, also ``gain_nats_per_token`` and ``gain_se_per_token`` (the sequence
        numbers divided by the mean real length: the total gain over the real rows per real token).
        All plain floats. The SE needs N >= 2 and M >= 2 (0.0 for a single row's variance term).

    Raises:
        ValueError: a scores array that is not a non-empty 1-D array of finite numbers, or ``lengths_real``
            not of shape (N,) with positive values.
    """
    sr = _as_scores("scores_real", scores_real)  # (N,)
    sf = _as_scores("scores_fake", scores_fake)  # (M,)
    n, m = sr.numel(), sf.numel()
    log_z = float(torch.logsumexp(sf, dim=0)) - math.log(m)  # log mean exp(s_fake)
    gain = float(sr.mean()) - log_z
    w = torch.exp(sf - sf.max())  # (M,) weights scaled to max 1 (every ratio below is scale-free)
    w_mean = float(w.mean())
    var_real = float(sr.var(unbiased=True)) if n > 1 else 0.0
    var_w_rel = float(w.var(unbiased=True)) / (w_mean * w_mean) if m > 1 else 0.0  # Var(w) / E[w]^2
    se = math.sqrt(var_real / n + var_w_rel / m)
    ess = float(w.sum() ** 2 / (w * w).sum())
    out = {"gain_nats": gain, "gain_se": se, "ess": ess, "ess_frac": ess / m}
    if lengths_real is not None:
        lengths = torch.as_tensor(lengths_real).detach().double().cpu()
        if lengths.shape != sr.shape or not bool((lengths > 0).all()):
            raise ValueError(
                f"lengths_real must be (N,) = ({n},) positive token counts, got shape {tuple(lengths.shape)}"
                f"{'' if lengths.shape != sr.shape else ' with values <= 0'}; pass (rows != PAD).sum(1) of the "
                f"real rows, or None for the per-sequence numbers only."
            )
        mean_len = float(lengths.mean())
        out["gain_nats_per_token"] = gain / mean_len
        out["gain_se_per_token"] = se / mean_len
    return out
