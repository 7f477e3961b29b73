"""Every command in README.md is run by a test: its ```bash lines and its ```python blocks.

What runs how (the table ``COMMANDS`` below names each README line; a new README command that is not in it
fails ``test_every_readme_command_is_known``, a fast test):

- ``seqgan-env ...`` lines run for real with the venv's ``seqgan-env`` (the one beside ``sys.executable``),
  as written, from a temporary directory. ``seqgan-env train`` itself is the module fixture ``run_dir``: one
  real run with the README's defaults (MLE until the validation NLL stops improving, 100 adversarial updates; 1-3 minutes on a shared
  2-core CPU); the commands that take ``runs/<run>`` get that run directory, ``<run>`` substituted.
- Three ``train`` lines would take many minutes as written (COCO with BPE, three seeds, a second full run):
  they run as written plus ``SHORTEN`` (2 MLE steps, 2 adversarial updates, 50 evaluation samples), which
  only cuts the schedule: the data, tokenizer, seeds, ``--set``/``--name``/``--note`` are exercised.
- ``make venv``, ``make run`` and ``make test`` are dry runs (``make -n -B``: the whole recipe even when the venv is up to date; in the checkout: make needs the
  Makefile) whose printed recipe is checked: a real ``make venv`` installs torch (minutes, network), a real
  ``make run`` is ``seqgan-env train``, run for real above, and a real ``make test`` is the whole suite
  (6-7 minutes, and it would run this file again).
- ``source .venv/bin/activate`` runs for real in bash in the checkout when ``.venv`` exists (else skipped):
  it must put ``seqgan-env`` on PATH.
- The python block of "Use the environment" is run by tests/test_readme_env.py; the SB3 block runs here
  (about a minute: PPO for 10 000 steps).

Everything but the fast table check is ``slow``.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_readme_env import _env_snippet

ROOT = Path(__file__).resolve().parent.parent
SEQGAN_ENV = Path(sys.executable).parent / "seqgan-env"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
#: appended to the train lines that would take many minutes as written: only the schedule shrinks
SHORTEN = ["--set", "schedule.pretrain_steps=2", "--set", "schedule.updates=2", "--set", "schedule.eval_samples=50"]

#: every command line of the README's ```bash blocks (comments dropped) -> how this file runs it
COMMANDS = {
    "make venv": "dry-run",
    "source .venv/bin/activate": "activate",
    "make run": "dry-run",
    "make test": "dry-run",
    "seqgan-env train": "fixture",
    "seqgan-env train --data coco --tokenizer bpe": "shortened",
    'seqgan-env train --set reward.mode=per_step --name per-step --note "why"': "shortened",
    "seqgan-env train --seeds 0,1,2": "shortened",
    "seqgan-env train --resume runs/<run>": "real",
    "seqgan-env sample runs/<run> -n 20 --temperature 0.8": "real",
    "seqgan-env eval runs/<run>": "real",
    "seqgan-env plot runs/<run>": "real",
    "seqgan-env runs list": "real",
}
#: the first line of each README ```python block -> the test that runs it
PYTHON_BLOCKS = {
    "import gymnasium as gym": "tests/test_readme_env.py",
    "from stable_baselines3 import PPO": "tests/test_readme_commands.py::test_sb3_block_runs_as_written",
}
#: what each `make -n TARGET` must print (the recipe the README promises)
MAKE_RECIPES = {
    "venv": ["torch==2.13.0", '-e ".[dev]"'],
    "run": ["seqgan-env train"],
    "test": ["pytest -q"],
}


def _readme() -> str:
    return (ROOT / "README.md").read_text()


def readme_commands() -> list[str]:
    """The command lines of the README's ```bash blocks, without their comments, in order (shell-normalised)."""
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", _readme(), re.S):
        for line in block.splitlines():
            words = shlex.split(line, comments=True)
            if words:
                lines.append(shlex.join(words))
    return lines


def readme_python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", _readme(), re.S)


def test_every_readme_command_is_known():
    """A command added to (or changed in) the README without a test here fails."""
    assert readme_commands() == [shlex.join(shlex.split(c)) for c in COMMANDS]
    blocks = readme_python_blocks()
    assert [b.splitlines()[0] for b in blocks] == list(PYTHON_BLOCKS)
    assert _env_snippet() == blocks[0]  # tests/test_readme_env.py runs exactly the first block


