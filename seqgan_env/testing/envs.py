"""check_env / check_vector_env: Gymnasium's (and SB3's) checkers, then the invariants of seqgan-env on top.

The invariants (``seqgan_env.envs.env``, ``vector_env``, ``spec``, ``rewards.modes``):

- the token rule: an observation is the prefix written so far, right-padded with PAD;
  ``action_masks()`` is ``EnvConfig.valid_tokens`` (PAD and BOS never, EOS only when
  ``allow_eos`` and ``min_length`` symbols are written); a valid token is written; the episode
  ends (``terminated``, never ``truncated``) at EOS or at ``max_length``; a masked action writes
  nothing, ends the episode and pays ``invalid_action_reward`` with ``info["invalid_action"]``;
  ``info["text"]`` at the end is the decoded prefix.
- reward accounting, when a discriminator reward wrapper pays the env: a valid step pays the sum
  of its ``info["reward/<name>"]`` parts; callable sources pay only on the last step; the
  discriminator's part follows the mode (``final``: only the last step pays, the whole
  sequence's score; ``per_step``: the score of the prefix just written; ``potential``: the
  episode's parts telescope to score(sequence) - baseline, for every episode during which D did
  not change: a vector env that trains D when some rows end changes it under the others).
- vector envs: NEXT_STEP autoreset (the step after an end ignores its action, returns PAD, pays
  0); ``reset(options={"reset_mask": m})`` restarts only the rows of ``m``; the same seeds and
  actions give what ``SyncVectorEnv`` over single envs gives.

Discriminator co-training (``update_every`` set) changes D between episodes. The checks stay
exact under it: the expected discriminator part of a step is computed from the scorer just
before the step (D changes only after a step's reward). Comparisons across runs (Gymnasium's and
SB3's checkers, replay determinism, vector vs single) pause the wrapper's own updates while they run (its
``trainer.update_every`` is set to None and restored). A scorer with ``score_last`` (Monte-Carlo
rollouts) is random: its rewards are not recomputed, and the vector-vs-single comparison is
skipped unless you pass ``single_env_fns``. For tests that compare rewards across separately built
envs, pay them with ``ScriptedDiscriminator`` or build them with ``update_every=None``.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from typing import Any, Callable, Iterable, Sequence

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode, SyncVectorEnv

from seqgan_env.envs.env import default_decode
from seqgan_env.envs.spec import BOS_ID, EOS_ID, PAD_ID, EnvConfig
from seqgan_env.rewards.modes import get_transform
from seqgan_env.rewards.sources import INFO_PREFIX
from seqgan_env.testing.errors import CheckError, fail

_FIX_RULE = "follow the token rule of seqgan_env.envs.spec.EnvConfig (do not change tokens, masks or episode ends " \
            "in a wrapper)"
_FIX_SUM = "a wrapper that changes the reward must report it as a source (seqgan_env.rewards.sources), so that the " \
           "reward equals the sum of info['reward/<name>']"


# -- helpers ---------------------------------------------------------------------------------
def _np(x: Any) -> np.ndarray:
    return x.detach().cpu().numpy() if torch.is_tensor(x) else np.asarray(x)


def _reward_wrapper(env: Any) -> Any:
    """The discriminator reward wrapper in ``env``'s chain (it has ``reward_config`` and ``combiner``), or None."""
    e, depth = env, 0
    while e is not None and depth < 64:
        d = getattr(e, "__dict__", {})
        if "reward_config" in d and "combiner" in d:
            return e
        e, depth = d.get("env"), depth + 1
    return None


def _spec(env: Any, spec: EnvConfig | None) -> EnvConfig:
    if spec is not None:
        return spec
    cfg = getattr(env.unwrapped, "config", None)
    if not isinstance(cfg, EnvConfig):
        raise ValueError(f"{type(env.unwrapped).__name__} has no EnvConfig `config`: pass spec=EnvConfig(...) with the "
                         f"vocab_size, max_length, min_length and allow_eos it follows.")
    return cfg


def _decoder(base: Any) -> Callable[[np.ndarray], str]:
    tok = getattr(base, "tokenizer", None)
    return tok.decode if tok is not None else default_decode


@contextlib.contextmanager
def _paused_updates(*wrappers: Any):
    """Set each wrapper's ``trainer.update_every`` to None (no self-run D updates) and restore it."""
    saved = [(w.trainer, w.trainer.update_every) for w in wrappers if w is not None and hasattr(w, "trainer")]
    for trainer, _ in saved:
        trainer.update_every = None
    try:
        yield
    finally:
        for trainer, every in saved:
            trainer.update_every = every


