"""Data-parallel training (torchrun + DDP) on two gloo CPU processes.

One 2-rank job (``tests/_ddp_worker.py``, started once per module with the variables
torchrun sets) trains a tiny run, resumes another, and applies fixed batches split
across the ranks; the tests read what each rank wrote and check:

* the generator and discriminator weights are identical on both ranks after every update;
* the metrics rank 0 writes to metrics.jsonl are the mean of the ranks' local values;
* a DDP update (generator, discriminator) on a fixed batch split across 2 ranks equals
  a 1-process update on the whole batch (1e-5), for several baselines / losses;
* resume with the same world size equals the uninterrupted run; another world size is refused.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import socket
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import safetensors.torch
import torch

from seqgan_agents import distributed
from seqgan_agents.distributed import DistContext
from seqgan_agents.lifecycle import resume_run
from seqgan_env.cli import main
from tests._ddp_worker import (
    AGENT_SETTINGS,
    DISC_SETTINGS,
    agent_batches,
    disc_batches,
    make_agent,
    make_discriminator,
    rows,
)

ROOT = Path(__file__).resolve().parents[1]
WORLD = 2
TOL = 1e-5


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(args: list[str], out: Path, timeout: float = 300) -> list[str]:
    """Start WORLD ranks of ``python args...`` as torchrun would (one torch thread each); their logs.

    Retries with a new port if the rendezvous port was taken meanwhile. Also retries
    once, with a warning, when every rank finished its work (``finished_rank<r>``
    markers) but one was killed by a signal while tearing the process group down: the
    gloo abort at exit ("terminate called without an active exception") that DDP
    wrappers freed only at interpreter shutdown caused, before ``distributed.destroy``
    collected them first; a second such abort fails the test.
    """
    teardown_aborts = 0
    for _ in range(3):
        for child in out.iterdir():  # each attempt starts from an empty directory (no runs of an earlier one)
            shutil.rmtree(child) if child.is_dir() else child.unlink()
        port = _free_port()
        env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "WORLD_SIZE": str(WORLD),
               "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
        logs = [out / f"log_rank{r}.txt" for r in range(WORLD)]
        procs = []
        for r in range(WORLD):
            with open(logs[r], "w") as fh:
                procs.append(subprocess.Popen([sys.executable, *args], cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT,
                                              env={**env, "RANK": str(r), "LOCAL_RANK": str(r)}))
        try:
            codes = [p.wait(timeout=timeout) for p in procs]
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()
        texts = [log.read_text() for log in logs]
        if all(c == 0 for c in codes):
            return texts
        finished = all((out / f"finished_rank{r}").is_file() for r in range(WORLD))
        if finished and any(c < 0 for c in codes) and teardown_aborts == 0:
            teardown_aborts += 1
            warnings.warn(f"a rank aborted while tearing down the process group (exit codes {codes}); retrying once")
            continue
        if not any("address already in use" in t.lower() for t in texts):
            break
    pytest.fail(f"ranks exited with {codes}:\n" + "\n".join(f"--- rank {r} ---\n{t[-3000:]}" for r, t in enumerate(texts)))


@pytest.fixture(scope="module")
def ddp_out(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ddp")
    _launch(["-m", "tests._ddp_worker", str(out)], out)
    return out


def _train(out: Path) -> list[dict]:
    return [json.loads((out / f"train_rank{r}.json").read_text()) for r in range(WORLD)]


def _metric_lines(run: str | Path) -> dict[int, dict]:
    lines = [json.loads(x) for x in (Path(run) / "metrics.jsonl").read_text().splitlines()]
    return {m["step"]: m for m in lines if "reward_mean" in m}


# -- the training loop on 2 ranks ------------------------------------------------------------------------
@pytest.mark.parametrize("kind,updates", [("full", 4), ("resumed", 2)])
def test_weights_identical_across_ranks_after_every_update(ddp_out, kind, updates):
    ranks = [t[kind]["records"] for t in _train(ddp_out)]
    assert [len(r) for r in ranks] == [updates] * WORLD
    for per_rank in zip(*ranks):
        assert len({rec["step"] for rec in per_rank}) == 1
        assert len({rec["generator"] for rec in per_rank}) == 1, f"generator differs across ranks at {per_rank[0]['step']}"
        assert len({rec["discriminator"] for rec in per_rank}) == 1, f"discriminator differs at {per_rank[0]['step']}"
    assert ranks[0][0]["generator"] != ranks[0][-1]["generator"]  # the updates did change the weights


def test_each_rank_samples_its_own_batch(ddp_out):
    first = [t["full"]["records"][0]["local"] for t in _train(ddp_out)]
    assert first[0]["reward_mean"] != first[1]["reward_mean"]  # own seed stream, own environments


def test_rank0_writes_the_mean_over_ranks(ddp_out):
    train = _train(ddp_out)
    run = Path(train[0]["full"]["run"])
    assert train[1]["full"]["run"] == str(run)  # every rank knows rank 0's run directory
    assert [p.name for p in run.parent.iterdir()] == [run.name]  # and only rank 0 created one
    logged = _metric_lines(run)
    assert sorted(logged) == [1, 2, 3, 4]  # one line per update: rank 1 wrote nothing
    for per_rank in zip(*(t["full"]["records"] for t in train)):
        line = logged[per_rank[0]["step"]]
        local = [rec["local"] for rec in per_rank]
        assert {"reward_mean", "policy_loss", "discriminator/loss", "tokens"} <= set(local[0])
        for key in local[0]:
            mean = sum(loc[key] for loc in local) / WORLD
            assert line[key] == pytest.approx(mean, rel=1e-9, abs=1e-12), key


def test_config_records_world_size_and_global_batch(ddp_out):
    info = json.loads((Path(_train(ddp_out)[0]["full"]["run"]) / "config.json").read_text())
    assert info["distributed"] == {"world_size": 2, "backend": "gloo", "per_rank_batch_size": 8, "global_batch_size": 16}
    assert info["config"]["reinforce"]["batch_size"] == 8


def test_resume_with_the_same_world_size_equals_uninterrupted(ddp_out):
    train = _train(ddp_out)
    full, resumed = train[0]["full"], train[0]["resumed"]
    assert resumed["start"] == 2
    assert [r["generator"] for r in resumed["records"]] == [r["generator"] for r in full["records"][2:]]
    assert [r["discriminator"] for r in resumed["records"]] == [r["discriminator"] for r in full["records"][2:]]
    assert [r["local"]["reward_mean"] for r in train[1]["resumed"]["records"]] == \
        [r["local"]["reward_mean"] for r in train[1]["full"]["records"][2:]]  # rank 1's own streams restored
    drop = {"wall_time", "update_seconds"}
    a, b = _metric_lines(full["run"]), _metric_lines(resumed["run"])
    for step in (3, 4):
        assert {k: v for k, v in b[step].items() if k not in drop} == {k: v for k, v in a[step].items() if k not in drop}


# -- one update on a fixed batch: 2 ranks == 1 process on the whole batch --------------------------------
def _close(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert sorted(a) == sorted(b)
    return max(float((a[k].float() - b[k].float()).abs().max()) for k in a)


def _same_metrics(per_rank: list[list[dict]], reference: list[dict]) -> None:
    for i, ref in enumerate(reference):
        for key, value in ref.items():
            mean = sum(m[i][key] for m in per_rank) / WORLD
            if math.isnan(value):
                assert math.isnan(mean), key
            else:
                assert mean == pytest.approx(value, rel=TOL, abs=TOL), (i, key)


def _load(out: Path, setting: str) -> tuple[list[dict[str, torch.Tensor]], list[list[dict]]]:
    weights = [safetensors.torch.load_file(out / f"update_{setting}_rank{r}.safetensors") for r in range(WORLD)]
    metrics = [json.loads((out / f"update_{setting}_rank{r}.json").read_text()) for r in range(WORLD)]
    return weights, metrics


@pytest.mark.parametrize("setting", sorted(AGENT_SETTINGS))
def test_ddp_generator_update_equals_full_batch_update(ddp_out, setting):
    weights, metrics = _load(ddp_out, setting)
    assert _close(weights[0], weights[1]) == 0.0
    full = make_agent(setting)
    reference = [full.update(rollout, real) for rollout, real in agent_batches()]
    assert _close(weights[0], full.generator.state_dict()) < TOL
    _same_metrics(metrics, reference)
    half = make_agent(setting)  # control: rank 0's rows alone give a visibly different model
    for rollout, real in agent_batches():
        half.update(rows(rollout, 0, WORLD), rows(real, 0, WORLD))
    assert _close(weights[0], half.generator.state_dict()) > 1e-3


@pytest.mark.parametrize("setting", sorted(DISC_SETTINGS))
def test_ddp_discriminator_update_equals_full_batch_update(ddp_out, setting):
    weights, metrics = _load(ddp_out, setting)
    assert _close(weights[0], weights[1]) == 0.0
    full = make_discriminator(setting)
    reference = [full.update(real, fake) for real, fake in disc_batches()]
    assert _close(weights[0], full.state_dict()) < TOL
    _same_metrics(metrics, reference)
    half = make_discriminator(setting)
    for real, fake in disc_batches():
        half.update(rows(real, 0, WORLD), rows(fake, 0, WORLD))
    assert _close(weights[0], half.state_dict()) > 1e-3


def test_per_rank_normalisers_would_not_match_the_full_batch():
    """Why the global step count: averaging per-rank means (unequal episode lengths) is not the full-batch mean."""
    rollout, real = agent_batches()[0]
    grads = []
    for parts in ([rollout], [rows(rollout, r, WORLD) for r in range(WORLD)]):
        agent = make_agent("none_mle")
        for part in parts:
            loss, _ = agent.loss(part)
            (loss / len(parts)).backward()  # what DDP would average if each rank divided by its own count
        grads.append(torch.cat([p.grad.flatten() for p in agent.generator.parameters()]))
    assert float((grads[0] - grads[1]).abs().max()) > 1e-3


# -- resume with another world size -----------------------------------------------------------------------
def test_resume_with_another_world_size_is_refused(ddp_out, tmp_path, monkeypatch, capsys):
    run = Path(_train(ddp_out)[0]["full"]["run"])
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(ValueError, match=r"world_size=2 but this launch has world_size=1.*--nproc_per_node=2"):
        resume_run(run)
    assert main(["train", "--resume", str(run)]) == 2
    assert "world_size=2" in capsys.readouterr().err
    assert not (run / "lock").exists()

    single = tmp_path / "single"
    shutil.copytree(run, single)
    info = json.loads((single / "config.json").read_text())
    del info["distributed"]  # a run from before data-parallel training: one process
    (single / "config.json").write_text(json.dumps(info))
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(ValueError, match=r"world_size=1 but this launch has world_size=2.*without torchrun"):
        resume_run(single)
    assert not torch.distributed.is_initialized()  # refused before joining any process group


# -- the context from the launcher's variables --------------------------------------------------------------
def test_context_from_env():
    assert DistContext.from_env({}) == distributed.SINGLE
    ctx = DistContext.from_env({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"})
    assert (ctx.rank, ctx.world_size, ctx.local_rank, ctx.is_main, ctx.is_distributed) == (3, 4, 1, False, True)
    assert distributed.SINGLE.rank_seed(7) == 7 and ctx.rank_seed(7) == 7 + 3 * distributed.SEED_STRIDE
    assert ctx.record(8)["global_batch_size"] == 32
    assert distributed.mean_metrics({"a": 1.5}, distributed.SINGLE) == {"a": 1.5}


@pytest.mark.parametrize(
    "env,match",
    [({"WORLD_SIZE": "two"}, "WORLD_SIZE='two'"), ({"RANK": "2", "WORLD_SIZE": "2"}, "RANK=2 is invalid for WORLD_SIZE=2"),
     ({"WORLD_SIZE": "0"}, "WORLD_SIZE=0 is invalid")],
)
def test_context_rejects_bad_launcher_values(env, match):
    with pytest.raises(ValueError, match=match):
        DistContext.from_env(env)


def test_torchrun_cli_train(tmp_path):
    """`torchrun --nproc_per_node=2 -m seqgan_env.cli train ...`, exactly as a user types it."""
    config = {
        "out_dir": str(tmp_path / "runs"), "name": "cli",
        "generator": {"hidden_size": 16, "intermediate_size": 32, "num_heads": 2, "num_layers": 1, "max_position_embeddings": 16},
        "discriminator_model": {"hidden_size": 16, "intermediate_size": 32, "num_heads": 2, "num_layers": 1,
                                "max_position_embeddings": 16},
        "reinforce": {"batch_size": 4, "device": "cpu"}, "d_updates": {"batch_size": 4},
        "schedule": {"updates": 2, "pretrain_steps": 1, "d_pretrain_steps": 1, "eval_every": 2, "eval_samples": 10,
                     "checkpoint_every": 2},
    }
    (tmp_path / "c.json").write_text(json.dumps(config))
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={WORLD}", "--master_addr=127.0.0.1",
           f"--master_port={_free_port()}", "-m", "seqgan_env.cli", "train", "--config", str(tmp_path / "c.json"),
           "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = list((tmp_path / "runs").iterdir())
    assert len(runs) == 1  # rank 0 alone made the run directory
    assert json.loads((runs[0] / "config.json").read_text())["distributed"]["global_batch_size"] == 8
    assert sorted(_metric_lines(runs[0])) == [1, 2] and (runs[0] / "generator" / "config.json").is_file()
    assert proc.stderr.count("final samples:") == 1  # rank 0 speaks for all


@pytest.mark.parametrize("text,expected", [("1x1,1x2@256,2x1", ((1, 1, 0), (1, 2, 256), (2, 1, 0))), ("2x1", ((2, 1, 0),))])
def test_bench_ddp_configs_parse(text, expected):
    from seqgan_benchmarks.speed_ddp import _parse_configs

    assert _parse_configs(text) == expected


@pytest.mark.parametrize("text", ["", "1y2", "1x2@big", "1x2x3"])
def test_bench_ddp_configs_reject_bad_text(text):
    from seqgan_benchmarks.speed_ddp import _parse_configs

    with pytest.raises(ValueError, match="RANKSxTHREADS"):
        _parse_configs(text)


def test_destroy_frees_unreachable_ddp_wrappers_before_the_process_group():
    """A DDP reducer freed only at interpreter shutdown makes gloo abort the process; ``destroy``
    collects wrappers left in reference cycles while the group is still whole."""
    import gc
    import weakref

    from torch.nn.parallel import DistributedDataParallel

    torch.distributed.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{_free_port()}", rank=0, world_size=1)
    enabled = gc.isenabled()
    gc.disable()  # only destroy's own collection may free the cycle
    try:
        class Holder:
            pass

        holder = Holder()
        holder.ddp = DistributedDataParallel(torch.nn.Linear(4, 4))
        holder.self = holder  # a cycle, as trainers and agents have
        holder.ddp(torch.randn(2, 4)).sum().backward()
        ref = weakref.ref(holder.ddp)
        del holder
        assert ref() is not None  # unreachable but not yet collected
        distributed.destroy(sync=True)
        assert ref() is None
        assert not torch.distributed.is_initialized()
    finally:
        if enabled:
            gc.enable()
        distributed.destroy()
