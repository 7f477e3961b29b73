"""Sample-quality metrics: pure functions of lists of strings.

uniqueness: distinct samples / samples. novelty: fraction of samples not in the
training set. empty_fraction: fraction of empty samples. A character bigram model
(add-k smoothed, with start/end symbols) fitted on held-out text scores samples by
their mean per-character negative log-likelihood, end symbol included.

Sequence metrics (below the bigram model) take samples as sequences of hashable
tokens: a ``str`` (its characters are the tokens) or a list/tuple of ints (oracle
tokens). 1-D tensors/arrays are converted with ``tolist()``.

* ``bleu``: mean over hypotheses of sentence BLEU-n against the whole reference
  set (multi-reference clipping, brevity penalty against the closest reference
  length, uniform weights over 1..n), as in SeqGAN / Texygen. Smoothing is fixed:
  ``BLEU_SMOOTHING`` (NLTK ``SmoothingFunction().method1``, epsilon 0.1).
* ``self_bleu``: each sample scored against all OTHER samples (diversity; lower is
  more diverse).
* ``length_distance``: total variation distance between length histograms, in [0, 1].
* ``ngram_jsd``: Jensen-Shannon distance (sqrt of the base-2 divergence, in [0, 1])
  between the n-gram distributions of two sample sets.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from seqgan_env.utils.validation import check_int

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


#: Keys of :func:`sample_report` that read samples as characters (meaningless for integer tokens).
CHARACTER_METRICS = ("bigram_nll", "mean_length")


def sample_report(samples: Sequence[str], training: Iterable[str], bigram: BigramModel) -> dict[str, float]:
    """The numbers `seqgan-env train` and `eval` print for a set of samples."""
    return {
        "uniqueness": uniqueness(samples),
        "novelty": novelty(samples, training),
        "empty_fraction": empty_fraction(samples),
        "bigram_nll": bigram.nll_per_char(samples),
        "mean_length": sum(map(len, samples)) / len(samples) if samples else 0.0,
    }


# --------------------------------------------------------------------------- n-grams
Token = Hashable
BLEU_EPSILON = 0.1
#: The one smoothing method used by ``bleu`` / ``self_bleu``; print it beside results.
BLEU_SMOOTHING = "epsilon (NLTK method1: a zero n-gram match count becomes 0.1)"


def _as_seq(sample: Any, where: str) -> Sequence[Token]:
    """A sample as a sequence of hashable tokens (str, list, tuple; tensors via tolist)."""
    if hasattr(sample, "tolist") and not isinstance(sample, (str, list, tuple)):
        sample = sample.tolist()
    if isinstance(sample, (str, list, tuple)):
        return sample
    raise TypeError(
        f"{where} is {type(sample).__name__}; expected a str or a list of hashable tokens; "
        f"fix: decode token ids first (tokenizer.decode or a list of ints)"
    )


def _as_seqs(samples: Iterable[Any], name: str) -> list[Sequence[Token]]:
    if isinstance(samples, str):
        raise TypeError(f"{name} must be a list of samples, got a single str; fix: wrap it: [{name}]")
    return [_as_seq(s, f"{name}[{i}]") for i, s in enumerate(samples)]


def ngram_counts(tokens: Sequence[Token], n: int) -> Counter:
    """Counter of the n-grams (tuples of n tokens) of one sequence; empty if len < n.

    ``ngram_counts("abab", 2) == Counter({("a", "b"): 2, ("b", "a"): 1})``.
    """
    check_int("n", n, 1)
    tokens = _as_seq(tokens, "tokens")
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def _check_bleu_args(max_n: int, smoothing: str) -> None:
    check_int("max_n", max_n, 1)
    if smoothing != "epsilon":
        raise ValueError(
            f"smoothing={smoothing!r} is not supported: BLEU here uses one fixed method so "
            f"numbers stay comparable; fix: pass smoothing='epsilon' ({BLEU_SMOOTHING})"
        )


def _closest_length(hyp_len: int, ref_lengths: Iterable[int]) -> int:
    """The reference length closest to ``hyp_len`` (the shorter one on a tie)."""
    return min(ref_lengths, key=lambda r: (abs(r - hyp_len), r))


def _sentence_bleus(
    matches: Sequence[int], totals: Sequence[int], hyp_len: int, ref_len: int, ns: Sequence[int]
) -> list[float]:
    """BLEU-n for each n in ``ns`` from clipped match counts and n-gram totals (index k = (k+1)-grams).

    p_k = m_k / max(1, t_k), with m_k = 0 replaced by epsilon; 0 if no unigram matches.
    BP = 1 if hyp_len > ref_len else exp(1 - ref_len / hyp_len) (0 for an empty hypothesis).
    """
    if hyp_len == 0 or matches[0] == 0:
        return [0.0 for _ in ns]
    bp = 1.0 if hyp_len > ref_len else math.exp(1.0 - ref_len / hyp_len)
    logs = [math.log((m if m > 0 else BLEU_EPSILON) / max(1, t)) for m, t in zip(matches, totals)]
    return [bp * math.exp(sum(logs[:n]) / n) for n in ns]


def _max_ref_counts(refs: Sequence[Sequence[Token]], max_n: int) -> list[dict]:
    """For k = 1..max_n: n-gram -> the largest count of it in any one reference."""
    table: list[dict] = [{} for _ in range(max_n)]
    for ref in refs:
        for k in range(max_n):
            best = table[k]
            for g, c in ngram_counts(ref, k + 1).items():
                if c > best.get(g, 0):
                    best[g] = c
    return table


def _bleu_many(hyps, refs, ns: Sequence[int]) -> list[float]:
    """Mean over hypotheses of BLEU-n against all references, for each n in ``ns``."""
    hyps, refs = _as_seqs(hyps, "hypotheses"), _as_seqs(refs, "references")
    if not hyps or not refs:
        raise ValueError(
            f"BLEU needs at least one hypothesis and one reference, got {len(hyps)} and {len(refs)}"
        )
    max_n = max(ns)
    table = _max_ref_counts(refs, max_n)
    ref_lengths = sorted({len(r) for r in refs})
    sums = [0.0] * len(ns)
    for hyp in hyps:
        matches, totals = [], []
        for k in range(max_n):
            counts = ngram_counts(hyp, k + 1)
            matches.append(sum(min(c, table[k].get(g, 0)) for g, c in counts.items()))
            totals.append(sum(counts.values()))
        scores = _sentence_bleus(matches, totals, len(hyp), _closest_length(len(hyp), ref_lengths), ns)
        sums = [a + b for a, b in zip(sums, scores)]
    return [x / len(hyps) for x in sums]


def bleu(
    hypotheses: Sequence[Sequence[Token]],
    references: Sequence[Sequence[Token]],
    max_n: int = 4,
    smoothing: str = "epsilon",
) -> float:
    """Mean over hypotheses of sentence BLEU-``max_n``, each against ALL references.

    Per hypothesis h: p_k = sum_g min(c_h(g), max_r c_r(g)) / max(1, #k-grams of h)
    for k = 1..max_n (a zero numerator becomes 0.1: ``BLEU_SMOOTHING``; no unigram
    match at all gives 0); BLEU = BP * exp(mean_k log p_k), BP = 1 if |h| > r else
    exp(1 - r/|h|), r the reference length closest to |h| (shorter on ties).
    Result in [0, 1].
    """
    _check_bleu_args(max_n, smoothing)
    return _bleu_many(hypotheses, references, [max_n])[0]


def bleu_n_table(
    hypotheses: Sequence[Sequence[Token]],
    references: Sequence[Sequence[Token]],
    ns: Sequence[int] = (2, 3, 4, 5),
) -> dict[str, float]:
    """``{"BLEU-2": ..., ..., "BLEU-5": ...}`` (see ``bleu``), n-grams counted once for all n."""
    for n in ns:
        _check_bleu_args(n, "epsilon")
    return dict(zip((f"BLEU-{n}" for n in ns), _bleu_many(hypotheses, references, list(ns))))


def format_bleu_table(table: dict[str, float]) -> str:
    """One line for logs, naming the smoothing: ``BLEU-2 0.812  BLEU-3 ...  (smoothing: ...)``."""
    return "  ".join(f"{k} {v:.3f}" for k, v in table.items()) + f"  (smoothing: {BLEU_SMOOTHING})"


def self_bleu(
    samples: Sequence[Sequence[Token]], max_n: int = 4, smoothing: str = "epsilon"
) -> float:
    """Mean over samples of ``bleu([s_i], samples without s_i, max_n)``: never against itself.

    Only index i is left out: an exact duplicate elsewhere in ``samples`` still
    counts (it is another sample). Needs at least 2 samples. Cost is linear in the
    total number of n-grams: per n-gram the largest count, how many samples reach
    it, and the second largest count are kept, which gives the max over the others.
    """
    _check_bleu_args(max_n, smoothing)
    seqs = _as_seqs(samples, "samples")
    if len(seqs) < 2:
        raise ValueError(
            f"self_bleu needs at least 2 samples (each is scored against the others), got {len(seqs)}"
        )
    counts = [[ngram_counts(s, k + 1) for k in range(max_n)] for s in seqs]
    # per order k: n-gram -> [top count, #samples with it, second count (< top)]
    stats: list[dict] = [{} for _ in range(max_n)]
    for per_sample in counts:
        for k, cnt in enumerate(per_sample):
            st = stats[k]
            for g, c in cnt.items():
                top = st.get(g)
                if top is None:
                    st[g] = [c, 1, 0]
                elif c > top[0]:
                    st[g] = [c, 1, top[0]]
                elif c == top[0]:
                    top[1] += 1
                elif c > top[2]:
                    top[2] = c
    lengths = Counter(len(s) for s in seqs)
    total = 0.0
    for s, per_sample in zip(seqs, counts):
        matches, totals = [], []
        for k, cnt in enumerate(per_sample):
            m = 0
            for g, c in cnt.items():
                top, n_top, second = stats[k][g]
                others = second if (c == top and n_top == 1) else top
                m += min(c, others)
            matches.append(m)
            totals.append(sum(cnt.values()))
        other_lengths = [length for length, c in lengths.items() if c - (length == len(s)) > 0]
        ref_len = _closest_length(len(s), other_lengths)
        total += _sentence_bleus(matches, totals, len(s), ref_len, [max_n])[0]
    return total / len(seqs)


# ------------------------------------------------------------------ distributions
def length_distance(samples: Sequence[Sequence[Token]], references: Sequence[Sequence[Token]]) -> float:
    """Total variation distance 0.5 * sum_l |P(len = l) - Q(len = l)| between length histograms, in [0, 1]."""
    p = _normalized(Counter(len(s) for s in _as_seqs(samples, "samples")), "samples")
    q = _normalized(Counter(len(s) for s in _as_seqs(references, "references")), "references")
    return 0.5 * sum(abs(p.get(k, 0.0) - q.get(k, 0.0)) for k in p.keys() | q.keys())


def ngram_jsd(samples: Sequence[Sequence[Token]], references: Sequence[Sequence[Token]], n: int = 2) -> float:
    """Jensen-Shannon distance between the n-gram distributions of two sample sets, in [0, 1].

    Each distribution is the pooled count of the n-grams inside every sequence (no
    start/end padding; sequences shorter than n add nothing), normalized. Returns
    sqrt(JSD) with JSD = 0.5 KL(P||M) + 0.5 KL(Q||M), M = (P+Q)/2, logs base 2:
    0 for identical distributions, 1 for disjoint supports. ValueError if a side
    has no n-gram at all.
    """
    p = _normalized(_pooled(_as_seqs(samples, "samples"), n), f"samples (no {n}-grams)")
    q = _normalized(_pooled(_as_seqs(references, "references"), n), f"references (no {n}-grams)")
    jsd = 0.0
    for g in p.keys() | q.keys():
        a, b = p.get(g, 0.0), q.get(g, 0.0)
        m = 0.5 * (a + b)
        if a > 0:
            jsd += 0.5 * a * math.log2(a / m)
        if b > 0:
            jsd += 0.5 * b * math.log2(b / m)
    return math.sqrt(min(1.0, max(0.0, jsd)))


def _pooled(seqs: Sequence[Sequence[Token]], n: int) -> Counter:
    total: Counter = Counter()
    for s in seqs:
        total.update(ngram_counts(s, n))
    return total


def _normalized(counts: Counter, name: str) -> dict:
    z = sum(counts.values())
    if z == 0:
        raise ValueError(
            f"{name}: nothing to build a distribution from (empty input); fix: pass non-empty "
            f"samples, or a smaller n for n-gram metrics"
        )
    return {k: v / z for k, v in counts.items()}