def random_actions(vocab_size: int, num_envs: int, steps: int, seed: int = 0, masked: float = 0.05) -> np.ndarray:
    """(steps, num_envs) int64 actions: symbols and EOS, with a fraction of PAD/BOS (always masked) mixed in.

    Args:
        vocab_size: the action space's size.
        num_envs: columns.
        steps: rows.
        seed: the numpy seed.
        masked: the fraction of PAD/BOS actions.

    Returns:
        The (steps, num_envs) int64 array.

    Raises:
        ValueError: ``vocab_size`` leaves no symbol.
    """
    if vocab_size <= EOS_ID + 1:
        raise ValueError(f"vocab_size={vocab_size} has no symbol after PAD, BOS, EOS.")
    rng = np.random.default_rng(seed)
    acts = rng.integers(EOS_ID, vocab_size, size=(steps, num_envs))
    bad = rng.random((steps, num_envs)) < masked
    acts[bad] = rng.integers(0, EOS_ID, size=int(bad.sum()))
    return acts.astype(np.int64)


def _pick(rng: np.random.Generator, valid: np.ndarray) -> int:
    """A random action: a masked one 10% of the time, EOS a quarter of the time it is valid, else a symbol."""
    if rng.random() < 0.1:
        return int(rng.choice(np.flatnonzero(~valid)))
    if valid[EOS_ID] and rng.random() < 0.25:
        return EOS_ID
    return int(rng.choice(np.flatnonzero(valid)))


def _check_mask(mask: Any, spec: EnvConfig, length: int, where: str) -> None:
    m = _np(mask)
    want = spec.valid_tokens(length).numpy()
    if m.dtype != bool or m.shape != want.shape:
        fail(f"{where}: action_masks() is dtype {m.dtype} shape {m.shape}",
             f"return a bool array of shape {want.shape} (one entry per token id)")
    if not np.array_equal(m, want):
        ids = np.flatnonzero(m != want)[:5].tolist()
        fail(f"{where}: action_masks() after {length} written tokens says {dict(zip(ids, m[ids].tolist()))} for ids "
             f"{ids}, the rule says {dict(zip(ids, want[ids].tolist()))} (PAD={PAD_ID}/BOS={BOS_ID} never, EOS={EOS_ID} "
             f"only after min_length={spec.min_length} symbols when allow_eos={spec.allow_eos})", _FIX_RULE)


