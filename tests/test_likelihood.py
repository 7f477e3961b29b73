"""generator_nll (NLL-test) against a hand-computed example and its contract."""

import math

import pytest
import torch

from seqgan_env.eval.likelihood import generator_nll


class FixedLM(torch.nn.Module):
    """Next-token distribution depends only on the previous token: table[prev] (V,) logits."""

    def __init__(self, table):
        super().__init__()
        self.table = torch.nn.Parameter(torch.as_tensor(table, dtype=torch.float32))
        self.seen_training = None

    def forward(self, input_ids):
        self.seen_training = self.training
        return type("Out", (), {"logits": self.table[input_ids]})()  # (N, T, V)


def test_hand_computed_nll_excludes_pad():
    V = 4  # PAD=0 BOS=1 EOS=2, symbol 3
    table = torch.zeros(V, V)
    table[1] = torch.log(torch.tensor([1e-9, 1e-9, 0.25, 0.75]))  # after BOS: EOS 0.25, symbol 0.75
    table[3] = torch.log(torch.tensor([1e-9, 1e-9, 0.5, 0.5]))  # after symbol: EOS 0.5, symbol 0.5
    lm = FixedLM(table)
    seqs = torch.tensor([[3, 2, 0], [3, 3, 2]])  # tokens: 3 real + PAD, and 3 real
    expected = -(math.log(0.75) + math.log(0.5) + math.log(0.75) + math.log(0.5) + math.log(0.5)) / 5
    lm.train()
    assert generator_nll(lm, seqs, batch_size=1) == pytest.approx(expected, abs=1e-5)
    assert lm.seen_training is False and lm.training is True  # scored in eval mode, mode restored


@pytest.mark.parametrize("bad, match", [(torch.zeros(3), "shape"), (torch.zeros(2, 3), "dtype"), (torch.zeros((0, 3), dtype=torch.long), "shape")])
def test_bad_sequences_raise(bad, match):
    lm = FixedLM(torch.zeros(4, 4))
    with pytest.raises(ValueError, match=match):
        generator_nll(lm, bad)


def test_all_pad_raises():
    with pytest.raises(ValueError, match="only PAD"):
        generator_nll(FixedLM(torch.zeros(4, 4)), torch.zeros(2, 3, dtype=torch.long))


@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.0])
def test_temperature_scores_the_tempered_distribution(temperature):
    V = 4
    table = torch.tensor([[0.0, 0.0, 0.3, -0.2]] * V)  # the same next-token logits after every token
    seqs = torch.tensor([[3, 2], [2, 0]])  # 3 real tokens
    p = torch.softmax(table[0] / temperature, 0)
    expected = -(math.log(p[3]) + math.log(p[2]) + math.log(p[2])) / 3
    assert generator_nll(FixedLM(table), seqs, temperature=temperature) == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize("temperature", [0, -1.0, float("nan")])
def test_bad_temperature_raises(temperature):
    with pytest.raises(ValueError, match="temperature"):
        generator_nll(FixedLM(torch.zeros(4, 4)), torch.tensor([[3, 2]]), temperature=temperature)
