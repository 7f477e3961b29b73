"""Tests for seqgan_env.rewards.callbacks: the discriminator-update schedule."""

import json

import pytest
import torch

from seqgan_env.rewards.callbacks import DiscriminatorUpdateCallback, DiscriminatorUpdateConfig

T = 5


class FakeRewardEnv:
    """Records every update_discriminator call; metrics follow a fixed script."""

    def __init__(self, script=None):
        self.calls: list[torch.Tensor] = []
        self.script = script

    def update_discriminator(self, fake):
        self.calls.append(fake)
        i = len(self.calls)
        if self.script is not None:
            return self.script[i - 1]
        return {"loss": float(i), "acc_real": 0.5, "acc_fake": 0.25, "grad_norm": 1.0, "lr": 1e-3}


class FakeSampler:
    def __init__(self):
        self.calls: list[int] = []  # n of each call
        self.at: list[int] = []  # generator update count at each call
        self.cb = None

    def __call__(self, n):
        self.calls.append(n)
        self.at.append(self.cb.num_generator_updates if self.cb else -1)
        assert not torch.is_grad_enabled()
        return torch.full((n, T), len(self.calls), dtype=torch.long)


def schedule(**kw) -> DiscriminatorUpdateConfig:
    """A schedule with one D step per phase and no train-until-accuracy unless the test asks: the counts below
    are hand-computed for it, whatever the library's defaults."""
    return DiscriminatorUpdateConfig(**{"d_steps": 1, "until_accuracy": None, **kw})


def make(**cfg):
    env, sampler = FakeRewardEnv(), FakeSampler()
    cb = DiscriminatorUpdateCallback(env, sampler, schedule(**cfg))
    sampler.cb = cb
    return cb, env, sampler


def test_schedule_every3_dsteps2():
    cb, env, sampler = make(every=3, d_steps=2, batch_size=4)
    results = [cb.on_generator_update() for _ in range(10)]
    assert [i + 1 for i, r in enumerate(results) if r is not None] == [3, 6, 9]
    assert sampler.at == [3, 3, 6, 6, 9, 9]
    assert sampler.calls == [4] * 6
    assert len(env.calls) == 6
    # each update got its own fresh batch, in order
    assert [int(f[0, 0]) for f in env.calls] == [1, 2, 3, 4, 5, 6]
    assert all(f.shape == (4, T) and f.dtype == torch.long for f in env.calls)
    assert cb.num_generator_updates == 10 and cb.num_discriminator_updates == 6


def test_freeze_never_updates():
    cb, env, sampler = make(every=1, d_steps=3, freeze=True)
    assert all(cb.on_generator_update() is None for _ in range(7))
    assert env.calls == [] and sampler.calls == []
    assert cb.num_generator_updates == 7 and cb.num_discriminator_updates == 0


def test_metrics_averaged_and_prefixed():
    cb, env, _ = make(every=1, d_steps=2, batch_size=2)
    m = cb.on_generator_update()
    assert m["discriminator/loss"] == pytest.approx(1.5)  # mean of 1 and 2
    assert m["discriminator/acc_real"] == 0.5 and m["discriminator/acc_fake"] == 0.25
    assert m["discriminator/updates"] == 2
    assert all(k.startswith("discriminator/") for k in m)
    m = cb.on_generator_update()
    assert m["discriminator/loss"] == pytest.approx(3.5) and m["discriminator/updates"] == 4
    assert cb.last_metrics == m


def test_non_numeric_metrics_skipped():
    env = FakeRewardEnv(script=[{"loss": 1.0, "note": "x"}, {"loss": 3.0, "note": "y"}])
    cb = DiscriminatorUpdateCallback(env, lambda n: torch.zeros(n, T, dtype=torch.long),
                                     schedule(d_steps=2, batch_size=1))
    assert cb.on_generator_update() == {"discriminator/loss": 2.0, "discriminator/updates": 2,
                                        "discriminator/phase_steps": 2}