class _Rewards:
    """What a reward wrapper must pay: expected discriminator parts (recomputed before each step) and the
    per-episode accounting of its mode."""

    def __init__(self, wrapper: Any, spec: EnvConfig, atol: float, recompute: bool | None, bare: bool) -> None:
        self.wrapper, self.spec, self.atol, self.bare = wrapper, spec, atol, bare
        if wrapper is None:
            self.keys, self.callables, self.weight, self.recompute = (), (), None, False
            return
        comb = wrapper.combiner
        self.cfg = wrapper.reward_config
        self.keys = tuple(comb.info_keys)
        self.callables = tuple(INFO_PREFIX + s.name for s in comb.sources if s.fn is not None)
        self.weight = comb.discriminator_weight
        self.d_key = INFO_PREFIX + "discriminator"
        auto = not hasattr(wrapper.scorer, "score_last")  # Monte-Carlo rollouts are random
        self.recompute = self.weight is not None and (auto if recompute is None else recompute)
        self.transform = get_transform(self.cfg.transform)

    def _close(self, a: float, b: float, loose: bool = False) -> bool:
        tol = self.atol * (1.0 + abs(b)) * (10.0 if loose else 1.0)
        return math.isfinite(a) and abs(a - b) <= tol

    @torch.no_grad()
    def expected(self, prefixes: list[list[int]], done: list[bool]) -> list[tuple[float, float, float]]:
        """Per row written this step: (expected D part, score s of the whole prefix, its logit)."""
        if not self.recompute or not prefixes:
            return [(math.nan, math.nan, math.nan)] * len(prefixes)
        m = max(len(p) for p in prefixes)
        x = torch.full((len(prefixes), m), PAD_ID, dtype=torch.long)
        for k, p in enumerate(prefixes):
            x[k, : len(p)] = torch.tensor(p)
        logits = torch.as_tensor(self.wrapper.scorer.score_logits(x)).float().cpu()  # (K, m)
        s = self.transform(logits)
        out = []
        for k, p in enumerate(prefixes):
            n = len(p)
            cur = float(s[k, n - 1])
            prev = float(s[k, n - 2]) if n > 1 else float(self.cfg.potential_baseline)
            d = {"final": cur if done[k] else 0.0, "per_step": cur, "potential": cur - prev}[self.cfg.mode]
            out.append((self.weight * d, cur, float(logits[k, n - 1])))
        return out

    def updates(self) -> int | None:
        """The wrapper's count of its own D updates (None when it has no trainer)."""
        return getattr(getattr(self.wrapper, "trainer", None), "num_updates", None)

    def check_valid(self, reward: float, parts: dict[str, float], exp: tuple, done: bool, d_sum: float,
                    disc_score: float | None, where: str, fixed_d: bool = True) -> float:
        """Check one valid step's reward; returns the episode's new sum of discriminator parts.

        ``fixed_d`` False: D was updated during this episode (a vector env trains it when other rows
        end), so its potential parts need not telescope; only the per-step checks apply.
        """
        if self.wrapper is None:
            if self.bare and reward != 0.0:
                fail(f"{where}: the bare env paid {reward} for a valid step", "TokenGenerationEnv pays 0.0 for a "
                     "valid step; pay rewards in a wrapper (DiscriminatorReward)")
            return 0.0
        missing = [k for k in self.keys if k not in parts]
        if missing:
            fail(f"{where}: info has no {missing}", "keep the reward wrapper's info['reward/<name>'] entries (a "
                 "wrapper above it must pass info through)")
        total = sum(parts[k] for k in self.keys)
        if not self._close(reward, total):
            fail(f"{where}: paid {reward}, but its sources sum to {total} ({ {k: parts[k] for k in self.keys} })",
                 _FIX_SUM)
        for k in self.callables:
            if not done and parts[k] != 0.0:
                fail(f"{where}: source {k} paid {parts[k]} before the sequence ended",
                     "a callable source pays only on the step that writes the sequence's last token")
        if self.weight is None:
            return 0.0
        d = parts[self.d_key]
        want, s_final, logit = exp
        if self.recompute and not self._close(d, want):
            fail(f"{where}: the discriminator part is {d}, but mode {self.cfg.mode!r} with transform "
                 f"{self.cfg.transform!r} and the scorer's logits give {want}",
                 "compute step rewards with seqgan_env.rewards.modes.step_rewards on the scorer's logits of the "
                 "current prefix")
        if self.cfg.mode == "final" and not done and d != 0.0:
            fail(f"{where}: mode 'final' paid {d} before the last step", "in mode 'final' only the last step pays")
        d_sum += d
        if done:
            loose = not self.recompute
            if loose:
                if disc_score is None or not 0.0 < disc_score < 1.0:
                    return d_sum
                logit = math.log(disc_score) - math.log1p(-disc_score)
                s_final = float(self.transform(torch.tensor([logit], dtype=torch.float64))[0])
            elif disc_score is not None and not self._close(disc_score, 1.0 / (1.0 + math.exp(-logit))):
                fail(f"{where}: info['disc_score'] is {disc_score}, the scorer gives {1.0 / (1.0 + math.exp(-logit))}",
                     "report sigmoid(logit of the whole sequence) as disc_score")
            w, base = self.weight, self.cfg.potential_baseline
            if self.cfg.mode == "potential" and fixed_d and not self._close(d_sum, w * (s_final - base), loose):
                fail(f"{where}: mode 'potential' paid {d_sum} in discriminator parts over the episode; they must "
                     f"telescope to weight x (score(sequence) - baseline) = {w} x ({s_final} - {base}) = "
                     f"{w * (s_final - base)}", "pay s_t - s_(t-1) with s_(-1) = potential_baseline, from a causal "
                     "scorer that does not change inside an episode")
            if self.cfg.mode in ("final", "per_step") and not self._close(d, w * s_final, loose):
                fail(f"{where}: mode {self.cfg.mode!r} paid {d} on the last step, not weight x score(sequence) = "
                     f"{w * s_final}", "pay the transformed score of the whole sequence on the last step")
        return d_sum

    def check_zero_parts(self, parts: dict[str, float], where: str) -> None:
        for k in self.keys:
            if k in parts and parts[k] != 0.0:
                fail(f"{where}: source {k} paid {parts[k]} on a step that wrote no token",
                     "a masked action (or an autoreset step) is not scored: its parts are 0")


def _run_checkers(env: Any, gym_checker: bool, sb3_checker: bool) -> list[str]:
    ran = []
    if gym_checker:
        from gymnasium.utils.env_checker import check_env as gym_check_env

        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*wrapped.*", category=UserWarning)
            gym_check_env(env, skip_render_check=True)
        ran.append("gymnasium")
    if sb3_checker:
        try:
            from stable_baselines3.common.env_checker import check_env as sb3_check_env
        except ImportError:
            return ran
        sb3_check_env(env, warn=True)
        ran.append("stable_baselines3")
    return ran


