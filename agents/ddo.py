"""Direct Discriminative Optimization (DDO): GAN fine-tuning of a likelihood model with an implicit discriminator.

The generator p_θ and a frozen reference p_ref (the generator when the round began) define the
discriminator d(x) = σ(β·r(x)), r(x) = log p_θ(x) − log p_ref(x) (whole-sequence log-likelihoods,
exact for an autoregressive model). It is trained with the GAN loss on real rows against samples of
the reference:

    L(θ) = E_data[−log σ(β r(x))] + α · E_{x~p_ref}[−log(1 − σ(β r(x)))]

No separate network and no reinforcement learning: the gradient flows through log p_θ. With α = 1
the loss is minimised at σ(β r) = p_data / (p_data + p_ref), i.e. p_θ ∝ p_ref · (p_data / p_ref)^(1/β):
β = 1 aims at the data distribution itself. At θ = ref, d = 1/2 everywhere and the gradient is
β/2 · (−∇ log p_θ(real) + ∇ log p_θ(fake)): the MLE gradient with the model's own samples as a
(zero-mean) control variate. Rounds (Zheng et al. 2025, "Direct Discriminative Optimization: Your
Likelihood-Based Generative Model is Secretly a GAN Discriminator"): after ``round_steps`` updates
the reference becomes the current generator and a fresh pool of its samples is drawn.

Every reference sample of a round is drawn when the round begins (the generator then *is* the
reference): ``round_steps × ref_samples`` samples, each used once, the same as drawing
``ref_samples`` fresh ones per update from the frozen reference, in one batched draw.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn.functional as F

from seqgan_agents.reinforce import ReinforceAgent, trim_padding
from seqgan_env.envs.spec import PAD_ID
from seqgan_env.utils.validation import check_int, check_number

#: Reference samples drawn per call of the sampler when a round's pool is filled (bounds memory).
POOL_CHUNK = 4096


@dataclass
class DDOConfig:
    """Hyper-parameters of DDO fine-tuning (``seqgan-env train --agent ddo``), after MLE pretraining.

    beta > 0: scale of the implicit discriminator σ(β (log p_θ − log p_ref)); 1 aims at the data
    distribution in one round, 2 at the geometric mean of the reference and the data (rounds compound),
    values below 1 overshoot towards the data's modes. alpha > 0: weight of the
    reference-sample term. round_steps: updates per round (then ref ← θ and a fresh sample pool).
    batch_size: real rows per update. ref_samples: reference samples per update. lr: AdamW learning
    rate of the DDO phase (the optimizer's moments restart when it begins: DDO's sequence-level
    gradients have another scale than MLE's per-token ones). mle_coef >= 0: weight of the per-token
    MLE loss on the same real rows mixed into each update.
    """

    # beta 2 (each round moves halfway towards the data, in log space) and lr 1e-4 for 300 updates won on the
    # validation split among beta 1/2 and lr 5e-5/1e-4/3e-4 (benchmarks/README.md, "DDO fine-tuning")
    beta: float = 2.0  # scale of the implicit discriminator d(x) = sigmoid(beta (log p_theta(x) - log p_ref(x)))
    alpha: float = 1.0  # weight of the reference-sample term of the GAN loss
    round_steps: int = 100  # updates per round: then the reference becomes the generator and a fresh pool is drawn
    batch_size: int = 128  # real rows per update
    ref_samples: int = 128  # samples of the frozen reference per update
    lr: float = 1e-4  # AdamW learning rate of the DDO phase (MLE pretraining uses reinforce.lr)
    mle_coef: float = 0.0  # weight of the per-token MLE loss on the same real rows (>= 0)

    def __post_init__(self) -> None:
        check_number("ddo.beta", self.beta, 0, fix="use 2.0 (the default) or 1.0 (aims at the data distribution)",
                     low_open=True)
        check_number("ddo.alpha", self.alpha, 0, fix="use 1.0", low_open=True)
        for name in ("round_steps", "batch_size", "ref_samples"):
            check_int(f"ddo.{name}", getattr(self, name), 1)
        check_number("ddo.lr", self.lr, 0, fix="use e.g. 1e-4", low_open=True)
        check_number("ddo.mle_coef", self.mle_coef, 0, fix="use 0.0 for DDO alone")


def sequence_log_probs(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """(N,) log-likelihood of each row of ``tokens`` (N, T) given teacher-forced ``logits`` (N, T, V).

    The generator's raw distribution (as ``seqgan_env.eval.likelihood.generator_nll``), summed over
    the non-PAD tokens (an EOS that ends a row counts).
    """
    logp = F.log_softmax(logits.float(), dim=-1)  # (N, T, V)
    tok = logp.gather(-1, tokens.clamp(min=0)[..., None]).squeeze(-1)  # (N, T)
    return (tok * (tokens != PAD_ID)).sum(dim=1)  # (N,)


def ddo_loss(ratio_real: torch.Tensor, ratio_fake: torch.Tensor, beta: float, alpha: float = 1.0) -> torch.Tensor:
    """The GAN loss of the implicit discriminator σ(β r): mean softplus(−β r_real) + α mean softplus(β r_fake).

    Args:
        ratio_real: (N,) log p_θ(x) − log p_ref(x) of real rows.
        ratio_fake: (M,) the same of reference samples.
        beta: the discriminator's scale (> 0).
        alpha: weight of the reference-sample term.

    Returns:
        () the loss (−log d on real rows, −log(1 − d) on reference samples).
    """
    return F.softplus(-beta * ratio_real).mean() + alpha * F.softplus(beta * ratio_fake).mean()


class DDOUpdater:
    """DDO updates of ``agent.generator`` with the agent's optimizer, clipping and reference slot.

    ``sample(n)``: (n, T) samples of the generator as it is when called (temperature 1, the run's
    episode rules), drawn with the agent's RNG; called only when a round begins, when the
    generator is the reference. The reference is ``agent.reference`` (so the agent's checkpoint
    holds it); the round's pool and position are in :meth:`state_dict`.
    """

    def __init__(self, agent: ReinforceAgent, config: DDOConfig, sample: Callable[[int], torch.Tensor]) -> None:
        self.agent = agent
        self.config = config
        self.sample = sample
        self.rounds = 0  # rounds begun
        self.pool: torch.Tensor | None = None  # (round_steps * ref_samples, T) this round's reference samples
        self.pos = 0  # next unused row of the pool

    def _begin_round(self) -> None:
        """ref ← θ and a fresh pool of its samples; the first round also sets DDO's lr and restarts AdamW's moments."""
        cfg = self.config
        if self.rounds == 0:
            self.agent.optimizer.state.clear()
            for group in self.agent.optimizer.param_groups:
                group["lr"] = cfg.lr
        self.agent.set_reference()
        n = cfg.round_steps * cfg.ref_samples
        chunks = [self.sample(min(POOL_CHUNK, n - start)) for start in range(0, n, POOL_CHUNK)]
        self.pool = torch.cat(chunks).to(self.agent.device)  # (n, T)
        self.pos = 0
        self.rounds += 1

    def loss(self, real: torch.Tensor, fake: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """(loss with grad, metrics) of real rows (N, T) against reference samples (M, T); changes nothing.

        Metrics: ``d_real`` / ``d_fake`` (mean implicit d), ``ratio_real`` / ``ratio_fake`` (mean
        log p_θ − log p_ref), ``ddo_loss``, ``mle_loss`` (per-token NLL of the real rows).

        Raises:
            ValueError: there is no reference yet (``step`` sets one when a round begins).
        """
        cfg, agent = self.config, self.agent
        if agent.reference is None:
            raise ValueError("DDO needs a reference generator; fix: call step() (it begins a round) first.")
        n = len(real)
        rows = torch.cat([real.to(agent.device, torch.long), fake.to(agent.device, torch.long)])  # (N + M, T)
        rows = trim_padding(rows)  # (N + M, T') the last columns that are PAD in every row removed
        inp = agent._teacher_input(rows)  # (N + M, T')
        with agent._autocast():
            (logits,) = agent.train_module(inp)  # (N + M, T', V)
        logp = sequence_log_probs(logits, rows)  # (N + M,)
        with torch.no_grad(), agent._autocast():
            ref_logp = sequence_log_probs(agent.reference(input_ids=inp).logits, rows)  # (N + M,)
        ratio = logp - ref_logp  # (N + M,)
        loss = ddo_loss(ratio[:n], ratio[n:], cfg.beta, cfg.alpha)
        tokens = (rows[:n] != PAD_ID).sum().clamp(min=1)
        mle = -logp[:n].sum() / tokens  # () per-token NLL of the real rows
        total = loss + cfg.mle_coef * mle if cfg.mle_coef > 0 else loss
        with torch.no_grad():
            d = torch.sigmoid(cfg.beta * ratio)  # (N + M,)
            metrics = {"ddo_loss": float(loss.detach()), "mle_loss": float(mle.detach()), "d_real": float(d[:n].mean()),
                       "d_fake": float(d[n:].mean()), "ratio_real": float(ratio[:n].mean()),
                       "ratio_fake": float(ratio[n:].mean())}
        return total, metrics

    def step(self, real: torch.Tensor) -> dict[str, float]:
        """One DDO update on real rows (N, T) against the next ``ref_samples`` of the round's pool.

        Begins a round first when the pool is used up (or none exists). A non-finite loss or gradient
        raises ``FloatingPointError`` and leaves the weights unchanged (the pool position moves on).

        Returns:
            the metrics of :meth:`loss`, plus ``grad_norm``, ``lr``, ``round``.
        """
        if self.pool is None or self.pos >= len(self.pool):
            self._begin_round()
        assert self.pool is not None
        fake = self.pool[self.pos : self.pos + self.config.ref_samples]  # (M, T)
        self.pos += self.config.ref_samples
        loss, metrics = self.loss(real, fake)
        if not bool(torch.isfinite(loss)):
            raise FloatingPointError(f"DDO loss is {float(loss.detach())}; update skipped.")
        metrics["grad_norm"] = self.agent._step(loss)
        metrics["lr"] = float(self.agent.optimizer.param_groups[0]["lr"])
        metrics["round"] = self.rounds
        self.agent.num_updates += 1
        return metrics

    def state_dict(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """(tensors, JSON meta): the round's pool and position (the reference is in the agent's state)."""
        tensors = {} if self.pool is None else {"pool": self.pool.detach().cpu().clone()}
        return tensors, {"rounds": self.rounds, "pos": self.pos}

    def load_state_dict(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        """Inverse of :meth:`state_dict`."""
        self.rounds, self.pos = int(meta["rounds"]), int(meta["pos"])
        pool = tensors.get("pool")
        self.pool = None if pool is None else pool.to(self.agent.device, torch.long)


__all__ = ["DDOConfig", "DDOUpdater", "ddo_loss", "sequence_log_probs"]
