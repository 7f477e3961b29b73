"""BLEU, self-BLEU, length distance and n-gram Jensen-Shannon distance on hand-computed examples."""

from __future__ import annotations

import math
import random
from collections import Counter

import pytest

from seqgan_env.eval.metrics import (
    BLEU_EPSILON,
    BLEU_SMOOTHING,
    bleu,
    bleu_n_table,
    format_bleu_table,
    length_distance,
    ngram_counts,
    ngram_jsd,
    self_bleu,
)


@pytest.mark.parametrize(
    "tokens,n,expected",
    [
        ("abab", 2, Counter({("a", "b"): 2, ("b", "a"): 1})),
        ([7, 7, 7], 2, Counter({(7, 7): 2})),
        ("ab", 3, Counter()),
        ((1, 2, 3), 1, Counter({(1,): 1, (2,): 1, (3,): 1})),
    ],
)
def test_ngram_counts(tokens, n, expected):
    assert ngram_counts(tokens, n) == expected


def test_bleu2_hand_computed():
    # hyp "abcx" vs refs {"abcd", "zzzz"}: unigrams a,b,c match (3/4), bigrams ab,bc (2/3);
    # len 4 = closest ref len 4 -> BP 1.
    expected = math.exp(0.5 * (math.log(3 / 4) + math.log(2 / 3)))
    assert bleu(["abcx"], ["abcd", "zzzz"], max_n=2) == pytest.approx(expected)


def test_bleu_clips_by_max_count_in_one_reference():
    # hyp "aaaa": unigram "a" appears at most 2 times in one ref ("aabb" or "bbaa"), not 4.
    # p1 = 2/4; bigram "aa" at most once per ref: p2 = 1/3.
    expected = math.sqrt(2 / 4 * 1 / 3)
    assert bleu(["aaaa"], ["aabb", "bbaa"], max_n=2) == pytest.approx(expected)


def test_bleu_brevity_penalty():
    # hyp "ab" (c=2) against ref "abcd" (r=4): p1 = p2 = 1, BP = exp(1 - 4/2).
    assert bleu(["ab"], ["abcd"], max_n=2) == pytest.approx(math.exp(1 - 4 / 2))
    # closest reference length wins: with a ref of length 2 as well there is no penalty
    assert bleu(["ab"], ["abcd", "abzz"[:2]], max_n=2) == pytest.approx(1.0)
    # longer hypothesis: no penalty (c = 4 > r = 3); clipping: a and b up to 2 (one ref each)
    assert bleu(["abab"], ["aab", "bba"], max_n=1) == pytest.approx(1.0)
    assert bleu(["abab"], ["abb"], max_n=1) == pytest.approx(3 / 4)


def test_bleu_epsilon_smoothing_and_zero_unigrams():
    # hyp "abxy" vs "abcd": p1 = 2/4, p2: "ab" matches -> 1/3, p3: no match -> eps/2.
    expected = math.exp((math.log(2 / 4) + math.log(1 / 3) + math.log(BLEU_EPSILON / 2)) / 3)
    assert bleu(["abxy"], ["abcd"], max_n=3) == pytest.approx(expected)
    assert bleu(["xyz"], ["abc"], max_n=2) == 0.0  # no unigram match at all
    assert bleu([[1, 2, 3]], [[1, 2, 3], [4]], max_n=3) == pytest.approx(1.0)  # int tokens


def test_bleu_averages_over_hypotheses():
    single = [bleu([h], ["abcd"], max_n=2) for h in ("abcd", "abcx")]
    assert bleu(["abcd", "abcx"], ["abcd"], max_n=2) == pytest.approx(sum(single) / 2)


def test_smoothing_name_exposed_and_fixed():
    assert "epsilon" in BLEU_SMOOTHING and BLEU_EPSILON == 0.1
    table = bleu_n_table(["abcdef"], ["abcdef"])
    assert list(table) == ["BLEU-2", "BLEU-3", "BLEU-4", "BLEU-5"]
    assert all(v == pytest.approx(1.0) for v in table.values())
    # a hypothesis shorter than n has no n-grams: p_n = epsilon / 1 (NLTK method1 behaviour)
    assert bleu_n_table(["abcd"], ["abcd"])["BLEU-5"] == pytest.approx(BLEU_EPSILON ** (1 / 5))
    line = format_bleu_table(table)
    print(line)
    assert "BLEU-5 1.000" in line and BLEU_SMOOTHING in line
    with pytest.raises(ValueError, match="smoothing='floor'"):
        bleu(["a"], ["a"], smoothing="floor")


