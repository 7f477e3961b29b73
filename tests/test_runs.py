"""Tests for seqgan_env.runs.rundir: atomic files, state flattening, RNG state, RunDir."""

import json
import math
import os
import random

import numpy as np
import pytest
import safetensors.torch
import torch

from seqgan_env.runs import rundir as runs
from seqgan_env.runs.rundir import RunDir, environment_info, rng_state, set_rng_state
from seqgan_env.utils.atomic import atomic_save_tensors, atomic_write_text
from seqgan_env.utils.codec import (
    flatten_optimizer_state,
    flatten_scheduler_state,
    load_tensors,
    unflatten_optimizer_state,
    unflatten_scheduler_state,
)


def no_temp_files(directory) -> bool:
    return not [p for p in os.listdir(directory) if p.startswith(".tmp-")]


# ----------------------------------------------------------------------------
# atomic files


def test_atomic_write_text_roundtrip_and_overwrite(tmp_path):
    p = tmp_path / "a.txt"
    atomic_write_text(p, "one")
    atomic_write_text(p, "two ✓")
    assert p.read_text(encoding="utf-8") == "two ✓"
    assert no_temp_files(tmp_path)


def test_atomic_write_text_failure_keeps_old_file(tmp_path, monkeypatch):
    p = tmp_path / "a.txt"
    atomic_write_text(p, "old")

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(runs.os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_text(p, "new")
    assert p.read_text() == "old"
    assert no_temp_files(tmp_path)


def test_atomic_save_tensors_failure_midway_keeps_old_file(tmp_path, monkeypatch):
    p = tmp_path / "t.safetensors"
    atomic_save_tensors(p, {"x": torch.arange(4.0)})
    real_save = safetensors.torch.save_file

    def half_write(tensors, filename, *a, **k):
        with open(filename, "wb") as f:
            f.write(b"\x00" * 5)  # partial bytes, then the "crash"
        raise RuntimeError("killed midway")

    monkeypatch.setattr(safetensors.torch, "save_file", half_write)
    with pytest.raises(RuntimeError, match="killed midway"):
        atomic_save_tensors(p, {"x": torch.zeros(4)})
    monkeypatch.setattr(safetensors.torch, "save_file", real_save)
    assert torch.equal(load_tensors(p)["x"], torch.arange(4.0))
    assert no_temp_files(tmp_path)


def test_atomic_save_tensors_views_and_noncontiguous(tmp_path):
    base = torch.arange(12.0).reshape(3, 4)
    atomic_save_tensors(tmp_path / "t.safetensors", {"t": base.t(), "row": base[1], "base": base})
    out = load_tensors(tmp_path / "t.safetensors")
    assert torch.equal(out["t"], base.t()) and torch.equal(out["row"], base[1])


def test_load_tensors_missing_and_corrupt(tmp_path):
    with pytest.raises(ValueError, match=r"missing tensor file .*nope\.safetensors"):
        load_tensors(tmp_path / "nope.safetensors")
    p = tmp_path / "bad.safetensors"
    atomic_save_tensors(p, {"x": torch.randn(100)})
    p.write_bytes(p.read_bytes()[:50])
    with pytest.raises(ValueError, match=r"bad\.safetensors.*re-create"):
        load_tensors(p)


# ----------------------------------------------------------------------------
# optimizer / scheduler flattening


def _model_and_opt(onecycle: bool):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, betas=(0.8, 0.99), weight_decay=0.1)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.05, total_steps=20) if onecycle else None
    return model, opt, sched


def _train_step(model, opt, sched, x):
    opt.zero_grad()
    model(x).pow(2).mean().backward()
    opt.step()
    if sched is not None:
        sched.step()


