"""`seqgan-env train --agent ppo|maskable_ppo`: Stable-Baselines3 PPO against the co-trained discriminator.

The comparison agent. It trains on the native batched env through the SB3 adapter
(`seqgan_env.integrations.sb3`), the discriminator trains between rollouts
(`SB3DiscriminatorCallback`), and the run directory gets the same files and metric
names as the REINFORCE trainer: `config.json`, `metrics.jsonl` (one line per
rollout = one generator update), TensorBoard, `samples/`, checkpoints of the
policy and discriminator as safetensors + JSON (never SB3's pickle-based zip).

The policy (``ppo.policy``): ``generator`` (default) is
`seqgan_env.integrations.sb3_policy.GeneratorPolicy`, the run's generator (the
family REINFORCE trains, built and MLE-pretrained exactly as REINFORCE's: same
seed, steps, data and optimizer) with a value head; the run exports the generator
(`<run>/generator`), so `sample` and `eval` work on it, and `--resume` continues it
exactly (the checkpoint holds SB3's counters and last observations, the env mid-episode,
the discriminator's schedule and every random stream: `seqgan_agents.ppo_state`). ``mlp``
is SB3's actor-critic over our `TokenEmbeddingExtractor` (no pretraining, no `sample`,
no `--resume`: it is the comparison agent of earlier versions).
"""

from __future__ import annotations

import json
import math
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from seqgan_env.data.text import load_dataset
from seqgan_env.eval.metrics import BigramModel, sample_report
from seqgan_env.models.discriminator import Discriminator
from seqgan_env.rewards.sources import INFO_PREFIX
from seqgan_env.runs.configio import config_to_dict
from seqgan_env.runs.rundir import RunDir
from seqgan_env.utils.atomic import atomic_write_text
from seqgan_env.utils.codec import (
    flatten_optimizer_state,
    flatten_scheduler_state,
    unflatten_optimizer_state,
    unflatten_scheduler_state,
)
from seqgan_env.utils.validation import check_ints, check_number

ALGOS = ("ppo", "maskable_ppo")
ENCODERS = ("gru", "transformer")
POLICIES = ("generator", "mlp")


@dataclass
class PPOConfig:
    """SB3 PPO hyper-parameters (names as SB3's) and the policy.

    ``policy``: ``generator`` (default): :class:`~seqgan_env.integrations.sb3_policy.GeneratorPolicy`, the
    run's generator (the REINFORCE family, MLE-pretrained as REINFORCE's) with a value head of width
    ``value_hidden``; ``mlp``: SB3's MlpPolicy over ``TokenEmbeddingExtractor`` (``encoder``, ``embed_dim``,
    ``features_dim``), no pretraining: the comparison agent of earlier versions.
    """

    n_envs: int = 64  # episodes written side by side (one native batched env)
    n_steps: int = 32  # env steps per env per rollout: one update learns from n_envs x n_steps tokens
    batch_size: int = 512  # minibatch of PPO's update epochs (best a factor of n_envs x n_steps)
    n_epochs: int = 4  # passes over each rollout
    lr: float = 3e-4  # Adam learning rate of the policy and value head
    gamma: float = 1.0  # discount (1: the episode's whole return)
    gae_lambda: float = 0.95  # GAE's bias-variance trade-off
    clip_range: float = 0.2  # PPO's ratio clip
    ent_coef: float = 0.01  # entropy bonus weight
    embed_dim: int = 32  # policy=mlp: token embedding width of TokenEmbeddingExtractor
    features_dim: int = 64  # policy=mlp: its output width
    encoder: str = "gru"  # policy=mlp: gru or transformer
    device: str = "cpu"  # auto, cpu or cuda
    policy: str = "generator"  # generator: PPO trains the run's generator; mlp: SB3's MlpPolicy over a token encoder
    value_hidden: int = 64  # policy=generator: the value head's hidden width

    def __post_init__(self) -> None:
        check_ints(self, ("n_envs", "n_steps", "batch_size", "n_epochs", "embed_dim", "features_dim"), prefix="ppo.")
        for name, lo, hi in (("gamma", 0.0, 1.0), ("gae_lambda", 0.0, 1.0)):
            check_number(f"ppo.{name}", getattr(self, name), lo, hi)
        check_number("ppo.lr", self.lr, 0.0, low_open=True)
        check_number("ppo.clip_range", self.clip_range, 0.0, low_open=True)
        check_number("ppo.ent_coef", self.ent_coef, 0.0)
        check_ints(self, ("value_hidden",), prefix="ppo.")
        if self.policy not in POLICIES:
            raise ValueError(f"ppo.policy={self.policy!r} is unknown: choose one of {list(POLICIES)} (generator: PPO "
                             f"trains the run's generator; mlp: SB3's MlpPolicy over a token encoder); fix: "
                             f"--set ppo.policy=generator.")
        if self.encoder not in ENCODERS:
            raise ValueError(f"ppo.encoder={self.encoder!r} is unknown: choose one of {list(ENCODERS)}; fix: "
                             f"--set ppo.encoder=gru.")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"ppo.device={self.device!r} is invalid: use auto, cpu or cuda; fix: --set ppo.device=cpu.")
        if self.device == "cuda" and not torch.cuda.is_available():
            raise ValueError("ppo.device='cuda' but no CUDA device is available: use --set ppo.device=cpu.")