def test_hooks_called():
    calls = []

    class Sub(DiscriminatorUpdateCallback):
        def _on_phase_start(self):
            calls.append("start")

        def _on_d_update(self, metrics):
            calls.append(("d", metrics["loss"]))

        def _on_phase_end(self, metrics):
            calls.append(("end", metrics["discriminator/updates"]))

    cb = Sub(FakeRewardEnv(), lambda n: torch.zeros(n, T, dtype=torch.long),
             schedule(every=2, d_steps=2, batch_size=1))
    cb.on_generator_update()
    assert calls == []
    cb.on_generator_update()
    assert calls == ["start", ("d", 1.0), ("d", 2.0), ("end", 2)]


def test_state_dict_roundtrip_keeps_schedule():
    cb, _, _ = make(every=3, d_steps=1, batch_size=1)
    for _ in range(4):
        cb.on_generator_update()
    state = json.loads(json.dumps(cb.state_dict()))
    assert state == {"num_generator_updates": 4, "num_discriminator_updates": 1}
    cb2, env2, _ = make(every=3, d_steps=1, batch_size=1)
    cb2.load_state_dict(state)
    out = [cb2.on_generator_update() is not None for _ in range(2)]
    assert out == [False, True] and len(env2.calls) == 1  # update 6 is due, like the uninterrupted run
    with pytest.raises(ValueError, match="num_generator_updates=-1.*int >= 0"):
        cb2.load_state_dict({"num_generator_updates": -1, "num_discriminator_updates": 0})


def test_bad_sampler_output():
    cb = DiscriminatorUpdateCallback(FakeRewardEnv(), lambda n: torch.zeros(T, dtype=torch.long),
                                     schedule(batch_size=3))
    with pytest.raises(ValueError, match=r"sample_fake\(3\) returned shape \(5,\).*\(3, T\)"):
        cb.on_generator_update()


def test_reward_env_without_update():
    with pytest.raises(TypeError, match="update_discriminator"):
        DiscriminatorUpdateCallback(object(), lambda n: None)


@pytest.mark.parametrize("kw,pattern", [
    ({"every": 0}, r"every=0 is invalid: it must be an int >= 1"),
    ({"d_steps": 0}, r"d_steps=0 is invalid: it must be an int >= 1"),
    ({"batch_size": -2}, r"batch_size=-2 is invalid: it must be an int >= 1; use e.g. batch_size=64"),
    ({"every": 1.5}, r"every=1.5 is invalid"),
    ({"d_steps": True}, r"d_steps=True is invalid"),
    ({"freeze": "yes"}, r"freeze='yes' is invalid: it must be True or False"),
])
def test_config_validation(kw, pattern):
    with pytest.raises(ValueError, match=pattern):
        DiscriminatorUpdateConfig(**kw)


def test_config_defaults():
    c = DiscriminatorUpdateConfig()
    assert c.to_dict() == {"every": 1, "d_steps": c.d_steps, "batch_size": 128, "freeze": False,
                           "replay_fraction": 0.0, "replay_size": 2048, "until_accuracy": c.until_accuracy,
                           "max_d_steps": c.max_d_steps}
    # one home for the schedule: the env's own co-training (RewardConfig) takes the same defaults
    from seqgan_env.rewards.wrappers import RewardConfig
    r = RewardConfig()
    assert (r.update_batch_size, r.update_steps, r.update_until_accuracy, r.update_max_steps) == (
        c.batch_size, c.d_steps, c.until_accuracy, c.max_d_steps)


def test_with_real_reward_wrapper(tokenizer):
    """The callback drives DiscriminatorRewardVector.update_discriminator with a real tiny discriminator."""
    from seqgan_env.envs.vector_env import TokenGenerationVectorEnv
    from seqgan_env.rewards.wrappers import DiscriminatorRewardVector
    from tests.conftest import tiny_discriminator

    disc = tiny_discriminator(tokenizer.vocab_size, seed=0)
    real = tokenizer.encode_batch(["abc", "cab"], 4)
    env = DiscriminatorRewardVector(TokenGenerationVectorEnv(2, tokenizer=tokenizer, max_length=4), disc,
                                    real_data=real, update_every=None)
    fake = tokenizer.encode_batch(["cc"], 4)
    cb = DiscriminatorUpdateCallback(env, lambda n: fake.repeat(n, 1),
                                     schedule(every=2, d_steps=2, batch_size=2))
    assert cb.on_generator_update() is None and disc.num_updates == 0
    m = cb.on_generator_update()
    assert {"discriminator/loss", "discriminator/acc_real", "discriminator/acc_fake"} <= set(m)
    assert m["discriminator/updates"] == 2 and disc.num_updates == 2


