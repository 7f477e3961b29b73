"""The SeqGAN discriminator: a trainable realness scorer for token sequences.

:class:`Discriminator` wraps a :class:`~seqgan_env.models.networks.DiscriminatorNet`
with an AdamW optimizer (optionally on a OneCycle schedule), gradient
accumulation, gradient clipping and pickle-free checkpointing (safetensors +
JSON).  Scoring is always done in eval mode under ``torch.no_grad()``; the net
is only in train mode inside :meth:`Discriminator.update`.

Inputs are env observations: ``(B, T)`` long token ids, right-padded with
PAD=0 (no attention mask needed), or left-padded together with a 2D 0/1
``attention_mask``.

Losses live in the :data:`LOSSES` registry; each maps ``(head (N, K), target
(N,) in [0, 1])`` to a scalar mean loss.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
from dataclasses import dataclass
from typing import Any, Callable, Literal

import numpy as np
import torch
import torch.nn.functional as F

from seqgan_env.models.networks import DiscriminatorNet, ModelConfig, last_token_index
from seqgan_env.utils.atomic import atomic_save_tensors, atomic_write_json
from seqgan_env.utils.codec import (
    flatten_optimizer_state,
    flatten_scheduler_state,
    load_optimizer_state,
    load_tensors,
    read_json,
    unflatten_scheduler_state,
)
from seqgan_env.utils.validation import check_int, check_number, is_number

WEIGHTS_FILE = "discriminator.safetensors"
OPTIM_FILE = "discriminator_optim.safetensors"
META_FILE = "discriminator.json"
FORMAT_VERSION = 2  # 2: optimizer and scheduler state in the utils.codec format


# ----------------------------------------------------------------------------
# loss registry


def _check_head(name: str, head: torch.Tensor, target: torch.Tensor, k: int) -> None:
    if head.dim() != 2 or head.shape[1] != k:
        raise ValueError(
            f"loss '{name}' needs head of shape (N, {k}), got {tuple(head.shape)}; build the "
            f"net with num_outputs=num_outputs_for('{name}')={k}."
        )
    if target.shape != head.shape[:1]:
        raise ValueError(
            f"loss '{name}': target shape {tuple(target.shape)} must be (N,) = ({head.shape[0]},)."
        )


def bce_loss(head: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Binary cross entropy on a single realness logit (K=1)."""
    _check_head("bce", head, target, 1)
    return F.binary_cross_entropy_with_logits(head[:, 0], target)


def mse_loss(head: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Least-squares GAN loss on probabilities: mean((sigmoid(logit) - target)^2), K=1."""
    _check_head("mse", head, target, 1)
    return (torch.sigmoid(head[:, 0]) - target).pow(2).mean()


def ce_loss(head: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Two-class cross entropy with soft targets [1 - target, target] (K=2: [fake, real])."""
    _check_head("ce", head, target, 2)
    logp = F.log_softmax(head, dim=-1)  # (N, 2)
    return -((1.0 - target) * logp[:, 0] + target * logp[:, 1]).mean()


LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "bce": bce_loss,
    "mse": mse_loss,
    "ce": ce_loss,
}
_NUM_OUTPUTS = {"bce": 1, "mse": 1, "ce": 2}


