"""REINFORCE for the SeqGAN token-generation env, in one readable file.

The generator is a causal LM called like a transformers one (``generator(input_ids=...).logits``): a
``transformers`` model such as our tiny ``LlamaForCausalLM``, or SeqGAN's LSTM family
(``seqgan_env.models.lstm``, whose (h, c) state is its cache). One training iteration is:

1. ``collect(venv)``: reset the vector env and sample one episode per row with the
   model's KV cache (feed BOS, then only the token just sampled), stepping the env
   with the sampled tokens and recording tokens, rewards, masks and the exact
   sampling distribution's support (action masks, top-p keep masks).
2. ``update(rollout, real=None)``: discounted returns -> baseline -> (optional)
   normalisation -> advantages; one teacher-forced forward pass with grad recomputes
   the log-probabilities *of the distribution that was sampled from* (same action
   masks, temperature and nucleus); loss = policy-gradient loss - entropy bonus
   (+ ``mle_coef`` x MLE loss on real data); clip, AdamW step, scheduler step.

Shapes: B = rows (envs), T = max_length, V = vocab size, N = real sequences.
Token ids: PAD=0, BOS=1, EOS=2 (``seqgan_env.envs.spec``).

The pure functions (``discounted_returns``, ``apply_baseline``, ``normalize``,
``sampling_logits``) are tested with hand-computed values.
"""

from __future__ import annotations

import contextlib
import copy
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Literal

import torch
import torch.nn.functional as F

from seqgan_agents.distributed import SINGLE, DistContext, all_reduce_sum, any_flag
from seqgan_env.envs.spec import BOS_ID, EOS_ID, PAD_ID, EnvConfig
from seqgan_env.models.fastllama import make_step_decoder
from seqgan_env.models.fastllama_train import supports as supports_lean_forward
from seqgan_env.models.fastllama_train import teacher_forced_logits
from seqgan_env.models.sampling import sample_categorical
from seqgan_env.rewards.scoring import generation_cache
from seqgan_env.rewards.sources import INFO_PREFIX, KL
from seqgan_env.utils.codec import (
    flatten_optimizer_state,
    flatten_scheduler_state,
    load_optimizer_state,
    unflatten_scheduler_state,
)
from seqgan_env.utils.validation import check_int, check_number, is_number

BASELINES = ("none", "batch_mean", "ewma", "rloo", "maligan")
DEVICES = ("auto", "cpu", "cuda")


