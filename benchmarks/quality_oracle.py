"""`seqgan-env benchmark oracle`: the SeqGAN paper's Table 1 on our library, with the same budget per row.

For each seed: sample the oracle task's real data (10,000 training + held-out
sequences of 20 tokens, vocabulary 5,000), pretrain one generator by MLE and one
discriminator on real vs generated (shared starting point of every row, as in
SeqGAN), then train a copy of both with each method for the same number of
generator updates and measure

* NLL-oracle: the oracle LSTM's NLL of ``eval_samples`` (9,984 as the paper)
  generator samples drawn at temperature 1, no top-p (quality);
* NLL-test: the generator's NLL of the held-out real sequences (coverage);
* wall time of the row's training phase (the shared pretraining is reported once).

Rows (``ROWS``):

* ``mle``: MLE only, continued for the same number of updates;
* ``seqgan``: SeqGAN's method, REINFORCE with Monte-Carlo rollout rewards
  (``MCRolloutScorer``, K rollouts, rollout policy updated with ``rollout_rate``),
  per-step D probability of the completed sequence;
* ``per_step``: our one-pass reward, D's probability of every prefix;
* ``potential``: our potential-shaped reward (per-step score differences);
* ``constant``: a constant reward of 0.5 per token (D ignored): the control for
  "policy gradient alone lowers NLL-oracle by sharpening the generator".

Pretraining is ``pretrain_steps`` MLE steps of the tiny Llama by default; ``--mle-recipe seqgan``
(``MLE_RECIPES``) pretrains SeqGAN's LSTM generator for up to 80 epochs instead, early-stopped on an
oracle split drawn apart from the NLL-test rows (``seqgan_agents.mle.fit_mle``).

Every adversarial row uses SeqGAN's REINFORCE settings (no baseline, no MLE mixing)
so the rows differ only in the reward. Results are the mean and population std
over seeds; published numbers (Yu et al. 2017, Table 1) are printed beside ours.
"""

from __future__ import annotations

import copy
import math
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from seqgan_agents.mle import MLEFitConfig, fit_mle
from seqgan_agents.reinforce import ReinforceAgent, ReinforceConfig, resolve_device
from seqgan_env.envs.vector_env import TokenGenerationVectorEnv
from seqgan_env.eval.oracle import SEQ_LEN
from seqgan_env.eval.oracle_data import OracleDataset, load_oracle_dataset
from seqgan_env.models.discriminator import Discriminator, DiscriminatorConfig
from seqgan_env.models.networks import GeneratorConfig, ModelConfig, build_generator
from seqgan_env.rewards.callbacks import DiscriminatorUpdateCallback, DiscriminatorUpdateConfig
from seqgan_env.rewards.mc_rollout import make_mc_rollout_scorer
from seqgan_env.rewards.wrappers import DiscriminatorRewardVector, RewardConfig
from seqgan_env.utils.atomic import atomic_write_json
from seqgan_env.utils.validation import check_ints, check_number, is_int

ROWS = ("mle", "seqgan", "per_step", "potential", "constant")
ROW_LABELS = {
    "untrained": "untrained generator",
    "pretrained": "MLE pretrained (start of every row)",
    "mle": "MLE only",
    "seqgan": "SeqGAN (mc_rollout, K rollouts)",
    "per_step": "per_step (one-pass prefix scores)",
    "potential": "potential (shaped prefix scores)",
    "constant": "constant reward (control)",
}
# Yu et al. (2017), SeqGAN, Table 1: NLL-oracle on the synthetic task.
PUBLISHED = {"untrained": 10.310, "mle": 9.038, "seqgan": 8.736}
SEQGAN_PUBLISHED = PUBLISHED["seqgan"]
# NLL-test rises by more than this (nats/token) over the pretrained start while NLL-oracle falls:
# the row traded coverage for quality (larger than the seed-to-seed noise of a 2,000-sequence test set).
COVERAGE_LOSS_NATS = 0.05


