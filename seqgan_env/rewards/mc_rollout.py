"""SeqGAN's Monte-Carlo rollout reward: score a prefix by completing it K times.

SeqGAN (Yu et al., 2017) credits the token y_t with

    Q(y_{1:t}) = mean_k D(y_{1:t} ++ completion_k)      if y_{1:t} is unfinished,
    Q(y_{1:T}) = D(y_{1:T})                             if the sequence is finished,

where each completion is sampled by a *rollout policy* (a delayed copy of the
generator) from the prefix until EOS or ``max_length``, and D(.) is the
discriminator's probability that the whole sequence is real. A prefix is
finished when its last token is EOS or it has ``max_length`` tokens.

There is no reward mode named ``mc_rollout``: mc_rollout is the ``per_step`` mode
(``RewardConfig(mode="per_step")``) with an :class:`MCRolloutScorer` as the
scorer. :meth:`MCRolloutScorer.score_logits` returns logit(Q), so every reward
transform applies; SeqGAN uses the probability itself (transform ``prob``, which
gives Q back). Q is clipped to [``PROB_EPS``, 1 - ``PROB_EPS``] = [1e-6, 1 - 1e-6]
before the logit so the logits stay finite (|logit| <= 13.8).

Batching: all prefixes to complete (B rows x T prefix lengths, only the unfinished
ones) x K rollouts are completed together, one generator call per completion
step with the KV cache: the prefixes (BOS + tokens) are left-padded to one width
and prefilled once per *prefix* (not per rollout), the cache is then repeated K
times. Row order is (prefix, rollout) everywhere: row ``n * K + k`` is rollout k
of prefix n, and prefixes are numbered in (batch, time) order.

Token ids: PAD=0, BOS=1, EOS=2. The completions run the package's one sampling loop
(``seqgan_env.models.sampling.decode`` with a ``TokenSampler``), whose masks are the episode
spec's (``EnvConfig.mask_logits_``): PAD and BOS are never sampled; EOS only once
``min_length`` symbols are written (never when ``allow_eos`` is False).
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from typing import Any

import torch
from transformers import LlamaForCausalLM

from seqgan_env.envs.spec import BOS_ID, EOS_ID, PAD_ID, EnvConfig
from seqgan_env.models.fastllama import LlamaStepDecoder, make_step_decoder
from seqgan_env.models.kvcache import generation_cache
from seqgan_env.models.lstm import LSTMStepDecoder
from seqgan_env.models.sampling import TokenDraw, TokenSampler, decode
from seqgan_env.utils.validation import check_int, check_number

PROB_EPS = 1e-6  # Q is clipped to [PROB_EPS, 1 - PROB_EPS] before its logit


def _check_temperature(name: str, value: Any) -> float:
    """The completions' temperature: a finite number >= 0 (0: greedy)."""
    return check_number(name, value, 0, fix="use 1.0 to sample from the rollout policy, 0 for greedy completions")


def _check_rate(rate: Any) -> float:
    return check_number("rate", rate, 0, 1, "the weight kept by the rollout policy; SeqGAN uses rate=0.8")


def prob_to_logit(p: torch.Tensor) -> torch.Tensor:
    """logit(clip(p, PROB_EPS, 1 - PROB_EPS)): finite logits whose sigmoid is the clipped p."""
    p = p.clamp(PROB_EPS, 1.0 - PROB_EPS)
    return torch.log(p) - torch.log1p(-p)


