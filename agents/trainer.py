"""Adversarial training: a REINFORCE generator against a co-trained discriminator.

One readable loop (CleanRL style): ``TrainConfig`` is the single source of
defaults, the vector env with its discriminator reward is the single source of
rewards, ``DiscriminatorUpdateCallback`` decides when D trains, and ``RunDir``
records everything needed to redo or resume the run.
"""

from __future__ import annotations

import dataclasses
import math
import shutil
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from seqgan_agents import distributed
from seqgan_agents.distributed import DistContext, FollowerRun
from seqgan_agents.ppo import PPOConfig
from seqgan_agents.reinforce import ReinforceAgent, ReinforceConfig, resolve_device
from seqgan_env.runs.alarms import (
    SAMPLE_ALARMS,
    UPDATE_ALARMS,
    AlarmConfig,
    AlarmMonitor,
    alarm_metrics,
)
from seqgan_env.rewards.callbacks import DiscriminatorUpdateCallback, DiscriminatorUpdateConfig
from seqgan_env.runs.configio import config_from_dict, config_to_dict
from seqgan_env.data.text import DEFAULT_DATA_PATH, TextDataset, file_sha256, load_dataset
from seqgan_env.models.discriminator import Discriminator, DiscriminatorConfig
from seqgan_env.rewards.mc_rollout import MCRolloutConfig, make_mc_rollout_scorer
from seqgan_env.eval.metrics import CHARACTER_METRICS, BigramModel, sample_report
from seqgan_env.models.networks import ModelConfig, build_generator
from seqgan_env.eval.oracle import DEFAULT_ORACLE_PATH, SEQ_LEN as ORACLE_LENGTH
from seqgan_env.runs.rundir import (
    RunDir,
    flatten_optimizer_state,
    flatten_scheduler_state,
    rng_state,
    set_rng_state,
    unflatten_optimizer_state,
    unflatten_scheduler_state,
)
from seqgan_env.data.tokenizer import CharTokenizer
from seqgan_env.utils.validation import check_int, check_ints
from seqgan_env.envs.vector_env import TokenGenerationVectorEnv
from seqgan_env.rewards.wrappers import DiscriminatorRewardVector, RewardConfig

AGENTS = ("reinforce", "ppo", "maskable_ppo")
REWARD_SCORERS = ("discriminator", "mc_rollout")


ORACLE = "oracle"


@dataclass
class DataConfig:
    """Real data: a text file with one sequence per line (default: census first names), or ``oracle``.

    ``path="oracle"`` is the SeqGAN synthetic task: ``oracle_train`` + ``oracle_valid``
    sequences of 20 tokens (vocabulary 5,000, no EOS) sampled from the oracle LSTM
    with the run's seed; max_length must then be 20. ``max_length`` None means: what
    the data needs (a text file's longest line, plus one slot for EOS when EOS is
    allowed; 20 for the oracle), resolved when the run starts and recorded in its
    config.json. ``allow_eos`` None means: True for text files, False for the oracle.
    """

    path: str = str(DEFAULT_DATA_PATH)
    max_length: int | None = None
    min_length: int = 1
    valid_fraction: float = 0.1
    skip_blank: bool = False
    allow_eos: bool | None = None
    oracle_train: int = 10_000
    oracle_valid: int = 2_000

    @property
    def is_oracle(self) -> bool:
        return self.path == ORACLE

    @property
    def eos(self) -> bool:
        """Whether sequences may end early with EOS."""
        return (not self.is_oracle) if self.allow_eos is None else self.allow_eos

    def __post_init__(self) -> None:
        if self.max_length is not None:
            check_int("data.max_length", self.max_length)
        check_int("data.min_length", self.min_length, 0)
        if self.max_length is not None and self.min_length > self.max_length:
            raise ValueError(
                f"data.min_length={self.min_length!r} is invalid: it must be an int in [0, data.max_length="
                f"{self.max_length}]; lower it or raise data.max_length."
            )
        if not isinstance(self.valid_fraction, (int, float)) or not 0 <= self.valid_fraction < 1:
            raise ValueError(f"data.valid_fraction={self.valid_fraction!r} is invalid: it must be in [0, 1).")
        check_ints(self, ("oracle_train", "oracle_valid"), 1, "data.")
        if self.is_oracle and self.max_length not in (None, ORACLE_LENGTH):
            raise ValueError(
                f"data.max_length={self.max_length} does not fit data.path=oracle, whose sequences have "
                f"{ORACLE_LENGTH} tokens; fix: --set data.max_length={ORACLE_LENGTH}."
            )
        if self.is_oracle and self.allow_eos:
            raise ValueError("data.allow_eos=true does not fit data.path=oracle (fixed-length sequences, no EOS).")


