"""`seqgan-env benchmark agents`: which agent trains the generator best for the same compute?

Agents, per seed, all starting from the same MLE-pretrained generator and discriminator
(pretrained once per seed by the REINFORCE trainer's own ``pretrain``; every agent gets a copy
of both, and of D's optimizer state):

* ``reinforce``: our trainer (:class:`seqgan_agents.trainer.Trainer`), update by update, as ``seqgan-env
  train`` runs it (its default mixes the MLE term into every update: ``reinforce.mle_coef``).
* ``reinforce_nomle``: the same trainer without the MLE term (``reinforce.mle_coef=0``), the policy
  gradient alone, as the SB3 agents have it: what the MLE term is worth, apart from the algorithm.
* ``ppo``: SB3 ``PPO`` with :class:`~seqgan_env.integrations.sb3_policy.GeneratorPolicy` on our
  natively batched env through the SB3 adapter (``TokenGenerationVecEnv``), as ``seqgan-env
  train --agent ppo`` builds it.
* ``ppo_sb3vec``: the same PPO on SB3's own ``make_vec_env("seqgan_env:SeqGAN-v1", n_envs)``: a
  ``DummyVecEnv`` of single registered envs (one shared discriminator), as a user would write it.
* ``a2c``: SB3 ``A2C`` with the same policy on the native adapter.

The discriminator schedule is the trainer's (``d_updates``: a phase of ``d_steps`` every
``every`` generator updates, D's pretrained weights and optimizer state to start); the SB3
agents run it through ``SB3DiscriminatorCallback``. One generator update of the SB3 agents
collects ``ppo.n_envs x ppo.n_steps`` env steps; the benchmark's default sizes that near
REINFORCE's ``reinforce.batch_size`` episodes, so D sees about as many new samples between
phases in every arm. The SB3 agents share PPO's hyper-parameters (``ppo.*``) where A2C has them
(lr, gamma, gae_lambda, ent_coef, n_envs, n_steps; Adam as PPO).

Budget: every agent trains for ``env_steps`` generator env steps (tokens written) after
pretraining, and is evaluated at fractions ``eval_at`` of it (and at the start: the pretrained
point, the same for all); the clock (``wall``) counts training only, evaluations paused.
Two comparisons:

* equal env steps: each agent's last evaluation (all trained ``env_steps``);
* equal wall time: each agent's last evaluation at or before the training time of the
  fastest agent of that seed (a slow agent is judged where it got to in that time).

Numbers (the ``benchmark gan`` judge, :func:`seqgan_benchmarks.quality_gan.sample_metrics`):
``samples`` texts at temperature 1 against a held-out test split (``test_fraction`` of the
file, fixed ``split_seed``, never trained on): ``quality`` (sample NLL/char under a character
n-gram of the training rows), ``coverage`` (test NLL/char under an n-gram of the samples),
and the rest of that judge; ``score`` = quality + coverage (both nats/char, lower is better: a
sample set must be data-like and cover the data; the verdict ranks by it); ``d_auc``: the
agent's own co-trained D on held-out real rows (the validation split D never trains on) against
fresh samples (0.5: chance); ``tokens_per_s``: env steps per training second.
"""

from __future__ import annotations

import copy
import dataclasses
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from seqgan_agents.lifecycle import new_run
from seqgan_agents.trainer import Trainer
from seqgan_agents.trainer_config import TrainConfig, train_config_from_dict
from seqgan_benchmarks.quality_gan import run_seeds, sample_metrics, split_test
from seqgan_env.data.text import DEFAULT_DATA_PATH, NAMED_DATA, load_texts
from seqgan_env.eval.discriminator_health import health_report
from seqgan_env.eval.ngram import CharNgramModel
from seqgan_env.runs.plots import save_figure
from seqgan_env.runs.configio import apply_overrides, config_to_dict
from seqgan_env.utils.validation import check_int

