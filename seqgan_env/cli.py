"""`seqgan-env` command line: train, sample, eval, plot, runs, sweep, demo, bench.

Every failure caused by the user's input ends with one line on stderr naming the
problem and the fix, and a non-zero exit status; no traceback.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from typing import Any, Callable, Sequence

import numpy as np

EXIT_USAGE = 2


def _err(msg: str) -> None:
    print(f"seqgan-env: error: {msg}", file=sys.stderr)


def cmd_demo(args: argparse.Namespace) -> int:
    """Step the vector env with random valid actions; print finished sequences and their rewards."""
    from seqgan_env.rewards.registration import make_vector_env

    venv = make_vector_env(
        args.num_envs,
        data_path=args.data,
        max_length=args.max_length,
        reward_mode=args.reward_mode,
        seed=args.seed,
    )
    rng = np.random.default_rng(args.seed)
    venv.reset(seed=args.seed)
    returns = np.zeros(args.num_envs)
    shown = 0
    print(f"{'text':<16} {'return':>8} {'D(real)':>8}")
    while shown < args.episodes:
        masks = venv.action_masks()  # (B, V)
        actions = np.array([rng.choice(np.flatnonzero(m)) for m in masks])  # random valid token per env
        _, rewards, terminated, truncated, infos = venv.step(actions)
        returns += rewards
        for i in np.flatnonzero(terminated | truncated):
            if shown < args.episodes:
                print(f"{infos['text'][i]:<16} {returns[i]:8.3f} {infos['disc_score'][i]:8.3f}")
                shown += 1
            returns[i] = 0.0
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from seqgan_benchmarks.speed_env import EnvBenchConfig, bench_env

    if args.what in ("env", "all"):
        bench_env(
            EnvBenchConfig(
                num_envs=args.num_envs,
                max_length=args.max_length,
                vector_steps=args.vector_steps,
                sync_steps=args.sync_steps,
                reward_mode=args.reward_mode,
            )
        )
    if args.what in ("reward", "all"):
        from seqgan_benchmarks.speed_env import bench_reward

        bench_reward()
    if args.what in ("agent", "all"):
        from seqgan_benchmarks.speed_agent import AgentBenchConfig, bench_agent

        bench_agent(AgentBenchConfig(batch_size=args.num_envs, max_length=args.max_length, device=args.device))
    if args.what in ("policy", "all"):
        from seqgan_benchmarks.speed_policy import bench_policy

        bench_policy()
    if args.what in ("agents", "all"):
        from seqgan_benchmarks.speed_sb3 import bench_agents

        bench_agents()
    if args.what in ("oracle", "all"):
        from seqgan_benchmarks.speed_oracle import OracleBenchConfig, bench_oracle

        bench_oracle(OracleBenchConfig(device=args.device))
    if args.what == "ddp":  # launches torchrun itself; `all` stays one process
        from seqgan_benchmarks.speed_ddp import DDPBenchConfig, bench_ddp

        bench_ddp(DDPBenchConfig(device="cuda" if args.device == "cuda" else "cpu"))
    return 0


def cmd_benchmark(args: argparse.Namespace) -> int:
    """The SeqGAN oracle benchmark table (benchmarks/quality_oracle.py); results also go to a JSON file."""
    import time
    from pathlib import Path

    if args.task == "agents":
        return _benchmark_agents(args)
    if args.agents or args.env_steps is not None:
        raise ValueError("--agents and --env-steps belong to `benchmark agents`; fix: drop them with oracle or gan.")
    if args.task == "gan":
        if args.rows or args.budget != 1.0:
            raise ValueError("--rows and --budget belong to `benchmark oracle`; fix: use --arms and --set with gan.")
        if args.mle_recipe:
            raise ValueError("--mle-recipe belongs to `benchmark oracle`; fix: drop it with gan (its mle arm early-stops "
                             "on the validation split already).")
        return _benchmark_gan(args)
    if args.data or args.arms or args.set or args.variant or args.score_on != "test" or args.ratio_d or \
            args.mle_patience is not None or args.mle_max_steps is not None:
        raise ValueError("--data, --arms, --set, --variant, --score-on, --ratio-d, --mle-patience and --mle-max-steps "
                         "belong to `benchmark gan`; fix: use --rows and --budget with oracle (or `benchmark gan "
                         "--data oracle`).")
    from seqgan_benchmarks.quality_oracle import ROWS, OracleBenchmarkConfig, run_benchmark

    rows = tuple(r.strip() for r in args.rows.split(",") if r.strip()) if args.rows else ROWS
    cfg = OracleBenchmarkConfig.with_recipe(args.mle_recipe, seeds=_parse_seeds(args.seeds), rows=rows,
                                            budget=args.budget, device=args.device)
    out = Path(args.out) if args.out else Path("benchmarks") / f"quality_oracle-{time.strftime('%Y%m%d-%H%M%S')}.json"
    if out.exists() and out.is_dir():
        raise ValueError(f"--out '{out}' is a directory; fix: pass a file path such as {out / 'oracle.json'}.")
    _check_out_path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    run_benchmark(cfg, out, log=print)
    print(f"results written to {out}", file=sys.stderr)
    return 0


def _check_out_path(out) -> None:
    """Refuse an --out file that cannot be written (a parent that is a file, or not writable) before any work."""
    import os

    if out.exists() and out.is_dir():
        raise ValueError(f"--out '{out}' is a directory; fix: pass a file path such as {out / 'results.json'}.")
    parent = out.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise ValueError(f"--out '{out}' cannot be written: '{parent}' is a file, not a directory; fix: pass a path "
                         f"in a directory.")
    # a real write test (os.access says yes to root everywhere): make the folders, a file, then remove them
    import tempfile

    created = []
    try:
        for d in reversed([*out.absolute().parents][: len(out.absolute().parents) - len(parent.parents) - 1]):
            d.mkdir()
            created.append(d)
        tempfile.TemporaryFile(dir=out.absolute().parent).close()
    except OSError as exc:
        raise ValueError(f"--out '{out}' cannot be written ({exc.strerror}: '{exc.filename or parent}'); fix: pass a "
                         f"path in a directory you can write to.") from None
    finally:
        for d in reversed(created):
            d.rmdir()


def _benchmark_gan(args: argparse.Namespace) -> int:
    """`benchmark gan`: benchmarks/quality_gan.py; JSON and frontier PNG under benchmarks/ unless --out."""
    import time
    from pathlib import Path

    from seqgan_benchmarks.quality_gan import GanBenchmarkConfig, run_benchmark
    from seqgan_env.data.text import DEFAULT_DATA_PATH

    arms = tuple(a.strip() for a in args.arms.split(",") if a.strip()) if args.arms else None
    extra = {k: v for k, v in (("mle_patience", args.mle_patience), ("mle_max_steps", args.mle_max_steps))
             if v is not None}
    cfg = GanBenchmarkConfig(data=args.data or str(DEFAULT_DATA_PATH), seeds=tuple(_parse_seeds(args.seeds)),
                             arms=arms, overrides=tuple(args.set or ()), variants=tuple(args.variant or ()),
                             score_on=args.score_on, ratio_d=_ratio_d_config(args.ratio_d, "--ratio-d"), **extra)
    out = Path(args.out) if args.out else Path("benchmarks") / f"quality_gan-{time.strftime('%Y%m%d-%H%M%S')}.json"
    if out.exists() and out.is_dir():
        raise ValueError(f"--out '{out}' is a directory; fix: pass a file path such as {out / 'gan.json'}.")
    _check_out_path(out)
    run_benchmark(cfg, out, log=print)
    print(f"results written to {out} and {out.with_suffix('.png')}", file=sys.stderr)
    return 0


def _benchmark_agents(args: argparse.Namespace) -> int:
    """`benchmark agents`: benchmarks/quality_agents.py; JSON, table (.md) and plot (.png) under benchmarks/."""
    import time
    from pathlib import Path

    if args.rows or args.budget != 1.0 or args.mle_recipe or args.arms or args.variant or args.score_on != "test":
        raise ValueError("--rows, --budget, --mle-recipe, --arms, --variant and --score-on belong to `benchmark oracle` "
                         "or `gan`; fix: with agents use --agents, --env-steps, --set, --data and --seeds.")
    from seqgan_benchmarks.quality_agents import AGENTS, AgentsBenchmarkConfig, run_benchmark
    from seqgan_env.data.text import DEFAULT_DATA_PATH

    agents = tuple(a.strip() for a in args.agents.split(",") if a.strip()) if args.agents else AGENTS
    extra = {} if args.env_steps is None else {"env_steps": args.env_steps}
    cfg = AgentsBenchmarkConfig(data=args.data or str(DEFAULT_DATA_PATH), seeds=tuple(_parse_seeds(args.seeds)),
                                agents=agents, overrides=tuple(args.set or ()), **extra)
    out = Path(args.out) if args.out else Path("benchmarks") / f"quality_agents-{time.strftime('%Y%m%d-%H%M%S')}.json"
    _check_out_path(out)
    run_benchmark(cfg, out, log=print)
    print(f"results written to {out}, {out.with_suffix('.md')} and {out.with_suffix('.png')}", file=sys.stderr)
    return 0


def _ratio_d_config(text: str | None, flag: str):
    """A RatioDConfig from ``KEY=VALUE,...`` (None: the defaults); a bad key or value names the flag and the fix."""
    import dataclasses
    import json

    from seqgan_env.eval.ratio_d import RatioDConfig

    if not text:
        return RatioDConfig()
    fields = {f.name for f in dataclasses.fields(RatioDConfig)}
    kwargs = {}
    for item in (p.strip() for p in text.split(",") if p.strip()):
        key, sep, value = item.partition("=")
        if not sep or key.strip() not in fields:
            raise ValueError(f"{flag} {item!r} is invalid: write KEY=VALUE with KEY one of {sorted(fields)}, e.g. "
                             f"{flag} steps=2000,dropout=0.1.")
        try:
            kwargs[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            raise ValueError(f"{flag} {item!r}: {value!r} is not a number; fix: e.g. {key.strip()}=0.1.") from None
    try:
        return RatioDConfig(**kwargs)
    except ValueError as exc:
        raise ValueError(f"{flag}: {exc}") from None


def cmd_train(args: argparse.Namespace, rest: list[str]) -> int:
    """Train (or resume) a generator; options come from ``seqgan_agents.trainer_config.TrainConfig``.

    Under ``torchrun --nproc_per_node=K -m seqgan_env.cli train ...`` the same command
    trains data-parallel on K ranks (agents/distributed.py); the process group is
    destroyed when the command ends.
    """
    from seqgan_agents import distributed
    from seqgan_agents.lifecycle import new_run, resume_run

    if _wants_help(rest):
        return _config_help(args, rest, "seqgan-env train")

    def run() -> int:
        if args.resume:
            _refuse_with_resume(args, rest)
            return _fit(resume_run(args.resume), args)
        seeds = None if args.seeds is None else _parse_seeds(args.seeds)  # the cheap check first
        config = _train_config(args, rest)
        if seeds is None:
            return _fit(new_run(config), args)
        return _train_seeds(config, seeds, args)

    try:
        rc = run()
    except BaseException:
        distributed.destroy()  # no barrier: the other ranks may never get there
        raise
    distributed.destroy(sync=True)
    return rc


#: train options a resumed run cannot honour (its config.json is used as it was): (flag, args attribute)
_NOT_WITH_RESUME = (("--config", "config"), ("--set", "set"), ("--data", "data"), ("--tokenizer", "tokenizer"),
                    ("--device", "device"), ("--pretrain-steps", "pretrain_steps"), ("--updates", "updates"),
                    ("--seed", "seed"), ("--name", "name"), ("--agent", "agent"), ("--note", "note"),
                    ("--seeds", "seeds"))


def _refuse_with_resume(args: argparse.Namespace, rest: list[str]) -> None:
    """`train --resume RUN` with an option it would silently ignore: refuse it, naming the first one."""
    given = [flag for flag, attr in _NOT_WITH_RESUME if getattr(args, attr) is not None]
    given += [a.split("=", 1)[0] for a in rest if a.startswith("--")]
    if not given and rest:
        given = [rest[0]]
    if not given:
        return
    flag = given[0]
    why = f"{flag} is not used with --resume: a resumed run continues with its own config.json, unchanged"
    if flag == "--updates":
        fix = (f"fix: drop --updates (the run trains to its own schedule.updates); to train longer, start a new run "
               f"with the --updates you want (a run's length also sets its schedules, so it is not extended in place)")
    elif flag == "--note":
        fix = f'fix: drop --note and attach it with seqgan-env runs note {args.resume} "TEXT"'
    else:
        fix = f"fix: drop {flag}, or start a new run with it (seqgan-env train {flag} ...)"
    raise ValueError(f"{why}; {fix}.")


def _wants_help(rest: list[str]) -> bool:
    return any(a in ("-h", "--help") for a in rest)


def _config_help(args: argparse.Namespace, rest: list[str], prog: str) -> int:
    """`train --help` / `sweep --help`: the command's own options and shortcuts, then every TrainConfig field once.

    One line per option, grouped by config section, with its type (choices for a Literal), its default (after
    --config / --set / the shortcuts given with --help) and the first sentence of its doc
    (``seqgan_env.runs.confighelp``).
    """
    import shutil

    from seqgan_env.runs.confighelp import render

    width = max(80, min(shutil.get_terminal_size((100, 24)).columns, 140))
    parser: argparse.ArgumentParser = args.parser
    usage = parser.usage or f"{prog} [options] [--SECTION.FIELD VALUE ...]"
    lines = [f"usage: {usage}", "",
             parser.description or "",
             "Each config field is an option --section.field (or --set section.field=VALUE, or a key of a --config",
             "file); the defaults shown are the ones in effect with the --config / --set / shortcuts given.",
             "", "options of the command:", "  -h, --help".ljust(_HELP_COLUMN) + "this help"]
    shortcuts = []
    for action in parser._actions:
        if not action.option_strings or action.option_strings[-1] in ("-h", "--help"):
            continue
        flag = action.option_strings[-1]
        key = _SHORTCUTS.get(action.dest, "tokenizer.kind/path" if action.dest == "tokenizer" else None)
        if action.dest == "note" or key == action.dest:
            continue  # --seed, --name, --agent, --note: the top-level config fields themselves, listed below
        meta = "" if action.nargs == 0 else " " + (action.metavar or (
            "{" + ",".join(action.choices) + "}" if action.choices else "INT" if action.type is int else "VALUE"))
        text = re.sub(r"\s*\(?shortcut for --[\w./-]+\)?", "", action.help or "").strip()
        if key is not None:
            text = f"= --{key.replace('_', '-')}" + (f": {text}" if text else "")
        (shortcuts if key is not None else lines).extend(_help_entry(f"  {flag}{meta}", text, width))
    if shortcuts:
        lines += ["", "shortcuts (each sets a config field; --seed, --name, --agent and --note are top-level fields):",
                  *shortcuts]
    lines += render(_default_train_config(args, rest), width=width)
    print("\n".join(line.rstrip() for line in lines))
    return 0


_HELP_COLUMN = 30


def _help_entry(head: str, text: str, width: int) -> list[str]:
    """``head`` then ``text`` wrapped in a column (the layout of argparse's option list)."""
    import textwrap

    body = textwrap.wrap(text, width - _HELP_COLUMN) or [""]
    if len(head) >= _HELP_COLUMN - 1:
        return [head, *(" " * _HELP_COLUMN + b for b in body if b)]
    return [head.ljust(_HELP_COLUMN) + body[0], *(" " * _HELP_COLUMN + b for b in body[1:])]


def _train_config(args: argparse.Namespace, rest: list[str], prog: str = "seqgan-env train"):
    """TrainConfig from defaults <- a named data set's preset <- --config file <- --set / shortcuts <- generated
    --section.field flags.

    The preset (``trainer_config.DATA_PRESETS``, e.g. for ``--data coco``) sits under everything the user
    says: the config is assembled once without it, and again with it when the data turns out to be named.
    """
    from seqgan_agents.trainer_config import preset_overrides, without_named_test_path

    config = _assemble_train_config(args, rest, prog, ())
    preset = preset_overrides(config.data.path, pretrained_generator=config.generator.pretrained is not None)
    config = _assemble_train_config(args, rest, prog, preset) if preset else config
    return config if _gave_test_path(args, rest) else without_named_test_path(config)


def _gave_test_path(args: argparse.Namespace, rest: list[str]) -> bool:
    """Whether the user set data.test_path (a flag, --set or the --config file), rather than a named data set."""
    from seqgan_env.runs.configio import load_config_file

    if any(a.startswith(("--data.test-path", "--data.test_path")) for a in rest):
        return True
    if any(s.split("=", 1)[0].strip() == "data.test_path" for s in args.set or []):
        return True
    data = load_config_file(args.config).get("data") if args.config else None
    return isinstance(data, dict) and "test_path" in data


#: the train / sweep flags that set one config field: args attribute -> the field's dotted key
_SHORTCUTS = {
    "data": "data.path",
    "device": "reinforce.device",
    "pretrain_steps": "schedule.pretrain_steps",
    "updates": "schedule.updates",
    "seed": "seed",
    "name": "name",
    "agent": "agent",
}


def _assemble_train_config(args: argparse.Namespace, rest: list[str], prog: str, preset: tuple[str, ...]):
    """The TrainConfig with the generated ``--section.field`` flags applied by tyro.

    tyro reports a bad flag in a multi-line box; it is captured and raised as one ValueError line
    (the CLI's error contract), naming the flag and the value, with the flag's expected form as the fix.
    """
    import contextlib
    import io

    import tyro

    from seqgan_agents.trainer_config import TrainConfig

    default = _config_before_flags(args, preset)
    out = io.StringIO()
    try:
        with contextlib.redirect_stderr(out), contextlib.redirect_stdout(out):
            return tyro.cli(TrainConfig, default=default, args=rest, prog=prog)
    except SystemExit as exc:
        if exc.code in (0, None):  # tyro printed something the user asked for (its own help)
            sys.stdout.write(out.getvalue())
            raise
        raise ValueError(_one_line_tyro_error(out.getvalue(), prog)) from None


def _one_line_tyro_error(text: str, prog: str) -> str:
    """tyro's boxed error as one line: its message, then the expected form of the flag as the fix."""
    sections, current = [], []
    for line in text.splitlines():
        stripped = line.strip(" │╭╮╰╯")
        if stripped and set(stripped) <= set("-─━"):
            sections.append(current)
            current = []
        elif stripped:
            current.append(" ".join(stripped.split()))
    sections.append(current)
    message = " ".join(sections[1]) if len(sections) > 1 else " ".join(sections[0])
    message = re.sub(r"^(\w+): (?=\1\.)", "", message.removeprefix("Error parsing "))  # "tokenizer: tokenizer.x=..."
    if "fix:" in message:  # the config's own message already says what to do
        return message
    usage = next((" ".join(sec[1:2]) for sec in sections if sec and sec[0].startswith("Argument helptext")), "")
    fix = f"give it as {usage}" if usage else f"see {prog} --help"
    return f"{message.rstrip('.') or 'invalid option'}; fix: {fix}."


def _config_before_flags(args: argparse.Namespace, preset: tuple[str, ...]):
    """TrainConfig from defaults <- ``preset`` <- --config <- --set / shortcuts (no generated flags yet)."""
    from seqgan_agents.trainer_config import TrainConfig, train_config_from_dict
    from seqgan_env.data.subword import TOKENIZER_KINDS
    from seqgan_env.runs.configio import apply_overrides, config_to_dict, load_config_file, merge_dicts

    data = apply_overrides(config_to_dict(TrainConfig()), list(preset), TrainConfig)
    if args.config:
        data = merge_dicts(data, load_config_file(args.config))
    overrides = list(args.set or [])
    for flag, key in _SHORTCUTS.items():
        value = getattr(args, flag)
        if value is not None:
            overrides.append(f"{key}={value}")
    tokenizer = getattr(args, "tokenizer", None)
    if tokenizer is not None:  # a kind (bpe, word, ...) or the path of a tokenizer.json / tokenizer directory
        if tokenizer in TOKENIZER_KINDS:
            overrides += [f"tokenizer.kind={tokenizer}", "tokenizer.path=null"]
        else:
            overrides += ["tokenizer.kind=file", f"tokenizer.path={json.dumps(tokenizer)}"]
    data = apply_overrides(data, overrides, TrainConfig)
    if args.note is not None:
        data["note"] = args.note
    return train_config_from_dict(data)


def _default_train_config(args: argparse.Namespace, rest: list[str]):
    """The TrainConfig before the generated --section.field flags: what `train --help` shows as defaults."""
    from seqgan_agents.trainer_config import preset_overrides

    config = _config_before_flags(args, ())
    preset = preset_overrides(config.data.path, pretrained_generator=config.generator.pretrained is not None)
    return _config_before_flags(args, preset) if preset else config


def _fit(trainer, args: argparse.Namespace) -> int:
    main = getattr(getattr(trainer, "dist", None), "is_main", True)  # torchrun: rank 0 speaks for all
    if main:
        print(f"run directory: {trainer.run.path}", file=sys.stderr)
    from seqgan_env.rewards.sources import RewardSourceError

    try:
        report = trainer.fit(progress=not args.no_progress)
    except RewardSourceError as exc:
        done = "after pretraining" if trainer.pretrained else "where it stopped"
        raise RewardSourceError(f"{str(exc).rstrip('.')}, then resume the run {done}: seqgan-env train --resume {trainer.run.path}.") \
            from exc.__cause__
    finally:
        trainer.run.close()
    if main:
        print("final samples: " + ", ".join(f"{k}={v:.3f}" for k, v in report.items()), file=sys.stderr)
        if hasattr(trainer, "sample_tokens"):  # a few texts to read by eye (own seed: nothing else moves)
            texts = trainer.data.tokenizer.decode_batch(trainer.sample_tokens(SHOWN_SAMPLES, seed=0).cpu())
            print("samples (temperature 1): " + " | ".join(texts), file=sys.stderr)
    return 0


SHOWN_SAMPLES = 5


def _parse_seeds(text: str) -> list[int]:
    """``--seeds 0,1,2`` -> [0, 1, 2]; an empty item, a non-integer, a negative or a repeated seed is refused."""
    fix = "fix: give distinct non-negative integers separated by commas, e.g. --seeds 0,1,2"
    seeds: list[int] = []
    for i, item in enumerate(text.split(",")):
        item = item.strip()
        if not item:
            raise ValueError(f"--seeds {text!r} has an empty item (position {i + 1}); {fix}.")
        if not item.isdigit() or not item.isascii():
            raise ValueError(f"--seeds {text!r}: {item!r} is not a non-negative integer; {fix}.")
        if int(item) in seeds:
            raise ValueError(f"--seeds {text!r} repeats seed {int(item)}; {fix}.")
        seeds.append(int(item))
    return seeds


def _train_seeds(config, seeds: list[int], args: argparse.Namespace) -> int:
    """One run per seed (sequentially) in one group directory, then summary.json and mean ± std."""
    import dataclasses
    import time
    from pathlib import Path

    from seqgan_agents.lifecycle import new_run
    from seqgan_env.runs.experiments import (
        DEFAULT_SEED_METRICS,
        ORACLE_SEED_METRICS,
        format_seed_summary,
        summarize_seeds,
        write_group_summary,
    )

    group = Path(config.out_dir) / f"{time.strftime('%Y%m%d-%H%M%S')}-{config.name}-seeds"
    paths = []
    for seed in seeds:
        cfg = dataclasses.replace(config, seed=seed, out_dir=str(group), name=f"{config.name}-s{seed}")
        trainer = new_run(cfg)
        paths.append(trainer.run.path)
        _fit(trainer, args)
    metrics = ORACLE_SEED_METRICS if config.data.is_oracle else DEFAULT_SEED_METRICS
    write_group_summary(group, paths, metrics)
    print(f"group directory: {group}", file=sys.stderr)
    print(format_seed_summary(summarize_seeds(paths, metrics)))
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    """`runs list [DIR]`, `runs diff A B`, `runs note RUN TEXT`."""
    from seqgan_env.runs.experiments import (
        diff_runs,
        format_diff,
        format_runs_table,
        list_runs,
        write_note,
    )

    if args.action == "list":
        if len(args.paths) > 1:
            raise ValueError("runs list takes at most one directory: seqgan-env runs list [DIR].")
        rows = list_runs(args.paths[0] if args.paths else "runs")
        print(format_runs_table(rows))
        bad = [row for row in rows if row.get("status") == "unreadable"]
        for row in bad:  # listed as `unreadable` above; here why, with the fix
            _err(row["error"])
        return EXIT_USAGE if bad else 0
    elif args.action == "diff":
        if len(args.paths) != 2:
            raise ValueError("runs diff needs exactly two run directories: seqgan-env runs diff RUN_A RUN_B.")
        print(format_diff(diff_runs(*args.paths)))
    else:
        if len(args.paths) != 2:
            raise ValueError('runs note needs a run directory and a text: seqgan-env runs note RUN "text".')
        write_note(args.paths[0], args.paths[1])
    return 0


def cmd_sweep(args: argparse.Namespace, rest: list[str]) -> int:
    """Optuna TPE over a search space file; each trial is a normal run; resumable."""
    from seqgan_agents.lifecycle import new_run
    from seqgan_agents.trainer_config import TrainConfig
    from seqgan_env.eval.metrics import CHARACTER_METRICS
    from seqgan_env.runs.configio import config_to_dict
    from seqgan_env.runs.experiments import final_metric
    from seqgan_env.runs.sweep import SweepConfig, best_trial_summary, load_space, run_sweep

    if _wants_help(rest):
        return _config_help(args, rest, "seqgan-env sweep")
    missing = [flag for flag, value in (("--trials", args.trials), ("--space", args.space)) if value is None]
    if missing:
        args.parser.error(f"the following arguments are required: {', '.join(missing)}")
    space = load_space(args.space, TrainConfig)
    base = _train_config(args, rest)
    if base.data.is_oracle and args.metric.removeprefix("eval/") in CHARACTER_METRICS:
        raise ValueError(f"--metric {args.metric} is not recorded on oracle runs (integer tokens have no character "
                         f"metrics); fix: --metric eval/nll_oracle (or eval/nll_test).")
    sweep_cfg = SweepConfig(trials=args.trials, metric=args.metric, direction=args.direction, seed=base.seed)

    def train_fn(cfg_dict: dict, number: int) -> float | None:
        from seqgan_agents.trainer_config import train_config_from_dict

        trainer = new_run(train_config_from_dict(cfg_dict))
        try:
            trainer.fit(progress=False)
        finally:
            trainer.run.close()
        return final_metric(trainer.run.path, args.metric)

    from seqgan_agents.trainer_config import train_config_from_dict

    study = run_sweep(args.dir, space, config_to_dict(base), sweep_cfg, train_fn, config_cls=TrainConfig,
                      check_config=train_config_from_dict)
    print(best_trial_summary(study))
    return 0


#: Rows `sample` draws (and `eval` samples) per chunk: memory stays flat as -n grows, and each chunk is written
#: as soon as it is drawn. With --d-filter a chunk is this many candidates (oversample x the rows kept from them).
SAMPLE_CHUNK = 1024
#: Most samples `eval` scores: it holds every one in memory (and scores each against the references).
MAX_EVAL_SAMPLES = 100_000


def _chunk_seed(seed: int, index: int) -> int:
    """The sampling seed of chunk ``index``: ``seed`` itself for the first (so -n up to a chunk draws what one call
    would), then independent streams derived from (seed, index)."""
    if index == 0:
        return seed
    return int(np.random.SeedSequence([seed % 2**64, index]).generate_state(1, np.uint64)[0] >> np.uint64(1))


def _chunks(n: int, size: int):
    """(index, rows) of the chunks of ``n`` rows, ``size`` rows each but the last."""
    for index, start in enumerate(range(0, n, size)):
        yield index, min(size, n - start)


#: Candidate prefixes D scores per step of --d-tilt sampling (rows x vocabulary): a chunk has this many over V rows.
TILT_CANDIDATES = 65_536


def _parse_alpha(text: Any) -> float | str | None:
    """``--d-tilt``: None, a finite number, or ``auto`` (the alpha fit-ratio chose); else one clear ValueError."""
    if text is None or text == "auto" or isinstance(text, float):
        return text
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise ValueError(f"--d-tilt {text} is invalid: it must be a finite number or auto; fix: 0 is the generator, 1 "
                         f"the full tilt by D's logit, auto the alpha seqgan-env fit-ratio chose, e.g. --d-tilt 0.5.")
    return value


#: The largest vocabulary fit-ratio and eval --d-tilt accept: the tilt scores every token with D at every step.
TILT_MAX_VOCAB = 1024


def _check_tilt_vocab(vocab_size: int, what: str) -> None:
    if vocab_size > TILT_MAX_VOCAB:
        raise ValueError(f"{what} scores all {vocab_size} vocabulary tokens with D at every step, beyond the "
                         f"{TILT_MAX_VOCAB} this command accepts (the SeqGAN oracle has 5,000); fix: use it on "
                         f"character-level or other small-vocabulary runs, or sample with --d-filter.")


def _tilt_discriminator(run_dir: str, alpha: float | str, vocab_size: int, device: str, tokenizer: Any):
    """(discriminator, alpha, source) for --d-tilt: RUN/ratio_d when fit-ratio made one, else the run's co-trained D
    (``auto`` needs RUN/ratio_d)."""
    from pathlib import Path

    from seqgan_env.eval.ratio_d import RATIO_DIR, load_ratio_d

    ratio_dir = Path(run_dir) / RATIO_DIR
    if ratio_dir.is_dir():
        disc, meta = load_ratio_d(ratio_dir, device=device)
        return disc, float(meta["alpha"]) if alpha == "auto" else float(alpha), str(ratio_dir)
    if alpha == "auto":
        raise ValueError(f"--d-tilt auto uses the alpha of a density-ratio D, and {ratio_dir} does not exist; fix: "
                         f"seqgan-env fit-ratio {run_dir}, or pass a number, e.g. --d-tilt 0.5.")
    from seqgan_agents.lifecycle import load_discriminator_for_sampling

    disc = load_discriminator_for_sampling(run_dir, vocab_size, device=device, tokenizer=tokenizer)
    return disc, float(alpha), "the run's co-trained discriminator"


def cmd_fit_ratio(args: argparse.Namespace) -> int:
    """`fit-ratio RUN`: a density-ratio D against the run's frozen generator, saved under RUN/ratio_d."""
    from pathlib import Path

    from seqgan_agents.lifecycle import load_generator_for_sampling, load_run_data
    from seqgan_agents.reinforce import ReinforceAgent, ReinforceConfig
    from seqgan_env.eval.ratio_d import RATIO_DIR, choose_report_split, fit_ratio_d, save_ratio_d

    cfg = _ratio_d_config(args.ratio_d, "--ratio-d")
    generator, tokenizer, config = load_generator_for_sampling(args.run_dir)
    _check_tilt_vocab(tokenizer.vocab_size, "fit-ratio")
    data = load_run_data(config, tokenizer)
    agent = ReinforceAgent(generator, ReinforceConfig(device=args.device))
    choose, _ = choose_report_split(data.valid)

    def sample(n: int, seed: int):
        return agent.sample(n, config.data.max_length, seed=seed, min_length=config.data.min_length,
                            allow_eos=config.data.eos)

    res = fit_ratio_d(agent.generator, sample, data.train, choose, cfg, device=agent.device,
                      log=lambda m: print(m.strip(), file=sys.stderr))
    out = Path(args.run_dir) / RATIO_DIR
    save_ratio_d(res, cfg, out)
    print(f"density-ratio D: best at step {res.best_step} of {res.steps}, alpha {res.alpha:g}; validation NLL "
          f"{res.valid_nll:.4f} tilted vs {res.valid_nll_generator:.4f} generator (nats/token, on the rows alpha was "
          f"chosen on); saved to {out}")
    return 0


def _check_sample_args(args: argparse.Namespace) -> None:
    """The cheap checks of `sample` before the run is read: -n, --d-filter-* only with --d-filter, and --d-tilt alone
    (an exact sampler at temperature 1: no --d-filter, --temperature or --top-p beside it)."""
    if args.n < 1:
        raise ValueError(f"-n {args.n} is invalid: ask for at least 1 sample.")
    args.d_tilt = _parse_alpha(args.d_tilt)
    if args.d_tilt is not None:
        if args.d_filter is not None:
            raise ValueError("--d-tilt and --d-filter are two ways to sample through D: pass one of them.")
        if args.temperature != 1.0 or args.top_p != 1.0:
            raise ValueError(f"--d-tilt samples the tilted model itself (temperature 1, top-p 1), got --temperature "
                             f"{args.temperature} --top-p {args.top_p}; fix: drop --temperature and --top-p.")
    if args.d_filter is None:
        given = [flag for flag, value in (("--d-filter-oversample", args.d_filter_oversample),
                                          ("--d-filter-beta", args.d_filter_beta)) if value is not None]
        if given:
            raise ValueError(f"{given[0]} is only used with --d-filter; fix: add --d-filter sir (or rejection), or "
                             f"drop {given[0]}.")


def cmd_sample(args: argparse.Namespace) -> int:
    """Print samples of a trained run to stdout, one per line, nothing else.

    Samples are drawn in chunks of ``SAMPLE_CHUNK`` rows and each chunk is written (and flushed) as soon as it is
    drawn: memory stays flat as -n grows, a reader sees lines at once, `| head` ends the command quietly (exit 0),
    and Ctrl-C leaves every finished chunk printed.
    """
    from seqgan_agents.lifecycle import load_generator_for_sampling
    from seqgan_agents.reinforce import ReinforceAgent, ReinforceConfig

    from seqgan_env.models.d_filter import DFilterError

    _check_sample_args(args)
    if args.d_tilt is None and args.d_filter is None and args.temperature == 1.0 and args.top_p == 1.0:
        from pathlib import Path

        from seqgan_env.eval.ratio_d import RATIO_DIR

        if (Path(args.run_dir) / RATIO_DIR).is_dir():
            args.d_tilt = "auto"  # a run with a fitted density-ratio D samples its tilted model by default
    cfg = None
    if args.d_filter is not None:
        from seqgan_env.models.d_filter import DFilterConfig

        # defaults here, not in argparse: given without --d-filter they are refused (_check_sample_args)
        cfg = DFilterConfig(method=args.d_filter,
                            oversample=4 if args.d_filter_oversample is None else args.d_filter_oversample,
                            beta=1.0 if args.d_filter_beta is None else args.d_filter_beta)
    generator, tokenizer, config = load_generator_for_sampling(args.run_dir)
    agent = ReinforceAgent(generator, ReinforceConfig(device=args.device, temperature=args.temperature, top_p=args.top_p))

    def draw(k: int, seed: int | None):
        return agent.sample(
            k, config.data.max_length, args.temperature, args.top_p, seed=seed,
            min_length=config.data.min_length, allow_eos=config.data.eos,
        )

    if args.d_tilt is not None:
        from seqgan_env.envs.spec import EnvConfig
        from seqgan_env.models.tilted import sample_tilted

        disc, alpha, _ = _tilt_discriminator(args.run_dir, args.d_tilt, tokenizer.vocab_size, str(agent.device),
                                             tokenizer)
        spec = EnvConfig(vocab_size=tokenizer.vocab_size, max_length=config.data.max_length,
                         min_length=config.data.min_length, allow_eos=config.data.eos)
        rows = max(1, min(SAMPLE_CHUNK, TILT_CANDIDATES // tokenizer.vocab_size))
        chunks = (sample_tilted(agent.generator, disc, k, alpha, spec, seed=_chunk_seed(args.seed, i))
                  for i, k in _chunks(args.n, rows))
    elif cfg is None:
        chunks = (draw(k, _chunk_seed(args.seed, i)) for i, k in _chunks(args.n, SAMPLE_CHUNK))
    else:
        import torch

        from seqgan_agents.lifecycle import load_discriminator_for_sampling
        from seqgan_env.models.d_filter import d_filter

        disc = load_discriminator_for_sampling(args.run_dir, tokenizer.vocab_size, device=str(agent.device),
                                               tokenizer=tokenizer)
        rounds = iter(range(1, 2**62))  # one candidate seed per round, over all chunks
        resample = torch.Generator().manual_seed(args.seed)
        kept_per_chunk = max(1, SAMPLE_CHUNK // cfg.oversample)  # candidates per round <= max(SAMPLE_CHUNK, oversample)
        chunks = (d_filter(lambda k: draw(k, args.seed * 1_000_003 + next(rounds)), disc.sequence_scores, k, cfg,
                           generator=resample) for _, k in _chunks(args.n, kept_per_chunk))
    written = 0
    try:
        for tokens in chunks:
            texts = tokenizer.decode_batch(tokens.cpu())
            sys.stdout.write("".join(f"{t}\n" for t in texts))
            sys.stdout.flush()
            written += len(texts)
    except BrokenPipeError:
        _quiet_stdout()  # the reader has gone (`| head`): stop as Unix tools do, no traceback, exit 0
        return 0
    except KeyboardInterrupt:
        _err(f"interrupted after {written} of {args.n} samples (all {written} printed above)")
        return 130
    except DFilterError as exc:
        raise ValueError(f"--d-filter rejection stopped after {written} of {args.n} samples: "
                         f"{str(exc).split('; fix:')[0]}; fix: raise --d-filter-oversample, lower --d-filter-beta, "
                         f"or use --d-filter sir (it always returns -n samples).") from None
    return 0


def _quiet_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's last flush on a closed pipe raises nothing."""
    import os

    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # not a real file (captured in tests)
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


def cmd_eval(args: argparse.Namespace) -> int:
    """Sample-quality numbers of a run's generator next to its untrained start; writes eval.json.

    With ``data.test_path`` (coco): the literature's protocol of ``seqgan_env.eval.text_benchmark``
    (words as tokens, the test file as references, NLL-test); else BLEU against the held-out split.
    """
    import json

    import torch

    from seqgan_agents.lifecycle import (
        check_data_unchanged,
        load_generator_for_sampling,
        load_run_data,
        load_test_texts,
    )
    from seqgan_agents.reinforce import ReinforceAgent, ReinforceConfig
    from seqgan_env.eval.text_benchmark import held_out_report
    from seqgan_env.eval.metrics import (
        BLEU_SMOOTHING,
        CHARACTER_METRICS,
        BigramModel,
        bleu_n_table,
        length_distance,
        ngram_jsd,
        sample_report,
        self_bleu,
    )
    from seqgan_env.runs.rundir import RunDir
    from seqgan_env.utils.atomic import atomic_write_text

    if args.n < 1:
        raise ValueError(f"-n {args.n} is invalid: ask for at least 1 sample.")
    args.d_tilt = _parse_alpha(args.d_tilt)
    if args.n > MAX_EVAL_SAMPLES:
        raise ValueError(f"-n {args.n} is too many for eval, which holds every sample in memory to score it; fix: "
                         f"-n {MAX_EVAL_SAMPLES} or fewer (to print more samples, use seqgan-env sample, which streams).")
    generator, tokenizer, config = load_generator_for_sampling(args.run_dir)
    run = RunDir.open(args.run_dir, tensorboard=False)
    try:
        check_data_unchanged(run, config)  # scored against the data it was trained on, as --resume checks
    finally:
        run.close()
    data = load_run_data(config, tokenizer)
    agent = ReinforceAgent(generator, ReinforceConfig(device=args.device))
    tokens = torch.cat([  # (n, T), drawn a chunk at a time (the sampler's cache grows with its batch)
        agent.sample(k, config.data.max_length, seed=_chunk_seed(args.seed, i), min_length=config.data.min_length,
                     allow_eos=config.data.eos)
        for i, k in _chunks(args.n, SAMPLE_CHUNK)
    ])
    texts = tokenizer.decode_batch(tokens.cpu())
    report = sample_report(texts, data.train_texts, BigramModel.fit(data.valid_texts))
    test = load_test_texts(config)
    if test is not None:
        # The real-text protocol (eval/text_benchmark.py): words as tokens, the test file as references, NLL-test.
        report.update(held_out_report(generator.to(agent.device), tokenizer, texts, test))
        references = f"test file {config.data.test_path} ({len(test)} lines), words as tokens"
    else:
        # Tokens: characters of a name, or the oracle's integer tokens.
        split = (lambda t: t.split()) if config.data.is_oracle else (lambda t: t)  # noqa: E731
        samples = [split(t) for t in texts if t] or [split(" ")]
        refs = [split(t) for t in data.valid_texts]
        report.update(bleu_n_table(samples, refs))  # BLEU-2..5 against the held-out split
        report["self_BLEU-3"] = self_bleu(samples, max_n=3)  # each sample against the others only
        report["length_distance"] = length_distance([split(t) for t in texts], refs)
        report["bigram_jsd"] = ngram_jsd(samples, refs, n=2)
        references = "held-out split"
    if config.data.is_oracle:
        # Character-level numbers mean nothing for integer tokens; the benchmark's two numbers replace them.
        for key in CHARACTER_METRICS:
            report.pop(key)
        report.update(data.benchmark_metrics(generator, tokens))  # samples at temperature 1; held-out split
    run = RunDir.open(args.run_dir, tensorboard=False)
    start = next((m for m in run.read_metrics() if "eval/untrained_bigram_nll" in m), None)
    run.close()
    result = {"samples": args.n, "seed": args.seed, "temperature": 1.0, "top_p": 1.0, "references": references,
              "bleu_smoothing": BLEU_SMOOTHING, "bleu_weights": "uniform over 1..n", **report}
    if start is not None and "bigram_nll" in report:
        result["untrained_bigram_nll"] = start["eval/untrained_bigram_nll"]
        result["bigram_nll_drop"] = start["eval/untrained_bigram_nll"] - report["bigram_nll"]
    if args.d_tilt is not None:
        result.update(_tilt_report(args, generator.to(agent.device), tokenizer, config, data, test, str(agent.device)))
    for key, value in result.items():
        print(f"{key:<22} {value:.4f}" if isinstance(value, float) else f"{key:<22} {value}")
    atomic_write_text(str(run.path / "eval.json"), json.dumps(result, indent=2))
    return 0


def _tilt_report(args: argparse.Namespace, generator: Any, tokenizer: Any, config: Any, data: Any,
                 test: list[str] | None, device: str) -> dict[str, Any]:
    """eval --d-tilt: exact held-out NLL (nats per token, EOS included) of the generator and of the tilted model."""
    from seqgan_env.eval.likelihood import generator_nll
    from seqgan_env.eval.ratio_d import choose_report_split
    from seqgan_env.models.tilted import tilted_nll

    _check_tilt_vocab(tokenizer.vocab_size, "eval --d-tilt")
    disc, alpha, source = _tilt_discriminator(args.run_dir, args.d_tilt, tokenizer.vocab_size, device, tokenizer)
    if test is not None:
        rows, where = tokenizer.encode_batch(test, config.data.max_length), f"test file {config.data.test_path}"
    else:
        _, rows = choose_report_split(data.valid)
        where = "validation rows at odd positions (fit-ratio chooses on the even ones)"
    return {"d_tilt_alpha": alpha, "d_tilt_discriminator": source, "d_tilt_rows": where,
            "generator_nll": generator_nll(generator, rows), "tilted_nll": tilted_nll(generator, disc, rows, alpha)}


def cmd_plot(args: argparse.Namespace) -> int:
    """PNGs of a run (reward, reward sources, discriminator, KL, eval) or of a --seeds group (mean ± std band)."""
    from pathlib import Path

    from seqgan_env.runs.plots import plot_group, plot_run

    path = Path(args.path)
    if not path.is_dir():
        raise ValueError(f"'{path}' is not a directory; fix: pass a run directory or a --seeds group directory.")
    written = plot_group(path) if (path / "summary.json").is_file() else plot_run(path)
    for p in written:
        print(p)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seqgan-env", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="random valid actions in the env; prints sequences and rewards")
    demo.add_argument("--data", default=None, help="text file, one sequence per line (default: census first names)")
    demo.add_argument("--num-envs", type=int, default=8)
    demo.add_argument("--max-length", type=int, default=12)
    demo.add_argument("--episodes", type=int, default=10)
    demo.add_argument("--reward-mode", default="per_step", choices=["final", "per_step", "potential"])
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(func=cmd_demo)

    bench = sub.add_parser("bench", help="speed ratios measured side by side in one run")
    bench.add_argument(
        "what",
        choices=["env", "reward", "agent", "policy", "agents", "oracle", "ddp", "all"],
        help="env: vector env vs SyncVectorEnv, one pass vs per prefix; reward: per_step vs mc_rollout (K=16); "
        "agent: REINFORCE tokens/s, KV cache vs none; policy: the SB3 generator policy stepped with vs without its KV cache; agents: SB3 PPO native adapter vs DummyVecEnv, REINFORCE vs PPO; oracle: adversarial tokens/s "
        "with mc_rollout and per_step on the SeqGAN oracle task vs a peer implementation, MLE epoch time; "
        "ddp: trainer tokens/s, 1 process vs 2 torchrun ranks (not part of all; more: python -m seqgan_benchmarks.speed_ddp --help)",
    )
    bench.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="device of `bench agent`")
    bench.add_argument("--num-envs", type=int, default=256)
    bench.add_argument("--max-length", type=int, default=32)
    bench.add_argument("--vector-steps", type=int, default=300)
    bench.add_argument("--sync-steps", type=int, default=30)
    bench.add_argument("--reward-mode", default="per_step", choices=["final", "per_step", "potential"])
    bench.set_defaults(func=cmd_bench)

    benchmark = sub.add_parser(
        "benchmark", help="the SeqGAN oracle benchmark: MLE, SeqGAN's mc_rollout and our reward modes, one table"
    )
    benchmark.add_argument("task", choices=["oracle", "gan", "agents"],
                           help="oracle: SeqGAN's Table 1; gan: MLE vs adversarial vs D-filtered on a text file; agents: "
                                "REINFORCE vs SB3 PPO (native adapter and make_vec_env) vs A2C from one MLE-pretrained "
                                "generator, at equal env steps and equal wall time")
    benchmark.add_argument("--agents", default=None, help="agents: comma-separated subset of "
                           "reinforce,reinforce_nomle,ppo,ppo_sb3vec,a2c (default: all)")
    benchmark.add_argument("--env-steps", dest="env_steps", type=int, default=None,
                           help="agents: generator env steps (tokens written) each agent trains for after pretraining "
                                "(default 75000: 3 seeds take about 15-20 minutes on 2 CPU cores)")
    benchmark.add_argument("--data", default=None, help="gan, agents: text file, one sequence per line (default: census first "
                           "names), coco (MS COCO captions, their test file, the coco preset) or oracle (SeqGAN's "
                           "synthetic task: NLL-oracle and NLL-test)")
    benchmark.add_argument("--arms", default=None, help="gan: comma-separated subset of mle,adversarial,scratch,d_filter,"
                           "tilted "
                           "and the variants' names (default: all; the oracle: no d_filter)")
    benchmark.add_argument("--variant", action="append", metavar="NAME:KEY=VALUE,...", default=None,
                           help="gan: one more adversarial arm with these overrides, e.g. rloo:reinforce.baseline=rloo")
    benchmark.add_argument("--score-on", default="test", choices=["test", "valid"],
                           help="gan: test (report) or valid (choose recipes on a validation split; test is not scored)")
    benchmark.add_argument("--set", action="append", metavar="KEY=VALUE", default=None,
                           help="gan: override a TrainConfig field of the adversarial arm (as in train --set); agents: of every "
                                "agent (pretraining, D, reinforce.*, ppo.*)")
    benchmark.add_argument("--ratio-d", dest="ratio_d", default=None, metavar="KEY=VALUE,...",
                           help="gan: the tilted arm's density-ratio D recipe (RatioDConfig fields), e.g. "
                                "steps=2000,dropout=0.1,fakes_per_real=2")
    benchmark.add_argument("--mle-patience", dest="mle_patience", type=int, default=None,
                           help="gan: validation evaluations without improvement before the mle arm stops (default 5; "
                                "0: run to the cap)")
    benchmark.add_argument("--mle-max-steps", dest="mle_max_steps", type=int, default=None,
                           help="gan: the mle arm's step cap (default: the adversarial config's pretrain_steps + updates)")
    benchmark.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (mean ± std over them)")
    benchmark.add_argument("--budget", type=float, default=1.0, help="scales all training steps (1.0 ~ 1 h on 2 CPU cores)")
    benchmark.add_argument("--rows", default=None, help="comma-separated subset of mle,seqgan,per_step,potential,constant")
    benchmark.add_argument("--mle-recipe", dest="mle_recipe", default=None, choices=["seqgan"],
                           help="oracle: MLE pretraining recipe; seqgan: SeqGAN's LSTM generator, Adam 0.01, clip 5, up "
                                "to 80 epochs early-stopped on a validation split, dropout 0.3 (NLL-oracle 9.29 on "
                                "seed 0; published MLE: 9.038)")
    benchmark.add_argument("--out", default=None, help="JSON results file (default benchmarks/quality_oracle-<time>.json)")
    benchmark.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    benchmark.set_defaults(func=cmd_benchmark)

    train = sub.add_parser(
        "train",
        help="adversarial REINFORCE training; every TrainConfig field is an option (`train --help` lists them)",
        description="Train a generator (MLE pretraining, then adversarial updates), or resume a run.",
        add_help=False,
    )
    train.add_argument("--config", default=None, metavar="FILE", help="JSON or TOML file with (part of) a TrainConfig")
    train.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a field, e.g. reinforce.gamma=0.95")
    train.add_argument("--resume", default=None, metavar="RUN_DIR", help="continue an interrupted run")
    train.add_argument("--data", default=None, metavar="PATH|NAME",
                       help="text file, one sequence per line, or a named data set: coco (MS COCO captions with "
                            "their test file and the defaults of trainer_config.DATA_PRESETS['coco']), oracle "
                            "(shortcut for --data.path)")
    train.add_argument("--tokenizer", default=None, metavar="KIND|PATH",
                       help="char, bpe, unigram or word (trained on the data file; --tokenizer.vocab-size), or the "
                            "path of a tokenizer.json / tokenizer directory (shortcut for --tokenizer.kind/path)")
    train.add_argument("--device", default=None, choices=["auto", "cpu", "cuda"], help="shortcut for --reinforce.device")
    train.add_argument("--pretrain-steps", dest="pretrain_steps", type=int, default=None)
    train.add_argument("--updates", type=int, default=None)
    train.add_argument("--seed", type=int, default=None)
    train.add_argument("--name", default=None)
    train.add_argument("--agent", default=None, choices=["reinforce", "ppo", "maskable_ppo", "ddo"],
                       help="shortcut for --agent")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.add_argument("--note", default=None, help="free text recorded with the run (runs list / runs diff)")
    train.add_argument("--seeds", default=None, metavar="S1,S2,...",
                       help="distinct comma-separated seeds, e.g. 0,1,2: one run each in a group dir + summary.json")
    train.set_defaults(func=cmd_train, takes_rest=True, parser=train)

    runs = sub.add_parser("runs", help="list runs, diff two runs' configs, or attach a note")
    runs.add_argument("action", choices=["list", "diff", "note"])
    runs.add_argument("paths", nargs="*", help="list: [DIR]; diff: RUN_A RUN_B; note: RUN TEXT")
    runs.set_defaults(func=cmd_runs)

    sweep = sub.add_parser(
        "sweep", help="Optuna TPE sweep; each trial a normal run (train options apply)", add_help=False,
        description="Optuna TPE sweep over TrainConfig fields; each trial is a normal run (train options apply).",
        usage="seqgan-env sweep --trials TRIALS --space SPACE [options] [train options]",
    )
    # --trials and --space are required, checked in cmd_sweep: argparse would refuse `sweep --help` without them.
    sweep.add_argument("--trials", type=int, default=None, help="number of trials (required)")
    sweep.add_argument("--space", default=None,
                       help="(required) JSON/TOML: dotted config keys -> {type, low, high, log | choices}")
    sweep.add_argument("--metric", default="eval/bigram_nll", help="the run metric each trial is scored by (last value)")
    sweep.add_argument("--direction", default="minimize", choices=["minimize", "maximize"])
    sweep.add_argument("--dir", default="sweeps/sweep", help="sweep directory (SQLite study + runs); resumes if it exists")
    for flag in ("--config", "--data", "--device", "--name", "--agent", "--note", "--tokenizer"):
        sweep.add_argument(flag, default=None)
    sweep.add_argument("--set", action="append", metavar="KEY=VALUE")
    sweep.add_argument("--pretrain-steps", dest="pretrain_steps", type=int, default=None)
    sweep.add_argument("--updates", type=int, default=None)
    sweep.add_argument("--seed", type=int, default=None)
    sweep.set_defaults(func=cmd_sweep, takes_rest=True, parser=sweep)

    sample = sub.add_parser("sample", help="print samples of a trained run, one per line on stdout (streamed: "
                            "written in chunks as they are drawn)")
    sample.add_argument("run_dir")
    sample.add_argument("-n", type=int, default=20)
    sample.add_argument("--temperature", type=float, default=1.0)
    sample.add_argument("--top-p", dest="top_p", type=float, default=1.0)
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    sample.add_argument("--d-filter", dest="d_filter", default=None, choices=["sir", "rejection"],
                        help="keep samples by the run's discriminator: weights D/(1-D) estimate p_data/p_model "
                             "(sir: importance resampling without replacement; rejection: DRS)")
    sample.add_argument("--d-filter-oversample", dest="d_filter_oversample", type=int, default=None,
                        help="with --d-filter: candidates drawn per kept sample (sir) or per round (rejection); "
                             "default 4, at most 10000")
    sample.add_argument("--d-filter-beta", dest="d_filter_beta", type=float, default=None,
                        help="with --d-filter: weight exponent: 0 = plain sampling, 1 = the estimated density ratio "
                             "(default)")
    sample.add_argument("--d-tilt", dest="d_tilt", default=None, metavar="ALPHA|auto",
                        help="sample the tilted generator q(v|x<t) ~ p_G(v|x<t) exp(ALPHA s(x<t v)), s the per-prefix "
                             "logit of the run's density-ratio D (RUN/ratio_d, made by seqgan-env fit-ratio; else the "
                             "run's co-trained D), normalised at every step (exact, no rejection; 0 = the generator; "
                             "auto = the ALPHA fit-ratio chose on validation). Scores every vocabulary token at every "
                             "step: for small vocabularies. Default: auto when RUN/ratio_d exists and no --temperature, "
                             "--top-p or --d-filter is given, else off")
    sample.set_defaults(func=cmd_sample)

    ev = sub.add_parser("eval", help="sample-quality numbers of a run (prints a table, writes eval.json); with a "
                        "test file (data.test_path, set by --data coco): BLEU-2..5 and self-BLEU-2..5 over words "
                        "against it and the generator's NLL-test on it")
    ev.add_argument("run_dir")
    ev.add_argument("-n", type=int, default=1000, help=f"samples to score (at most {MAX_EVAL_SAMPLES})")
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    ev.add_argument("--d-tilt", dest="d_tilt", default=None, metavar="ALPHA|auto",
                    help="also the exact held-out NLL of the tilted generator (as sample --d-tilt) beside the "
                         "generator's, on the test file if the run has one, else on the validation rows fit-ratio "
                         "did not choose on")
    ev.set_defaults(func=cmd_eval)

    fit = sub.add_parser("fit-ratio", help="train a density-ratio discriminator against a run's frozen generator "
                         "(hard labels, every prefix, early-stopped on the exact tilted validation NLL) and choose the "
                         "tilt ALPHA; saved under RUN/ratio_d for sample/eval --d-tilt")
    fit.add_argument("run_dir")
    fit.add_argument("--ratio-d", dest="ratio_d", default=None, metavar="KEY=VALUE,...",
                     help="the recipe (RatioDConfig fields), e.g. steps=2000,dropout=0.1,weight_decay=0.01")
    fit.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    fit.set_defaults(func=cmd_fit_ratio)

    plot = sub.add_parser("plot", help="PNGs of a run's metrics (or a --seeds group with a mean ± std band)")
    plot.add_argument("path")
    plot.set_defaults(func=cmd_plot)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if rest and not getattr(args, "takes_rest", False):
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    func: Callable[..., int] = args.func
    try:
        return func(args, rest) if getattr(args, "takes_rest", False) else func(args)
    except (ValueError, FileNotFoundError, NotADirectoryError, IsADirectoryError, TypeError, FloatingPointError) as exc:
        _err(str(exc))
        return EXIT_USAGE
    except KeyboardInterrupt:
        _err("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
