"""One rank of the 2-process gloo job behind tests/test_distributed.py (run as ``python -m tests._ddp_worker OUT``).

The test starts two of these with the variables torchrun would set (RANK, WORLD_SIZE,
LOCAL_RANK, MASTER_ADDR, MASTER_PORT). Each rank writes what it saw into OUT:

* ``train_rank<r>.json``: a real ``new_run(...).fit()`` of 4 updates, and a 2-update run
  resumed to 4; after every update this rank's local metrics and hashes of its
  generator and discriminator weights.
* ``update_<setting>_rank<r>.safetensors`` / ``.json``: the fixed batches of
  :func:`agent_batches` / :func:`disc_batches`, rows split across ranks, after two
  data-parallel updates (weights and local metrics).

The builders (:func:`make_agent`, :func:`make_discriminator`, the fixed batches and
the settings) are shared with the test, which redoes each update in one process on the
whole batch.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import torch

from seqgan_agents.reinforce import ReinforceAgent, ReinforceConfig, Rollout
from seqgan_env.envs.spec import PAD_ID
from seqgan_env.models.discriminator import Discriminator, DiscriminatorConfig
from seqgan_env.models.networks import ModelConfig, build_generator

TINY = ModelConfig(hidden_size=16, intermediate_size=32, num_heads=2, num_layers=1, max_position_embeddings=16)
V, B, T, N = 12, 8, 8, 6  # vocab, rollout rows, length, real rows (all divisible by the 2 ranks)

AGENT_SETTINGS = {
    "ewma_mle": dict(baseline="ewma", normalize_advantages=False, mle_coef=0.5),
    "batch_mean_norm": dict(baseline="batch_mean", normalize_advantages=True, mle_coef=0.0),
    "none_mle": dict(baseline="none", normalize_advantages=False, mle_coef=0.5),
    "ewma_norm_mle": dict(baseline="ewma", normalize_advantages=True, mle_coef=0.5),
}
DISC_SETTINGS = {
    "d_prefix_accum1": dict(grad_accum_steps=1, prefix_loss=True),
    "d_prefix_accum2": dict(grad_accum_steps=2, prefix_loss=True),
    "d_last_accum1": dict(grad_accum_steps=1, prefix_loss=False),
    "d_last_accum2": dict(grad_accum_steps=2, prefix_loss=False, loss="ce"),
}


def make_agent(setting: str) -> ReinforceAgent:
    """The same initial generator and agent on every rank and in the test."""
    torch.manual_seed(0)
    cfg = ReinforceConfig(device="cpu", lr=1e-2, entropy_coef=0.01, **AGENT_SETTINGS[setting])
    return ReinforceAgent(build_generator(TINY, V), cfg, seed=0)


def make_discriminator(setting: str) -> Discriminator:
    return Discriminator(V, TINY, DiscriminatorConfig(lr=1e-2, **DISC_SETTINGS[setting]), seed=1)


def agent_batches() -> list[tuple[Rollout, torch.Tensor]]:
    """Two fixed (rollout (B, T), real (N, T)) batches; episode lengths differ between the two halves."""
    out = []
    for k in range(2):
        g = torch.Generator().manual_seed(100 + k)
        tokens = torch.randint(3, V, (B, T), generator=g)  # (B, T)
        lengths = torch.tensor([8, 7, 8, 6, 2, 3, 1, 4]) if k == 0 else torch.tensor([1, 2, 8, 8, 5, 8, 7, 8])
        mask = torch.arange(T)[None] < lengths[:, None]  # (B, T)
        tokens = torch.where(mask, tokens, torch.full_like(tokens, PAD_ID))
        rewards = torch.rand(B, T, generator=g) * mask  # (B, T)
        action_masks = torch.ones(B, T, V, dtype=torch.bool)  # (B, T, V)
        action_masks[..., :2] = False  # PAD and BOS never sampled
        rollout = Rollout(tokens, rewards, mask, action_masks, None, torch.zeros(B, T))
        real = torch.randint(3, V, (N, T), generator=g)  # (N, T)
        real_len = torch.tensor([8, 8, 7, 2, 3, 1])
        real = torch.where(torch.arange(T)[None] < real_len[:, None], real, torch.full_like(real, PAD_ID))
        out.append((rollout, real))
    return out


def disc_batches() -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Two fixed (real (B, T), fake (B, T)) batches, right-padded, unequal lengths across the halves."""
    out = []
    for k in range(2):
        g = torch.Generator().manual_seed(200 + k)
        seqs = []
        for lengths in ([8, 7, 8, 6, 2, 3, 1, 4], [1, 2, 3, 8, 5, 8, 7, 8]):
            x = torch.randint(3, V, (B, T), generator=g)  # (B, T)
            ln = torch.tensor(lengths if k == 0 else lengths[::-1])
            seqs.append(torch.where(torch.arange(T)[None] < ln[:, None], x, torch.full_like(x, PAD_ID)))
        out.append((seqs[0], seqs[1]))
    return out