def get_loss(name: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The loss function registered under ``name`` (ValueError listing valid names)."""
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; valid names are {sorted(LOSSES)}.")
    return LOSSES[name]


def num_outputs_for(loss_name: str) -> int:
    """Number of head outputs K that loss ``loss_name`` expects."""
    get_loss(loss_name)
    return _NUM_OUTPUTS.get(loss_name, 1)


# ----------------------------------------------------------------------------
# config


@dataclass
class DiscriminatorConfig:
    """Training hyper-parameters of the discriminator.

    The loss of one update is ``0.5 * mean(loss over real positions) +
    0.5 * mean(loss over fake positions)``, where the positions are every real
    prefix (``prefix_loss=True``: positions up to and including the last real
    token, pooled over the batch) or only the last real token of each row.
    With ``prefix_loss=True``, ``sequence_weight`` w mixes in the whole-sequence loss:
    ``(1 - w) * pooled prefix loss + w * loss at each row's last token``. Pooled over
    all prefixes the loss is dominated by short prefixes, which real and generated
    rows share; the whole-sequence term is where they differ.

    Fields: loss (``bce`` | ``mse`` | ``ce``); real_label / fake_label (targets; 0.9
    is one-sided label smoothing); lr, betas, weight_decay (AdamW); grad_accum_steps
    (micro-batches per update); max_grad_norm (None: no clipping);
    onecycle_total_steps (None: constant lr); prefix_loss; sequence_weight in [0, 1].
    """

    loss: Literal["bce", "mse", "ce"] = "bce"
    """Loss on the head: binary cross entropy, least squares on probabilities, or two-class CE."""
    real_label: float = 0.9
    """Target of real rows in (0, 1]; 0.9 is one-sided label smoothing."""
    fake_label: float = 0.0
    """Target of generated rows in [0, real_label)."""
    lr: float = 1e-3
    """AdamW learning rate."""
    betas: tuple[float, float] = (0.9, 0.999)
    """AdamW betas, each in [0, 1)."""
    weight_decay: float = 0.0
    """AdamW weight decay (>= 0)."""
    grad_accum_steps: int = 1
    """Micro-batches per update (the gradient equals the full batch's)."""
    max_grad_norm: float | None = 1.0
    """Gradient clipping; None: none."""
    onecycle_total_steps: int | None = None
    """Updates of a OneCycle lr schedule; None: constant lr."""
    prefix_loss: bool = False
    """Loss on every prefix (pooled) rather than only on each row's last token."""
    sequence_weight: float = 0.0
    """With prefix_loss: share of the loss on whole-sequence scores, in [0, 1]."""
    pretrained: str | None = None
    """A directory with a model transformers can load: its base model is the backbone under the head
    (seqgan_env.models.pretrained); None: a fresh tiny Llama of the model config."""

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ValueError(
                f"loss={self.loss!r} is unknown: it must be one of {sorted(LOSSES)}; "
                f"pass e.g. loss='bce'."
            )
        check_number("real_label", self.real_label, 0, 1, "use 1.0 (hard) or 0.9 (one-sided label smoothing)",
                     low_open=True)
        check_number("fake_label", self.fake_label, 0, 1, "use 0.0", high_open=True)
        if self.fake_label >= self.real_label:
            raise ValueError(
                f"fake_label={self.fake_label} must be < real_label={self.real_label}; "
                f"lower fake_label or raise real_label."
            )
        self.real_label = float(self.real_label)
        self.fake_label = float(self.fake_label)
        self.lr = check_number("lr", self.lr, 0, fix="pass e.g. lr=1e-3", low_open=True)
        betas = tuple(self.betas) if isinstance(self.betas, (tuple, list)) else None
        if betas is None or len(betas) != 2 or not all(is_number(b) and 0.0 <= b < 1.0
                                                       for b in betas):
            raise ValueError(
                f"betas={self.betas!r} is invalid: it must be two numbers, each in [0, 1); "
                f"pass e.g. betas=(0.9, 0.999)."
            )
        self.betas = (float(betas[0]), float(betas[1]))
        self.weight_decay = check_number("weight_decay", self.weight_decay, 0, fix="use 0.0 to disable it")
        check_int("grad_accum_steps", self.grad_accum_steps, 1, "use 1 for no accumulation")
        if self.max_grad_norm is not None:
            self.max_grad_norm = check_number("max_grad_norm", self.max_grad_norm, 0,
                                              fix="None disables clipping", low_open=True)
        if self.onecycle_total_steps is not None:
            check_int("onecycle_total_steps", self.onecycle_total_steps, 2,
                      "the number of updates of the schedule, or None for a constant lr")
        if not isinstance(self.prefix_loss, bool):
            raise ValueError(f"prefix_loss={self.prefix_loss!r} is invalid: it must be "
                             f"True or False.")
        self.sequence_weight = check_number(
            "sequence_weight", self.sequence_weight, 0, 1,
            "the share of the loss on whole-sequence scores: 0 (prefixes only) to 1 (= prefix_loss=False)")
        if self.pretrained is not None and (not isinstance(self.pretrained, str) or not self.pretrained):
            raise ValueError(f"pretrained={self.pretrained!r} is invalid: it must be a directory path or None.")


_FIX = "fix: re-create the checkpoint with Discriminator.save(directory)"


# ----------------------------------------------------------------------------
# the discriminator


class Discriminator:
    """Trainable realness scorer (see module docstring).

    ``seed`` (optional) makes the weight initialisation deterministic without
    disturbing the global torch RNG.  Attributes: ``net``, ``optimizer``,
    ``scheduler`` (OneCycleLR or None), ``num_updates``, ``config``,
    ``model_config``, ``vocab_size``, ``device``, ``train_net`` (the module
    :meth:`update` runs forward with grad: ``net``, or its
    DistributedDataParallel wrapper after :meth:`distribute`).
    """

    def __init__(
        self,
        vocab_size: int,
        model_config: ModelConfig | None = None,
        config: DiscriminatorConfig | None = None,
        device: str | torch.device = "cpu",
        seed: int | None = None,
        tokenizer: Any = None,
    ) -> None:
        """``tokenizer``: the run's, to which a ``config.pretrained`` backbone's embeddings are aligned
        (None: the directory's own tokenizer)."""
        self.vocab_size = vocab_size
        self.model_config = model_config if model_config is not None else ModelConfig()
        self.config = config if config is not None else DiscriminatorConfig()
        self.device = torch.device(device)
        k = num_outputs_for(self.config.loss)

        def build() -> DiscriminatorNet:
            backbone = None
            if self.config.pretrained is not None:
                from seqgan_env.models.pretrained import pretrained_backbone

                backbone = pretrained_backbone(self.config.pretrained, tokenizer, vocab_size)
            return DiscriminatorNet(self.model_config, vocab_size, num_outputs=k, backbone=backbone)

        if seed is None:
            net = build()
        else:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                net = build()
        self.net = net.to(self.device)
        self.net.eval()
        self.loss_fn = get_loss(self.config.loss)
        cfg = self.config
        self.optimizer = torch.optim.AdamW(self.net.parameters(), lr=cfg.lr, betas=cfg.betas,
                                           weight_decay=cfg.weight_decay)
        self.scheduler: torch.optim.lr_scheduler.OneCycleLR | None = None
        if cfg.onecycle_total_steps is not None:
            # beta1 cycles between base_momentum and max_momentum (= the configured beta1)
            self.scheduler = torch.optim.lr_scheduler.OneCycleLR(
                self.optimizer, max_lr=cfg.lr, total_steps=cfg.onecycle_total_steps,
                cycle_momentum=True, max_momentum=cfg.betas[0],
                base_momentum=min(0.85, cfg.betas[0]),
            )
        self.num_updates = 0
        self.world_size = 1
        self.train_net: torch.nn.Module = self.net
        self._all_reduce: Callable[[torch.Tensor], torch.Tensor] | None = None

    def distribute(self, world_size: int, all_reduce: Callable[[torch.Tensor], torch.Tensor],
                   device_ids: list[int] | None = None) -> None:
        """Train data-parallel over ``world_size`` ranks (a torch.distributed process group must exist).

        ``all_reduce`` sums a tensor over ranks. :meth:`update` then runs the net
        wrapped in DistributedDataParallel (rank 0's weights are broadcast at
        construction; gradients are averaged once per update, after all
        ``grad_accum_steps`` micro-batches) and weights every micro-loss by the
        selected positions of ALL ranks, so the averaged gradient is the gradient of
        the full (all-rank) batch loss. Scoring keeps the plain ``net``. ``world_size``
        1 changes nothing.
        """
        check_int("world_size", world_size, 1)
        if world_size == 1:
            return
        from torch.nn.parallel import DistributedDataParallel

        self.world_size = world_size
        self._all_reduce = all_reduce
        self.train_net = DistributedDataParallel(self.net, device_ids=device_ids)

    @property
    def decision_logit(self) -> float:
        """Logit of the midpoint between the label targets, (real_label + fake_label) / 2.

        With one-sided label smoothing (real_label 0.9) a discriminator that cannot
        tell real from fake outputs 0.45, not 0.5; thresholding at 0.5 would report
        every real sequence as misclassified. Accuracies use this midpoint instead.
        """
        p = 0.5 * (self.config.real_label + self.config.fake_label)
        return math.log(p / (1.0 - p))

    # -- inputs ----------------------------------------------------------------

    def _as_tokens(self, tokens: Any, name: str = "tokens") -> torch.Tensor:
        t = torch.as_tensor(np.asarray(tokens) if not torch.is_tensor(tokens) else tokens)
        if t.dim() != 2:
            raise ValueError(f"{name} must be a (B, T) array of token ids, got shape "
                             f"{tuple(t.shape)}; add a batch dimension with tokens[None].")
        if t.is_floating_point() or t.is_complex():
            raise ValueError(f"{name} must hold integer token ids, got dtype {t.dtype}.")
        return t.to(device=self.device, dtype=torch.long)

    def _as_mask(self, mask: Any, tokens: torch.Tensor, name: str = "attention_mask"
                 ) -> torch.Tensor | None:
        if mask is None:
            return None
        m = torch.as_tensor(np.asarray(mask) if not torch.is_tensor(mask) else mask)
        if m.shape != tokens.shape:
            raise ValueError(f"{name} shape {tuple(m.shape)} must equal the tokens' shape "
                             f"{tuple(tokens.shape)} (a 2D 0/1 mask).")
        return m.to(device=self.device, dtype=torch.long)

    # -- scoring ---------------------------------------------------------------

    @torch.no_grad()
    def score_logits(self, tokens: Any, attention_mask: Any = None) -> torch.Tensor:
        """Per-prefix realness logits (B, T) in eval mode (dropout off), no grad."""
        x = self._as_tokens(tokens)
        m = self._as_mask(attention_mask, x)
        self.net.eval()
        return self.net(x, attention_mask=m).logits  # (B, T)

    def score(self, tokens: Any, attention_mask: Any = None) -> torch.Tensor:
        """Per-prefix probabilities of being real, (B, T) = sigmoid(score_logits)."""
        return torch.sigmoid(self.score_logits(tokens, attention_mask))

    def sequence_scores(self, tokens: Any, attention_mask: Any = None) -> torch.Tensor:
        """Probability of being real of each whole sequence (at its last real token), (B,)."""
        return torch.sigmoid(self.sequence_logits(tokens, attention_mask))  # (B,)

    def sequence_logits(self, tokens: Any, attention_mask: Any = None) -> torch.Tensor:
        """Realness logit of each whole sequence (at its last real token), (B,), eval mode, no grad.

        The logit, not the probability: a density-ratio estimate log(D / (1 - D)) that does not
        saturate in float32 the way sigmoid does (seqgan_env.eval.density_ratio).
        """
        x = self._as_tokens(tokens)
        m = self._as_mask(attention_mask, x)
        logits = self.score_logits(x, m)  # (B, T)
        idx = last_token_index(x, m)  # (B,)
        return logits.gather(1, idx[:, None]).squeeze(1)  # (B,)

    # -- training --------------------------------------------------------------

    def _loss_positions(self, x: torch.Tensor, m: torch.Tensor | None) -> torch.Tensor:
        """Bool (B, T): the positions whose logits enter the loss."""
        last = last_token_index(x, m)  # (B,)
        pos = torch.arange(x.shape[1], device=x.device)[None, :]  # (1, T)
        if self.config.prefix_loss:
            sel = pos <= last[:, None]  # (B, T)
            if m is not None:
                sel = sel & (m != 0)
        else:
            sel = pos == last[:, None]  # (B, T)
        return sel

    def _accumulate_grads(self, real: Any, fake: Any, real_mask: Any = None,
                          fake_mask: Any = None) -> dict[str, torch.Tensor]:
        """Accumulate into ``.grad`` the gradient of the full-batch loss.

        Real and fake are each split into ``grad_accum_steps`` micro-batches;
        every micro-loss is weighted by its share of the selected positions so
        the accumulated gradient equals the full-batch gradient for any split.
        Does not zero grads, change train/eval mode or step.  Raises
        FloatingPointError (grads zeroed) on a non-finite loss.  Returns
        detached ``loss`` (scalar) and per-sequence logits ``real_logits``
        (Nr,), ``fake_logits`` (Nf,).

        Data-parallel (after :meth:`distribute`): the position counts are summed
        over ranks and each micro-loss is scaled by world_size, so ``loss`` is this
        rank's share x world_size (the mean over ranks is the full-batch loss); DDP
        syncs gradients on the last micro-batch only; every forward gets a backward
        (an empty micro-batch backs up a zero) and a non-finite loss on any rank
        makes every rank raise, so the ranks never fall out of step.
        """
        k = self.config.grad_accum_steps
        xr, xf = self._as_tokens(real, "real"), self._as_tokens(fake, "fake")
        mr, mf = self._as_mask(real_mask, xr, "real_mask"), self._as_mask(fake_mask, xf, "fake_mask")
        for name, x in (("real", xr), ("fake", xf)):
            if x.shape[0] < k:
                raise ValueError(
                    f"{name} batch has {x.shape[0]} rows but grad_accum_steps={k}: every batch "
                    f"needs at least grad_accum_steps rows; pass a larger batch or lower "
                    f"grad_accum_steps."
                )
        total = torch.zeros((), device=self.device)
        seq_logits: dict[str, list[torch.Tensor]] = {"real": [], "fake": []}
        w = self.world_size
        parts = [("real", xr, mr, self.config.real_label), ("fake", xf, mf, self.config.fake_label)]
        sels = [self._loss_positions(x, m) for _, x, m, _ in parts]  # each (N, T)
        n_totals = [int(sel.sum()) for sel in sels]
        if w > 1:  # positions of every rank: the full-batch means' denominators
            n_totals = [int(v) for v in self._all_reduce(torch.tensor(n_totals, device=self.device)).tolist()]
        nonfinite = ""
        n_passes, done = 2 * k, 0
        # prefix_loss=False already puts the whole loss on the last token
        seq_w = self.config.sequence_weight if self.config.prefix_loss else 0.0
        for (name, x, m, label), sel, n_total in zip(parts, sels, n_totals):
            n_rows = x.shape[0] * w  # every rank has the same batch size
            idx_chunks = torch.tensor_split(torch.arange(x.shape[0], device=x.device), k)
            for idx in idx_chunks:
                done += 1
                sync = w == 1 or done == n_passes  # DDP: all-reduce once, on the last micro-batch
                with contextlib.nullcontext() if sync else self.train_net.no_sync():
                    xc, sc = x[idx], sel[idx]  # (n, T)
                    mc = None if m is None else m[idx]
                    out = self.train_net(xc, attention_mask=mc)
                    last = last_token_index(xc, mc)  # (n,)
                    seq_logits[name].append(out.logits.detach().gather(1, last[:, None]).squeeze(1))
                    head = out.head[sc]  # (P, K)
                    if head.shape[0] == 0:  # e.g. rows whose attention mask is all zero
                        if w > 1:
                            (out.head.sum() * 0.0).backward()  # DDP needs a backward after every forward
                        continue
                    target = torch.full((head.shape[0],), label, device=head.device, dtype=head.dtype)
                    # micro mean * (P * w / n_total) == this chunk's share of the full-batch mean (x w for DDP's mean)
                    micro = 0.5 * (1.0 - seq_w) * self.loss_fn(head, target) * (head.shape[0] * w / max(n_total, 1))
                    if seq_w > 0:  # the whole-sequence term: each row's last real token, a mean over all rows
                        rows = out.head.gather(1, last[:, None, None].expand(-1, 1, out.head.shape[2])).squeeze(1)
                        row_target = torch.full((rows.shape[0],), label, device=rows.device, dtype=rows.dtype)
                        micro = micro + 0.5 * seq_w * self.loss_fn(rows, row_target) * (rows.shape[0] * w / n_rows)
                    if not torch.isfinite(micro):
                        nonfinite = f"discriminator loss is {micro.item()} (non-finite) on a {name} micro-batch"
                        if w == 1:
                            self.optimizer.zero_grad(set_to_none=True)
                            raise FloatingPointError(
                                f"{nonfinite}; no optimizer step was taken. Lower lr, enable "
                                f"max_grad_norm, or check the inputs."
                            )
                    micro.backward()
                    total += micro.detach()
        if w > 1 and int(self._all_reduce(torch.tensor([1 if nonfinite else 0], device=self.device)).item()) > 0:
            self.optimizer.zero_grad(set_to_none=True)
            raise FloatingPointError(
                f"{nonfinite or 'discriminator loss is non-finite on another rank'}; no optimizer step was "
                f"taken on any rank. Lower lr, enable max_grad_norm, or check the inputs."
            )
        return {"loss": total, "real_logits": torch.cat(seq_logits["real"]),
                "fake_logits": torch.cat(seq_logits["fake"])}

    def update(self, real: Any, fake: Any, real_mask: Any = None, fake_mask: Any = None
               ) -> dict[str, float]:
        """One optimizer step on real (Nr, T) vs fake (Nf, T) sequences.

        Returns floats ``loss``, ``acc_real`` (fraction of real with P(real) above
        the decision threshold), ``acc_fake`` (fraction of fake at or below it), ``grad_norm``
        (before clipping) and ``lr`` (the lr used for this step).  Raises
        FloatingPointError without stepping on a non-finite loss or gradient.
        The net is back in eval mode afterwards, also on error.  Once a
        OneCycle schedule is exhausted the lr stays at its final value.
        """
        self.optimizer.zero_grad(set_to_none=True)
        self.train_net.train()
        try:
            stats = self._accumulate_grads(real, fake, real_mask, fake_mask)
            params = [p for p in self.net.parameters() if p.grad is not None]
            max_norm = self.config.max_grad_norm if self.config.max_grad_norm is not None \
                else float("inf")
            grad_norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
            if not torch.isfinite(grad_norm):
                self.optimizer.zero_grad(set_to_none=True)
                raise FloatingPointError(
                    f"discriminator gradient norm is {grad_norm.item()} (non-finite); no "
                    f"optimizer step was taken. Lower lr or check the inputs."
                )
            lr = float(self.optimizer.param_groups[0]["lr"])
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            if self.scheduler is not None and \
                    self.scheduler.last_epoch < self.scheduler.total_steps - 1:
                self.scheduler.step()
            self.num_updates += 1
        finally:
            self.train_net.eval()
        return {
            "loss": float(stats["loss"]),
            "acc_real": float((stats["real_logits"] > self.decision_logit).float().mean()),
            "acc_fake": float((stats["fake_logits"] <= self.decision_logit).float().mean()),
            "grad_norm": float(grad_norm),
            "lr": lr,
        }

    # -- weights & checkpoints ---------------------------------------------------

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The net's weights as plain detached CPU tensors (for syncing copies)."""
        return {k: v.detach().cpu().clone() for k, v in self.net.state_dict().items()}

    def load_state_dict(self, sd: dict[str, torch.Tensor], source: str = "state dict") -> None:
        """Load net weights; ValueError on missing/unexpected keys or shape mismatch."""
        own = self.net.state_dict()
        missing = sorted(set(own) - set(sd))
        unexpected = sorted(set(sd) - set(own))
        if missing or unexpected:
            raise ValueError(
                f"{source} does not match the discriminator: missing keys {missing[:5]}, "
                f"unexpected keys {unexpected[:5]}; build the Discriminator with the same "
                f"ModelConfig, vocab_size and loss as the weights."
            )
        for k, v in own.items():
            if tuple(sd[k].shape) != tuple(v.shape):
                raise ValueError(
                    f"{source}: tensor {k!r} has shape {tuple(sd[k].shape)} but the "
                    f"discriminator expects {tuple(v.shape)}; build the Discriminator with the "
                    f"same ModelConfig, vocab_size and loss as the weights."
                )
        self.net.load_state_dict({k: torch.as_tensor(v) for k, v in sd.items()})

    def save(self, directory: str | os.PathLike) -> None:
        """Write weights, optimizer state and JSON metadata into ``directory`` (atomically)."""
        directory = os.fspath(directory)
        os.makedirs(directory, exist_ok=True)
        atomic_save_tensors(os.path.join(directory, WEIGHTS_FILE), self.net.state_dict())
        opt_tensors, opt_meta = flatten_optimizer_state(self.optimizer.state_dict())
        atomic_save_tensors(os.path.join(directory, OPTIM_FILE), opt_tensors)
        sched = flatten_scheduler_state(self.scheduler.state_dict())[1] if self.scheduler is not None else None
        meta = {
            "format_version": FORMAT_VERSION,
            "vocab_size": self.vocab_size,
            "model_config": dataclasses.asdict(self.model_config),
            "config": {k: (list(v) if isinstance(v, tuple) else v)
                       for k, v in dataclasses.asdict(self.config).items()},
            "num_updates": self.num_updates,
            "optimizer": opt_meta,
            "scheduler": sched,
        }
        atomic_write_json(os.path.join(directory, META_FILE), meta)

    @classmethod
    def load(cls, directory: str | os.PathLike, device: str | torch.device = "cpu"
             ) -> "Discriminator":
        """Restore a discriminator written by :meth:`save` (ValueError on bad files)."""
        directory = os.fspath(directory)
        meta_path = os.path.join(directory, META_FILE)
        meta = read_json(meta_path, _FIX)
        if meta.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{meta_path} has format_version={meta.get('format_version')!r}, this code reads "
                             f"{FORMAT_VERSION}; re-create the checkpoint with Discriminator.save(directory).")
        try:
            model_config = ModelConfig(**meta["model_config"])
            config = DiscriminatorConfig(**meta["config"])
            vocab_size = int(meta["vocab_size"])
            num_updates = int(meta["num_updates"])
            opt_meta, sched_meta = meta["optimizer"], meta["scheduler"]
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"invalid metadata in {meta_path} ({e}); re-create the checkpoint "
                             f"with Discriminator.save(directory).") from e
        # seed only so that building does not consume the global RNG; weights are overwritten
        disc = cls(vocab_size, model_config, config, device=device, seed=0)

        weights_path = os.path.join(directory, WEIGHTS_FILE)
        disc.load_state_dict(load_tensors(weights_path, _FIX), source=weights_path)

        optim_path = os.path.join(directory, OPTIM_FILE)
        load_optimizer_state(disc.optimizer, load_tensors(optim_path, _FIX), opt_meta, optim_path, _FIX)
        if disc.scheduler is not None and sched_meta is not None:
            disc.scheduler.load_state_dict(unflatten_scheduler_state({}, sched_meta))
        disc.num_updates = num_updates
        disc.net.eval()
        return disc