@dataclass
class ScheduleConfig:
    """How long to train and how often to evaluate, sample and checkpoint."""

    updates: int = 600
    pretrain_steps: int = 300
    d_pretrain_steps: int = 50
    eval_every: int = 100
    eval_samples: int = 1000
    checkpoint_every: int = 100
    max_nonfinite: int = 5  # consecutive skipped updates (NaN/inf loss or gradient) before the run stops

    def __post_init__(self) -> None:
        check_ints(self, ("updates", "eval_every", "eval_samples", "checkpoint_every", "max_nonfinite"), 1, "schedule.")
        check_ints(self, ("pretrain_steps", "d_pretrain_steps"), 0, "schedule.")


@dataclass
class TrainConfig:
    """Everything `seqgan-env train` needs; every field is a CLI option (``--section.field``)."""

    name: str = "seqgan"
    out_dir: str = "runs"
    seed: int = 0
    agent: str = "reinforce"  # reinforce | ppo | maskable_ppo (SB3, for comparison)
    note: str = ""  # free text shown by `seqgan-env runs list` and `runs diff`
    data: DataConfig = field(default_factory=DataConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    reinforce: ReinforceConfig = field(default_factory=lambda: ReinforceConfig(batch_size=128, lr=2e-3, mle_coef=0.5))
    # potential/prob: per-prefix credit without a length bias (per_step/prob grows names to max_length,
    # per_step/log shrinks them to one letter; README has the measured table).
    reward: RewardConfig = field(default_factory=lambda: RewardConfig(mode="potential", transform="prob"))
    # discriminator: D scores each prefix directly (one token per step with its KV cache);
    # mc_rollout: SeqGAN's Q, D's mean score of mc_rollout.num_rollouts completions of each prefix.
    reward_scorer: str = "discriminator"
    mc_rollout: MCRolloutConfig = field(default_factory=MCRolloutConfig)  # K, rate, temperature of reward_scorer=mc_rollout
    d_updates: DiscriminatorUpdateConfig = field(default_factory=lambda: DiscriminatorUpdateConfig(every=1, d_steps=1, batch_size=128))
    # The default tiny Llama (hidden 32, 2 layers), as the discriminator: the same sample quality as hidden 64
    # on the census names (README) in two thirds of the training time.
    generator: ModelConfig = field(default_factory=ModelConfig)
    discriminator_model: ModelConfig = field(default_factory=ModelConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    ppo: PPOConfig = field(default_factory=PPOConfig)
    alarms: AlarmConfig = field(default_factory=AlarmConfig)

    def __post_init__(self) -> None:
        if self.agent not in AGENTS:
            raise ValueError(f"agent={self.agent!r} is unknown: choose one of {list(AGENTS)}.")
        if self.reward_scorer not in REWARD_SCORERS:
            raise ValueError(f"reward_scorer={self.reward_scorer!r} is unknown: choose one of {list(REWARD_SCORERS)}.")
        if self.reward_scorer == "mc_rollout" and self.agent != "reinforce":
            raise ValueError(f"reward_scorer=mc_rollout needs agent=reinforce (its rollout policy is a copy of the "
                             f"Llama generator), not agent={self.agent}.")
        if self.reward_scorer == "mc_rollout" and self.reward.mode == "final":
            raise ValueError("reward_scorer=mc_rollout with reward.mode=final would score only finished sequences "
                             "(no rollouts); fix: --set reward.mode=per_step --set reinforce.gamma=0 (SeqGAN) or potential.")
        if self.reward_scorer == "mc_rollout" and self.reward.mode == "per_step" and self.reinforce.gamma != 0:
            raise ValueError(
                f"reward_scorer=mc_rollout with reward.mode=per_step pays Q_t, the expected final discriminator "
                f"score of the prefix y_1..t, which is already the return of step t (SeqGAN weights grad log "
                f"G(y_t) by Q_t); reinforce.gamma={self.reinforce.gamma} would weight it by the sum of all later "
                f"Q values instead (about {ORACLE_LENGTH - 1}x Q_t for the first of {ORACLE_LENGTH} tokens); "
                f"fix: --set reinforce.gamma=0."
            )
        if self.reward.update_every is not None:
            raise ValueError(
                f"reward.update_every={self.reward.update_every} must be None in the trainer: the "
                f"discriminator schedule is d_updates.every (generator updates between D updates)."
            )
        for name in ("generator", "discriminator_model"):
            cfg = getattr(self, name)
            if self.data.max_length is not None and cfg.max_position_embeddings < self.data.max_length + 1:
                raise ValueError(
                    f"{name}.max_position_embeddings={cfg.max_position_embeddings} is smaller than "
                    f"data.max_length + 1 = {self.data.max_length + 1}: raise it."
                )


def train_config_from_dict(data: dict) -> TrainConfig:
    return config_from_dict(TrainConfig, data)


class Trainer:
    """Builds the data, models, env and run directory from a ``TrainConfig`` and runs the loop.

    Data-parallel (``dist`` with world_size > 1, default: the existing process group):
    every rank builds identical models (seeded with ``seed``) and its own env batch, and
    samples and draws data from its own stream (``dist.rank_seed``); the generator and
    discriminator steps go through DDP; metrics are averaged over ranks; only rank 0
    logs, evaluates and writes (``run`` is a :class:`FollowerRun` on the other ranks).
    """

    def __init__(
        self, config: TrainConfig, run: RunDir, data: TextDataset | None = None, log: Callable[[str], None] | None = None,
        dist: DistContext | None = None,
    ):
        self.config = config
        self.run = run
        self.dist = dist if dist is not None else distributed.current()
        self.log = log or (lambda msg: print(msg, file=sys.stderr))
        if not self.dist.is_main:
            self.log = lambda msg: None  # rank 0 speaks for all ranks
        cfg = config
        torch.manual_seed(cfg.seed)  # model initialisation: identical on every rank
        self.data: TextDataset = data if data is not None else load_run_data(cfg)
        cfg = self.config = with_data_length(config, self.data.max_length)
        tok = self.data.tokenizer
        if self.dist.is_main and not (run.path / "tokenizer.json").is_file():
            tok.save(run.path / "tokenizer.json")
        generator = build_generator(cfg.generator, tok.vocab_size)
        seed = self.dist.rank_seed(cfg.seed)  # this rank's sampling / data stream (rank 0: cfg.seed)
        self.agent = ReinforceAgent(generator, cfg.reinforce, seed=seed)
        self.device = self.agent.device
        self.discriminator = Discriminator(
            tok.vocab_size, cfg.discriminator_model, cfg.discriminator, device=self.device, seed=cfg.seed + 1
        )
        if self.dist.rank > 0:
            torch.manual_seed(seed)  # global draws after initialisation (e.g. dropout) differ per rank
        base = TokenGenerationVectorEnv(
            cfg.reinforce.batch_size,
            tokenizer=tok,
            max_length=cfg.data.max_length,
            min_length=cfg.data.min_length,
            allow_eos=cfg.data.eos,
            device=self.device,
            return_torch=True,
            decode_text=False,
        )
        self.real = self.data.train.to(self.device)  # (N, T)
        self.mc_scorer = None
        if cfg.reward_scorer == "mc_rollout":
            mc = cfg.mc_rollout
            self.mc_scorer = make_mc_rollout_scorer(
                self.discriminator, self.agent.generator, num_rollouts=mc.num_rollouts, rate=mc.rate,
                max_length=cfg.data.max_length, min_length=cfg.data.min_length, allow_eos=cfg.data.eos,
                temperature=mc.temperature, seed=seed + 3,
            )
        scorer = self.mc_scorer if self.mc_scorer is not None else self.discriminator
        self.venv = DiscriminatorRewardVector(base, scorer, cfg.reward, real_data=self.real, seed=seed)
        self.callback = DiscriminatorUpdateCallback(self.venv, self._sample_fake, cfg.d_updates)
        self.bigram = BigramModel.fit(self.data.valid_texts)
        self.real_gen = torch.Generator().manual_seed(seed + 2)
        self.step = 0
        self.pretrained = False
        self.nonfinite_in_a_row = 0
        self.nonfinite_total = 0
        self.alarms = AlarmMonitor(cfg.alarms)
        self.active_alarms: list[str] = []
        self.local_metrics: dict[str, Any] = {}  # this rank's metrics of the last update, before the mean over ranks
        if self.dist.is_distributed:
            self.agent.distribute(self.dist)
            self.discriminator.distribute(
                self.dist.world_size, lambda t: distributed.all_reduce_sum(t, self.dist),
                device_ids=[torch.cuda.current_device()] if self.device.type == "cuda" else None,
            )

    # -- pieces -------------------------------------------------------------------------
    def sample_tokens(self, n: int, temperature: float = 1.0, top_p: float = 1.0, seed: int | None = None) -> torch.Tensor:
        """(n, max_length) long: generator samples under the run's episode rules (min_length, allow_eos).

        Every sample the trainer draws (fakes for D, evaluations, the progress bar) goes
        through here, so none can show what the env could never produce.
        """
        data_cfg = self.config.data
        return self.agent.sample(
            n, data_cfg.max_length, temperature, top_p, seed=seed, min_length=data_cfg.min_length,
            allow_eos=data_cfg.eos,
        )

    def _sample_fake(self, n: int) -> torch.Tensor:
        return self.sample_tokens(n, self.config.reinforce.temperature, self.config.reinforce.top_p)

    def _real_batch(self, n: int) -> torch.Tensor:
        idx = torch.randint(len(self.real), (n,), generator=self.real_gen)
        return self.real[idx.to(self.real.device)]  # (n, T)

    def evaluate(self, n: int | None = None, seed: int = 1234) -> tuple[dict[str, float], list[str]]:
        """Quality numbers of ``n`` samples at temperature 1, top-p 1, drawn with a fixed seed."""
        n = n or self.config.schedule.eval_samples
        data_cfg = self.config.data
        tokens = self.sample_tokens(n, seed=seed)
        texts = self.data.tokenizer.decode_batch(tokens.cpu())
        report = sample_report(texts, self.data.train_texts, self.bigram)
        if data_cfg.is_oracle:  # the SeqGAN benchmark's numbers: quality (oracle's NLL of our samples), coverage
            for key in CHARACTER_METRICS:  # meaningless for integer tokens (as in `seqgan-env eval`)
                report.pop(key)
            report.update(self.data.benchmark_metrics(self.agent.generator, tokens))
        return report, texts

    def pretrain(self) -> None:
        """MLE pretraining of the generator, then of D on real vs generated (as SeqGAN)."""
        sch = self.config.schedule
        b = self.config.reinforce.batch_size
        for i in range(sch.pretrain_steps):
            loss = self.agent.mle_step(self._real_batch(b))
            if not math.isfinite(loss):
                raise FloatingPointError(f"MLE pretraining loss became {loss} at step {i}: lower reinforce.lr.")
            if (i + 1) % 100 == 0 or i + 1 == sch.pretrain_steps:
                loss = distributed.mean_metrics({"mle_loss": loss}, self.dist)["mle_loss"]
                self.log(f"pretrain generator {i + 1}/{sch.pretrain_steps}: mle_loss {loss:.3f}")
        for i in range(sch.d_pretrain_steps):
            m = self.venv.update_discriminator(self._sample_fake(self.config.d_updates.batch_size))
            if i + 1 == sch.d_pretrain_steps:
                m = distributed.mean_metrics(m, self.dist)
                self.log(f"pretrain discriminator {i + 1}/{sch.d_pretrain_steps}: loss {m['loss']:.3f}")
        if self.mc_scorer is not None:  # SeqGAN: the rollout policy starts as the pretrained generator
            self.mc_scorer.update_rollout_policy(self.agent.generator, rate=0.0)
        self.pretrained = True

    def train_step(self) -> dict[str, Any]:
        """One generator update (collect + REINFORCE), then the D schedule."""
        t0 = time.perf_counter()
        rollout = self.agent.collect(self.venv)
        real = self._real_batch(self.config.reinforce.batch_size) if self.config.reinforce.mle_coef > 0 else None
        try:
            metrics: dict[str, Any] = dict(self.agent.update(rollout, real))
        except FloatingPointError as exc:
            self.nonfinite_in_a_row += 1
            self.nonfinite_total += 1
            self.log(f"warning: {exc} ({self.nonfinite_in_a_row} in a row, {self.nonfinite_total} in total)")
            if self.nonfinite_in_a_row >= self.config.schedule.max_nonfinite:
                raise FloatingPointError(
                    f"{self.nonfinite_in_a_row} updates in a row had a non-finite loss or gradient; the run "
                    f"stopped at update {self.step} and its last checkpoint is intact. Fix: lower reinforce.lr "
                    f"or raise reinforce.max_grad_norm clipping, then --resume {self.run.path}."
                ) from None
            return {"skipped_nonfinite": 1, "nonfinite_total": self.nonfinite_total}
        self.nonfinite_in_a_row = 0
        if self.mc_scorer is not None:  # delayed copy: θ_rollout <- rate θ_rollout + (1 - rate) θ
            self.mc_scorer.update_rollout_policy(self.agent.generator)
        try:
            d_metrics = self.callback.on_generator_update() or {}
        except FloatingPointError as exc:  # the discriminator refused a non-finite step and changed nothing
            self.nonfinite_total += 1
            self.log(f"warning: discriminator update skipped: {exc} ({self.nonfinite_total} non-finite in total)")
            d_metrics = {"discriminator/skipped_nonfinite": 1}
        metrics.update(d_metrics)
        metrics["d_lr"] = self.discriminator.optimizer.param_groups[0]["lr"]
        metrics["update_seconds"] = time.perf_counter() - t0
        metrics["tokens"] = int(rollout.mask.sum())
        metrics["nonfinite_total"] = self.nonfinite_total
        self.local_metrics = dict(metrics)
        metrics = distributed.mean_metrics(metrics, self.dist)  # mean over ranks (a no-op for one process)
        self._note_alarms(self.alarms.check_update(metrics), UPDATE_ALARMS, metrics)
        self.step += 1
        return metrics

    def _note_alarms(self, alarms: list, checked: tuple, metrics: dict[str, Any]) -> None:
        """Alarms go to metrics (alarm/<name> = 0 or 1), stderr (once when raised) and the progress bar."""
        metrics.update(alarm_metrics(alarms, checked))
        for alarm in alarms:
            if alarm.new:
                self.log(f"warning: {alarm}")
        fired = {a.name for a in alarms}
        self.active_alarms = sorted((set(self.active_alarms) - set(checked)) | fired)

    # -- checkpoints --------------------------------------------------------------------
    def state(self) -> tuple[dict[str, dict[str, torch.Tensor]], dict[str, Any]]:
        """The checkpoint's (tensor groups, JSON meta); a collective when data-parallel.

        Weights, optimizer and schedule states are identical on every rank and saved
        once. RNG states differ per rank: rank 0's are in groups ``agent`` (its
        ``rng_state``) and ``rng``; rank r >= 1's (gathered to every rank) in group
        ``rng_rank<r>`` (``agent_rng``, ``real_gen``, ``wrapper_gen``, global torch /
        CUDA) with meta ``rng_rank<r>`` (numpy, python), so a resume continues every
        rank's streams exactly.
        """
        agent_state = self.agent.state_dict()
        d_opt_t, d_opt_m = flatten_optimizer_state(self.discriminator.optimizer.state_dict())
        tensors = {
            "agent": agent_state["tensors"],
            "discriminator": self.discriminator.state_dict(),
            "discriminator_optimizer": d_opt_t,
            "rng": {},
        }
        meta: dict[str, Any] = {
            "agent": agent_state["meta"],
            "discriminator_optimizer": d_opt_m,
            "discriminator_num_updates": self.discriminator.num_updates,
            "callback": self.callback.state_dict(),
            "train_step": self.step,
            "pretrained": self.pretrained,
            "alarms": self.alarms.state_dict(),
        }
        if self.discriminator.scheduler is not None:
            st, sm = flatten_scheduler_state(self.discriminator.scheduler.state_dict())
            tensors["discriminator_scheduler"] = st
            meta["discriminator_scheduler"] = sm
        rng_t, rng_m = rng_state()
        tensors["rng"] = {**rng_t, "real_gen": self.real_gen.get_state(), "wrapper_gen": self.venv.trainer.generator.get_state()}
        meta["rng"] = rng_m
        if self.mc_scorer is not None:  # the rollout policy (same on every rank) and this rank's rollout RNG
            tensors["rollout_generator"] = {
                k: v.detach().cpu().clone().contiguous() for k, v in self.mc_scorer.rollout_generator.state_dict().items()
            }
            tensors["rng"]["mc_rollout_gen"] = self.mc_scorer.rng.get_state().cpu()
        if self.dist.is_distributed:
            own = {**tensors["rng"], "agent_rng": self.agent.rng.get_state()}
            for r, (t, m) in enumerate(distributed.gather_state(own, rng_m, self.dist)):
                if r > 0:
                    tensors[f"rng_rank{r}"], meta[f"rng_rank{r}"] = t, m
            meta["world_size"] = self.dist.world_size
        return tensors, meta

    def save_checkpoint(self) -> Path:
        tensors, meta = self.state()
        return self.run.save_checkpoint(self.step, tensors, meta)

    def load_checkpoint(self, path: Path | None = None) -> None:
        tensors, meta = self.run.load_checkpoint(path)
        try:
            self.agent.load_state_dict({"tensors": tensors["agent"], "meta": meta["agent"]})
            self.discriminator.load_state_dict(tensors["discriminator"])
            self.discriminator.optimizer.load_state_dict(
                unflatten_optimizer_state(tensors["discriminator_optimizer"], meta["discriminator_optimizer"])
            )
            if self.discriminator.scheduler is not None and "discriminator_scheduler" in meta:
                self.discriminator.scheduler.load_state_dict(
                    unflatten_scheduler_state(tensors.get("discriminator_scheduler", {}), meta["discriminator_scheduler"])
                )
            self.discriminator.num_updates = int(meta["discriminator_num_updates"])
            self.callback.load_state_dict(meta["callback"])
            if "alarms" in meta:
                self.alarms.load_state_dict(meta["alarms"])
            group = "rng" if self.dist.rank == 0 else f"rng_rank{self.dist.rank}"  # this rank's own streams
            rng = dict(tensors[group])
            if self.dist.rank > 0:
                self.agent.rng.set_state(rng.pop("agent_rng").cpu())
            self.real_gen.set_state(rng.pop("real_gen"))
            self.venv.trainer.generator.set_state(rng.pop("wrapper_gen"))
            if self.mc_scorer is not None:
                self.mc_scorer.rollout_generator.load_state_dict(tensors["rollout_generator"])
                self.mc_scorer.rng.set_state(rng.pop("mc_rollout_gen"))
            set_rng_state(rng, meta[group])
        except (KeyError, RuntimeError) as exc:
            raise ValueError(
                f"checkpoint in '{self.run.path}' does not match this run's models or format ({exc}); "
                f"fix: resume from a checkpoint written by this version with the same config."
            ) from None
        self.step = int(meta["train_step"])
        self.pretrained = bool(meta["pretrained"])  # D weights changed: collect() resets the env, rebuilding its cache

    def export_generator(self) -> Path:
        """``save_pretrained`` + tokenizer JSON, loadable by ``LlamaForCausalLM.from_pretrained(dir)``."""
        out = self.run.path / "generator"
        from seqgan_env.runs.rundir import save_generator_export  # save_pretrained without its progress bar

        save_generator_export(self.agent.generator, out)
        self.data.tokenizer.save(out / "tokenizer.json")
        return out

    # -- the loop -----------------------------------------------------------------------
    def fit(self, progress: bool = True) -> dict[str, float]:
        """Pretrain (unless resumed past it), then train until ``schedule.updates``.

        Data-parallel: every rank trains; only rank 0 evaluates, shows progress,
        exports and returns the final report (the other ranks return {}). A stop
        signal on any rank stops every rank after the same update.
        """
        from tqdm import tqdm

        sch = self.config.schedule
        main = self.dist.is_main
        stop = {"flag": False}

        def on_signal(signum, frame):  # finish the current update, checkpoint, exit; a second Ctrl-C aborts
            if stop["flag"] and signum == signal.SIGINT:
                raise KeyboardInterrupt
            stop["flag"] = True

        in_main = threading.current_thread() is threading.main_thread()  # signals can only be caught there
        old = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)} if in_main else {}
        try:
            if not self.pretrained:
                if main:
                    before, _ = self.evaluate()
                    self.run.log_metrics(0, {f"eval/untrained_{k}": v for k, v in before.items()})
                self.pretrain()
                if main:
                    after, _ = self.evaluate()
                    self.run.log_metrics(0, {f"eval/pretrained_{k}": v for k, v in after.items()})
            bar = tqdm(total=sch.updates, initial=self.step, disable=not (progress and main), file=sys.stderr,
                       dynamic_ncols=True)
            start = time.time()
            while self.step < sch.updates:
                try:
                    metrics = self.train_step()
                except KeyboardInterrupt:
                    stop["flag"] = True
                    break
                if metrics.get("skipped_nonfinite"):
                    self.run.log_metrics(self.step, metrics)
                    continue
                self.run.log_metrics(self.step, metrics)
                if main and (self.step % sch.eval_every == 0 or self.step == sch.updates):
                    report, texts = self.evaluate()
                    eval_metrics = {f"eval/{k}": v for k, v in report.items()}
                    self._note_alarms(self.alarms.check_samples(texts), SAMPLE_ALARMS, eval_metrics)
                    self.run.log_metrics(self.step, eval_metrics)
                    self.run.write_samples(self.step, texts)
                    self.run.log_text(self.step, "samples", "\n".join(texts[:20]))
                bar.update(1)
                if main:
                    self._show_progress(bar, metrics)
                if self.step % sch.checkpoint_every == 0:
                    self.save_checkpoint()
                if self.dist.is_distributed:
                    stop["flag"] = distributed.any_flag(stop["flag"], self.dist)
                if stop["flag"]:
                    break
            bar.close()
            if stop["flag"]:
                path = self.save_checkpoint()
                self.log(f"stopped at update {self.step}; checkpoint saved in {path}. Resume with --resume {self.run.path}")
                raise KeyboardInterrupt
            self.save_checkpoint()
            if not main:
                return {}
            self.export_generator()
            final, _ = self.evaluate()
            self.log(f"trained {self.step} updates in {time.time() - start:.0f}s; run directory {self.run.path}")
            return final
        finally:
            for signum, handler in old.items():
                signal.signal(signum, handler)

    def _show_progress(self, bar, metrics: dict[str, Any]) -> None:
        """Progress-bar postfix: alarms, reward, D loss and accuracy, and one sample (its own seed)."""
        bar.set_postfix(
            alarms=",".join(self.active_alarms) or "-",
            reward=f"{metrics['reward_mean']:.3f}",
            d_loss=f"{metrics.get('discriminator/loss', float('nan')):.3f}",
            d_acc=f"{0.5 * (metrics.get('discriminator/acc_real', float('nan')) + metrics.get('discriminator/acc_fake', float('nan'))):.2f}",
            sample=self.data.tokenizer.decode(
                self.sample_tokens(1, seed=self.step)[0].cpu()
            ),  # own seed: the display never moves the training RNG
        )