# -- single env --------------------------------------------------------------------------------
def check_env(
    env: gym.Env,
    *,
    episodes: int = 8,
    seed: int = 0,
    actions: Iterable[int] | None = None,
    spec: EnvConfig | None = None,
    gym_checker: bool = True,
    sb3_checker: bool = True,
    atol: float = 1e-4,
    recompute_rewards: bool | None = None,
) -> dict:
    """Check a single env: Gymnasium's and SB3's checkers, then the token rule and reward accounting.

    See the module docstring for the invariants and for discriminator co-training. The env is
    stepped with seeded random actions (some masked, EOS often enough to vary the lengths), or
    with ``actions``. Then the first episode is replayed twice from ``reset(seed=seed)`` with the
    wrapper's own D updates paused: both replays must give the same observations, flags and rewards.

    Args:
        env: the env, as a user gets it (``gymnasium.make(...)``, ``seqgan_env.make_env(...)``, or
            a TokenGenerationEnv in your wrappers).
        episodes: episodes of random actions (ignored with ``actions``).
        seed: seeds the resets and the random actions.
        actions: play these actions instead, resetting after each episode end.
        spec: the EnvConfig the env follows (default: ``env.unwrapped.config``).
        gym_checker: run ``gymnasium.utils.env_checker.check_env`` first.
        sb3_checker: run ``stable_baselines3.common.env_checker.check_env`` too (skipped when SB3
            is not installed).
        atol: tolerance of reward comparisons (scaled by 1 + |expected|).
        recompute_rewards: recompute each step's discriminator part from the scorer (default: yes,
            unless the scorer has ``score_last``, i.e. is random).

    Returns:
        ``{"checkers": [...], "episodes": n, "steps": n, "invalid": n, "eos": n, "full": n}``:
        what was checked (ends by a masked action, by EOS, by filling ``max_length``).

    Raises:
        CheckError: (an AssertionError) an invariant is broken; the message names the step and the fix.
        AssertionError: from Gymnasium's or SB3's checker.
        ValueError: no ``spec`` for an env without an EnvConfig ``config``.
    """
    spec = _spec(env, spec)
    base = env.unwrapped
    wrapper = _reward_wrapper(env)
    with _paused_updates(wrapper):  # their determinism checks compare two runs
        checkers = _run_checkers(env, gym_checker, sb3_checker)
    rewards = _Rewards(wrapper, spec, atol, recompute_rewards, bare=env is base)
    decode = _decoder(base)
    try:
        masks_fn = env.get_wrapper_attr("action_masks")
    except AttributeError:
        masks_fn = None
    rng = np.random.default_rng(seed)
    given = None if actions is None else iter(actions)
    stats = {"checkers": checkers, "episodes": 0, "steps": 0, "invalid": 0, "eos": 0, "full": 0}
    first: list[int] = []
    ep = 0
    while (given is not None) or ep < episodes:
        obs, info = env.reset(seed=seed + ep)
        o = _np(obs)
        if o.shape != (spec.max_length,) or not (o == PAD_ID).all() or not isinstance(info, dict):
            fail(f"episode {ep}: reset() returned {o.tolist()} and {type(info).__name__}",
                 f"reset to all PAD (id {PAD_ID}), shape ({spec.max_length},), with an info dict")
        tokens: list[int] = []
        d_sum, done, t = 0.0, False, 0
        while not done:
            where = f"episode {ep}, step {t} (prefix {tokens})"
            valid = spec.valid_tokens(len(tokens)).numpy()
            if masks_fn is not None:
                _check_mask(masks_fn(), spec, len(tokens), where)
            if given is not None:
                a = next(given, None)
                if a is None:
                    return stats
                a = int(a)
            else:
                a = _pick(rng, valid)
            if ep == 0:
                first.append(a)
            ok = bool(valid[a])
            n = len(tokens) + int(ok)
            end = (not ok) or a == EOS_ID or n == spec.max_length
            exp = rewards.expected([tokens + [a]], [end])[0] if ok else None
            obs, r, term, trunc, info = env.step(a)
            where = f"episode {ep}, step {t} (prefix {tokens} + action {a})"
            o = _np(obs)
            if ok:
                tokens.append(a)
            want = np.array(tokens + [PAD_ID] * (spec.max_length - len(tokens)), dtype=np.int64)
            if not (isinstance(r, (float, np.floating)) and math.isfinite(r)):
                fail(f"{where}: reward {r!r} is not a finite float", "return float(reward)")
            if not isinstance(term, (bool, np.bool_)) or not isinstance(trunc, (bool, np.bool_)):
                fail(f"{where}: terminated/truncated are {type(term).__name__}/{type(trunc).__name__}", "return bools")
            if not np.array_equal(o, want):
                fail(f"{where}: observation is {o.tolist()}, the token rule gives {want.tolist()} (the prefix written "
                     f"so far, then PAD; a masked action writes nothing)", _FIX_RULE)
            if trunc:
                fail(f"{where}: truncated=True", "a sequence ends as terminated (EOS, max_length or a masked "
                     "action); truncated stays False (nothing to bootstrap past a finished sequence)")
            if bool(term) != end:
                why = "a masked action" if not ok else ("EOS" if a == EOS_ID else f"token {n} of max_length "
                                                                                  f"{spec.max_length}")
                fail(f"{where}: terminated={bool(term)} after {why}; the episode must end exactly at EOS, at "
                     f"max_length or on a masked action", _FIX_RULE)
            if not ok:
                if r != spec.invalid_action_reward or not info.get("invalid_action", False):
                    fail(f"{where}: a masked action paid {r} with info {sorted(info)}", f"pay invalid_action_reward="
                         f"{spec.invalid_action_reward} and set info['invalid_action']=True")
                rewards.check_zero_parts(info, where)
                stats["invalid"] += 1
            else:
                d_sum = rewards.check_valid(float(r), info, exp, end, d_sum, info.get("disc_score"), where)
            if end:
                text = decode(np.array(tokens, dtype=np.int64))
                if info.get("text") != text:
                    fail(f"{where}: info['text'] is {info.get('text')!r} at the end, the tokens decode to {text!r}",
                         "set info['text'] to the decoded sequence when the episode ends")
                stats["eos" if ok and a == EOS_ID else "full" if ok else "invalid"] += int(ok)
            done, t = end, t + 1
            stats["steps"] += 1
        if ep == 0:
            try:
                env.step(first[-1])
            except RuntimeError:
                pass
            else:
                fail("episode 0: step() after the episode ended did not raise", "raise RuntimeError until reset()")
        stats["episodes"] += 1
        ep += 1
    with _paused_updates(wrapper):
        runs = [_replay(env, seed, first) for _ in range(2)]
    for t, (x, y) in enumerate(zip(*runs)):
        same = np.array_equal(x[0], y[0]) and x[2:] == y[2:] and abs(x[1] - y[1]) <= atol * (1 + abs(x[1]))
        if not same:
            fail(f"replaying episode 0 (actions {first}) from reset(seed={seed}) differs at step {t}: {x} then {y}",
                 "make reset(seed) and step deterministic (seed all randomness; a reward that changes between runs "
                 "needs update_every=None or a ScriptedDiscriminator in tests)")
    return stats


