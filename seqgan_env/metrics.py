"""Sample-quality metrics: pure functions of lists of strings.

uniqueness: distinct samples / samples. novelty: fraction of samples not in the
training set. empty_fraction: fraction of empty samples. A character bigram model
(add-k smoothed, with start/end symbols) fitted on held-out text scores samples by
their mean per-character negative log-likelihood, end symbol included.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Iterable, Sequence

START, END = "\x02", "\x03"


def uniqueness(samples: Sequence[str]) -> float:
    """Distinct samples / number of samples (1.0 for an empty list)."""
    return len(set(samples)) / len(samples) if samples else 1.0


def novelty(samples: Sequence[str], training: Iterable[str]) -> float:
    """Fraction of samples that are not in ``training``."""
    seen = set(training)
    return sum(s not in seen for s in samples) / len(samples) if samples else 1.0


def empty_fraction(samples: Sequence[str]) -> float:
    return sum(s == "" for s in samples) / len(samples) if samples else 0.0


@dataclass(frozen=True)
class BigramModel:
    """Add-k smoothed character bigram model: P(b | a) = (c(a,b) + k) / (c(a) + k |V|)."""

    counts: dict
    context_counts: dict
    alphabet: frozenset
    k: float

    @classmethod
    def fit(cls, texts: Iterable[str], k: float = 0.1) -> "BigramModel":
        if k <= 0:
            raise ValueError(f"k={k} must be > 0 (add-k smoothing keeps unseen bigrams finite).")
        pairs: Counter = Counter()
        ctx: Counter = Counter()
        alphabet = {END}
        for t in texts:
            chars = [START, *t, END]
            alphabet.update(t)
            for a, b in zip(chars, chars[1:]):
                pairs[(a, b)] += 1
                ctx[a] += 1
        return cls(dict(pairs), dict(ctx), frozenset(alphabet), k)

    def log_prob(self, a: str, b: str) -> float:
        v = len(self.alphabet)
        return math.log((self.counts.get((a, b), 0) + self.k) / (self.context_counts.get(a, 0) + self.k * v))

    def nll_per_char(self, texts: Sequence[str]) -> float:
        """Mean negative log-likelihood per predicted symbol (characters + end), in nats."""
        total, n = 0.0, 0
        for t in texts:
            chars = [START, *t, END]
            for a, b in zip(chars, chars[1:]):
                total -= self.log_prob(a, b)
                n += 1
        return total / n if n else float("nan")


def sample_report(samples: Sequence[str], training: Iterable[str], bigram: BigramModel) -> dict[str, float]:
    """The numbers `seqgan-env train` and `eval` print for a set of samples."""
    return {
        "uniqueness": uniqueness(samples),
        "novelty": novelty(samples, training),
        "empty_fraction": empty_fraction(samples),
        "bigram_nll": bigram.nll_per_char(samples),
        "mean_length": sum(map(len, samples)) / len(samples) if samples else 0.0,
    }