def load_tokenizer(path: Path):
    """A run's tokenizer.json: the char tokenizer, or the oracle's integer tokenizer (by its "type")."""
    from seqgan_env.eval.oracle_data import IntTokenizer
    from seqgan_env.data.tokenizer import read_tokenizer_json

    kind = read_tokenizer_json(Path(path), "CharTokenizer")
    return IntTokenizer.load(path) if isinstance(kind, dict) and kind.get("type") == "int" else CharTokenizer.load(path)


def load_run_data(config: TrainConfig, tokenizer: CharTokenizer | None = None) -> TextDataset:
    """The run's data, validated; with ``tokenizer`` (a resumed run's) every symbol must be in its vocabulary.

    With ``data.max_length`` None the data decides it (``data.max_length`` of the result);
    ``with_data_length`` writes it into the config.
    """
    if config.data.is_oracle:
        from seqgan_env.eval.oracle_data import load_oracle_dataset

        return load_oracle_dataset(config.data.oracle_train, config.data.oracle_valid, seed=config.seed)
    data = load_dataset(
        config.data.path,
        max_length=config.data.max_length,
        valid_fraction=config.data.valid_fraction,
        seed=config.seed,
        tokenizer=tokenizer,
        skip_blank=config.data.skip_blank,
        allow_eos=config.data.eos,
    )
    if config.data.valid_fraction > 0 and len(data.valid_texts) == 0:
        raise ValueError(
            f"data file '{config.data.path}' has {len(data.train_texts)} usable line(s): at least 2 are needed, one "
            f"held out for evaluation; fix: add lines or set data.valid_fraction=0."
        )
    return data


