"""Maximum-likelihood training with early stopping on a validation split: the baseline every GAN arm is read against.

``pretrain_mle``: the MLE pretraining of `seqgan-env train` (random mini-batches, scored every k steps,
the learning rate dropped once at the first plateau, the best weights restored), shared by the
REINFORCE/DDO trainer, the PPO trainer and the mle arm of `benchmark gan`.

``fit_mle`` runs epochs of shuffled mini-batches through ``ReinforceAgent.mle_step`` (the agent's
own optimizer and clipping), scores the validation rows (``seqgan_env.eval.likelihood.generator_nll``)
every ``eval_every`` epochs, keeps the weights of the best score and stops after ``patience``
evaluations without improvement; the best weights are loaded back at the end. The validation
rows choose the stopping point only: report on other held-out data.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from seqgan_agents.reinforce import ReinforceAgent
from seqgan_env.eval.likelihood import generator_nll
from seqgan_env.utils.validation import check_int


@dataclass
class MLEFitConfig:
    """max_epochs: passes over the training rows; batch_size: rows per step; eval_every: epochs between
    validation scores; patience: scores without improvement before stopping (None: never stop early)."""

    max_epochs: int = 80
    batch_size: int = 64
    eval_every: int = 1
    patience: int | None = 5

    def __post_init__(self) -> None:
        for name in ("max_epochs", "batch_size", "eval_every"):
            check_int(f"mle.{name}", getattr(self, name), 1)
        if self.patience is not None:
            check_int("mle.patience", self.patience, 1, "None trains all max_epochs")


@dataclass
class MLEFitResult:
    """best_valid_nll at best_epoch (weights loaded back), epochs trained, seconds per epoch, the history."""

    best_valid_nll: float
    best_epoch: int
    epochs: int
    epoch_seconds: float
    history: list[dict[str, float]] = field(default_factory=list)


def fit_mle(
    agent: ReinforceAgent,
    train: torch.Tensor,
    valid: torch.Tensor,
    cfg: MLEFitConfig = MLEFitConfig(),
    seed: int = 0,
    on_eval: Callable[[int], dict[str, Any]] | None = None,
    log: Callable[[str], None] = print,
) -> MLEFitResult:
    """Train ``agent.generator`` by MLE on ``train`` (N, T), early-stopped on ``valid`` (M, T); see the module doc.

    ``on_eval(epoch)``: extra numbers recorded in the history beside each validation score (e.g. a
    benchmark's NLL-oracle); they never choose the stopping point.
    """
    if len(valid) == 0:
        raise ValueError("fit_mle needs validation rows to stop on; fix: hold out a validation split.")
    device = agent.device
    train = train.to(device)
    gen = torch.Generator().manual_seed(seed)
    n = len(train)
    best, best_epoch, best_state = math.inf, 0, None
    history: list[dict[str, float]] = []
    bad, train_seconds, epoch = 0, 0.0, 0
    for epoch in range(1, cfg.max_epochs + 1):
        t0 = time.perf_counter()
        order = torch.randperm(n, generator=gen).to(device)  # (N,) one shuffled pass
        for start in range(0, n, cfg.batch_size):
            loss = agent.mle_step(train[order[start : start + cfg.batch_size]])
        train_seconds += time.perf_counter() - t0
        if not math.isfinite(loss):
            raise FloatingPointError(f"MLE loss became {loss} in epoch {epoch}: lower the learning rate.")
        if epoch % cfg.eval_every and epoch != cfg.max_epochs:
            continue
        nll = generator_nll(agent.generator, valid)
        row = {"epoch": epoch, "train_loss": loss, "valid_nll": nll, **(on_eval(epoch) if on_eval else {})}
        history.append(row)
        log("  mle epoch " + " ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()))
        if nll < best:
            best, best_epoch, bad = nll, epoch, 0
            best_state = copy.deepcopy(agent.generator.state_dict())
        else:
            bad += 1
            if cfg.patience is not None and bad >= cfg.patience:
                break
    agent.generator.load_state_dict(best_state)
    return MLEFitResult(best, best_epoch, epoch, train_seconds / max(epoch, 1), history)


@dataclass
class PretrainResult:
    """steps: MLE steps trained; best_step / valid_nll: the scored step whose weights were kept and its
    validation NLL per token (None when nothing was scored: no validation rows, or no early stopping);
    lr_drop_step: the step at which the learning rate was dropped (None: it never was); curve: every
    validation score by step."""

    steps: int
    best_step: int | None = None
    valid_nll: float | None = None
    lr_drop_step: int | None = None
    curve: dict[int, float] = field(default_factory=dict)


def pretrain_mle(
    agent: ReinforceAgent,
    next_batch: Callable[[], torch.Tensor],
    valid: torch.Tensor | None,
    max_steps: int,
    eval_every: int,
    patience: int | None,
    log: Callable[[str], None] = print,
    mean_loss: Callable[[float], float] = lambda x: x,
    lr_drop: float | None = None,
) -> PretrainResult:
    """MLE steps on ``next_batch()`` rows (N, T) until the NLL of ``valid`` (M, T) stops improving.

    The validation NLL is scored every ``eval_every`` steps (and at ``max_steps``). After ``patience``
    scores without improvement: with ``lr_drop`` (a factor in (0, 1)) the weights of the best score
    are loaded back, the optimizer's learning rate is multiplied by ``lr_drop`` and training goes on
    with the patience counted afresh (a model stopped at the first plateau of a constant rate is not
    yet converged); at the next plateau (or without ``lr_drop``: this one) training stops. The
    weights of the best score are loaded back at the end and the optimizer's learning rate is put
    back to what it was, so what follows pretraining runs at its configured rate. ``valid`` None or
    empty, or ``patience`` None: all ``max_steps`` steps, the last weights kept, no drop.
    ``mean_loss``: the loss as logged (data-parallel: the mean over ranks; called on every rank at
    the same steps). Every rank scores the same rows with the same weights, so all stop (and drop)
    together.

    Args:
        agent: its ``generator`` is trained with its ``optimizer`` (``mle_step``).
        next_batch: the (N, T) real rows of one step.
        valid: (M, T) validation rows, or None.
        max_steps: the cap on MLE steps, the steps after a drop included.
        eval_every: steps between validation scores.
        patience: scores without improvement that make a plateau; None: never stop early.
        log: where the progress lines go.
        mean_loss: the logged loss from the local one.
        lr_drop: the learning-rate factor at the first plateau; None or 1: stop there.

    Returns:
        The steps trained, the kept step and its validation NLL, the step of the drop.

    Raises:
        FloatingPointError: the MLE loss became NaN or infinite (lower the learning rate).
    """
    early = patience is not None and valid is not None and len(valid) > 0
    drops_left = 1 if early and lr_drop is not None and lr_drop != 1 else 0
    rates = [group["lr"] for group in agent.optimizer.param_groups]  # put back after the phase
    best, best_state, bad, step = math.inf, None, 0, 0
    result = PretrainResult(0)
    for i in range(max_steps):
        loss = agent.mle_step(next_batch())
        if not math.isfinite(loss):
            raise FloatingPointError(f"MLE pretraining loss became {loss} at step {i}: lower reinforce.lr.")
        step = i + 1
        scored = early and (step % eval_every == 0 or step == max_steps)
        if step % 100 and step != max_steps and not scored:
            continue
        line = f"pretrain generator {step}/{max_steps}: mle_loss {mean_loss(loss):.3f}"
        if scored:
            nll = result.curve[step] = generator_nll(agent.generator, valid)
            if nll < best:
                best, result.best_step, bad = nll, step, 0
                best_state = copy.deepcopy(agent.generator.state_dict())
            else:
                bad += 1
            line += f", valid_nll {nll:.4f} (best {best:.4f} at step {result.best_step})"
        log(line)
        if scored and bad >= patience and drops_left:
            drops_left, bad, result.lr_drop_step = drops_left - 1, 0, step
            agent.generator.load_state_dict(best_state)
            for group in agent.optimizer.param_groups:
                group["lr"] *= lr_drop
            log(f"pretrain generator: validation NLL did not improve for {patience} scores; weights of step "
                f"{result.best_step} restored, learning rate x{lr_drop:g} to {agent.optimizer.param_groups[0]['lr']:.3g}")
        elif scored and bad >= patience:
            log(f"pretrain generator: validation NLL did not improve for {bad} scores; stopped at step {step}, "
                f"weights of step {result.best_step} restored")
            break
    result.steps = step
    for group, lr in zip(agent.optimizer.param_groups, rates):
        group["lr"] = lr
    if best_state is not None:
        agent.generator.load_state_dict(best_state)
        result.valid_nll = best
    return result


__all__ = ["MLEFitConfig", "MLEFitResult", "PretrainResult", "fit_mle", "pretrain_mle"]
