"""Sample-quality metrics on hand-computed examples."""

import math

import pytest

from seqgan_env.eval.metrics import BigramModel, empty_fraction, novelty, sample_report, uniqueness


@pytest.mark.parametrize(
    "samples,expected", [(["ab", "ab", "c", ""], 0.75), ([], 1.0), (["x"], 1.0)]
)
def test_uniqueness(samples, expected):
    assert uniqueness(samples) == expected


def test_novelty_and_empty():
    assert novelty(["ann", "bob", "zed", "zed"], ["ann", "bob"]) == 0.5
    assert empty_fraction(["", "a", "", "b"]) == 0.5


def test_bigram_hand_computed():
    m = BigramModel.fit(["ab"], k=1.0)  # alphabet {a, b, END}: |V| = 3
    # P(a|START) = (1+1)/(1+3), P(b|a) = (1+1)/(1+3), P(END|b) = (1+1)/(1+3)
    assert m.nll_per_char(["ab"]) == pytest.approx(-math.log(0.5))
    # "ba": P(b|START) = 1/4, P(a|b) = 1/4, P(END|a) = 1/4
    assert m.nll_per_char(["ba"]) == pytest.approx(-math.log(0.25))


def test_bigram_rejects_bad_k():
    with pytest.raises(ValueError, match="k=0"):
        BigramModel.fit(["a"], k=0)


def test_report_keys():
    r = sample_report(["ab", "b"], ["ab"], BigramModel.fit(["ab", "b"]))
    assert r["uniqueness"] == 1.0 and r["novelty"] == 0.5 and r["mean_length"] == 1.5