@dataclass
class OracleBenchmarkConfig:
    """Sizes of the benchmark; ``budget`` scales pretraining and training steps (1.0 ~ an hour on 2 CPU cores).

    seeds: one full benchmark per seed. rows: a subset of ``ROWS``. batch_size: sequences
    per generator update and per D update (B, the peer's 64). num_rollouts: K of the
    ``seqgan`` row. rollout_rate: weight kept by SeqGAN's rollout policy per update.
    pretrain_steps / d_pretrain_steps: shared MLE / D pretraining (times budget).
    updates: generator updates of every row (times budget). d_steps: D updates after
    each generator update in the adversarial rows. lr: Adam learning rate of the
    adversarial phase; pretrain_lr: of MLE (pretraining and the ``mle`` row).
    eval_samples: samples for NLL-oracle (9,984 as the paper).
    pretrain_epochs: 0 pretrains for ``pretrain_steps``; N > 0 pretrains up to N epochs (times budget)
    over the training rows, early-stopped (``pretrain_patience`` epochs without improvement) on a
    validation split of ``stop_valid`` oracle samples drawn apart from the NLL-test rows, so the
    stopping point is not chosen on what is reported. pretrain_clip: the gradient-norm clip of MLE.
    generator: the generator's architecture (``family`` llama or lstm). ``MLE_RECIPES`` name presets.
    """

    seeds: tuple[int, ...] = (0, 1, 2)
    rows: tuple[str, ...] = ROWS
    budget: float = 1.0
    batch_size: int = 64
    num_rollouts: int = 16
    rollout_rate: float = 0.8
    pretrain_steps: int = 1500
    d_pretrain_steps: int = 100
    updates: int = 50
    d_steps: int = 3
    lr: float = 1e-3
    pretrain_lr: float = 5e-3
    eval_samples: int = 9984
    oracle_train: int = 10_000
    oracle_valid: int = 2_000
    pretrain_epochs: int = 0
    pretrain_patience: int = 5
    pretrain_clip: float = 1.0
    stop_valid: int = 2_000
    generator: GeneratorConfig = field(
        default_factory=lambda: GeneratorConfig(hidden_size=32, intermediate_size=64, max_position_embeddings=SEQ_LEN + 1)
    )
    discriminator_model: ModelConfig = field(default_factory=lambda: ModelConfig(max_position_embeddings=SEQ_LEN + 1))
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    device: str = "auto"

    def __post_init__(self) -> None:
        self.seeds = tuple(self.seeds)
        self.rows = tuple(self.rows)
        if not self.seeds or not all(is_int(s) and s >= 0 for s in self.seeds):
            raise ValueError(f"seeds={self.seeds!r} is invalid: give one or more ints >= 0, e.g. --seeds 0,1,2.")
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds={self.seeds!r} repeats a seed: each seed is one independent run.")
        unknown = [r for r in self.rows if r not in ROWS]
        if unknown or not self.rows:
            raise ValueError(f"rows={self.rows!r} is invalid: choose one or more of {list(ROWS)}.")
        check_number("budget", self.budget, 0, fix="1.0 is the default hour on a 2-core CPU; e.g. 10 on a GPU",
                     low_open=True)
        check_ints(self, ("batch_size", "num_rollouts", "updates", "d_steps", "eval_samples",
                          "oracle_train", "oracle_valid"), 1)
        check_ints(self, ("pretrain_steps", "d_pretrain_steps", "pretrain_epochs"), 0)
        check_ints(self, ("pretrain_patience", "stop_valid"), 1)
        check_number("pretrain_clip", self.pretrain_clip, 0, fix="SeqGAN clips at 5.0", low_open=True)
        for name in ("lr", "pretrain_lr"):
            check_number(name, getattr(self, name), 0, fix="e.g. 1e-3", low_open=True)
        check_number("rollout_rate", self.rollout_rate, 0, 1, "SeqGAN uses 0.8")
        for name in ("generator", "discriminator_model"):
            if getattr(self, name).max_position_embeddings < SEQ_LEN + 1:
                raise ValueError(f"{name}.max_position_embeddings must be >= {SEQ_LEN + 1} (BOS + {SEQ_LEN} tokens).")
        resolve_device(self.device)

    @classmethod
    def with_recipe(cls, name: str | None, **kwargs: Any) -> OracleBenchmarkConfig:
        """A config with the MLE recipe ``name`` of ``MLE_RECIPES`` (None: the defaults) under ``kwargs``."""
        if name is not None and name not in MLE_RECIPES:
            raise ValueError(f"--mle-recipe {name!r} is unknown: choose one of {sorted(MLE_RECIPES)}.")
        return cls(**{**(MLE_RECIPES[name]() if name else {}), **kwargs})

    def scaled(self, steps: int) -> int:
        """``steps`` times the budget, rounded, at least 1 when ``steps`` > 0."""
        return 0 if steps == 0 else max(1, round(steps * self.budget))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