@pytest.mark.parametrize("onecycle", [False, True])
def test_optimizer_flatten_roundtrip_next_step_identical(tmp_path, onecycle):
    model, opt, sched = _model_and_opt(onecycle)
    xs = torch.randn(4, 16, 4)
    for i in range(3):
        _train_step(model, opt, sched, xs[i])

    ot, om = flatten_optimizer_state(opt.state_dict())
    assert set(ot) >= {"state.0.exp_avg", "state.0.exp_avg_sq", "state.0.step"}
    atomic_save_tensors(tmp_path / "opt.safetensors", ot)
    (tmp_path / "opt.json").write_text(json.dumps(om, allow_nan=False))
    if sched is not None:
        st, sm = flatten_scheduler_state(sched.state_dict())
        (tmp_path / "sched.json").write_text(json.dumps(sm, allow_nan=False))

    # a fresh copy restored only from the files
    model2, opt2, sched2 = _model_and_opt(onecycle)
    model2.load_state_dict(model.state_dict())
    osd = unflatten_optimizer_state(load_tensors(tmp_path / "opt.safetensors"),
                                    json.loads((tmp_path / "opt.json").read_text()))
    assert isinstance(osd["param_groups"][0]["betas"], tuple)
    assert set(osd["state"]) == set(opt.state_dict()["state"])  # int keys again
    opt2.load_state_dict(osd)
    if sched is not None:
        sched2.load_state_dict(unflatten_scheduler_state(st, json.loads((tmp_path / "sched.json").read_text())))
        assert sched2.state_dict() == sched.state_dict()

    _train_step(model, opt, sched, xs[3])
    _train_step(model2, opt2, sched2, xs[3])
    for a, b in zip(model.parameters(), model2.parameters()):
        assert torch.equal(a, b)
    assert opt.param_groups[0]["lr"] == opt2.param_groups[0]["lr"]
    assert opt.param_groups[0]["betas"] == opt2.param_groups[0]["betas"]


def test_flatten_scheduler_rejects_callables():
    with pytest.raises(ValueError, match=r"function.*'lr_lambdas.0'.*without pickle"):
        flatten_scheduler_state({"lr_lambdas": [lambda e: 1.0], "last_epoch": 0})


def test_flatten_handles_nonfinite_and_tagged_keys():
    sd = {"a": float("inf"), "b": (1, [2.0, float("nan")]), 3: "int key", "__tuple__": None}
    t, m = flatten_scheduler_state(sd)
    json.dumps(m, allow_nan=False)
    back = unflatten_scheduler_state(t, m)
    assert back["a"] == math.inf and back["b"][0] == 1 and math.isnan(back["b"][1][1])
    assert back[3] == "int key" and "__tuple__" in back


def test_unflatten_rejects_wrong_meta():
    t, m = flatten_scheduler_state({"x": 1})
    with pytest.raises(ValueError, match="expected a 'optimizer' meta"):
        unflatten_optimizer_state(t, m)


# ----------------------------------------------------------------------------
# RNG


def _draws():
    return (torch.rand(5).tolist(), np.random.rand(5).tolist(), [random.random() for _ in range(5)],
            np.random.randn(1).tolist(), random.gauss(0, 1))


def test_rng_state_roundtrip_through_files(tmp_path):
    torch.manual_seed(1), np.random.seed(1), random.seed(1)
    np.random.randn(1), random.gauss(0, 1)  # leave cached gaussians in the state
    tensors, meta = rng_state()
    atomic_save_tensors(tmp_path / "rng.safetensors", tensors)
    atomic_write_text(tmp_path / "rng.json", json.dumps(meta, allow_nan=False))
    first = _draws()
    _draws()  # move every generator on
    set_rng_state(load_tensors(tmp_path / "rng.safetensors"), json.loads((tmp_path / "rng.json").read_text()))
    assert _draws() == first


def test_set_rng_state_rejects_garbage():
    with pytest.raises(ValueError, match="rng_state"):
        set_rng_state({}, {"kind": "rng"})


def test_environment_info_never_raises():
    info = environment_info()
    json.dumps(info)
    for key in ("python", "platform", "torch", "transformers", "gymnasium", "numpy", "stable_baselines3",
                "git_commit", "git_dirty"):
        assert key in info
    assert info["git_commit"] is None or len(info["git_commit"]) == 40


# ----------------------------------------------------------------------------
# RunDir


@pytest.fixture
def run(tmp_path):
    data = tmp_path / "data.txt"
    data.write_text("anna\nbob\n")
    r = RunDir.create(root=tmp_path / "runs", name="test", config={"seed": 7, "lr": 1e-3}, data_path=data)
    yield r
    r.close()


def test_create_writes_config(run, tmp_path):
    assert run.path.parent == tmp_path / "runs" and run.path.name.endswith("-test")
    info = json.loads((run.path / "config.json").read_text())
    assert info["config"] == {"seed": 7, "lr": 1e-3} and info["seed"] == 7 and info["format_version"] == 1
    assert info["data"]["sha256"] == runs_sha(tmp_path / "data.txt")
    assert "torch" in info["environment"] and "created" in info


