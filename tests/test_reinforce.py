"""REINFORCE agent: hand-computed pure functions, rollouts on the real vector env, learning."""

from __future__ import annotations

import contextlib
import json
import math
import threading

import pytest
import torch

from seqgan_agents.reinforce import (
    ReinforceAgent,
    ReinforceConfig,
    Rollout,
    apply_baseline,
    discounted_returns,
    normalize,
    resolve_device,
    sampling_logits,
)
from seqgan_env import TokenGenerationVectorEnv
from seqgan_env.envs.spec import BOS_ID, EOS_ID, PAD_ID
from seqgan_env.models.networks import ModelConfig, build_generator
from seqgan_env.rewards.wrappers import DiscriminatorRewardVector, RewardConfig

from .conftest import CountScorer

A = 3  # 'a' in the conftest tokenizer (a=3, b=4, c=5; vocab 6)
TINY = ModelConfig(hidden_size=16, intermediate_size=32, num_heads=2, num_layers=1, max_position_embeddings=32)
NEG = float("-inf")


def _sig(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


def _agent(vocab: int = 6, seed: int = 0, **cfg) -> ReinforceAgent:
    torch.manual_seed(seed)
    return ReinforceAgent(build_generator(TINY, vocab), ReinforceConfig(device="cpu", **cfg), seed=seed)


def _venv(tokenizer, b: int = 16, t: int = 6, **env):
    base = TokenGenerationVectorEnv(b, tokenizer=tokenizer, max_length=t, return_torch=True, **env)
    return DiscriminatorRewardVector(base, CountScorer(target=A), RewardConfig(mode="per_step", transform="prob"))


class _Recorder:
    """Delegating proxy that records every (rewards, terminated) the env returned, and the deferred D share."""

    def __init__(self, venv):
        self.venv, self.rewards, self.terminated, self.window = venv, [], [], None

    @contextlib.contextmanager
    def deferred_rewards(self, steps):
        with self.venv.deferred_rewards(steps) as window:
            yield window
        self.window = window

    def __getattr__(self, name):
        return getattr(self.venv, name)

    def step(self, actions):
        out = self.venv.step(actions)
        self.rewards.append(out[1].clone())
        self.terminated.append(out[2].clone())
        return out


# ---------------------------------------------------------------------------------------
# Pure functions
# ---------------------------------------------------------------------------------------
REWARDS = torch.tensor([[1.0, 2.0, 3.0, 4.0], [1.0, 1.0, 1.0, 1.0]])
MASK = torch.tensor([[True, True, True, False], [True, True, False, False]])


def test_discounted_returns_gamma_one():
    g = discounted_returns(REWARDS, MASK, 1.0)
    assert torch.allclose(g, torch.tensor([[6.0, 5.0, 3.0, 0.0], [2.0, 1.0, 0.0, 0.0]]))


def test_discounted_returns_gamma_09():
    g = discounted_returns(REWARDS, MASK, 0.9)
    # row 0: G2 = 3, G1 = 2 + 0.9*3 = 4.7, G0 = 1 + 0.9*4.7 = 5.23; row 1: G1 = 1, G0 = 1.9
    assert torch.allclose(g, torch.tensor([[5.23, 4.7, 3.0, 0.0], [1.9, 1.0, 0.0, 0.0]]))


def test_discounted_returns_gamma_zero_is_rewards_inside_mask():
    assert torch.allclose(discounted_returns(REWARDS, MASK, 0.0), REWARDS * MASK)


RETURNS = torch.tensor([[6.0, 5.0, 3.0, 0.0], [2.0, 1.0, 0.0, 0.0]])


def test_baseline_none_and_batch_mean():
    adv, state = apply_baseline(RETURNS, MASK, "none", None)
    assert torch.equal(adv, RETURNS) and state is None
    # per-timestep means over masked rows: t0 (6+2)/2 = 4, t1 (5+1)/2 = 3, t2 = 3 (row 0 only), t3 none
    adv, state = apply_baseline(RETURNS, MASK, "batch_mean", None)
    assert torch.allclose(adv, torch.tensor([[2.0, 2.0, 0.0, 0.0], [-2.0, -2.0, 0.0, 0.0]]))
    assert state is None


def test_baseline_ewma_two_calls():
    adv1, state = apply_baseline(RETURNS, MASK, "ewma", None, decay=0.5)
    adv_mean, _ = apply_baseline(RETURNS, MASK, "batch_mean", None)
    assert torch.allclose(adv1, adv_mean)  # first call initialises with the batch mean
    assert torch.allclose(state[:3], torch.tensor([4.0, 3.0, 3.0])) and torch.isnan(state[3])

    r2 = torch.tensor([[2.0, 2.0, 2.0, 2.0], [0.0, 0.0, 0.0, 0.0]])
    m2 = torch.tensor([[True, True, True, True], [True, False, False, False]])
    # batch means: t0 (2+0)/2 = 1, t1 = t2 = t3 = 2; baseline before the update: [4, 3, 3, unseen -> 2]
    adv2, state2 = apply_baseline(r2, m2, "ewma", state, decay=0.5)
    assert torch.allclose(adv2, torch.tensor([[-2.0, -1.0, -1.0, 0.0], [-4.0, 0.0, 0.0, 0.0]]))
    # b <- 0.5 b + 0.5 mean: [2.5, 2.5, 2.5, 2.0]
    assert torch.allclose(state2, torch.tensor([2.5, 2.5, 2.5, 2.0]))

    # a timestep with no masked rows keeps its baseline
    m3 = torch.tensor([[True, False, False, False], [True, False, False, False]])
    _, state3 = apply_baseline(torch.ones(2, 4), m3, "ewma", state2, decay=0.5)
    assert torch.allclose(state3, torch.tensor([1.75, 2.5, 2.5, 2.0]))


def test_baseline_rloo_leaves_each_row_out():
    # t0: rows 6 and 2 -> 6 - 2 = 4, 2 - 6 = -4; t1: 5 - 1 = 4, 1 - 5 = -4; t2: one row -> 0
    adv, state = apply_baseline(RETURNS, MASK, "rloo", None)
    assert torch.allclose(adv, torch.tensor([[4.0, 4.0, 0.0, 0.0], [-4.0, -4.0, 0.0, 0.0]])) and state is None
    r = torch.tensor([[3.0], [6.0], [0.0]])
    adv, _ = apply_baseline(r, torch.ones(3, 1, dtype=torch.bool), "rloo", None)
    assert torch.allclose(adv, torch.tensor([[0.0], [4.5], [-4.5]]))  # 3 - (6+0)/2, 6 - 3/2, 0 - 9/2


def test_baseline_maligan_normalised_importance_weights():
    # episode returns 6 and 2 as log weights: w = softmax([6, 2]); advantages 2 w - 1 on every valid step
    adv, state = apply_baseline(RETURNS, MASK, "maligan", None)
    w0 = math.exp(6) / (math.exp(6) + math.exp(2))
    expect = torch.tensor([[2 * w0 - 1] * 3 + [0.0], [2 * (1 - w0) - 1] * 2 + [0.0, 0.0]])
    assert torch.allclose(adv, expect, atol=1e-6) and state is None
    assert abs(float(adv[:, 0].sum())) < 1e-6  # the weights' mean is the baseline
    # a row without valid steps takes no part
    m = torch.cat([MASK, torch.zeros(1, 4, dtype=torch.bool)])
    adv3, _ = apply_baseline(torch.cat([RETURNS, torch.full((1, 4), 50.0)]), m, "maligan", None)
    assert torch.allclose(adv3[:2], expect, atol=1e-6) and not adv3[2].any()


@pytest.mark.parametrize("kind", ["rloo", "maligan", "batch_mean"])
def test_baselines_data_parallel_equal_full_batch(kind):
    """Two simulated ranks (all_reduce = the sum of both halves) give the full batch's advantages."""
    torch.manual_seed(0)
    returns = torch.randn(6, 4) * 3
    mask = torch.rand(6, 4) > 0.3
    full, _ = apply_baseline(returns, mask, kind, None)
    halves = [(returns[:3], mask[:3]), (returns[3:], mask[3:])]
    barrier, partial, out = threading.Barrier(2), {}, {}  # the two ranks run in lockstep threads

    def worker(rank: int) -> None:
        def reduce(t: torch.Tensor) -> torch.Tensor:
            partial[rank] = t.clone()
            barrier.wait()
            total = partial[0] + partial[1]
            barrier.wait()
            return total

        out[rank] = apply_baseline(*halves[rank], kind, None, all_reduce=reduce)[0]

    threads = [threading.Thread(target=worker, args=(r,)) for r in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert torch.allclose(torch.cat([out[0], out[1]]), full, atol=1e-5)


def test_baseline_errors():
    with pytest.raises(ValueError, match="foo"):
        apply_baseline(RETURNS, MASK, "foo", None)
    with pytest.raises(ValueError, match="max_length"):
        apply_baseline(RETURNS, MASK, "ewma", torch.zeros(5))


def test_normalize_masked():
    adv = torch.tensor([[1.0, 2.0, 3.0, 99.0]])
    m = torch.tensor([[True, True, True, False]])
    s = math.sqrt(2.0 / 3.0)  # population std of 1, 2, 3
    assert torch.allclose(normalize(adv, m), torch.tensor([[-1.0 / s, 0.0, 1.0 / s, 0.0]]), atol=1e-6)


def test_sampling_logits_mask_and_temperature():
    logits = torch.tensor([1.0, 2.0, 3.0, 4.0])
    mask = torch.tensor([True, True, False, True])
    out = sampling_logits(logits, mask, temperature=2.0)
    assert torch.equal(out, torch.tensor([0.5, 1.0, NEG, 2.0]))


def test_sampling_logits_top_p_nucleus():
    p = torch.tensor([0.5, 0.3, 0.15, 0.05])
    logits = p.log()
    mask = torch.tensor([True, True, True, False])
    # masked distribution: [0.5, 0.3, 0.15] / 0.95 = [0.526, 0.316, 0.158]
    keep = lambda top_p: torch.isfinite(sampling_logits(logits, mask, 1.0, top_p)).tolist()  # noqa: E731
    assert keep(1.0) == [True, True, True, False]
    assert keep(0.8) == [True, True, False, False]  # 0.526 < 0.8 <= 0.842
    assert keep(0.9) == [True, True, True, False]  # 0.842 < 0.9
    assert keep(0.5) == [True, False, False, False]  # the top token alone already covers 0.5
    assert keep(1e-6) == [True, False, False, False]  # always keep at least the top token
    out = sampling_logits(logits, mask, 1.0, 0.8)
    assert torch.allclose(out[:2], logits[:2])
    # the kept distribution renormalises to [0.625, 0.375]
    assert torch.allclose(torch.softmax(out, -1), torch.tensor([0.625, 0.375, 0.0, 0.0]), atol=1e-6)
    # batched (..., V) with a token order different from the index order
    batch = torch.stack([logits, logits.flip(0)])  # (2, 4)
    bmask = torch.stack([mask, mask.flip(0)])
    kept = torch.isfinite(sampling_logits(batch, bmask, 1.0, 0.8))
    assert kept.tolist() == [[True, True, False, False], [False, False, True, True]]


# ---------------------------------------------------------------------------------------
# Config
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"gamma": 1.5}, r"gamma=1\.5.*\[0, 1\]"),
        ({"top_p": 0}, r"top_p=0.*\(0, 1\]"),
        ({"baseline": "foo"}, r"baseline='foo'.*ewma"),
        ({"ewma_decay": 1.0}, r"ewma_decay=1\.0.*\[0, 1\)"),
        ({"temperature": 0.0}, r"temperature=0\.0.*> 0"),
        ({"entropy_coef": -1.0}, r"entropy_coef=-1\.0.*>= 0"),
        ({"max_grad_norm": 0.0}, r"max_grad_norm=0\.0.*None"),
        ({"lr": 0.0}, r"lr=0\.0"),
        ({"batch_size": 0}, r"batch_size=0.*>= 1"),
        ({"onecycle_total_steps": 0}, r"onecycle_total_steps=0"),
        ({"mle_coef": -0.1}, r"mle_coef=-0\.1"),
        ({"device": "tpu"}, r"device='tpu'"),
    ],
)
def test_config_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ReinforceConfig(**kwargs)


