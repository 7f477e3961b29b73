"""MCRolloutScorer: SeqGAN's Monte-Carlo rollout reward, checked against per-prefix loops."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seqgan_env import TokenGenerationVectorEnv
from seqgan_env.envs.spec import BOS_ID, EOS_ID, PAD_ID
from seqgan_env.models.networks import build_generator
from seqgan_env.rewards.mc_rollout import (
    PROB_EPS,
    MCRolloutScorer,
    make_mc_rollout_scorer,
    prob_to_logit,
)
from seqgan_env.rewards.wrappers import DiscriminatorRewardVector, RewardConfig

from .conftest import TINY, tiny_discriminator

V, L = 12, 6


def _generator(seed: int = 0):
    """A tiny Llama with large random weights, so completions depend on the whole prefix
    (at the default init, greedy decoding just repeats the last token)."""
    torch.manual_seed(seed)
    gen = build_generator(TINY, V).eval()
    with torch.no_grad():
        for p in gen.parameters():
            if p.ndim == 2:
                p.normal_(0.0, 0.5)
    return gen


def _tokens() -> torch.Tensor:
    """(3, L): a row ended by EOS, a short unfinished row, a full-length row."""
    return torch.tensor([[3, 4, 5, EOS_ID, 0, 0], [7, 9, 0, 0, 0, 0], [3, 4, 5, 6, 7, 11]])


def _greedy_reference(gen, prefix: list[int], min_length: int) -> list[int]:
    """Greedy completion of one prefix, no cache, whole sequence recomputed every step."""
    seq = list(prefix)
    while len(seq) < L and (not seq or seq[-1] != EOS_ID):
        with torch.no_grad():
            lg = gen(input_ids=torch.tensor([[BOS_ID] + seq])).logits[0, -1].clone()  # (V,)
        lg[PAD_ID] = lg[BOS_ID] = float("-inf")
        if len(seq) < min_length:
            lg[EOS_ID] = float("-inf")
        seq.append(int(lg.argmax()))
    return seq + [PAD_ID] * (L - len(seq))


def test_greedy_completions_and_scores_match_loop_reference():
    gen, disc = _generator(3), tiny_discriminator(V, seed=1)
    scorer = MCRolloutScorer(disc, gen, num_rollouts=2, max_length=L, min_length=2, temperature=0)
    x = _tokens()
    comp, rolled = scorer.sample_rollouts(x)  # (B, T, K, L), (B, T)
    logits = scorer.score_logits(x)  # (B, T)
    assert rolled.tolist() == [[True, True, True, False, False, False], [True, True] + [False] * 4, [True] * 5 + [False]]
    distinct = set()
    for b in range(x.shape[0]):
        for t in range(x.shape[1]):
            if not rolled[b, t]:
                continue
            ref = _greedy_reference(gen, x[b, : t + 1].tolist(), min_length=2)
            distinct.add(tuple(ref))
            for k in range(2):
                assert comp[b, t, k].tolist() == ref, (b, t, k)
            want = disc.sequence_scores(torch.tensor([ref]))[0]
            assert torch.sigmoid(logits[b, t]).item() == pytest.approx(want.item(), abs=1e-5)
    assert len(distinct) > 1  # the reference is not trivially constant


def test_sampled_scores_are_the_mean_over_rollouts_in_batch_time_rollout_order():
    gen, disc = _generator(0), tiny_discriminator(V, seed=2)
    k = 5
    scorer = MCRolloutScorer(disc, gen, num_rollouts=k, max_length=L, min_length=1, seed=7)
    x = _tokens()
    comp, rolled = scorer.sample_rollouts(x)  # (B, T, K, L)
    scorer.reset_rng(7)
    logits = scorer.score_logits(x)  # (B, T) same random numbers as sample_rollouts
    own = disc.score(x)  # (B, T)
    for b in range(x.shape[0]):
        for t in range(x.shape[1]):
            if not rolled[b, t]:
                assert torch.sigmoid(logits[b, t]).item() == pytest.approx(own[b, t].item(), abs=1e-5)
                continue
            probs = []
            for j in range(k):
                seq = comp[b, t, j]  # (L,)
                assert seq[: t + 1].tolist() == x[b, : t + 1].tolist()  # starts with its own prefix
                n = int((seq != PAD_ID).sum())
                assert not bool(((seq[:n] == PAD_ID) | (seq[:n] == BOS_ID)).any())
                assert n == L or seq[n - 1] == EOS_ID  # completed to EOS or max_length
                assert EOS_ID not in seq[: n - 1].tolist()
                probs.append(disc.sequence_scores(seq[None])[0].item())
            assert torch.sigmoid(logits[b, t]).item() == pytest.approx(float(np.mean(probs)), abs=1e-5)
    assert len({tuple(c.tolist()) for c in comp[2, 0]}) > 1  # rollouts of one prefix differ


class FirstTokenScorer:
    """Stub D: every prefix's logit is (first token - 6): rows must keep their own score."""

    def score_logits(self, tokens: torch.Tensor) -> torch.Tensor:
        tokens = torch.as_tensor(tokens)
        return (tokens[:, :1].float() - 6.0).expand(tokens.shape).clone()  # (B, T)


def test_rows_are_not_permuted():
    scorer = MCRolloutScorer(FirstTokenScorer(), _generator(1), num_rollouts=4, max_length=L, seed=3)
    x = torch.tensor([[3, 4, 0, 0, 0, 0], [9, 9, 9, 0, 0, 0], [5, 0, 0, 0, 0, 0], [11, 3, 3, 3, 3, 0]])
    logits = scorer.score_logits(x)  # (B, T)
    for b in range(len(x)):
        n = int((x[b] != PAD_ID).sum())
        want = torch.full((n,), float(x[b, 0] - 6))
        torch.testing.assert_close(logits[b, :n], want, atol=1e-4, rtol=0)
    last = scorer.score_last(x, (x != PAD_ID).sum(1))  # (B,)
    torch.testing.assert_close(last, x[:, 0].float() - 6.0, atol=1e-4, rtol=0)


