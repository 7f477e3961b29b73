"""The README's environment snippet (the first block of "Use the environment") runs as written.

It runs in a fresh interpreter from an empty temporary directory, so it needs nothing from the
checkout but the installed package (the data ships inside it).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _env_snippet() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index("\n## Use the environment\n")
    return re.search(r"```python\n(.*?)```", text[start:], re.S).group(1)


def test_env_snippet_runs_from_a_fresh_directory(tmp_path):
    code = _env_snippet()
    assert 'gym.make("seqgan_env:SeqGAN-v1")' in code  # the defaults as a user gets them, no extra argument
    check = code + "\nassert env.get_wrapper_attr('trainer').update_every is not None  # co-trains out of the box\n"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=300, cwd=tmp_path,
                         env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    assert list(tmp_path.iterdir()) == []  # nothing written where the user stands
