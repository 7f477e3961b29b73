"""`seqgan-env benchmark gan`: does the discriminator make samples better than maximum likelihood?

Arms, per seed, from MLE's best point:

* ``mle``: maximum likelihood only, by the rule of `seqgan-env train`'s pretraining
  (``seqgan_agents.mle.pretrain_mle``): evaluated on the trainer's validation rows every
  ``mle_eval_every`` steps; after ``mle_patience`` evaluations without a better one the best
  weights are restored and the learning rate multiplied by ``schedule.pretrain_lr_drop``, and
  the next such plateau stops it (cap ``mle_max_steps``); its best weights kept: its best
  step B is the budget of every other arm's generator.
* ``adversarial``: the adversarial config as ``seqgan-env train`` runs it, its pretraining
  replaying the mle arm's (same cap, scores, patience and drop: the same best weights after
  B kept steps), then its REINFORCE updates against the co-trained discriminator.
* ``scratch``: the adversarial config with no pretraining and no MLE term.
* ``d_filter``: the ``mle`` generator's samples filtered by a discriminator trained
  against them (``seqgan_env.models.d_filter``, SIR with weights D/(1-D)).
* ``tilted``: the ``mle`` generator tilted token by token by a fresh density-ratio
  discriminator trained against it (``seqgan_env.eval.ratio_d``: its stopping step and
  the tilt strength alpha chosen on the trainer's validation rows, never the scored
  rows), an autoregressive model with an exact likelihood (``seqgan_env.models.tilted``).
* ``distill``: a plain generator trained from scratch by MLE (early-stopped as ``mle``) on
  batches mixing real rows with samples of the tilted model: does the gain survive in a
  generator that needs no D?
* variants (``--variant NAME:KEY=VALUE,...``): more adversarial arms, each the adversarial
  config with its own overrides on top (a generator-update recipe to compare, paired by
  seed against the same MLE arm).

``score_on="valid"`` is for choosing recipes: a validation split is held out of the
training rows (the oracle: a fresh sample) and every number is computed on it; the test
split is then not scored at all, so what is reported later on test was not tuned on.

Data: a held-out test split (``test_fraction`` of the file, fixed split seed, the
same for every seed) is never seen by any arm; the rest is what the trainer gets
(it splits off its own validation rows for early stopping). A named data set
(``coco``) brings its own test file instead, and its preset (``DATA_PRESETS``: the
tokenizer and sizes `seqgan-env train --data coco` uses) sits under the overrides. Every number is
computed against the test split, with an independent character n-gram model
(``seqgan_env.eval.ngram``) fitted on the training rows:

* ``quality``: the n-gram model's NLL per character of the samples (lower: more data-like);
* ``coverage``: NLL per character of the test rows under an n-gram model fitted on the
  samples (lower: the samples cover more of the data; a collapsed generator loses it);
* bigram JS distance and length TV distance to the test rows, uniqueness, novelty, self-BLEU-3;
* on a named data set (coco) also ``bleu4``: word BLEU-4 against the test captions
  (``seqgan_env.eval.text_benchmark``, the literature's quality number).

The oracle (``data="oracle"``, the SeqGAN synthetic task): the trainer samples its own
training and validation rows from the oracle LSTM with the run's seed; the test rows are a
separate oracle sample (``oracle_test`` rows, drawn with ``split_seed``). ``quality`` is
NLL-oracle (the oracle's NLL per token of the samples) and ``coverage`` NLL-test (the
generator's NLL per token of the test rows, at the sampling temperature). ``d_filter`` has
no NLL-test (a filtered sampler has no likelihood of its own) and is refused there.

``nll``: the exact NLL per token (EOS included, as ``generator_nll`` counts) of the scored
rows under every arm with a likelihood (mle, adversarial, scratch, variants, tilted,
distill; d_filter has none), at temperature 1; rows longer than the run's max_length or
with unknown symbols are left out and counted. The tilted arm is not run on the oracle
(its 5,000 tokens would be 5,000 D prefixes per row and step).

The frontier: every arm sampled at each of ``temperatures``; an arm lies below
MLE's frontier at temperature 1 when its quality is better than MLE's curve
(linearly interpolated over MLE's temperatures) at the same coverage.
"""

from __future__ import annotations

import dataclasses
import random
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from seqgan_agents.lifecycle import new_run
from seqgan_agents.mle import pretrain_mle
from seqgan_agents.trainer import Trainer
from seqgan_agents.trainer_config import ORACLE, TrainConfig, preset_overrides, train_config_from_dict
from seqgan_env.data.text import DEFAULT_DATA_PATH, NAMED_DATA, load_texts
from seqgan_env.eval.likelihood import generator_nll
from seqgan_env.eval.oracle import OracleLSTM
from seqgan_env.eval.oracle_data import IntTokenizer
from seqgan_env.eval.metrics import length_distance, ngram_jsd, novelty, self_bleu, uniqueness
from seqgan_env.eval.ngram import CharNgramModel
from seqgan_env.eval.text_benchmark import sample_scores
from seqgan_env.models.d_filter import DFilterConfig, d_filter
from seqgan_env.envs.spec import EnvConfig
from seqgan_env.models.discriminator import Discriminator, DiscriminatorConfig
from seqgan_env.eval.ratio_d import RatioDConfig, RatioDResult, fit_ratio_d
from seqgan_env.models.tilted import sample_tilted, tilted_nll
from seqgan_env.runs.plots import save_figure
from seqgan_env.runs.configio import apply_overrides, config_to_dict
from seqgan_env.runs.experiments import read_metrics
from seqgan_env.utils.atomic import atomic_write_json
from seqgan_env.utils.validation import check_int

