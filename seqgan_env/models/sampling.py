"""Autoregressive sampling, in one place: the distribution sampled from, the draw, the cached step, the loop.

Every sampler of the package is built from this module: REINFORCE's collection through
the env and its env-free ``sample`` (``seqgan_agents.reinforce``), SeqGAN's Monte-Carlo
rollout completions (``seqgan_env.rewards.mc_rollout``) and the SB3 generator policy
(``seqgan_env.integrations.sb3_policy``, where SB3 draws the token itself but the masked
logits and the cached steps come from here).

* :func:`sampling_logits` / :func:`top_p_keep_mask`: the processed logits of the
  distribution actually sampled from (token rule, temperature, nucleus).
* :class:`TokenSampler`: one step: mask with the episode spec's token rule
  (``seqgan_env.envs.spec.EnvConfig``) or with an env's action masks (the same rule,
  applied by the env), temperature, nucleus, then the draw.
* :func:`sample_categorical`: the draw itself. Gumbel-max needs V random numbers and two
  logarithms per row; inverse-CDF sampling needs one ``exp`` and one running sum per
  logit and a single uniform per row (about 3x faster at V = 5,000 on a 2-core CPU,
  measured for the oracle task's rollouts). Large vocabularies use two levels: block
  masses (a vectorised sum) pick a block of 64 tokens, a running sum inside it picks the
  token. Both draw from exactly the same distribution as Gumbel-max.
* :class:`KVStepper`: the generator's next-token logits, one new token per row per call,
  through its KV cache (the lean step decoder of ``seqgan_env.models.fastllama`` when it
  supports the model).
* :func:`decode`: the loop (draw, hand the step to the caller, feed the token back) and
  :func:`sample_sequences`, the env-free sampler built on it.
* :class:`PrefixDecoder`: next-token logits after the prefixes an env observes, one call
  per env step, reusing the cache when every row extended its prefix by one token or
  restarted (SB3 steps a policy this way).

Token ids: PAD=0, BOS=1, EOS=2 (``seqgan_env.envs.spec``).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Callable, Protocol

import torch

from seqgan_env.data.tokenizer import BOS_ID, EOS_ID, PAD_ID
from seqgan_env.models.fastllama import make_step_decoder
from seqgan_env.models.kvcache import generation_cache
from seqgan_env.models.lstm import is_lstm

_BLOCK = 64  # tokens per block of the two-level search


def sample_categorical(
    logits: torch.Tensor, generator: torch.Generator | None = None, inplace: bool = False, log_probs: bool = False
) -> torch.Tensor:
    """One index per row of ``logits`` (B, V) drawn from softmax(logits) -> (B,) long.

    ``-inf`` logits have probability 0 and are never drawn; every row needs at least
    one finite logit. Uses one uniform per row from ``generator`` (the global RNG when
    None), so the same generator state and logits give the same tokens.
    ``inplace=True`` overwrites a contiguous float32 ``logits`` with scratch values
    (no (B, V) allocation: the caller must not use ``logits`` afterwards).
    ``log_probs=True``: ``logits`` are already log-probabilities (``log_softmax``
    output, every value <= 0), so the per-row max shift is skipped.
    """
    if logits.ndim != 2:
        raise ValueError(f"logits must be (B, V), got shape {tuple(logits.shape)}.")
    usable = inplace and logits.dtype == torch.float32 and logits.is_contiguous()
    if log_probs:  # probabilities directly: exp(log p) <= 1, -inf -> 0
        w = logits.exp_() if usable else logits.float().exp()  # (B, V)
    else:
        w = logits if usable else logits.float().clone()  # (B, V)
        w.sub_(w.amax(dim=1, keepdim=True)).exp_()  # unnormalised probabilities, max 1, -inf -> 0
    b, v = w.shape
    if v <= 2 * _BLOCK:
        return _search(w.cumsum_(dim=1), torch.rand(b, 1, generator=generator, device=w.device))
    # Two levels (a running sum over V is a slow sequential scan): pick a block of _BLOCK tokens
    # from the block masses, then a token inside it.
    nb = v // _BLOCK  # full blocks; the tail (< _BLOCK tokens) is one more block
    masses = w[:, : nb * _BLOCK].view(b, nb, _BLOCK).sum(dim=2)  # (B, nb)
    if v > nb * _BLOCK:
        masses = torch.cat([masses, w[:, nb * _BLOCK :].sum(dim=1, keepdim=True)], dim=1)  # (B, nb + 1)
    u = torch.rand(b, 1, generator=generator, device=w.device)  # (B, 1) in [0, 1)
    block_cdf = masses.cumsum(dim=1)  # (B, NB)
    blk = _search(block_cdf, u)  # (B,) never a zero-mass block
    below = torch.where(blk > 0, block_cdf.gather(1, (blk - 1).clamp(min=0)[:, None])[:, 0], torch.zeros_like(u[:, 0]))
    rest = (u[:, 0] * block_cdf[:, -1] - below).clamp(min=0)  # (B,) mass left to cover inside the block
    cols = blk[:, None] * _BLOCK + torch.arange(_BLOCK, device=w.device)  # (B, S) token ids of the block
    inside = torch.where(cols < v, w.gather(1, cols.clamp(max=v - 1)), torch.zeros((), device=w.device))  # (B, S)
    local = inside.cumsum(dim=1)  # (B, S)
    # u' = rest / block mass is uniform in [0, 1) given the block: the token inside follows w.
    j = _search(local, (rest / local[:, -1]).clamp(max=1.0)[:, None])  # (B,)
    return cols.gather(1, j[:, None])[:, 0]  # (B,)


def _search(cdf: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Index of the first running sum in ``cdf`` (B, V) above ``u`` (B, 1) x total -> (B,).

    A zero-mass entry never has its running sum above its predecessor's, so it is
    never returned; when rounding puts the target at the total, the last entry with
    mass (the first whose running sum equals the total) is returned instead.
    """
    total = cdf[:, -1:]  # (B, 1)
    idx = torch.searchsorted(cdf, u * total, right=True)[:, 0]  # (B,)
    over = idx >= cdf.shape[1]  # (B,)
    if bool(over.any()):
        idx[over] = torch.searchsorted(cdf[over], total[over], right=False)[:, 0]
    return idx  # (B,)




