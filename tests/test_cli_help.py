"""`-h` and `--help` print help and exit 0 for every subcommand, nested choices included."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

import pytest

from seqgan_env.cli import build_parser, main

# The cross-check: a subcommand added to the parser but not here (or removed) fails test_discovery_matches.
EXPECTED = {
    (): None,
    ("demo",): None,
    ("bench",): ("env", "reward", "agent", "policy", "agents", "oracle", "ddp", "all"),
    ("benchmark",): ("oracle", "gan", "agents"),
    ("train",): None,
    ("runs",): ("list", "diff", "note"),
    ("sweep",): None,
    ("sample",): None,
    ("eval",): None,
    ("fit-ratio",): None,
    ("plot",): None,
}


def _discover(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command path of ``parser``: its subparsers (recursively) and the choices of its positionals."""
    paths = [prefix]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                paths += _discover(sub, (*prefix, name))
        elif not action.option_strings and action.choices:  # e.g. `bench agent`, `runs list`
            paths += [(*prefix, str(choice)) for choice in action.choices]
    return paths


COMMANDS = _discover(build_parser())


def test_discovery_matches_the_explicit_list():
    expected = [p for p, nested in EXPECTED.items() for p in [p, *((*p, n) for n in nested or ())]]
    assert sorted(COMMANDS) == sorted(expected)


def _run(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:  # argparse and tyro leave through SystemExit
        return 0 if exc.code is None else exc.code


@pytest.mark.parametrize("flag", ["-h", "--help"])
@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "(top)")
def test_help_exits_0_with_usage(command, flag, capsys):
    assert _run([*command, flag]) == 0
    out, err = capsys.readouterr()
    assert "usage" in out.lower(), out + err
    assert "error" not in err.lower(), err
    for word in command:  # the help shown is the subcommand's: it names it (a nested choice among the choices)
        assert word in out


@pytest.mark.parametrize("command", ["train", "sweep"])
def test_train_and_sweep_help_lists_own_options_and_config_fields(command, capsys):
    assert _run([command, "--help"]) == 0
    out = capsys.readouterr().out
    own = ["--seeds", "--resume", "--config"] if command == "train" else ["--trials", "--space", "--metric"]
    for flag in [*own, "--reinforce.batch-size", "--data.max-length"]:  # argparse part, then tyro's fields
        assert flag in out, flag
    assert f"seqgan-env {command}" in out


def test_sweep_without_required_options_still_exits_2(capsys):
    assert _run(["sweep"]) == 2
    assert "--trials, --space" in capsys.readouterr().err


def test_bench_ddp_module_help(capsys):
    from seqgan_benchmarks.speed_ddp import main as bench_ddp_main

    with pytest.raises(SystemExit) as exc:
        bench_ddp_main(["--help"])
    assert exc.value.code == 0 and "usage" in capsys.readouterr().out


def test_console_script_sweep_help():
    script = Path(sys.executable).with_name("seqgan-env")
    if not script.is_file():
        pytest.skip(f"console script {script} is not installed (pip install -e .)")
    proc = subprocess.run([str(script), "sweep", "--help"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "usage" in proc.stdout and "--trials" in proc.stdout and "--reinforce.batch-size" in proc.stdout
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("command", ["train", "sweep"])
def test_train_help_fits_a_screen_and_lists_each_option_once(command, capsys, monkeypatch):
    import re

    monkeypatch.setenv("COLUMNS", "100")
    assert _run([command, "--help"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert len(lines) <= 200, len(lines)
    assert max(map(len, lines)) <= 100
    # each option once: the first flag of each option line (`  --x.y TYPE ...`), bool pairs as --x.[no-]y
    flags = [m.group(1) for line in lines if (m := re.match(r"  (--[\w.\[\]-]+)", line))]
    assert len(flags) == len(set(flags)), sorted(f for f in flags if flags.count(f) > 1)
    for flag in ("--seed", "--name", "--agent", "--note", "--updates", "--reinforce.batch-size", "--data.[no-]skip-long"):
        assert flags.count(flag) == 1, flag
    agent = next(line for line in lines if line.startswith("  --agent "))  # a Literal: its choices
    assert "{reinforce,ppo,maskable_ppo,ddo}" in agent and "(default reinforce)" in agent
    assert "{discriminator,mc_rollout}" in next(line for line in lines if line.startswith("  --reward-scorer "))
    assert "{final,per_step,potential}" in next(line for line in lines if line.startswith("  --reward.mode "))
    updates = next(line for line in lines if line.startswith("  --updates "))  # a shortcut says for what
    assert "= --schedule.updates" in updates


def test_train_help_shows_the_defaults_in_effect(capsys):
    assert _run(["train", "--updates", "7", "--set", "reward.mode=final", "--help"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"--schedule\.updates INT .*\(default 7\)", out)
    assert re.search(r"--reward\.mode \S+ .*\(default final\)", out)
