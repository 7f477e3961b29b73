"""REINFORCE's hyper-parameters (:class:`ReinforceConfig`, validated on construction) and the device choice."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from seqgan_env.utils.validation import check_int, check_number, is_number

BASELINES = ("none", "batch_mean", "ewma", "rloo", "maligan")
DEVICES = ("auto", "cpu", "cuda")


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
