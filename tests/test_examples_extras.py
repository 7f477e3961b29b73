"""The TRL and torchrl example scripts run as a user would run them (exit 0, meaningful output).

Each needs its extra (``pip install 'seqgan-env[trl]'`` / ``'seqgan-env[torchrl]'``) and is skipped
with the reason without it. Measured: about 50 s (TRL) and 25 + 16 s (torchrl vs plain loop) on a
2-core CPU: slow.
"""

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from seqgan_env.rewards.callbacks import DiscriminatorUpdateConfig

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def _run(name: str) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, str(ROOT / "examples" / name)], capture_output=True, text=True,
                         timeout=600, cwd=ROOT, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def _need(module: str, extra: str) -> None:
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"needs the {extra} extra: pip install 'seqgan-env[{extra}]'")


def test_trl_grpo_example():
    _need("trl", "trl")
    out = _run("trl_grpo.py")
    assert re.search(r"^MLE pretraining: 200 steps, final loss \d\.\d{3}$", out, re.M), out
    assert re.search(r"^D pretraining: 50 updates, acc_real [\d.]+  acc_fake [\d.]+$", out, re.M), out
    means = re.search(r"^mean D\(x\) of the completions, every 30 steps: (.*)$", out, re.M)
    assert means and [0 < float(x) < 1 for x in means.group(1).split()] == [True] * 3, out
    d = re.search(r"^D after (\d+) updates: loss \d\.\d{3}  acc_real [\d.]+  acc_fake [\d.]+$", out, re.M)
    schedule = DiscriminatorUpdateConfig()  # one D phase after each of the 90 GRPO steps, on the shared schedule
    assert d and 90 * schedule.d_steps <= int(d.group(1)) <= 90 * schedule.max_d_steps, out
    samples = re.search(r"^samples: (.*)$", out, re.M)
    assert samples and len(samples.group(1).split()) >= 10, out  # 12 samples; an empty one joins two spaces


def test_torchrl_example_cotrains_and_moves_towards_the_data():
    """torchrl's GymWrapper / native adapter with the env's default co-training: D phases run with no callback and
    the rollouts' bigram JS distance to held-out names falls."""
    _need("torchrl", "torchrl")
    out = _run("torchrl_reinforce.py")
    phases = [int(p) for p in re.findall(r"D phases (\d+)", out)]
    assert len(phases) == 7 and phases[-1] > phases[1] > 0, out
    m = re.search(r"^bigram JS to held-out names: first rollout (\d\.\d+), last rollout (\d\.\d+)$", out, re.M)
    assert m and float(m.group(2)) < float(m.group(1)) - 0.05, out
