"""Tests for seqgan_env.runs.alarms: each alarm provoked on purpose, silent on healthy inputs."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from seqgan_env.runs.alarms import (
    ALARM_NAMES,
    EVAL_ALARMS,
    SAMPLE_ALARMS,
    UPDATE_ALARMS,
    Alarm,
    AlarmConfig,
    AlarmMonitor,
    alarm_metrics,
)

HEALTHY_NAMES = ["anna", "michael", "kristen", "paulo", "lila", "venie", "soncy", "teroine", "micola", "kym",
                 "welte", "malci", "pernitr", "michalle", "danell", "fermin", "murlie", "kristan", "dora", "bob"]


def names(alarms: list[Alarm]) -> list[str]:
    return [a.name for a in alarms]


# ----------------------------------------------------------------------------
# config


@pytest.mark.parametrize(
    "field, value, match",
    [
        ("short_len", 0, "short_len=0 .*int >= 1"),
        ("short_len", 1.5, "short_len=1.5"),
        ("empty_share", 1.5, r"empty_share=1.5 .*\[0, 1\]"),
        ("min_uniqueness", -0.1, "min_uniqueness"),
        ("max_symbol_share", float("nan"), "max_symbol_share"),
        ("d_overpower_acc", True, "d_overpower_acc"),
        ("d_overpower_patience", 0, "d_overpower_patience=0"),
        ("oscillation_window", 2, "oscillation_window=2 .*>= 3"),
        ("oscillation_sign_changes", 2, "oscillation_sign_changes"),
        ("oscillation_min_std", -1.0, "oscillation_min_std=-1.0 .*>= 0"),
        ("enabled", "yes", "enabled"),
    ],
)
def test_config_validation_names_value_and_range(field, value, match):
    with pytest.raises(ValueError, match=match):
        AlarmConfig(**{field: value})


def test_default_config_values():
    cfg = AlarmConfig()
    assert (cfg.short_len, cfg.empty_share, cfg.min_uniqueness, cfg.max_symbol_share) == (2, 0.5, 0.5, 0.5)
    assert (cfg.d_overpower_acc, cfg.d_overpower_patience) == (0.99, 20)
    assert (cfg.oscillation_window, cfg.oscillation_sign_changes, cfg.oscillation_min_std) == (20, 0.6, 0.05)
    assert cfg.enabled is True


# ----------------------------------------------------------------------------
# samples


@pytest.mark.parametrize(
    "texts, expected",
    [
        (HEALTHY_NAMES, []),
        ([], []),
        # EOS collapse: 15 of 20 samples empty or one symbol
        ([""] * 10 + ["a", "b", "c", "d", "e"] + HEALTHY_NAMES[:5], ["eos_collapse"]),
        # exactly at the share: not above it
        ([""] * 10 + HEALTHY_NAMES[:10], []),
        # mode collapse by uniqueness: 3 distinct of 20
        (["anna"] * 10 + ["michael"] * 5 + ["kristen"] * 5, ["mode_collapse"]),
        # mode collapse by symbol share: all distinct, but 'z' dominates
        (["z" * k + c for k in range(2, 12) for c in "ab"], ["mode_collapse"]),
        # both: all empty but one → EOS collapse and uniqueness 2/20
        ([""] * 19 + ["anna"], ["eos_collapse", "mode_collapse"]),
    ],
)
def test_check_samples(texts, expected):
    alarms = AlarmMonitor().check_samples(texts)
    assert sorted(set(names(alarms))) == expected
    for a in alarms:
        assert f"{a.threshold}" in a.message or f"{a.threshold:.0%}" in a.message
        assert "Try" in a.message and a.new


def test_eos_collapse_value_and_threshold():
    (a,) = AlarmMonitor(AlarmConfig(short_len=3)).check_samples(["ab", "c", "", "anna"])
    assert a.name == "eos_collapse" and a.value == pytest.approx(0.75) and a.threshold == 0.5
    assert "75% of 4 samples are shorter than 3 symbols" in a.message


def test_symbol_share_alarm_names_the_symbol():
    alarms = AlarmMonitor().check_samples(["zzzzzza", "zzzzzb", "zzzzc", "zzzzd"])
    (a,) = alarms
    assert a.name == "mode_collapse" and "'z'" in a.message and a.value > 0.5


def test_check_samples_rejects_a_string():
    with pytest.raises(ValueError, match="list of str"):
        AlarmMonitor().check_samples("anna")


# ----------------------------------------------------------------------------
# discriminator overpowering


def feed_acc(monitor: AlarmMonitor, accs) -> list[list[str]]:
    return [names(monitor.check_update({"discriminator/acc_fake": acc})) for acc in accs]


def test_d_overpower_after_patience():
    monitor = AlarmMonitor(AlarmConfig(d_overpower_patience=3))
    out = feed_acc(monitor, [1.0, 0.995, 1.0, 1.0])
    assert out == [[], [], ["d_overpower"], ["d_overpower"]]


@pytest.mark.parametrize(
    "accs, fired_at",
    [
        ([1.0, 1.0, 0.5, 1.0, 1.0], []),  # a dip resets the count
        ([1.0, 1.0, 0.99, 1.0, 1.0, 1.0], [5]),  # equal to the threshold is not above it: reset
        ([1.0, 1.0, None, 1.0], [3]),  # an update without D accuracy neither extends nor resets
        ([0.9] * 10, []),  # healthy
    ],
)
def test_d_overpower_patience_counting(accs, fired_at):
    monitor = AlarmMonitor(AlarmConfig(d_overpower_patience=3))
    out = []
    for acc in accs:
        metrics = {"reward_mean": 0.5} if acc is None else {"discriminator/acc_fake": acc}
        out.append(names(monitor.check_update(metrics)))
    assert [i for i, n in enumerate(out) if "d_overpower" in n] == fired_at


def test_alarm_new_only_on_first_check_of_a_stretch():
    monitor = AlarmMonitor(AlarmConfig(d_overpower_patience=2))
    flags = [[a.new for a in monitor.check_update({"discriminator/acc_fake": acc})]
             for acc in [1.0, 1.0, 1.0, 0.1, 1.0, 1.0]]
    assert flags == [[], [True], [False], [], [], [True]]


# ----------------------------------------------------------------------------
# reward oscillation


def feed_rewards(monitor: AlarmMonitor, rewards) -> list[list[str]]:
    return [names(monitor.check_update({"reward_mean": r})) for r in rewards]


def test_oscillation_fires_on_a_swinging_reward():
    rewards = [0.5 + 0.2 * (-1) ** i for i in range(20)]
    out = feed_rewards(AlarmMonitor(), rewards)
    assert out[:19] == [[]] * 19  # window not full yet
    assert out[19] == ["reward_oscillation"]


@pytest.mark.parametrize(
    "rewards",
    [
        [0.01 * i for i in range(40)],  # steadily rising
        [0.5 + 0.01 * (-1) ** i for i in range(40)],  # alternating, but std 0.01 < 0.05: noise
        list(0.5 + 0.02 * np.random.default_rng(0).standard_normal(40)),  # i.i.d. noise, small
        [0.5 + 0.3 * math.sin(i / 6) for i in range(40)],  # large but slow swing: few sign changes
    ],
)
def test_oscillation_silent_on_healthy_rewards(rewards):
    assert all(n == [] for n in feed_rewards(AlarmMonitor(), rewards))


def test_oscillation_value_threshold_and_nonfinite_skipped():
    monitor = AlarmMonitor(AlarmConfig(oscillation_window=5))
    out = feed_rewards(monitor, [0.0, 1.0, None, float("nan"), 0.0, 1.0, 0.0])
    assert out[-1] == ["reward_oscillation"] and all(n == [] for n in out[:-1])
    (a,) = monitor.check_update({"reward_mean": 1.0})
    assert a.value == pytest.approx(1.0) and a.threshold == 0.6 and not a.new
    assert "100%" in a.message and "std 0.490" in a.message


# ----------------------------------------------------------------------------
# state, disabling, metrics


def test_state_dict_survives_resume_through_json():
    cfg = AlarmConfig(d_overpower_patience=4, oscillation_window=6)
    seq = [{"discriminator/acc_fake": 1.0, "reward_mean": 0.5 + 0.3 * (-1) ** i} for i in range(10)]
    straight = AlarmMonitor(cfg)
    expected = [[(a.name, a.new) for a in straight.check_update(m)] for m in seq]

    first = AlarmMonitor(cfg)
    got = [[(a.name, a.new) for a in first.check_update(m)] for m in seq[:5]]
    state = json.loads(json.dumps(first.state_dict()))
    resumed = AlarmMonitor(cfg)
    resumed.load_state_dict(state)
    got += [[(a.name, a.new) for a in resumed.check_update(m)] for m in seq[5:]]
    assert got == expected
    assert resumed.state_dict() == straight.state_dict()


@pytest.mark.parametrize(
    "state, match",
    [
        ({}, "version"),
        ({"version": 1, "d_streak": -1, "rewards": [], "active": []}, "d_streak"),
        ({"version": 1, "d_streak": 0, "rewards": ["x"], "active": []}, "rewards"),
        ({"version": 1, "d_streak": 0, "rewards": [], "active": ["bogus"]}, "active"),
    ],
)
def test_load_state_dict_rejects_bad_state(state, match):
    with pytest.raises(ValueError, match=match):
        AlarmMonitor().load_state_dict(state)


def test_load_state_dict_keeps_newest_rewards_for_a_smaller_window():
    big = AlarmMonitor(AlarmConfig(oscillation_window=10))
    for i in range(10):
        big.check_update({"reward_mean": float(i)})
    small = AlarmMonitor(AlarmConfig(oscillation_window=3))
    small.load_state_dict(big.state_dict())
    assert small.state_dict()["rewards"] == [7.0, 8.0, 9.0]


def test_disabled_monitor_is_silent():
    monitor = AlarmMonitor(AlarmConfig(enabled=False, d_overpower_patience=1))
    assert monitor.check_samples([""] * 10) == []
    assert monitor.check_update({"discriminator/acc_fake": 1.0}) == []
    assert monitor.state_dict()["d_streak"] == 0


@pytest.mark.parametrize(
    "raised, checked, expected",
    [
        ([], (), {}),
        (["mode_collapse", "mode_collapse"], (), {"alarm/mode_collapse": 1.0}),
        (["d_overpower"], UPDATE_ALARMS, {"alarm/d_overpower": 1.0, "alarm/reward_oscillation": 0.0}),
        ([], SAMPLE_ALARMS, {"alarm/eos_collapse": 0.0, "alarm/mode_collapse": 0.0}),
    ],
)
def test_alarm_metrics(raised, checked, expected):
    alarms = [Alarm(n, "msg", 1.0, 0.5) for n in raised]
    assert alarm_metrics(alarms, checked) == expected


def test_alarm_names_cover_every_group():
    assert set(ALARM_NAMES) == set(SAMPLE_ALARMS) | set(UPDATE_ALARMS) | set(EVAL_ALARMS)
    assert str(Alarm("d_overpower", "m", 1.0, 2.0)) == "alarm d_overpower: m"


@pytest.mark.parametrize("aucs,fires", [([0.5, 0.52, 0.54], True), ([0.5, 0.6, 0.5], False), ([0.5, 0.5], False)])
def test_d_uninformative_after_patience_evaluations(aucs, fires):
    monitor = AlarmMonitor(AlarmConfig(d_uninformative_auc=0.55, d_uninformative_patience=3))
    raised = []
    for auc in aucs:
        raised = monitor.check_eval({"d_auc": auc})
    assert bool(raised) is fires
    if fires:
        assert raised[0].name == "d_uninformative" and "0.540" in raised[0].message


def test_d_uninformative_streak_survives_resume():
    a = AlarmMonitor()
    a.check_eval({"d_auc": 0.5})
    a.check_eval({"d_auc": 0.5})
    b = AlarmMonitor()
    b.load_state_dict(a.state_dict())
    assert [x.name for x in b.check_eval({"d_auc": 0.5})] == ["d_uninformative"]
