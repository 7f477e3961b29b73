"""Faults lose nothing: no pickle is ever loaded, a killed checkpoint write leaves the previous one, fuzzed envs hold."""

from __future__ import annotations

import pickle
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from seqgan_env.data.tokenizer import CharTokenizer
from seqgan_env.envs.spec import EOS_ID, PAD_ID
from seqgan_env.envs.vector_env import TokenGenerationVectorEnv
from seqgan_env.models.discriminator import Discriminator
from seqgan_env.rewards.wrappers import DiscriminatorRewardVector
from seqgan_env.runs.rundir import RunDir
from seqgan_env.utils.codec import load_tensors

from .conftest import CountScorer

ROOT = Path(__file__).resolve().parent.parent


class _Boom:
    def __reduce__(self):  # executing this on load would be the attack
        return (exec, ("raise SystemExit('pickle payload ran')",))


def _pickle_bytes() -> bytes:
    return pickle.dumps({"weight": _Boom()})


def test_no_module_loads_pickle():
    sources = list((ROOT / "seqgan_env").rglob("*.py")) + list((ROOT / "agents").rglob("*.py")) + list((ROOT / "benchmarks").rglob("*.py"))
    for path in sources:
        text = path.read_text()
        assert not re.search(r"^\s*import (c?pickle|dill|joblib)\b", text, re.M), path
        for call in re.findall(r"torch\.load\([^)]*\)", text):
            assert "weights_only=True" in call, f"{path}: {call}"


def test_pickle_file_as_tensors_is_rejected(tmp_path):
    bad = tmp_path / "agent.safetensors"
    bad.write_bytes(_pickle_bytes())
    with pytest.raises(ValueError, match="agent.safetensors"):
        load_tensors(bad)


def test_pickle_in_checkpoint_is_rejected(tmp_path):
    run = RunDir.create(tmp_path, "r", {"seed": 0})
    run.save_checkpoint(1, {"agent": {"w": torch.zeros(2)}}, {"x": 1})
    victim = run.latest_checkpoint() / "agent.safetensors"
    victim.write_bytes(_pickle_bytes())
    with pytest.raises(ValueError, match="agent.safetensors"):
        run.load_checkpoint()
    run.close()


def test_pickle_as_discriminator_weights_is_rejected(tmp_path):
    d = Discriminator(6, seed=0)
    d.save(tmp_path)
    (tmp_path / "discriminator.safetensors").write_bytes(_pickle_bytes())
    with pytest.raises(ValueError, match="discriminator.safetensors"):
        Discriminator.load(tmp_path)


def test_pickle_as_tokenizer_is_rejected(tmp_path):
    bad = tmp_path / "tokenizer.json"
    bad.write_bytes(_pickle_bytes())
    with pytest.raises(ValueError):
        CharTokenizer.load(bad)


def test_kill_during_checkpoint_write_keeps_previous(tmp_path):
    """SIGKILL a process in the middle of writing checkpoint 2: checkpoint 1 still loads."""
    script = textwrap.dedent(
        f"""
        import sys, time, torch
        import safetensors.torch as st
        from seqgan_env.runs.rundir import RunDir
        run = RunDir.create({str(tmp_path)!r}, "r", {{"seed": 0}})
        run.save_checkpoint(1, {{"agent": {{"w": torch.ones(1000)}}}}, {{"note": "first"}})
        real_save = st.save_file
        def slow_save(tensors, path, *a, **k):
            real_save(tensors, path, *a, **k)
            print("WRITING", flush=True)
            time.sleep(60)  # killed here: a file of checkpoint 2 is on disk, not yet renamed
        st.save_file = slow_save
        run.save_checkpoint(2, {{"agent": {{"w": torch.zeros(1000)}}}}, {{"note": "second"}})
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    line = proc.stdout.readline()
    assert line.strip() == "WRITING"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    run_path = next(Path(tmp_path).iterdir())
    run = RunDir.open(run_path)
    tensors, meta = run.load_checkpoint()
    assert meta["note"] == "first" and torch.equal(tensors["agent"]["w"], torch.ones(1000))
    run.close()


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    num_envs=st.integers(1, 5),
    max_length=st.integers(1, 6),
    min_length=st.integers(0, 2),
    steps=st.integers(1, 25),
)
def test_fuzz_vector_env_invariants(seed, num_envs, max_length, min_length, steps):
    tok = CharTokenizer.from_texts(["abc"])  # ids 3..5, vocab 6
    env = DiscriminatorRewardVector(
        TokenGenerationVectorEnv(num_envs, tokenizer=tok, max_length=max_length, min_length=min(min_length, max_length)),
        CountScorer(target=3),
    )
    rng = np.random.default_rng(seed)
    actions = rng.integers(0, tok.vocab_size, size=(steps, num_envs))  # masked ones included
    first, _ = env.reset(seed=seed)
    was_done = np.zeros(num_envs, dtype=bool)
    for a in actions:
        mask = env.action_masks()
        before = env.unwrapped.lengths.numpy().copy()
        obs, r, term, trunc, info = env.step(a)
        assert env.observation_space.contains(obs) and np.isfinite(r).all() and not trunc.any()
        for i in range(num_envs):
            if was_done[i]:  # NEXT_STEP autoreset: reset obs, no reward, not done
                assert (obs[i] == PAD_ID).all() and r[i] == 0 and not term[i]
            elif not mask[i, a[i]]:
                assert term[i] and info["invalid_action"][i]
            else:
                n = before[i] + 1
                assert obs[i, n - 1] == a[i] and term[i] == (a[i] == EOS_ID or n == max_length)
        was_done = term
    again, _ = env.reset(seed=seed)
    assert (again == first).all()
