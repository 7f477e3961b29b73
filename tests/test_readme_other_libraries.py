"""The snippets of the docs' "Other RL libraries" page (docs/other-libraries.md; the README links there) run as written.

Each ```python block of the page from its marker comment on (one per library: SB3's native adapter, TRL,
torchrl, a plain Gymnasium loop) runs in a fresh interpreter in a temporary directory.
The TRL block reads a model directory "my-model": the test saves a tiny Llama and its
tokenizer there (nothing is downloaded). A block whose library is missing is skipped with
the reason. Measured: about 2 minutes together on a shared 2-core CPU (SB3's alone about 70 s): slow.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow
NEEDS = {"stable_baselines3": "stable-baselines3", "trl": "trl", "torchrl": "torchrl"}


def _section_blocks() -> list[str]:
    text = (ROOT / "docs" / "other-libraries.md").read_text()
    start = text.index("<!-- The python snippets from here to the end of the page run as written")
    return re.findall(r"```python\n(.*?)```", text[start:], re.S)


BLOCKS = _section_blocks()


def _library(code: str) -> str:
    for module in NEEDS:
        if re.search(rf"^(from|import) {module}\b", code, re.M):
            return module
    return "gymnasium"


def test_the_section_has_one_snippet_per_library():
    assert sorted(_library(b) for b in BLOCKS) == ["gymnasium", "stable_baselines3", "torchrl", "trl"]


@pytest.mark.parametrize("code", BLOCKS, ids=[_library(b) for b in BLOCKS])
def test_snippet_runs_as_written(code, tmp_path):
    library = _library(code)
    if importlib.util.find_spec(library) is None:
        pytest.skip(f"the {library} snippet needs {NEEDS.get(library, library)}: pip install 'seqgan-env[{library}]'")
    if library == "trl":
        from tests._hf_tiny import char_tokenizer, tiny_llama

        tok = char_tokenizer()
        tiny_llama(len(tok)).save_pretrained(tmp_path / "my-model")
        tok.save_pretrained(tmp_path / "my-model")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, cwd=tmp_path,
                         env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    if library == "torchrl":
        assert "torch.Size([16, 24, 1])" in out.stdout
    if library == "gymnasium":
        assert re.search(r"^\d+ \[", out.stdout, re.M), out.stdout  # some sequences ended and were printed