def _replay(env: gym.Env, seed: int, actions: Sequence[int]) -> list[tuple]:
    env.reset(seed=seed)
    out = []
    for a in actions:
        obs, r, term, trunc, _ = env.step(a)
        out.append((_np(obs).copy(), float(r), bool(term), bool(trunc)))
    return out


# -- vector env --------------------------------------------------------------------------------
def _single_fns(venv: Any) -> list[Callable[[], gym.Env]] | None:
    """Single envs equivalent to ``venv``: TokenGenerationEnv (+ DiscriminatorReward on the same scorer), or None."""
    from seqgan_env.envs.env import TokenGenerationEnv
    from seqgan_env.envs.vector_env import TokenGenerationVectorEnv
    from seqgan_env.rewards.wrappers import DiscriminatorReward, DiscriminatorRewardVector

    base = venv.unwrapped
    if not isinstance(base, TokenGenerationVectorEnv):
        return None
    w = _reward_wrapper(venv)
    if w is not None and (not isinstance(w, DiscriminatorRewardVector) or w.env is not base):
        return None
    c = base.config

    def make() -> gym.Env:
        env = TokenGenerationEnv(vocab_size=c.vocab_size, max_length=c.max_length, min_length=c.min_length,
                                 allow_eos=c.allow_eos, invalid_action_reward=c.invalid_action_reward,
                                 tokenizer=base.tokenizer)
        if w is None:
            return env
        cfg = {k: v for k, v in w.reward_config.to_dict().items() if k != "sources"} | {"update_every": None}
        return DiscriminatorReward(env, w.scorer, sources=list(w.combiner.sources), **cfg)

    return [make] * base.num_envs