ARMS = ("mle", "adversarial", "scratch", "d_filter", "tilted", "distill")
#: Arms with an exact likelihood of held-out rows (the nll column); d_filter has none.
NO_LIKELIHOOD = ("d_filter",)
ORACLE_ARMS = ("mle", "adversarial", "scratch")
SCORE_ON = ("test", "valid")
TEMPERATURES = (0.7, 0.8, 0.9, 1.0, 1.1, 1.2)
METRICS = ("quality", "coverage", "bigram_js", "length_tv", "uniqueness", "novelty", "self_bleu3")
LOWER_IS_BETTER = {"quality": True, "coverage": True, "bigram_js": True, "length_tv": True,
                   "uniqueness": False, "novelty": False, "self_bleu3": True, "bleu4": False}


@dataclass
class GanBenchmarkConfig:
    """Sizes of the benchmark.

    data: a text file, one sequence per line, or a named data set (``coco``). seeds: one full benchmark per seed.
    arms: a subset of ``ARMS``. overrides: ``--set`` style ``key=value`` strings applied
    to the default TrainConfig (the adversarial arm's config; the others derive from it).
    samples: samples per arm and temperature. test_fraction: held-out test share.
    mle_eval_every: validation NLL evaluations of the mle arm (early stopping). mle_max_steps: its step cap
    (None: the adversarial config's pretrain_steps + updates); mle_patience: evaluations without a better
    validation NLL before it stops (0: run to the cap). ratio_d: the tilted arm's density-ratio D recipe
    (``seqgan_env.eval.ratio_d``; its seed is offset by the benchmark seed). distill_pool: samples of the tilted
    model drawn once for the distill arm; distill_fraction: their share of each of its MLE batches.
    d_filter_steps / d_filter_batch: training of the filter's discriminator against the
    mle generator. ngram_order: order of the judge n-gram model. variants: ``NAME:KEY=VALUE,...``
    strings, each one more adversarial arm with those overrides on top of the adversarial config
    (arms None: ``ARMS`` (the oracle: ``ORACLE_ARMS``) followed by the variants). score_on: ``test``
    (report) or ``valid`` (choose recipes: see the module docstring). oracle_test: test (or
    validation) rows sampled from the oracle.
    """

    data: str = str(DEFAULT_DATA_PATH)
    seeds: tuple[int, ...] = (0, 1, 2)
    arms: tuple[str, ...] | None = None
    overrides: tuple[str, ...] = ()
    temperatures: tuple[float, ...] = TEMPERATURES
    samples: int = 1000
    test_fraction: float = 0.1
    mle_eval_every: int = 100
    mle_max_steps: int | None = None
    mle_patience: int = 5
    ratio_d: RatioDConfig = field(default_factory=RatioDConfig)
    distill_pool: int = 5000
    distill_fraction: float = 0.5
    d_filter_steps: int = 1000
    d_filter_batch: int = 128
    d_filter: DFilterConfig = field(default_factory=DFilterConfig)
    ngram_order: int = 4
    split_seed: int = 12345
    variants: tuple[str, ...] = ()
    score_on: str = "test"
    oracle_test: int = 2000

    def __post_init__(self) -> None:
        self.seeds, self.variants = tuple(self.seeds), tuple(self.variants)
        self.overrides, self.temperatures = tuple(self.overrides), tuple(float(t) for t in self.temperatures)
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds={self.seeds!r} is invalid: give distinct ints, e.g. --seeds 0,1,2.")
        names = list(self.variant_overrides)  # parses and checks every variant
        base = ORACLE_ARMS if self.is_oracle else ARMS
        self.arms = tuple(self.arms) if self.arms is not None else base + tuple(names)
        known = ARMS + tuple(names)
        unknown = [a for a in self.arms if a not in known]
        if unknown or not self.arms or len(set(self.arms)) != len(self.arms):
            raise ValueError(f"arms={self.arms!r} is invalid: choose distinct arms among {list(known)}.")
        for arm in ("d_filter", "tilted", "distill"):
            if arm in self.arms and "mle" not in self.arms:
                raise ValueError(f"arm {arm} reweights the mle arm's generator: add mle to --arms.")
        if "distill" in self.arms and "tilted" not in self.arms:
            raise ValueError("arm distill learns from the tilted arm's samples: add tilted to --arms (before distill).")
        if "distill" in self.arms and self.arms.index("distill") < self.arms.index("tilted"):
            raise ValueError("arm distill needs the tilted arm trained first: list tilted before distill in --arms.")
        if not 0 < self.distill_fraction < 1:
            raise ValueError(f"distill_fraction={self.distill_fraction!r} is invalid: the share of tilted samples in a "
                             f"distill batch must be in (0, 1), e.g. 0.5.")
        if "tilted" in self.arms and self.is_oracle:
            raise ValueError("arm tilted is not run on the oracle: it scores every vocabulary token with D at every "
                             "step, 5,000 D prefixes per row and step there, beyond this benchmark's budget; fix: leave "
                             f"it out, e.g. --arms {','.join(ORACLE_ARMS)}.")
        if not isinstance(self.ratio_d, RatioDConfig):
            raise ValueError(f"ratio_d={self.ratio_d!r} is invalid: pass a RatioDConfig.")
        if "d_filter" in self.arms and self.is_oracle:
            raise ValueError("arm d_filter has no NLL-test on the oracle (a filtered sampler has no likelihood of its "
                             f"own); fix: leave it out, e.g. --arms {','.join(ORACLE_ARMS)}.")
        if self.score_on not in SCORE_ON:
            raise ValueError(f"score_on={self.score_on!r} is invalid: use 'test' to report or 'valid' to choose.")
        if 1.0 not in self.temperatures or any(t <= 0 for t in self.temperatures):
            raise ValueError(f"temperatures={self.temperatures!r} must be > 0 and include 1.0 (the verdicts' point).")
        if not 0 < self.test_fraction < 0.5:
            raise ValueError(f"test_fraction={self.test_fraction!r} is invalid: it must be in (0, 0.5).")
        for name in ("samples", "mle_eval_every", "d_filter_steps", "d_filter_batch", "ngram_order", "oracle_test",
                     "distill_pool"):
            check_int(name, getattr(self, name), 1)
        check_int("mle_patience", self.mle_patience, 0, "evaluations without improvement before stopping; 0: none")
        if self.mle_max_steps is not None:
            check_int("mle_max_steps", self.mle_max_steps, 1, "the mle arm's step cap, or None for 4x the default")
        for arm in ("adversarial", *names):  # a bad override fails now, not after the arms before it have trained
            self.train_config(0, ".", arm)

    @property
    def is_oracle(self) -> bool:
        return self.data == ORACLE

    @property
    def variant_overrides(self) -> dict[str, tuple[str, ...]]:
        """{variant name: its overrides}, parsed from ``variants`` (``NAME:KEY=VALUE,KEY=VALUE``)."""
        out: dict[str, tuple[str, ...]] = {}
        for spec in self.variants:
            name, sep, rest = str(spec).partition(":")
            overrides = tuple(o.strip() for o in rest.split(",") if o.strip())
            fix = "write it as NAME:KEY=VALUE[,KEY=VALUE...], e.g. rloo:reinforce.baseline=rloo"
            if not sep or not name.isidentifier() or not overrides or any("=" not in o for o in overrides):
                raise ValueError(f"variant {spec!r} is invalid: {fix}.")
            if name in ARMS or name in out:
                raise ValueError(f"variant name {name!r} is taken (by an arm or another variant); fix: rename it.")
            out[name] = overrides
        return out

    @property
    def named(self) -> str | None:
        """The data set's name when ``data`` is one (``coco``), else None."""
        return self.data if self.data in NAMED_DATA else None

    @property
    def metrics(self) -> tuple[str, ...]:
        """The numbers of every arm: ``METRICS``, and ``bleu4`` on a named data set; the oracle: quality
        (NLL-oracle) and coverage (NLL-test)."""
        if self.is_oracle:
            return ("quality", "coverage")
        return METRICS + (("bleu4",) if self.named else ())

    def train_config(self, seed: int, out_dir: str, arm: str = "adversarial") -> TrainConfig:
        """The TrainConfig of ``arm`` (the adversarial arm, or a variant): defaults <- a named data set's
        preset <- overrides <- the variant's overrides, on the benchmark's training file (the oracle: its own
        sample, drawn by the trainer with ``seed``)."""
        pretrained = any(o.startswith("generator.pretrained=") for o in self.overrides)
        preset = list(preset_overrides(self.named, pretrained)) if self.named else []
        extra = list(self.variant_overrides.get(arm, ()))
        data = apply_overrides(config_to_dict(TrainConfig()), preset + list(self.overrides) + extra, TrainConfig)
        data.update(seed=seed, out_dir=out_dir, name=f"{arm}-s{seed}")
        data["data"]["path"] = ORACLE if self.is_oracle else str(Path(out_dir) / "train.txt")
        return train_config_from_dict(data)