def with_data_length(config: TrainConfig, max_length: int) -> TrainConfig:
    """``config`` with ``data.max_length`` resolved to ``max_length`` (what the data needs).

    When the length came from the data (``data.max_length`` None), the models' position
    tables follow it (``max_position_embeddings`` >= max_length + 1, BOS included); an
    explicit length keeps TrainConfig's check of the tables.
    """
    if config.data.max_length is not None:
        return config
    models = {
        name: dataclasses.replace(cfg, max_position_embeddings=max(cfg.max_position_embeddings, max_length + 1))
        for name, cfg in (("generator", config.generator), ("discriminator_model", config.discriminator_model))
    }
    return dataclasses.replace(config, data=dataclasses.replace(config.data, max_length=max_length), **models)


def new_run(config: TrainConfig) -> Trainer:
    """A new run directory and the trainer of ``config.agent`` (REINFORCE, or SB3 PPO for comparison).

    The data is loaded and validated before the directory exists, and a directory
    whose trainer cannot be built is removed: a failed start leaves nothing behind.
    Under torchrun (WORLD_SIZE > 1) this joins the process group; rank 0 creates the
    directory (config.json gets a ``distributed`` block: world_size, backend, per-rank
    and global batch size) and the other ranks get a read-only :class:`FollowerRun`.
    """
    ctx = _join(config)
    data = load_run_data(config)
    config = with_data_length(config, data.max_length)
    data_file = str(DEFAULT_ORACLE_PATH) if config.data.is_oracle else config.data.path
    run, error = None, None
    if ctx.is_main:
        try:
            extra = {"distributed": ctx.record(config.reinforce.batch_size)} if config.agent == "reinforce" else None
            run = RunDir.create(config.out_dir, config.name, config_to_dict(config), data_path=data_file, extra=extra)
            run.acquire_lock()
        except BaseException as exc:  # tell the other ranks before raising, or they wait forever
            error = exc
    path = distributed.broadcast_text(str(run.path) if run is not None else "", ctx)
    if error is not None:
        raise error
    if not path:
        raise RuntimeError(f"rank 0 could not create the run directory (its error is in its log); rank {ctx.rank} stops.")
    if run is None:
        run = FollowerRun(path, {"config": config_to_dict(config)})
    try:
        if config.agent != "reinforce":
            from seqgan_agents.ppo import PPOTrainer

            return PPOTrainer(config, run, data)
        return Trainer(config, run, data, dist=ctx)
    except BaseException:
        run.close()
        if ctx.is_main:
            shutil.rmtree(run.path, ignore_errors=True)
        raise