#: Named MLE pretraining recipes (``seqgan-env benchmark oracle --mle-recipe NAME``); each value says why.
MLE_RECIPES: dict[str, Callable[[], dict[str, Any]]] = {
    # SeqGAN's generator and pretraining: embedding 32, one LSTM layer of 32, Adam lr 0.01, batch 64,
    # gradient norm clipped at 5, up to 80 epochs; stopped early on a validation split. Dropout 0.3 was
    # chosen on that split: best validation NLL 7.51 against 7.61 without (which overfits after 4 epochs);
    # see benchmarks/README.md, "The MLE baseline".
    "seqgan": lambda: {
        "generator": GeneratorConfig(family="lstm", hidden_size=32, num_layers=1, dropout=0.3,
                                     max_position_embeddings=SEQ_LEN + 1),
        "pretrain_lr": 0.01,
        "pretrain_clip": 5.0,
        "pretrain_epochs": 80,
        "pretrain_patience": 5,
    },
}


def early_stop_split(data: OracleDataset, n: int, seed: int) -> torch.Tensor:
    """(n, 20) model ids: oracle samples from their own RNG stream, apart from ``data.train`` and ``data.valid``
    (the NLL-test rows), on which MLE pretraining chooses its stopping epoch."""
    gen = torch.Generator().manual_seed(seed + 1_000_003)
    return data.tokenizer.from_oracle(data.oracle.sample(n, generator=gen).cpu())


class ConstantScorer:
    """A prefix scorer that gives every prefix logit 0 (probability 0.5): the constant-reward control."""

    def score_logits(self, tokens: torch.Tensor) -> torch.Tensor:
        return torch.zeros(tokens.shape, dtype=torch.float32, device=tokens.device)  # (B, T)


def _real_batch(data: OracleDataset, n: int, gen: torch.Generator, device: torch.device) -> torch.Tensor:
    idx = torch.randint(len(data.train), (n,), generator=gen)
    return data.train[idx].to(device)  # (n, T)


def evaluate_generator(agent: ReinforceAgent, data: OracleDataset, n: int, seed: int, chunk: int = 2048) -> dict[str, float]:
    """NLL-oracle of ``n`` samples (temperature 1, top-p 1) and NLL-test on ``data.valid``."""
    samples = []
    for i, start in enumerate(range(0, n, chunk)):
        m = min(chunk, n - start)
        samples.append(agent.sample(m, SEQ_LEN, temperature=1.0, top_p=1.0, seed=seed * 1000 + i, allow_eos=False).cpu())
    return data.benchmark_metrics(agent.generator, torch.cat(samples))  # samples (n, T)


def _adversarial_row(
    row: str, cfg: OracleBenchmarkConfig, seed: int, data: OracleDataset, agent: ReinforceAgent,
    disc: Discriminator, device: torch.device,
) -> None:
    """``cfg.updates`` (scaled) REINFORCE updates of ``agent`` with the reward of ``row``; D trains alongside."""
    B = cfg.batch_size
    if row == "seqgan":
        scorer: Any = make_mc_rollout_scorer(
            disc, agent.generator, num_rollouts=cfg.num_rollouts, rate=cfg.rollout_rate, max_length=SEQ_LEN,
            min_length=1, allow_eos=False, seed=seed,
        )
    elif row == "constant":
        scorer = ConstantScorer()
    else:
        scorer = disc
    mode = "potential" if row == "potential" else "per_step"
    base = TokenGenerationVectorEnv(
        B, tokenizer=data.tokenizer, max_length=SEQ_LEN, allow_eos=False, device=device, return_torch=True,
        decode_text=False,
    )
    venv = DiscriminatorRewardVector(base, scorer, RewardConfig(mode=mode, transform="prob", update_every=None),
                                     real_data=data.train.to(device), seed=seed)
    callback = None
    if row != "constant":
        callback = DiscriminatorUpdateCallback(
            venv, lambda n: agent.sample(n, SEQ_LEN, allow_eos=False),
            DiscriminatorUpdateConfig(every=1, d_steps=cfg.d_steps, batch_size=B),
        )
    for _ in range(cfg.scaled(cfg.updates)):
        agent.update(agent.collect(venv))
        if row == "seqgan":
            scorer.update_rollout_policy(agent.generator)
        if callback is not None:
            callback.on_generator_update()


