"""The character n-gram judge: a proper distribution for every history, and it prefers data-like text."""

from __future__ import annotations

import math

import pytest

from seqgan_env.eval.ngram import END, CharNgramModel

TEXTS = ["anna", "hannah", "ann", "nan", "han"]


@pytest.mark.parametrize("order", [1, 2, 3, 4])
@pytest.mark.parametrize("history", ["", "a", "an", "ann", "zzz", "hanna"])
def test_probabilities_sum_to_one(order, history):
    model = CharNgramModel.fit(TEXTS, order=order)
    total = sum(model.prob(history, c) for c in model.alphabet)
    assert total == pytest.approx(1.0, abs=1e-9)
    assert all(model.prob(history, c) > 0 for c in model.alphabet)


def test_unigram_hand_value():
    # order 1: counts over "ab" + END, "a" + END: a:2, b:1, END:2, total 5, 3 distinct; alphabet {a, b, END}
    model = CharNgramModel.fit(["ab", "a"], order=1, discount=0.5)
    assert model.prob("", "a") == pytest.approx((2 - 0.5) / 5 + 0.5 * 3 / 5 / 3)
    assert model.prob("", END) == pytest.approx((2 - 0.5) / 5 + 0.5 * 3 / 5 / 3)


def test_data_like_text_scores_better_than_noise():
    model = CharNgramModel.fit(TEXTS, order=4)
    assert model.nll_per_char(["hanna", "anna"]) < model.nll_per_char(["nnnnn", "hhhh"])
    assert math.isnan(model.nll_per_char([]))


@pytest.mark.parametrize("kwargs,match", [({"order": 0}, "order=0"), ({"discount": 1.5}, "discount=1.5")])
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        CharNgramModel.fit(TEXTS, **kwargs)