def _join(config: TrainConfig) -> DistContext:
    """This process's place in a torchrun launch, joining its process group (``SINGLE`` without torchrun)."""
    ctx = DistContext.from_env()
    if not ctx.is_distributed:
        return ctx
    if config.agent != "reinforce":
        raise ValueError(
            f"agent={config.agent} cannot train data-parallel (this launch has WORLD_SIZE={ctx.world_size}): only "
            f"the REINFORCE trainer runs under torchrun; fix: run PPO in one process (seqgan-env train --agent "
            f"{config.agent}, without torchrun) or use --agent reinforce."
        )
    return distributed.init(resolve_device(config.reinforce.device))


def check_world_size(run: RunDir | FollowerRun, ctx: DistContext) -> None:
    """Refuse to resume ``run`` with a world size other than the one it was trained with."""
    saved = (run.info.get("distributed") or {}).get("world_size", 1)
    if saved == ctx.world_size:
        return
    if saved > 1:
        fix = (f"relaunch with {saved} ranks: torchrun --nproc_per_node={saved} -m seqgan_env.cli train --resume "
               f"{run.path} (multi-node: --nnodes x --nproc_per_node = {saved})")
    else:
        fix = f"resume in one process, without torchrun: seqgan-env train --resume {run.path}"
    raise ValueError(
        f"run '{run.path}' was trained with world_size={saved} but this launch has world_size={ctx.world_size}; a run "
        f"resumes only with its own world size (every rank's batch and random streams are in the checkpoint, and "
        f"the global batch is per-rank batch x world size); fix: {fix}."
    )


