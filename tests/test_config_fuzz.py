"""Property: every validated TrainConfig field, given a bad value through the CLI, ends cleanly.

For each leaf field of ``TrainConfig`` (the nested dataclasses walked), hypothesis draws a value that field
must refuse (a string for a number, a fraction for an int, NaN / inf, a negative, zero where >= 1 is needed,
a number outside a [0, 1]-style range, an unknown choice, a tuple of the wrong length...) and passes it as
``seqgan-env train --set section.field=VALUE --out-dir TMP``, in-process. The contract: exit 2, one line on
stderr that names the field, no traceback, nothing written under TMP. A value the config accepts is a bug
(the run would start): ``new_run`` is replaced by a stub that fails the example, so no training runs.
"""

from __future__ import annotations

import json
import types
import typing

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import seqgan_agents.lifecycle as lifecycle
from seqgan_agents.trainer_config import TrainConfig
from seqgan_env.cli import main
from seqgan_env.runs.confighelp import iter_fields

FIELDS = {f.key: f.type for f in iter_fields(TrainConfig())}

#: int fields where 0 is a valid value (the others need >= 1)
ZERO_OK = {"seed", "data.min_length", "schedule.pretrain_steps", "schedule.d_pretrain_steps"}
#: float fields that take any finite number >= 0 (or any finite number: potential_baseline); the other float
#: fields are bounded by 1 (probabilities, shares, discounts, dropouts, labels) and refuse 1.5
ABOVE_ONE_OK = {"reinforce.entropy_coef", "reinforce.temperature", "reinforce.max_grad_norm", "reinforce.lr",
                "reinforce.weight_decay", "reinforce.mle_coef", "reinforce.kl_coef", "reinforce.kl_target",
                "reward.potential_baseline", "mc_rollout.temperature", "generator.rope_theta",
                "discriminator_model.rope_theta", "discriminator.lr", "discriminator.weight_decay",
                "discriminator.max_grad_norm", "ppo.lr", "ppo.clip_range", "ppo.ent_coef", "alarms.oscillation_min_std",
                "ddo.beta", "ddo.alpha", "ddo.lr", "ddo.mle_coef"}
NEGATIVE_OK = {"reward.potential_baseline"}
#: ints with an upper bound: a value above it
HUGE = {"seed": 2**32, "tokenizer.vocab_size": 2**18 + 1}
#: fields whose bad values are not validated yet (DataConfig is being reworked elsewhere): known gaps, see the report
KNOWN_GAPS: set[str] = set()  # fields the test knows are not validated yet (none)

words = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=8).filter(
    lambda w: w not in ("true", "false", "null", "none", "nan", "inf", "infinity"))
as_json_string = words.map(json.dumps)  # "abc": a JSON string where a number or a choice is needed


def _base(tp):
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if typing.get_origin(tp) in (typing.Union, types.UnionType) and len(args) == 1:
        return args[0]
    return tp


def bad_values(key: str) -> st.SearchStrategy[str] | None:
    """Raw ``--set`` values (parsed as JSON by the CLI) that field ``key`` must refuse; None: nothing to refuse."""
    tp = _base(FIELDS[key])
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        return st.one_of(words.filter(lambda w: w not in typing.get_args(tp)), st.integers().map(str))
    if origin is tuple:
        n = len(typing.get_args(tp))
        return st.one_of(st.lists(st.floats(0, 0.5), min_size=0, max_size=n + 2).filter(lambda v: len(v) != n)
                         .map(json.dumps), as_json_string, st.lists(words, min_size=n, max_size=n).map(json.dumps))
    if tp is bool:
        return st.one_of(as_json_string, st.integers(2, 10**6).map(str))
    if tp is int:
        low = 0 if key in ZERO_OK else 1
        options = [as_json_string, st.integers(-10**9, low - 1).map(str),
                   st.floats(-1e6, 1e6).filter(lambda x: x != int(x)).map(repr), st.sampled_from(["true", "false"])]
        if key in HUGE:
            options.append(st.integers(HUGE[key], 10**30).map(str))
        return st.one_of(options)
    if tp is float:
        options = [as_json_string, st.sampled_from(["NaN", "Infinity", "-Infinity", "true"])]
        if key not in NEGATIVE_OK:
            options.append(st.floats(-1e6, -1e-3).map(repr))
        if key not in ABOVE_ONE_OK:
            options.append(st.floats(1.5, 1e6).map(repr))
        return st.one_of(options)
    return None  # free text (names, paths, specs): checked elsewhere, not by type


VALIDATED = sorted(k for k in FIELDS if bad_values(k) is not None and k not in KNOWN_GAPS)


def test_every_numeric_choice_and_flag_field_is_covered():
    kinds = {k: _base(FIELDS[k]) for k in VALIDATED}
    assert len(VALIDATED) >= 100, len(VALIDATED)  # a new field of one of these types is drawn from automatically
    assert {"seed", "agent", "reward_scorer", "reward.mode", "reward.transform", "schedule.updates"} <= set(kinds)


class Accepted(Exception):
    pass


@pytest.fixture
def no_runs(monkeypatch):
    def accepted(config):
        raise Accepted(config)

    monkeypatch.setattr(lifecycle, "new_run", accepted)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_bad_value_of_any_field_exits_2_with_one_line(data, tmp_path_factory, capsys, no_runs):
    key = data.draw(st.sampled_from(VALIDATED), label="field")
    value = data.draw(bad_values(key), label="value")
    out_dir = tmp_path_factory.mktemp("out")
    capsys.readouterr()
    try:
        rc = main(["train", "--set", f"{key}={value}", "--out-dir", str(out_dir / "runs"), "--no-progress"])
    except Accepted:
        pytest.fail(f"--set {key}={value} was accepted: {key}'s validation lets it through")
    except SystemExit as exc:  # argparse / tyro
        rc = exc.code
    out, err = capsys.readouterr()
    assert rc == 2, (key, value, rc, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, (key, value, err)
    name = key.rsplit(".", 1)[-1]
    assert name in lines[0] or key in lines[0], (key, value, lines[0])
    assert "Traceback" not in out + err
    assert list(out_dir.iterdir()) == [], (key, value)


def test_a_bad_choice_given_to_the_shortcut_is_one_argparse_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "--agent", "bad"])
    assert exc.value.code == 2
    assert "invalid choice: 'bad'" in capsys.readouterr().err


@pytest.mark.parametrize("key, value, message", [
    ("reward.mode", "bad", "reward mode 'bad' is unknown"),
    ("reward.transform", "bad", "reward transform 'bad' is unknown"),
    ("agent", "bad", "agent='bad' is unknown"),
    ("reward_scorer", "bad", "reward_scorer='bad' is unknown"),
])
def test_literal_fields_keep_their_messages(key, value, message, capsys, tmp_path):
    assert main(["train", "--set", f"{key}={value}", "--out-dir", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "choose one of" in err
    assert not (tmp_path / "r").exists()
