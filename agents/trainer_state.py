"""What a REINFORCE or DDO run's checkpoint holds, and how it is put back: weights, optimizer and
schedule states, the D schedule, the alarms, and every random stream of every rank (``Trainer.state``
and ``Trainer.load_checkpoint`` delegate here). ``trainer`` is a
:class:`seqgan_agents.trainer.Trainer` (not imported: it imports this module).
"""

from __future__ import annotations

from typing import Any

import torch

from seqgan_agents import distributed
from seqgan_env.runs.rundir import rng_state, set_rng_state
from seqgan_env.utils.codec import (
    flatten_optimizer_state,
    flatten_scheduler_state,
    unflatten_optimizer_state,
    unflatten_scheduler_state,
)

__all__ = ["capture", "restore"]


def capture(trainer: Any) -> tuple[dict[str, dict[str, torch.Tensor]], dict[str, Any]]:
    """``trainer``'s checkpoint as (tensor groups, JSON meta); a collective when data-parallel.

    Weights, optimizer and schedule states are identical on every rank and saved
    once. RNG states differ per rank: rank 0's are in groups ``agent`` (its
    ``rng_state``) and ``rng``; rank r >= 1's (gathered to every rank) in group
    ``rng_rank<r>`` (``agent_rng``, ``real_gen``, ``wrapper_gen``, global torch /
    CUDA) with meta ``rng_rank<r>`` (numpy, python), so a resume continues every
    rank's streams exactly.
    """
    agent_state = trainer.agent.state_dict()
    d_opt_t, d_opt_m = flatten_optimizer_state(trainer.discriminator.optimizer.state_dict())
    tensors = {
        "agent": agent_state["tensors"],
        "discriminator": trainer.discriminator.state_dict(),
        "discriminator_optimizer": d_opt_t,
        "rng": {},
    }
    meta: dict[str, Any] = {
        "agent": agent_state["meta"],
        "discriminator_optimizer": d_opt_m,
        "discriminator_num_updates": trainer.discriminator.num_updates,
        "callback": trainer.callback.state_dict(),
        "train_step": trainer.step,
        "pretrained": trainer.pretrained,
        "mle_pretrained": trainer.mle_pretrained,
        "mle_steps": trainer.mle_steps,
        "mle_best_step": trainer.mle_best_step,
        "mle_valid_nll": trainer.mle_valid_nll,
        "alarms": trainer.alarms.state_dict(),
    }
    if trainer.ddo is not None:
        tensors["ddo"], meta["ddo"] = trainer.ddo.state_dict()
    if trainer.discriminator.scheduler is not None:
        st, sm = flatten_scheduler_state(trainer.discriminator.scheduler.state_dict())
        tensors["discriminator_scheduler"] = st
        meta["discriminator_scheduler"] = sm
    rng_t, rng_m = rng_state()
    tensors["rng"] = {**rng_t, "real_gen": trainer.real_gen.get_state(), "wrapper_gen": trainer.venv.trainer.generator.get_state()}
    meta["rng"] = rng_m
    if trainer.mc_scorer is not None:  # the rollout policy (same on every rank) and this rank's rollout RNG
        tensors["rollout_generator"] = {
            k: v.detach().cpu().clone().contiguous() for k, v in trainer.mc_scorer.rollout_generator.state_dict().items()
        }
        tensors["rng"]["mc_rollout_gen"] = trainer.mc_scorer.rng.get_state().cpu()
    if trainer.dist.is_distributed:
        own = {**tensors["rng"], "agent_rng": trainer.agent.rng.get_state()}
        for r, (t, m) in enumerate(distributed.gather_state(own, rng_m, trainer.dist)):
            if r > 0:
                tensors[f"rng_rank{r}"], meta[f"rng_rank{r}"] = t, m
        meta["world_size"] = trainer.dist.world_size
    return tensors, meta


def restore(trainer: Any, tensors: dict[str, dict[str, torch.Tensor]], meta: dict[str, Any]) -> None:
    """Load a checkpoint's (tensor groups, JSON meta), as :func:`capture` wrote them, into ``trainer``.

    Raises:
        ValueError: the checkpoint does not match the run's models or format.
    """
    try:
        trainer.agent.load_state_dict({"tensors": tensors["agent"], "meta": meta["agent"]})
        trainer.discriminator.load_state_dict(tensors["discriminator"])
        trainer.discriminator.optimizer.load_state_dict(
            unflatten_optimizer_state(tensors["discriminator_optimizer"], meta["discriminator_optimizer"])
        )
        if trainer.discriminator.scheduler is not None and "discriminator_scheduler" in meta:
            trainer.discriminator.scheduler.load_state_dict(
                unflatten_scheduler_state(tensors.get("discriminator_scheduler", {}), meta["discriminator_scheduler"])
            )
        trainer.discriminator.num_updates = int(meta["discriminator_num_updates"])
        trainer.callback.load_state_dict(meta["callback"])
        if trainer.ddo is not None:
            trainer.ddo.load_state_dict(tensors.get("ddo", {}), meta["ddo"])
        if "alarms" in meta:
            trainer.alarms.load_state_dict(meta["alarms"])
        group = "rng" if trainer.dist.rank == 0 else f"rng_rank{trainer.dist.rank}"  # this rank's own streams
        rng = dict(tensors[group])
        if trainer.dist.rank > 0:
            trainer.agent.rng.set_state(rng.pop("agent_rng").cpu())
        trainer.real_gen.set_state(rng.pop("real_gen"))
        trainer.venv.trainer.generator.set_state(rng.pop("wrapper_gen"))
        if trainer.mc_scorer is not None:
            trainer.mc_scorer.rollout_generator.load_state_dict(tensors["rollout_generator"])
            trainer.mc_scorer.rng.set_state(rng.pop("mc_rollout_gen"))
        set_rng_state(rng, meta[group])
    except (KeyError, RuntimeError) as exc:
        raise ValueError(
            f"checkpoint in '{trainer.run.path}' does not match this run's models or format ({exc}); "
            f"fix: resume from a checkpoint written by this version with the same config."
        ) from None
    trainer.step = int(meta["train_step"])
    trainer.pretrained = bool(meta["pretrained"])  # D weights changed: collect() resets the env, rebuilding its cache
    trainer.mle_pretrained = bool(meta.get("mle_pretrained", trainer.pretrained))  # older checkpoints: only after both
    trainer.mle_steps = int(meta.get("mle_steps", trainer.config.schedule.pretrain_steps if trainer.mle_pretrained else 0))
    trainer.mle_best_step = meta.get("mle_best_step")
    trainer.mle_valid_nll = meta.get("mle_valid_nll")
