"""The TRL and torchrl extras stay optional: the library imports without them, and their entry points
say which extra to install when it is missing."""

from __future__ import annotations

import subprocess
import sys

import pytest


def test_import_seqgan_env_loads_neither_trl_nor_torchrl():
    code = ("import sys, seqgan_env, seqgan_env.integrations.trl, seqgan_env.integrations.torchrl; "
            "print(sorted(m for m in ('trl', 'torchrl', 'tensordict', 'datasets') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"


def test_make_adversarial_trainer_names_the_trl_extra(monkeypatch):
    from seqgan_env.integrations import trl as integration

    monkeypatch.setitem(sys.modules, "trl", None)  # as if trl were not installed
    with pytest.raises(ImportError, match=r"pip install 'seqgan-env\[trl\]'"):
        integration.make_adversarial_trainer("model", None, ["a"], None)
    monkeypatch.setitem(sys.modules, "datasets", None)
    with pytest.raises(ImportError, match=r"pip install 'seqgan-env\[trl\]'"):
        integration.prompt_dataset(4)


def test_make_torchrl_env_names_the_torchrl_extra(monkeypatch):
    from seqgan_env.integrations import torchrl as integration

    monkeypatch.setitem(sys.modules, "torchrl", None)
    monkeypatch.setitem(sys.modules, "torchrl.envs", None)
    monkeypatch.setitem(sys.modules, "torchrl.data", None)
    with pytest.raises(ImportError, match=r"pip install 'seqgan-env\[torchrl\]'"):
        integration.make_torchrl_env(max_length=12)
