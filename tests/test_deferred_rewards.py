"""Deferred discriminator rewards: a window's D share, scored in causal passes, equals the per-step rewards."""

from __future__ import annotations

import pytest
import torch

from seqgan_env import TokenGenerationVectorEnv
from seqgan_env.envs.spec import EOS_ID
from seqgan_env.rewards.sources import RewardSource
from seqgan_env.rewards.wrappers import DiscriminatorRewardVector, RewardConfig

from .conftest import CountScorer, tiny_discriminator

pytestmark = pytest.mark.usefixtures("one_torch_thread")

B, T = 12, 6


def _pair(tokenizer, scorer_of, eos: bool = True, sources=None, **reward):
    """Two identical wrapped envs (the same scorer weights, the same real data), reset alike."""
    real = torch.tensor([[3, 4, 5, EOS_ID, 0, 0], [5, 3, 4, 3, EOS_ID, 0]] * 8)  # (16, T) 'abc', 'cab a'
    envs = []
    for _ in range(2):
        base = TokenGenerationVectorEnv(B, tokenizer=tokenizer, max_length=T, allow_eos=eos, min_length=1,
                                        return_torch=True)
        uses_real = reward.get("update_every") is not None
        envs.append(DiscriminatorRewardVector(base, scorer_of(), RewardConfig(**reward), sources=sources,
                                              real_data=real if uses_real else None))
        envs[-1].reset(seed=0)
    return envs


def _actions(env, gen: torch.Generator, invalid: float) -> torch.Tensor:
    """(B,) valid tokens drawn uniformly, a share ``invalid`` of rows writing a masked token instead."""
    masks = env.action_masks()  # (B, V)
    a = torch.multinomial(masks.float(), 1, generator=gen).squeeze(1)  # (B,)
    bad = torch.rand(B, generator=gen) < invalid
    masked = torch.multinomial((~masks).float() + 1e-9, 1, generator=gen).squeeze(1)  # (B,) a masked id
    return torch.where(bad, masked, a)


def _run(per_step, deferred, steps: int, invalid: float = 0.0, reset_at: int | None = None):
    """Step both envs alike; returns (per-step rewards (B, S), deferred paid + share (B, S), their infos)."""
    gen = torch.Generator().manual_seed(1)
    paid_a, paid_b, infos_a, infos_b = [], [], [], []
    with deferred.deferred_rewards(steps) as window:
        for t in range(steps):
            if t == reset_at:
                mask = torch.arange(B) % 2 == 0  # half the rows start over mid-window
                per_step.reset(options={"reset_mask": mask})
                deferred.reset(options={"reset_mask": mask})
            a = _actions(per_step, gen, invalid)
            _, ra, ta, _, ia = per_step.step(a)
            _, rb, tb, _, ib = deferred.step(a)
            assert torch.equal(ta, tb)
            paid_a.append(ra)
            paid_b.append(rb)
            infos_a.append(ia)
            infos_b.append(ib)
    assert window is not None and window.steps == steps
    return torch.stack(paid_a, 1), torch.stack(paid_b, 1) + window.rewards, infos_a, infos_b


@pytest.mark.parametrize("mode", ["per_step", "potential", "final"])
@pytest.mark.parametrize("transform", ["prob", "log"])
@pytest.mark.parametrize("scorer", ["count", "discriminator"])
def test_window_pays_the_per_step_rewards(tokenizer, mode, transform, scorer):
    scorer_of = ((lambda: CountScorer(target=3)) if scorer == "count"
                 else (lambda: tiny_discriminator(tokenizer.vocab_size, seed=2)))
    a, b = _pair(tokenizer, scorer_of, mode=mode, transform=transform, potential_baseline=0.25)
    ra, rb, ia, ib = _run(a, b, steps=3 * T, invalid=0.1)  # several episodes per row, autoresets, masked actions
    assert torch.allclose(ra, rb, atol=1e-5), (ra - rb).abs().max()
    assert ra.abs().sum() > 0  # the rewards are not trivially zero
    finals = 0
    for x, y in zip(ia, ib):
        assert ("disc_score" in x) == ("disc_score" in y)
        if "disc_score" in x:
            finals += 1
            assert (x["_disc_score"] == y["_disc_score"]).all()
            assert torch.allclose(torch.as_tensor(x["disc_score"]), torch.as_tensor(y["disc_score"]), atol=1e-5)
    assert finals > 0


def _length(tokens: torch.Tensor, texts: list[str]) -> torch.Tensor:
    return torch.tensor([float(len(t)) for t in texts])  # (K,)