@dataclass
class MCRolloutConfig:
    """SeqGAN's rollout reward as a trainer option: K completions per prefix by a delayed generator copy.

    num_rollouts: K >= 1 (SeqGAN: 16). rate in [0, 1]: weight kept by the rollout
    policy at each update after a generator update (SeqGAN: 0.8). temperature >= 0 of
    the completions (0: greedy).
    """

    num_rollouts: int = 16
    rate: float = 0.8
    temperature: float = 1.0

    def __post_init__(self) -> None:
        check_int("mc_rollout.num_rollouts", self.num_rollouts, 1, "use e.g. 16 (SeqGAN)")
        self.rate = _check_rate(self.rate)
        self.temperature = _check_temperature("mc_rollout.temperature", self.temperature)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class MCRolloutScorer:
    """Prefix scorer with SeqGAN's Monte-Carlo rollout credit assignment.

    discriminator: anything with ``score_logits(tokens (B, T)) -> (B, T)`` realness
    logits per prefix (a :class:`~seqgan_env.models.discriminator.Discriminator` or a stub);
    a completed sequence is scored at its last real token.
    rollout_generator: the rollout policy, a ``LlamaForCausalLM`` or ``LSTMGenerator`` used as given (pass a
    copy of the generator: :func:`make_mc_rollout_scorer` does that); it samples in
    eval mode with no grad.
    num_rollouts: K >= 1 completions per prefix. max_length: the env's ``max_length``
    (completions stop there). min_length, allow_eos: the env's EOS rule.
    temperature: > 0 samples from softmax(logits / temperature); 0 completes greedily
    (all K rollouts equal; deterministic, for tests). seed: the scorer's own RNG (the
    global torch RNG is untouched). rate: default of :meth:`update_rollout_policy`.

    ``score_logits`` and ``score_last`` return logits, ``logit(clip(Q))`` (see the
    module docstring). Attributes ``discriminator`` and ``rollout_generator``;
    ``update``/``state_dict``/``load_state_dict`` delegate to the discriminator so
    the reward wrappers can train and sync it.
    """

    def __init__(
        self,
        discriminator: Any,
        rollout_generator: LlamaForCausalLM,
        num_rollouts: int = 16,
        max_length: int = 12,
        min_length: int = 1,
        allow_eos: bool = True,
        temperature: float = 1.0,
        seed: int = 0,
        rate: float = 0.8,
    ) -> None:
        check_int("num_rollouts", num_rollouts, 1, "use e.g. num_rollouts=16 (SeqGAN)")
        check_int("seed", seed, 0, "pass e.g. seed=0")
        #: The episode spec the completions follow (its token rule masks every sampled step).
        self.spec = EnvConfig(vocab_size=rollout_generator.config.vocab_size, max_length=max_length,
                              min_length=min_length, allow_eos=allow_eos)
        temperature = _check_temperature("temperature", temperature)
        if not hasattr(discriminator, "score_logits"):
            raise TypeError(f"discriminator {type(discriminator).__name__} has no score_logits(tokens).")
        self.discriminator = discriminator
        self.rollout_generator = rollout_generator.eval()
        self.num_rollouts = num_rollouts
        self.max_length = max_length
        self.temperature = temperature
        self.rate = _check_rate(rate)
        self.device = next(rollout_generator.parameters()).device
        self._decoder: LlamaStepDecoder | LSTMStepDecoder | None = None  # lean one-token steps, when supported
        self.reset_rng(seed)

    def reset_rng(self, seed: int) -> None:
        """Reseed the scorer's sampling RNG (same seed and inputs: same rollouts)."""
        self.rng = torch.Generator(device=self.device).manual_seed(seed)

    # -- the rollout policy ----------------------------------------------------------------

    @torch.no_grad()
    def update_rollout_policy(self, generator: torch.nn.Module, rate: float | None = None) -> None:
        """SeqGAN's delayed update: θ_rollout ← rate·θ_rollout + (1 − rate)·θ_generator.

        ``rate`` is the weight *kept* by the rollout policy (SeqGAN: 0.8; None uses
        ``self.rate``): rate=1 keeps the rollout policy, rate=0 copies the generator.
        ``generator`` must have the same parameter names and shapes.
        """
        rate = self.rate if rate is None else _check_rate(rate)
        mine = dict(self.rollout_generator.named_parameters())
        theirs = dict(generator.named_parameters())
        if mine.keys() != theirs.keys():
            raise ValueError(
                f"generator has parameters {sorted(set(theirs) ^ set(mine))[:5]} that the rollout policy "
                f"does not share: update from a generator of the same architecture."
            )
        for name, p in mine.items():
            q = theirs[name]
            if p.shape != q.shape:
                raise ValueError(f"parameter {name}: rollout shape {tuple(p.shape)} != generator shape "
                                 f"{tuple(q.shape)}; build both from the same ModelConfig and vocab.")
            p.mul_(rate).add_(q.detach().to(p.device, p.dtype), alpha=1.0 - rate)

    # -- delegation to D (for the wrappers' D training and syncing) ------------------------

    def update(self, real: torch.Tensor, fake: torch.Tensor) -> dict[str, float]:
        return self.discriminator.update(real, fake)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.discriminator.state_dict()

    def load_state_dict(self, state_dict: dict[str, torch.Tensor]) -> None:
        self.discriminator.load_state_dict(state_dict)

    # -- inputs ----------------------------------------------------------------------------

    def _as_tokens(self, tokens: Any) -> torch.Tensor:
        x = torch.as_tensor(tokens)
        if x.ndim != 2:
            raise ValueError(f"tokens must be a (B, T) array of token ids, got shape {tuple(x.shape)}; "
                             f"add a batch dimension with tokens[None].")
        if x.is_floating_point():
            raise ValueError(f"tokens must hold integer token ids, got dtype {x.dtype}.")
        if x.shape[1] > self.max_length:
            raise ValueError(f"tokens have {x.shape[1]} columns but max_length={self.max_length}: build the "
                             f"scorer with the env's max_length.")
        return x.to(self.device, torch.long)

    # -- scoring ---------------------------------------------------------------------------

    def _final_probs(self, sequences: torch.Tensor) -> torch.Tensor:
        """(M, L) right-padded finished sequences -> (M,) D's probability at the last real token."""
        with torch.no_grad():
            logits = torch.as_tensor(self.discriminator.score_logits(sequences)).to(self.device)  # (M, L)
        last = ((sequences != PAD_ID).sum(1) - 1).clamp(min=0)  # (M,)
        return torch.sigmoid(logits.float().gather(1, last.unsqueeze(1)).squeeze(1))  # (M,)

    def sample_rollouts(self, tokens: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Completions of every unfinished prefix of right-padded ``tokens`` (B, T).

        Returns ``(completions (B, T, K, max_length), rolled (B, T) bool)``: entry
        [b, t, k] is rollout k of the prefix tokens[b, :t+1]; ``rolled`` marks the
        prefixes that were completed (real, unfinished prefixes); other entries are PAD.
        Consumes the scorer's RNG exactly as :meth:`score_logits` does on the same input.
        """
        x = self._as_tokens(tokens)  # (B, T)
        b, t = x.shape
        k, L = self.num_rollouts, self.max_length
        rolled = self._unfinished(x)  # (B, T)
        out = torch.full((b, t, k, L), PAD_ID, dtype=torch.long, device=self.device)  # (B, T, K, L)
        if bool(rolled.any()):
            prefixes, plen = self._prefixes(x, rolled)  # (N, T), (N,)
            out[rolled] = self._complete(prefixes, plen)  # (N, K, L) in (batch, time) order of `rolled`
        return out, rolled

    @torch.no_grad()
    def score_logits(self, tokens: Any) -> torch.Tensor:
        """(B, T) right-padded tokens -> (B, T) logit(Q) of every prefix tokens[b, :t+1].

        Unfinished prefixes: Q = mean over K rollouts of D(completed sequence).
        Finished prefixes (last token EOS, or max_length tokens) and PAD positions: D's
        own probability of that prefix. Clipped to [1e-6, 1 - 1e-6] before the logit.
        """
        x = self._as_tokens(tokens)  # (B, T)
        with torch.no_grad():
            own = torch.as_tensor(self.discriminator.score_logits(x)).to(self.device).float()  # (B, T)
        probs = torch.sigmoid(own)  # (B, T)
        rolled = self._unfinished(x)  # (B, T)
        if bool(rolled.any()):
            prefixes, plen = self._prefixes(x, rolled)  # (N, T), (N,)
            probs[rolled] = self._mc_probs(prefixes, plen)  # (N,)
        return prob_to_logit(probs)  # (B, T)

    @torch.no_grad()
    def score_last(self, tokens: Any, lengths: Any) -> torch.Tensor:
        """logit(Q) of each row's newest prefix tokens[b, :lengths[b]] -> (B,).

        Completes B prefixes x K rollouts (not B x T x K): what a vector env needs per
        step. Rows with length 0 get logit 0 (no prefix to score).
        """
        x = self._as_tokens(tokens)  # (B, T)
        n = torch.as_tensor(lengths).to(self.device, torch.long)  # (B,)
        if n.shape != x.shape[:1] or bool((n < 0).any()) or bool((n > x.shape[1]).any()):
            raise ValueError(f"lengths must be (B,) = ({x.shape[0]},) ints in [0, {x.shape[1]}], got "
                             f"{n.tolist()}; pass the env's per-row token counts.")
        t = x.shape[1]
        col = torch.arange(t, device=self.device)  # (T,)
        prefixes = torch.where(col < n.unsqueeze(1), x, torch.full_like(x, PAD_ID))  # (B, T)
        pos = (n - 1).clamp(min=0)  # (B,)
        with torch.no_grad():
            own = torch.as_tensor(self.discriminator.score_logits(prefixes)).to(self.device).float()  # (B, T)
        probs = torch.sigmoid(own.gather(1, pos.unsqueeze(1)).squeeze(1))  # (B,)
        last = prefixes.gather(1, pos.unsqueeze(1)).squeeze(1)  # (B,)
        rolled = (n > 0) & (last != EOS_ID) & (n < self.max_length)  # (B,)
        if bool(rolled.any()):
            probs[rolled] = self._mc_probs(prefixes[rolled], n[rolled])  # (N,)
        return torch.where(n > 0, prob_to_logit(probs), torch.zeros_like(probs))  # (B,)

    # -- internals -------------------------------------------------------------------------

    def _unfinished(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T) -> (B, T) bool: prefix [b, :t+1] is real and unfinished (needs rollouts)."""
        t = x.shape[1]
        lengths = (x != PAD_ID).sum(1)  # (B,)
        col = torch.arange(t, device=x.device)  # (T,)
        real = col.unsqueeze(0) < lengths.unsqueeze(1)  # (B, T)
        return real & (x != EOS_ID) & (col.unsqueeze(0) + 1 < self.max_length)  # (B, T)

    @staticmethod
    def _prefixes(x: torch.Tensor, rolled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The selected prefixes, right-padded: (N, T) tokens and (N,) lengths, (batch, time) order."""
        b, t = x.shape
        col = torch.arange(t, device=x.device)
        keep = col.view(1, 1, t) <= col.view(1, t, 1)  # (1, T_prefix, T_token): token j in prefix t
        grid = torch.where(keep, x.unsqueeze(1), torch.full_like(x.unsqueeze(1), PAD_ID))  # (B, T, T)
        plen = (col + 1).expand(b, t)  # (B, T)
        return grid[rolled], plen[rolled]  # (N, T), (N,)

    def _mc_probs(self, prefixes: torch.Tensor, plen: torch.Tensor) -> torch.Tensor:
        """(N, P) prefixes, (N,) lengths -> (N,) mean over K rollouts of D(completion)."""
        comp = self._complete(prefixes, plen)  # (N, K, L)
        n, k, L = comp.shape
        p = self._final_probs(comp.reshape(n * k, L))  # (N*K,) rows in (prefix, rollout) order
        return p.view(n, k).mean(dim=1)  # (N,) mean over the rollout axis

    @torch.no_grad()
    def _complete(self, prefixes: torch.Tensor, plen: torch.Tensor) -> torch.Tensor:
        """Sample K completions of each prefix to EOS or max_length: (N, P), (N,) -> (N, K, L).

        Prefill once per prefix (BOS + prefix, left-padded, with an attention mask and
        per-row position ids), repeat the KV cache K times, then one generator call per
        completion step for all N*K rows; finished rows keep their tokens.
        """
        gen = self.rollout_generator
        gen.eval()
        n, p = prefixes.shape
        k, L = self.num_rollouts, self.max_length
        m = n * k
        dev = self.device
        width = 1 + int(plen.max())  # W: BOS + the longest prefix
        # Left-aligned inputs: row n holds [PAD]*(W-1-plen) + [BOS] + prefix.
        col = torch.arange(width, device=dev).unsqueeze(0)  # (1, W)
        j = col - (width - 1 - plen).unsqueeze(1) - 1  # (N, W) index into the prefix; -1 = BOS
        src = prefixes.gather(1, j.clamp(0, p - 1))  # (N, W)
        inp = torch.where(j >= 0, src, torch.where(j == -1, torch.full_like(src, BOS_ID), torch.full_like(src, PAD_ID)))
        amask = torch.zeros(n, width + L, dtype=torch.long, device=dev)  # (N, W+L) columns of the cache
        amask[:, :width] = (j >= -1).long()
        amask[:, width:] = 1
        position = (j + 1).clamp(min=0)  # (N, W) BOS at 0
        cache = generation_cache(gen, width + L)  # KV columns, or an LSTM's (h, c)
        out = gen(input_ids=inp, attention_mask=amask[:, :width], position_ids=position,
                  cache=cache, use_cache=True, logits_to_keep=1)
        cache = out.cache
        for layer in cache.layers:  # (N, H, C, D) -> (N*K, H, C, D): row n*K + k is rollout k of prefix n
            layer.keys = layer.keys.repeat_interleave(k, dim=0)
            layer.values = layer.values.repeat_interleave(k, dim=0)
        logits = out.logits[:, -1].float().repeat_interleave(k, dim=0)  # (N*K, V)
        decoder = self._decoder = make_step_decoder(gen, self._decoder)  # lean steps when supported
        if decoder is not None:
            decoder.begin()
        amask = amask.repeat_interleave(k, dim=0)  # (N*K, W+L)
        plen_r = plen.repeat_interleave(k)  # (N*K,)
        comp = torch.full((m, L), PAD_ID, dtype=torch.long, device=dev)  # (N*K, L)
        comp[:, :p] = prefixes.repeat_interleave(k, dim=0)[:, :L]
        done = plen_r >= L  # (N*K,)
        keys = [layer.keys for layer in cache.layers] if decoder is not None else None
        values = [layer.values for layer in cache.layers] if decoder is not None else None
        state = [cache]

        def next_logits(action: torch.Tensor, s: int) -> torch.Tensor:
            """(N*K, V) float32 logits of completion step s, fed the tokens of step s - 1."""
            pos = plen_r + s  # (N*K,) the fed token's position (BOS at 0) = the symbols written before step s
            if decoder is not None:  # same function as the transformers call below (tested to 1e-5)
                return decoder.step(action, pos, keys, values, column=width + s - 1,
                                    allowed=amask[:, : width + s].bool()).float()  # (N*K, V)
            out = gen(input_ids=action.unsqueeze(1), attention_mask=amask[:, : width + s],
                      position_ids=pos.unsqueeze(1), cache=state[0], use_cache=True, logits_to_keep=1)
            state[0] = out.cache
            return out.logits[:, -1].float().contiguous()  # (N*K, V)

        def observe(s: int, draw: TokenDraw) -> torch.Tensor:
            nonlocal done
            pos = plen_r + s  # (N*K,) symbol index this step writes
            active = ~done & (pos < L)  # (N*K,)
            idx = pos.clamp(max=L - 1).unsqueeze(1)  # (N*K, 1)
            comp.scatter_(1, idx, torch.where(active, draw.action, comp.gather(1, idx).squeeze(1)).unsqueeze(1))
            done = done | (active & (draw.action == EOS_ID)) | (pos + 1 >= L)
            return ~done

        # The spec's token rule after plen + s symbols, the completions' temperature (0: greedy), one
        # uniform per row per step from the scorer's RNG, drawn in place in the fresh float32 logits.
        sampler = TokenSampler(self.spec, self.temperature, 1.0, self.rng)
        decode(logits, next_logits, sampler, L - int(plen.min()), lambda s: plen_r + s, observe)
        return comp.view(n, k, L)  # (N, K, L)


def make_mc_rollout_scorer(
    discriminator: Any,
    generator: LlamaForCausalLM,
    num_rollouts: int = 16,
    rate: float = 0.8,
    max_length: int = 12,
    min_length: int = 1,
    allow_eos: bool = True,
    temperature: float = 1.0,
    seed: int = 0,
) -> MCRolloutScorer:
    """An :class:`MCRolloutScorer` whose rollout policy is a deep copy of ``generator``.

    Use with ``DiscriminatorRewardVector(venv, scorer, RewardConfig(mode="per_step",
    transform="prob"))`` for SeqGAN's reward; call
    ``scorer.update_rollout_policy(generator)`` after each generator update
    (θ_rollout ← rate·θ_rollout + (1 − rate)·θ_generator).
    """
    return MCRolloutScorer(
        discriminator, copy.deepcopy(generator), num_rollouts=num_rollouts, max_length=max_length,
        min_length=min_length, allow_eos=allow_eos, temperature=temperature, seed=seed, rate=rate,
    )
