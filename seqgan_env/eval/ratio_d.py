"""A discriminator trained as a density-ratio estimator against a frozen generator.

The tilted generator (:mod:`seqgan_env.models.tilted`) equals the data distribution when D's
per-prefix logit ``s(x<=t)`` is the log ratio of the prefix marginals ``p_data(x<=t) / p_G(x<=t)``.
A discriminator co-trained with a moving generator and label-smoothed is not that ratio; this
module trains one that aims at it:

* a FRESH discriminator against a FROZEN generator: its samples are drawn once into a pool
  (``pool_size`` rows) and D sees real training rows against pool rows, ``fakes_per_real``
  pool rows per real row (balanced noise-contrastive estimation: each class's loss is averaged
  on its own, so the optimum logit is the log ratio whatever the counts);
* hard labels 1 / 0 and no label smoothing (the optimum of smoothed targets is not the ratio);
* the loss on every prefix of real and generated rows (the tilt needs the prefix ratio);
* evaluated every ``eval_every`` steps on VALIDATION rows by the exact tilted NLL over a grid of
  tilt strengths alpha (choosing alpha there is temperature scaling of D's logit, i.e. its
  calibration), early-stopped on the best of them with ``patience``, the best weights kept;
  the residual-EBM gain ``d_gain_nats`` (:mod:`seqgan_env.eval.density_ratio`) of the validation
  rows against fresh generator samples (not in the pool) is logged beside it.

The generator is never updated. The caller supplies its samples through ``sample_fn`` so the
env's token rule (min_length, EOS) applies, as everywhere else.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from seqgan_env.data.tokenizer import PAD_ID
from seqgan_env.eval.density_ratio import d_gain_nats
from seqgan_env.models.discriminator import Discriminator, DiscriminatorConfig
from seqgan_env.models.networks import ModelConfig
from seqgan_env.models.tilted import tilted_nll_by_alpha
from seqgan_env.utils.validation import check_int, check_number

__all__ = ["ALPHA_GRID", "RATIO_DIR", "RatioDConfig", "RatioDResult", "choose_report_split", "fit_ratio_d", "load_ratio_d",
           "save_ratio_d"]

#: The default tilt strengths scored on validation at every evaluation (0: the generator itself).
ALPHA_GRID = (0.0, 0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875, 1.0, 1.25, 1.5)


@dataclass
class RatioDConfig:
    """How the density-ratio discriminator is trained and chosen.

    Fields: steps (D updates at most); batch_size (real rows per update); fakes_per_real (pool rows
    per real row in an update); pool_size (generator samples drawn once for training); eval_every
    (updates between validation evaluations); patience (evaluations without a better validation
    NLL before stopping; 0: never stop early); alphas (tilt strengths scored on validation, 0
    included so that a useless D chooses the generator); gain_samples (fresh generator samples for
    ``d_gain_nats``); lr, weight_decay (AdamW); dropout (D's attention dropout); hidden_size,
    num_layers (D's capacity; intermediate_size is twice hidden_size); seed (D's initialisation).
    The defaults are the recipe chosen on the census names' validation split (benchmarks/README.md,
    "The discriminator as a density ratio").
    """

    steps: int = 3000
    batch_size: int = 256
    fakes_per_real: int = 2
    pool_size: int = 30_000
    eval_every: int = 250
    patience: int = 2
    alphas: tuple[float, ...] = ALPHA_GRID
    gain_samples: int = 2000
    lr: float = 1e-3
    weight_decay: float = 0.01
    dropout: float = 0.1
    hidden_size: int = 32
    num_layers: int = 2
    seed: int = 0

    def __post_init__(self) -> None:
        check_int("steps", self.steps, 1, "the most D updates, e.g. 3000")
        check_int("batch_size", self.batch_size, 1, "real rows per update, e.g. 256")
        check_int("fakes_per_real", self.fakes_per_real, 1, "generator rows per real row in an update, e.g. 1")
        check_int("pool_size", self.pool_size, 1, "generator samples drawn once, e.g. 30000")
        check_int("eval_every", self.eval_every, 1, "D updates between validation evaluations, e.g. 250")
        check_int("patience", self.patience, 0, "evaluations without improvement before stopping; 0: never")
        check_int("gain_samples", self.gain_samples, 2, "fresh generator samples for d_gain_nats, e.g. 2000")
        check_int("hidden_size", self.hidden_size, 4, "D's width, a multiple of 4 (4 heads, even head size), e.g. 32")
        check_int("num_layers", self.num_layers, 1, "D's depth, e.g. 2")
        check_int("seed", self.seed, 0, "any int >= 0")
        if self.hidden_size % 8 != 0:
            raise ValueError(f"hidden_size={self.hidden_size} is invalid: D has 4 heads of even size, so it must be "
                             f"a multiple of 8; e.g. {8 * max(1, round(self.hidden_size / 8))}.")
        self.lr = check_number("lr", self.lr, 0, fix="e.g. 1e-3", low_open=True)
        self.weight_decay = check_number("weight_decay", self.weight_decay, 0, fix="0.0 disables it")
        self.dropout = check_number("dropout", self.dropout, 0, 1, "0.0 disables it", high_open=True)
        try:
            alphas = tuple(float(a) for a in self.alphas)
        except (TypeError, ValueError):
            alphas = ()
        if not alphas or len(set(alphas)) != len(alphas) or not all(math.isfinite(a) and a >= 0 for a in alphas) \
                or 0.0 not in alphas:
            raise ValueError(f"alphas={self.alphas!r} is invalid: give distinct finite tilt strengths >= 0 including "
                             f"0 (the generator itself, so a useless D is never chosen over it), e.g. {ALPHA_GRID}.")
        self.alphas = alphas

    def discriminator(self, vocab_size: int, max_length: int, device: str | torch.device = "cpu") -> Discriminator:
        """A fresh discriminator of this capacity: hard labels, per-prefix BCE loss."""
        model = ModelConfig(hidden_size=self.hidden_size, intermediate_size=2 * self.hidden_size, num_heads=4,
                            num_layers=self.num_layers, attention_dropout=self.dropout,
                            max_position_embeddings=max(64, max_length + 1))
        cfg = DiscriminatorConfig(loss="bce", real_label=1.0, fake_label=0.0, lr=self.lr,
                                  weight_decay=self.weight_decay, prefix_loss=True, sequence_weight=0.0)
        return Discriminator(vocab_size, model, cfg, device=device, seed=self.seed)


@dataclass
class RatioDResult:
    """What :func:`fit_ratio_d` returns.

    discriminator: the best weights (by validation tilted NLL). alpha: the tilt strength chosen on
    validation. best_step: the D update of those weights (0: D never beat the generator, alpha 0).
    steps: D updates run. valid_nll: the tilted validation NLL at (best_step, alpha) in nats per token;
    valid_nll_generator: the generator's (alpha 0). history: one dict per evaluation (step, the
    validation NLL by alpha, the best alpha, d_gain_nats per sequence / token, its SE, the ESS).
    seconds: wall time.
    """

    discriminator: Discriminator
    alpha: float
    best_step: int
    steps: int
    valid_nll: float
    valid_nll_generator: float
    history: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        """The JSON-ready numbers (no weights)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "discriminator"} | {
            "d_steps": self.steps}


