"""`seqgan-env bench ddp`: trainer tokens/s with 1 process vs K data-parallel ranks (torchrun, DDP).

Every configuration runs the real trainer step (collect with the discriminator reward,
REINFORCE + MLE update, discriminator phase) of the default ``TrainConfig`` models,
launched by ``torch.distributed.run`` in a fresh process group, measured back to back
in one invocation and repeated ``repeats`` times interleaved (best run counts). The
per-rank batch is fixed, so K ranks train a K-times larger global batch (weak
scaling); tokens/s counts the generated tokens of all ranks per wall-clock second.

Each configuration is ``(ranks, threads per rank, per-rank batch)`` (batch 0: the
config's ``batch_size``). On a CPU the honest comparison keeps the cores equal: on 2
cores, 2 ranks x 1 thread against 1 process x 2 threads, at the same per-rank batch
and at the same global batch (and 1 process x 1 thread, the per-core baseline).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from seqgan_env.utils.validation import check_int, check_ints


@dataclass(frozen=True)
class DDPBenchConfig:
    """Configurations ``(ranks, threads per rank, per-rank batch or 0)``, default per-rank batch,
    timed updates, repeats, device."""

    configs: tuple[tuple[int, int, int], ...] = ((1, 1, 0), (1, 2, 0), (1, 2, 256), (2, 1, 0))
    batch_size: int = 128
    updates: int = 10
    warmup: int = 2
    repeats: int = 2
    device: str = "cpu"

    def __post_init__(self) -> None:
        check_ints(self, ("batch_size", "updates", "repeats"))
        check_int("warmup", self.warmup, 0)
        for ranks, threads, batch in self.configs:
            check_int("ranks", ranks, 1, "use e.g. 1 or 2")
            check_int("threads", threads, 1, "use e.g. 1")
            check_int("batch", batch, 0, "use 0 for the default per-rank batch")
        if self.device not in ("cpu", "cuda"):
            raise ValueError(f"device={self.device!r} is invalid: use 'cpu' or 'cuda' (one GPU per rank).")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(out: Path, batch_size: int, updates: int, warmup: int, device: str) -> None:
    """One rank: build the default trainer (no run directory writes), time ``updates`` train steps."""
    from seqgan_agents import distributed
    from seqgan_agents.distributed import FollowerRun
    from seqgan_agents.lifecycle import load_run_data
    from seqgan_agents.trainer import Trainer
    from seqgan_agents.trainer_config import TrainConfig, train_config_from_dict
    from seqgan_env.runs.configio import config_to_dict

    data = config_to_dict(TrainConfig())
    data["reinforce"].update(batch_size=batch_size, device=device)
    cfg = train_config_from_dict(data)
    ctx = distributed.init(device)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            trainer = Trainer(cfg, FollowerRun(tmp), load_run_data(cfg), dist=ctx)
            for _ in range(warmup):
                trainer.train_step()
            distributed.any_flag(False, ctx)  # a barrier: every rank starts the clock together
            t0 = time.perf_counter()
            tokens = 0
            for _ in range(updates):
                trainer.train_step()
                tokens += int(trainer.local_metrics.get("tokens", 0))  # this rank's generated tokens
            if device == "cuda":
                torch.cuda.synchronize()
            seconds = time.perf_counter() - t0
            del trainer  # its DDP wrappers must be freed before the process group is destroyed
        total_tokens = distributed.all_reduce_sum(torch.tensor([float(tokens)], dtype=torch.float64), ctx)
        clocks = torch.zeros(ctx.world_size, dtype=torch.float64)  # (W,) every rank's wall time
        clocks[ctx.rank] = seconds
        clocks = distributed.all_reduce_sum(clocks, ctx)
        if ctx.is_main:
            out.write_text(json.dumps({"tokens": float(total_tokens[0]), "seconds": float(clocks.max()),
                                       "world_size": ctx.world_size, "threads": torch.get_num_threads()}))
    except BaseException:
        distributed.destroy()
        raise
    distributed.destroy(sync=True)


def _launch(ranks: int, threads: int, batch: int, cfg: DDPBenchConfig, out: Path) -> dict:
    """torchrun one configuration; its rank-0 result."""
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={ranks}", "--master_addr=127.0.0.1",
           f"--master_port={_free_port()}", "-m", "seqgan_benchmarks.speed_ddp", "--worker", str(out),
           "--batch-size", str(batch), "--updates", str(cfg.updates), "--warmup", str(cfg.warmup),
           "--device", cfg.device]
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads),
           "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"bench ddp: {ranks} rank(s) x {threads} thread(s) failed (exit {proc.returncode}):\n"
                           f"{proc.stderr[-2000:]}")
    return json.loads(out.read_text())


def bench_ddp(cfg: DDPBenchConfig = DDPBenchConfig(), log: Callable[[str], None] = print) -> dict[str, float]:
    """tokens/s of every configuration (best of ``repeats``, interleaved) and ratios to the first."""
    import platform

    best: dict[tuple[int, int, int], float] = {}
    configs = [(r, t, b or cfg.batch_size) for r, t, b in cfg.configs]
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(cfg.repeats):
            for ranks, threads, batch in configs:
                res = _launch(ranks, threads, batch, cfg, Path(tmp) / f"r{rep}_{ranks}_{threads}_{batch}.json")
                rate = res["tokens"] / res["seconds"]  # all ranks' tokens / the slowest rank's wall time
                best[(ranks, threads, batch)] = max(best.get((ranks, threads, batch), 0.0), rate)
    base = best[configs[0]]
    log(f"bench ddp: trainer step tokens/s (collect + REINFORCE/MLE update + D phase, default models), "
        f"{cfg.updates} updates after {cfg.warmup} warm-up, best of {cfg.repeats}; "
        f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, device {cfg.device}")
    log(f"{'ranks':>5} {'threads/rank':>12} {'batch/rank':>10} {'global batch':>12} {'tokens/s':>10} {'vs first':>8}")
    out: dict[str, float] = {}
    for (ranks, threads, batch), rate in best.items():
        log(f"{ranks:>5} {threads:>12} {batch:>10} {ranks * batch:>12} {rate:>10.0f} {rate / base:>7.2f}x")
        out[f"tokens_per_s/{ranks}x{threads}@{batch}"] = rate
    return out


def _parse_configs(text: str) -> tuple[tuple[int, int, int], ...]:
    """"1x1,1x2@256,2x1" -> ((1, 1, 0), (1, 2, 256), (2, 1, 0)): RANKSxTHREADS[@PER_RANK_BATCH]."""
    out = []
    try:
        for item in (i.strip() for i in text.split(",") if i.strip()):
            shape, _, batch = item.partition("@")
            ranks, threads = (int(x) for x in shape.split("x"))
            out.append((ranks, threads, int(batch) if batch else 0))
    except ValueError:
        out = []
    if not out:
        raise ValueError(f"--configs {text!r} is invalid: give RANKSxTHREADS[@BATCH] items, e.g. --configs 1x1,1x2@256,2x1.")
    return tuple(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m seqgan_benchmarks.speed_ddp", description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default="1x1,1x2,1x2@256,2x1",
                        help="RANKSxTHREADS[@PER_RANK_BATCH], comma-separated")
    parser.add_argument("--batch-size", type=int, default=128, help="per-rank batch (envs) where a config names none")
    parser.add_argument("--updates", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)  # internal: one rank under torchrun
    args = parser.parse_args(argv)
    if args.worker:
        _worker(Path(args.worker), args.batch_size, args.updates, args.warmup, args.device)
        return 0
    try:
        cfg = DDPBenchConfig(configs=_parse_configs(args.configs), batch_size=args.batch_size, updates=args.updates,
                             warmup=args.warmup, repeats=args.repeats, device=args.device)
    except ValueError as exc:
        print(f"bench ddp: error: {exc}", file=sys.stderr)
        return 2
    bench_ddp(cfg)
    return 0


if __name__ == "__main__":
    sys.exit(main())
