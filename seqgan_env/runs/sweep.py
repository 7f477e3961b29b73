"""Hyper-parameter sweeps with Optuna (TPE), resumable from a SQLite file.

A *search space* maps dotted ``TrainConfig`` keys to parameter specs (JSON or TOML)::

    {"reinforce.lr":         {"type": "float", "low": 1e-4, "high": 1e-2, "log": true},
     "reward.mode":          {"type": "categorical", "choices": ["per_step", "potential"]},
     "reinforce.batch_size": {"type": "int", "low": 16, "high": 128}}

    # TOML: one table per key, the dotted key quoted
    ["reinforce.lr"]
    type = "float"
    low = 1e-4
    high = 1e-2
    log = true

Spec fields: ``float``: low < high, optional ``log`` (needs low > 0) or ``step``;
``int``: int low < high, optional ``log`` (needs low >= 1) or ``step`` >= 1;
``categorical``: non-empty ``choices`` of str/int/float/bool/null.

Contract of :func:`run_sweep`
-----------------------------
* The study lives in ``<sweep_dir>/study.db`` (``sqlite:///``, ``load_if_exists``), and
  ``<sweep_dir>/sweep.json`` records the space, the sweep config and the base config; a
  rerun with the same ``sweep_dir`` resumes, and refuses a different space/metric/direction.
* It runs trials until ``sweep_config.trials`` trials are COMPLETE, counting those of
  earlier calls: completed trials are never rerun.  A trial interrupted by Ctrl-C is
  marked FAIL by Optuna (the KeyboardInterrupt propagates); one left RUNNING by a killed
  process is marked FAIL on the next call.  A trial that fails inside this call (an
  exception in ``catch``, a None/NaN result) is not replaced within the call.
* One sweep process per ``sweep_dir`` (a ``lock`` file with the owner's pid; a stale lock
  is taken over).
* The TPE sampler is seeded with ``seed + number of trials already in the study``, so a
  fresh sweep is reproducible and a resumed one does not replay the first suggestions.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import re
import tomllib
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seqgan_env.utils.atomic import atomic_write_text
from seqgan_env.utils.pidlock import PidLock
from seqgan_env.utils.validation import check_int, is_int, is_number

STUDY_NAME = "sweep"
SPEC_FILE = "sweep.json"
DIRECTIONS = ("minimize", "maximize")
TYPES = {
    "float": {"type", "low", "high", "log", "step"},
    "int": {"type", "low", "high", "log", "step"},
    "categorical": {"type", "choices"},
}
_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")

TrainFn = Callable[[dict, int], float]


@dataclass
class SweepConfig:
    """trials: COMPLETE trials to reach (>= 1); metric: what ``train_fn`` returns (for the
    record and summaries); direction: ``minimize`` | ``maximize``; seed: TPE sampler seed."""

    trials: int
    metric: str = "eval/bigram_nll"
    direction: str = "minimize"
    seed: int = 0

    def __post_init__(self) -> None:
        check_int("sweep trials", self.trials, 1, "e.g. 20")
        if not isinstance(self.metric, str) or not self.metric:
            raise ValueError(f"sweep metric={self.metric!r} is invalid: name a metrics.jsonl key, e.g. "
                             f"'eval/bigram_nll'.")
        if self.direction not in DIRECTIONS:
            raise ValueError(f"sweep direction={self.direction!r} is invalid: choose one of {list(DIRECTIONS)} "
                             f"('minimize' for eval/bigram_nll, 'maximize' for eval/uniqueness).")
        check_int("sweep seed", self.seed, 0)


# ----------------------------------------------------------------------------
# search space


def _check_spec(key: str, spec: Any) -> dict[str, Any]:
    where = f"search space key '{key}'"
    if not isinstance(key, str) or not _KEY_RE.match(key):
        raise ValueError(f"{where} is not a dotted config key; use e.g. 'reinforce.lr'.")
    if not isinstance(spec, dict):
        raise ValueError(f"{where} must map to a table/object such as {{\"type\": \"float\", \"low\": 1e-4, "
                         f"\"high\": 1e-2}}, got {spec!r}.")
    kind = spec.get("type")
    if kind not in TYPES:
        raise ValueError(f"{where} has type={kind!r}: unknown type; use one of {sorted(TYPES)}.")
    extra = sorted(set(spec) - TYPES[kind])
    if extra:
        raise ValueError(f"{where} ({kind}) has unknown field(s) {extra}; allowed: {sorted(TYPES[kind])}.")
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list) or not choices:
            raise ValueError(f"{where} needs a non-empty list 'choices', got {choices!r}; list at least one value.")
        bad = [c for c in choices if c is not None and not isinstance(c, (str, bool, int, float))]
        if bad:
            raise ValueError(f"{where} has choices {bad!r} that are not str/int/float/bool/null; use plain values.")
        if len({json.dumps(c) for c in choices}) != len(choices):
            raise ValueError(f"{where} has repeated choices {choices!r}; list each value once.")
        return {"type": kind, "choices": list(choices)}
    low, high = spec.get("low"), spec.get("high")
    check = is_int if kind == "int" else is_number
    if not check(low) or not check(high):
        raise ValueError(f"{where} ({kind}) needs numeric 'low' and 'high'{' (ints)' if kind == 'int' else ''}, "
                         f"got low={low!r}, high={high!r}.")
    if low >= high:
        raise ValueError(f"{where} has low={low!r} >= high={high!r}; low must be below high (swap them).")
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise ValueError(f"{where} has log={log!r}; it must be true or false.")
    out: dict[str, Any] = {"type": kind, "low": low if kind == "int" else float(low),
                           "high": high if kind == "int" else float(high), "log": log}
    if log and low < (1 if kind == "int" else math.ulp(0.0)):
        raise ValueError(f"{where} has log=true with low={low!r}; a log scale needs low > 0 (int: >= 1).")
    if "step" in spec:
        step = spec["step"]
        if not check(step) or step <= 0:
            raise ValueError(f"{where} has step={step!r}; it must be a positive {kind}.")
        if log:
            raise ValueError(f"{where} sets both log=true and step; Optuna supports only one of them, drop one.")
        out["step"] = step
    return out


def validate_space(space: Any, config_cls: type | None = None) -> dict[str, dict[str, Any]]:
    """Check a search space (see the module docstring) and return it normalised.

    With ``config_cls`` (e.g. ``TrainConfig``) every key must name a non-section field.
    Errors are ValueErrors naming the key, the bad value and the fix.
    """
    if not isinstance(space, dict) or not space:
        raise ValueError(f"search space must be a non-empty table/object of parameters, got {space!r:.200}; "
                         f"e.g. {{\"reinforce.lr\": {{\"type\": \"float\", \"low\": 1e-4, \"high\": 1e-2}}}}.")
    out = {key: _check_spec(key, spec) for key, spec in space.items()}
    if config_cls is not None:
        for key in out:
            _check_key(key, config_cls)
    return out


def _check_key(key: str, config_cls: type) -> None:
    node = config_cls
    parts = key.split(".")
    for depth, part in enumerate(parts):
        fields = {f.name for f in dataclasses.fields(node)}
        if part not in fields:
            where = ".".join(parts[:depth]) or "the top level"
            raise ValueError(f"search space key '{key}': unknown key '{part}' under {where}; valid keys: "
                             f"{sorted(fields)}.")
        tp = typing.get_type_hints(node)[part]
        is_section = isinstance(tp, type) and dataclasses.is_dataclass(tp)
        if depth == len(parts) - 1 and is_section:
            raise ValueError(f"search space key '{key}' is a section; sweep one of its keys, e.g. '{key}.<name>'.")
        if depth < len(parts) - 1 and not is_section:
            raise ValueError(f"search space key '{key}': '{'.'.join(parts[: depth + 1])}' is not a section.")
        node = tp


def load_space(path: str | os.PathLike, config_cls: type | None = None) -> dict[str, dict[str, Any]]:
    """Read and validate a search space from a ``.json`` or ``.toml`` file."""
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"search space file '{p}' does not exist; check the path.")
    if p.suffix not in (".json", ".toml"):
        raise ValueError(f"search space file '{p}' must end in .json or .toml.")
    try:
        text = p.read_text(encoding="utf-8")
        data = tomllib.loads(text) if p.suffix == ".toml" else json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError, tomllib.TOMLDecodeError) as e:
        raise ValueError(f"search space file '{p}' is not valid {p.suffix[1:].upper()}: {e}") from None
    try:
        return validate_space(data, config_cls)
    except ValueError as e:
        raise ValueError(f"{p}: {e}") from None


# ----------------------------------------------------------------------------
# running


def _suggest(trial: Any, key: str, spec: dict[str, Any]) -> Any:
    if spec["type"] == "categorical":
        return trial.suggest_categorical(key, spec["choices"])
    suggest = trial.suggest_int if spec["type"] == "int" else trial.suggest_float
    kwargs: dict[str, Any] = {"log": spec["log"]}
    if "step" in spec:
        kwargs["step"] = spec["step"]
    return suggest(key, spec["low"], spec["high"], **kwargs)


def set_dotted(config: dict, key: str, value: Any) -> None:
    """``config["a"]["b"] = value`` for ``key="a.b"``, creating missing sections."""
    *sections, last = key.split(".")
    node = config
    for part in sections:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ValueError(f"cannot set '{key}': '{part}' in the base config is not a section.")
    node[last] = value


def trial_config(base_config: dict, params: dict[str, Any], number: int, run_root: str | None) -> dict:
    """The config dict of trial ``number``: ``base_config`` with ``params`` applied, name ``<name>-t003``
    and ``out_dir`` = ``run_root`` (unless None)."""
    cfg = copy.deepcopy(base_config)
    for key, value in params.items():
        set_dotted(cfg, key, value)
    cfg["name"] = f"{cfg.get('name') or 'sweep'}-t{number:03d}"
    if run_root is not None:
        cfg["out_dir"] = run_root
    return cfg


def _record_spec(sweep_dir: Path, space: dict, base_config: dict, sweep_config: SweepConfig) -> None:
    spec = {"space": space, "metric": sweep_config.metric, "direction": sweep_config.direction,
            "seed": sweep_config.seed, "base_config": base_config}
    path = sweep_dir / SPEC_FILE
    if path.is_file():
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise ValueError(f"{path} is unreadable ({e}); restore it or start the sweep in a new directory.") from e
        for key in ("space", "metric", "direction"):
            if old.get(key) != json.loads(json.dumps(spec[key])):
                raise ValueError(f"sweep '{sweep_dir}' was started with a different {key} ({old.get(key)!r}); "
                                 f"resume it with the same {key}, or use a new sweep directory.")
        return
    atomic_write_text(path, json.dumps(spec, indent=2, allow_nan=False) + "\n")


def check_space_values(space: dict[str, dict[str, Any]], base_config_dict: dict,
                       check_config: Callable[[dict], Any]) -> None:
    """``check_config`` on the base config with each key at its low and high (each choice of a categorical);
    the first value it refuses is named with its key and the fix."""
    for key, spec in space.items():
        values = spec["choices"] if spec["type"] == "categorical" else [spec["low"], spec["high"]]
        for value in values:
            try:
                check_config(trial_config(base_config_dict, {key: value}, 0, None))
            except (ValueError, TypeError) as exc:
                what = "choice" if spec["type"] == "categorical" else ("low" if value == spec["low"] else "high")
                raise ValueError(f"search space key '{key}': {what} {value!r} is refused by the config ("
                                 f"{str(exc).rstrip('.')}); fix: narrow the range (or drop the choice) to values the "
                                 f"config accepts.") from None


def run_sweep(sweep_dir: str | os.PathLike, space: dict, base_config_dict: dict, sweep_config: SweepConfig,
              train_fn: TrainFn, config_cls: type | None = None, run_root: str | None = "runs",
              catch: tuple[type[Exception], ...] = (FloatingPointError,),
              check_config: Callable[[dict], Any] | None = None):
    """Run (or resume) a TPE sweep; returns the ``optuna.Study`` (contract in the module docstring).

    ``train_fn(config_dict, trial_number) -> float`` trains one run from a full config dict
    (``base_config_dict`` — pass ``config_to_dict(cfg)`` — with the trial's parameters set,
    ``name`` suffixed ``-t<number>`` and ``out_dir`` = ``<sweep_dir>/<run_root>``, or unchanged
    if ``run_root`` is None) and returns ``sweep_config.metric``.  ``config_cls`` (e.g.
    ``TrainConfig``) checks the space's keys before any trial runs.  Exceptions in ``catch``
    fail the trial and the sweep goes on; others (and Ctrl-C) fail it and propagate.
    ``check_config(config_dict)`` (e.g. ``train_config_from_dict``) is called before any trial, and before the
    sweep directory exists, on the base config with each key at each end of its range (each choice of a
    categorical): a value the config refuses is named with its key, instead of failing trials.
    """
    import optuna
    from optuna.trial import TrialState

    if not isinstance(sweep_config, SweepConfig):
        raise TypeError(f"sweep_config must be a SweepConfig, got {type(sweep_config).__name__}.")
    if not isinstance(base_config_dict, dict):
        raise TypeError(f"base_config_dict must be a dict (config_to_dict(cfg)), got {type(base_config_dict).__name__}.")
    space = validate_space(space, config_cls)
    if check_config is not None:
        check_space_values(space, base_config_dict, check_config)
    sweep_dir = Path(sweep_dir)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    root = None if run_root is None else str(sweep_dir / run_root)
    lock = PidLock(sweep_dir / "lock",
                   in_use=lambda pid: (f"sweep '{sweep_dir}' is in use by process {pid}; wait for it or stop it, "
                                       f"or use another sweep directory."),
                   unlockable=f"could not lock sweep '{sweep_dir}'; remove '{sweep_dir / 'lock'}' if no sweep uses it.")
    with lock:
        _record_spec(sweep_dir, space, base_config_dict, sweep_config)
        storage = optuna.storages.RDBStorage(f"sqlite:///{(sweep_dir / 'study.db').resolve()}")
        study = optuna.create_study(study_name=STUDY_NAME, storage=storage, direction=sweep_config.direction,
                                    load_if_exists=True)
        study_id = storage.get_study_id_from_name(STUDY_NAME)
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):  # left by a killed process
            storage.set_trial_state_values(storage.get_trial_id_from_study_id_trial_number(study_id, t.number),
                                           TrialState.FAIL)
        study.set_user_attr("metric", sweep_config.metric)
        study.sampler = optuna.samplers.TPESampler(seed=sweep_config.seed + len(study.trials))
        done = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
        remaining = sweep_config.trials - done

        def objective(trial: optuna.Trial) -> float:
            params = {key: _suggest(trial, key, spec) for key, spec in space.items()}
            config = trial_config(base_config_dict, params, trial.number, root)
            trial.set_user_attr("run_name", config["name"])
            value = train_fn(config, trial.number)
            if value is None:
                raise ValueError(f"train_fn returned None for trial {trial.number}: the run logged no "
                                 f"'{sweep_config.metric}' (is schedule.eval_every <= schedule.updates?).")
            return float(value)

        if remaining > 0:
            study.optimize(objective, n_trials=remaining, catch=catch)
    return study


def best_trial_summary(study: Any) -> str:
    """One paragraph: best value and parameters, and how many trials completed / failed."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    counts = ", ".join(f"{sum(t.state == s for t in trials)} {s.name.lower()}"
                       for s in TrialState if any(t.state == s for t in trials))
    metric = study.user_attrs.get("metric", "value")
    direction = study.direction.name.lower()
    if not complete:
        return f"no completed trial yet ({counts or '0 trials'}); {metric} ({direction})."
    best = study.best_trial
    width = max(len(k) for k in best.params) if best.params else 0
    lines = [f"best trial #{best.number}: {metric} = {best.value:.6g} ({direction}); {len(trials)} trial(s): {counts}"]
    if best.user_attrs.get("run_name"):
        lines.append(f"  run name: {best.user_attrs['run_name']}")
    for key, value in best.params.items():
        lines.append(f"  {key.ljust(width)} = {value!r}")
    return "\n".join(lines)