def resume_run(path: str | Path) -> Trainer:
    """Continue a run from its latest checkpoint, with the world size it was trained with.

    Under torchrun every rank reads the checkpoint (multi-node: the run directory must
    be on a filesystem all nodes see); only rank 0 locks and writes the directory.
    """
    ctx = DistContext.from_env()
    run: RunDir | FollowerRun = RunDir.open(path, tensorboard=ctx.is_main)
    if not ctx.is_main:
        run = FollowerRun(run.path, run.info, reader=run)
    try:
        check_world_size(run, ctx)
        ctx = _join(train_config_from_dict(run.config))
        run.acquire_lock()
        return _resume(run, ctx)
    except BaseException:
        run.close()
        raise


def _resume(run: RunDir | FollowerRun, ctx: DistContext | None = None) -> Trainer:
    config = train_config_from_dict(run.config)
    if config.agent != "reinforce":
        raise ValueError(f"run '{run.path}' was trained with agent={config.agent}; only REINFORCE runs can be resumed.")
    recorded = (run.info.get("data") or {}).get("sha256")
    if recorded and Path(config.data.path).is_file() and file_sha256(config.data.path) != recorded:
        raise ValueError(
            f"data file '{config.data.path}' changed since run '{run.path}' started (sha256 differs); "
            f"fix: restore the original file or start a new run."
        )
    tok_path = run.path / "tokenizer.json"
    if not tok_path.is_file():
        raise ValueError(f"run '{run.path}' has no tokenizer.json; fix: resume a run made by `seqgan-env train`.")
    trainer = Trainer(config, run, load_run_data(config, load_tokenizer(tok_path)), dist=ctx)
    if run.latest_checkpoint() is None:
        raise ValueError(f"run '{run.path}' has no checkpoint to resume from; fix: start a new run with `seqgan-env train`.")
    trainer.load_checkpoint()
    run.truncate_metrics_after(trainer.step)
    return trainer


