"""SB3 actor-critic policies whose actor is our causal-LM generator.

:class:`GeneratorPolicy` (for ``stable_baselines3.PPO`` / ``A2C``) and
:class:`MaskableGeneratorPolicy` (for ``sb3_contrib.MaskablePPO``): the action
distribution is the generator's next-token distribution given the token prefix the
env observes, and a small value head reads the generator's last hidden state at the
same position. The generator is any causal LM of this package (the tiny Llama of
:func:`~seqgan_env.models.networks.build_generator`, SeqGAN's LSTM, or a
``--generator.pretrained`` model): what it learns under PPO is what ``seqgan-env
sample`` and the generator export read.

The observation is (T,) token ids: the symbols written so far, EOS, PAD-right-padded,
no BOS (``seqgan_env.envs.spec``). The policy reads the generator's logits and hidden
state after ``[BOS, prefix]`` (as REINFORCE does) through
:class:`~seqgan_env.models.sampling.PrefixDecoder`: SB3 steps the policy once per env
step, and when every row's observation extends the previous call's by one token (or
starts a new episode) only the new tokens go through the generator, with its KV cache
(``kv_cache=True``, the default); any other call, and PPO's update (gradients on), runs
the full teacher-forced forward over the prefixes, where causal attention makes the
right padding invisible. The env spec's token rule masks the logits through the same
sampling code as REINFORCE's (``TokenSampler.logits``).

Example::

    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env
    from seqgan_env.integrations.sb3_policy import GeneratorPolicy

    model = PPO(GeneratorPolicy, make_vec_env("seqgan_env:SeqGAN-v1", n_envs=4), n_steps=64)
    model.learn(256)
    model.policy.generator  # the trained causal LM
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.policies import ActorCriticPolicy
from torch import nn

from seqgan_env.envs.spec import PAD_ID, EnvConfig
from seqgan_env.models.networks import GeneratorConfig, build_generator
from seqgan_env.models.sampling import PrefixDecoder, TokenSampler

__all__ = ["GeneratorPolicy", "MaskableGeneratorPolicy", "generator_output_layer"]


def generator_output_layer(generator: nn.Module) -> nn.Linear:
    """The linear layer that maps the generator's last hidden state to its logits.

    Args:
        generator: a transformers causal LM (``get_output_embeddings()``) or an
            :class:`~seqgan_env.models.lstm.LSTMGenerator` (``head``).

    Returns:
        The ``nn.Linear`` of width hidden -> vocab; its input is the hidden state the value head reads.

    Raises:
        TypeError: the generator has no such linear layer.
    """
    layer = None
    get = getattr(generator, "get_output_embeddings", None)
    if callable(get):
        layer = get()
    if layer is None:
        layer = getattr(generator, "head", None)
    if not isinstance(layer, nn.Linear):
        raise TypeError(
            f"generator {type(generator).__name__} has no linear output layer (get_output_embeddings() or .head) for "
            f"the value head to read; fix: pass a transformers causal LM or an LSTMGenerator "
            f"(seqgan_env.models.networks.build_generator).")
    return layer


class _GeneratorHeads:
    """What both policies share: building the generator and value head, and the forward over the prefix."""

    generator: nn.Module
    value_net: nn.Module
    spec: EnvConfig | None

    def _setup(self, generator: nn.Module | None, generator_config: GeneratorConfig | None, value_hidden: int,
               spec: EnvConfig | None, observation_space: spaces.Space, action_space: spaces.Space,
               kv_cache: bool = True) -> None:
        """Validate the arguments; keep them (plain attributes: nn.Module.__init__ has not run yet)."""
        if not isinstance(kv_cache, bool):
            raise ValueError(f"kv_cache={kv_cache!r} is invalid: it must be True (reuse the generator's cache "
                             f"while SB3 steps the env) or False (a full forward every call).")
        if not isinstance(action_space, spaces.Discrete):
            raise ValueError(f"{type(self).__name__} needs a Discrete action space (one token id), got {action_space}; "
                             f"fix: use it with the seqgan_env envs (seqgan_env:SeqGAN-v1).")
        if not isinstance(observation_space, spaces.Box) or len(observation_space.shape) != 1:
            raise ValueError(f"{type(self).__name__} needs a Box observation of shape (max_length,) holding token ids, "
                             f"got {observation_space}; fix: use it with the seqgan_env envs (seqgan_env:SeqGAN-v1).")
        if generator is not None and not isinstance(generator, nn.Module):
            raise TypeError(f"generator={generator!r} is not a torch module; fix: pass a causal LM (e.g. "
                            f"build_generator(GeneratorConfig(), vocab_size)) or None to build one.")
        if generator is not None and generator_config is not None:
            raise ValueError("generator and generator_config are both given; fix: pass one (generator_config only "
                             "builds a generator when none is given).")
        if generator_config is not None and not isinstance(generator_config, GeneratorConfig):
            raise TypeError(f"generator_config={generator_config!r} is not a GeneratorConfig; fix: pass "
                            f"seqgan_env.models.networks.GeneratorConfig(...) or None for the default tiny Llama.")
        if isinstance(value_hidden, bool) or not isinstance(value_hidden, (int, np.integer)) or value_hidden < 1:
            raise ValueError(f"value_hidden={value_hidden!r} is invalid: it must be an int >= 1 (the value head's "
                             f"hidden width); fix: e.g. value_hidden=64.")
        if spec is not None and not isinstance(spec, EnvConfig):
            raise TypeError(f"spec={spec!r} is not an EnvConfig; fix: pass the env's EnvConfig (its token rule masks "
                            f"the distribution) or None for the generator's plain softmax.")
        n = int(action_space.n)
        if spec is not None and spec.vocab_size != n:
            raise ValueError(f"spec.vocab_size={spec.vocab_size} differs from the action space's {n} tokens; fix: "
                             f"pass the env's own EnvConfig.")
        if generator is not None:
            v = getattr(getattr(generator, "config", None), "vocab_size", None)
            if v is not None and int(v) != n:
                raise ValueError(f"the generator has vocab_size={v} but the env has {n} actions (token ids); fix: "
                                 f"build the generator with the env's vocab_size ({n}).")
        self.__dict__["_init_args"] = (generator, generator_config, int(value_hidden), kv_cache)
        self.__dict__["spec"] = spec
        self.__dict__["_rule"] = TokenSampler(spec) if spec is not None else None

    def _build_heads(self, action_space: spaces.Discrete) -> None:
        """``self.generator`` (given, or built from the config and the env's vocab) and ``self.value_net``."""
        generator, generator_config, value_hidden, kv_cache = self.__dict__.pop("_init_args")
        if generator is None:
            generator = build_generator(generator_config or GeneratorConfig(), int(action_space.n))
        self.generator = generator
        hidden = generator_output_layer(generator).in_features
        self.value_net = nn.Sequential(nn.Linear(hidden, value_hidden), nn.Tanh(), nn.Linear(value_hidden, 1))
        self._captured: list[torch.Tensor] = []
        generator_output_layer(generator).register_forward_pre_hook(self._capture_hidden)
        self.prefix_decoder = PrefixDecoder(generator, self._run, enabled=kv_cache)

    @property
    def kv_cache(self) -> bool:
        """Whether SB3's one-step-at-a-time calls reuse the generator's cache (False: a full forward every call)."""
        return self.prefix_decoder.enabled

    @kv_cache.setter
    def kv_cache(self, on: bool) -> None:
        self.prefix_decoder.enabled = bool(on)
        self.prefix_decoder.reset()

    def _capture_hidden(self, module: nn.Module, args: tuple) -> None:
        self._captured.append(args[0])  # (B, S, H) the output layer's input: the last hidden state

    def _heads(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Next-token logits and values at each row's prefix.

        Args:
            obs: (B, T) token ids (float from SB3's buffer, or long): symbols, EOS, PAD right padding.

        Returns:
            (logits (B, V), values (B, 1)); with ``spec``, tokens its rule forbids after the prefix
            get the lowest finite logit (probability 0).
        """
        tokens = obs.round().long() if obs.is_floating_point() else obs.long()  # (B, T)
        lengths = (tokens != PAD_ID).sum(dim=1)  # (B,) symbols written (EOS included: a finished row)
        logits, hidden = self.prefix_decoder(tokens)  # (B, V), (B, H) after [BOS, prefix]
        logits = logits.float()
        values = self.value_net(hidden.float())  # (B, 1)
        if self._rule is not None:  # the spec's rule, -inf clamped to the lowest finite logit (a finite entropy)
            logits = self._rule.logits(logits.clone(), lengths)[0].clamp(min=torch.finfo(logits.dtype).min)
        return logits, values

    def _run(self, **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """The generator called with ``kwargs``: (logits (B, S, V), the hidden state its output layer read (B, S, H))."""
        self._captured.clear()
        try:
            out = self.generator(**kwargs)
            return out.logits, self._captured[-1]
        finally:
            self._captured.clear()

    def _make_optimizer(self, lr_schedule: Any) -> None:
        self.optimizer = self.optimizer_class(self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs)


class GeneratorPolicy(_GeneratorHeads, ActorCriticPolicy):
    """SB3 ``ActorCriticPolicy`` over a causal-LM generator plus a small value head.

    Args:
        observation_space: Box (T,) of token ids (the seqgan_env envs').
        action_space: Discrete(V): one token id per step.
        lr_schedule: SB3's learning-rate schedule (PPO passes it).
        generator: the causal LM to train (its ``config.vocab_size`` must be V); None builds one
            from ``generator_config`` (default: the tiny Llama of ``GeneratorConfig()``) and V.
        generator_config: the architecture when ``generator`` is None.
        value_hidden: width of the value head's hidden layer (Linear(H, value_hidden), Tanh, Linear(., 1)).
        spec: the env's :class:`~seqgan_env.envs.spec.EnvConfig`: its token rule masks the distribution
            (as REINFORCE samples); None: the generator's plain softmax (invalid tokens end the episode
            with the env's penalty).
        kv_cache: reuse the generator's cache while SB3 steps the env one token at a time (the same
            distributions and values as the full forward, to float rounding); False: a full forward
            over the prefix every call.
        **kwargs: the rest of ``ActorCriticPolicy``'s arguments (optimizer_class, optimizer_kwargs, ...);
            net_arch and the features extractor are not used.

    Raises:
        ValueError / TypeError: a space, the generator's vocabulary, ``value_hidden`` or ``spec`` does not
            fit; the message names the value and the fix.
    """

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space, lr_schedule: Any,
                 generator: nn.Module | None = None, generator_config: GeneratorConfig | None = None,
                 value_hidden: int = 64, spec: EnvConfig | None = None, kv_cache: bool = True, **kwargs: Any) -> None:
        self._setup(generator, generator_config, value_hidden, spec, observation_space, action_space, kv_cache)
        kwargs.setdefault("ortho_init", False)  # the generator keeps its own initialisation
        super().__init__(observation_space, action_space, lr_schedule, **kwargs)

    def _build(self, lr_schedule: Any) -> None:
        self._build_heads(self.action_space)
        self._make_optimizer(lr_schedule)

    def forward(self, obs: torch.Tensor, deterministic: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Sample (or take the mode of) the next token.

        Args:
            obs: (B, T) token ids.
            deterministic: the most likely token instead of a sample.

        Returns:
            actions (B,), values (B, 1), log_prob (B,).
        """
        logits, values = self._heads(obs)
        dist = self.action_dist.proba_distribution(action_logits=logits)
        actions = dist.get_actions(deterministic=deterministic)
        return actions, values, dist.log_prob(actions)

    def evaluate_actions(self, obs: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """values (B, 1), log_prob (B,) and entropy (B,) of ``actions`` (B,) or (B, 1) at ``obs`` (B, T)."""
        logits, values = self._heads(obs)
        dist = self.action_dist.proba_distribution(action_logits=logits)
        return values, dist.log_prob(actions), dist.entropy()

    def get_distribution(self, obs: torch.Tensor):
        """SB3's CategoricalDistribution of the next token at ``obs`` (B, T)."""
        logits, _ = self._heads(obs)
        return self.action_dist.proba_distribution(action_logits=logits)

    def predict_values(self, obs: torch.Tensor) -> torch.Tensor:
        """(B, 1) values at ``obs`` (B, T)."""
        return self._heads(obs)[1]


def _maskable_base():
    try:
        from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
    except ImportError:  # sb3-contrib is a dependency; without it only GeneratorPolicy exists
        return None
    return MaskableActorCriticPolicy


_MaskableBase = _maskable_base()

if _MaskableBase is not None:

    class MaskableGeneratorPolicy(_GeneratorHeads, _MaskableBase):
        """:class:`GeneratorPolicy` for sb3-contrib's ``MaskablePPO``: the env's ``action_masks()`` mask the
        generator's distribution (on top of ``spec`` when given). Arguments and errors as GeneratorPolicy's."""

        def __init__(self, observation_space: spaces.Space, action_space: spaces.Space, lr_schedule: Any,
                     generator: nn.Module | None = None, generator_config: GeneratorConfig | None = None,
                     value_hidden: int = 64, spec: EnvConfig | None = None, kv_cache: bool = True,
                     **kwargs: Any) -> None:
            self._setup(generator, generator_config, value_hidden, spec, observation_space, action_space, kv_cache)
            kwargs.setdefault("ortho_init", False)
            super().__init__(observation_space, action_space, lr_schedule, **kwargs)

        def _build(self, lr_schedule: Any) -> None:
            self._build_heads(self.action_space)
            self._make_optimizer(lr_schedule)

        def _dist(self, logits: torch.Tensor, action_masks: Any):
            dist = self.action_dist.proba_distribution(action_logits=logits)
            if action_masks is not None:
                dist.apply_masking(action_masks)
            return dist

        def forward(self, obs: torch.Tensor, deterministic: bool = False, action_masks: Any = None):
            """actions (B,), values (B, 1), log_prob (B,) at ``obs`` (B, T), under ``action_masks`` (B, V)."""
            logits, values = self._heads(obs)
            dist = self._dist(logits, action_masks)
            actions = dist.get_actions(deterministic=deterministic)
            return actions, values, dist.log_prob(actions)

        def evaluate_actions(self, obs: torch.Tensor, actions: torch.Tensor, action_masks: Any = None):
            """values (B, 1), log_prob (B,), entropy (B,) of ``actions`` at ``obs`` under ``action_masks``."""
            logits, values = self._heads(obs)
            dist = self._dist(logits, action_masks)
            return values, dist.log_prob(actions), dist.entropy()

        def get_distribution(self, obs: torch.Tensor, action_masks: Any = None):
            """The masked next-token distribution at ``obs`` (B, T)."""
            return self._dist(self._heads(obs)[0], action_masks)

        def predict_values(self, obs: torch.Tensor) -> torch.Tensor:
            """(B, 1) values at ``obs`` (B, T)."""
            return self._heads(obs)[1]
else:  # pragma: no cover
    MaskableGeneratorPolicy = None  # type: ignore[assignment,misc]