def _check_rows(name: str, rows: Any, vocab_size: int) -> torch.Tensor:
    x = torch.as_tensor(rows)
    if x.ndim != 2 or x.shape[0] == 0 or x.is_floating_point() or x.is_complex():
        raise ValueError(f"{name} must be a non-empty (N, T) tensor of token ids, got shape {tuple(x.shape)} and dtype "
                         f"{x.dtype}; pass the run's dataset rows (data.train / data.valid).")
    if int(x.min()) < 0 or int(x.max()) >= vocab_size:
        raise ValueError(f"{name} holds token ids outside [0, {vocab_size}): pass rows of the generator's tokenizer.")
    return x.long()


def _evaluate(generator: torch.nn.Module, disc: Discriminator, valid: torch.Tensor, gain_fakes: torch.Tensor,
              alphas: tuple[float, ...], step: int) -> dict[str, Any]:
    nll = tilted_nll_by_alpha(generator, disc, valid, alphas)  # {alpha: nats per token}
    best_alpha = min(nll, key=lambda a: (nll[a], a))
    lengths = (valid != PAD_ID).sum(1)  # (N,)
    gain = d_gain_nats(disc.sequence_logits(valid).cpu(), disc.sequence_logits(gain_fakes).cpu(), lengths)
    return {"step": step, "valid_nll": {str(a): v for a, v in nll.items()}, "alpha": best_alpha,
            "best_valid_nll": nll[best_alpha], "d_gain_nats": gain["gain_nats"],
            "d_gain_nats_per_token": gain["gain_nats_per_token"], "d_gain_se": gain["gain_se"], "d_gain_ess": gain["ess"]}


