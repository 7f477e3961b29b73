"""``TrainConfig``: everything `seqgan-env train` needs, one dataclass per section.

Every field is a CLI option (``--section.field``); the sections' own dataclasses
(``ReinforceConfig``, ``RewardConfig``, ``DiscriminatorConfig``...) are the single source
of their defaults, and where ``TrainConfig`` chooses other values it says why.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Literal

from seqgan_agents.ddo import DDOConfig
from seqgan_agents.ppo import PPOConfig
from seqgan_agents.reinforce import ReinforceConfig
from seqgan_env.data.subword import TokenizerConfig
from seqgan_env.data.text import DEFAULT_DATA_PATH, NAMED_DATA
from seqgan_env.eval.oracle import SEQ_LEN as ORACLE_LENGTH
from seqgan_env.models.discriminator import DiscriminatorConfig
from seqgan_env.models.networks import GeneratorConfig, ModelConfig
from seqgan_env.rewards.callbacks import DiscriminatorUpdateConfig
from seqgan_env.rewards.mc_rollout import MCRolloutConfig
from seqgan_env.rewards.sources import split_kl
from seqgan_env.rewards.wrappers import RewardConfig
from seqgan_env.runs.alarms import AlarmConfig
from seqgan_env.runs.configio import config_from_dict
from seqgan_env.utils.validation import check_int, check_ints, check_number

Agent = Literal["reinforce", "ppo", "maskable_ppo", "ddo"]
RewardScorer = Literal["discriminator", "mc_rollout"]
AGENTS: tuple[str, ...] = typing.get_args(Agent)
PPO_AGENTS = ("ppo", "maskable_ppo")  # SB3's trainers (agents/ppo.py); the others run in agents/trainer.py
REWARD_SCORERS: tuple[str, ...] = typing.get_args(RewardScorer)


ORACLE = "oracle"
MAX_SEED = 2**32 - 1  # the seed goes to numpy, torch and Python's random: all take it


@dataclass
class DataConfig:
    """Real data: a text file with one sequence per line (default: census first names), ``coco`` or ``oracle``.

    ``path="coco"``: the MS COCO captions of the text-GAN literature (``data/coco_captions_train.txt``;
    the path is recorded resolved) with ``test_path`` the held-out test captions.
    ``test_path``: a held-out test file (one sequence per line, never trained on) that `seqgan-env
    eval` scores against (BLEU references, NLL-test); None: the validation split.
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
    test_path: str | None = None  # held-out test file scored by `seqgan-env eval` (BLEU references, NLL-test)
    skip_long: bool = False  # with max_length set: leave out longer lines (counted in config.json) instead of refusing

    @property
    def is_oracle(self) -> bool:
        return self.path == ORACLE

    @property
    def eos(self) -> bool:
        """Whether sequences may end early with EOS."""
        return (not self.is_oracle) if self.allow_eos is None else self.allow_eos

    def __post_init__(self) -> None:
        if self.path in NAMED_DATA:  # a named data set: its files, resolved as the default census path is
            train, test = NAMED_DATA[self.path]
            self.path = str(train)
            self.test_path = str(test) if self.test_path is None else self.test_path
        if self.test_path is not None and self.is_oracle:
            raise ValueError("data.test_path does not fit data.path=oracle (its held-out split is sampled from the "
                             "oracle); fix: drop data.test_path.")
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
        for name in ("skip_blank", "skip_long", "allow_eos"):
            value = getattr(self, name)
            if not isinstance(value, bool) and not (name == "allow_eos" and value is None):
                choices = "true, false or null (text files: true, the oracle: false)" if name == "allow_eos" \
                    else "true or false"
                raise ValueError(f"data.{name}={value!r} is invalid: it must be {choices}.")
        if self.skip_long and self.max_length is None:
            raise ValueError("data.skip_long=true needs data.max_length (the length beyond which lines are left out); "
                             "fix: --set data.max_length=32, or drop skip_long.")
        if self.is_oracle and self.allow_eos:
            raise ValueError("data.allow_eos=true does not fit data.path=oracle (fixed-length sequences, no EOS).")