def test_bleu_n_table_matches_bleu():
    hyps, refs = ["abcab", "bca", "cc"], ["abcabc", "bcab", "ca"]
    table = bleu_n_table(hyps, refs)
    for n in (2, 3, 4, 5):
        assert table[f"BLEU-{n}"] == pytest.approx(bleu(hyps, refs, max_n=n))


def test_self_bleu_excludes_the_scored_sample():
    samples = ["abcd", "abcd", "abcx"]
    # "abcd" vs others {"abcd", "abcx"}: 1. "abcx" vs {"abcd", "abcd"}: sqrt(3/4 * 2/3).
    expected = (1 + 1 + math.sqrt(3 / 4 * 2 / 3)) / 3
    assert self_bleu(samples, max_n=2) == pytest.approx(expected)
    # scoring each sample against a set that includes itself would give 1.0
    assert bleu(samples, samples, max_n=2) == pytest.approx(1.0)
    assert self_bleu(samples, max_n=2) != pytest.approx(1.0)


def test_self_bleu_unique_sample_gets_nothing_from_itself():
    # "xyz" shares nothing with the others -> 0; the two "ab" score 1 against each other.
    assert self_bleu(["ab", "ab", "xyz"], max_n=2) == pytest.approx(2 / 3)


@pytest.mark.parametrize("seed", range(4))
def test_self_bleu_equals_leave_one_out_bleu(seed):
    rng = random.Random(seed)
    samples = ["".join(rng.choice("abc") for _ in range(rng.randint(1, 6))) for _ in range(12)]
    brute = sum(bleu([s], samples[:i] + samples[i + 1 :], max_n=3) for i, s in enumerate(samples)) / len(samples)
    assert self_bleu(samples, max_n=3) == pytest.approx(brute)


def test_self_bleu_needs_two_samples():
    with pytest.raises(ValueError, match="at least 2 samples"):
        self_bleu(["abc"])


@pytest.mark.parametrize(
    "samples,refs,expected",
    [
        (["ab", "cd"], ["xy", "zw"], 0.0),  # same lengths
        (["a"], ["ab"], 1.0),  # disjoint lengths
        (["a", "ab"], ["ab", "ab"], 0.5),  # P = {1: .5, 2: .5}, Q = {2: 1}
        ([[1, 2, 3], [1]], ["xyz", "xyz", "xyz", "q"], 0.25),  # {3: .5, 1: .5} vs {3: .75, 1: .25}
    ],
)
def test_length_distance(samples, refs, expected):
    assert length_distance(samples, refs) == pytest.approx(expected)


@pytest.mark.parametrize(
    "samples,refs,expected",
    [
        (["abab"], ["ab", "ba", "ab"], 0.0),  # both {ab: 2/3, ba: 1/3}
        (["ab"], ["cd"], 1.0),  # disjoint supports
        ([[1, 2]], [[3, 4], [1, 2]], None),  # hand value below
    ],
)
def test_ngram_jsd(samples, refs, expected):
    if expected is None:
        # P = {12: 1}, Q = {34: .5, 12: .5}, M = {12: .75, 34: .25}
        kl_p = 1 * math.log2(1 / 0.75)
        kl_q = 0.5 * math.log2(0.5 / 0.75) + 0.5 * math.log2(0.5 / 0.25)
        expected = math.sqrt(0.5 * kl_p + 0.5 * kl_q)
    assert ngram_jsd(samples, refs, n=2) == pytest.approx(expected, abs=1e-12)


def test_ngram_jsd_unigrams_and_empty():
    assert ngram_jsd(["aabb"], ["ab"], n=1) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="samples"):
        ngram_jsd(["a"], ["ab"], n=2)
