"""The SB3 and plain-loop example scripts run as a user would run them (exit 0, meaningful output)."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("stable_baselines3")
pytest.importorskip("sb3_contrib")

ROOT = Path(__file__).resolve().parent.parent
# Measured together: about 40 s on a 2-core CPU (9 + 9 + 16 + 6 s), minutes while other jobs share it: slow.
pytestmark = pytest.mark.slow


def _run(name: str) -> str:
    out = subprocess.run([sys.executable, str(ROOT / "examples" / name)], capture_output=True, text=True,
                         timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def _d_metrics_line(out: str) -> None:
    assert re.search(r"^D after \d+ updates: loss \d+\.\d+  acc_real [\d.]+  acc_fake [\d.]+$", out, re.M), out


def test_sb3_ppo_example():
    out = _run("sb3_ppo.py")
    assert re.search(r"^samples: (\S+\(\d\.\d\d\) ?){8}$", out, re.M), out
    _d_metrics_line(out)


def test_sb3_maskable_ppo_example():
    out = _run("sb3_maskable_ppo.py")
    assert "invalid actions while sampling: 0" in out, out
    _d_metrics_line(out)


def test_sb3_subproc_example():
    out = _run("sb3_subproc.py")
    assert "all 2 workers in sync with the trained discriminator: True" in out, out


def test_plain_loop_example_moves_towards_the_data():
    """Co-trained D through gym.make_vec: the samples get closer to held-out names and collapse neither onto one
    symbol nor onto max length."""
    out = _run("plain_loop.py")
    rep = {m[0]: (float(m[1]), float(m[2]), float(m[3])) for m in re.findall(
        r"^(before|after): bigram JS to held-out names (\d\.\d+)  mean length (\d+\.\d)  most common character "
        r"(\d\.\d+) of all$", out, re.M)}
    assert set(rep) == {"before", "after"}, out
    (js0, _, _), (js1, length, top) = rep["before"], rep["after"]
    assert js1 < js0 - 0.05, out
    assert 3.0 <= length <= 9.0 and top < 0.3, out  # names, not "ooooooaaaaaa": max_length is 12
    phases = [int(p) for p in re.findall(r"D phases (\d+)", out)]
    assert phases and phases[-1] > phases[0] > 0, out  # the discriminator trained throughout, with no callback