# ---------------------------------------------------------------------------------------
# Config
# ---------------------------------------------------------------------------------------
@dataclass
class ReinforceConfig:
    """All REINFORCE hyper-parameters; the single source of defaults.

    gamma: discount in [0, 1]. baseline: "none" | "batch_mean" | "ewma" (per-timestep
    running mean with decay ``ewma_decay`` in [0, 1)) | "rloo" (per-timestep leave-one-out
    mean over the batch) | "maligan" (MaliGAN's normalised importance weights of the
    episode returns; see :func:`apply_baseline`). normalize_advantages: zero mean
    unit std over the valid steps. entropy_coef >= 0: entropy bonus of the sampled
    distribution. temperature > 0 and top_p in (0, 1]: the sampling distribution (the
    gradient uses exactly this distribution). max_grad_norm > 0 or None (no clipping).
    lr > 0, betas, weight_decay >= 0: AdamW. onecycle_total_steps: None, or the number
    of updates of a OneCycleLR schedule (peak ``lr``, cycling AdamW's beta1).
    batch_size >= 1: number of rows (envs) a trainer should build per rollout.
    mle_coef >= 0: weight of the MLE loss on real data mixed into each update.
    kl_coef >= 0: weight of KL(policy || reference) per step, the exact KL over the
    vocabulary of the sampling distribution against the frozen reference generator set
    by :meth:`ReinforceAgent.set_reference` (the trainer sets the generator it starts the
    adversarial phase with). kl_target > 0 or None: adapt kl_coef after every update
    towards this mean KL (x (1 + clip(kl / kl_target - 1, -0.2, 0.2) * kl_horizon_rate),
    Ziegler et al. 2019's proportional controller); None keeps kl_coef fixed.
    device: "auto" (CUDA if available) | "cpu" | "cuda". bf16: bf16 autocast, CUDA only.
    """

    gamma: float = 1.0
    """Discount in [0, 1]."""
    baseline: Literal["none", "batch_mean", "ewma", "rloo", "maligan"] = "ewma"
    """none | batch_mean | ewma (per-timestep running mean) | rloo (leave-one-out mean) | maligan (normalised
    importance weights B softmax(R) - 1 of the episode returns; MaliGAN with reward.mode=final, reward.transform=logit)."""
    ewma_decay: float = 0.9
    """Decay of the ewma baseline, in [0, 1)."""
    normalize_advantages: bool = False
    """Whiten advantages: zero mean, unit std over the valid steps."""
    entropy_coef: float = 0.0
    """Weight of the entropy bonus of the sampling distribution (>= 0)."""
    temperature: float = 1.0
    """Sampling temperature (> 0); the gradient uses exactly this distribution."""
    top_p: float = 1.0
    """Nucleus sampling mass in (0, 1]."""
    max_grad_norm: float | None = 1.0
    """Gradient clipping (> 0); None: none."""
    lr: float = 1e-3
    """AdamW learning rate."""
    betas: tuple[float, float] = (0.9, 0.999)
    """AdamW betas, each in [0, 1)."""
    weight_decay: float = 0.0
    """AdamW weight decay (>= 0)."""
    onecycle_total_steps: int | None = None
    """Updates of a OneCycle lr schedule; None: constant lr."""
    batch_size: int = 256
    """Rows (envs) per rollout."""
    mle_coef: float = 0.0
    """Weight of the MLE loss on real rows mixed into each update (>= 0)."""
    kl_coef: float = 0.0
    """Weight of KL(policy || reference) per step (>= 0); the reference is the generator the adversarial phase starts from."""
    kl_target: float | None = None
    """Adapt kl_coef towards this mean KL per step (> 0); None: kl_coef fixed."""
    kl_horizon_rate: float = 0.1
    """Step size of the kl_target controller, in (0, 1]."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """auto (CUDA if available) | cpu | cuda."""
    bf16: bool = True
    """bf16 autocast (CUDA only)."""

    def __post_init__(self) -> None:
        check_number("gamma", self.gamma, 0, 1, "use 1.0 (undiscounted) or e.g. 0.99")
        if self.baseline not in BASELINES:
            raise ValueError(f"baseline={self.baseline!r} is invalid: it must be one of "
                             f"{list(BASELINES)}; use 'ewma' (the default) or 'batch_mean'.")
        check_number("ewma_decay", self.ewma_decay, 0, 1, "use e.g. 0.9", high_open=True)
        for name in ("normalize_advantages", "bf16"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name}={getattr(self, name)!r} is invalid: it must be True or False.")
        check_number("entropy_coef", self.entropy_coef, 0, fix="use 0.0 to disable the entropy bonus")
        check_number("temperature", self.temperature, 0, fix="use 1.0 to sample from the model's distribution",
                     low_open=True)
        check_number("top_p", self.top_p, 0, 1, "use 1.0 to disable nucleus sampling, or e.g. 0.9", low_open=True)
        if self.max_grad_norm is not None:
            check_number("max_grad_norm", self.max_grad_norm, 0, fix="None disables clipping; use e.g. 1.0",
                         low_open=True)
        check_number("lr", self.lr, 0, fix="use e.g. 1e-3", low_open=True)
        betas = tuple(self.betas) if isinstance(self.betas, (tuple, list)) else None
        if betas is None or len(betas) != 2 or not all(is_number(b) and 0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"betas={self.betas!r} is invalid: it must be two numbers in [0, 1); "
                             f"use (0.9, 0.999).")
        self.betas = (float(betas[0]), float(betas[1]))
        check_number("weight_decay", self.weight_decay, 0, fix="use 0.0 for none")
        if self.onecycle_total_steps is not None:
            check_int("onecycle_total_steps", self.onecycle_total_steps, 1,
                      "the number of updates, or None for a constant learning rate")
        check_int("batch_size", self.batch_size, 1, "use e.g. 256")
        check_number("mle_coef", self.mle_coef, 0, fix="use 0.0 for pure policy gradient")
        check_number("kl_coef", self.kl_coef, 0, fix="use 0.0 for no KL penalty, or e.g. 0.1")
        if self.kl_target is not None:
            check_number("kl_target", self.kl_target, 0, fix="None keeps kl_coef fixed; e.g. 0.05 nats per step",
                         low_open=True)
            if self.kl_coef == 0:
                raise ValueError("kl_target is set but kl_coef=0: the controller multiplies kl_coef, so it would "
                                 "stay 0; fix: start from e.g. --set reinforce.kl_coef=0.1.")
        check_number("kl_horizon_rate", self.kl_horizon_rate, 0, 1, "use e.g. 0.1", low_open=True)
        resolve_device(self.device)  # validates the name and CUDA availability


def resolve_device(name: str | torch.device) -> torch.device:
    """"auto" -> cuda if available else cpu; "cpu"; "cuda" (ValueError without a CUDA device)."""
    if isinstance(name, torch.device):
        name = name.type
    if name not in DEVICES:
        raise ValueError(f"device={name!r} is invalid: it must be one of {list(DEVICES)}; use 'auto'.")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' was requested but no CUDA device is available: "
                         "use --device cpu or --device auto.")
    return torch.device(name)


# ---------------------------------------------------------------------------------------
# Pure functions
# ---------------------------------------------------------------------------------------
def discounted_returns(rewards: torch.Tensor, mask: torch.Tensor, gamma: float) -> torch.Tensor:
    """G_t = r_t + gamma * G_{t+1} inside the episode, 0 where ``mask`` is False.

    rewards (B, T) float; mask (B, T) bool, True on the steps of each row's first
    episode (a prefix of the row). Returns (B, T) float.
    """
    m = mask.to(rewards.dtype)  # (B, T)
    out = torch.zeros_like(rewards)  # (B, T)
    g = torch.zeros_like(rewards[:, 0])  # (B,) G_{t+1}
    for t in range(rewards.shape[1] - 1, -1, -1):
        g = (rewards[:, t] + gamma * g) * m[:, t]  # (B,) zero outside the episode
        out[:, t] = g
    return out


def _masked_time_mean(
    x: torch.Tensor, mask: torch.Tensor, all_reduce: Callable[[torch.Tensor], torch.Tensor] | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-timestep mean of x (B, T) over masked rows -> mean (T,), count (T,) (mean 0 where count 0).

    ``all_reduce`` (a sum over ranks, or None for one process) makes it the mean over
    every rank's rows: sums and counts are reduced before dividing.
    """
    m = mask.to(x.dtype)  # (B, T)
    count = m.sum(0)  # (T,)
    if all_reduce is None:
        mean = (x * m).sum(0) / count.clamp(min=1)  # (T,)
        return mean, count
    sums = all_reduce(torch.stack([(x * m).sum(0), count]))  # (2, T) over all ranks
    return sums[0] / sums[1].clamp(min=1), sums[1]


def _maligan_advantages(
    returns: torch.Tensor, mask: torch.Tensor, all_reduce: Callable[[torch.Tensor], torch.Tensor] | None = None
) -> torch.Tensor:
    """(B, T) advantages B w_i - 1 on row i's masked steps, w = softmax over rows of R_i = returns[:, 0].

    Rows with no masked step take no part. Data-parallel: B and the softmax's normaliser
    are over every rank's rows (shifted by the global mean return, in float64, so the sum
    of exponentials is one all-reduce and cannot overflow for |R - mean| < 700).
    """
    live = mask.any(1)  # (B,)
    r = returns[:, 0].double()  # (B,) episode returns
    stats = torch.stack([(r * live).sum(), live.sum().double()])  # (2,) sum, count
    if all_reduce is not None:
        stats = all_reduce(stats)
    if float(stats[1]) == 0:
        return torch.zeros_like(returns)
    e = torch.where(live, torch.exp(r - stats[0] / stats[1]), torch.zeros_like(r))  # (B,)
    z = e.sum() if all_reduce is None else all_reduce(e.sum())  # () normaliser over all rows
    w = stats[1] * e / z - 1.0  # (B,) B w_i - 1
    return w.to(returns.dtype)[:, None] * mask.to(returns.dtype)  # (B, T)