def test_finished_sequences_get_d_own_score():
    disc = tiny_discriminator(V, seed=4)
    scorer = MCRolloutScorer(disc, _generator(2), num_rollouts=3, max_length=L)
    x = _tokens()  # row 0 ends with EOS, row 2 has max_length tokens
    probs = torch.sigmoid(scorer.score_logits(x))  # (B, T)
    seq = disc.sequence_scores(x)  # (B,)
    assert probs[0, 3].item() == pytest.approx(seq[0].item(), abs=1e-5)
    assert probs[2, L - 1].item() == pytest.approx(seq[2].item(), abs=1e-5)
    assert torch.isfinite(prob_to_logit(torch.tensor([0.0, 1.0]))).all()
    assert torch.sigmoid(prob_to_logit(torch.tensor([0.0])))[0].item() == pytest.approx(PROB_EPS, rel=1e-3)


def test_score_last_equals_column_of_score_logits():
    disc = tiny_discriminator(V, seed=5)
    scorer = MCRolloutScorer(disc, _generator(3), num_rollouts=2, max_length=L, min_length=2, temperature=0)
    x = _tokens()
    full = scorer.score_logits(x)  # (B, T)
    for n in range(1, L + 1):
        lengths = torch.minimum(torch.full((3,), n), (x != PAD_ID).sum(1))  # (B,)
        cut = torch.where(torch.arange(L) < lengths[:, None], x, torch.zeros_like(x))  # (B, T) prefixes only
        last = scorer.score_last(cut, lengths)  # (B,)
        want = full.gather(1, (lengths - 1)[:, None]).squeeze(1)
        torch.testing.assert_close(last, want, atol=1e-5, rtol=0)
    assert scorer.score_last(x, torch.tensor([0, 1, 2]))[0].item() == 0.0  # empty prefix: logit 0


def test_update_rollout_policy_rate_convention():
    gen, other = _generator(0), _generator(1)
    scorer = make_mc_rollout_scorer(tiny_discriminator(V), gen, num_rollouts=2, max_length=L)
    roll = scorer.rollout_generator
    assert roll is not gen
    before = {n: p.clone() for n, p in roll.named_parameters()}
    scorer.update_rollout_policy(other, rate=1.0)  # keep
    for n, p in roll.named_parameters():
        torch.testing.assert_close(p, before[n])
    scorer.update_rollout_policy(other, rate=0.8)  # SeqGAN: 0.8 kept, 0.2 of the generator
    theirs = dict(other.named_parameters())
    for n, p in roll.named_parameters():
        torch.testing.assert_close(p, 0.8 * before[n] + 0.2 * theirs[n])
    scorer.update_rollout_policy(other, rate=0.0)  # copy
    for n, p in roll.named_parameters():
        torch.testing.assert_close(p, theirs[n])


def test_vector_wrapper_with_mc_rollout_gives_finite_rewards(tokenizer):
    b, t = 4, 5
    v = tokenizer.vocab_size
    torch.manual_seed(0)
    scorer = make_mc_rollout_scorer(tiny_discriminator(v), build_generator(TINY, v), num_rollouts=3, max_length=t)
    venv = DiscriminatorRewardVector(
        TokenGenerationVectorEnv(b, tokenizer=tokenizer, max_length=t), scorer, RewardConfig(mode="per_step")
    )
    calls = []
    score_last = scorer.score_last
    scorer.score_last = lambda tokens, lengths: calls.append(len(tokens)) or score_last(tokens, lengths)
    venv.reset(seed=0)
    rng = np.random.default_rng(0)
    finished = 0
    for _ in range(20):
        _, r, term, trunc, _ = venv.step(rng.integers(2, v, size=b))
        assert np.isfinite(r).all() and (r >= -1.0).all() and (r <= 1.0).all()
        finished += int(np.sum(term | trunc))
    assert finished >= b
    assert calls and max(calls) <= b  # the per-step path: only each row's newest prefix


@pytest.mark.parametrize(
    "kwargs, match",
    [({"num_rollouts": 0}, "num_rollouts=0"), ({"rate": 1.5}, "rate=1.5"), ({"rate": -0.1}, "rate=-0.1"),
     ({"temperature": -1.0}, "temperature=-1.0"), ({"max_length": 0}, "max_length=0")],
)
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match.replace(".", r"\.")):
        make_mc_rollout_scorer(tiny_discriminator(V), _generator(0), **kwargs)


def test_bad_update_rate_raises():
    scorer = make_mc_rollout_scorer(tiny_discriminator(V), _generator(0), max_length=L)
    with pytest.raises(ValueError, match="rate=2"):
        scorer.update_rollout_policy(_generator(1), rate=2)


def test_lean_decoder_completions_equal_transformers_completions(monkeypatch):
    """The completions use seqgan_env.models.fastllama when it supports the model; same tokens as without it."""
    import seqgan_env.rewards.mc_rollout as mc

    x = _tokens()
    runs = {}
    for fast in (True, False):
        if not fast:
            monkeypatch.setattr(mc, "make_step_decoder", lambda model, reuse=None, enabled=True: None)
        scorer = MCRolloutScorer(tiny_discriminator(V, seed=2), _generator(0), num_rollouts=4, max_length=L,
                                 min_length=1, seed=11)
        runs[fast] = scorer.sample_rollouts(x)[0]  # (B, T, K, L)
        assert (scorer._decoder is not None) == fast
    assert torch.equal(runs[True], runs[False])