def test_window_with_reset_and_weighted_sources(tokenizer):
    sources = [RewardSource("discriminator", weight=0.5), RewardSource("length", _length, weight=0.1)]
    a, b = _pair(tokenizer, lambda: CountScorer(target=3), sources=sources, mode="potential")
    ra, rb, ia, ib = _run(a, b, steps=2 * T, reset_at=4)
    assert torch.allclose(ra, rb, atol=1e-6)
    for x, y in zip(ia, ib):  # the callable's share is paid by the step itself, as outside a window
        assert torch.equal(torch.as_tensor(x["reward/length"]), torch.as_tensor(y["reward/length"]))


def test_window_spans_discriminator_phases(tokenizer):
    """D phases of the wrapper inside the window: steps before a phase are paid by the D before it."""
    a, b = _pair(tokenizer, lambda: tiny_discriminator(tokenizer.vocab_size, seed=2), mode="potential",
                 update_every=5, update_batch_size=4, buffer_size=8, update_steps=1, update_until_accuracy=None)
    ra, rb, _, _ = _run(a, b, steps=4 * T)
    assert a.trainer.version == b.trainer.version >= 3  # several phases ran inside the window
    assert torch.allclose(ra, rb, atol=1e-5), (ra - rb).abs().max()
    for pa, pb in zip(a.scorer.net.parameters(), b.scorer.net.parameters()):
        assert torch.allclose(pa, pb, atol=1e-5)  # D trained on the same sequences
    # after the window the wrapper pays per step again, from where the window left off
    gen = torch.Generator().manual_seed(5)
    for _ in range(T):
        act = _actions(a, gen, 0.0)
        assert torch.allclose(a.step(act)[1], b.step(act)[1], atol=1e-5)


class _LastOnly(CountScorer):
    """A scorer of each row's newest prefix only (as the Monte-Carlo rollout scorer is)."""

    def score_last(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.score_logits(tokens).gather(1, (lengths - 1).clamp(min=0).unsqueeze(1)).squeeze(1)  # (N,)


@pytest.mark.parametrize("case", ["no discriminator source", "score_last scorer"])
def test_window_is_inactive_without_a_whole_prefix_discriminator(tokenizer, case):
    if case == "no discriminator source":
        a, b = _pair(tokenizer, lambda: CountScorer(target=3), sources=[RewardSource("length", _length)])
    else:
        a, b = _pair(tokenizer, lambda: _LastOnly(target=3), mode="per_step")
    gen = torch.Generator().manual_seed(2)
    with b.deferred_rewards(T) as window:
        assert window is None
        for _ in range(T):  # the steps pay in full, as outside a window
            act = _actions(a, gen, 0.0)
            assert torch.equal(a.step(act)[1], b.step(act)[1])


def test_window_with_numpy_outputs(tokenizer):
    envs = []
    for _ in range(2):
        base = TokenGenerationVectorEnv(B, tokenizer=tokenizer, max_length=T, min_length=1)  # numpy out
        envs.append(DiscriminatorRewardVector(base, CountScorer(target=3), RewardConfig(mode="potential")))
        envs[-1].reset(seed=0)
    a, b = envs
    gen = torch.Generator().manual_seed(3)
    paid_a, paid_b = [], []
    with b.deferred_rewards(2 * T) as window:
        for _ in range(2 * T):
            masks = torch.as_tensor(a.action_masks())  # (B, V)
            act = torch.multinomial(masks.float(), 1, generator=gen).squeeze(1).numpy()  # (B,)
            paid_a.append(torch.as_tensor(a.step(act)[1]))
            paid_b.append(torch.as_tensor(b.step(act)[1]))
    assert torch.allclose(torch.stack(paid_a, 1), torch.stack(paid_b, 1) + window.rewards, atol=1e-6)


def test_window_misuse_is_refused(tokenizer):
    a, _ = _pair(tokenizer, lambda: tiny_discriminator(tokenizer.vocab_size, seed=2), mode="potential")
    with pytest.raises(ValueError, match=r"steps=0"):
        with a.deferred_rewards(0):
            pass
    with pytest.raises(RuntimeError, match="do not nest"):
        with a.deferred_rewards(T), a.deferred_rewards(T):
            pass
    a.reset(seed=0)
    with pytest.raises(RuntimeError, match=r"deferred_rewards\(steps=2\) got step 3"):
        with a.deferred_rewards(2):
            for _ in range(3):
                a.step(a.action_masks().float().argmax(1))
    a.reset(seed=0)
    with pytest.raises(RuntimeError, match="changed outside this wrapper"):
        with a.deferred_rewards(T):
            a.step(a.action_masks().float().argmax(1))
            a.trainer.mark_changed()  # D changed behind the wrapper's back
            a.step(a.action_masks().float().argmax(1))
