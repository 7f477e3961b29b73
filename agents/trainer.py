"""Adversarial training: a REINFORCE generator against a co-trained discriminator.

One readable loop (CleanRL style, ``Trainer.train_step``): ``trainer_config.TrainConfig`` is
the single source of defaults, the vector env with its discriminator reward is the single
source of rewards, ``DiscriminatorUpdateCallback`` decides when D trains, and ``RunDir``
records everything needed to redo or resume the run. Starting, resuming and loading runs
for sampling: ``lifecycle``.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

import torch

from seqgan_agents import distributed, trainer_state
from seqgan_agents.ddo import DDOUpdater
from seqgan_agents.distributed import DistContext
from seqgan_agents.mle import pretrain_mle
from seqgan_agents.reinforce import ReinforceAgent
from seqgan_agents.trainer_config import TrainConfig, with_data_length
from seqgan_env.data.text import TextDataset
from seqgan_env.envs.vector_env import TokenGenerationVectorEnv
from seqgan_env.eval.discriminator_health import health_report
from seqgan_env.eval.likelihood import generator_nll
from seqgan_env.eval.metrics import CHARACTER_METRICS, BigramModel, sample_report
from seqgan_env.models.discriminator import Discriminator
from seqgan_env.data.subword import save_tokenizer_files
from seqgan_env.models.pretrained import make_generator
from seqgan_env.rewards.callbacks import DiscriminatorUpdateCallback
from seqgan_env.rewards.mc_rollout import make_mc_rollout_scorer
from seqgan_env.rewards.sources import split_kl
from seqgan_env.rewards.wrappers import DiscriminatorRewardVector
from seqgan_env.runs.alarms import EVAL_ALARMS, SAMPLE_ALARMS, UPDATE_ALARMS, AlarmMonitor, alarm_metrics
from seqgan_env.runs.rundir import RunDir, save_generator_export


class Trainer:
    """Builds the data, models, env and run directory from a ``TrainConfig`` and runs the loop.

    Data-parallel (``dist`` with world_size > 1, default: the existing process group):
    every rank builds identical models (seeded with ``seed``) and its own env batch, and
    samples and draws data from its own stream (``dist.rank_seed``); the generator and
    discriminator steps go through DDP; metrics are averaged over ranks; only rank 0
    logs, evaluates and writes (``run`` is a :class:`FollowerRun` on the other ranks).
    """

    def __init__(
        self, config: TrainConfig, run: RunDir, data: TextDataset, log: Callable[[str], None] | None = None,
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
        self.data: TextDataset = data
        cfg = self.config = with_data_length(config, self.data.max_length)
        tok = self.data.tokenizer
        if self.dist.is_main and not (run.path / "tokenizer.json").is_file():
            tok.save(run.path / "tokenizer.json")
        generator = make_generator(cfg.generator, tok)  # a fresh tiny Llama, or generator.pretrained aligned to tok
        seed = self.dist.rank_seed(cfg.seed)  # this rank's sampling / data stream (rank 0: cfg.seed)
        self.agent = ReinforceAgent(generator, cfg.reinforce, seed=seed)
        self.device = self.agent.device
        self.discriminator = Discriminator(
            tok.vocab_size, cfg.discriminator_model, cfg.discriminator, device=self.device, seed=cfg.seed + 1,
            tokenizer=tok,
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
        env_sources, _ = split_kl(cfg.reward.sources)  # the KL term is the agent's (reinforce.kl_coef)
        self.venv = DiscriminatorRewardVector(base, scorer, cfg.reward, real_data=self.real, seed=seed,
                                              sources=env_sources)
        mean_over_ranks = ((lambda x: distributed.mean_metrics({"acc": x}, self.dist)["acc"])
                           if self.dist.is_distributed else None)
        self.callback = DiscriminatorUpdateCallback(self.venv, self._sample_fake, cfg.d_updates, mean_over_ranks)
        self.bigram = BigramModel.fit(self.data.valid_texts)
        self.real_gen = torch.Generator().manual_seed(seed + 2)
        self.step = 0
        self.pretrained = False  # both pretraining phases done
        self.mle_pretrained = False  # the generator's MLE phase done (a checkpoint follows each phase)
        self.mle_steps = 0  # MLE pretraining steps trained (early stopping may end the phase before the cap)
        self.mle_best_step: int | None = None  # the step whose weights were kept (None: no validation score)
        self.mle_valid_nll: float | None = None  # their validation NLL per token
        # agent=ddo: DDO updates replace REINFORCE; its reference samples are drawn at temperature 1 (p_ref itself)
        self.ddo = DDOUpdater(self.agent, cfg.ddo, lambda n: self.sample_tokens(n)) if cfg.agent == "ddo" else None
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
        """Quality numbers of ``n`` samples at temperature 1, top-p 1, drawn with a fixed seed, and ``valid_nll``
        (the generator's NLL per token of the validation rows)."""
        n = n or self.config.schedule.eval_samples
        data_cfg = self.config.data
        tokens = self.sample_tokens(n, seed=seed)
        texts = self.data.tokenizer.decode_batch(tokens.cpu())
        report = sample_report(texts, self.data.train_texts, self.bigram)
        if data_cfg.is_oracle:  # the SeqGAN benchmark's numbers: quality (oracle's NLL of our samples), coverage
            for key in CHARACTER_METRICS:  # meaningless for integer tokens (as in `seqgan-env eval`)
                report.pop(key)
            report.update(self.data.benchmark_metrics(self.agent.generator, tokens))
        if len(self.data.valid):  # the exact held-out likelihood: what MLE early-stops on and DDO must improve
            report["valid_nll"] = generator_nll(self.agent.generator, self.data.valid.to(self.device))
        report.update(self.discriminator_health(n, seed + 1))
        return report, texts

    def discriminator_health(self, n: int, seed: int) -> dict[str, float]:
        """D (eval mode) on held-out real rows vs ``n`` fresh generated rows it never trained on.

        ``d_auc`` (0.5: chance), ``d_ece`` (calibration), ``d_real`` / ``d_fake`` (mean P(real));
        ``d_gain_nats`` / ``d_gain_nats_per_token`` (what D knows in nats: E_real[s] - log E_G[exp(s)]),
        ``d_gain_se`` (its standard error per sequence), ``d_gain_ess`` (ESS of exp(s) over the n fakes);
        {} without a validation split.
        """
        real = self.data.valid
        if len(real) == 0 or self.ddo is not None:  # agent=ddo trains no discriminator
            return {}
        fake = self.sample_tokens(n, seed=seed)  # (n, T) own seed: the training RNG does not move
        h = health_report(None, real.to(self.device), fake, sequence_logits=self.discriminator.sequence_logits)
        return {"d_auc": h["auc"], "d_ece": h["ece"], "d_real": h["real_mean"], "d_fake": h["fake_mean"],
                "d_gain_nats": h["gain_nats"], "d_gain_nats_per_token": h["gain_nats_per_token"],
                "d_gain_se": h["gain_se"], "d_gain_ess": h["ess"]}

    def pretrain(self, checkpoint: bool = False) -> None:
        """MLE pretraining of the generator, then of D on real vs generated (as SeqGAN).

        ``checkpoint``: save a checkpoint at the end of each phase (``fit`` does), so an error in the
        adversarial phase (a reward source that raises) leaves a run that resumes after pretraining. A run
        resumed between the phases skips the MLE phase.
        """
        sch = self.config.schedule
        if not self.mle_pretrained:
            self._pretrain_generator()
            self.mle_pretrained = True
            if checkpoint:
                self.save_checkpoint()
        d_steps = 0 if self.ddo is not None else sch.d_pretrain_for(self.mle_steps)  # DDO has no separate D
        for i in range(d_steps):
            m = self.venv.update_discriminator(self._sample_fake(self.config.d_updates.batch_size))
            if i + 1 == d_steps:
                m = distributed.mean_metrics(m, self.dist)
                self.log(f"pretrain discriminator {i + 1}/{d_steps}: loss {m['loss']:.3f}")
        if self.mc_scorer is not None:  # SeqGAN: the rollout policy starts as the pretrained generator
            self.mc_scorer.update_rollout_policy(self.agent.generator, rate=0.0)
        if self.config.reinforce.kl_coef > 0 and self.ddo is None:  # the KL term holds the policy near where the adversarial phase starts
            self.agent.set_reference()
        self.pretrained = True
        if checkpoint:
            self.save_checkpoint()

    def _pretrain_generator(self) -> None:
        """MLE steps until the validation NLL stops improving, with one learning-rate drop on the way
        (``ScheduleConfig``); the best weights are restored.

        Every rank scores the same validation rows with the same weights, so all stop at the same step.
        Sets ``mle_steps``, ``mle_best_step`` and ``mle_valid_nll``.
        """
        sch = self.config.schedule
        b = self.config.reinforce.batch_size
        res = pretrain_mle(self.agent, lambda: self._real_batch(b), self.data.valid.to(self.device), sch.pretrain_steps,
                           sch.pretrain_eval_every, sch.pretrain_patience, self.log,
                           lambda loss: distributed.mean_metrics({"mle_loss": loss}, self.dist)["mle_loss"],
                           sch.pretrain_lr_drop)
        self.mle_steps, self.mle_best_step, self.mle_valid_nll = res.steps, res.best_step, res.valid_nll

    def pretrain_metrics(self) -> dict[str, float]:
        """What MLE pretraining did: steps trained, the step kept and its validation NLL (when scored)."""
        out = {"pretrain/mle_steps": self.mle_steps}
        if self.mle_best_step is not None:
            out.update({"pretrain/best_step": self.mle_best_step, "pretrain/valid_nll": self.mle_valid_nll})
        return out

    def train_step(self) -> dict[str, Any]:
        """One generator update, then the discriminator's schedule; the metrics are means over ranks."""
        if self.ddo is not None:
            return self._ddo_step()
        t0 = time.perf_counter()
        # 1. collect: one episode per env row, sampled from the generator with the KV cache
        # 2. reward: paid inside the env, step by step, by the discriminator reward wrapper
        rollout = self.agent.collect(self.venv)  # tokens, rewards, masks: (B, T)
        # 3. update: REINFORCE (+ MLE on real rows when mixing); a non-finite step is skipped
        real = self._real_batch(self.config.reinforce.batch_size) if self.config.reinforce.mle_coef > 0 else None
        try:
            metrics: dict[str, Any] = dict(self.agent.update(rollout, real))
        except FloatingPointError as exc:
            return self._skip_update(exc)
        self.nonfinite_in_a_row = 0
        if self.mc_scorer is not None:  # delayed copy: θ_rollout <- rate θ_rollout + (1 - rate) θ
            self.mc_scorer.update_rollout_policy(self.agent.generator)
        # 4. D phase: every d_updates.every generator updates, d_updates.d_steps discriminator updates
        metrics.update(self._discriminator_phase())
        # 5. log: bookkeeping, the mean over ranks, alarms
        metrics["d_lr"] = self.discriminator.optimizer.param_groups[0]["lr"]
        metrics["update_seconds"] = time.perf_counter() - t0
        metrics["tokens"] = int(rollout.mask.sum())
        metrics["nonfinite_total"] = self.nonfinite_total
        self.local_metrics = dict(metrics)
        metrics = distributed.mean_metrics(metrics, self.dist)  # a no-op for one process
        self._note_alarms(self.alarms.check_update(metrics), UPDATE_ALARMS, metrics)
        self.step += 1
        return metrics

    def _ddo_step(self) -> dict[str, Any]:
        """One DDO update (``agents/ddo.py``) on ``ddo.batch_size`` real rows; no env, no discriminator."""
        t0 = time.perf_counter()
        try:
            metrics: dict[str, Any] = {f"ddo/{k}": v for k, v in
                                       self.ddo.step(self._real_batch(self.config.ddo.batch_size)).items()}
        except FloatingPointError as exc:
            return self._skip_update(exc)
        self.nonfinite_in_a_row = 0
        metrics["update_seconds"] = time.perf_counter() - t0
        metrics["nonfinite_total"] = self.nonfinite_total
        self.local_metrics = dict(metrics)
        self.step += 1
        return metrics

    def _skip_update(self, exc: FloatingPointError) -> dict[str, Any]:
        """Count a refused non-finite generator update; stop the run after schedule.max_nonfinite in a row."""
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

    def _discriminator_phase(self) -> dict[str, Any]:
        """The D-update callback's turn; a non-finite D step changes nothing and is counted."""
        try:
            return self.callback.on_generator_update() or {}
        except FloatingPointError as exc:
            self.nonfinite_total += 1
            self.log(f"warning: discriminator update skipped: {exc} ({self.nonfinite_total} non-finite in total)")
            return {"discriminator/skipped_nonfinite": 1}

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
        """The checkpoint's (tensor groups, JSON meta); a collective when data-parallel
        (:func:`seqgan_agents.trainer_state.capture`)."""
        return trainer_state.capture(self)

    def save_checkpoint(self) -> Path:
        tensors, meta = self.state()
        return self.run.save_checkpoint(self.step, tensors, meta)

    def load_checkpoint(self, path: Path | None = None) -> None:
        """Resume the state of the checkpoint at ``path`` (default: the latest)
        (:func:`seqgan_agents.trainer_state.restore`)."""
        tensors, meta = self.run.load_checkpoint(path)
        trainer_state.restore(self, tensors, meta)

    def export_generator(self) -> Path:
        """``save_pretrained`` + tokenizer JSON, loadable by ``LlamaForCausalLM.from_pretrained(dir)``."""
        out = self.run.path / "generator"
        save_generator_export(self.agent.generator, out)
        save_tokenizer_files(self.data.tokenizer, out)  # subword: + tokenizer_config.json, for AutoTokenizer
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
                if main and not self.mle_pretrained:  # (resumed between the phases: logged before)
                    before, _ = self.evaluate()
                    self.run.log_metrics(0, {f"eval/untrained_{k}": v for k, v in before.items()})
                self.pretrain(checkpoint=True)
                if main:
                    after, _ = self.evaluate()
                    self.run.log_metrics(0, {**{f"eval/pretrained_{k}": v for k, v in after.items()},
                                             **self.pretrain_metrics()})
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
                    self._note_alarms(self.alarms.check_eval(report), EVAL_ALARMS, eval_metrics)
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
        """Progress-bar postfix: alarms, reward, D loss and accuracy (DDO: its loss and implicit d), and one sample
        (its own seed)."""
        if self.ddo is not None:
            bar.set_postfix(
                ddo_loss=f"{metrics.get('ddo/ddo_loss', float('nan')):.3f}",
                d_real=f"{metrics.get('ddo/d_real', float('nan')):.3f}",
                d_fake=f"{metrics.get('ddo/d_fake', float('nan')):.3f}",
                sample=self.data.tokenizer.decode(self.sample_tokens(1, seed=self.step)[0].cpu()),
            )
            return
        bar.set_postfix(
            alarms=",".join(self.active_alarms) or "-",
            reward=f"{metrics['reward_mean']:.3f}",
            d_loss=f"{metrics.get('discriminator/loss', float('nan')):.3f}",
            d_acc=f"{0.5 * (metrics.get('discriminator/acc_real', float('nan')) + metrics.get('discriminator/acc_fake', float('nan'))):.2f}",
            sample=self.data.tokenizer.decode(
                self.sample_tokens(1, seed=self.step)[0].cpu()
            ),  # own seed: the display never moves the training RNG
        )


__all__ = ["Trainer"]
