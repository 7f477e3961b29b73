"""The REINFORCE agent: collect episodes, then one policy-gradient update (plus optional MLE mixing).

The generator is a causal LM called like a transformers one (``generator(input_ids=...).logits``): a
``transformers`` model such as our tiny ``LlamaForCausalLM``, or SeqGAN's LSTM family
(``seqgan_env.models.lstm``, whose (h, c) state is its cache). One training iteration is:

1. ``collect(venv)`` (:mod:`seqgan_agents.reinforce.rollout`): reset the vector env and sample
   one episode per row with the model's KV cache, stepping the env with the sampled tokens and
   recording tokens, rewards, masks and the exact sampling distribution's support.
2. ``update(rollout, real=None)``: discounted returns -> baseline -> (optional)
   normalisation -> advantages (:mod:`seqgan_agents.reinforce.losses`); one teacher-forced
   forward pass with grad (:class:`~seqgan_agents.reinforce.teacher_forced.TeacherForced`)
   recomputes the log-probabilities *of the distribution that was sampled from* (same action
   masks, temperature and nucleus); loss = policy-gradient loss - entropy bonus
   (+ ``mle_coef`` x MLE loss on real data); clip, AdamW step, scheduler step.

Shapes: B = rows (envs), T = max_length, V = vocab size, N = real sequences.
Token ids: PAD=0, BOS=1, EOS=2 (``seqgan_env.envs.spec``).
"""

from __future__ import annotations

import contextlib
import copy
import math
from typing import Any, Callable

import torch
import torch.nn.functional as F

from seqgan_agents.distributed import SINGLE, DistContext, all_reduce_sum, any_flag
from seqgan_env.envs.spec import BOS_ID, PAD_ID, EnvConfig
from seqgan_env.models.sampling import KVStepper, TokenSampler, sample_sequences, sampling_logits
from seqgan_env.rewards.sources import INFO_PREFIX, KL
from seqgan_env.utils.codec import (
    flatten_optimizer_state,
    flatten_scheduler_state,
    load_optimizer_state,
    unflatten_scheduler_state,
)

from seqgan_agents.reinforce.config import ReinforceConfig, resolve_device
from seqgan_agents.reinforce.losses import apply_baseline, discounted_returns, normalize, trim_padding
from seqgan_agents.reinforce.losses import entropy as masked_entropy
from seqgan_agents.reinforce.rollout import Rollout, collect
from seqgan_agents.reinforce.teacher_forced import TeacherForced


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
        self._kv = KVStepper(self.generator, self.fast_decode)  # the cached step of collect and sample

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
        self._kv.fast = self.fast_decode
        return self._kv.start(batch, capacity, self._autocast)

    def collect(self, venv) -> Rollout:
        """Reset ``venv`` and sample until every row has finished its first episode (<= T steps).

        The sampling distribution is ``config.temperature`` and ``config.top_p`` under the env's
        action masks (:func:`seqgan_agents.reinforce.rollout.collect`); draws use the agent's RNG.
        """
        sampler = TokenSampler(None, self.config.temperature, self.config.top_p, self.rng, with_logp=True)
        return collect(venv, self._stepper, sampler, self.device)

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
            entropy = (masked_entropy(x, logp_all) * mask).sum() / n
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

        Raises:
            ValueError: temperature <= 0 or top_p outside (0, 1].
        """
        if temperature <= 0 or not 0 < top_p <= 1:
            raise ValueError(f"temperature={temperature!r} must be > 0 and top_p={top_p!r} in (0, 1].")
        dev = self.device
        if seed is None:
            gen = self.rng
        else:
            gen = torch.Generator(device=dev) if dev.type == "cuda" else torch.Generator()
            gen.manual_seed(seed)
        spec = EnvConfig(vocab_size=self.generator.config.vocab_size, max_length=max_length, min_length=min_length,
                         allow_eos=allow_eos)
        self._kv.fast = self.fast_decode
        return sample_sequences(self.generator, n, spec, TokenSampler(spec, temperature, top_p, gen), self._kv,
                                use_cache, self._autocast)

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