def test_config_cuda_without_device(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match=r"no CUDA device.*--device cpu"):
        ReinforceConfig(device="cuda")
    assert resolve_device("auto") == torch.device("cpu")
    assert ReinforceConfig(max_grad_norm=None).max_grad_norm is None


# ---------------------------------------------------------------------------------------
# Rollouts
# ---------------------------------------------------------------------------------------
def test_collect_shapes_masks_and_rewards(tokenizer):
    B, T, V = 16, 6, tokenizer.vocab_size
    agent = _agent()
    venv = _Recorder(_venv(tokenizer, B, T))
    ro = agent.collect(venv)
    assert isinstance(ro, Rollout)
    assert ro.tokens.shape == (B, T) and ro.rewards.shape == (B, T) and ro.mask.shape == (B, T)
    assert ro.action_masks.shape == (B, T, V) and ro.keep_masks is None and ro.sample_logp.shape == (B, T)
    steps = len(venv.rewards)
    assert steps <= T
    term = torch.stack(venv.terminated, dim=1)  # (B, steps)
    env_r = torch.stack(venv.rewards, dim=1)  # (B, steps) paid by the steps, without D's deferred share
    assert venv.window is not None and not env_r.any()  # D is the only source: all of it was deferred
    env_r = env_r + venv.window.rewards[:, :steps]  # what the env pays per step outside a window
    lengths = ro.mask.sum(1)
    assert int(lengths.max()) == steps  # stops as soon as every row has finished
    for i in range(B):
        n = int(lengths[i])
        assert ro.mask[i].tolist() == [True] * n + [False] * (T - n)  # a prefix of the row
        assert bool(term[i, n - 1]) and not term[i, : n - 1].any()  # True until and including termination
        row = ro.tokens[i, :n].tolist()
        assert PAD_ID not in row and BOS_ID not in row
        assert EOS_ID not in row[:-1] and (row[-1] == EOS_ID or n == T)
        assert torch.equal(ro.rewards[i, :n], env_r[i, :n])  # what the env returned
        assert not ro.rewards[i, n:].any()
        # per_step + prob under CountScorer('a'): sigmoid(#a in the prefix - 1)
        count = 0
        for t, tok in enumerate(row):
            count += tok == A
            assert float(ro.rewards[i, t]) == pytest.approx(_sig(count - 1), abs=1e-6)
        assert ro.texts[i] == tokenizer.decode([x for x in row if x != EOS_ID])
    assert not ro.action_masks[:, 0, EOS_ID].any()  # min_length=1: no EOS at the first step
    assert not ro.action_masks[:, :, PAD_ID].any() and not ro.action_masks[:, :, BOS_ID].any()