def test_replay_mixes_earlier_fakes_into_each_batch():
    cb, env, sampler = make(every=1, d_steps=1, batch_size=4, replay_fraction=0.5, replay_size=8)
    for _ in range(6):
        cb.on_generator_update()
    first = env.calls[0]
    assert torch.equal(first, torch.full((4, T), 1))  # nothing to replay yet: all fresh
    for i, batch in enumerate(env.calls[1:], start=2):
        fresh, replayed = batch[:2, 0].tolist(), batch[2:, 0].tolist()
        assert fresh == [i, i]  # the first half is this call's fresh sample
        # the replayed half comes from earlier fresh batches still in the buffer (8 rows = the last 2 calls)
        assert all(max(1, i - 2) <= v < i for v in replayed), (i, replayed)
    assert sampler.calls == [4] * 6


def test_until_accuracy_keeps_training_until_the_target():
    script = [{"acc_real": 0.5, "acc_fake": 0.5}, {"acc_real": 0.6, "acc_fake": 0.5},
              {"acc_real": 0.8, "acc_fake": 0.6}, {"acc_real": 0.5, "acc_fake": 0.5}]
    env = FakeRewardEnv(script=script * 5)
    cb = DiscriminatorUpdateCallback(env, lambda n: torch.zeros(n, T, dtype=torch.long),
                                     schedule(d_steps=1, batch_size=1, until_accuracy=0.65,
                                                               max_d_steps=5))
    m = cb.on_generator_update()
    assert m["discriminator/phase_steps"] == 3  # 0.5, 0.55, then 0.7 >= 0.65
    assert m["discriminator/acc_real"] == pytest.approx((0.5 + 0.6 + 0.8) / 3)
    m = cb.on_generator_update()  # 0.5, 0.5, 0.55, 0.7: stops on the 4th (scripts repeat)
    assert m["discriminator/phase_steps"] == 4
    env2 = FakeRewardEnv(script=[{"acc_real": 0.5, "acc_fake": 0.5}] * 10)
    cb2 = DiscriminatorUpdateCallback(env2, lambda n: torch.zeros(n, T, dtype=torch.long),
                                      schedule(d_steps=2, batch_size=1, until_accuracy=0.9,
                                                                max_d_steps=3))
    assert cb2.on_generator_update()["discriminator/phase_steps"] == 3  # capped at max_d_steps


def test_until_accuracy_decides_on_the_mean_over_ranks():
    """Data-parallel: two ranks whose local accuracies straddle the target stop after the same step."""
    local = {0: [0.6, 0.6, 0.6], 1: [0.8, 0.8, 0.8]}  # rank means: 0.7 >= 0.65 at once; rank 0 alone: never
    steps = {}
    for rank in (0, 1):
        script = [{"acc_real": a, "acc_fake": a} for a in local[rank]]
        env = FakeRewardEnv(script=script)
        seen: list[float] = []

        def mean_over_ranks(acc: float, rank: int = rank) -> float:
            seen.append(acc)
            return 0.5 * (local[0][len(seen) - 1] + local[1][len(seen) - 1])

        cb = DiscriminatorUpdateCallback(env, lambda n: torch.zeros(n, T, dtype=torch.long),
                                         schedule(d_steps=1, batch_size=1, until_accuracy=0.65,
                                                                   max_d_steps=3), mean_over_ranks)
        steps[rank] = cb.on_generator_update()["discriminator/phase_steps"]
        assert seen == [local[rank][0]]  # this rank's own accuracy goes into the mean
    assert steps == {0: 1, 1: 1}


@pytest.mark.parametrize("kw,needle", [
    (dict(replay_fraction=1.0), "replay_fraction"),
    (dict(replay_fraction=-0.1), "replay_fraction"),
    (dict(batch_size=64, replay_size=32), "replay_size"),
    (dict(until_accuracy=0.5), "until_accuracy"),
    (dict(until_accuracy=1.2), "until_accuracy"),
    (dict(d_steps=3, max_d_steps=2), "max_d_steps"),
])
def test_new_knobs_validated(kw, needle):
    with pytest.raises(ValueError, match=needle):
        DiscriminatorUpdateConfig(**kw)