def apply_baseline(
    returns: torch.Tensor,
    mask: torch.Tensor,
    kind: str,
    state: torch.Tensor | None = None,
    decay: float = 0.9,
    all_reduce: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Advantages = returns - baseline, 0 outside ``mask``; returns (advantages (B, T), new_state).

    kind "none": the returns themselves (state passes through).
    kind "batch_mean": minus the per-timestep mean of the returns over the masked rows.
    kind "ewma": minus a per-timestep running mean b_t, taken BEFORE this batch's
    update b_t <- decay * b_t + (1 - decay) * batch_mean_t (only timesteps with masked
    rows update). ``state`` is a (T,) tensor with NaN at never-seen timesteps (None =
    all unseen); an unseen timestep is initialised with the batch mean, so the first
    call gives the same advantages as "batch_mean".
    kind "rloo": minus the per-timestep mean of the *other* masked rows (leave-one-out,
    Kool et al. 2019), i.e. (R - mean) * n / (n - 1); 0 at timesteps with one row.
    kind "maligan": the episode return R_i (the return at t = 0) as a log importance
    weight: every step of row i gets B w_i - 1 with w = softmax(R) over the B rows
    (MaliGAN, Che et al. 2017: with final rewards log D/(1-D), w_i is D/(1-D) normalised
    over the batch; the -1 is the mean weight, a baseline). Both leave ``state`` as it is.
    ``all_reduce`` (sum over ranks, data-parallel training) takes the batch means over
    every rank's rows, so each rank gets the full-batch advantages of its own rows and
    the same new ``state``.
    """
    if kind not in BASELINES:
        raise ValueError(f"baseline kind {kind!r} is unknown: choose one of {list(BASELINES)}.")
    m = mask.to(returns.dtype)  # (B, T)
    if kind == "none":
        return returns * m, state
    if kind == "maligan":
        return _maligan_advantages(returns, mask, all_reduce), state
    mean, count = _masked_time_mean(returns, mask, all_reduce)  # (T,), (T,)
    if kind == "batch_mean":
        return (returns - mean) * m, state
    if kind == "rloo":
        scale = torch.where(count > 1, count / (count - 1).clamp(min=1), torch.zeros_like(count))  # (T,)
        return (returns - mean) * scale * m, state
    T = returns.shape[1]
    if state is None:
        state = torch.full((T,), float("nan"), dtype=returns.dtype, device=returns.device)
    if state.shape != (T,):
        raise ValueError(f"ewma baseline state has shape {tuple(state.shape)} but the returns have T={T} "
                         f"steps: use the same max_length as when the state was created, or reset it to None.")
    state = state.to(returns.device, returns.dtype)
    seen = ~torch.isnan(state)  # (T,)
    b = torch.where(seen, state, mean)  # (T,) baseline before the update
    adv = (returns - b) * m  # (B, T)
    updated = decay * b + (1.0 - decay) * mean  # (T,)
    new_state = torch.where(count > 0, updated, state)  # (T,) unseen+empty timesteps stay NaN
    return adv, new_state


def normalize(
    adv: torch.Tensor,
    mask: torch.Tensor,
    eps: float = 1e-8,
    all_reduce: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """Zero mean, unit (population) std over the masked entries; 0 outside the mask.

    ``all_reduce`` (sum over ranks): mean and std over every rank's masked entries.
    """
    if all_reduce is not None:
        m = mask.to(adv.dtype)  # (B, T)
        tot = all_reduce(torch.stack([(adv * m).sum(), m.sum()]))  # (2,) global sum, count
        if float(tot[1]) == 0:
            return torch.zeros_like(adv)
        mean = tot[0] / tot[1]
        var = all_reduce(((adv - mean) ** 2 * m).sum()) / tot[1]  # population variance
        return torch.where(mask, (adv - mean) / (var.sqrt() + eps), torch.zeros_like(adv))
    vals = adv[mask]  # (K,)
    if vals.numel() == 0:
        return torch.zeros_like(adv)
    mean = vals.mean()
    std = vals.std(unbiased=False)
    return torch.where(mask, (adv - mean) / (std + eps), torch.zeros_like(adv))


def top_p_keep_mask(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """(..., V) bool: the nucleus of softmax(logits), the smallest set of highest-probability
    tokens whose cumulative probability is >= top_p (always at least the top token)."""
    probs = torch.softmax(logits.float(), dim=-1)  # (..., V)
    sorted_p, idx = probs.sort(dim=-1, descending=True)  # (..., V)
    before = sorted_p.cumsum(dim=-1) - sorted_p  # (..., V) mass of the better tokens
    keep_sorted = before < top_p  # (..., V)
    keep_sorted[..., 0] = True
    return torch.zeros_like(keep_sorted).scatter(-1, idx, keep_sorted)  # (..., V)


def sampling_logits(
    logits: torch.Tensor,
    action_mask: torch.Tensor,
    temperature: float = 1.0,
    top_p: float = 1.0,
) -> torch.Tensor:
    """The logits of the distribution actually sampled from, (..., V) float32.

    ``logits / temperature`` with -inf outside ``action_mask`` and (when top_p < 1)
    outside the top-p nucleus of the masked, tempered distribution (the smallest set
    of highest-probability tokens whose cumulative probability >= top_p, at least the
    top token). The policy gradient uses ``log_softmax`` of exactly these processed
    logits, i.e. the log-probabilities of the distribution the tokens were sampled
    from, not those of the raw model.
    """
    x = logits.float() / temperature  # (..., V)
    x = x.masked_fill(~action_mask, float("-inf"))
    if top_p < 1.0:
        x = x.masked_fill(~top_p_keep_mask(x, top_p), float("-inf"))
    return x


def trim_padding(tokens: torch.Tensor) -> torch.Tensor:
    """(N, T) right-padded rows -> (N, T'): the columns up to the longest row's last non-PAD token.

    Teacher-forced causal logits at a position do not depend on later columns, and PAD targets
    carry no loss, so the MLE loss of the trimmed rows is the loss of the full ones at a fraction
    of the cost when most rows are short (captions: mean 13 of up to 52 BPE tokens).
    """
    width = int((tokens != PAD_ID).sum(1).max()) if tokens.numel() else 0
    return tokens[:, : max(width, 1)]


def _entropy(logits: torch.Tensor, logp: torch.Tensor | None = None) -> torch.Tensor:
    """Entropy of softmax(logits) (..., V) -> (...), with -inf logits contributing 0.

    ``logp``: ``log_softmax(logits)`` if the caller has it already (not computed twice).
    """
    if logp is None:
        logp = torch.log_softmax(logits, dim=-1)  # (..., V)
    safe = logp.masked_fill(torch.isneginf(logits), 0.0)  # avoid 0 * -inf in forward and backward
    return -(logp.exp() * safe).sum(-1)


# ---------------------------------------------------------------------------------------
# Agent
# ---------------------------------------------------------------------------------------
@dataclass
class Rollout:
    """One episode per row from ``ReinforceAgent.collect``.

    tokens (B, T) long: the actions taken at each step. rewards (B, T) float: env
    rewards, 0 where ``mask`` is False. mask (B, T) bool: True while the row's first
    episode runs, including its final step. action_masks (B, T, V) bool: valid tokens
    used at each step. keep_masks (B, T, V) bool or None: top-p nucleus at each step
    (None when top_p == 1). sample_logp (B, T) float: log-prob of each token under the
    sampling distribution, computed at sampling time. texts: each row's finished text
    from ``infos["text"]`` (None if the env gave none). sources: {"reward/<name>": (B, T)
    float} each reward source's weighted share of ``rewards`` (from the env's infos), 0
    where ``mask`` is False.
    """

    tokens: torch.Tensor
    rewards: torch.Tensor
    mask: torch.Tensor
    action_masks: torch.Tensor
    keep_masks: torch.Tensor | None
    sample_logp: torch.Tensor
    texts: list[str | None] = field(default_factory=list)
    sources: dict[str, torch.Tensor] = field(default_factory=dict)


class TeacherForced(torch.nn.Module):
    """The generator's teacher-forced logits for one or more input batches, in ONE module call.

    The agent's trainable forward: ``forward(*input_ids)`` with each input (N_i, T_i)
    long returns a tuple of (N_i, T_i, V) logits. In data-parallel training
    DistributedDataParallel wraps this module, so the policy-gradient batch and the MLE
    batch of one update are a single DDP forward followed by a single backward (DDP
    all-reduces every gradient once per backward, and refuses two forwards per backward).
    """

    #: On a CPU, compute the logits with ``seqgan_env.models.fastllama_train.teacher_forced_logits``
    #: (the same function and gradients as the transformers forward, tested to 1e-5, with
    #: fewer kernels and a cheaper attention backward) when it supports the generator;
    #: False always uses the transformers forward (as on CUDA, where its SDPA kernels win).
    lean: bool = True

    def __init__(self, generator: torch.nn.Module) -> None:
        super().__init__()
        self.generator = generator

    def forward(self, *input_ids: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if self.lean and input_ids and input_ids[0].device.type == "cpu" and supports_lean_forward(self.generator):
            return teacher_forced_logits(self.generator, *input_ids)  # each (N_i, T_i, V)
        return tuple(self.generator(input_ids=x).logits for x in input_ids)  # each (N_i, T_i, V)


class ReinforceAgent:
    """REINFORCE (+ optional MLE mixing) on a causal-LM generator (a transformers model or an LSTMGenerator).

    ``train_module`` is the forward used with grad (``TeacherForced(generator)``, or its
    DistributedDataParallel wrapper after :meth:`distribute`); sampling and scoring use
    the plain ``generator`` under no_grad.
    """

    def __init__(self, generator: torch.nn.Module, config: ReinforceConfig | None = None, seed: int = 0) -> None:
        self.config = config if config is not None else ReinforceConfig()
        cfg = self.config
        self.device = resolve_device(cfg.device)
        self.generator = generator.to(self.device)
        self.generator.eval()  # sampling and PG recompute without dropout: identical distributions
        self.optimizer = torch.optim.AdamW(
            self.generator.parameters(), lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay
        )
        self.scheduler = None
        if cfg.onecycle_total_steps is not None:
            self.scheduler = torch.optim.lr_scheduler.OneCycleLR(
                self.optimizer, max_lr=cfg.lr, total_steps=cfg.onecycle_total_steps, cycle_momentum=True
            )
        self.rng = (torch.Generator(device=self.device) if self.device.type == "cuda" else torch.Generator())
        self.rng.manual_seed(seed)
        self.baseline_state: torch.Tensor | None = None
        self.num_updates = 0
        self.reference: torch.nn.Module | None = None  # frozen generator of the KL term
        self.kl_coef = float(cfg.kl_coef)  # the adaptive controller moves it; saved in state_dict
        self.dist: DistContext = SINGLE
        self.train_module: torch.nn.Module = TeacherForced(self.generator)  # DDP-wrapped by distribute()

    def distribute(self, ctx: DistContext) -> None:
        """Train data-parallel over ``ctx.world_size`` ranks (the process group must exist).

        Wraps the teacher-forced forward in DistributedDataParallel (which broadcasts
        rank 0's weights at construction); sampling keeps the plain generator. The
        losses become global: baselines, advantage normalisation and the per-step and
        per-token normalisers use sums over all ranks, and each rank's loss is its share
        times ``world_size``, so DDP's gradient mean over ranks equals the gradient of the
        loss of the whole (all-rank) batch, even with unequal episode lengths. One rank:
        nothing changes.
        """
        if not ctx.is_distributed:
            return
        from torch.nn.parallel import DistributedDataParallel

        device_ids = [torch.cuda.current_device()] if self.device.type == "cuda" else None
        self.dist = ctx
        self.train_module = DistributedDataParallel(TeacherForced(self.generator), device_ids=device_ids)

    def set_reference(self, model: torch.nn.Module | None = None) -> None:
        """Freeze a copy of ``model`` (default: the generator now) as the KL term's reference."""
        ref = copy.deepcopy(model if model is not None else self.generator).to(self.device).eval()
        for p in ref.parameters():
            p.requires_grad_(False)
        self.reference = ref

    def _all_reduce(self) -> Callable[[torch.Tensor], torch.Tensor] | None:
        """Sum over ranks, or None for one process (the single-process code path)."""
        if not self.dist.is_distributed:
            return None
        return lambda t: all_reduce_sum(t, self.dist)

    # -- helpers ---------------------------------------------------------------------
    def _new_cache(self, capacity: int):
        """The generator's empty cache: a transformers cache written in place (no per-token
        concatenation of the past), or an LSTM's (h, c) state."""
        return generation_cache(self.generator, capacity)

    def _autocast(self):
        if self.device.type == "cuda" and self.config.bf16:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _params(self) -> list[torch.nn.Parameter]:
        return [p for p in self.generator.parameters() if p.requires_grad]

    @staticmethod
    def _teacher_input(tokens: torch.Tensor) -> torch.Tensor:
        """[BOS, tokens[:, :-1]]: (N, T) long -> (N, T) long, the inputs that predict ``tokens``."""
        bos = torch.full_like(tokens[:, :1], BOS_ID)  # (N, 1)
        return torch.cat([bos, tokens[:, :-1]], dim=1)  # (N, T)

    def _mle_loss(self, real: torch.Tensor, logits: torch.Tensor | None = None) -> torch.Tensor:
        """Mean token cross-entropy of the generator on real (N, T) sequences, PAD excluded.

        ``logits`` (N, T, V): the teacher-forced logits if already computed (else one
        ``train_module`` forward). Data-parallel: the mean is over every rank's tokens and
        this rank returns its share x world_size (the mean over ranks is the global mean).
        """
        real = real.to(self.device, torch.long)  # (N, T)
        if logits is None and not self.dist.is_distributed and hasattr(self.generator, "mle_loss"):
            # the LSTM family: the same loss without materialising the (N T, V) logits (DDP needs train_module)
            real = trim_padding(real)  # (N, T')
            with self._autocast():
                return self.generator.mle_loss(self._teacher_input(real), real, PAD_ID)
        if logits is None:
            real = trim_padding(real)  # (N, T') the same loss: causal logits, PAD targets ignored
            with self._autocast():
                (logits,) = self.train_module(self._teacher_input(real))  # (N, T, V)
        reduce = self._all_reduce()
        if reduce is None:
            return F.cross_entropy(logits.float().flatten(0, 1), real.flatten(), ignore_index=PAD_ID)
        n = reduce((real != PAD_ID).sum()).clamp(min=1)  # () real tokens over all ranks
        ce = F.cross_entropy(logits.float().flatten(0, 1), real.flatten(), ignore_index=PAD_ID, reduction="sum")
        return ce / n * self.dist.world_size

    def _step(self, loss: torch.Tensor) -> float:
        """Backward, clip, optimizer step; returns the pre-clip grad norm.

        Data-parallel: DDP all-reduces (averages) the gradients during ``backward``, so
        the norm, the clipping and the step are identical on every rank.
        """
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        max_norm = self.config.max_grad_norm if self.config.max_grad_norm is not None else float("inf")
        grad_norm = torch.nn.utils.clip_grad_norm_(self._params(), max_norm)
        if not bool(torch.isfinite(grad_norm)):
            self.optimizer.zero_grad(set_to_none=True)
            raise FloatingPointError(f"gradient norm is {float(grad_norm)}; update skipped.")
        self.optimizer.step()
        return float(grad_norm)

    # -- rollout ---------------------------------------------------------------------
    #: Decode with ``seqgan_env.models.fastllama.LlamaStepDecoder`` (the same function as the
    #: transformers forward with a KV cache, tested equal to 1e-5, with far fewer kernel
    #: calls) when it supports the generator; False always uses the transformers forward.
    fast_decode: bool = True

    def _stepper(self, batch: int, capacity: int) -> Callable[[torch.Tensor, int], torch.Tensor]:
        """A fresh KV-cached decoder: ``next_logits(input_ids (B, 1), t) -> (B, V)`` logits of token t+1.

        Call it with t = 0, 1, ... (position t holds BOS for t = 0); ``capacity`` >= steps.
        """
        gen = self.generator
        dec = self._step_decoder = make_step_decoder(gen, getattr(self, "_step_decoder", None), self.fast_decode)
        if dec is not None:
            keys, values = dec.new_cache(batch, capacity)

            def next_logits(inp: torch.Tensor, t: int) -> torch.Tensor:
                with self._autocast():
                    return dec.step(inp, t, keys, values, t)  # (B, V)

            return next_logits
        cache = [self._new_cache(capacity)]

        def next_logits(inp: torch.Tensor, t: int) -> torch.Tensor:
            with self._autocast():
                out = gen(input_ids=inp, cache=cache[0], use_cache=True, logits_to_keep=1)
            cache[0] = out.cache
            return out.logits[:, -1]  # (B, V)

        return next_logits

    @torch.no_grad()
    def collect(self, venv) -> Rollout:
        """Reset ``venv`` and sample until every row has finished its first episode (<= T steps)."""
        cfg = self.config
        obs, _ = venv.reset()
        B, T = obs.shape
        dev = self.device
        tokens = torch.full((B, T), PAD_ID, dtype=torch.long, device=dev)  # (B, T)
        rewards = torch.zeros(B, T, device=dev)  # (B, T)
        mask = torch.zeros(B, T, dtype=torch.bool, device=dev)  # (B, T)
        sample_logp = torch.zeros(B, T, device=dev)  # (B, T)
        amasks, keeps = [], []
        texts: list[str | None] = [None] * B
        sources: dict[str, torch.Tensor] = {}
        active = torch.ones(B, dtype=torch.bool, device=dev)  # (B,) first episode still running
        inp = torch.full((B, 1), BOS_ID, dtype=torch.long, device=dev)  # (B, 1)
        next_logits = self._stepper(B, T + 1)
        env_dev = getattr(venv.unwrapped, "device", dev)
        steps = 0
        logits = next_logits(inp, 0)  # (B, V)
        next_amask = venv.action_masks()
        for t in range(T):
            amask = torch.as_tensor(next_amask, device=dev)  # (B, V)
            x = logits.float() if cfg.temperature == 1.0 else logits.float() / cfg.temperature
            x = torch.where(amask, x, float("-inf"))  # == sampling_logits(..., top_p=1)
            if cfg.top_p < 1.0:
                keep = top_p_keep_mask(x, cfg.top_p)  # (B, V)
                x = x.masked_fill(~keep, float("-inf"))
                keeps.append(keep)
            logp_all = torch.log_softmax(x, -1)  # (B, V) the sampling distribution, also for sample_logp
            action = sample_categorical(logp_all, self.rng, log_probs=True)  # (B,)
            sample_logp[:, t] = logp_all.gather(1, action[:, None]).squeeze(1)
            obs, r, term, trunc, infos = venv.step(action.to(env_dev))
            next_amask = venv.action_masks()
            if t + 1 < T:
                logits = next_logits(action[:, None], t + 1)  # (B, V)
            r = torch.as_tensor(r, device=dev, dtype=torch.float32)  # (B,)
            done = torch.as_tensor(term, device=dev) | torch.as_tensor(trunc, device=dev)  # (B,)
            tokens[:, t] = action
            rewards[:, t] = r  # steps after a row's first episode are zeroed below
            for key in infos:  # each reward source's share of r (seqgan_env.rewards.sources)
                if key.startswith(INFO_PREFIX):
                    if key not in sources:
                        sources[key] = torch.zeros(B, T, device=dev)  # (B, T)
                    sources[key][:, t] = torch.as_tensor(infos[key], device=dev, dtype=torch.float32)
            mask[:, t] = active
            amasks.append(amask)
            if "text" in infos:
                finished = active & done  # (B,) rows whose first episode ends on this step
                if bool(finished.any()):
                    for i in finished.nonzero().squeeze(1).tolist():
                        texts[i] = infos["text"][i]
            active = active & ~done
            steps = t + 1
            if not bool(active.any()):
                break
        rewards.masked_fill_(~mask, 0.0)  # only the first episode of each row counts
        for part in sources.values():
            part.masked_fill_(~mask, 0.0)
        # Steps never taken (all rows finished early) keep mask False; pad the masks with True.
        V = amasks[0].shape[1]
        pad = T - steps
        action_masks = torch.stack(amasks, dim=1)  # (B, steps, V)
        if pad:
            action_masks = torch.cat([action_masks, torch.ones(B, pad, V, dtype=torch.bool, device=dev)], 1)
        keep_masks = None
        if keeps:
            keep_masks = torch.stack(keeps, dim=1)  # (B, steps, V)
            if pad:
                keep_masks = torch.cat([keep_masks, torch.ones(B, pad, V, dtype=torch.bool, device=dev)], 1)
        return Rollout(tokens, rewards, mask, action_masks, keep_masks, sample_logp, texts, sources)

    # -- learning --------------------------------------------------------------------
    def _loss(self, rollout: Rollout, real: torch.Tensor | None):
        """(loss with grad, metrics, new baseline state) of one update.

        Data-parallel (after :meth:`distribute`): baselines, normalisation and the
        normalisers are global (sums over ranks); ``policy_loss``, ``entropy`` and
        ``mle_loss`` are this rank's share x world_size (their mean over ranks is the
        full-batch value); ``reward_std`` and ``return_mean`` are full-batch values.
        """
        cfg = self.config
        reduce = self._all_reduce()  # None: one process
        tokens = rollout.tokens.to(self.device)  # (B, T)
        mask = rollout.mask.to(self.device)  # (B, T)
        rewards = rollout.rewards.to(self.device)  # (B, T)
        returns = discounted_returns(rewards, mask, cfg.gamma)  # (B, T)
        adv, new_state = apply_baseline(returns, mask, cfg.baseline, self.baseline_state, cfg.ewma_decay, reduce)
        if cfg.normalize_advantages:
            adv = normalize(adv, mask, all_reduce=reduce)
        adv = adv.detach()

        use_mle = cfg.mle_coef > 0 and real is not None
        inputs = [self._teacher_input(tokens)]  # (B, T)
        if use_mle:
            real = trim_padding(real.to(self.device, torch.long))  # (N, T') T' = its longest row: the same loss
            inputs.append(self._teacher_input(real))  # (N, T)
        with self._autocast():
            logits = self.train_module(*inputs)  # one (DDP) forward for both batches: (B, T, V)[, (N, T, V)]
        x = self._policy_logits(rollout, logits[0])  # (B, T, V)
        logp_all = torch.log_softmax(x, dim=-1)  # (B, T, V) computed once for the loss and the entropy
        logp = logp_all.gather(2, tokens[..., None]).squeeze(2)  # (B, T)
        logp = torch.where(mask, logp, torch.zeros_like(logp))  # masked-out steps may hold -inf
        n = mask.sum().clamp(min=1) if reduce is None else reduce(mask.sum()).clamp(min=1)  # valid steps, all ranks
        policy_loss = -(logp * adv).sum() / n
        # Without an entropy bonus the entropy is only a metric: no graph (and no backward) through it.
        with contextlib.nullcontext() if cfg.entropy_coef > 0 else torch.no_grad():
            entropy = (_entropy(x, logp_all) * mask).sum() / n
        if reduce is not None:  # share x W: DDP's mean of the gradients over ranks = the full-batch gradient
            policy_loss = policy_loss * self.dist.world_size
            entropy = entropy * self.dist.world_size
        loss = policy_loss - cfg.entropy_coef * entropy
        mle_loss = torch.tensor(float("nan"))
        if use_mle:
            mle_loss = self._mle_loss(real, logits[1])
            loss = loss + cfg.mle_coef * mle_loss
        kl = torch.tensor(float("nan"))
        if cfg.kl_coef > 0:
            kl_steps = self._kl_to_reference(rollout, x, logp_all) * mask  # (B, T)
            kl = kl_steps.sum() / n
            # The KL term as a reward (it enters the loss as an exact gradient, not through the returns):
            # -kl_coef x the episode's summed per-step KL, mean over this rank's episodes.
            kl_reward = -self.kl_coef * float(kl_steps.detach().sum(1).mean())
            if reduce is not None:
                kl = kl * self.dist.world_size
            loss = loss + self.kl_coef * kl

        ep_reward = (rewards * mask).sum(1)  # (B,)
        metrics = {
            "reward_mean": float(ep_reward.mean()),
            "reward_std": float(ep_reward.std(unbiased=False)),
            "return_mean": float(returns[mask].mean()) if bool(mask.any()) else float("nan"),
            "policy_loss": float(policy_loss.detach()),
            "entropy": float(entropy.detach()),
            "mle_loss": float(mle_loss.detach()),
            "episode_length_mean": float(mask.sum(1).float().mean()),
        }
        for key, part in rollout.sources.items():  # reward/<name>: each source's episode total, mean over episodes
            metrics[key] = float((part.to(self.device) * mask).sum(1).mean())
        if cfg.kl_coef > 0:
            metrics["kl"], metrics["kl_coef"] = float(kl.detach()), self.kl_coef
            metrics[INFO_PREFIX + KL] = kl_reward
        if reduce is not None:  # statistics that are not a mean of per-rank values: full-batch, on every rank
            e = ep_reward.double()  # (B,)
            tot = reduce(torch.stack([e.sum(), torch.tensor(float(e.numel()), dtype=torch.float64, device=e.device),
                                      returns[mask].double().sum(), mask.sum().double()]))  # (4,)
            mean = tot[0] / tot[1]
            metrics["reward_std"] = float((reduce(((e - mean) ** 2).sum()) / tot[1]).sqrt())
            metrics["return_mean"] = float(tot[2] / tot[3]) if float(tot[3]) > 0 else float("nan")
        return loss, metrics, new_state

    def _kl_to_reference(self, rollout: Rollout, x: torch.Tensor, logp_all: torch.Tensor) -> torch.Tensor:
        """(B, T) KL(pi || pi_ref) of every step, exact over the vocabulary, with grad through pi.

        ``x`` (B, T, V): the policy's sampling logits (masks, temperature, top-p applied) and
        ``logp_all`` their log-softmax; the reference gets the same support and temperature.
        """
        if self.reference is None:
            raise ValueError("reinforce.kl_coef > 0 needs a reference generator: call agent.set_reference() "
                             "(the trainer does so when the adversarial phase starts).")
        with torch.no_grad(), self._autocast():
            ref_logits = self.reference(input_ids=self._teacher_input(rollout.tokens.to(self.device))).logits
        support = torch.isfinite(x)  # (B, T, V) where the policy can sample
        ref = torch.log_softmax(torch.where(support, ref_logits.float() / self.config.temperature,
                                            float("-inf")), dim=-1)  # (B, T, V)
        zero = torch.zeros_like(logp_all)
        # finite values off the support before the product, so no inf/nan reaches the backward pass
        lp, lq = torch.where(support, logp_all, zero), torch.where(support, ref, zero)  # (B, T, V)
        return (torch.where(support, lp.exp(), zero) * (lp - lq)).sum(-1)  # (B, T)

    def _adapt_kl_coef(self, kl: float) -> None:
        """Proportional controller towards ``kl_target`` (no-op without one)."""
        target = self.config.kl_target
        if target is None or not math.isfinite(kl):
            return
        error = min(max(kl / target - 1.0, -0.2), 0.2)
        self.kl_coef *= 1.0 + error * self.config.kl_horizon_rate

    def _policy_logits(self, rollout: Rollout, logits: torch.Tensor | None = None) -> torch.Tensor:
        """Teacher-forced recompute (with grad) of the sampling logits of every step, (B, T, V).

        One forward pass on [BOS, tokens[:, :-1]] (or the given ``logits`` (B, T, V) of
        that pass), then the rollout's own action masks, temperature and stored top-p
        keep masks: the distribution the tokens were drawn from.
        """
        if logits is None:
            tokens = rollout.tokens.to(self.device)  # (B, T)
            with self._autocast():
                logits = self.generator(input_ids=self._teacher_input(tokens)).logits  # (B, T, V)
        support = rollout.action_masks.to(self.device)  # (B, T, V)
        if rollout.keep_masks is not None:
            support = support & rollout.keep_masks.to(self.device)
        return sampling_logits(logits, support, self.config.temperature, top_p=1.0)  # nucleus fixed by keep

    def log_probs(self, rollout: Rollout) -> torch.Tensor:
        """(B, T) log-prob (with grad) of each taken token under the sampling distribution; 0 where masked out."""
        x = self._policy_logits(rollout)  # (B, T, V)
        logp = torch.log_softmax(x, dim=-1).gather(2, rollout.tokens.to(self.device)[..., None]).squeeze(2)
        return torch.where(rollout.mask.to(self.device), logp, torch.zeros_like(logp))

    def loss(self, rollout: Rollout, real: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        """(loss with grad, metrics) for ``rollout``; does not change the baseline state.

        ``metrics["return_mean"]`` is the mean discounted return over the valid steps.
        """
        loss, metrics, _ = self._loss(rollout, real)
        return loss, metrics

    def update(self, rollout: Rollout, real: torch.Tensor | None = None) -> dict[str, float]:
        """One REINFORCE update (plus ``mle_coef`` x MLE on ``real`` (N, T) if given).

        A non-finite loss or gradient norm raises ``FloatingPointError`` and changes
        nothing (no optimizer step, baseline and counters untouched).
        """
        loss, metrics, new_state = self._loss(rollout, real)
        finite = bool(torch.isfinite(loss))
        if self.dist.is_distributed:  # every rank must skip together, or the others wait in backward forever
            finite = not any_flag(not finite, self.dist)
        if not finite:
            where = f" on rank {self.dist.rank} (non-finite on some rank)" if self.dist.is_distributed else ""
            raise FloatingPointError(f"REINFORCE loss is {float(loss.detach())}{where} (rewards or log-probs not "
                                     f"finite); update skipped.")
        lr = self.optimizer.param_groups[0]["lr"]
        metrics["grad_norm"] = self._step(loss)
        metrics["lr"] = float(lr)
        if self.scheduler is not None and self.scheduler.last_epoch < self.config.onecycle_total_steps - 1:
            self.scheduler.step()  # holds the final lr once the cycle is over
        self.baseline_state = None if new_state is None else new_state.detach()
        self._adapt_kl_coef(metrics.get("kl", float("nan")))
        self.num_updates += 1
        return metrics

    def mle_step(self, real: torch.Tensor) -> float:
        """One MLE (teacher-forcing) step on real (N, T) sequences with the same optimizer.

        Clips gradients like ``update``; does not advance the scheduler or ``num_updates``.
        Returns the loss.
        """
        self.generator.train()
        try:
            loss = self._mle_loss(real)
        finally:
            self.generator.eval()
        self._step(loss)
        return float(loss.detach())

    # -- sampling without an env -----------------------------------------------------
    @torch.no_grad()
    def sample(
        self,
        n: int,
        max_length: int,
        temperature: float = 1.0,
        top_p: float = 1.0,
        seed: int | None = None,
        use_cache: bool = True,
        min_length: int = 1,
        allow_eos: bool = True,
    ) -> torch.Tensor:
        """(n, max_length) long: sequences sampled under the env's token rule (``EnvConfig.valid_tokens``), no env.

        PAD and BOS are never sampled; EOS only once >= ``min_length`` symbols are
        written (never if ``allow_eos`` is False). A row stops after EOS (PAD after).
        ``seed`` uses a fresh generator (the agent's RNG is untouched); None uses the
        agent's RNG. ``use_cache=False`` recomputes the whole prefix every step.
        """
        if temperature <= 0 or not 0 < top_p <= 1:
            raise ValueError(f"temperature={temperature!r} must be > 0 and top_p={top_p!r} in (0, 1].")
        dev = self.device
        if seed is None:
            gen = self.rng
        else:
            gen = torch.Generator(device=dev) if dev.type == "cuda" else torch.Generator()
            gen.manual_seed(seed)
        V = self.generator.config.vocab_size
        spec = EnvConfig(vocab_size=V, max_length=max_length, min_length=min_length, allow_eos=allow_eos)
        out = torch.full((n, max_length), PAD_ID, dtype=torch.long, device=dev)  # (n, L)
        done = torch.zeros(n, dtype=torch.bool, device=dev)  # (n,)
        seq = torch.full((n, 1), BOS_ID, dtype=torch.long, device=dev)  # (n, 1+t) BOS + prefix
        next_logits = self._stepper(n, max_length + 1) if use_cache else None
        for t in range(max_length):
            if use_cache:
                logits = next_logits(seq[:, -1:], t)  # (n, V)
            else:
                with self._autocast():
                    logits = self.generator(input_ids=seq, use_cache=False, logits_to_keep=1).logits[:, -1]
            valid = spec.valid_tokens(torch.tensor(t, device=dev))  # (V,) after t symbols
            x = sampling_logits(logits, valid.expand(n, V), temperature, top_p)  # (n, V)
            action = sample_categorical(x, gen)  # (n,)
            out[:, t] = torch.where(done, torch.full_like(action, PAD_ID), action)
            done = done | (action == EOS_ID)
            seq = torch.cat([seq, action[:, None]], dim=1)
            if bool(done.all()):
                break
        return out

    # -- checkpointing ---------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """{"tensors": {name: Tensor}, "meta": JSON-able dict} — no pickled objects.

        tensors: "generator.<param>" (cloned, so tied weights can be saved with
        safetensors), "optimizer.<key>" (``utils.codec.flatten_optimizer_state``),
        "baseline_state" (if any), "rng_state". meta: num_updates, optimizer and
        scheduler metas of the codec.
        """
        tensors: dict[str, torch.Tensor] = {}
        for k, v in self.generator.state_dict().items():
            tensors[f"generator.{k}"] = v.detach().cpu().clone().contiguous()
        opt_t, opt_m = flatten_optimizer_state(self.optimizer.state_dict())
        tensors.update({f"optimizer.{k}": v.detach().cpu().clone() for k, v in opt_t.items()})
        if self.baseline_state is not None:
            tensors["baseline_state"] = self.baseline_state.detach().cpu().clone()
        tensors["rng_state"] = self.rng.get_state().cpu().clone()
        if self.reference is not None:
            for k, v in self.reference.state_dict().items():
                tensors[f"reference.{k}"] = v.detach().cpu().clone().contiguous()
        sched = flatten_scheduler_state(self.scheduler.state_dict())[1] if self.scheduler is not None else None
        meta = {"num_updates": self.num_updates, "optimizer": opt_m, "scheduler": sched, "kl_coef": self.kl_coef}
        return {"tensors": tensors, "meta": meta}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Inverse of :meth:`state_dict` (for an agent built with the same model and config)."""
        tensors, meta = state["tensors"], state["meta"]
        gen_sd = {k[len("generator."):]: v for k, v in tensors.items() if k.startswith("generator.")}
        self.generator.load_state_dict(gen_sd)
        opt_t = {k[len("optimizer."):]: v for k, v in tensors.items() if k.startswith("optimizer.")}
        load_optimizer_state(self.optimizer, opt_t, meta["optimizer"], "the agent's optimizer state",
                             "resume from a checkpoint written by this version")
        if self.scheduler is not None and meta.get("scheduler") is not None:
            self.scheduler.load_state_dict(unflatten_scheduler_state({}, meta["scheduler"]))
        bs = tensors.get("baseline_state")
        self.baseline_state = None if bs is None else bs.to(self.device)
        self.rng.set_state(tensors["rng_state"].cpu())
        self.num_updates = int(meta["num_updates"])
        self.kl_coef = float(meta.get("kl_coef", self.config.kl_coef))
        ref_sd = {k[len("reference."):]: v for k, v in tensors.items() if k.startswith("reference.")}
        if ref_sd:
            self.set_reference()
            self.reference.load_state_dict(ref_sd)