@dataclass
class ScheduleConfig:
    """How long to train and how often to evaluate, sample and checkpoint.

    MLE pretraining follows the data: the generator's NLL on the validation split is scored every
    ``pretrain_eval_every`` MLE steps, pretraining stops after ``pretrain_patience`` scores without
    improvement (or at ``pretrain_steps``, the cap) and the best-scoring weights are restored. With
    ``pretrain_lr_drop``, the first such plateau restores the best weights, multiplies the learning
    rate by that factor and goes on; the second one stops (``seqgan_agents.mle.pretrain_mle``; the
    rate is put back to ``reinforce.lr`` after pretraining). Without a validation split, or with
    ``pretrain_patience`` None, it trains all ``pretrain_steps``.
    ``d_pretrain_steps`` None: a quarter of the MLE steps trained (at least 1 when there were any;
    ``d_pretrain_for`` gives the number), so that D pretraining scales with the run however its
    length is set, and a short test run stays short.
    """

    # Most of the quality comes from maximum likelihood: MLE until the validation NLL stops improving, then a
    # short adversarial phase with the MLE term at full weight (reinforce.mle_coef below), keeping the default run
    # near two minutes (benchmarks/README.md, "The default schedule").
    updates: int = 100  # adversarial generator updates (after pretraining)
    pretrain_steps: int = 4000  # MLE steps of the generator at most (the cap; early stopping on validation NLL ends it sooner)
    pretrain_eval_every: int = 100  # MLE steps between scores of the generator's validation NLL (early stopping)
    pretrain_patience: int | None = 3  # validation scores without improvement before MLE pretraining stops (the best weights restored); None: train all pretrain_steps
    pretrain_lr_drop: float | None = 0.1  # lr factor at the first validation plateau (best weights restored, then on to the next plateau); None or 1: stop at the first
    d_pretrain_steps: int | None = None  # D steps before the adversarial phase; None: a quarter of the MLE steps trained
    eval_every: int = 100  # updates between evaluations (samples scored against the held-out split)
    eval_samples: int = 1000  # samples drawn per evaluation
    checkpoint_every: int = 100  # updates between checkpoints
    max_nonfinite: int = 5  # consecutive skipped updates (NaN/inf loss or gradient) before the run stops

    def __post_init__(self) -> None:
        check_ints(self, ("updates", "eval_every", "eval_samples", "checkpoint_every", "max_nonfinite",
                          "pretrain_eval_every"), 1, "schedule.")
        check_ints(self, ("pretrain_steps",), 0, "schedule.")
        if self.pretrain_patience is not None:
            check_int("schedule.pretrain_patience", self.pretrain_patience, 1,
                      "None trains all schedule.pretrain_steps; e.g. 3")
        if self.pretrain_lr_drop is not None:
            check_number("schedule.pretrain_lr_drop", self.pretrain_lr_drop, 0, 1, low_open=True,
                         fix="the learning-rate factor at the first plateau, e.g. 0.1; null or 1: no drop")
        if self.d_pretrain_steps is not None:
            check_ints(self, ("d_pretrain_steps",), 0, "schedule.")

    def d_pretrain_for(self, mle_steps: int) -> int:
        """D pretraining steps after ``mle_steps`` MLE steps: ``d_pretrain_steps``, or (None) a quarter, at least 1."""
        if self.d_pretrain_steps is not None:
            return self.d_pretrain_steps
        return max(1, mle_steps // 4) if mle_steps else 0

    @property
    def d_pretrain(self) -> int:
        """D pretraining steps when all ``pretrain_steps`` are trained (``d_pretrain_for(pretrain_steps)``)."""
        return self.d_pretrain_for(self.pretrain_steps)


@dataclass
class TrainConfig:
    """Everything `seqgan-env train` needs; every field is a CLI option (``--section.field``)."""

    name: str = "seqgan"  # the run directory's name: <out_dir>/<time>-<name>
    out_dir: str = "runs"  # where run directories are made
    seed: int = 0  # seed of the data split, the models' initialisation and sampling
    agent: Agent = "reinforce"  # the generator's trainer: reinforce, ddo (DDO: no RL, no separate D), or SB3's ppo / maskable_ppo
    note: str = ""  # free text shown by `seqgan-env runs list` and `runs diff`
    data: DataConfig = field(default_factory=DataConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    # Three fields differ from ReinforceConfig's defaults on purpose: batch 128 and lr 2e-3 keep the default
    # census-names run near a minute on a 2-core CPU (ReinforceConfig's 256 / 1e-3 are the agent's own defaults;
    # the lr is also MLE pretraining's); mle_coef=1.0 holds the generator at the data during the adversarial
    # phase (0.5 was worse than MLE alone on held-out names; benchmarks/README.md, "The default schedule").
    reinforce: ReinforceConfig = field(default_factory=lambda: ReinforceConfig(batch_size=128, lr=2e-3, mle_coef=1.0))
    # The env's reward defaults (RewardConfig, the same as SeqGAN-v1's); D phases run on the trainer's clock,
    # d_updates.every generator updates, so the env's own episode-count clock (update_every) is off here.
    reward: RewardConfig = field(default_factory=lambda: RewardConfig(update_every=None))
    # discriminator: D scores each prefix directly (one token per step with its KV cache);
    # mc_rollout: SeqGAN's Q, D's mean score of mc_rollout.num_rollouts completions of each prefix.
    reward_scorer: RewardScorer = "discriminator"  # D on each prefix (discriminator), or SeqGAN's rollouts (mc_rollout)
    mc_rollout: MCRolloutConfig = field(default_factory=MCRolloutConfig)  # K, rate, temperature of reward_scorer=mc_rollout
    d_updates: DiscriminatorUpdateConfig = field(default_factory=DiscriminatorUpdateConfig)
    # The default tiny Llama (hidden 32, 2 layers), as the discriminator: the same sample quality as hidden 64
    # on the census names (README) in two thirds of the training time.
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    discriminator_model: ModelConfig = field(default_factory=ModelConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    ppo: PPOConfig = field(default_factory=PPOConfig)
    ddo: DDOConfig = field(default_factory=DDOConfig)  # agent=ddo: the fine-tuning after MLE pretraining (schedule.updates DDO updates)
    alarms: AlarmConfig = field(default_factory=AlarmConfig)

    def __post_init__(self) -> None:
        check_int("seed", self.seed, 0, maximum=MAX_SEED)
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
        self._check_sources()
        if self.agent == "ddo" and self.reinforce.kl_coef > 0:
            raise ValueError(f"reinforce.kl_coef={self.reinforce.kl_coef:g} is the KL term of agent=reinforce; agent=ddo "
                             f"has none (its reference is the implicit discriminator's); fix: drop reinforce.kl_coef.")
        if self.reward.update_every is not None:
            raise ValueError(
                f"reward.update_every={self.reward.update_every} must be None in the trainer: the "
                f"discriminator schedule is d_updates.every (generator updates between D updates)."
            )
        self._check_tokenizer_and_pretrained()
        for name in ("generator", "discriminator_model"):
            cfg = getattr(self, name)
            if (self.generator.pretrained if name == "generator" else self.discriminator.pretrained) is not None:
                continue  # a pretrained model brings its own positions
            if self.data.max_length is not None and cfg.max_position_embeddings < self.data.max_length + 1:
                raise ValueError(
                    f"{name}.max_position_embeddings={cfg.max_position_embeddings} is smaller than "
                    f"data.max_length + 1 = {self.data.max_length + 1}: raise it."
                )


    def _check_sources(self) -> None:
        """reward.sources in the trainer: the env pays all but ``kl``, whose weight is reinforce.kl_coef.

        ``kl=<w>`` sets reinforce.kl_coef when that is 0 (so config.json records both, agreeing);
        two different non-zero values are refused.
        """
        env_sources, kl = split_kl(self.reward.sources)
        if not env_sources:
            raise ValueError(f"reward.sources={self.reward.sources!r} has no source the env pays (only kl); fix: add "
                             f"the discriminator or a callable, e.g. 'discriminator=1.0,kl={kl:g}'.")
        if kl is None:
            return
        if self.agent != "reinforce":
            raise ValueError(f"reward.sources names kl, the KL term of agent=reinforce; agent={self.agent} has none. "
                             f"Fix: drop kl from reward.sources.")
        if kl < 0:
            raise ValueError(f"reward.sources kl={kl:g} is invalid: the KL weight is reinforce.kl_coef, a number >= 0; "
                             f"fix: e.g. kl=0.1.")
        if self.reinforce.kl_coef == 0:
            self.reinforce = dataclasses.replace(self.reinforce, kl_coef=kl)
        elif self.reinforce.kl_coef != kl:
            raise ValueError(f"reward.sources kl={kl:g} and reinforce.kl_coef={self.reinforce.kl_coef:g} disagree: both "
                             f"are the KL term's weight; fix: give one of them, or the same value to both.")

    def _check_tokenizer_and_pretrained(self) -> None:
        tok, pre = self.tokenizer, self.generator.pretrained
        if self.data.is_oracle and tok.kind not in ("auto", "char"):
            raise ValueError(f"tokenizer.kind={tok.kind} does not fit data.path=oracle (its tokens are integers with "
                             f"their own tokenizer); fix: drop --tokenizer.")
        if self.data.is_oracle and (pre or self.discriminator.pretrained):
            raise ValueError("generator.pretrained / discriminator.pretrained do not fit data.path=oracle (5,000 "
                             "integer tokens); fix: drop them.")
        sb3_net = self.agent in PPO_AGENTS and self.ppo.policy == "mlp"  # a policy that is not the generator
        if self.generator.family != "llama" and sb3_net:
            raise ValueError(f"generator.family={self.generator.family} needs agent=reinforce, not agent={self.agent} "
                             f"(ppo.policy=mlp is its own network); fix: drop --generator.family or --set ppo.policy=generator.")
        if (pre or self.discriminator.pretrained) and sb3_net:
            raise ValueError(f"generator.pretrained / discriminator.pretrained need agent=reinforce or "
                             f"ppo.policy=generator, not agent={self.agent} with ppo.policy=mlp (not a causal LM); fix: "
                             f"--set ppo.policy=generator.")
        if pre and tok.kind not in ("auto", "file") or pre and tok.kind == "file" and tok.path != pre:
            raise ValueError(
                f"generator.pretrained={pre!r} writes with its own tokenizer, but tokenizer.kind={tok.kind}"
                f"{f' (path {tok.path!r})' if tok.path else ''} asks for another; fix: drop --tokenizer (kind auto "
                f"takes the generator's), or --tokenizer {pre}."
            )


#: Defaults chosen for a named data set (``--data coco``), applied under every option the user gives
#: (``--config``, ``--set``, flags): they choose the tokenizer, lengths and schedule that fit the data
#: and the 2-core CPU budget the README measures. Each value says why.
DATA_PRESETS: dict[str, tuple[str, ...]] = {
    "coco": (
        "tokenizer.kind=bpe",  # 10,000 captions of ~8,800 words: byte-level BPE, no unknown word at test time
        "tokenizer.vocab_size=2000",  # 13 tokens per caption on average (52 at most): few decoding steps
        # Episodes of 32 tokens: every update's forward is as wide as max_length, and only 17 of the 10,000
        # training captions are longer (left out, counted in config.json's data_stats); test captions are all scored.
        "data.max_length=32",
        "data.skip_long=true",
        # A wider generator than for names: it costs MLE steps next to nothing (the 2,000-way softmax dominates)
        "generator.hidden_size=64",
        "generator.intermediate_size=128",
        # Most of the quality comes from maximum likelihood, and 9,000 captions overfit fast: validation NLL is best
        # after ~700 MLE steps (3.33 nats/token; 3.59 after 1,500). 600 steps, then 200 updates that keep mixing
        # MLE in (mle_coef 0.5), land near that point (README, "Real text").
        "schedule.pretrain_steps=600",
        "schedule.d_pretrain_steps=100",
        "schedule.updates=200",
        "schedule.eval_every=100",
        "schedule.eval_samples=500",  # each evaluation samples 500 captions (and 500 more for D's health)
    ),
}


def preset_overrides(path: str, pretrained_generator: bool = False) -> tuple[str, ...]:
    """``DATA_PRESETS`` entry of a data path (its name, or its resolved training file); () for others.

    With a pretrained generator the preset's ``tokenizer.*`` and ``generator.*`` entries are left
    out: that model brings its own tokenizer and architecture.
    """
    for name, (train, _) in NAMED_DATA.items():
        if path in (name, str(train)):
            preset = DATA_PRESETS.get(name, ())
            if pretrained_generator:
                preset = tuple(p for p in preset if not p.startswith(("tokenizer.", "generator.")))
            return preset
    return ()


def without_named_test_path(config: TrainConfig) -> TrainConfig:
    """``config`` without a named data set's test file when ``data.path`` is no longer that set's training file.

    ``--data coco --data.path X``: ``--data coco`` filled ``data.test_path`` with the COCO test
    captions, then the user moved ``data.path`` away from COCO; its test file does not belong to
    X. The CLI calls this unless the user gave ``data.test_path`` too (then it is theirs).
    """
    for train, test in NAMED_DATA.values():
        if config.data.test_path == str(test) and config.data.path != str(train):
            return dataclasses.replace(config, data=dataclasses.replace(config.data, test_path=None))
    return config


def train_config_from_dict(data: dict) -> TrainConfig:
    return config_from_dict(TrainConfig, data)


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


__all__ = ["AGENTS", "PPO_AGENTS", "Agent", "DATA_PRESETS", "REWARD_SCORERS", "RewardScorer", "DataConfig", "ScheduleConfig", "TrainConfig", "preset_overrides", "train_config_from_dict",
           "with_data_length"]