def test_gradient_uses_sampled_distribution(tokenizer):
    agent = _agent(top_p=0.7, temperature=0.8)
    ro = agent.collect(_venv(tokenizer, 32, 6))
    assert ro.keep_masks is not None and ro.keep_masks.shape == ro.action_masks.shape
    logp = agent.log_probs(ro)
    assert logp.requires_grad
    assert torch.allclose(logp.detach(), ro.sample_logp * ro.mask, atol=1e-5)
    # the nucleus matters: the raw model's log-probs differ where tokens were cut
    with torch.no_grad():
        inp = torch.cat([torch.full_like(ro.tokens[:, :1], BOS_ID), ro.tokens[:, :-1]], 1)
        raw = torch.log_softmax(agent.generator(input_ids=inp).logits, -1).gather(2, ro.tokens[..., None])[..., 0]
    cut = ro.mask & ~ro.keep_masks.all(-1)
    assert cut.any() and (logp.detach() - raw)[cut].abs().max() > 1e-3
    loss, metrics = agent.loss(ro)
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in agent.generator.parameters() if p.grad is not None)
    assert set(metrics) >= {"reward_mean", "reward_std", "return_mean", "policy_loss", "entropy", "mle_loss",
                            "episode_length_mean"}
    assert math.isnan(metrics["mle_loss"]) and 0 < metrics["entropy"] < math.log(4)