def assert_vector_matches_single(
    venv: gym.vector.VectorEnv,
    single: Sequence[Callable[[], gym.Env]] | gym.vector.VectorEnv,
    *,
    steps: int = 60,
    seed: int = 0,
    atol: float = 0.0,
    actions: np.ndarray | None = None,
    on_step: Callable[[int], None] | None = None,
) -> dict:
    """Step ``venv`` and single envs with the same seed and actions; everything they return must match.

    Compared each step: observations, terminated, truncated, rewards, the finished rows' texts
    (``info["text"]`` / ``"_text"``), ``"_invalid_action"`` and each ``info["reward/<name>"]`` where
    the single envs report one.

    Args:
        venv: the vector env (NEXT_STEP autoreset).
        single: factories of the single envs (one per sub-env, run in a NEXT_STEP
            ``SyncVectorEnv``), or a vector env of them. They must not share state that ``venv``
            changes differently (e.g. a discriminator trained by only one side).
        steps: steps to compare.
        seed: the reset seed and the actions' seed.
        atol: reward tolerance (0: equal as float32).
        actions: (steps, num_envs) actions (default: :func:`random_actions`).
        on_step: called with the step index after each step (e.g. to update a shared discriminator).

    Returns:
        ``{"steps": n, "finished": n}``: the episodes that ended (autoresets exercised).

    Raises:
        CheckError: (an AssertionError) the first difference, with its step and sub-env.
    """
    sync = single if isinstance(single, gym.vector.VectorEnv) else SyncVectorEnv(
        list(single), autoreset_mode=AutoresetMode.NEXT_STEP)
    b = venv.num_envs
    if actions is None:
        actions = random_actions(venv.single_action_space.n, b, steps, seed)
    fix = "make the vector env step each sub-env exactly as the single env does (same token rule, rewards and " \
          "NEXT_STEP autoreset)"
    o1, _ = sync.reset(seed=seed)
    o2, _ = venv.reset(seed=seed)
    if not np.array_equal(_np(o1), _np(o2)):
        fail(f"reset(seed={seed}): vector obs {_np(o2).tolist()} != single {_np(o1).tolist()}", fix)
    finished = 0
    for i, a in enumerate(actions):
        o1, r1, te1, tr1, i1 = sync.step(a)
        o2, r2, te2, tr2, i2 = venv.step(a)
        pairs = [("observation", o1, o2), ("terminated", te1, te2), ("truncated", tr1, tr2)]
        for name, x, y in pairs:
            x, y = _np(x), _np(y)
            if not np.array_equal(x, y):
                j = int(np.flatnonzero((x != y).reshape(b, -1).any(1))[0])
                fail(f"step {i} (actions {np.asarray(a).tolist()}), sub-env {j}: vector {name} {y[j].tolist()} != "
                     f"single {x[j].tolist()}", fix)
        r1, r2 = _np(r1).astype(np.float64), _np(r2).astype(np.float64)
        same = (np.float32(r1) == np.float32(r2)) if atol == 0.0 else np.isclose(r1, r2, atol=atol, rtol=0)
        if not same.all():
            j = int(np.flatnonzero(~same)[0])
            fail(f"step {i} (actions {np.asarray(a).tolist()}), sub-env {j}: vector reward {r2[j]} != single {r1[j]}",
                 fix + "; rewards that differ between runs need a fixed discriminator (update_every=None)")
        for key in ("text", "invalid_action"):
            m1, m2 = _np(i1.get("_" + key, np.zeros(b, bool))), _np(i2.get("_" + key, np.zeros(b, bool)))
            if not np.array_equal(m1, m2) or (m1.any() and not np.array_equal(_np(i1[key])[m1], _np(i2[key])[m2])):
                fail(f"step {i}: vector info[{key!r}] {_np(i2.get(key)).tolist() if key in i2 else None} (rows "
                     f"{m2.tolist()}) != single {_np(i1.get(key)).tolist() if key in i1 else None} (rows "
                     f"{m1.tolist()})", fix)
        finished += int(_np(i1.get("_text", np.zeros(b, bool))).sum())
        for key in [k for k in i1 if k.startswith(INFO_PREFIX)]:
            m = _np(i1["_" + key])
            if key not in i2 or not np.allclose(_np(i1[key])[m].astype(float), _np(i2[key])[m].astype(float),
                                                atol=max(atol, 1e-6), rtol=0):
                fail(f"step {i}: vector info[{key!r}] {_np(i2[key]).tolist() if key in i2 else None} != single "
                     f"{_np(i1[key]).tolist()} (rows {m.tolist()})", fix)
        if on_step:
            on_step(i)
    return {"steps": len(actions), "finished": finished}