AGENTS = ("reinforce", "reinforce_nomle", "ppo", "ppo_sb3vec", "a2c")
EVAL_AT = (0.0625, 0.125, 0.25, 0.5, 0.75, 1.0)
#: Sizes the benchmark sets under the user's --set: SB3 rollouts of 128 x 8 = 1,024 env steps, near a
#: REINFORCE update's 128 episodes of the census names, so that D's schedule (every generator update)
#: sees about as many new samples in every arm.
BENCH_OVERRIDES = ("ppo.n_envs=128", "ppo.n_steps=8", "ppo.batch_size=512")
TABLE_METRICS = ("score", "quality", "coverage", "d_auc", "uniqueness", "novelty")


@dataclass
class AgentsBenchmarkConfig:
    """Sizes of ``benchmark agents``.

    Args:
        data: a text file, one sequence per line (default: census first names).
        seeds: one full benchmark per seed (distinct ints).
        agents: a subset of ``AGENTS`` (distinct).
        overrides: ``--set`` style ``key=value`` strings on the default TrainConfig (after ``BENCH_OVERRIDES``):
            pretraining, D, ``reinforce.*`` and ``ppo.*`` of every arm.
        env_steps: generator env steps (tokens written) each agent trains for after pretraining.
        eval_at: fractions of ``env_steps`` at which each agent is evaluated, increasing, in (0, 1], ending at 1.
        samples: texts sampled per evaluation.
        test_fraction: held-out test share of the file.
        ngram_order: order of the judge's character n-gram models.
        split_seed: seed of the test split (the same for every seed).

    Raises:
        ValueError: a field out of range, naming it and the fix.
    """

    data: str = str(DEFAULT_DATA_PATH)
    seeds: tuple[int, ...] = (0, 1, 2)
    agents: tuple[str, ...] = AGENTS
    overrides: tuple[str, ...] = ()
    env_steps: int = 75_000
    eval_at: tuple[float, ...] = EVAL_AT
    samples: int = 500
    test_fraction: float = 0.1
    ngram_order: int = 4
    split_seed: int = 12345

    def __post_init__(self) -> None:
        self.seeds, self.agents = tuple(self.seeds), tuple(self.agents)
        self.overrides, self.eval_at = tuple(self.overrides), tuple(float(f) for f in self.eval_at)
        if not self.seeds or len(set(self.seeds)) != len(self.seeds) or not all(
                isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in self.seeds):
            raise ValueError(f"seeds={self.seeds!r} is invalid: give distinct ints >= 0, e.g. --seeds 0,1,2.")
        unknown = [a for a in self.agents if a not in AGENTS]
        if unknown or not self.agents or len(set(self.agents)) != len(self.agents):
            raise ValueError(f"agents={self.agents!r} is invalid: choose distinct agents among {list(AGENTS)}, e.g. "
                             f"--agents reinforce,ppo.")
        for name, lo in (("env_steps", 1), ("samples", 2), ("ngram_order", 1)):
            check_int(name, getattr(self, name), lo)
        if (not self.eval_at or any(not 0 < f <= 1 for f in self.eval_at) or list(self.eval_at) != sorted(set(self.eval_at))
                or self.eval_at[-1] != 1.0):
            raise ValueError(f"eval_at={self.eval_at!r} is invalid: give increasing fractions in (0, 1] ending at 1.0, "
                             f"e.g. {EVAL_AT}.")
        if not 0 < self.test_fraction < 0.5:
            raise ValueError(f"test_fraction={self.test_fraction!r} is invalid: it must be in (0, 0.5), e.g. 0.1.")
        if self.data in NAMED_DATA or self.data == "oracle":
            raise ValueError(f"data={self.data!r} is not supported by benchmark agents (it splits a text file's lines "
                             f"into train and test); fix: pass a text file, one sequence per line.")
        self.train_config(0, ".")  # a bad override fails now, not after the first arm trained

    def train_config(self, seed: int, out_dir: str) -> TrainConfig:
        """The REINFORCE arm's TrainConfig (defaults <- ``BENCH_OVERRIDES`` <- overrides) on ``out_dir``/train.txt."""
        data = apply_overrides(config_to_dict(TrainConfig()), list(BENCH_OVERRIDES) + list(self.overrides), TrainConfig)
        data.update(seed=seed, out_dir=out_dir, name=f"agents-s{seed}")
        data["data"]["path"] = str(Path(out_dir) / "train.txt")
        cfg = train_config_from_dict(data)
        if cfg.agent != "reinforce":
            raise ValueError(f"agent={cfg.agent} in --set: benchmark agents runs every agent itself (--agents); fix: "
                             f"drop --set agent=..., e.g. --agents ppo for PPO alone.")
        if cfg.reward_scorer != "discriminator":
            raise ValueError("benchmark agents compares agents on the discriminator reward (reward_scorer="
                             "discriminator); fix: drop that --set.")
        return cfg