def test_sample_cache_matches_no_cache_and_masking_rules():
    agent = _agent(vocab=8)
    a = agent.sample(64, 10, seed=3, use_cache=True, min_length=2)
    b = agent.sample(64, 10, seed=3, use_cache=False, min_length=2)
    assert a.shape == (64, 10) and a.dtype == torch.long
    assert torch.equal(a, b)
    assert not torch.equal(a, agent.sample(64, 10, seed=4))
    for row in a.tolist():
        n = row.index(EOS_ID) + 1 if EOS_ID in row else len(row)
        assert n - 1 >= 2 or EOS_ID not in row  # EOS only after min_length symbols
        assert PAD_ID not in row[:n] and BOS_ID not in row[:n]
        assert row[n:] == [PAD_ID] * (len(row) - n)
    full = agent.sample(16, 10, seed=0, allow_eos=False, top_p=0.9, temperature=0.5)
    assert (full >= 3).all()


def test_update_metrics_mle_and_onecycle(tokenizer):
    agent = _agent(mle_coef=0.5, onecycle_total_steps=10, lr=1e-2, normalize_advantages=True, entropy_coef=0.01)
    venv = _venv(tokenizer, 8, 6)
    real = torch.tensor([[A, 4, 5, EOS_ID, PAD_ID, PAD_ID], [5, A, 4, EOS_ID, PAD_ID, PAD_ID]])
    lrs, beta1s = [], []
    for _ in range(12):  # past total_steps: the schedule holds its final value
        beta1s.append(agent.optimizer.param_groups[0]["betas"][0])
        m = agent.update(agent.collect(venv), real)
        lrs.append(m["lr"])
        assert all(math.isfinite(v) for v in m.values())
    assert set(m) == {"reward_mean", "reward_std", "return_mean", "policy_loss", "entropy", "mle_loss",
                      "grad_norm", "lr", "episode_length_mean", "reward/discriminator"}
    assert m["reward/discriminator"] == pytest.approx(m["reward_mean"], abs=1e-5)  # the only source
    # OneCycle (pct_start 0.3): warm-up to the peak lr at update 2, cosine down to the end at update 9
    assert lrs[2] == pytest.approx(1e-2) and lrs[0] < lrs[1] < lrs[2] > lrs[3] > lrs[8] > lrs[9]
    assert lrs[9] == lrs[10] == lrs[11]
    assert beta1s[0] == pytest.approx(0.95) and beta1s[2] == pytest.approx(0.85)  # beta1 cycles inversely
    assert agent.num_updates == 12 and agent.baseline_state.shape == (6,)