# ---------------------------------------------------------------------------------------
# The distribution sampled from
# ---------------------------------------------------------------------------------------
class TokenRule(Protocol):
    """What sampling needs of an episode spec: ``seqgan_env.envs.spec.EnvConfig`` is one (the
    envs layer sits above this one, so the spec is passed in, never imported)."""

    max_length: int

    def mask_logits_(self, logits: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """In place: -inf on the tokens the rule refuses after ``lengths`` (N,) symbols, for (N, V) logits."""
        ...


def top_p_keep_mask(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """(..., V) bool: the nucleus of softmax(logits), the smallest set of highest-probability
    tokens whose cumulative probability is >= top_p (always at least the top token)."""
    probs = torch.softmax(logits.float(), dim=-1)  # (..., V)
    sorted_p, idx = probs.sort(dim=-1, descending=True)  # (..., V)
    before = sorted_p.cumsum(dim=-1) - sorted_p  # (..., V) mass of the better tokens
    keep_sorted = before < top_p  # (..., V)
    keep_sorted[..., 0] = True
    return torch.zeros_like(keep_sorted).scatter(-1, idx, keep_sorted)  # (..., V)


def sampling_logits(
    logits: torch.Tensor,
    action_mask: torch.Tensor,
    temperature: float = 1.0,
    top_p: float = 1.0,
) -> torch.Tensor:
    """The logits of the distribution actually sampled from, (..., V) float32.

    ``logits / temperature`` with -inf outside ``action_mask`` and (when top_p < 1)
    outside the top-p nucleus of the masked, tempered distribution (the smallest set
    of highest-probability tokens whose cumulative probability >= top_p, at least the
    top token). The policy gradient uses ``log_softmax`` of exactly these processed
    logits, i.e. the log-probabilities of the distribution the tokens were sampled
    from, not those of the raw model.
    """
    x = logits.float()  # (..., V)
    if temperature != 1.0:  # x / 1 is x: no (..., V) op (and none in the backward) at the default
        x = x / temperature
    x = x.masked_fill(~action_mask, float("-inf"))
    if top_p < 1.0:
        x = x.masked_fill(~top_p_keep_mask(x, top_p), float("-inf"))
    return x


@dataclass
class TokenDraw:
    """One sampled step. action (B,) long; logp (B,) float, the action's log-probability under
    the sampling distribution (None unless asked for); keep (B, V) bool, the top-p nucleus
    (None when top_p == 1)."""

    action: torch.Tensor
    logp: torch.Tensor | None = None
    keep: torch.Tensor | None = None


class TokenSampler:
    """One sampling step: the token rule, temperature and nucleus on the logits, then the draw.

    Args:
        spec: the episode spec whose token rule masks the logits when a step passes the
            rows' lengths (symbols written); may be None when every step passes masks.
        temperature: > 0 samples from softmax(logits / temperature); 0 takes the argmax.
        top_p: nucleus mass in (0, 1].
        rng: the torch generator of the draws (one uniform per row per step; None: global RNG).
        with_logp: also return each action's log-probability (``TokenDraw.logp``).

    Raises:
        ValueError: temperature < 0 or top_p outside (0, 1].
    """

    def __init__(self, spec: TokenRule | None, temperature: float = 1.0, top_p: float = 1.0,
                 rng: torch.Generator | None = None, with_logp: bool = False) -> None:
        if not temperature >= 0 or not 0 < top_p <= 1:
            raise ValueError(f"temperature={temperature!r} must be >= 0 and top_p={top_p!r} in (0, 1]; "
                             f"fix: e.g. temperature=1.0, top_p=1.0.")
        self.spec, self.temperature, self.top_p = spec, float(temperature), float(top_p)
        self.rng, self.with_logp = rng, with_logp

    def logits(self, logits: torch.Tensor, allowed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(processed logits (B, V) float32, nucleus (B, V) or None) of one step; may overwrite ``logits``.

        ``allowed``: (B,) long, the symbols each row has written (``spec``'s rule decides,
        without building a (B, V) mask), or (B, V) bool, the valid tokens (an env's
        ``action_masks()``, the same rule applied by the env).
        """
        x = logits.float()  # (B, V) the caller's tensor when already float32: it is consumed
        if self.temperature not in (0.0, 1.0):
            x = x / self.temperature
        if allowed.dtype == torch.bool:
            x = x.masked_fill(~allowed, float("-inf"))
        else:
            if self.spec is None:
                raise ValueError("a step passed lengths but the sampler has no spec; fix: build the TokenSampler "
                                 "with the env's EnvConfig, or pass (B, V) bool masks.")
            x = self.spec.mask_logits_(x, allowed)
        keep = None
        if self.top_p < 1.0:
            keep = top_p_keep_mask(x, self.top_p)  # (B, V)
            x = x.masked_fill(~keep, float("-inf"))
        return x, keep

    def __call__(self, logits: torch.Tensor, allowed: torch.Tensor) -> TokenDraw:
        """Draw one token per row of ``logits`` (B, V) (consumed) under ``allowed`` (see :meth:`logits`)."""
        x, keep = self.logits(logits, allowed)
        if self.temperature == 0:
            action = x.argmax(dim=-1)  # (B,)
            logp = torch.log_softmax(x, -1).gather(1, action[:, None]).squeeze(1) if self.with_logp else None
            return TokenDraw(action, logp, keep)
        if self.with_logp:
            logp_all = torch.log_softmax(x, -1)  # (B, V) the sampling distribution, also for the draw
            action = sample_categorical(logp_all, self.rng, log_probs=True)  # (B,)
            return TokenDraw(action, logp_all.gather(1, action[:, None]).squeeze(1), keep)
        return TokenDraw(sample_categorical(x, self.rng, inplace=True), None, keep)  # (B,)


# ---------------------------------------------------------------------------------------
# The cached step and the loop
# ---------------------------------------------------------------------------------------
class KVStepper:
    """The generator's next-token logits, one new token per row per call, through its KV cache.

    Args:
        generator: a causal LM called like a transformers one (a ``LlamaForCausalLM`` or an
            ``LSTMGenerator``).
        fast: use the lean step decoder (``seqgan_env.models.fastllama.make_step_decoder``:
            the same function as the model's forward over the cache, tested to 1e-5) when it
            supports the model; False always runs the model's forward.
    """

    def __init__(self, generator: torch.nn.Module, fast: bool = True) -> None:
        self.generator = generator
        self.fast = fast
        self._decoder = None  # kept between batches: it re-reads the weights after every update

    def start(self, batch: int, capacity: int,
              autocast: Callable[[], Any] = contextlib.nullcontext) -> Callable[[torch.Tensor, int], torch.Tensor]:
        """A fresh cache: ``next_logits(input_ids (B,) or (B, 1), t) -> (B, V)``, the logits of token t+1.

        Call it with t = 0, 1, ... (position t holds BOS for t = 0); ``capacity`` >= calls.
        ``autocast``: the context each call runs in (e.g. bf16 autocast on CUDA).
        """
        gen = self.generator
        dec = self._decoder = make_step_decoder(gen, self._decoder, self.fast)
        if dec is not None:
            keys, values = dec.new_cache(batch, capacity)

            def next_logits(inp: torch.Tensor, t: int) -> torch.Tensor:
                with autocast():
                    return dec.step(inp, t, keys, values, t)  # (B, V)

            return next_logits
        cache = [generation_cache(gen, capacity)]

        def next_logits(inp: torch.Tensor, t: int) -> torch.Tensor:
            with autocast():
                out = gen(input_ids=inp.reshape(-1, 1), cache=cache[0], use_cache=True, logits_to_keep=1)
            cache[0] = out.cache
            return out.logits[:, -1]  # (B, V)

        return next_logits


def decode(
    first_logits: torch.Tensor,
    next_logits: Callable[[torch.Tensor, int], torch.Tensor],
    sampler: TokenSampler,
    steps: int,
    allowed: Callable[[int], torch.Tensor],
    observe: Callable[[int, TokenDraw], torch.Tensor],
) -> int:
    """The autoregressive loop: draw a token per row, hand it to ``observe``, feed it back.

    Args:
        first_logits: (B, V) logits of the first step.
        next_logits: ``(actions (B,), s) -> (B, V)`` logits of step s given the tokens drawn at s - 1.
        sampler: the step's distribution and draw.
        steps: the most steps.
        allowed: ``s -> `` the valid tokens of step s: (B,) lengths for ``sampler.spec``'s rule,
            or (B, V) bool masks (an env's, after its step).
        observe: ``(s, draw) -> (B,) bool``, the rows still running (record the draw, step an env).

    Returns:
        The number of steps taken: the loop stops once no row is running.
    """
    logits = first_logits
    for s in range(steps):
        draw = sampler(logits, allowed(s))
        running = observe(s, draw)
        if not bool(running.any()):
            return s + 1
        if s + 1 < steps:
            logits = next_logits(draw.action, s + 1)
    return steps


@torch.no_grad()
def sample_sequences(
    generator: torch.nn.Module,
    n: int,
    spec: TokenRule,
    sampler: TokenSampler,
    stepper: KVStepper | None = None,
    use_cache: bool = True,
    autocast: Callable[[], Any] = contextlib.nullcontext,
) -> torch.Tensor:
    """(n, spec.max_length) long: sequences sampled under ``spec``'s token rule, no env.

    PAD and BOS are never sampled; EOS only once ``spec.min_length`` symbols are written
    (never without ``spec.allow_eos``). A row stops after EOS (PAD after). ``stepper``:
    the cached step to use (default a fresh :class:`KVStepper`); ``use_cache=False``
    recomputes the whole prefix every step (for timing the cache).
    """
    dev = next(generator.parameters()).device
    L = spec.max_length
    out = torch.full((n, L), PAD_ID, dtype=torch.long, device=dev)  # (n, L)
    done = torch.zeros(n, dtype=torch.bool, device=dev)  # (n,)
    if use_cache:
        step = (stepper or KVStepper(generator)).start(n, L + 1, autocast)
        first = step(torch.full((n, 1), BOS_ID, dtype=torch.long, device=dev), 0)  # (n, V)
    else:
        seq = [torch.full((n, 1), BOS_ID, dtype=torch.long, device=dev)]  # BOS + the tokens so far, (n, 1) each

        def step(action: torch.Tensor, t: int) -> torch.Tensor:
            if t:
                seq.append(action[:, None])
            with autocast():
                return generator(input_ids=torch.cat(seq, 1), use_cache=False, logits_to_keep=1).logits[:, -1]

        first = step(None, 0)  # (n, V)

    def observe(t: int, draw: TokenDraw) -> torch.Tensor:
        nonlocal done
        out[:, t] = torch.where(done, torch.full_like(draw.action, PAD_ID), draw.action)
        done = done | (draw.action == EOS_ID)
        return ~done

    decode(first, step, sampler, L, lambda t: torch.full((n,), t, dtype=torch.long, device=dev), observe)
    return out



class PrefixDecoder:
    """Next-token logits and hidden states after the token prefixes an env observes, one call per env step.

    SB3 steps a policy with the whole observation every env step: (B, T) token ids, the
    symbols written so far, PAD-right-padded, no BOS. The answer is the model's output at
    each row's last position of ``[BOS, prefix]``. When every row either extends the
    prefix it had at the previous call by one token or restarts (an episode reset: an
    empty prefix), only those B new tokens are fed, through the model's cache: the cache's
    columns are shared in time (each cached call writes one column for all rows), a
    per-row mask hides the columns of a row's earlier episode, and the rows' position ids
    restart at each episode. Any other call (the first, another batch size, a row that did
    neither, the cache full, the weights changed since the last call) runs the full
    forward over ``[BOS, prefix]``, and rebuilds the cache from it when no gradient is
    being recorded and the generator is in eval mode. A call with exactly the previous call's observation returns the
    previous answer (SB3 asks for the values of the last observation, then steps it).

    Args:
        generator: a causal LM called like a transformers one (a transformers model, or an
            ``LSTMGenerator``, whose state is its cache).
        run: ``(**kwargs) -> (logits (B, S, V), hidden (B, S, H))``: the generator called with
            these keyword arguments, returning its logits and the hidden state its output
            layer reads (the caller captures it).
        enabled: False always runs the full forward (for comparisons).
    """

    #: Cached steps through the lean step decoder (``seqgan_env.models.fastllama.make_step_decoder``,
    #: the same function as the model's forward over the cache) when it supports the model; False
    #: always calls the model.
    fast_decode: bool = True

    def __init__(self, generator: torch.nn.Module, run: Callable[..., tuple[torch.Tensor, torch.Tensor]],
                 enabled: bool = True) -> None:
        self.generator, self.run, self.enabled = generator, run, enabled
        self._params = list(generator.parameters())
        self._decoder = None
        self.reset()

    #: Caches kept at once, one per observation shape (SB3 also asks for the values of single
    #: terminal observations between the batch's steps; those must not evict the batch's cache).
    max_shapes: int = 4

    def reset(self) -> None:
        """Forget the caches: the next call runs the full forward."""
        self._states: dict[tuple[int, ...], dict[str, Any]] = {}

    def _weights_key(self) -> tuple:
        return tuple((p.data_ptr(), p._version) for p in self._params)

    def __call__(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits (B, V), hidden (B, H)) after each row's prefix of ``tokens`` (B, T) long (PAD-right-padded)."""
        lengths = (tokens != PAD_ID).sum(dim=1)  # (B,) symbols written (EOS included: a finished row)
        # no cache while gradients are recorded (PPO's update) or in training mode (dropout draws anew each call)
        caching = self.enabled and not torch.is_grad_enabled() and not self.generator.training
        st = self._states.get(tuple(tokens.shape)) if caching else None
        if st is not None and st["key"] == self._weights_key():
            if torch.equal(st["tokens"], tokens):
                return st["logits"], st["hidden"]
            out = self._step(st, tokens, lengths)
            if out is not None:
                return out
        return self._full(tokens, lengths, caching)

    def _full(self, tokens: torch.Tensor, lengths: torch.Tensor, caching: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """The full forward over [BOS, prefix] (B, S), S = the longest prefix + 1; with ``caching``, the cache too."""
        b, t = tokens.shape
        s = int(lengths.max()) + 1 if b else 1
        inp = torch.cat([torch.full_like(tokens[:, :1], BOS_ID), tokens[:, : s - 1]], dim=1)  # (B, S) [BOS, prefix, PAD]
        rows = torch.arange(b, device=tokens.device)
        if not caching:
            logits, hidden = self.run(input_ids=inp, use_cache=False)  # (B, S, V), (B, S, H)
            return logits[rows, lengths], hidden[rows, lengths]  # (B, V), (B, H)
        capacity = 2 * (t + 1)  # room for T + 1 cached calls after the longest prefix
        col = torch.arange(capacity, device=tokens.device)  # (C,)
        valid = col[None] <= lengths[:, None]  # (B, C) each row's own columns: BOS and its prefix
        cache = generation_cache(self.generator, capacity)
        # The mask hides each row's right padding from the columns it leaves in the cache (an LSTM
        # keeps its state through masked columns); a row's own positions never see its padding.
        logits, hidden = self.run(input_ids=inp, attention_mask=valid[:, :s].long(), cache=cache, use_cache=True)
        logits, hidden = logits[rows, lengths], hidden[rows, lengths]  # (B, V), (B, H)
        self._states.pop(tuple(tokens.shape), None)
        while len(self._states) >= self.max_shapes:
            self._states.pop(next(iter(self._states)))  # the oldest shape
        self._states[tuple(tokens.shape)] = dict(key=self._weights_key(), tokens=tokens.clone(), lengths=lengths,
                                                 valid=valid, column=s, cache=cache, logits=logits, hidden=hidden)
        return logits, hidden

    def _step(self, st: dict[str, Any], tokens: torch.Tensor,
              lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        """One cached column for every row of state ``st``, or None when some row neither extended by one
        token nor restarted, or the cache is full."""
        prev, prev_len, c = st["tokens"], st["lengths"], st["column"]
        restart = lengths == 0  # (B,)
        col = torch.arange(tokens.shape[1], device=tokens.device)  # (T,)
        grew = (lengths == prev_len + 1) & ((tokens == prev) | (col[None] == prev_len[:, None])).all(dim=1)  # (B,)
        if c >= st["valid"].shape[1] or not bool((grew | restart).all()):
            return None
        rows = torch.arange(tokens.shape[0], device=tokens.device)
        new = torch.where(restart, torch.full_like(lengths, BOS_ID), tokens[rows, (lengths - 1).clamp(min=0)])  # (B,)
        valid = st["valid"]
        valid[restart] = False  # a restarted row sees only its new BOS
        valid[:, c] = True
        cache = st["cache"]
        if bool(restart.any()) and is_lstm(self.generator):
            for layer in cache.layers:  # a recurrent state has no columns to hide: restart it at zero
                layer.keys[restart] = 0
                layer.values[restart] = 0
        dec = self._decoder = make_step_decoder(self.generator, self._decoder, self.fast_decode)
        if dec is not None:  # the same function as the call below (tested to 1e-5), far fewer kernels
            logits, hidden = dec.step(new, lengths, [layer.keys for layer in cache.layers],
                                      [layer.values for layer in cache.layers], c, valid[:, : c + 1], return_hidden=True)
            for layer in cache.layers:
                if hasattr(layer, "length"):  # a preallocated KV layer: one more column filled
                    layer.length = c + 1
        else:
            logits, hidden = self.run(input_ids=new[:, None], attention_mask=valid[:, : c + 1].long(),
                                      position_ids=lengths[:, None], cache=cache, use_cache=True)
            logits, hidden = logits[:, -1], hidden[:, -1]  # (B, V), (B, H)
        st.update(tokens=tokens.clone(), lengths=lengths, column=c + 1, logits=logits, hidden=hidden)
        return logits, hidden


__all__ = ["KVStepper", "PrefixDecoder", "TokenDraw", "TokenRule", "TokenSampler", "decode", "sample_categorical",
           "sample_sequences", "sampling_logits", "top_p_keep_mask"]
