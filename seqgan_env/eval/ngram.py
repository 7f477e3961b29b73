"""A character n-gram language model, the independent judge of sample quality on text data.

Fitted on the training split only, it scores generated samples (lower NLL per
character = more data-like) without sharing anything with the generator or the
discriminator. Interpolated absolute discounting (Ney, Essen & Kneser 1994):

    P(c | h) = max(count(h, c) - d, 0) / count(h) + d * N1+(h) / count(h) * P(c | h[1:])

recursing down to the uniform distribution over the alphabet (characters seen in
training plus the end symbol); an unseen history falls through to the shorter one.
Every probability is > 0 and, for each history, they sum to 1 over the alphabet.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from seqgan_env.utils.validation import check_int

START, END = "\x02", "\x03"  # padding symbol of the first histories, end-of-text symbol


@dataclass
class CharNgramModel:
    """Character ``order``-gram model; build it with :meth:`fit`."""

    order: int
    discount: float
    alphabet: frozenset
    counts: dict  # history (str) -> Counter of next symbols
    totals: dict  # history -> total count
    distinct: dict  # history -> number of distinct next symbols

    @classmethod
    def fit(cls, texts: Iterable[str], order: int = 4, discount: float = 0.75) -> "CharNgramModel":
        """Count every history of length 0..order-1 in ``texts`` (each padded with START, ended by END)."""
        check_int("order", order, 1, "4 is a 4-gram model")
        if not 0 < discount < 1:
            raise ValueError(f"discount={discount!r} is invalid: it must be in (0, 1), e.g. 0.75.")
        counts: dict[str, Counter] = defaultdict(Counter)
        alphabet = {END}
        n_texts = 0
        for text in texts:
            n_texts += 1
            alphabet.update(text)
            chars = START * (order - 1) + text + END
            for i in range(order - 1, len(chars)):
                for k in range(order):  # histories of length 0 .. order-1
                    counts[chars[i - k:i]][chars[i]] += 1
        if n_texts == 0:
            raise ValueError("CharNgramModel.fit got no texts; fix: pass the training split.")
        counts = dict(counts)
        return cls(order, discount, frozenset(alphabet), counts,
                   {h: sum(c.values()) for h, c in counts.items()}, {h: len(c) for h, c in counts.items()})

    def prob(self, history: str, char: str) -> float:
        """P(char | history), history of any length (only the last order-1 symbols are used)."""
        history = history[-(self.order - 1):] if self.order > 1 else ""
        p = 1.0 / len(self.alphabet)
        for k in range(0, len(history) + 1):  # from the empty history up to the longest
            h = history[len(history) - k:]
            total = self.totals.get(h)
            if not total:
                break  # a longer history containing an unseen one is unseen too
            c = self.counts[h].get(char, 0)
            p = max(c - self.discount, 0.0) / total + self.discount * self.distinct[h] / total * p
        return p

    def nll_per_char(self, texts: Sequence[str]) -> float:
        """Mean -log P per predicted symbol (characters + END), in nats; NaN for no texts."""
        total, n = 0.0, 0
        for text in texts:
            chars = START * (self.order - 1) + text + END
            for i in range(self.order - 1, len(chars)):
                total -= math.log(self.prob(chars[i - self.order + 1:i] if self.order > 1 else "", chars[i]))
                n += 1
        return total / n if n else float("nan")
