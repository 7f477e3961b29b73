"""Choose the density-ratio D recipe of the tilted arm on the validation split (the test split is not read).

The data flow is `benchmark gan --score-on valid`'s: the test split is held out, a validation split
is held out of the rest (the rows each recipe is judged on), and the trainer splits its own
validation rows off what is left (the rows ``fit_ratio_d`` stops on and chooses alpha on). One
MLE generator per seed (early-stopped with patience on the trainer's validation rows) is shared by
every recipe; each recipe trains a fresh D against it and is judged by the exact tilted NLL of the
validation split at the alpha it chose.

Usage (one line per recipe, ``NAME=KEY=VALUE,...``; an empty recipe is the defaults)::

    python -m seqgan_benchmarks.ratio_select --seed 0 base= k2=fakes_per_real=2 wide=hidden_size=64
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import torch

from seqgan_agents.lifecycle import new_run
from seqgan_benchmarks.quality_gan import GanBenchmarkConfig, split_test
from seqgan_env.data.text import load_texts
from seqgan_env.eval.likelihood import generator_nll
from seqgan_env.eval.ratio_d import RatioDConfig, fit_ratio_d
from seqgan_env.models.tilted import tilted_nll_by_alpha


def _recipe(text: str) -> tuple[str, RatioDConfig]:
    name, _, rest = text.partition("=")
    kwargs: dict[str, Any] = {}
    for item in (p for p in rest.split(",") if p):
        key, _, value = item.partition("=")
        kwargs[key] = json.loads(value)
    return name, RatioDConfig(**kwargs)


def select(seed: int, recipes: list[str], mle_cap: int = 4100, patience: int = 5, eval_every: int = 100,
           log: Any = print) -> list[dict[str, Any]]:
    """One row per recipe: the D's best step and alpha, the validation-split NLL of the tilted model and of the
    generator, and the seconds it took."""
    cfg = GanBenchmarkConfig(seeds=(seed,))
    rest, _ = split_test(load_texts(cfg.data, None), cfg.test_fraction, cfg.split_seed)
    rest, valid2 = split_test(rest, cfg.test_fraction, cfg.split_seed + 1)
    rows = []
    with TemporaryDirectory(prefix="ratio-select-") as tmp:
        (Path(tmp) / "train.txt").write_text("\n".join(rest) + "\n", encoding="utf-8")
        tc = cfg.train_config(seed, tmp)
        tr = new_run(dataclasses.replace(tc, schedule=dataclasses.replace(tc.schedule, d_pretrain_steps=0)))
        valid = tr.data.valid
        best, since = (float("inf"), 0, None), 0
        for step in range(1, mle_cap + 1):
            tr.agent.mle_step(tr._real_batch(tc.reinforce.batch_size))
            if step % eval_every == 0:
                nll = generator_nll(tr.agent.generator, valid)
                if nll < best[0]:
                    best, since = (nll, step, copy.deepcopy(tr.agent.generator.state_dict())), 0
                else:
                    since += 1
                    if since >= patience:
                        break
        tr.agent.generator.load_state_dict(best[2])
        log(f"mle: best step {best[1]}, validation NLL {best[0]:.4f}")
        scored = tr.data.tokenizer.encode_batch(valid2, tr.data.max_length)
        for text in recipes:
            name, rc = _recipe(text)
            res = fit_ratio_d(tr.agent.generator, lambda n, s: tr.sample_tokens(n, seed=s), tr.data.train, valid, rc,
                              log=log)
            nll = tilted_nll_by_alpha(tr.agent.generator, res.discriminator, scored, [0.0, res.alpha])
            row = {"recipe": name, "config": dataclasses.asdict(rc), "best_step": res.best_step, "steps": res.steps,
                   "alpha": res.alpha, "valid_nll": nll[res.alpha], "generator_valid_nll": nll[0.0],
                   "gain": nll[0.0] - nll[res.alpha], "seconds": res.seconds}
            log(json.dumps(row))
            rows.append(row)
        tr.run.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("recipes", nargs="+", metavar="NAME=KEY=VALUE,...")
    args = parser.parse_args()
    torch.set_num_threads(1)
    select(args.seed, args.recipes)


if __name__ == "__main__":
    main()