class _Clock:
    """Training seconds: running between ``start`` and ``stop``; evaluations happen while stopped."""

    def __init__(self) -> None:
        self.total, self.t0 = 0.0, None

    def start(self) -> None:
        self.t0 = time.perf_counter()

    def stop(self) -> None:
        if self.t0 is not None:
            self.total += time.perf_counter() - self.t0
            self.t0 = None


class _Judge:
    """Evaluates a generator (and its D) at one point of an arm's run; samples with fixed seeds."""

    def __init__(self, cfg: AgentsBenchmarkConfig, base: Trainer, test: list[str], seed: int):
        self.cfg, self.base, self.test, self.seed = cfg, base, test, seed
        self.train_texts = base.data.train_texts
        self.judge = CharNgramModel.fit(self.train_texts, order=cfg.ngram_order)
        self.valid = base.data.valid  # (Nv, T) rows D never trains on

    def __call__(self, agent: Any, discriminator: Any, env_steps: int, wall: float) -> dict[str, Any]:
        data_cfg = self.base.config.data
        tokens = agent.sample(self.cfg.samples, data_cfg.max_length, 1.0, 1.0, seed=10_000 * self.seed + 7,
                              min_length=data_cfg.min_length, allow_eos=data_cfg.eos)  # (n, T)
        texts = self.base.data.tokenizer.decode_batch(tokens.cpu())
        m = sample_metrics(texts, self.train_texts, self.test, self.judge, self.cfg.ngram_order)
        m["score"] = m["quality"] + m["coverage"]
        fake = agent.sample(self.cfg.samples, data_cfg.max_length, 1.0, 1.0, seed=10_000 * self.seed + 8,
                            min_length=data_cfg.min_length, allow_eos=data_cfg.eos)  # fresh: D never saw them
        if len(self.valid):
            m["d_auc"] = health_report(None, self.valid.to(fake.device), fake,
                                       sequence_logits=discriminator.sequence_logits)["auc"]
        return {"env_steps": int(env_steps), "wall": float(wall), **m}


def _thresholds(cfg: AgentsBenchmarkConfig) -> list[int]:
    return [max(1, round(f * cfg.env_steps)) for f in cfg.eval_at]


def _run_reinforce(trainer: Trainer, cfg: AgentsBenchmarkConfig, judge: _Judge) -> list[dict[str, Any]]:
    """Our trainer, update by update, until ``env_steps``; evaluated as it crosses each threshold."""
    clock, steps = _Clock(), 0
    points = [judge(trainer.agent, trainer.discriminator, 0, 0.0)]
    marks = _thresholds(cfg)
    while steps < cfg.env_steps:
        clock.start()
        metrics = trainer.train_step()
        clock.stop()
        steps += int(metrics.get("tokens", 0))
        if marks and steps >= marks[0]:
            while marks and steps >= marks[0]:
                marks.pop(0)
            points.append(judge(trainer.agent, trainer.discriminator, steps, clock.total))
    return points


