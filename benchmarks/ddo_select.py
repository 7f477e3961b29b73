"""Choose DDO's hyper-parameters on a validation split: exact held-out NLL against DDO updates, per recipe.

``python -m seqgan_benchmarks.ddo_select --seeds 0 --recipe b1:beta=1,lr=1e-4 --recipe ...``

Per seed, the data is split as ``benchmark gan`` splits it (the same test rows, never read here;
``--score-on valid``: a validation split held out of the rest with ``split_seed + 1``), and the
generator is pretrained once exactly as ``seqgan-env train --agent ddo`` does (MLE early-stopped on
the trainer's own validation rows, best weights restored). Every recipe then starts from that
generator (weights, optimizer, random streams restored) and runs DDO updates, scoring the exact
per-token NLL of the scoring rows every ``score_every`` updates: one pretraining serves all recipes,
and the curve shows where each recipe's best number of updates lies. A recipe named ``mle...`` is the
control: plain MLE steps at its ``lr`` and ``batch_size`` (AdamW's moments restarted, as DDO's are),
which tells a DDO gain from the effect of a smaller learning rate. The MLE reference is the
pretrained generator itself (update 0) and, with ``--mle-cap``, MLE continued to the schedule's cap
with the best of its scores on the trainer's validation rows (the benchmark's ``mle`` arm).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from seqgan_agents.ddo import DDOConfig, DDOUpdater
from seqgan_agents.lifecycle import new_run
from seqgan_agents.mle import pretrain_mle
from seqgan_agents.trainer import Trainer
from seqgan_agents.trainer_config import TrainConfig, train_config_from_dict
from seqgan_env.data.text import DEFAULT_DATA_PATH, load_texts
from seqgan_env.eval.likelihood import generator_nll
from seqgan_env.runs.configio import apply_overrides, config_to_dict
from seqgan_env.utils.atomic import atomic_write_json
from seqgan_benchmarks.quality_gan import split_test


def parse_recipe(spec: str) -> tuple[str, dict[str, Any]]:
    """``NAME:key=value,...`` (DDOConfig fields) -> (name, overrides), validated by building the DDOConfig."""
    name, sep, rest = spec.partition(":")
    if not sep or not name.isidentifier():
        raise ValueError(f"recipe {spec!r} is invalid: write NAME:beta=1,lr=1e-4 (DDOConfig fields).")
    data = apply_overrides(config_to_dict(TrainConfig()), [f"ddo.{kv}" for kv in rest.split(",") if kv], TrainConfig)
    DDOConfig(**data["ddo"])
    return name, data["ddo"]


def encode_rows(trainer: Trainer, texts: list[str]) -> tuple[torch.Tensor, int]:
    """(M, T) the rows of ``texts`` the run's tokenizer and max_length can hold, and how many could not."""
    tok, width = trainer.data.tokenizer, trainer.config.data.max_length
    kept = []
    for t in texts:
        try:
            kept.append(tok.encode_batch([t], width))
        except ValueError:
            continue
    return torch.cat(kept), len(texts) - len(kept)


def snapshot(trainer: Trainer) -> dict[str, Any]:
    """The state every recipe starts from: the agent (weights, optimizer, RNG), the data stream, torch's RNG."""
    return {"agent": copy.deepcopy(trainer.agent.state_dict()), "real_gen": trainer.real_gen.get_state(),
            "torch": torch.get_rng_state()}


def restore(trainer: Trainer, snap: dict[str, Any]) -> None:
    """Back to ``snapshot``'s state, without a reference (a recipe's first update begins its first round)."""
    trainer.agent.load_state_dict(copy.deepcopy(snap["agent"]))
    trainer.agent.reference = None
    trainer.real_gen.set_state(snap["real_gen"])
    torch.set_rng_state(snap["torch"])