def check_vector_env(
    venv: gym.vector.VectorEnv,
    *,
    steps: int = 60,
    seed: int = 0,
    spec: EnvConfig | None = None,
    single_env_fns: Sequence[Callable[[], gym.Env]] | None = None,
    compare_single: bool | None = None,
    atol: float = 1e-4,
    recompute_rewards: bool | None = None,
) -> dict:
    """Check a vector env: spaces, the token rule per sub-env, reward accounting, partial resets, vector == single.

    Gymnasium has no checker for vector envs (and SB3's is for single envs): run :func:`check_env`
    on one of its single envs for those. Here: ``single_observation_space`` / ``single_action_space``;
    NEXT_STEP autoreset; ``steps`` steps of seeded random actions (some masked) checked against a
    model of every sub-env (observations, ``action_masks()``, flags, texts, and the reward
    accounting of :func:`check_env` per row); halfway, ``reset(options={"reset_mask": m})`` on the
    even rows must restart exactly those (the others keep their tokens, and their episodes and
    rewards continue); finally :func:`assert_vector_matches_single` against single envs, with the
    wrapper's own D updates paused (see the module docstring on co-training).

    Args:
        venv: the vector env (e.g. ``seqgan_env.make_vector_env(...)``), at least 2 sub-envs for
            the partial reset.
        steps: steps of the invariant run and of the comparison.
        seed: seeds the resets and the actions.
        spec: the EnvConfig of each sub-env (default: ``venv.unwrapped.config``).
        single_env_fns: single-env factories to compare with (default: built from ``venv`` when it
            is a TokenGenerationVectorEnv, optionally in DiscriminatorRewardVector; they share its scorer).
        compare_single: run the comparison (default: when factories are given or can be built and
            the scorer is not random).
        atol: tolerance of reward comparisons.
        recompute_rewards: as in :func:`check_env`.

    Returns:
        ``{"steps": n, "finished": n, "invalid": n, "telescoped": n, "partial_reset": rows, "compared": bool}``;
        ``telescoped``: the valid episodes whose D was not updated while they ran (only those must telescope
        in mode ``potential``).

    Raises:
        CheckError: (an AssertionError) an invariant is broken; the message names the step, the
            sub-env and the fix.
        ValueError: no ``spec`` for an env without EnvConfig, ``compare_single=True`` without
            factories that can be built, or fewer than 2 sub-envs.
    """
    spec = _spec(venv, spec)
    b, t_max = venv.num_envs, spec.max_length
    if b < 2:
        raise ValueError("check_vector_env needs num_envs >= 2 (the partial reset keeps some rows and resets others).")
    base = venv.unwrapped
    if venv.single_observation_space != gym.spaces.Box(0, spec.vocab_size - 1, (t_max,), np.int64):
        fail(f"single_observation_space is {venv.single_observation_space}",
             f"Box(0, {spec.vocab_size - 1}, ({t_max},), int64): the token prefix padded with PAD")
    if venv.single_action_space != gym.spaces.Discrete(spec.vocab_size):
        fail(f"single_action_space is {venv.single_action_space}", f"Discrete({spec.vocab_size}), one token id")
    mode = venv.metadata.get("autoreset_mode")
    if mode != AutoresetMode.NEXT_STEP:
        fail(f"metadata['autoreset_mode'] is {mode!r}", "declare AutoresetMode.NEXT_STEP (the step after an end "
                                                      "returns the reset observation and ignores its action)")
    wrapper = _reward_wrapper(venv)
    rewards = _Rewards(wrapper, spec, atol, recompute_rewards, bare=venv is base)
    decode = _decoder(base)
    masks_fn = getattr(venv, "action_masks", None) or getattr(base, "action_masks", None)
    rng = np.random.default_rng(seed)
    obs, _ = venv.reset(seed=seed)
    if _np(obs).shape != (b, t_max) or not (_np(obs) == PAD_ID).all():
        fail(f"reset(seed={seed}) returned {_np(obs).tolist()}", f"all PAD, shape ({b}, {t_max})")
    tokens: list[list[int]] = [[] for _ in range(b)]
    pending = np.zeros(b, dtype=bool)  # ended last step: this step autoresets
    d_sum = np.zeros(b)
    began = [rewards.updates()] * b  # the wrapper's D update count when each row's episode began
    stats = {"steps": 0, "finished": 0, "invalid": 0, "telescoped": 0, "partial_reset": [], "compared": False}
    for i in range(steps):
        if i == steps // 2:
            stats["partial_reset"] = _check_partial_reset(venv, tokens, pending, d_sum, t_max, i)
            for j in stats["partial_reset"]:
                began[j] = rewards.updates()
        lengths = [0 if pending[j] else len(tokens[j]) for j in range(b)]
        valid = spec.valid_tokens(torch.tensor(lengths)).numpy()  # (B, V)
        if masks_fn is not None:
            got = _np(masks_fn())
            if got.shape != valid.shape or got.dtype != bool or not np.array_equal(got, valid):
                rows = np.flatnonzero((got != valid).reshape(b, -1).any(1)) if got.shape == valid.shape else [0]
                j = int(rows[0])
                fail(f"step {i}, sub-env {j}: action_masks() row {got[j].tolist() if got.ndim == 2 else got} after "
                     f"{lengths[j]} tokens, the rule gives {valid[j].tolist()}", _FIX_RULE)
        acts = np.array([_pick(rng, valid[j]) for j in range(b)], dtype=np.int64)
        ok = np.array([not pending[j] and bool(valid[j, acts[j]]) for j in range(b)])
        ends = np.array([not pending[j] and (not ok[j] or acts[j] == EOS_ID or len(tokens[j]) + 1 == t_max)
                         for j in range(b)])
        written = np.flatnonzero(ok)
        exp = dict(zip(written.tolist(), rewards.expected([tokens[j] + [int(acts[j])] for j in written],
                                                          [bool(ends[j]) for j in written])))
        before = rewards.updates()
        obs, r, term, trunc, info = venv.step(acts)
        o, r, term, trunc = _np(obs), _np(r).astype(np.float64), _np(term), _np(trunc)
        for j in range(b):
            where = f"step {i}, sub-env {j} (prefix {tokens[j]} + action {int(acts[j])})"
            if pending[j]:
                where = f"step {i}, sub-env {j} (autoreset step)"
                tokens[j], d_sum[j], began[j] = [], 0.0, before
            elif ok[j]:
                tokens[j] = tokens[j] + [int(acts[j])]
            want = tokens[j] + [PAD_ID] * (t_max - len(tokens[j]))
            if o[j].tolist() != want:
                fail(f"{where}: observation {o[j].tolist()}, the token rule gives {want}", _FIX_RULE)
            if bool(trunc[j]):
                fail(f"{where}: truncated=True", "truncated stays False; a sequence ends as terminated")
            if bool(term[j]) != bool(ends[j]):
                fail(f"{where}: terminated={bool(term[j])}, expected {bool(ends[j])} (ends: EOS, max_length "
                     f"{t_max}, a masked action; an autoreset step never ends)", _FIX_RULE)
            parts = {k: float(_np(info[k])[j]) for k in rewards.keys if k in info}
            if pending[j]:
                if r[j] != 0.0:
                    fail(f"{where}: paid {r[j]}", "an autoreset step ignores its action and pays 0")
                rewards.check_zero_parts(parts, where)
            elif not ok[j]:
                inv = _np(info.get("invalid_action", np.zeros(b, bool)))
                if r[j] != np.float32(spec.invalid_action_reward) or not bool(inv[j]):
                    fail(f"{where}: a masked action paid {r[j]} (info['invalid_action'] {bool(inv[j])})",
                         f"pay invalid_action_reward={spec.invalid_action_reward} and flag info['invalid_action']")
                rewards.check_zero_parts(parts, where)
                stats["invalid"] += 1
            else:
                ds = info.get("disc_score")
                score = float(_np(ds)[j]) if ds is not None and bool(_np(info.get("_disc_score", ds))[j]) else None
                fixed = began[j] == before  # D unchanged since the episode began (updates come after rewards)
                d_sum[j] = rewards.check_valid(float(r[j]), parts, exp[j], bool(ends[j]), d_sum[j], score, where,
                                               fixed)
                stats["telescoped"] += int(bool(ends[j]) and fixed and rewards.weight is not None)
            if ends[j]:
                stats["finished"] += 1
                if "_text" in info and bool(_np(info["_text"])[j]) and \
                        _np(info["text"])[j] != decode(np.array(tokens[j], dtype=np.int64)):
                    fail(f"{where}: info['text'] is {_np(info['text'])[j]!r}, the tokens decode to "
                         f"{decode(np.array(tokens[j], dtype=np.int64))!r}", "decode the finished row")
        if "_text" in info and not np.array_equal(_np(info["_text"]), ends):
            fail(f"step {i}: info['_text'] marks rows {_np(info['_text']).tolist()}, the rows that ended are "
                 f"{ends.tolist()}", "give info['text'] for exactly the rows that ended this step")
        pending = ends
        stats["steps"] += 1
    if stats["finished"] == 0:
        raise CheckError(f"no episode ended in {steps} steps: nothing about episode ends was checked; fix: raise steps")
    fns = single_env_fns if single_env_fns is not None else _single_fns(venv)
    random_scorer = wrapper is not None and hasattr(wrapper.scorer, "score_last")
    if compare_single is None:
        compare_single = fns is not None and (single_env_fns is not None or not random_scorer)
    if compare_single:
        if fns is None:
            raise ValueError("compare_single=True, but no single envs can be built from this vector env: pass "
                             "single_env_fns=[factory, ...].")
        with _paused_updates(wrapper):
            assert_vector_matches_single(venv, fns, steps=steps, seed=seed, atol=atol)
        stats["compared"] = True
    return stats


def _check_partial_reset(venv, tokens, pending, d_sum, t_max, i) -> list[int]:
    """reset(options={"reset_mask": even rows}): those restart, the others keep their state (updated in place)."""
    b = venv.num_envs
    mask = np.arange(b) % 2 == 0
    obs, info = venv.reset(options={"reset_mask": mask})
    o = _np(obs)
    for j in range(b):
        if mask[j]:
            tokens[j], pending[j], d_sum[j] = [], False, 0.0
        want = tokens[j] + [PAD_ID] * (t_max - len(tokens[j]))
        if o[j].tolist() != want:
            kept = "restart (all PAD)" if mask[j] else f"keep its tokens {want}"
            fail(f"before step {i}: reset(options={{'reset_mask': {mask.tolist()}}}) gave sub-env {j} "
                 f"{o[j].tolist()}; it must {kept}", "reset only the rows of reset_mask; the others go on with "
                                                      "their episodes (and the reward wrapper keeps their scores)")
    return np.flatnonzero(mask).tolist()