def runs_sha(path):
    import hashlib
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_create_same_second_gets_suffix(tmp_path):
    a = RunDir.create(root=tmp_path, name="x", config={})
    b = RunDir.create(root=tmp_path, name="x", config={})
    assert a.path != b.path and b.path.exists()


def test_create_validation(tmp_path):
    with pytest.raises(ValueError, match="name="):
        RunDir.create(root=tmp_path, name="a/b", config={})
    with pytest.raises(ValueError, match="not JSON-able"):
        RunDir.create(root=tmp_path, name="x", config={"f": object()})
    with pytest.raises(ValueError, match="keep_last"):
        RunDir.create(root=tmp_path, name="x", config={}, keep_last=0)


def test_open_roundtrip_and_errors(run, tmp_path):
    again = RunDir.open(run.path)
    assert again.config == {"seed": 7, "lr": 1e-3}
    with pytest.raises(ValueError, match=r"does not exist.*RunDir.create"):
        RunDir.open(tmp_path / "missing")
    cfg = run.path / "config.json"
    info = json.loads(cfg.read_text())
    cfg.write_text(json.dumps({**info, "format_version": 99}))
    with pytest.raises(ValueError, match=r"config\.json.*format_version=99.*new run"):
        RunDir.open(run.path)
    cfg.write_text("{trunc")
    with pytest.raises(ValueError, match=r"corrupt.*config\.json"):
        RunDir.open(run.path)
    cfg.unlink()
    with pytest.raises(ValueError, match=r"missing.*config\.json"):
        RunDir.open(run.path)


def test_log_and_read_metrics(run):
    run.log_metrics(1, {"loss": 0.5, "bad": float("nan"), "n": np.int64(3), "t": torch.tensor(2.0), "s": "x"})
    run.log_metrics(2, {"loss": 0.25})
    rows = run.read_metrics()
    assert [r["step"] for r in rows] == [1, 2]
    assert rows[0]["loss"] == 0.5 and rows[0]["bad"] is None and rows[0]["n"] == 3 and rows[0]["t"] == 2.0
    assert "wall_time" in rows[0]
    # every line is already on disk (flushed) and is strict JSON
    lines = run.metrics_path.read_text().splitlines()
    assert len(lines) == 2 and "NaN" not in lines[0]
    run.log_text(2, "samples", "anna")
    run.close()
    assert any(p.name.startswith("events.out.tfevents") for p in run.tb_dir.iterdir())


def test_log_metrics_validation(run):
    with pytest.raises(ValueError, match="reserved|step"):
        run.log_metrics(1, {"step": 3})
    with pytest.raises(ValueError, match="array"):
        run.log_metrics(1, {"x": torch.zeros(3)})
    with pytest.raises(ValueError, match="step=-1"):
        run.log_metrics(-1, {})


def test_read_metrics_ignores_interrupted_last_line(run):
    run.log_metrics(1, {"a": 1.0})
    run.close()
    with open(run.metrics_path, "a") as f:
        f.write('{"step": 2, "a"')
    assert [r["step"] for r in run.read_metrics()] == [1]


def test_truncate_metrics_after(run):
    for s in range(1, 6):
        run.log_metrics(s * 10, {"x": float(s)})
    assert run.truncate_metrics_after(30) == 2
    run.log_metrics(40, {"x": 40.0})
    assert [(r["step"], r["x"]) for r in run.read_metrics()] == [(10, 1.0), (20, 2.0), (30, 3.0), (40, 40.0)]
    assert no_temp_files(run.path)


def test_write_samples(run):
    p = run.write_samples(123, ["anna", "bob"])
    assert p == run.path / "samples" / "step_000123.txt"
    assert p.read_text().splitlines() == ["anna", "bob"]


def _ckpt_tensors(v: float):
    return {"generator": {"w": torch.full((2, 3), v)}, "optim": {"state.0.step": torch.tensor(v)}}


