"""`seqgan-env` command line: train, sample, eval, demo, bench.

Every failure caused by the user's input ends with one line on stderr naming the
problem and the fix, and a non-zero exit status; no traceback.
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable, Sequence

import numpy as np

EXIT_USAGE = 2


def _err(msg: str) -> None:
    print(f"seqgan-env: error: {msg}", file=sys.stderr)


def cmd_demo(args: argparse.Namespace) -> int:
    """Step the vector env with random valid actions; print finished sequences and their rewards."""
    import torch

    from .registration import make_vector_env

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
    del torch
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench import EnvBenchConfig, bench_env

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
    if args.what in ("agent", "all"):
        from agents.bench_agent import AgentBenchConfig, bench_agent

        bench_agent(AgentBenchConfig(batch_size=args.num_envs, max_length=args.max_length, device=args.device))
    return 0


def cmd_train(args: argparse.Namespace, rest: list[str]) -> int:
    """Train (or resume) a generator; options come from ``agents.trainer.TrainConfig``."""
    import tyro

    from agents.trainer import TrainConfig, new_run, resume_run, train_config_from_dict

    from .configio import apply_overrides, config_to_dict, load_config_file

    if args.resume:
        if rest or args.config or args.set:
            raise ValueError("--resume takes no other options: the run's config.json is used as it was.")
        trainer = resume_run(args.resume)
    else:
        data = load_config_file(args.config) if args.config else config_to_dict(TrainConfig())
        shortcuts = {
            "data": "data.path",
            "device": "reinforce.device",
            "pretrain_steps": "schedule.pretrain_steps",
            "updates": "schedule.updates",
            "seed": "seed",
            "name": "name",
            "agent": "agent",
        }
        overrides = list(args.set or [])
        for flag, key in shortcuts.items():
            value = getattr(args, flag)
            if value is not None:
                overrides.append(f"{key}={value}")
        data = apply_overrides(data, overrides, TrainConfig)
        if "data" in data and "path" in data["data"]:
            data["data"]["path"] = str(data["data"]["path"])
        default = train_config_from_dict(data)
        config = tyro.cli(TrainConfig, default=default, args=rest, prog="seqgan-env train")
        trainer = new_run(config)
    print(f"run directory: {trainer.run.path}", file=sys.stderr)
    try:
        report = trainer.fit(progress=not args.no_progress)
    finally:
        trainer.run.close()
    print(
        "final samples: " + ", ".join(f"{k}={v:.3f}" for k, v in report.items()),
        file=sys.stderr,
    )
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    """Print samples of a trained run to stdout, one per line, nothing else."""
    from agents.reinforce import ReinforceAgent, ReinforceConfig
    from agents.trainer import load_generator_for_sampling

    if args.n < 1:
        raise ValueError(f"-n {args.n} is invalid: ask for at least 1 sample.")
    generator, tokenizer, config = load_generator_for_sampling(args.run_dir)
    agent = ReinforceAgent(generator, ReinforceConfig(device=args.device, temperature=args.temperature, top_p=args.top_p))
    tokens = agent.sample(
        args.n, config.data.max_length, args.temperature, args.top_p, seed=args.seed, min_length=config.data.min_length
    )
    for text in tokenizer.decode_batch(tokens.cpu()):
        print(text)
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    """Sample-quality numbers of a run's generator next to its untrained start; writes eval.json."""
    import json

    from agents.reinforce import ReinforceAgent, ReinforceConfig
    from agents.trainer import load_generator_for_sampling

    from .data import load_dataset
    from .metrics import BigramModel, sample_report
    from .runs import RunDir, atomic_write_text

    if args.n < 1:
        raise ValueError(f"-n {args.n} is invalid: ask for at least 1 sample.")
    generator, tokenizer, config = load_generator_for_sampling(args.run_dir)
    data = load_dataset(
        config.data.path, max_length=config.data.max_length, valid_fraction=config.data.valid_fraction,
        seed=config.seed, tokenizer=tokenizer, skip_blank=config.data.skip_blank,
    )
    agent = ReinforceAgent(generator, ReinforceConfig(device=args.device))
    tokens = agent.sample(args.n, config.data.max_length, seed=args.seed, min_length=config.data.min_length)
    report = sample_report(tokenizer.decode_batch(tokens.cpu()), data.train_texts, BigramModel.fit(data.valid_texts))
    run = RunDir.open(args.run_dir, tensorboard=False)
    start = next((m for m in run.read_metrics() if "eval/untrained_bigram_nll" in m), None)
    run.close()
    result = {"samples": args.n, "seed": args.seed, "temperature": 1.0, "top_p": 1.0, **report}
    if start is not None:
        result["untrained_bigram_nll"] = start["eval/untrained_bigram_nll"]
        result["bigram_nll_drop"] = start["eval/untrained_bigram_nll"] - report["bigram_nll"]
    for key, value in result.items():
        print(f"{key:<22} {value:.4f}" if isinstance(value, float) else f"{key:<22} {value}")
    atomic_write_text(str(run.path / "eval.json"), json.dumps(result, indent=2))
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
        choices=["env", "agent", "all"],
        help="env: vector env vs SyncVectorEnv, one pass vs per prefix; agent: REINFORCE tokens/s, KV cache vs none",
    )
    bench.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="device of `bench agent`")
    bench.add_argument("--num-envs", type=int, default=256)
    bench.add_argument("--max-length", type=int, default=32)
    bench.add_argument("--vector-steps", type=int, default=300)
    bench.add_argument("--sync-steps", type=int, default=30)
    bench.add_argument("--reward-mode", default="per_step", choices=["final", "per_step", "potential"])
    bench.set_defaults(func=cmd_bench)

    train = sub.add_parser(
        "train",
        help="adversarial REINFORCE training; every TrainConfig field is an option (`train --help` lists them)",
        add_help=False,
    )
    train.add_argument("--config", default=None, help="JSON or TOML file with (part of) a TrainConfig")
    train.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a field, e.g. reinforce.gamma=0.95")
    train.add_argument("--resume", default=None, metavar="RUN_DIR", help="continue an interrupted run")
    train.add_argument("--data", default=None, help="text file, one sequence per line (shortcut for --data.path)")
    train.add_argument("--device", default=None, choices=["auto", "cpu", "cuda"], help="shortcut for --reinforce.device")
    train.add_argument("--pretrain-steps", dest="pretrain_steps", type=int, default=None)
    train.add_argument("--updates", type=int, default=None)
    train.add_argument("--seed", type=int, default=None)
    train.add_argument("--name", default=None)
    train.add_argument("--agent", default=None, choices=["reinforce", "ppo", "maskable_ppo"], help="shortcut for --agent")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.set_defaults(func=cmd_train, takes_rest=True)

    sample = sub.add_parser("sample", help="print samples of a trained run, one per line on stdout")
    sample.add_argument("run_dir")
    sample.add_argument("-n", type=int, default=20)
    sample.add_argument("--temperature", type=float, default=1.0)
    sample.add_argument("--top-p", dest="top_p", type=float, default=1.0)
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    sample.set_defaults(func=cmd_sample)

    ev = sub.add_parser("eval", help="sample-quality numbers of a run (prints a table, writes eval.json)")
    ev.add_argument("run_dir")
    ev.add_argument("-n", type=int, default=1000)
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    ev.set_defaults(func=cmd_eval)
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