def _sb3_arm(name: str, tc: TrainConfig, base: Trainer, gen_state: dict, d_state: dict, d_opt: dict) -> dict[str, Any]:
    """The SB3 model of arm ``name`` on a copy of the pretrained generator and D: {model, agent, discriminator, callback}."""
    from stable_baselines3 import A2C, PPO
    from stable_baselines3.common.logger import Logger

    from seqgan_agents.reinforce import ReinforceAgent
    from seqgan_env.envs.spec import EnvConfig
    from seqgan_env.integrations.sb3 import SB3DiscriminatorCallback
    from seqgan_env.integrations.sb3_policy import GeneratorPolicy
    from seqgan_env.models.discriminator import Discriminator
    from seqgan_env.models.pretrained import make_generator

    data, tok, p = base.data, base.data.tokenizer, tc.ppo
    generator = make_generator(tc.generator, tok)
    generator.load_state_dict(gen_state)
    agent = ReinforceAgent(generator, tc.reinforce, seed=tc.seed)  # the judge's sampler; never stepped
    if name == "ppo_sb3vec":
        from stable_baselines3.common.env_util import make_vec_env

        r = tc.reward
        env = make_vec_env("seqgan_env:SeqGAN-v1", n_envs=p.n_envs, seed=tc.seed, env_kwargs=dict(
            data_path=tc.data.path, max_length=tc.data.max_length, min_length=tc.data.min_length,
            allow_eos=tc.data.eos, reward_mode=r.mode, reward_transform=r.transform,
            potential_baseline=r.potential_baseline, update_every=None, valid_fraction=tc.data.valid_fraction,
            discriminator_model=tc.discriminator_model, discriminator_config=tc.discriminator, seed=tc.seed))
        wrapper = env.envs[0].get_wrapper_attr("update_discriminator").__self__
        discriminator = wrapper.trainer.scorer  # shared by every sub-env (share_discriminator)
        env_tok = env.envs[0].get_wrapper_attr("tokenizer")
        if env_tok.to_dict() != tok.to_dict():
            raise RuntimeError("the registered env built another tokenizer than the trainer's from the same file.")
    else:
        from seqgan_env.envs.vector_env import TokenGenerationVectorEnv
        from seqgan_env.integrations.sb3 import TokenGenerationVecEnv
        from seqgan_env.rewards.wrappers import DiscriminatorRewardVector

        discriminator = Discriminator(tok.vocab_size, tc.discriminator_model, tc.discriminator, device="cpu",
                                      seed=tc.seed + 1, tokenizer=tok)
        vec = TokenGenerationVectorEnv(p.n_envs, tokenizer=tok, max_length=tc.data.max_length,
                                       min_length=tc.data.min_length, allow_eos=tc.data.eos)
        env = TokenGenerationVecEnv(DiscriminatorRewardVector(vec, discriminator, tc.reward, real_data=data.train,
                                                              seed=tc.seed))
    discriminator.load_state_dict(d_state)
    discriminator.optimizer.load_state_dict(copy.deepcopy(d_opt))
    spec = EnvConfig(vocab_size=tok.vocab_size, max_length=tc.data.max_length, min_length=tc.data.min_length,
                     allow_eos=tc.data.eos)
    kwargs = dict(n_steps=p.n_steps, learning_rate=p.lr, gamma=p.gamma, gae_lambda=p.gae_lambda, ent_coef=p.ent_coef,
                  seed=tc.seed, device="cpu", verbose=0,
                  policy_kwargs=dict(generator=generator, value_hidden=p.value_hidden, spec=spec))
    if name == "a2c":
        model = A2C(GeneratorPolicy, env, use_rms_prop=False, **kwargs)
    else:
        model = PPO(GeneratorPolicy, env, batch_size=p.batch_size, n_epochs=p.n_epochs, clip_range=p.clip_range,
                    **kwargs)
    model.set_logger(Logger(folder=None, output_formats=[]))
    callback = SB3DiscriminatorCallback(config=tc.d_updates, seed=tc.seed)
    return {"model": model, "agent": agent, "discriminator": discriminator, "callback": callback, "env": env}