class PPOTrainer:
    """Builds the SB3 env, model and callbacks from a ``TrainConfig`` and runs ``learn``."""

    def __init__(self, config: Any, run: RunDir, data: Any = None, log: Callable[[str], None] | None = None):
        from seqgan_env.envs.vector_env import TokenGenerationVectorEnv
        from seqgan_env.integrations.sb3 import (
            SB3DiscriminatorCallback,
            TokenGenerationVecEnv,
            sb3_policy_kwargs,
        )
        from seqgan_env.rewards.wrappers import DiscriminatorRewardVector

        self.config = config
        self.run = run
        self.log = log or (lambda msg: print(msg, file=sys.stderr))
        cfg, pcfg = config, config.ppo
        torch.manual_seed(cfg.seed)
        self.data = data if data is not None else load_dataset(
            cfg.data.path, max_length=cfg.data.max_length, valid_fraction=cfg.data.valid_fraction,
            seed=cfg.seed, skip_blank=cfg.data.skip_blank,
        )
        tok = self.data.tokenizer
        tok.save(run.path / "tokenizer.json")
        self.generator = self.agent = None
        self.mle_pretrained = False
        if pcfg.policy == "generator":
            # as Trainer: seed, generator, agent, discriminator in this order, so the weights and the MLE pretraining
            # are REINFORCE's (the agent's optimizer and batches do the MLE steps; PPO's optimizer does the rest)
            import dataclasses

            from seqgan_agents.reinforce import ReinforceAgent, resolve_device
            from seqgan_env.models.pretrained import make_generator

            device = resolve_device(pcfg.device).type
            self.agent = ReinforceAgent(make_generator(cfg.generator, tok), dataclasses.replace(cfg.reinforce, device=device),
                                        seed=cfg.seed)
            self.generator = self.agent.generator
        self.discriminator = Discriminator(
            tok.vocab_size, cfg.discriminator_model, cfg.discriminator, device="cpu", seed=cfg.seed + 1, tokenizer=tok,
        )
        base = TokenGenerationVectorEnv(
            pcfg.n_envs, tokenizer=tok, max_length=cfg.data.max_length, min_length=cfg.data.min_length,
            allow_eos=cfg.data.eos,
        )
        self.reward_env = DiscriminatorRewardVector(base, self.discriminator, cfg.reward, real_data=self.data.train,
                                                    seed=cfg.seed)
        self.env = TokenGenerationVecEnv(self.reward_env)
        kwargs = dict(
            n_steps=pcfg.n_steps, batch_size=pcfg.batch_size, n_epochs=pcfg.n_epochs, learning_rate=pcfg.lr,
            gamma=pcfg.gamma, gae_lambda=pcfg.gae_lambda, clip_range=pcfg.clip_range, ent_coef=pcfg.ent_coef,
            seed=cfg.seed, device=pcfg.device, verbose=0,
        )
        if pcfg.policy == "generator":
            from seqgan_env.envs.spec import EnvConfig
            from seqgan_env.integrations.sb3_policy import GeneratorPolicy, MaskableGeneratorPolicy

            spec = EnvConfig(vocab_size=tok.vocab_size, max_length=cfg.data.max_length,
                             min_length=cfg.data.min_length, allow_eos=cfg.data.eos)  # REINFORCE's sampling rule
            kwargs["policy_kwargs"] = dict(generator=self.generator, value_hidden=pcfg.value_hidden, spec=spec)
            policy = MaskableGeneratorPolicy if cfg.agent == "maskable_ppo" else GeneratorPolicy
        else:
            kwargs["policy_kwargs"] = sb3_policy_kwargs(embed_dim=pcfg.embed_dim, features_dim=pcfg.features_dim,
                                                        encoder=pcfg.encoder)
            policy = "MlpPolicy"
        if cfg.agent == "maskable_ppo":
            from sb3_contrib import MaskablePPO

            self.model = MaskablePPO(policy, self.env, **kwargs)
        else:
            from stable_baselines3 import PPO

            self.model = PPO(policy, self.env, **kwargs)
        from stable_baselines3.common.logger import Logger

        # SB3's default logger (verbose=0, no tensorboard_log) makes an empty /tmp/SB3-<time> folder per run: the
        # same logger without a folder (the run directory holds the metrics)
        self.model.set_logger(Logger(folder=None, output_formats=[]))
        self.d_callback = SB3DiscriminatorCallback(config=cfg.d_updates, seed=cfg.seed)
        self.bigram = BigramModel.fit(self.data.valid_texts)
        self.step = 0
        self.pretrained = False  # MLE and D pretraining done (a checkpoint follows)
        self.saved_step = -1  # the update of the newest checkpoint
        self.texts: list[str] = []  # the newest finished episodes' texts (eval_samples of them): the evaluations'
        self.running: list[dict[str, float]] = [{} for _ in range(pcfg.n_envs)]  # each env's episode so far, per source
        self.stop = False  # a signal asked to stop: checkpoint before the next rollout, then stop

    def pretrain(self) -> None:
        """MLE pretraining of the generator on the real rows, then D on real vs generated: REINFORCE's phase.

        The same steps (``reinforce.batch_size`` rows drawn by a generator seeded ``seed + 2``, until the
        validation NLL stops improving: ``seqgan_agents.mle.pretrain_mle``), the same optimizer (``reinforce.lr``) and the same D steps as
        :meth:`seqgan_agents.trainer.Trainer.pretrain`, so that ``--agent ppo`` and ``--agent reinforce``
        with one seed start the adversarial phase from the same generator.

        Raises:
            RuntimeError: ``ppo.policy`` is ``mlp`` (its network is not the generator).
            FloatingPointError: the MLE loss became NaN or infinite (fix: lower ``reinforce.lr``).
        """
        if self.agent is None:
            raise RuntimeError("ppo.policy=mlp has no generator to pretrain; fix: --set ppo.policy=generator.")
        cfg, sch = self.config, self.config.schedule
        real = self.data.train.to(self.agent.device)  # (N, T)
        real_gen = torch.Generator().manual_seed(cfg.seed + 2)  # Trainer.real_gen of rank 0
        b = cfg.reinforce.batch_size
        from seqgan_agents.mle import pretrain_mle

        mle_steps = sch.pretrain_steps  # (a run that resumes after the MLE phase: its cap)
        if not self.mle_pretrained:
            def batch() -> torch.Tensor:
                idx = torch.randint(len(real), (b,), generator=real_gen)
                return real[idx.to(real.device)]  # (b, T) rows

            mle_steps = pretrain_mle(self.agent, batch, self.data.valid.to(self.agent.device), sch.pretrain_steps,
                                     sch.pretrain_eval_every, sch.pretrain_patience, self.log,
                                     lr_drop=sch.pretrain_lr_drop).steps
        self.mle_pretrained = True
        data_cfg = cfg.data
        for i in range(sch.d_pretrain_for(mle_steps)):
            fake = self.agent.sample(cfg.d_updates.batch_size, data_cfg.max_length, cfg.reinforce.temperature,
                                     cfg.reinforce.top_p, min_length=data_cfg.min_length, allow_eos=data_cfg.eos)
            m = self.reward_env.update_discriminator(fake.cpu())  # (n, T) generated rows
            if i + 1 == sch.d_pretrain_for(mle_steps):
                self.log(f"pretrain discriminator {i + 1}/{sch.d_pretrain_for(mle_steps)}: loss {m['loss']:.3f}")
        self.pretrained = True

    def export_generator(self) -> Path:
        """The trained generator as REINFORCE runs export it: ``<run>/generator`` (``save_pretrained`` + tokenizer).

        Returns:
            The directory.

        Raises:
            RuntimeError: ``ppo.policy`` is ``mlp`` (no generator to export).
        """
        from seqgan_env.data.subword import save_tokenizer_files
        from seqgan_env.runs.rundir import save_generator_export

        if self.generator is None:
            raise RuntimeError("ppo.policy=mlp has no generator to export; fix: --set ppo.policy=generator.")
        out = self.run.path / "generator"
        save_generator_export(self.generator, out)
        save_tokenizer_files(self.data.tokenizer, out)
        return out

    def save_checkpoint(self) -> None:
        """Weights, optimizers and (ppo.policy=generator) the whole continuation state, as safetensors + JSON.

        Taken between two updates (after one update, before the next rollout), so ``--resume`` goes on
        exactly as the run would have (``seqgan_agents.ppo_state``).
        """
        from seqgan_agents import ppo_state

        policy = {k: v.detach().cpu().clone() for k, v in self.model.policy.state_dict().items()}
        opt_t, opt_m = flatten_optimizer_state(self.model.policy.optimizer.state_dict())
        d_opt_t, d_opt_m = flatten_optimizer_state(self.discriminator.optimizer.state_dict())
        tensors = {"policy": policy, "policy_optimizer": opt_t, "discriminator": self.discriminator.state_dict(),
                   "discriminator_optimizer": d_opt_t}
        meta = {"policy_optimizer": opt_m, "discriminator_optimizer": d_opt_m, "train_step": self.step,
                "agent": self.config.agent, "policy": self.config.ppo.policy, "mle_pretrained": self.mle_pretrained,
                "pretrained": self.pretrained, "discriminator_num_updates": self.discriminator.num_updates}
        if self.discriminator.scheduler is not None:
            tensors["discriminator_scheduler"], meta["discriminator_scheduler"] = flatten_scheduler_state(
                self.discriminator.scheduler.state_dict())
        if self.generator is not None:  # the MLP policy is not resumable: its checkpoint keeps the weights only
            state_t, state_m = ppo_state.capture(self.model, self.env, self.d_callback,
                                                 {"running": self.running, "texts": self.texts})
            tensors.update(state_t)
            meta["state"] = state_m
        self.run.save_checkpoint(self.step, tensors, meta)
        self.saved_step = self.step

    def load_checkpoint(self) -> None:
        """Continue from the run's latest checkpoint (written by :meth:`save_checkpoint`).

        Raises:
            ValueError: the checkpoint does not fit this run's models, or holds no continuation state (a run
                of ppo.policy=mlp, or of a version that did not save it), with the fix.
        """
        from seqgan_agents import ppo_state

        tensors, meta = self.run.load_checkpoint()
        if "state" not in meta:
            raise ValueError(f"the checkpoint in '{self.run.path}' holds no continuation state (a PPO run of "
                             f"ppo.policy=mlp, or of an older version); fix: start a new run with --set ppo.policy=generator.")
        try:
            self.model.policy.load_state_dict(tensors["policy"])
            self.model.policy.optimizer.load_state_dict(
                unflatten_optimizer_state(tensors["policy_optimizer"], meta["policy_optimizer"]))
            self.discriminator.load_state_dict(tensors["discriminator"])
            self.discriminator.optimizer.load_state_dict(
                unflatten_optimizer_state(tensors["discriminator_optimizer"], meta["discriminator_optimizer"]))
            if self.discriminator.scheduler is not None and "discriminator_scheduler" in meta:
                self.discriminator.scheduler.load_state_dict(unflatten_scheduler_state(
                    tensors.get("discriminator_scheduler", {}), meta["discriminator_scheduler"]))
            self.discriminator.num_updates = int(meta["discriminator_num_updates"])
            extra = ppo_state.restore(self.model, self.env, self.d_callback, tensors, meta["state"])
        except (KeyError, RuntimeError) as exc:
            raise ValueError(f"checkpoint in '{self.run.path}' does not match this run's models or format ({exc}); "
                             f"fix: resume from a checkpoint written by this version with the same config.") from None
        self.running = [dict(r) for r in extra["running"]]
        self.texts = list(extra["texts"])
        self.step = self.saved_step = int(meta["train_step"])
        self.pretrained = bool(meta["pretrained"])
        self.mle_pretrained = bool(meta["mle_pretrained"])

    def fit(self, progress: bool = True) -> dict[str, float]:
        """Pretrain (unless resumed past it), then PPO until ``schedule.updates``; returns the final sample report.

        A checkpoint is taken every ``schedule.checkpoint_every`` updates, before the next rollout; SIGINT or
        SIGTERM stops the run at that point of the current rollout's end (a second Ctrl-C aborts), so a stopped
        run resumes exactly.

        Raises:
            KeyboardInterrupt: after a stop signal, once the checkpoint is saved.
        """
        from stable_baselines3.common.callbacks import BaseCallback, CallbackList
        from tqdm import tqdm

        trainer = self
        sch = self.config.schedule
        bar = tqdm(total=sch.updates, initial=self.step, disable=not progress, file=sys.stderr, dynamic_ncols=True)
        texts = self.texts

        class RunLog(BaseCallback):
            """Per rollout: episode rewards, SB3's latest train/ losses, D metrics, samples, checkpoints."""

            def _on_rollout_start(self) -> None:  # the previous update has been applied: a checkpoint's point
                if trainer.step > trainer.saved_step and (trainer.step % sch.checkpoint_every == 0 or trainer.stop):
                    trainer.save_checkpoint()
                self.returns: list[float] = []
                self.lengths: list[int] = []
                self.source_returns: dict[str, list[float]] = {}  # reward/<name>: finished episodes' totals
                self.t0 = time.perf_counter()

            def _on_step(self) -> bool:
                if trainer.stop and trainer.saved_step == trainer.step:
                    return False  # checkpointed at this rollout's start: SB3 drops the partial rollout
                infos = self.locals["infos"]
                for info, running in zip(infos, trainer.running):
                    for key, value in info.items():
                        if key.startswith(INFO_PREFIX):
                            running[key] = running.get(key, 0.0) + float(value)
                    if "episode" in info:
                        self.returns.append(float(info["episode"]["r"]))
                        self.lengths.append(int(info["episode"]["l"]))
                        for key, total in running.items():
                            self.source_returns.setdefault(key, []).append(total)
                        running.clear()
                    if info.get("text") is not None and "terminal_observation" in info and not info.get("invalid_action"):
                        texts.append(info["text"])
                del texts[: max(0, len(texts) - sch.eval_samples)]
                return True

            def _on_rollout_end(self) -> None:
                trainer.step += 1
                r = np.asarray(self.returns or [math.nan])
                logged = self.model.logger.name_to_value  # train/ values of the previous update (SB3 logs them later)
                metrics = {
                    "reward_mean": float(r.mean()), "reward_std": float(r.std()),
                    "episode_length_mean": float(np.mean(self.lengths)) if self.lengths else math.nan,
                    "policy_loss": logged.get("train/policy_gradient_loss", math.nan),
                    "value_loss": logged.get("train/value_loss", math.nan),
                    "entropy": -logged.get("train/entropy_loss", math.nan),
                    "lr": trainer.config.ppo.lr,
                    "update_seconds": time.perf_counter() - self.t0,
                    "tokens": int(sum(self.lengths)),
                    **{key: float(np.mean(v)) for key, v in self.source_returns.items()},
                }
                # D updates run in SB3DiscriminatorCallback's _on_rollout_end, which is called before this one.
                if trainer.d_callback.last_metrics and trainer.d_callback.num_generator_updates % trainer.config.d_updates.every == 0:
                    metrics.update(trainer.d_callback.last_metrics)
                trainer.run.log_metrics(trainer.step, metrics)
                if trainer.step % sch.eval_every == 0 or trainer.step == sch.updates:
                    report = sample_report(texts, trainer.data.train_texts, trainer.bigram)
                    trainer.run.log_metrics(trainer.step, {f"eval/{k}": v for k, v in report.items()})
                    trainer.run.write_samples(trainer.step, list(texts))
                bar.update(1)
                bar.set_postfix(reward=f"{metrics['reward_mean']:.3f}", sample=texts[-1] if texts else "")

        def on_signal(signum, frame):  # stop before the next rollout, checkpointed; a second Ctrl-C aborts
            if self.stop and signum == signal.SIGINT:
                raise KeyboardInterrupt
            self.stop = True

        rollout = self.config.ppo.n_envs * self.config.ppo.n_steps
        start = time.time()
        in_main = threading.current_thread() is threading.main_thread()  # signals can only be caught there
        old = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)} if in_main else {}
        try:
            if self.agent is not None and not self.pretrained:
                self.pretrain()
                self.save_checkpoint()
            resumed = self.model._last_obs is not None  # SB3 has stepped: go on without resetting the env
            remaining = max(0, sch.updates - self.step) * rollout
            if remaining and not self.stop:
                self.model.learn(remaining, callback=CallbackList([self.d_callback, RunLog()]),
                                 reset_num_timesteps=not resumed)
        finally:
            bar.close()
            for signum, handler in old.items():
                signal.signal(signum, handler)
        if self.stop:
            if self.saved_step != self.step:  # stopped before learn() began
                self.save_checkpoint()
            resume = (f"resume with --resume {self.run.path}" if self.generator is not None else
                      "ppo.policy=mlp runs cannot be resumed; fix: train with --set ppo.policy=generator")
            self.log(f"stopped at update {self.step}; checkpoint saved; {resume}.")
            raise KeyboardInterrupt
        self.save_checkpoint()
        if self.generator is not None:
            self.export_generator()
        atomic_write_text(str(self.run.path / "ppo_policy.json"), json.dumps(config_to_dict(self.config.ppo), indent=2))
        final = sample_report(texts, self.data.train_texts, self.bigram)
        self.log(f"trained {self.step} PPO updates in {time.time() - start:.0f}s; run directory {self.run.path}")
        return final
