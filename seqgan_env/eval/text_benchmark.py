"""The real-text protocol of the text-GAN literature (Texygen, LeakGAN, RelGAN on MS COCO captions).

Against a held-out test file, never trained on:

* ``BLEU-2..5``: each sample (whitespace-split words) against ALL test captions as references
  (``seqgan_env.eval.metrics.bleu``: multi-reference clipping, closest-length brevity penalty,
  uniform weights, smoothing ``BLEU_SMOOTHING``), mean over samples: quality.
* ``self_BLEU-2..5``: each sample against the other samples: diversity (lower is more diverse).
* ``nll_test``: the generator's mean NLL per token of the test captions (``generator_nll``:
  teacher forcing, BOS first, EOS scored, raw distribution), in nats per token of the run's
  tokenizer; ``nll_test_per_word``: the same total over words plus one end per caption, a number
  that does not depend on the tokenizer (char, BPE and word runs compare on it).
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from seqgan_env.data.tokenizer import PAD_ID
from seqgan_env.eval.likelihood import generator_nll
from seqgan_env.eval.metrics import bleu_n_table, length_distance, ngram_jsd, self_bleu

BLEU_ORDERS = (2, 3, 4, 5)


def words(text: str) -> list[str]:
    """The literature's tokens for BLEU on captions: whitespace-separated words, punctuation attached."""
    return text.split()


def held_out_nll(generator: torch.nn.Module, tokenizer: Any, test_texts: Sequence[str], batch_size: int = 128
             ) -> dict[str, float]:
    """``nll_test`` (nats/token), ``nll_test_per_word`` (nats per word, one end per caption),
    ``test_tokens`` and ``test_skipped`` of ``test_texts`` under ``generator`` (see module docstring).

    Every caption is scored whole: rows are as long as the longest test caption plus its EOS,
    which may exceed the run's ``max_length`` (the raw distribution has no length limit). A
    caption the tokenizer cannot encode (a character tokenizer meeting a new character) is
    skipped and counted in ``test_skipped``.
    """
    kept, lengths = [], []
    for t in test_texts:
        try:
            lengths.append(len(tokenizer.encode(t)))
        except ValueError:  # UnknownSymbolError of the character tokenizer
            continue
        kept.append(t)
    skipped = len(test_texts) - len(kept)
    test_texts = kept
    if not test_texts:
        raise ValueError(f"held_out_nll: none of the {skipped} test texts can be encoded with this tokenizer; fix: "
                         f"pass the test file of the run's data, or train with a subword tokenizer (--tokenizer bpe).")
    order = sorted(range(len(test_texts)), key=lengths.__getitem__)  # similar lengths share a batch: less padding
    total, count = 0.0, 0
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        rows = tokenizer.encode_batch([test_texts[i] for i in idx], max(lengths[i] for i in idx) + 1)  # (n, L+1)
        n = int((rows != PAD_ID).sum())
        total += generator_nll(generator, rows, batch_size=batch_size) * n
        count += n
    n_words = sum(len(words(t)) + 1 for t in test_texts)
    return {"nll_test": total / count, "nll_test_per_word": total / n_words, "test_tokens": float(count),
            "test_skipped": float(skipped)}


def sample_scores(samples: Sequence[str], test_texts: Sequence[str]) -> dict[str, float]:
    """BLEU-2..5 against the test captions, self-BLEU-2..5, word-length and word-bigram distances."""
    hyps = [words(s) for s in samples]
    refs = [words(t) for t in test_texts]
    out: dict[str, float] = dict(bleu_n_table(hyps, refs, BLEU_ORDERS))
    for n in BLEU_ORDERS:
        out[f"self_BLEU-{n}"] = self_bleu(hyps, max_n=n) if len(hyps) >= 2 else float("nan")
    out["length_distance"] = length_distance(hyps, refs)
    nonempty = [h for h in hyps if len(h) >= 2]
    out["bigram_jsd"] = ngram_jsd(nonempty, refs, n=2) if nonempty else 1.0
    out["mean_words"] = sum(map(len, hyps)) / len(hyps) if hyps else 0.0
    return out


def held_out_report(generator: torch.nn.Module, tokenizer: Any, samples: Sequence[str],
                     test_texts: Sequence[str]) -> dict[str, float]:
    """:func:`sample_scores` of ``samples`` plus :func:`held_out_nll` of the generator on ``test_texts``."""
    return {**sample_scores(samples, test_texts), **held_out_nll(generator, tokenizer, test_texts)}


__all__ = ["BLEU_ORDERS", "sample_scores", "held_out_nll", "held_out_report", "words"]