def test_mle_step_lowers_loss():
    agent = _agent(lr=1e-2)
    real = torch.tensor([[3, 4, 5, EOS_ID, PAD_ID, PAD_ID]] * 8)
    losses = [agent.mle_step(real) for _ in range(20)]
    assert losses[-1] < 0.5 * losses[0]


def test_state_dict_round_trip(tokenizer):
    agent = _agent(onecycle_total_steps=10, lr=1e-2)
    venv = _venv(tokenizer, 8, 6)
    for _ in range(2):
        agent.update(agent.collect(venv))
    sd = agent.state_dict()
    json.dumps(sd["meta"])  # JSON-able, no pickle needed
    assert all(isinstance(v, torch.Tensor) for v in sd["tensors"].values())
    assert "baseline_state" in sd["tensors"] and "rng_state" in sd["tensors"]

    other = _agent(seed=1, onecycle_total_steps=10, lr=1e-2)
    other.load_state_dict(sd)
    assert other.num_updates == 2 and torch.allclose(other.baseline_state, agent.baseline_state, equal_nan=True)
    ro_a, ro_b = agent.collect(venv), other.collect(_venv(tokenizer, 8, 6))
    assert torch.equal(ro_a.tokens, ro_b.tokens)  # same weights and same sampling RNG state
    ma, mb = agent.update(ro_a), other.update(ro_b)
    assert ma == pytest.approx(mb, nan_ok=True)
    for pa, pb in zip(agent.generator.parameters(), other.generator.parameters()):
        assert torch.allclose(pa, pb)


def test_learns_to_write_a(tokenizer):
    agent = _agent(lr=1e-2, baseline="batch_mean")
    venv = _venv(tokenizer, 32, 8)

    def frac_a() -> float:
        s = agent.sample(256, 8, seed=123)
        symbols = s[s >= 3]
        return float((symbols == A).float().mean())

    before = frac_a()
    for _ in range(20):  # ~0.34 -> ~0.96 on seeds 0-3
        agent.update(agent.collect(venv))
    after = frac_a()
    assert before < 0.45 and after > 0.6, (before, after)


# ---------------------------------------------------------------------------------------
# KL to a reference generator
# ---------------------------------------------------------------------------------------
def _hand_kl(agent: ReinforceAgent, rollout: Rollout) -> float:
    """Mean over valid steps of sum_v p(v) log(p(v) / q(v)), p and q over the sampling support."""
    inp = torch.cat([torch.full_like(rollout.tokens[:, :1], BOS_ID), rollout.tokens[:, :-1]], 1)
    with torch.no_grad():
        p_logits = agent.generator(input_ids=inp).logits  # (B, T, V)
        q_logits = agent.reference(input_ids=inp).logits
    total, count = 0.0, 0
    B, T = rollout.tokens.shape
    for b in range(B):
        for t in range(T):
            if not rollout.mask[b, t]:
                continue
            ok = rollout.action_masks[b, t]
            p = torch.softmax(p_logits[b, t][ok].double(), -1)
            q = torch.softmax(q_logits[b, t][ok].double(), -1)
            total += float((p * (p.log() - q.log())).sum())
            count += 1
    return total / count