def test_checkpoint_save_load_latest_keep_last(run):
    assert run.latest_checkpoint() is None
    for step in (1, 2, 3, 4, 5):
        d = run.save_checkpoint(step, _ckpt_tensors(float(step)), {"callback": {"n": step}})
        assert d.name == f"step_{step:06d}"
    names = sorted(p.name for p in run.checkpoints_dir.iterdir())
    assert names == ["latest", "step_000003", "step_000004", "step_000005"]
    assert (run.checkpoints_dir / "latest").read_text().strip() == "step_000005"
    assert run.latest_checkpoint() == run.checkpoints_dir / "step_000005"
    tensors, meta = run.load_checkpoint()
    assert meta["step"] == 5 and meta["callback"] == {"n": 5} and meta["groups"] == ["generator", "optim"]
    assert torch.equal(tensors["generator"]["w"], torch.full((2, 3), 5.0))
    tensors, meta = run.load_checkpoint(run.checkpoints_dir / "step_000003")
    assert meta["step"] == 3 and float(tensors["optim"]["state.0.step"]) == 3.0
    # re-saving an existing step replaces it
    run.save_checkpoint(5, _ckpt_tensors(9.0), {})
    assert torch.equal(run.load_checkpoint()[0]["generator"]["w"], torch.full((2, 3), 9.0))
    assert no_temp_files(run.checkpoints_dir)
    # a reopened run finds the same checkpoint
    assert RunDir.open(run.path).latest_checkpoint() == run.checkpoints_dir / "step_000005"


def test_checkpoint_failure_leaves_previous_checkpoint(run, monkeypatch):
    run.save_checkpoint(1, _ckpt_tensors(1.0), {})

    def boom(*a, **k):
        raise RuntimeError("crash while saving")

    monkeypatch.setattr(safetensors.torch, "save_file", boom)
    with pytest.raises(RuntimeError):
        run.save_checkpoint(2, _ckpt_tensors(2.0), {})
    monkeypatch.undo()
    assert run.latest_checkpoint().name == "step_000001"
    assert sorted(p.name for p in run.checkpoints_dir.iterdir()) == ["latest", "step_000001"]


def test_truncated_checkpoint_file_names_the_file(run):
    d = run.save_checkpoint(1, {"generator": {"w": torch.randn(64, 64)}}, {})
    f = d / "generator.safetensors"
    f.write_bytes(f.read_bytes()[:200])
    with pytest.raises(ValueError, match=r"generator\.safetensors.*another checkpoint or start a new run"):
        run.load_checkpoint()
    (d / "meta.json").write_text('{"step": 1, "gro')
    with pytest.raises(ValueError, match=r"meta\.json.*another checkpoint or start a new run"):
        run.load_checkpoint(d)


def test_load_checkpoint_errors(run):
    with pytest.raises(ValueError, match="no checkpoint"):
        run.load_checkpoint()
    with pytest.raises(ValueError, match="does not exist"):
        run.load_checkpoint(run.path / "checkpoints" / "step_000009")


def test_checkpoint_validation(run):
    with pytest.raises(ValueError, match="group name"):
        run.save_checkpoint(1, {"../x": {}}, {})
    with pytest.raises(ValueError, match="not JSON-able"):
        run.save_checkpoint(1, {}, {"t": torch.zeros(1)})


def test_full_resume_flow(run):
    """Optimizer + RNG + callback counters through a checkpoint reproduce the uninterrupted run."""
    model, opt, sched = _model_and_opt(onecycle=True)
    torch.manual_seed(3)

    def step():
        _train_step(model, opt, sched, torch.randn(8, 4))

    step()
    ot, om = flatten_optimizer_state(opt.state_dict())
    rt, rm = rng_state()
    st, sm = flatten_scheduler_state(sched.state_dict())
    run.save_checkpoint(1, {"model": model.state_dict(), "optim": ot, "rng": rt, "sched": st},
                        {"optim": om, "rng": rm, "sched": sm})
    step()
    expected = [p.detach().clone() for p in model.parameters()]

    tensors, meta = RunDir.open(run.path).load_checkpoint()
    model2, opt2, sched2 = _model_and_opt(onecycle=True)
    model2.load_state_dict(tensors["model"])
    opt2.load_state_dict(unflatten_optimizer_state(tensors["optim"], meta["optim"]))
    sched2.load_state_dict(unflatten_scheduler_state(tensors["sched"], meta["sched"]))
    set_rng_state(tensors["rng"], meta["rng"])
    model, opt, sched = model2, opt2, sched2
    step()
    for a, b in zip(model.parameters(), expected):
        assert torch.equal(a, b)