def split_test(texts: list[str], fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """(rest, test): a fixed random ``fraction`` of ``texts`` held out; both keep file order."""
    order = list(range(len(texts)))
    random.Random(seed).shuffle(order)
    test_idx = set(order[: max(1, round(fraction * len(texts)))])
    return [t for i, t in enumerate(texts) if i not in test_idx], [t for i, t in enumerate(texts) if i in test_idx]


def sample_metrics(samples: list[str], train: list[str], test: list[str], judge: CharNgramModel,
                   order: int, words: bool = False) -> dict[str, float]:
    """The benchmark's numbers of one sample set against the test split (see module docstring);
    ``words``: also ``bleu4``, word BLEU-4 against the test rows."""
    nonempty = [s for s in samples if s] or [""]
    extra = {"bleu4": sample_scores(samples, test)["BLEU-4"]} if words else {}
    return {**extra,
        "quality": judge.nll_per_char(samples),
        "coverage": CharNgramModel.fit(samples, order=order).nll_per_char(test),
        "bigram_js": ngram_jsd(nonempty, test, 2) if any(len(s) >= 2 for s in samples) else 1.0,
        "length_tv": length_distance(samples, test),
        "uniqueness": uniqueness(samples),
        "novelty": novelty(samples, train),
        "self_bleu3": self_bleu(samples, max_n=3),
    }


def oracle_metrics(oracle: OracleLSTM, tokenizer: IntTokenizer, generator: torch.nn.Module, samples: torch.Tensor,
                   test: torch.Tensor, temperature: float) -> dict[str, float]:
    """The oracle's two numbers: ``quality`` NLL-oracle of ``samples`` (N, 20) model ids drawn at
    ``temperature``, ``coverage`` NLL-test of ``generator`` at that temperature on ``test`` (M, 20) ids."""
    return {"quality": oracle.nll_oracle(tokenizer.to_oracle(samples.cpu())),
            "coverage": generator_nll(generator, test, temperature=temperature)}


def oracle_heldout(cfg: GanBenchmarkConfig, oracle: OracleLSTM, tokenizer: IntTokenizer) -> torch.Tensor:
    """(oracle_test, 20) model ids: the oracle's held-out sample (``split_seed``; validation: ``split_seed`` + 1),
    a stream no run's seed draws (the trainer samples its rows with the run's seed)."""
    gen = torch.Generator().manual_seed(cfg.split_seed + (1 if cfg.score_on == "valid" else 0))
    return tokenizer.from_oracle(oracle.sample(cfg.oracle_test, generator=gen).cpu())


def mle_step_cap(cfg: GanBenchmarkConfig, config: TrainConfig) -> int:
    """The mle arm's step cap: ``mle_max_steps``, or the adversarial config's (``pretrain_steps``, itself a cap on
    early-stopped pretraining, plus ``updates``)."""
    if cfg.mle_max_steps is not None:
        return cfg.mle_max_steps
    return config.schedule.pretrain_steps + config.schedule.updates


def replay_mle(cfg: GanBenchmarkConfig, base: TrainConfig, arm_cfg: TrainConfig) -> TrainConfig:
    """``arm_cfg`` with the mle arm's pretraining rule (its cap, scores, patience and learning-rate drop): with the
    same seed it replays the mle arm's steps and keeps the same best weights (a fixed step count would not,
    once the learning rate has dropped)."""
    cap = mle_step_cap(cfg, base)
    return dataclasses.replace(arm_cfg, schedule=dataclasses.replace(
        arm_cfg.schedule, pretrain_steps=cap, pretrain_eval_every=cfg.mle_eval_every,
        pretrain_patience=cfg.mle_patience or cap + 1, pretrain_lr_drop=base.schedule.pretrain_lr_drop))


def _train_mle(config: TrainConfig, eval_every: int, max_steps: int, patience: int, log: Callable[[str], None],
               batch_fn: Callable[[Trainer, int], torch.Tensor] | None = None,
               name: str = "mle") -> tuple[Trainer, dict[str, Any]]:
    """MLE only, by the rule of `seqgan-env train`'s pretraining (``seqgan_agents.mle.pretrain_mle``): scored
    on the trainer's validation rows every ``eval_every`` steps, the learning rate dropped once by
    ``schedule.pretrain_lr_drop`` at the first plateau of ``patience`` scores without a better one, stopped at
    the second (or at ``max_steps``; ``patience`` 0: scored but never stopped), the weights of the best kept.

    ``batch_fn(trainer, n)``: the (n, L) training batch of a step (None: n real training rows).
    Returns the trainer (its generator at the best weights) and
    {best_step, steps, best_valid_nll, lr_drop_step, curve}."""
    cfg = dataclasses.replace(config, schedule=dataclasses.replace(config.schedule, d_pretrain_steps=0))
    trainer = new_run(dataclasses.replace(cfg, name=f"{name}-s{config.seed}"))
    batch_fn = batch_fn if batch_fn is not None else (lambda tr, n: tr._real_batch(n))
    n = config.reinforce.batch_size
    res = pretrain_mle(trainer.agent, lambda: batch_fn(trainer, n), trainer.data.valid.to(trainer.device), max_steps,
                       eval_every, patience or max_steps + 1, lambda line: None, lr_drop=config.schedule.pretrain_lr_drop)
    drop = f", learning rate dropped at step {res.lr_drop_step}" if res.lr_drop_step is not None else ""
    log(f"  {name}: {res.steps} steps, best validation NLL {res.valid_nll:.4f} at step {res.best_step}{drop}")
    return trainer, {"best_step": res.best_step, "steps": res.steps, "best_valid_nll": res.valid_nll,
                     "lr_drop_step": res.lr_drop_step, "curve": {str(k): v for k, v in res.curve.items()}}


def _train_filter_d(trainer: Trainer, cfg: GanBenchmarkConfig, seed: int) -> Discriminator:
    """A fresh discriminator trained on the trainer's real rows against its generator's samples."""
    tc = trainer.config
    # whole-sequence loss and hard labels: D/(1-D) estimates p_data/p_model only for targets 1 and 0
    d_cfg = {**dataclasses.asdict(tc.discriminator), "prefix_loss": False, "real_label": 1.0, "fake_label": 0.0}
    disc = Discriminator(trainer.data.tokenizer.vocab_size, tc.discriminator_model, DiscriminatorConfig(**d_cfg),
                         device=trainer.device, seed=seed + 7)
    for _ in range(cfg.d_filter_steps):
        disc.update(trainer._real_batch(cfg.d_filter_batch), trainer.sample_tokens(cfg.d_filter_batch))
    return disc


def run_seed(cfg: GanBenchmarkConfig, seed: int, rest: list[str], test: list[str] | torch.Tensor, workdir: Path,
             log: Callable[[str], None] = print) -> dict[str, Any]:
    """One seed: every arm trained, then sampled at every temperature; {arm: {temperature: metrics}}.

    ``rest``: the training rows (unused on the oracle, whose trainer samples its own); ``test``: the rows
    scored against (texts, or the oracle's (M, 20) model ids)."""
    out_dir = workdir / f"seed{seed}"
    out_dir.mkdir(parents=True, exist_ok=True)
    if not cfg.is_oracle:
        (out_dir / "train.txt").write_text("\n".join(rest) + "\n", encoding="utf-8")
    base = cfg.train_config(seed, str(out_dir))
    trainers: dict[str, Trainer] = {}
    seconds: dict[str, float] = {}
    gen_steps: dict[str, int] = {}
    d_steps: dict[str, int] = {}
    result: dict[str, Any] = {"seed": seed, "arms": {}, "seconds": seconds, "generator_steps": gen_steps,
                              "d_steps": d_steps}
    ratio: RatioDResult | None = None
    for arm in cfg.arms:
        t0 = time.perf_counter()
        if arm == "mle":
            trainers[arm], mle_info = _train_mle(base, cfg.mle_eval_every, mle_step_cap(cfg, base), cfg.mle_patience, log)
            result["mle_best_step"], result["mle"] = mle_info["best_step"], mle_info
            gen_steps[arm], d_steps[arm] = mle_info["best_step"], 0
        elif arm == "d_filter":
            trainers["_filter_d"] = _train_filter_d(trainers["mle"], cfg, seed)  # type: ignore[assignment]
            gen_steps[arm], d_steps[arm] = gen_steps["mle"], cfg.d_filter_steps
        elif arm == "tilted":
            mle = trainers["mle"]
            rd = dataclasses.replace(cfg.ratio_d, seed=cfg.ratio_d.seed + seed)
            # fresh D against the frozen mle generator; its stopping step and alpha chosen on the trainer's
            # validation rows (never on the rows scored here)
            ratio = fit_ratio_d(mle.agent.generator, lambda n, s: mle.sample_tokens(n, seed=s), mle.data.train,
                                mle.data.valid, rd, device=mle.device, log=log)
            result["ratio_d"] = ratio.summary()
            gen_steps[arm], d_steps[arm] = gen_steps["mle"], ratio.steps
            log(f"  tilted: D best at step {ratio.best_step} of {ratio.steps}, alpha {ratio.alpha:g}, validation NLL "
                f"{ratio.valid_nll:.4f} (generator {ratio.valid_nll_generator:.4f})")
        elif arm == "distill":
            mle = trainers["mle"]
            pool = torch.cat([_sample_tilted(mle, ratio, min(cfg.distill_pool - i, 4 * TILT_CHUNK), 1.0,
                                             10_000 * seed + 7_777 + k)
                              for k, i in enumerate(range(0, cfg.distill_pool, 4 * TILT_CHUNK))]).to(mle.device)
            mix = torch.Generator().manual_seed(seed + 13)

            def mixed(tr: Trainer, n: int) -> torch.Tensor:
                k = round(cfg.distill_fraction * n)  # rows of the tilted model's samples in the batch
                return torch.cat([tr._real_batch(n - k), pool[torch.randint(len(pool), (k,), generator=mix)]])

            # a plain generator trained from scratch by MLE on real rows mixed with the tilted model's samples,
            # early-stopped on the real validation rows like the mle arm
            trainers[arm], info = _train_mle(base, cfg.mle_eval_every, mle_step_cap(cfg, base), cfg.mle_patience, log,
                                             batch_fn=mixed, name="distill")
            result["distill"] = info
            gen_steps[arm], d_steps[arm] = info["best_step"], 0
        else:
            arm_cfg = cfg.train_config(seed, str(out_dir), arm) if arm in cfg.variant_overrides else base
            if arm == "scratch":
                arm_cfg = dataclasses.replace(
                    base, schedule=dataclasses.replace(base.schedule, pretrain_steps=0),
                    reinforce=dataclasses.replace(base.reinforce, mle_coef=0.0),
                )
            elif "mle" in result:  # start from MLE's best point
                arm_cfg = replay_mle(cfg, base, arm_cfg)
            trainer = new_run(dataclasses.replace(arm_cfg, name=f"{arm}-s{seed}"))
            trainer.fit(progress=False)
            trainers[arm] = trainer
            # the MLE steps behind the kept weights (those after the best were thrown away) + updates
            kept = trainer.mle_best_step if trainer.mle_best_step is not None else trainer.mle_steps
            gen_steps[arm] = int(kept) + arm_cfg.schedule.updates
            d_steps[arm] = int(trainer.discriminator.num_updates)
            # D's health over the run (held-out AUC at every evaluation): is its reward informative?
            result.setdefault("d_auc", {})[arm] = {
                str(row["step"]): row[key] for row in read_metrics(trainer.run.path)
                for key in ("eval/pretrained_d_auc", "eval/d_auc") if key in row
            }
        seconds[arm] = time.perf_counter() - t0
        log(f"  seed {seed}: {arm} trained in {seconds[arm]:.0f}s")
    any_trainer = trainers["mle"] if "mle" in trainers else trainers[cfg.arms[0]]
    train_texts = any_trainer.data.train_texts
    judge = None if cfg.is_oracle else CharNgramModel.fit(train_texts, order=cfg.ngram_order)
    tok = any_trainer.data.tokenizer
    test_rows, dropped = heldout_rows(test, tok, any_trainer.data.max_length)
    result["nll_rows"], result["nll_rows_dropped"] = int(test_rows.shape[0]), dropped
    result["nll"] = {}
    for arm in cfg.arms:
        t0 = time.perf_counter()
        result["arms"][arm] = {}
        if arm in NO_LIKELIHOOD:
            result["nll"][arm] = None
        elif arm == "tilted":
            result["nll"][arm] = tilted_nll(trainers["mle"].agent.generator, ratio.discriminator, test_rows, ratio.alpha)
        else:
            result["nll"][arm] = generator_nll(trainers[arm].agent.generator, test_rows)
        for i, temp in enumerate(cfg.temperatures):
            gen_seed = 10_000 * seed + 100 * i
            if arm == "d_filter":
                source, disc = trainers["mle"], trainers["_filter_d"]
                draws = iter(range(10**6))
                tokens = d_filter(
                    lambda k: source.sample_tokens(k, temperature=temp, seed=gen_seed + next(draws)),
                    disc.sequence_scores, cfg.samples, cfg.d_filter, generator=torch.Generator().manual_seed(gen_seed),
                )
            elif arm == "tilted":
                tokens = _sample_tilted(trainers["mle"], ratio, cfg.samples, temp, gen_seed)
            else:
                tokens = trainers[arm].sample_tokens(cfg.samples, temperature=temp, seed=gen_seed)
            if cfg.is_oracle:
                result["arms"][arm][str(temp)] = oracle_metrics(any_trainer.data.oracle, tok, trainers[arm].agent.generator,
                                                                tokens, test, temp)
                continue
            samples = tok.decode_batch(tokens.cpu())
            result["arms"][arm][str(temp)] = sample_metrics(samples, train_texts, test, judge, cfg.ngram_order,
                                                            words=cfg.named is not None)
        seconds[f"{arm}_scoring"] = time.perf_counter() - t0
        m = result["arms"][arm]["1.0"]
        nll = result["nll"][arm]
        log(f"  seed {seed}: {arm:11s} T=1 " + " ".join(f"{k} {v:.4f}" for k, v in m.items())
            + ("" if nll is None else f" nll {nll:.4f}"))
    for trainer in trainers.values():
        if isinstance(trainer, Trainer):
            trainer.run.close()
    return result


#: Rows per sample_tilted call: each step scores rows x V candidate prefixes with D.
TILT_CHUNK = 250


def _sample_tilted(mle: Trainer, ratio: RatioDResult, n: int, temperature: float, seed: int) -> torch.Tensor:
    """(n, max_length) samples of the tilted mle generator at ``temperature``, drawn in chunks."""
    d = mle.config.data
    spec = EnvConfig(vocab_size=mle.data.tokenizer.vocab_size, max_length=d.max_length, min_length=d.min_length,
                     allow_eos=d.eos)
    return torch.cat([sample_tilted(mle.agent.generator, ratio.discriminator, min(TILT_CHUNK, n - i), ratio.alpha,
                                    spec, seed=seed + k, temperature=temperature)
                      for k, i in enumerate(range(0, n, TILT_CHUNK))])


def heldout_rows(test: list[str] | torch.Tensor, tokenizer: Any, max_length: int) -> tuple[torch.Tensor, int]:
    """(N, max_length) token rows of the scored split for the exact NLL column, and how many texts were left out
    (longer than ``max_length`` or with a symbol the tokenizer lacks: no arm can write them). The oracle's rows
    (already ids) pass through."""
    if torch.is_tensor(test):
        return test, 0
    kept = []
    for text in test:
        try:
            kept.append(tokenizer.encode_batch([text], max_length))
        except ValueError:
            continue
    if not kept:
        raise ValueError("no held-out row fits the run's tokenizer and max_length: the nll column has nothing to score.")
    return torch.cat(kept), len(test) - len(kept)


def frontier_quality(mle_points: list[tuple[float, float]], coverage: float) -> float | None:
    """MLE's quality at ``coverage``, linear between its temperatures; None outside their range."""
    pts = sorted(mle_points)
    for (c0, q0), (c1, q1) in zip(pts, pts[1:]):
        if c0 <= coverage <= c1:
            return q0 if c1 == c0 else q0 + (q1 - q0) * (coverage - c0) / (c1 - c0)
    return None


#: The margin of exact held-out NLL (nats per token) an arm must beat MLE by, on every seed, to win on likelihood.
NLL_MARGIN = 0.01


def _nll_values(per_seed: list[dict[str, Any]], arm: str) -> list[float] | None:
    vals = [s.get("nll", {}).get(arm) for s in per_seed]
    return None if any(v is None for v in vals) else vals


def summarize(cfg: GanBenchmarkConfig, per_seed: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean ± std per arm at T=1 (and of the exact held-out NLL), paired differences against mle, and the verdicts."""
    out: dict[str, Any] = {"arms": {}, "verdicts": {}}
    for arm in cfg.arms:
        vals = {k: [s["arms"][arm]["1.0"][k] for s in per_seed] for k in cfg.metrics}
        entry = {k: (statistics.fmean(v), statistics.pstdev(v)) for k, v in vals.items()}
        out["arms"][arm] = {"t1": entry}
        nll = _nll_values(per_seed, arm)
        out["arms"][arm]["nll"] = None if nll is None else (statistics.fmean(nll), statistics.pstdev(nll))
        if arm == "mle" or "mle" not in cfg.arms:
            continue
        diffs = {k: [s["arms"][arm]["1.0"][k] - s["arms"]["mle"]["1.0"][k] for s in per_seed] for k in cfg.metrics}
        out["arms"][arm]["diff_vs_mle"] = {k: (statistics.fmean(v), statistics.pstdev(v)) for k, v in diffs.items()}
        mle_nll = _nll_values(per_seed, "mle")
        dn = None if nll is None or mle_nll is None else [x - y for x, y in zip(nll, mle_nll)]
        out["arms"][arm]["diff_vs_mle"]["nll"] = None if dn is None else (statistics.fmean(dn), statistics.pstdev(dn))
        better_q = sum(d < 0 for d in diffs["quality"])
        no_div_loss = sum(d <= 0 for d in diffs["coverage"])
        below = []
        for s in per_seed:
            mle_pts = [(m["coverage"], m["quality"]) for m in s["arms"]["mle"].values()]
            me = s["arms"][arm]["1.0"]
            fq = frontier_quality(mle_pts, me["coverage"])
            below.append(None if fq is None else me["quality"] < fq)
        n = len(per_seed)
        beats = better_q == n and no_div_loss == n
        nll_wins = None if dn is None else sum(d <= -NLL_MARGIN for d in dn)
        out["verdicts"][arm] = {
            "beats_mle_at_t1": beats,
            "seeds_better_quality": better_q,
            "seeds_no_coverage_loss": no_div_loss,
            "below_mle_frontier": below,
            "seeds_nll_below_mle_by_margin": nll_wins,
            "text": (
                f"{arm}: {'beats' if beats else 'does not beat'} MLE at temperature 1 (quality better on "
                f"{better_q}/{n} seeds, coverage no worse on {no_div_loss}/{n}); below MLE's frontier on "
                f"{sum(b is True for b in below)}/{n} seeds"
                + (f" ({sum(b is None for b in below)} outside MLE's coverage range)" if any(b is None for b in below) else "")
                + ("" if nll_wins is None else
                   f"; exact held-out NLL below MLE's by >= {NLL_MARGIN} on {nll_wins}/{n} seeds")
                + "."
            ),
        }
    return out


def format_table(cfg: GanBenchmarkConfig, summary: dict[str, Any], n: int) -> str:
    """Markdown: per arm mean ± std at T=1, the exact held-out NLL (blank without a likelihood) and the paired
    differences of quality, coverage and NLL against mle."""
    labels = {"quality": "quality (NLL-oracle)", "coverage": "coverage (NLL-test)"} if cfg.is_oracle else {}
    head = ("| arm | " + " | ".join(labels.get(k, k) for k in cfg.metrics)
            + " | nll | Δquality vs MLE | Δcoverage vs MLE | Δnll vs MLE |")
    lines = [head, "|" + "---|" * (len(cfg.metrics) + 5)]

    def pm(v: Any, sign: bool = False) -> str:
        return "" if v is None else (f"{v[0]:+.3f} ± {v[1]:.3f}" if sign else f"{v[0]:.3f} ± {v[1]:.3f}")

    for arm, entry in summary["arms"].items():
        cells = [pm(entry["t1"][k]) for k in cfg.metrics]
        d = entry.get("diff_vs_mle") or {}
        nll = "" if entry.get("nll") is None else f"{entry['nll'][0]:.4f} ± {entry['nll'][1]:.4f}"
        dn = "" if d.get("nll") is None else f"{d['nll'][0]:+.4f} ± {d['nll'][1]:.4f}"
        lines.append(f"| {arm} | " + " | ".join(cells) + f" | {nll} | {pm(d.get('quality'), True)} | "
                     f"{pm(d.get('coverage'), True)} | {dn} |")
    better = "" if cfg.is_oracle else " except uniqueness, novelty" + (", bleu4" if cfg.named else "")
    scored = "validation split (choosing, not reporting)" if cfg.score_on == "valid" else "held-out test split"
    return "\n".join(lines) + (f"\n\n(T = 1, {n} seeds, mean ± population std, on the {scored}; lower is better{better}; "
                               f"nll: exact NLL per token, EOS included, of the scored rows; blank: no likelihood)")


def plot_frontier(cfg: GanBenchmarkConfig, per_seed: list[dict[str, Any]], path: Path) -> None:
    """PNG: quality against coverage over temperatures, mean over seeds; MLE's curve beside each arm."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 5.5))
    for arm in cfg.arms:
        xs = [statistics.fmean(s["arms"][arm][str(t)]["coverage"] for s in per_seed) for t in cfg.temperatures]
        ys = [statistics.fmean(s["arms"][arm][str(t)]["quality"] for s in per_seed) for t in cfg.temperatures]
        ax.plot(xs, ys, marker="o", label=arm, linewidth=2.5 if arm == "mle" else 1.5)
        for x, y, t in zip(xs, ys, cfg.temperatures):
            ax.annotate(f"{t:g}", (x, y), fontsize=7, textcoords="offset points", xytext=(3, 3))
    if cfg.is_oracle:
        ax.set_xlabel(f"coverage: NLL of the {cfg.score_on} rows per token at the temperature (lower: covers more)")
        ax.set_ylabel("quality: NLL-oracle per token of the samples (lower: better)")
    else:
        ax.set_xlabel(f"coverage: {cfg.score_on} NLL/char under an n-gram of the samples (lower: more diverse)")
        ax.set_ylabel("quality: sample NLL/char, training n-gram (lower: better)")
    ax.set_title(f"quality-diversity over temperatures (mean of {len(per_seed)} seed{'s' * (len(per_seed) > 1)}, "
                 f"scored on the {cfg.score_on} split)")
    ax.legend()
    ax.grid(alpha=0.3)
    save_figure(fig, path, dpi=120)


def run_seeds(seeds: tuple[int, ...], seed_fn: Callable[[int, Path], dict[str, Any]],
              summary_fn: Callable[[], dict[str, Any]], result: dict[str, Any], out_path: Path, prefix: str,
              workdir: str | Path | None = None) -> None:
    """Run ``seed_fn(seed, scratch folder)`` for every seed into ``result["seeds"]``, timing each, and rewrite the
    JSON at ``out_path`` (atomically, with ``result["summary"] = summary_fn()``) after each seed, so an
    interrupted benchmark keeps the seeds it finished. The scratch folder (``prefix``, under ``workdir``)
    goes at the end."""
    with tempfile.TemporaryDirectory(prefix=prefix, dir=workdir) as tmp:
        for seed in seeds:
            t0 = time.perf_counter()
            result["seeds"].append(seed_fn(seed, Path(tmp)))
            result["seeds"][-1]["total_seconds"] = time.perf_counter() - t0
            result["summary"] = summary_fn()
            atomic_write_json(out_path, result)


def run_benchmark(cfg: GanBenchmarkConfig, out_path: str | Path, log: Callable[[str], None] = print,
                  workdir: str | Path | None = None) -> dict[str, Any]:
    """All seeds; writes the JSON (atomically, after each seed), the frontier PNG beside it, and prints the table."""
    out_path = Path(out_path)
    rest: list[str]
    test: list[str] | torch.Tensor
    if cfg.is_oracle:  # the trainer samples its own rows; the held-out rows are another oracle sample
        rest, test = [], oracle_heldout(cfg, OracleLSTM.from_npz(), IntTokenizer())
    elif cfg.named:  # the data set's own test file; no line of it is trained on
        train_path, test_path = NAMED_DATA[cfg.named]
        rest, test = load_texts(train_path, None), load_texts(test_path, None)
    else:
        rest, test = split_test(load_texts(cfg.data, None), cfg.test_fraction, cfg.split_seed)
    if cfg.score_on == "valid" and not cfg.is_oracle:  # score on rows held out of training; test is not scored
        rest, test = split_test(rest, cfg.test_fraction, cfg.split_seed + 1)
    what = "validation rows scored (test not scored)" if cfg.score_on == "valid" else "held out"
    log(f"benchmark gan on {cfg.data}: {len(rest) or 'oracle-sampled'} rows for training (and validation), "
        f"{len(test)} {what}")
    per_seed: list[dict[str, Any]] = []
    result: dict[str, Any] = {"config": dataclasses.asdict(cfg), "seeds": per_seed}
    out_path.parent.mkdir(parents=True, exist_ok=True)  # once the data loaded: bad data leaves no empty folder
    run_seeds(cfg.seeds, lambda seed, tmp: run_seed(cfg, seed, rest, test, tmp, log),
              lambda: summarize(cfg, per_seed), result, out_path, "seqgan-benchmark-gan-", workdir)
    summary = summarize(cfg, per_seed)
    png = out_path.with_suffix(".png")
    plot_frontier(cfg, per_seed, png)
    log("")
    log(format_table(cfg, summary, len(per_seed)))
    log("")
    for v in summary["verdicts"].values():
        log(v["text"])
    log(f"frontier: {png}")
    return result


__all__ = ["run_seeds", "ARMS", "NLL_MARGIN", "ORACLE_ARMS", "heldout_rows", "mle_step_cap", "GanBenchmarkConfig", "oracle_metrics", "oracle_heldout", "run_benchmark", "run_seed", "summarize", "sample_metrics", "split_test",
           "frontier_quality", "format_table", "plot_frontier"]