def fit_ratio_d(generator: torch.nn.Module, sample_fn: Callable[[int, int], torch.Tensor], train_rows: Any,
                valid_rows: Any, config: RatioDConfig | None = None, device: str | torch.device = "cpu",
                log: Callable[[str], None] | None = None) -> RatioDResult:
    """Train a fresh density-ratio discriminator against the frozen ``generator``; choose alpha on validation.

    Args:
        generator: the frozen causal LM (``generator(input_ids=...).logits``, ``config.vocab_size``); not updated.
        sample_fn: ``sample_fn(n, seed) -> (n, L)`` long generator samples under the env's token rule
            (e.g. ``Trainer.sample_tokens(n, seed=seed)``); called for the pool and the gain's fresh samples.
        train_rows: (N, L) real training rows (symbols, EOS, PAD; no BOS).
        valid_rows: (M, L) real validation rows: early stopping and alpha are chosen on them (never on test rows).
        config: the recipe (None: ``RatioDConfig()``).
        device: where D lives.
        log: one line per evaluation (None: silent).

    Returns:
        A :class:`RatioDResult` with the best discriminator, its alpha and the evaluation history.

    Raises:
        ValueError: rows that are not non-empty (N, L) token ids of the generator's vocabulary, rows of another
            length than the samples, or a ``generator`` without ``config.vocab_size``.
    """
    cfg = config if config is not None else RatioDConfig()
    vocab = getattr(getattr(generator, "config", None), "vocab_size", None)
    if not isinstance(vocab, int):
        raise ValueError(f"generator={type(generator).__name__} has no config.vocab_size: pass the run's causal LM.")
    real = _check_rows("train_rows", train_rows, vocab)  # (N, L)
    valid = _check_rows("valid_rows", valid_rows, vocab)  # (M, L)
    if real.shape[1] != valid.shape[1]:
        raise ValueError(f"train_rows have length {real.shape[1]} but valid_rows {valid.shape[1]}: pass both splits "
                         f"of one dataset.")
    t0 = time.perf_counter()
    seed = cfg.seed
    pool = torch.cat([sample_fn(min(4096, cfg.pool_size - i), seed * 1_000 + 17 + k).cpu()
                      for k, i in enumerate(range(0, cfg.pool_size, 4096))])  # (P, L)
    gain_fakes = sample_fn(cfg.gain_samples, seed * 1_000 + 999).cpu()  # (G, L) never trained on
    if pool.shape[1] != real.shape[1]:
        raise ValueError(f"sample_fn returned rows of length {pool.shape[1]}, the real rows have {real.shape[1]}: "
                         f"sample with the dataset's max_length.")
    disc = cfg.discriminator(vocab, real.shape[1], device)
    rng = torch.Generator().manual_seed(seed + 5)
    was_training = generator.training
    generator.eval()
    history: list[dict[str, Any]] = []
    first = _evaluate(generator, disc, valid, gain_fakes, cfg.alphas, 0)
    gen_nll = first["valid_nll"]["0.0"]
    best = {"nll": gen_nll, "alpha": 0.0, "step": 0, "state": disc.state_dict()}
    since_best, step = 0, 0
    try:
        while step < cfg.steps:
            for _ in range(min(cfg.eval_every, cfg.steps - step)):
                r = real[torch.randint(len(real), (cfg.batch_size,), generator=rng)]  # (B, L)
                f = pool[torch.randint(len(pool), (cfg.batch_size * cfg.fakes_per_real,), generator=rng)]  # (kB, L)
                disc.update(r, f)
                step += 1
            ev = _evaluate(generator, disc, valid, gain_fakes, cfg.alphas, step)
            history.append(ev)
            if log is not None:
                log(f"    ratio D step {step}: valid tilted NLL {ev['best_valid_nll']:.4f} at alpha {ev['alpha']:g} "
                    f"(generator {gen_nll:.4f}), d_gain {ev['d_gain_nats']:+.3f} nats/seq")
            if ev["best_valid_nll"] < best["nll"]:
                best = {"nll": ev["best_valid_nll"], "alpha": ev["alpha"], "step": step, "state": disc.state_dict()}
                since_best = 0
            else:
                since_best += 1
                if cfg.patience and since_best >= cfg.patience:
                    break
    finally:
        generator.train(was_training)
    disc.load_state_dict(best["state"], source="the best validation evaluation")
    return RatioDResult(discriminator=disc, alpha=float(best["alpha"]), best_step=int(best["step"]), steps=step,
                        valid_nll=float(best["nll"]), valid_nll_generator=float(gen_nll), history=history,
                        seconds=time.perf_counter() - t0)


