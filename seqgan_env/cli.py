"""`seqgan-env` command line: demo, bench (and train/sample once the agent is wired in).

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
    bench.add_argument("what", choices=["env", "all"], help="env: vector env vs SyncVectorEnv, one pass vs per prefix")
    bench.add_argument("--num-envs", type=int, default=256)
    bench.add_argument("--max-length", type=int, default=32)
    bench.add_argument("--vector-steps", type=int, default=300)
    bench.add_argument("--sync-steps", type=int, default=30)
    bench.add_argument("--reward-mode", default="per_step", choices=["final", "per_step", "potential"])
    bench.set_defaults(func=cmd_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except (ValueError, FileNotFoundError, NotADirectoryError, IsADirectoryError, TypeError) as exc:
        _err(str(exc))
        return EXIT_USAGE
    except KeyboardInterrupt:
        _err("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