def load_generator_for_sampling(run_path: str | Path):
    """(generator, tokenizer, config) of a finished or interrupted run, for `seqgan-env sample`."""
    from seqgan_env.runs.rundir import load_generator_export

    run = RunDir.open(run_path, tensorboard=False)
    config = train_config_from_dict(run.config)
    if config.agent != "reinforce":
        run.close()
        raise ValueError(
            f"run '{run.path}' was trained with agent={config.agent}, whose policy is not a Llama generator; "
            f"its samples are in {run.path / 'samples'}."
        )
    export = run.path / "generator"
    tok_path = run.path / "tokenizer.json"
    if not tok_path.is_file():
        raise ValueError(f"run '{run.path}' has no tokenizer.json; fix: pass a run directory made by `seqgan-env train`.")
    tokenizer = load_tokenizer(tok_path)
    if (export / "config.json").is_file():
        generator = load_generator_export(export)  # loud on a corrupt file, no progress bar
        if generator.config.vocab_size != tokenizer.vocab_size:
            raise ValueError(
                f"'{tok_path}' has vocab_size {tokenizer.vocab_size} but the generator in '{export}' has "
                f"{generator.config.vocab_size}; fix: restore the run's own tokenizer.json."
            )
    else:
        ckpt = run.latest_checkpoint()
        if ckpt is None:
            raise ValueError(f"run '{run.path}' has neither an exported generator nor a checkpoint; fix: train it first.")
        tensors, _ = run.load_checkpoint(ckpt)
        generator = build_generator(config.generator, tokenizer.vocab_size)
        sd = {k[len("generator."):]: v for k, v in tensors["agent"].items() if k.startswith("generator.")}
        try:
            generator.load_state_dict(sd)
        except RuntimeError as exc:
            raise ValueError(f"checkpoint {ckpt} does not match the run's generator config: {exc}") from None
    run.close()
    return generator, tokenizer, config


__all__ = ["DataConfig", "ScheduleConfig", "TrainConfig", "Trainer", "new_run", "resume_run"]