def _run_sb3(arm: dict[str, Any], cfg: AgentsBenchmarkConfig, judge: _Judge) -> list[dict[str, Any]]:
    """``model.learn(env_steps)``; evaluated (clock paused) at the first rollout start past each threshold."""
    from stable_baselines3.common.callbacks import BaseCallback, CallbackList

    clock = _Clock()
    points = [judge(arm["agent"], arm["discriminator"], 0, 0.0)]
    marks = _thresholds(cfg)

    class Evaluate(BaseCallback):
        def _on_rollout_start(self) -> None:  # the previous update has been applied
            if marks and self.num_timesteps >= marks[0]:
                clock.stop()
                while marks and self.num_timesteps >= marks[0]:
                    marks.pop(0)
                points.append(judge(arm["agent"], arm["discriminator"], self.num_timesteps, clock.total))
                clock.start()

        def _on_step(self) -> bool:
            return True

    clock.start()
    arm["model"].learn(cfg.env_steps, callback=CallbackList([arm["callback"], Evaluate()]))
    clock.stop()
    if points[-1]["env_steps"] != arm["model"].num_timesteps:  # the last update: no rollout starts after it
        points.append(judge(arm["agent"], arm["discriminator"], arm["model"].num_timesteps, clock.total))
    arm["env"].close()
    return points


def run_seed(cfg: AgentsBenchmarkConfig, seed: int, rest: list[str], test: list[str], workdir: Path,
             log: Callable[[str], None] = print) -> dict[str, Any]:
    """One seed: pretrain once, then every agent from copies of that point; {agent: [evaluation points]}.

    The agents run in an order rotated by the seed's position, so no agent always runs first on the
    shared CPU."""
    out_dir = workdir / f"seed{seed}"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "train.txt").write_text("\n".join(rest) + "\n", encoding="utf-8")
    tc = cfg.train_config(seed, str(out_dir))
    t0 = time.perf_counter()
    base = new_run(tc)
    base.log = lambda msg: None
    tc = base.config  # max_length resolved from the data
    base.pretrain()
    start = base.save_checkpoint()  # every REINFORCE arm starts from this exact state (weights, optimizers, RNGs)
    gen_state = copy.deepcopy(base.agent.generator.state_dict())
    d_state = copy.deepcopy(base.discriminator.state_dict())
    d_opt = copy.deepcopy(base.discriminator.optimizer.state_dict())
    result: dict[str, Any] = {"seed": seed, "pretrain_seconds": time.perf_counter() - t0, "agents": {}}
    log(f"  seed {seed}: pretrained in {result['pretrain_seconds']:.0f}s")
    judge = _Judge(cfg, base, test, seed)
    k = cfg.seeds.index(seed) % len(cfg.agents)
    for name in cfg.agents[k:] + cfg.agents[:k]:
        t1 = time.perf_counter()
        if name in ("reinforce", "reinforce_nomle"):
            trainer = base
            if name == "reinforce_nomle":
                trainer = new_run(dataclasses.replace(tc, name=f"{name}-s{seed}", reinforce=dataclasses.replace(
                    tc.reinforce, mle_coef=0.0)))
                trainer.log = lambda msg: None
            trainer.load_checkpoint(start)
            points = _run_reinforce(trainer, cfg, judge)
            if trainer is not base:
                trainer.run.close()
        else:
            points = _run_sb3(_sb3_arm(name, tc, base, gen_state, d_state, d_opt), cfg, judge)
        last = points[-1]
        result["agents"][name] = {"points": points, "tokens_per_s": last["env_steps"] / max(last["wall"], 1e-9)}
        log(f"  seed {seed}: {name:10s} {last['env_steps']} env steps in {last['wall']:.0f}s "
            f"({result['agents'][name]['tokens_per_s']:.0f} tokens/s; {time.perf_counter() - t1:.0f}s with evaluations)"
            f" score {last['score']:.3f} quality {last['quality']:.3f} coverage {last['coverage']:.3f} "
            f"d_auc {last.get('d_auc', float('nan')):.3f}")
    base.run.close()
    return result