def _run(args: list[str], cwd: Path, timeout: int = 900) -> subprocess.CompletedProcess:
    out = subprocess.run(args, capture_output=True, text=True, timeout=timeout, cwd=cwd, env=ENV)
    assert out.returncode == 0, f"{shlex.join(args)}\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}"
    return out


def _argv(command: str, run: Path | None = None) -> list[str]:
    words = shlex.split(command.replace("<run>", run.name) if run else command)
    assert words[0] == "seqgan-env"
    return [str(SEQGAN_ENV), *words[1:]]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    if not SEQGAN_ENV.is_file():
        pytest.skip(f"no seqgan-env beside {sys.executable}: pip install -e . (or make venv)")
    return tmp_path_factory.mktemp("readme")


@pytest.fixture(scope="module")
def run_dir(workdir) -> Path:
    """`seqgan-env train` as the README writes it (its defaults), run once for the module: runs/<run>."""
    out = _run(_argv("seqgan-env train"), workdir)
    runs = sorted((workdir / "runs").iterdir())
    assert len(runs) == 1, runs
    assert runs[0].name in out.stdout + out.stderr  # it prints its run directory
    return runs[0]


@pytest.mark.slow
def test_train_with_defaults_makes_a_finished_run(run_dir):
    assert (run_dir / "config.json").is_file() and (run_dir / "tokenizer.json").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("command", [c for c, how in COMMANDS.items() if how == "shortened"])
def test_long_train_command_runs_shortened(command, tmp_path):
    if not SEQGAN_ENV.is_file():
        pytest.skip(f"no seqgan-env beside {sys.executable}")
    _run(_argv(command) + SHORTEN, tmp_path)
    made = sorted((tmp_path / "runs").iterdir())
    assert len(made) == 1, made
    if "--seeds" in command:  # one group directory, a run per seed, and the summary
        assert (made[0] / "summary.json").is_file()
        assert len([p for p in made[0].iterdir() if p.is_dir()]) == 3
    if "--name per-step" in command:
        assert made[0].name.endswith("-per-step")
        assert '"per_step"' in (made[0] / "config.json").read_text()


@pytest.mark.slow
@pytest.mark.parametrize("command", [c for c, how in COMMANDS.items() if how == "real"])
def test_run_command_runs_as_written(command, run_dir):
    out = _run(_argv(command, run_dir), run_dir.parent.parent)
    if " sample " in f" {command} ":
        assert len(out.stdout.splitlines()) == 20, out.stdout
    if command.startswith("seqgan-env eval"):
        assert (run_dir / "eval.json").is_file()
    if command.startswith("seqgan-env plot"):
        assert list((run_dir / "plots").glob("*.png"))
    if command == "seqgan-env runs list":
        rows = out.stdout.splitlines()[1:]  # a header, then one row per run, named by its config's name
        assert [r.split()[0] for r in rows] == ["seqgan"], out.stdout


@pytest.mark.slow
@pytest.mark.parametrize("command", [c for c, how in COMMANDS.items() if how == "dry-run"])
def test_make_command_dry_run(command):
    target = command.split()[1]
    out = subprocess.run(["make", "-n", "-B", target], capture_output=True, text=True, timeout=60, cwd=ROOT, env=ENV)
    assert out.returncode == 0, out.stderr
    for expected in MAKE_RECIPES[target]:
        assert expected in out.stdout, out.stdout


@pytest.mark.slow
def test_activate_puts_seqgan_env_on_path():
    if not (ROOT / ".venv" / "bin" / "activate").is_file():
        pytest.skip("no .venv in the checkout (make venv makes it)")
    line = next(c for c, how in COMMANDS.items() if how == "activate")
    out = subprocess.run(["bash", "-c", f"{line} && command -v seqgan-env"], capture_output=True, text=True,
                         timeout=60, cwd=ROOT)
    assert out.returncode == 0 and out.stdout.strip() == str(ROOT / ".venv" / "bin" / "seqgan-env"), out


@pytest.mark.slow
def test_sb3_block_runs_as_written(tmp_path):
    if importlib.util.find_spec("stable_baselines3") is None:
        pytest.skip("the SB3 block needs stable-baselines3 (in the dev extra)")
    code = next(b for b in readme_python_blocks() if b.startswith("from stable_baselines3 import PPO"))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=900, cwd=tmp_path,
                         env=ENV)
    assert out.returncode == 0, out.stderr[-3000:]
