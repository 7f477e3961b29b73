"""Tests for seqgan_env.runs.experiments: status, listing, diffs, notes, seed groups.

Run directories are made with the real ``RunDir`` and filled by hand (no training).
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from seqgan_env.runs import experiments as ex
from seqgan_env.runs.rundir import RunDir


def make_config(seed: int = 0, updates: int = 10, **sections) -> dict:
    cfg = {
        "name": "exp",
        "seed": seed,
        "agent": "reinforce",
        "data": {"path": "names.txt", "max_length": 12},
        "schedule": {"updates": updates, "eval_every": 5},
        "reinforce": {"batch_size": 128, "lr": 2e-3, "gamma": 1.0},
        "reward": {"mode": "potential", "transform": "prob"},
        "d_updates": {"every": 1},
    }
    for section, values in sections.items():
        cfg[section] = {**cfg.get(section, {}), **values}
    return cfg


@pytest.fixture
def data_file(tmp_path):
    p = tmp_path / "names.txt"
    p.write_text("anna\nbob\ncarl\n", encoding="utf-8")
    return p


def make_run(root, data_file, *, name="exp", steps=0, cfg=None, metrics=None, checkpoint=False, export=False):
    """A run with ``steps`` per-update lines (reward_mean = step / 10) and an eval line every 5 steps."""
    cfg = cfg or make_config()
    run = RunDir.create(root, name, cfg, data_path=data_file, tensorboard=False)
    for step in range(1, steps + 1):
        run.log_metrics(step, {"reward_mean": step / 10, "discriminator/loss": 1.0 / step})
        if step % 5 == 0:
            run.log_metrics(step, {"eval/bigram_nll": 3.0 - step / 10, "eval/uniqueness": 0.9})
    for step, row in metrics or []:
        run.log_metrics(step, row)
    if checkpoint:
        run.save_checkpoint(max(steps, 1), {"agent": {"w": torch.zeros(2)}}, {})
    if export:
        (run.path / "generator").mkdir()
        (run.path / "generator" / "config.json").write_text("{}")
    run.close()
    return run.path


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# ----------------------------------------------------------------------------
# status and listing


@pytest.mark.parametrize(
    "kwargs, lock, expected",
    [
        (dict(steps=3, export=True), None, "finished"),  # generator export
        (dict(steps=10), None, "finished"),  # last step == schedule.updates
        (dict(steps=3, checkpoint=True), None, "stopped"),  # interrupted with a checkpoint
        (dict(steps=3), None, "crashed"),  # nothing to resume from
        (dict(steps=0), None, "crashed"),  # no metrics at all
        (dict(steps=3), "live", "running"),
        (dict(steps=10), "live", "running"),  # the lock wins while its process lives
        (dict(steps=3), "dead", "crashed"),  # a stale lock of a dead process
        (dict(steps=3, checkpoint=True), "dead", "stopped"),
    ],
)
def test_run_status(tmp_path, data_file, kwargs, lock, expected):
    path = make_run(tmp_path / "runs", data_file, **kwargs)
    if lock:
        (path / "lock").write_text(str(ex.os.getpid() if lock == "live" else dead_pid()))
    assert ex.run_status(path) == expected
    assert ex.summarize_run(path)["status"] == expected


def test_run_status_rejects_a_non_run(tmp_path):
    with pytest.raises(ValueError, match="not a run directory"):
        ex.run_status(tmp_path)


def test_list_runs_sorted_with_statuses_and_knobs(tmp_path, data_file):
    root = tmp_path / "runs"
    a = make_run(root, data_file, name="first", steps=10)
    b = make_run(root, data_file, name="second", steps=3, checkpoint=True,
                 cfg=make_config(seed=7, reinforce={"batch_size": 64, "lr": 1e-3, "gamma": 0.95},
                                 reward={"mode": "per_step", "transform": "log"}, d_updates={"every": 3}))
    c = make_run(root, data_file, name="third", steps=2)
    (c / "lock").write_text(str(ex.os.getpid()))
    ex.write_note(b, "per-step log reward, lower lr")
    (root / "not-a-run").mkdir()  # ignored: no config.json

    rows = ex.list_runs(root)
    assert [r["path"] for r in rows] == [str(a), str(b), str(c)]
    assert [r["status"] for r in rows] == ["finished", "stopped", "running"]
    first, second = rows[0], rows[1]
    assert first["reward_mean"] == pytest.approx(1.0) and first["d_loss"] == pytest.approx(0.1)
    assert first["bigram_nll"] == pytest.approx(2.0) and first["uniqueness"] == pytest.approx(0.9)
    assert first["data"] == "names.txt" and first["step"] == 10 and first["note"] == ""
    assert second == {**second, "seed": 7, "batch_size": 64, "lr": 1e-3, "gamma": 0.95, "d_every": 3,
                      "reward": "per_step/log", "agent": "reinforce", "note": "per-step log reward, lower lr"}
    assert second["bigram_nll"] is None  # no eval yet

    table = ex.format_runs_table(rows)
    lines = table.splitlines()
    assert len(lines) == 4 and lines[0].split()[:3] == ["name", "created", "status"]
    assert "per-step log reward" in lines[2] and "stopped" in lines[2] and "per_step/log" in lines[2]
    assert lines[1].index("finished") == lines[2].index("stopped") == lines[3].index("running")  # fixed width


def test_list_runs_missing_root_and_unreadable_run(tmp_path, data_file):
    assert ex.list_runs(tmp_path / "nowhere") == []
    assert ex.format_runs_table([]) == "(no runs)"
    good = make_run(tmp_path / "runs", data_file, steps=2)
    bad = make_run(tmp_path / "runs", data_file, name="bad", steps=2)
    with open(bad / "metrics.jsonl", "a") as f:
        f.write("{not json\n{\"step\": 3}\n")
    rows = ex.list_runs(tmp_path / "runs")
    by_path = {r["path"]: r for r in rows}
    assert by_path[str(good)]["status"] == "crashed"
    assert by_path[str(bad)]["status"] == "unreadable" and "corrupt line" in by_path[str(bad)]["error"]
    assert "unreadable" in ex.format_runs_table(rows)


def test_final_metric(tmp_path, data_file):
    path = make_run(tmp_path / "runs", data_file, steps=10, metrics=[(11, {"reward_mean": float("nan")})])
    assert ex.final_metric(path, "eval/bigram_nll") == pytest.approx(2.0)
    assert ex.final_metric(path, "reward_mean") is None  # last value non-finite (logged as null)
    assert ex.final_metric(path, "nope") is None


# ----------------------------------------------------------------------------
# flatten and diff


@pytest.mark.parametrize(
    "nested, flat",
    [
        ({}, {}),
        ({"a": 1}, {"a": 1}),
        ({"a": {"b": 1, "c": {"d": [1, 2]}}, "e": None}, {"a.b": 1, "a.c.d": [1, 2], "e": None}),
        ({"a": {}}, {"a": {}}),
    ],
)
def test_flatten(nested, flat):
    assert ex.flatten(nested) == flat


def test_flatten_prefix():
    assert ex.flatten({"b": {"c": 1}}, "a") == {"a.b.c": 1}


def test_diff_identical_runs_has_empty_config_diff(tmp_path, data_file):
    a = make_run(tmp_path / "runs", data_file)
    b = make_run(tmp_path / "runs", data_file)
    d = ex.diff_runs(a, b)
    assert d["config"] == {} and d["data"] == {} and d["code"] == {}
    assert d["notes"] == ("", "")
    assert "config: identical" in ex.format_diff(d)


def test_diff_shows_changed_added_and_removed_keys(tmp_path, data_file):
    cfg_b = make_config(reinforce={"batch_size": 64, "normalize_advantages": True})
    del cfg_b["d_updates"]
    a = make_run(tmp_path / "runs", data_file)
    b = make_run(tmp_path / "runs", data_file, cfg=cfg_b)
    ex.write_note(a, "baseline")
    ex.write_note(b, "smaller batch")
    d = ex.diff_runs(a, b)
    assert d["config"] == {
        "reinforce.batch_size": (128, 64),
        "reinforce.normalize_advantages": (ex.MISSING, True),
        "d_updates.every": (1, ex.MISSING),
    }
    assert d["notes"] == ("baseline", "smaller batch")
    text = ex.format_diff(d)
    assert "reinforce.batch_size" in text and "128 -> 64" in text and "<missing> -> True" in text
    assert "smaller batch" in text and "baseline" in text


def test_diff_bool_versus_int_is_a_difference(tmp_path, data_file):
    a = make_run(tmp_path / "runs", data_file, cfg=make_config(reinforce={"bf16": 1}))
    b = make_run(tmp_path / "runs", data_file, cfg=make_config(reinforce={"bf16": True}))
    assert ex.diff_runs(a, b)["config"] == {"reinforce.bf16": (1, True)}


def test_diff_data_hash_and_code(tmp_path, data_file):
    a = make_run(tmp_path / "runs", data_file)
    data_file.write_text("anna\nbob\ncarl\ndora\n", encoding="utf-8")  # same path, new content
    b = make_run(tmp_path / "runs", data_file)
    info = json.loads((b / "config.json").read_text())
    info["environment"]["git_commit"] = "0" * 40
    info["environment"]["torch"] = "0.0.1"
    (b / "config.json").write_text(json.dumps(info))
    d = ex.diff_runs(a, b)
    assert d["config"] == {}
    assert set(d["data"]) == {"sha256"}
    sha_a, sha_b = d["data"]["sha256"]
    assert sha_a != sha_b and len(sha_a) == len(sha_b) == 64
    assert d["code"]["git_commit"][1] == "0" * 40 and d["code"]["torch"][1] == "0.0.1"
    text = ex.format_diff(d)
    assert "data: 1 difference(s)" in text and "git_commit" in text


# ----------------------------------------------------------------------------
# notes


@pytest.mark.parametrize("text", ["", "one line", "two\nlines", "ünïcode ✓", "trailing newline\n"])
def test_note_round_trip(tmp_path, data_file, text):
    path = make_run(tmp_path / "runs", data_file)
    assert ex.read_note(path) == ""
    ex.write_note(path, text)
    assert ex.read_note(path) == text.rstrip("\n")
    assert not [p for p in path.iterdir() if p.name.startswith(".tmp-")]


def test_note_from_config_json_and_override(tmp_path, data_file):
    path = make_run(tmp_path / "runs", data_file)
    info = json.loads((path / "config.json").read_text())
    info["note"] = "from config"
    (path / "config.json").write_text(json.dumps(info))
    assert ex.read_note(path) == "from config"
    ex.write_note(path, "from note.txt")
    assert ex.read_note(path) == "from note.txt"
    with pytest.raises(TypeError):
        ex.write_note(path, 3)
    with pytest.raises(ValueError, match="not a run directory"):
        ex.write_note(tmp_path, "x")


# ----------------------------------------------------------------------------
# seed groups


def seed_runs(root, data_file, finals):
    """One run per seed; per-update values change over time, the final ones are ``finals[i]``."""
    paths = []
    for seed, (nll, uniq, reward) in enumerate(finals):
        metrics = [
            (1, {"reward_mean": 99.0, "eval/bigram_nll": 99.0}),  # earlier values must not count
            (2, {"reward_mean": reward, "discriminator/loss": 0.7}),
            (2, {"eval/bigram_nll": nll, "eval/uniqueness": uniq, "eval/novelty": 0.5 + seed / 10}),
            (2, {"other": 1.0}),  # a later line without the metric
        ]
        paths.append(make_run(root, data_file, name=f"s{seed}", cfg=make_config(seed=seed), metrics=metrics))
    return paths


@pytest.mark.parametrize("finals", [
    [(2.5, 0.9, 0.40)],
    [(2.5, 0.9, 0.40), (2.7, 0.8, 0.55)],
    [(2.5, 0.9, 0.40), (2.7, 0.8, 0.55), (2.4, 0.95, 0.35), (3.1, 0.6, 0.9)],
])
def test_summarize_seeds_matches_numpy(tmp_path, data_file, finals):
    paths = seed_runs(tmp_path / "runs", data_file, finals)
    summary = ex.summarize_seeds(paths)
    assert summary["std_ddof"] == 0 and summary["seeds"] == list(range(len(finals)))
    columns = {
        "eval/bigram_nll": [f[0] for f in finals],
        "eval/uniqueness": [f[1] for f in finals],
        "reward_mean": [f[2] for f in finals],
        "eval/novelty": [0.5 + s / 10 for s in range(len(finals))],
    }
    for key, values in columns.items():
        s = summary["metrics"][key]
        v = np.array(values)
        assert s["values"] == pytest.approx(values)
        assert s["n"] == len(values)
        assert s["mean"] == pytest.approx(v.mean())
        assert s["std"] == pytest.approx(v.std(ddof=0))
        assert s["min"] == pytest.approx(v.min()) and s["max"] == pytest.approx(v.max())


def test_summarize_seeds_missing_and_nonfinite(tmp_path, data_file):
    paths = seed_runs(tmp_path / "runs", data_file, [(2.5, 0.9, 0.4), (2.7, 0.8, 0.5)])
    extra = make_run(tmp_path / "runs", data_file, name="diverged",
                     metrics=[(1, {"reward_mean": float("inf")})])
    s = ex.summarize_seeds([*paths, extra], metrics=("reward_mean", "eval/bigram_nll", "nope"))["metrics"]
    assert s["reward_mean"]["values"] == [pytest.approx(0.4), pytest.approx(0.5), None]
    assert s["reward_mean"]["n"] == 2 and s["reward_mean"]["mean"] == pytest.approx(0.45)
    assert s["nope"] == {"values": [None, None, None], "n": 0, "mean": None, "std": None, "min": None, "max": None}
    with pytest.raises(ValueError, match="empty"):
        ex.summarize_seeds([])


def test_write_group_summary_and_format(tmp_path, data_file):
    paths = seed_runs(tmp_path / "runs", data_file, [(2.5, 0.9, 0.4), (2.7, 0.8, 0.5)])
    target = ex.write_group_summary(tmp_path / "groups" / "g1", paths)
    assert target == tmp_path / "groups" / "g1" / "summary.json"
    saved = json.loads(target.read_text())
    assert saved["metrics"]["eval/bigram_nll"]["mean"] == pytest.approx(2.6)
    assert saved["runs"] == [str(p) for p in paths] and "created" in saved
    text = ex.format_seed_summary(saved)
    assert "ddof=0" in text
    line = next(l for l in text.splitlines() if l.startswith("eval/bigram_nll"))
    assert "2.6000 ± 0.1000  [2.5000, 2.7000]  n=2" in line
    empty = ex.format_seed_summary(ex.summarize_seeds(paths, metrics=("nope",)))
    assert "no run logged it" in empty
