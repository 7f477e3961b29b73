"""Is the discriminator informative? Held-out AUC and calibration of its whole-sequence scores.

A discriminator whose reward is to help the generator must separate real rows it
has not trained on from generated rows it has not trained on. The numbers here are
computed on exactly such rows, with D in eval mode:

* ``auc``: ROC AUC of P(real) for held-out real rows against fresh generated rows
  (0.5: chance, 1.0: perfect, ties count half: the Mann-Whitney U statistic / n_r n_f).
* ``ece``: expected calibration error of P(real) as the probability of the label
  "real" over the pooled rows (equal-width bins), so an informative but
  over-confident D shows as high AUC with high ECE.
* ``real_mean`` / ``fake_mean``: mean P(real) of each group.
* with whole-sequence logits: ``gain_nats`` (and its ``gain_se``, ``ess``, per-token numbers):
  what D knows in nats, the residual-EBM gain E_real[s] - log E_G[exp(s)]
  (:func:`seqgan_env.eval.density_ratio.d_gain_nats`).
"""

from __future__ import annotations

from typing import Callable

import torch

from seqgan_env.envs.spec import PAD_ID
from seqgan_env.eval.density_ratio import d_gain_nats


def roc_auc(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> float:
    """P(score of a random real row > that of a random fake row), ties counted half.

    real_scores: (Nr,), fake_scores: (Nf,), any real-valued scores (logits or probabilities).
    """
    r, f = real_scores.detach().double().flatten().cpu(), fake_scores.detach().double().flatten().cpu()
    if r.numel() == 0 or f.numel() == 0:
        raise ValueError(f"roc_auc needs real and fake scores, got {r.numel()} real and {f.numel()} fake.")
    scores = torch.cat([r, f])  # (N,)
    order = scores.argsort()
    ranks = torch.empty_like(scores)
    ranks[order] = torch.arange(1, scores.numel() + 1, dtype=torch.double)
    uniq, inverse, counts = torch.unique(scores, return_inverse=True, return_counts=True)
    # average rank of tied values: sum of their ranks / count
    rank_sum = torch.zeros(uniq.numel(), dtype=torch.double).index_add_(0, inverse, ranks)
    ranks = (rank_sum / counts.double())[inverse]
    n_r, n_f = r.numel(), f.numel()
    u = float(ranks[:n_r].sum()) - n_r * (n_r + 1) / 2.0
    return u / (n_r * n_f)


def expected_calibration_error(probs: torch.Tensor, labels: torch.Tensor, bins: int = 10) -> float:
    """Sum over equal-width bins of |mean label - mean prob| weighted by the bin's share of rows.

    probs: (N,) in [0, 1]; labels: (N,) 0/1.
    """
    if bins < 1:
        raise ValueError(f"bins={bins!r} is invalid: it must be an int >= 1.")
    p, y = probs.detach().double().flatten().cpu(), labels.detach().double().flatten().cpu()
    if p.numel() == 0 or p.shape != y.shape:
        raise ValueError(f"probs and labels must be non-empty and of one shape, got {tuple(p.shape)} and {tuple(y.shape)}.")
    which = (p * bins).long().clamp(max=bins - 1)  # (N,) bin of each row; p = 1 goes to the last bin
    ece = 0.0
    for b in range(bins):
        sel = which == b
        if bool(sel.any()):
            ece += float(sel.double().mean()) * abs(float(y[sel].mean()) - float(p[sel].mean()))
    return ece


def health_report(
    sequence_probs: Callable[[torch.Tensor], torch.Tensor] | None,
    real: torch.Tensor,
    fake: torch.Tensor,
    sequence_logits: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> dict[str, float]:
    """D on held-out ``real`` (Nr, T) vs fresh ``fake`` (Nf, T): AUC, ECE, mean P(real), and with logits its gain.

    Args:
        sequence_probs: maps (N, T) token rows to (N,) P(real) of each whole sequence (e.g.
            ``Discriminator.sequence_scores``, eval mode without grad); None when ``sequence_logits`` is given.
        real: (Nr, T) held-out real rows (right-padded with PAD).
        fake: (Nf, T) fresh generated rows D never trained on.
        sequence_logits: maps (N, T) rows to (N,) whole-sequence realness logits (e.g.
            ``Discriminator.sequence_logits``); when given, D is run once through it (P(real) is its
            sigmoid) and the gain in nats is added.

    Returns:
        ``{"auc", "ece", "real_mean", "fake_mean"}``, plus with ``sequence_logits`` the keys of
        :func:`~seqgan_env.eval.density_ratio.d_gain_nats` (``gain_nats``, ``gain_se``, ``ess``, ``ess_frac``,
        ``gain_nats_per_token``, ``gain_se_per_token``; tokens are the real rows' non-PAD tokens).

    Raises:
        ValueError: neither scorer given, or empty ``real`` / ``fake``.
    """
    if sequence_probs is None and sequence_logits is None:
        raise ValueError("health_report needs sequence_probs or sequence_logits: pass e.g. "
                         "Discriminator.sequence_scores or Discriminator.sequence_logits.")
    gain: dict[str, float] = {}
    with torch.no_grad():
        if sequence_logits is not None:
            lr = sequence_logits(real).double().cpu()  # (Nr,)
            lf = sequence_logits(fake).double().cpu()  # (Nf,)
            gain = d_gain_nats(lr, lf, lengths_real=(torch.as_tensor(real) != PAD_ID).sum(1).clamp(min=1).cpu())
            pr, pf = torch.sigmoid(lr).float(), torch.sigmoid(lf).float()  # (Nr,), (Nf,)
        else:
            pr = sequence_probs(real).float().cpu()  # (Nr,)
            pf = sequence_probs(fake).float().cpu()  # (Nf,)
    labels = torch.cat([torch.ones_like(pr), torch.zeros_like(pf)])
    return {
        "auc": roc_auc(pr, pf),
        "ece": expected_calibration_error(torch.cat([pr, pf]), labels),
        "real_mean": float(pr.mean()),
        "fake_mean": float(pf.mean()),
        **gain,
    }