def run_seed(cfg: OracleBenchmarkConfig, seed: int, log: Callable[[str], None] = print) -> dict[str, Any]:
    """One seed of the benchmark: {row: {"nll_oracle", "nll_test", "seconds"}} plus shared-phase timings."""
    device = resolve_device(cfg.device)
    t0 = time.perf_counter()
    data = load_oracle_dataset(cfg.oracle_train, cfg.oracle_valid, seed=seed)
    vocab = data.tokenizer.vocab_size
    torch.manual_seed(seed)
    generator = build_generator(cfg.generator, vocab)
    mle_cfg = ReinforceConfig(batch_size=cfg.batch_size, lr=cfg.pretrain_lr, baseline="none",
                              max_grad_norm=cfg.pretrain_clip, device=cfg.device)
    agent = ReinforceAgent(generator, mle_cfg, seed=seed)
    out: dict[str, Any] = {"seed": seed, "rows": {}}
    out["rows"]["untrained"] = {**evaluate_generator(agent, data, cfg.eval_samples, seed), "seconds": 0.0}
    real_gen = torch.Generator().manual_seed(seed + 1)

    t_pre = time.perf_counter()
    if cfg.pretrain_epochs > 0:  # epochs, early-stopped on a split apart from the NLL-test rows
        fit = fit_mle(agent, data.train, early_stop_split(data, cfg.stop_valid, seed),
                      MLEFitConfig(max_epochs=cfg.scaled(cfg.pretrain_epochs), batch_size=cfg.batch_size,
                                   patience=cfg.pretrain_patience), seed=seed + 1, log=log)
        mle_epoch = fit.epoch_seconds
        out["pretrain"] = {"best_epoch": fit.best_epoch, "epochs": fit.epochs, "best_valid_nll": fit.best_valid_nll,
                           "history": fit.history}
    else:
        steps = cfg.scaled(cfg.pretrain_steps)
        for i in range(steps):
            loss = agent.mle_step(_real_batch(data, cfg.batch_size, real_gen, device))
            if not math.isfinite(loss):
                raise FloatingPointError(f"MLE pretraining loss became {loss} at step {i}: lower pretrain_lr.")
        mle_epoch = (time.perf_counter() - t_pre) / max(steps, 1) * math.ceil(len(data.train) / cfg.batch_size)
    disc = Discriminator(vocab, cfg.discriminator_model, cfg.discriminator, device=device, seed=seed + 2)
    for _ in range(cfg.scaled(cfg.d_pretrain_steps)):
        disc.update(_real_batch(data, cfg.batch_size, real_gen, device),
                    agent.sample(cfg.batch_size, SEQ_LEN, allow_eos=False))
    pretrain_seconds = time.perf_counter() - t_pre
    out["rows"]["pretrained"] = {**evaluate_generator(agent, data, cfg.eval_samples, seed), "seconds": pretrain_seconds}
    out["pretrain_seconds"] = pretrain_seconds
    out["mle_epoch_seconds"] = mle_epoch
    log(f"seed {seed}: pretrained in {pretrain_seconds:.0f}s (MLE epoch {mle_epoch:.1f}s): "
        f"NLL-oracle {out['rows']['untrained']['nll_oracle']:.3f} -> {out['rows']['pretrained']['nll_oracle']:.3f}")

    pretrained_state = copy.deepcopy(agent.generator.state_dict())
    for row in cfg.rows:
        torch.manual_seed(seed)
        row_generator = build_generator(cfg.generator, vocab)
        row_generator.load_state_dict(pretrained_state)
        lr, clip = (cfg.pretrain_lr, cfg.pretrain_clip) if row == "mle" else (cfg.lr, 1.0)
        # SeqGAN weights grad log G(y_t) by Q_t, the mc_rollout reward of step t itself: gamma 0, so the
        # return is not a sum of later Q values.
        gamma = 0.0 if row == "seqgan" else 1.0
        row_agent = ReinforceAgent(
            row_generator,
            ReinforceConfig(batch_size=cfg.batch_size, lr=lr, gamma=gamma, baseline="none", max_grad_norm=clip,
                            device=cfg.device),
            seed=seed + 3,
        )
        row_disc = copy.deepcopy(disc)  # same pretrained D (weights and optimizer state) for every row
        t_row = time.perf_counter()
        if row == "mle":
            row_gen = torch.Generator().manual_seed(seed + 4)
            for _ in range(cfg.scaled(cfg.updates)):
                row_agent.mle_step(_real_batch(data, cfg.batch_size, row_gen, device))
        else:
            _adversarial_row(row, cfg, seed, data, row_agent, row_disc, device)
        seconds = time.perf_counter() - t_row
        out["rows"][row] = {**evaluate_generator(row_agent, data, cfg.eval_samples, seed), "seconds": seconds}
        r = out["rows"][row]
        log(f"seed {seed}: {row:10s} NLL-oracle {r['nll_oracle']:.3f}  NLL-test {r['nll_test']:.3f}  {seconds:.0f}s")
    out["total_seconds"] = time.perf_counter() - t0
    return out