def test_kl_metric_equals_hand_computed_value(tokenizer):
    agent = _agent(kl_coef=0.5, lr=1e-3)
    torch.manual_seed(5)
    agent.set_reference(build_generator(TINY, 6))  # a different network: KL > 0
    ro = agent.collect(_venv(tokenizer, 8, 6))
    expected = _hand_kl(agent, ro)
    _, metrics = agent.loss(ro)
    assert expected > 1e-3
    assert metrics["kl"] == pytest.approx(expected, rel=1e-4)
    # the KL term is in the loss with weight kl_coef
    loss_kl, _ = agent.loss(ro)
    agent.kl_coef = 0.0
    loss_plain, _ = agent.loss(ro)
    assert float((loss_kl - loss_plain).detach()) == pytest.approx(0.5 * expected, rel=1e-4)


def test_kl_to_itself_is_zero_and_updates_pull_towards_reference(tokenizer):
    agent = _agent(kl_coef=1.0)
    agent.set_reference()
    ro = agent.collect(_venv(tokenizer, 8, 6))
    assert agent.loss(ro)[1]["kl"] == pytest.approx(0.0, abs=1e-6)


def test_kl_adaptive_coefficient_moves_towards_target(tokenizer):
    agent = _agent(kl_coef=0.5, kl_target=1e-6, lr=1e-2)
    torch.manual_seed(5)
    agent.set_reference(build_generator(TINY, 6))
    venv = _venv(tokenizer, 8, 6)
    m = agent.update(agent.collect(venv))
    assert m["kl"] > 1e-6 and agent.kl_coef == pytest.approx(0.5 * 1.02)  # error clipped at +0.2, rate 0.1
    state = agent.state_dict()
    other = _agent(kl_coef=0.5, kl_target=1e-6, lr=1e-2, seed=3)
    other.load_state_dict(state)
    assert other.kl_coef == agent.kl_coef
    for a, b in zip(agent.reference.parameters(), other.reference.parameters()):
        assert torch.equal(a, b)


def test_kl_without_reference_is_a_clear_error(tokenizer):
    agent = _agent(kl_coef=0.1)
    ro = agent.collect(_venv(tokenizer, 4, 6))
    with pytest.raises(ValueError, match="set_reference"):
        agent.loss(ro)


@pytest.mark.parametrize("kwargs,match", [
    ({"kl_coef": -0.1}, r"kl_coef=-0\.1"),
    ({"kl_coef": 0.1, "kl_target": 0.0}, r"kl_target=0\.0"),
    ({"kl_target": 0.05}, r"kl_target is set but kl_coef=0"),
    ({"kl_coef": 0.1, "kl_horizon_rate": 2.0}, r"kl_horizon_rate=2\.0"),
])
def test_kl_config_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ReinforceConfig(**kwargs)


def test_trim_padding_keeps_the_mle_loss():
    """MLE on rows trimmed to the longest one equals MLE on the full-width rows (causal logits, PAD ignored)."""
    from seqgan_agents.reinforce import trim_padding

    rows = torch.tensor([[3, 4, EOS_ID, PAD_ID, PAD_ID, PAD_ID], [5, EOS_ID, PAD_ID, PAD_ID, PAD_ID, PAD_ID]])
    assert trim_padding(rows).tolist() == [[3, 4, EOS_ID], [5, EOS_ID, PAD_ID]]
    full = torch.tensor([[3, 4, 5]])  # a row of max_length symbols, no EOS: nothing to trim
    assert torch.equal(trim_padding(full), full)
    torch.manual_seed(0)
    agent = ReinforceAgent(build_generator(ModelConfig(hidden_size=16, intermediate_size=32, num_heads=2,
                                                       num_layers=1), 8), ReinforceConfig(device="cpu"))
    logits = agent.generator(input_ids=agent._teacher_input(rows)).logits  # (2, 6, V) the untrimmed pass
    untrimmed = torch.nn.functional.cross_entropy(logits.flatten(0, 1), rows.flatten(), ignore_index=PAD_ID)
    torch.testing.assert_close(agent._mle_loss(rows), untrimmed, atol=1e-6, rtol=1e-6)