def run_seed(seed: int, rest: list[str], scoring: list[str], recipes: dict[str, dict[str, Any]], updates: int,
             score_every: int, overrides: list[str], workdir: Path, mle_cap: bool) -> dict[str, Any]:
    """One seed: pretrain as `train --agent ddo` does, then every recipe from that start; returns its curves."""
    (workdir / "train.txt").write_text("\n".join(rest) + "\n", encoding="utf-8")
    data = apply_overrides(config_to_dict(TrainConfig()), overrides, TrainConfig)
    data.update(seed=seed, out_dir=str(workdir), name=f"select-s{seed}", agent="ddo")
    data["data"]["path"] = str(workdir / "train.txt")
    trainer = new_run(train_config_from_dict(data))
    t0 = time.perf_counter()
    trainer._pretrain_generator()
    out: dict[str, Any] = {"seed": seed, "pretrain": trainer.pretrain_metrics(),
                           "pretrain_seconds": time.perf_counter() - t0}
    rows, dropped = encode_rows(trainer, scoring)
    out["scoring_rows"], out["scoring_dropped"] = len(rows), dropped
    valid = trainer.data.valid
    out["mle_nll"] = generator_nll(trainer.agent.generator, rows)
    print(f"seed {seed}: pretrained {out['pretrain']}, scoring NLL {out['mle_nll']:.4f}", flush=True)
    snap = snapshot(trainer)
    out["recipes"] = {}
    for name, fields in recipes.items():
        restore(trainer, snap)
        ddo = DDOUpdater(trainer.agent, DDOConfig(**fields), lambda n: trainer.sample_tokens(n))
        if name.startswith("mle"):  # the control: MLE fine-tuning at DDO's lr and batch, AdamW's moments restarted
            trainer.agent.optimizer.state.clear()
            for group in trainer.agent.optimizer.param_groups:
                group["lr"] = ddo.config.lr
        curve: dict[str, dict[str, float]] = {}
        t0 = time.perf_counter()
        for step in range(1, updates + 1):
            if name.startswith("mle"):
                trainer.agent.mle_step(trainer._real_batch(ddo.config.batch_size))
            else:
                ddo.step(trainer._real_batch(ddo.config.batch_size))
            if step % score_every == 0 or step == updates:
                curve[str(step)] = {"nll": generator_nll(trainer.agent.generator, rows),
                                    "trainer_valid_nll": generator_nll(trainer.agent.generator, valid)}
        best = min(curve, key=lambda s: curve[s]["nll"])
        by_valid = min(curve, key=lambda s: curve[s]["trainer_valid_nll"])
        out["recipes"][name] = {"fields": fields, "curve": curve, "seconds": time.perf_counter() - t0,
                                "best_step": int(best), "best_delta": curve[best]["nll"] - out["mle_nll"],
                                "last_delta": curve[str(updates)]["nll"] - out["mle_nll"],
                                "step_by_trainer_valid": int(by_valid),
                                "delta_by_trainer_valid": curve[by_valid]["nll"] - out["mle_nll"]}
        r = out["recipes"][name]
        print(f"  {name}: best {r['best_delta']:+.4f} at {best}, last {r['last_delta']:+.4f}, "
              f"by trainer-valid {r['delta_by_trainer_valid']:+.4f} at {by_valid} ({r['seconds']:.0f}s) "
              + " ".join(f"{s}:{c['nll'] - out['mle_nll']:+.4f}" for s, c in curve.items()), flush=True)
    trainer.run.close()
    if mle_cap:  # the benchmark's mle arm: MLE for cap + updates steps, the best of its scores on its validation rows
        sch = trainer.config.schedule
        data["schedule"].update(pretrain_steps=sch.pretrain_steps + sch.updates, pretrain_patience=None)
        data["name"] = f"mle-s{seed}"
        mle = new_run(train_config_from_dict(data))
        res = pretrain_mle(mle.agent, lambda: mle._real_batch(mle.config.reinforce.batch_size), mle.data.valid,
                           mle.config.schedule.pretrain_steps, sch.pretrain_eval_every, 10**9, lambda m: None)
        out["mle_cap"] = {"best_step": res.best_step, "nll": generator_nll(mle.agent.generator, rows)}
        print(f"  mle to the cap: best step {res.best_step}, scoring NLL {out['mle_cap']['nll']:.4f}", flush=True)
        mle.run.close()
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", default="0")
    p.add_argument("--recipe", action="append", required=True,
                   help="NAME:key=value,... (DDOConfig fields); a NAME starting with mle is the control: MLE steps "
                        "at that recipe's lr and batch_size from the same start")
    p.add_argument("--updates", type=int, default=600)
    p.add_argument("--score-every", type=int, default=50)
    p.add_argument("--score-on", default="valid", choices=["valid", "test"])
    p.add_argument("--set", action="append", default=[], help="TrainConfig override (as train --set)")
    p.add_argument("--mle-cap", action="store_true", help="also MLE to the cap (the benchmark's mle arm)")
    p.add_argument("--out", default="benchmarks/ddo_select.json")
    args = p.parse_args(argv)
    recipes = dict(parse_recipe(r) for r in args.recipe)
    rest, test = split_test(load_texts(str(DEFAULT_DATA_PATH), None), 0.1, 12345)  # benchmark gan's split
    if args.score_on == "valid":
        rest, test = split_test(rest, 0.1, 12345 + 1)
    result: dict[str, Any] = {"args": vars(args), "seeds": []}
    with tempfile.TemporaryDirectory(prefix="ddo-select-") as tmp:
        for seed in (int(s) for s in args.seeds.split(",")):
            wd = Path(tmp) / f"s{seed}"
            wd.mkdir()
            result["seeds"].append(run_seed(seed, rest, test, recipes, args.updates, args.score_every, args.set, wd,
                                            args.mle_cap))
            atomic_write_json(Path(args.out), result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