#: Subdirectory of a run that holds its density-ratio discriminator (``seqgan-env fit-ratio``).
RATIO_DIR = "ratio_d"
RATIO_JSON = "ratio_d.json"


def choose_report_split(valid_rows: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """(choose, report): the validation rows at even positions (D's stopping step and alpha are chosen on them)
    and at odd positions (held out from that choice: where ``seqgan-env eval --d-tilt`` reports)."""
    x = torch.as_tensor(valid_rows)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"valid_rows must be (N, L) with N >= 2 (half to choose alpha, half to report), got shape "
                         f"{tuple(x.shape)}; fix: raise data.valid_fraction.")
    return x[0::2], x[1::2]


def save_ratio_d(result: RatioDResult, config: RatioDConfig, directory: Any) -> None:
    """Write ``result``'s discriminator (safetensors + JSON) and ``ratio_d.json`` (alpha, steps, history, recipe)."""
    import os

    from seqgan_env.utils.atomic import atomic_write_json

    os.makedirs(directory, exist_ok=True)
    result.discriminator.save(directory)
    atomic_write_json(os.path.join(directory, RATIO_JSON),
                      {"alpha": result.alpha, "config": dataclasses.asdict(config), **result.summary(),
                       "chosen_on": "the run's validation rows at even positions"})


def load_ratio_d(directory: Any, device: str | torch.device = "cpu") -> tuple[Discriminator, dict[str, Any]]:
    """The discriminator and the ``ratio_d.json`` numbers written by :func:`save_ratio_d`.

    Raises:
        ValueError: no such directory or unreadable files (the message says how to make them).
    """
    import os

    from seqgan_env.utils.codec import read_json

    fix = "fix: fit one with seqgan-env fit-ratio RUN"
    if not os.path.isfile(os.path.join(directory, RATIO_JSON)):
        raise ValueError(f"{directory} holds no density-ratio discriminator ({RATIO_JSON} missing); {fix}.")
    meta = read_json(os.path.join(directory, RATIO_JSON), fix)
    alpha = meta.get("alpha")
    if not isinstance(alpha, (int, float)) or not math.isfinite(alpha):
        raise ValueError(f"{directory}/{RATIO_JSON} has alpha={alpha!r}, not a number; {fix}.")
    return Discriminator.load(directory, device=device), meta
