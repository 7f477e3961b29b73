"""The example scripts run as a user would run them."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(name: str) -> str:
    out = subprocess.run([sys.executable, str(ROOT / "examples" / name)], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def test_custom_reward_example():
    lines = _run("custom_reward.py").splitlines()
    assert len(lines) == 8 and all("return" in line for line in lines)


@pytest.mark.slow
def test_train_reinforce_example():
    out = _run("train_reinforce.py")
    assert "update 150" in out and len(out.splitlines()[-1].split()) == 12
