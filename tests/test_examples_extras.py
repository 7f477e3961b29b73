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
    assert re.search(r"^D after 90 updates: loss \d\.\d{3}  acc_real [\d.]+  acc_fake [\d.]+$", out, re.M), out
    samples = re.search(r"^samples: (.*)$", out, re.M)
    assert samples and len(samples.group(1).split()) >= 10, out  # 12 samples; an empty one joins two spaces


def test_torchrl_example_steps_the_env_exactly_as_the_plain_loop():
    """Same seed, network and loss: the torchrl path (GymWrapper, DISABLED-autoreset adapter, ActionMask,
    MaskedCategorical) must give the plain Gymnasium loop's numbers to the printed digit."""
    _need("torchrl", "torchrl")
    torchrl_out = _run("torchrl_reinforce.py")
    plain_out = _run("plain_loop.py")
    lines = [line for line in torchrl_out.splitlines() if line.startswith("iteration")]
    assert len(lines) == 7 and lines == [line for line in plain_out.splitlines() if line.startswith("iteration")]
    rewards = [float(r) for r in re.findall(r"mean reward per token (\d\.\d+)", torchrl_out)]
    assert rewards[-1] > rewards[0] + 0.1, torchrl_out  # the fixed D's reward rises