def summarize(per_seed: list[dict[str, Any]]) -> dict[str, dict[str, tuple[float, float]]]:
    """{row: {metric: (mean, population std)}} over seeds, for every row present in all seeds."""
    rows = [r for r in per_seed[0]["rows"] if all(r in s["rows"] for s in per_seed)]
    summary: dict[str, dict[str, tuple[float, float]]] = {}
    for row in rows:
        summary[row] = {}
        for metric in ("nll_oracle", "nll_test", "seconds"):
            vals = [float(s["rows"][row][metric]) for s in per_seed]
            summary[row][metric] = (statistics.fmean(vals), statistics.pstdev(vals) if len(vals) > 1 else 0.0)
    return summary


def format_table(summary: dict[str, dict[str, tuple[float, float]]], num_seeds: int) -> str:
    """A Markdown table: row, NLL-oracle, NLL-test, wall time (mean ± std over seeds), published NLL-oracle."""
    lines = [
        f"| method | NLL-oracle (mean ± std, {num_seeds} seeds) | NLL-test | wall time (s) | published NLL-oracle |",
        "|---|---|---|---|---|",
    ]
    for row, m in summary.items():
        pub = PUBLISHED.get(row)
        lines.append(
            f"| {ROW_LABELS.get(row, row)} | {m['nll_oracle'][0]:.3f} ± {m['nll_oracle'][1]:.3f} | "
            f"{m['nll_test'][0]:.3f} ± {m['nll_test'][1]:.3f} | {m['seconds'][0]:.0f} ± {m['seconds'][1]:.0f} | "
            f"{'' if pub is None else f'{pub:.3f}'} |"
        )
    return "\n".join(lines)


def verdict(summary: dict[str, dict[str, tuple[float, float]]]) -> list[str]:
    """Plain sentences: which trained rows beat SeqGAN's published 8.736 and what NLL-test each paid.

    NLL-test is compared with the MLE-pretrained starting point: a row that lowers
    NLL-oracle while raising NLL-test by more than ``COVERAGE_LOSS_NATS`` has traded
    coverage for quality (mode dropping), a failure however low its NLL-oracle.
    """
    start = summary.get("pretrained")
    out = []
    for row, m in summary.items():
        if row in ("untrained", "pretrained"):
            continue
        nll_o, nll_t = m["nll_oracle"][0], m["nll_test"][0]
        beats = nll_o < SEQGAN_PUBLISHED
        s = f"{ROW_LABELS.get(row, row)}: NLL-oracle {nll_o:.3f} {'beats' if beats else 'does not beat'} " \
            f"SeqGAN's published {SEQGAN_PUBLISHED}"
        if start is not None:
            d_o = nll_o - start["nll_oracle"][0]
            d_t = nll_t - start["nll_test"][0]
            s += f"; vs the pretrained start NLL-oracle {d_o:+.3f}, NLL-test {d_t:+.3f}"
            if d_o < 0 and d_t > COVERAGE_LOSS_NATS:
                s += " (quality bought with coverage: mode dropping, a failure)"
        out.append(s + ".")
    return out


def run_benchmark(
    cfg: OracleBenchmarkConfig, out_path: str | Path | None = None, log: Callable[[str], None] = print
) -> dict[str, Any]:
    """All seeds; writes ``out_path`` (JSON, atomically) after each seed if given; prints the table."""
    per_seed = []
    result: dict[str, Any] = {"config": cfg.to_dict(), "published": PUBLISHED, "seeds": per_seed}
    for seed in cfg.seeds:
        per_seed.append(run_seed(cfg, seed, log))
        result["summary"] = {row: {k: list(v) for k, v in m.items()} for row, m in summarize(per_seed).items()}
        if out_path is not None:
            atomic_write_json(out_path, result)
    summary = summarize(per_seed)
    log("")
    log(format_table(summary, len(per_seed)))
    log("")
    for line in verdict(summary):
        log(line)
    mle_epochs = [s["mle_epoch_seconds"] for s in per_seed]
    log(f"MLE epoch over {cfg.oracle_train} sequences: {statistics.fmean(mle_epochs):.2f}s "
        f"(batch {cfg.batch_size}); pretraining {statistics.fmean(s['pretrain_seconds'] for s in per_seed):.0f}s per seed")
    return result


__all__ = ["MLE_RECIPES", "OracleBenchmarkConfig", "ROWS", "early_stop_split", "PUBLISHED", "run_benchmark", "run_seed", "summarize",
           "format_table", "verdict", "ConstantScorer", "evaluate_generator"]