def rows(x, rank: int, world: int):
    """This rank's contiguous share of the rows of a tensor or Rollout."""
    if isinstance(x, Rollout):
        return Rollout(*(rows(getattr(x, f), rank, world) for f in
                         ("tokens", "rewards", "mask", "action_masks")), None, rows(x.sample_logp, rank, world))
    n = x.shape[0] // world
    return x[rank * n:(rank + 1) * n]


def digest(module: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for k, v in sorted(module.state_dict().items()):
        h.update(k.encode() + v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def tiny_train_config(out_dir: Path, updates: int):
    from seqgan_agents.trainer_config import TrainConfig, train_config_from_dict
    from seqgan_env.runs.configio import config_to_dict

    data = config_to_dict(TrainConfig())
    data.update(out_dir=str(out_dir), name="ddp")
    model = dict(hidden_size=16, intermediate_size=32, num_heads=2, num_layers=1, max_position_embeddings=16)
    data["generator"], data["discriminator_model"] = dict(model), dict(model)
    data["reinforce"].update(batch_size=8, device="cpu")
    data["d_updates"].update(batch_size=8)
    data["schedule"].update(updates=updates, pretrain_steps=2, d_pretrain_steps=1, eval_every=2, eval_samples=10,
                            checkpoint_every=2)
    return train_config_from_dict(data)


def _recorded(trainer, records: list) -> None:
    """Record, after every update, this rank's local metrics and weight hashes."""
    inner = trainer.train_step

    def train_step():
        metrics = inner()
        records.append({"step": trainer.step, "local": dict(trainer.local_metrics),
                        "generator": digest(trainer.agent.generator), "discriminator": digest(trainer.discriminator.net)})
        return metrics

    trainer.train_step = train_step


def scenario_train(out: Path, rank: int) -> None:
    import torch.distributed as dist

    from seqgan_agents.lifecycle import new_run, resume_run

    result: dict = {}
    full = new_run(tiny_train_config(out / "runs_full", 4))
    result["full"] = {"run": str(full.run.path), "records": []}
    _recorded(full, result["full"]["records"])
    full.fit(progress=False)
    full.run.close()

    half = new_run(tiny_train_config(out / "runs_half", 2))
    half.fit(progress=False)
    half.run.close()
    if rank == 0:  # raise the budget, as a user extending a run would
        cfg_path = half.run.path / "config.json"
        info = json.loads(cfg_path.read_text())
        info["config"]["schedule"]["updates"] = 4
        cfg_path.write_text(json.dumps(info))
    dist.barrier()
    resumed = resume_run(half.run.path)
    result["resumed"] = {"run": str(resumed.run.path), "start": resumed.step, "records": []}
    _recorded(resumed, result["resumed"]["records"])
    resumed.fit(progress=False)
    resumed.run.close()
    (out / f"train_rank{rank}.json").write_text(json.dumps(result))


def scenario_updates(out: Path, rank: int, world: int) -> None:
    import safetensors.torch

    from seqgan_agents.distributed import all_reduce_sum, current

    ctx = current()
    for setting in AGENT_SETTINGS:
        agent = make_agent(setting)
        agent.distribute(ctx)
        metrics = [agent.update(rows(r, rank, world), rows(real, rank, world)) for r, real in agent_batches()]
        safetensors.torch.save_file({k: v.clone().contiguous() for k, v in agent.generator.state_dict().items()},
                                    str(out / f"update_{setting}_rank{rank}.safetensors"))
        (out / f"update_{setting}_rank{rank}.json").write_text(json.dumps(metrics))
    for setting in DISC_SETTINGS:
        disc = make_discriminator(setting)
        disc.distribute(world, lambda t: all_reduce_sum(t, ctx))
        metrics = [disc.update(rows(real, rank, world), rows(fake, rank, world)) for real, fake in disc_batches()]
        safetensors.torch.save_file(disc.state_dict(), str(out / f"update_{setting}_rank{rank}.safetensors"))
        (out / f"update_{setting}_rank{rank}.json").write_text(json.dumps(metrics))


def main() -> int:
    from seqgan_agents import distributed

    torch.set_num_threads(1)
    out = Path(sys.argv[1])
    ctx = distributed.init("cpu")
    try:
        scenario_updates(out, ctx.rank, ctx.world_size)
        scenario_train(out, ctx.rank)
        (out / f"finished_rank{ctx.rank}").write_text("work done; tearing down the process group")
    except BaseException:
        distributed.destroy()
        raise
    distributed.destroy(sync=True)
    (out / f"done_rank{ctx.rank}").write_text(os.environ.get("WORLD_SIZE", ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