def at_equal_wall(seed_result: dict[str, Any]) -> tuple[float, dict[str, dict[str, Any]]]:
    """(W, {agent: its last point at or before W}): W is the shortest training time of the seed's agents."""
    wall = min(a["points"][-1]["wall"] for a in seed_result["agents"].values())
    return wall, {name: [p for p in a["points"] if p["wall"] <= wall][-1] for name, a in seed_result["agents"].items()}


def summarize(cfg: AgentsBenchmarkConfig, per_seed: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean ± population std per agent at equal env steps and at equal wall time, and the verdicts."""
    out: dict[str, Any] = {"equal_env_steps": {}, "equal_wall": {}, "verdicts": {}}
    views = {
        "equal_env_steps": [{n: a["points"][-1] for n, a in s["agents"].items()} for s in per_seed],
        "equal_wall": [at_equal_wall(s)[1] for s in per_seed],
    }
    for view, rows in views.items():
        for name in cfg.agents:
            pts = [r[name] for r in rows]
            entry = {k: (statistics.fmean(p[k] for p in pts), statistics.pstdev([p[k] for p in pts]))
                     for k in (*TABLE_METRICS, "env_steps", "wall") if all(k in p for p in pts)}
            entry["tokens_per_s"] = _mean_std([s["agents"][name]["tokens_per_s"] for s in per_seed])
            out[view][name] = entry
        out["verdicts"][view] = verdict(cfg, rows, view)
    out["equal_wall_seconds"] = [at_equal_wall(s)[0] for s in per_seed]
    return out


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.pstdev(values)


def verdict(cfg: AgentsBenchmarkConfig, rows: list[dict[str, dict[str, Any]]], view: str) -> dict[str, Any]:
    """The agent with the lowest mean score, and by how much it beats each other agent (paired by seed).

    Args:
        rows: per seed, {agent: its evaluation point} of this comparison.
        view: ``equal_env_steps`` or ``equal_wall`` (named in the text).

    Returns:
        {"best", "margins": {agent: (mean score difference, seeds where best is better)}, "text"}.
    """
    means = {a: statistics.fmean(r[a]["score"] for r in rows) for a in cfg.agents}
    best = min(means, key=means.get)
    n = len(rows)
    margins = {a: (statistics.fmean(r[a]["score"] - r[best]["score"] for r in rows),
                   sum(r[best]["score"] < r[a]["score"] for r in rows)) for a in cfg.agents if a != best}
    what = "equal env steps" if view == "equal_env_steps" else "equal wall time"
    if not margins:
        return {"best": best, "margins": {}, "text": f"At {what}: only {best} was run."}
    runner = min(margins, key=lambda a: margins[a][0])
    parts = ", ".join(f"{a} by {d:.3f} ({k}/{n} seeds)" for a, (d, k) in sorted(margins.items(), key=lambda x: x[1][0]))
    return {"best": best, "runner_up": runner, "margins": margins,
            "text": f"At {what}: use {best}; its score (quality + coverage, nats/char, lower is better) beats {parts}."}


def format_table(cfg: AgentsBenchmarkConfig, summary: dict[str, Any], n: int) -> str:
    """Markdown: one table per comparison, mean ± std over seeds; then the verdict lines."""
    out = []
    for view, title in (("equal_env_steps", "equal env steps"), ("equal_wall", "equal wall time")):
        cols = [*TABLE_METRICS, "env_steps", "wall", "tokens_per_s"]
        out.append(f"**At {title}**\n")
        out.append("| agent | " + " | ".join(cols) + " |")
        out.append("|" + "---|" * (len(cols) + 1))
        for name in cfg.agents:
            e = summary[view][name]
            cells = []
            for c in cols:
                if c not in e:
                    cells.append("")
                elif c in ("env_steps", "tokens_per_s"):
                    cells.append(f"{e[c][0]:.0f} ± {e[c][1]:.0f}")
                elif c == "wall":
                    cells.append(f"{e[c][0]:.1f} ± {e[c][1]:.1f}")
                else:
                    cells.append(f"{e[c][0]:.3f} ± {e[c][1]:.3f}")
            out.append(f"| {name} | " + " | ".join(cells) + " |")
        out.append("")
    out.append(f"({n} seed{'s' * (n > 1)}, mean ± population std, held-out test split, temperature 1; score = "
               f"quality + coverage, nats/char, lower is better; wall: training seconds, evaluations excluded)")
    out.append("")
    out.extend(v["text"] for v in summary["verdicts"].values())
    return "\n".join(out)


def plot_quality_vs_wall(cfg: AgentsBenchmarkConfig, per_seed: list[dict[str, Any]], path: Path) -> None:
    """PNG: each agent's held-out quality and score against training seconds, one thin line per seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 5))
    colors = dict(zip(AGENTS, ("C0", "C4", "C1", "C2", "C3")))
    for ax, key, label in ((axes[0], "quality", "quality: sample NLL/char, training n-gram"),
                           (axes[1], "score", "score: quality + coverage, nats/char")):
        for name in cfg.agents:
            for i, s in enumerate(per_seed):
                pts = s["agents"][name]["points"]
                ax.plot([p["wall"] for p in pts], [p[key] for p in pts], marker="o", markersize=3,
                        color=colors[name], alpha=0.8, label=name if i == 0 else None)
        ax.set_xscale("symlog", linthresh=1.0)
        ax.set_xlabel("training wall-clock seconds (evaluations excluded)")
        ax.set_ylabel(f"{label} (lower: better)")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(f"agents from one MLE-pretrained generator, {cfg.env_steps} env steps each, "
                 f"{len(per_seed)} seed{'s' * (len(per_seed) > 1)} (one line each)")
    save_figure(fig, path, dpi=110)


def run_benchmark(cfg: AgentsBenchmarkConfig, out_path: str | Path, log: Callable[[str], None] = print,
                  workdir: str | Path | None = None) -> dict[str, Any]:
    """All seeds; writes the JSON (after each seed), the table (``.md``) and the plot (``.png``) beside it.

    Returns:
        {"config", "seeds": per-seed results, "summary"}.
    """
    out_path = Path(out_path)
    rest, test = split_test(load_texts(cfg.data, None), cfg.test_fraction, cfg.split_seed)
    log(f"benchmark agents on {cfg.data}: {len(rest)} rows for training (and validation), {len(test)} held out; "
        f"{cfg.env_steps} env steps per agent")
    per_seed: list[dict[str, Any]] = []
    result: dict[str, Any] = {"config": dataclasses.asdict(cfg), "bench_overrides": list(BENCH_OVERRIDES),
                              "seeds": per_seed}
    out_path.parent.mkdir(parents=True, exist_ok=True)
    run_seeds(cfg.seeds, lambda seed, tmp: run_seed(cfg, seed, rest, test, tmp, log),
              lambda: summarize(cfg, per_seed), result, out_path, "seqgan-benchmark-agents-", workdir)
    table = format_table(cfg, result["summary"], len(per_seed))
    out_path.with_suffix(".md").write_text(table + "\n", encoding="utf-8")
    plot_quality_vs_wall(cfg, per_seed, out_path.with_suffix(".png"))
    log("")
    log(table)
    return result


__all__ = ["AGENTS", "AgentsBenchmarkConfig", "BENCH_OVERRIDES", "at_equal_wall", "format_table",
           "plot_quality_vs_wall", "run_benchmark", "run_seed", "summarize", "verdict"]
