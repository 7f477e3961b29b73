"""The tilted generator: the generator reweighted token by token by D, with an exact likelihood.

With a per-prefix discriminator logit ``s(x<=t)`` (``Discriminator.score_logits``: the net is
causal, so position t's logit scores the prefix ending there) the tilted model is

    q(v | x<t) = p_G(v | x<t) exp(alpha (s(x<t v) - s(x<t))) / Z_t(x<t)

normalised over the vocabulary at every step (the ``s(x<t)`` term is the same for every
candidate v and cancels in the normalisation, so only ``s(x<t v)`` is computed). When
``s(x<=t)`` is the exact log ratio of the prefix marginals ``p_data(x<=t) / p_G(x<=t)`` and
alpha = 1, q is p_data; alpha = 0 is the generator itself (issue 26, item 3). Being normalised
at every step, q is an autoregressive model: its NLL of held-out rows is exact and its
samples need no rejection.

Cost: every candidate token of every step is scored by D, one batched D call per step over
(rows x V) prefixes of length t + 1, recomputed from scratch (no KV cache): O(B V T^2)
token positions, meant for character-level and other small vocabularies.

Layout (``seqgan_env.envs.spec``): rows are the env observations and dataset rows: symbols,
then EOS, then PAD, no BOS. The generator reads BOS first (teacher forcing with BOS
prepended, as ``seqgan_env.eval.likelihood.generator_nll``), D reads the rows as they are.

Token rule: with ``spec`` (an :class:`~seqgan_env.envs.spec.EnvConfig`) the invalid tokens
(PAD, BOS, and EOS before ``min_length`` symbols or when ``allow_eos`` is False) get zero mass,
as the generator's sampling does; the probabilities of all complete rows then sum to 1.
Without ``spec`` the generator's raw distribution is tilted (every token, as
``generator_nll`` scores it), so alpha = 0 reproduces ``generator_nll`` exactly.
"""

from __future__ import annotations

from typing import Any

import torch

from seqgan_env.data.tokenizer import BOS_ID, EOS_ID, PAD_ID
from seqgan_env.models.sampling import TokenDraw, TokenSampler, decode
from seqgan_env.utils.validation import check_int, check_number

__all__ = ["sample_tilted", "tilted_log_probs", "tilted_nll", "tilted_nll_by_alpha"]


def _check_common(generator: Any, discriminator: Any, alpha: Any, spec: Any, batch_size: Any) -> tuple[float, int]:
    alpha = check_number("alpha", alpha, fix="0 is the generator itself, 1 the full tilt by D's logit; try 0.5")
    check_int("batch_size", batch_size, 1, "rows scored together (each step scores rows x V prefixes); use e.g. 64")
    if not callable(getattr(discriminator, "score_logits", None)):
        raise ValueError(f"discriminator={type(discriminator).__name__} has no score_logits(tokens (N, L)) -> (N, L): "
                         f"pass a seqgan_env.models.discriminator.Discriminator.")
    vocab = _vocab_size(generator)
    if spec is not None:
        # duck-typed: models sit below envs in the layers, so the EnvConfig class is not imported here
        if not all(hasattr(spec, a) for a in ("vocab_size", "min_length", "allow_eos")):
            raise ValueError(f"spec={spec!r} is invalid: pass an EnvConfig (the env's token rule) or None.")
        if spec.vocab_size != vocab:
            raise ValueError(f"spec.vocab_size={spec.vocab_size} differs from the generator's vocab_size={vocab}: "
                             f"build the EnvConfig with vocab_size={vocab}.")
    return alpha, vocab


def _vocab_size(generator: Any) -> int:
    cfg = getattr(generator, "config", None)
    v = getattr(cfg, "vocab_size", None)
    if not isinstance(v, int):
        raise ValueError(f"generator={type(generator).__name__} has no config.vocab_size: pass the causal LM of a run "
                         f"(a module called as generator(input_ids=...) returning .logits).")
    return v


def _check_rows(name: str, tokens: Any) -> torch.Tensor:
    x = torch.as_tensor(tokens)
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0 or x.is_floating_point() or x.is_complex():
        raise ValueError(f"{name} must be a non-empty (B, T) tensor of token ids (symbols, EOS, PAD; no BOS), "
                         f"got shape {tuple(x.shape)} and dtype {x.dtype}; add a batch dimension with rows[None].")
    return x.long()


def _candidate_scores(discriminator: Any, prefix: torch.Tensor, vocab: int) -> torch.Tensor:
    """(N, V) D's logit s(prefix v) of every candidate v after each (N, t) ``prefix`` (t >= 0)."""
    n, t = prefix.shape
    cand = torch.arange(vocab, device=prefix.device)  # (V,)
    rows = torch.cat([prefix.repeat_interleave(vocab, dim=0), cand.repeat(n)[:, None]], dim=1)  # (N V, t + 1)
    return discriminator.score_logits(rows)[:, t].reshape(n, vocab).float()  # (N, V)


def _valid(spec: Any, t_steps: int, vocab: int, device: torch.device) -> torch.Tensor | None:
    """(T, V) bool: tokens the spec allows at each step (after t symbols), None without a spec."""
    if spec is None:
        return None
    return spec.valid_tokens(torch.arange(t_steps, device=device))  # (T, V)


def _chunk_parts(generator: torch.nn.Module, discriminator: Any, x: torch.Tensor, spec: Any, vocab: int,
                 with_scores: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(n, T, V) the generator's (masked) log-probabilities and (n, T, V) D's logits s(x<t v) of every
    candidate (0 after a row's end; None when ``with_scores`` is False) for one chunk of rows ``x`` (n, T)."""
    n, t_steps = x.shape
    bos = torch.full_like(x[:, :1], BOS_ID)  # (n, 1)
    logits = generator(input_ids=torch.cat([bos, x[:, :-1]], dim=1)).logits.float()  # (n, T, V)
    valid = _valid(spec, t_steps, vocab, x.device)  # (T, V) or None
    if valid is not None:
        logits = logits.masked_fill(~valid[None], float("-inf"))
    logp = torch.log_softmax(logits, dim=-1)  # (n, T, V) the generator's (masked) distribution
    if not with_scores:
        return logp, None
    d_dev = getattr(discriminator, "device", x.device)
    scores = torch.zeros_like(logp)  # (n, T, V) s(x<t v); 0 after a row's end
    for t in range(t_steps):
        # rows still writing at step t: nothing written yet, or the last token is a symbol (not EOS, not PAD)
        live = torch.ones(n, dtype=torch.bool, device=x.device) if t == 0 else \
            (x[:, t - 1] != EOS_ID) & (x[:, t - 1] != PAD_ID)  # (n,)
        if not bool(live.any()):
            break
        scores[live, t] = _candidate_scores(discriminator, x[live, :t].to(d_dev), vocab).to(x.device)  # (n_live, V)
    return logp, scores


def _tilted_chunk(generator: torch.nn.Module, discriminator: Any, x: torch.Tensor, alpha: float,
                  spec: Any, vocab: int) -> torch.Tensor:
    """(n, T, V) log q for one chunk of rows ``x`` (n, T) on the generator's device."""
    logp, scores = _chunk_parts(generator, discriminator, x, spec, vocab, with_scores=alpha != 0.0)
    if scores is None:
        return logp
    return torch.log_softmax(logp + alpha * scores, dim=-1)  # (n, T, V); -inf (masked) stays -inf


@torch.no_grad()
def tilted_log_probs(generator: torch.nn.Module, discriminator: Any, tokens: Any, alpha: float,
                     spec: Any = None, batch_size: int = 64) -> torch.Tensor:
    """Teacher-forced per-step log-probabilities of the tilted generator, exact and normalised.

    Args:
        generator: causal LM called as ``generator(input_ids=...)`` returning ``.logits`` (N, L, V), with
            ``config.vocab_size``; put in eval mode for the call and its mode restored.
        discriminator: a :class:`~seqgan_env.models.discriminator.Discriminator` (its ``score_logits``
            (N, L) -> (N, L) per-prefix realness logits).
        tokens: (B, T) rows: symbols, EOS, PAD (no BOS).
        alpha: tilt strength (0: the generator; 1: tilted by D's logit).
        spec: the env's token rule; its invalid tokens get probability 0 (None: the raw generator, every token).
        batch_size: rows per chunk (each step of a chunk scores batch_size x V prefixes with D).

    Returns:
        (B, T, V) float32 on the generator's device: ``out[b, t]`` is log q(. | BOS, tokens[b, :t]); every
        row of ``exp(out)`` sums to 1 (-inf on tokens the spec forbids). Steps after a row's EOS (or its
        first PAD) are not scored by D and hold the generator's log-probabilities.

    Raises:
        ValueError: ``alpha`` not a finite number, bad ``tokens`` / ``batch_size`` / ``spec``, or a
            ``discriminator`` without ``score_logits``.
    """
    alpha, vocab = _check_common(generator, discriminator, alpha, spec, batch_size)
    x_all = _check_rows("tokens", tokens)
    device = next(generator.parameters()).device
    was_training = generator.training
    generator.eval()
    try:
        out = [_tilted_chunk(generator, discriminator, x_all[i : i + batch_size].to(device), alpha, spec, vocab)
               for i in range(0, x_all.shape[0], batch_size)]  # each (n, T, V)
    finally:
        generator.train(was_training)
    return torch.cat(out, dim=0)  # (B, T, V)


@torch.no_grad()
def tilted_nll(generator: torch.nn.Module, discriminator: Any, sequences: Any, alpha: float,
               spec: Any = None, batch_size: int = 64) -> float:
    """Mean per-token NLL (nats) of ``sequences`` under the tilted generator: exact, as ``generator_nll`` counts.

    Args:
        generator: as in :func:`tilted_log_probs`.
        discriminator: as in :func:`tilted_log_probs`.
        alpha: as in :func:`tilted_log_probs`.
        spec: as in :func:`tilted_log_probs`.
        batch_size: as in :func:`tilted_log_probs`.
        sequences: (N, T) held-out rows (symbols, EOS, PAD; no BOS).

    Returns:
        The mean over the non-PAD tokens (an EOS that ends a row counts) of -log q(token | prefix); with
        ``alpha=0`` and ``spec=None`` equal to ``generator_nll(generator, sequences)``.

    Raises:
        ValueError: as :func:`tilted_log_probs`; rows of PAD only (nothing to score); a token the spec
            forbids (its NLL would be infinite: pass spec=None or rows the env could have written).
    """
    x = _check_rows("sequences", sequences)
    logq = tilted_log_probs(generator, discriminator, x, alpha, spec, batch_size)  # (N, T, V)
    x = x.to(logq.device)
    real = x != PAD_ID  # (N, T)
    if not bool(real.any()):
        raise ValueError("sequences hold only PAD tokens: there is nothing to score; pass the held-out split.")
    tok_logq = logq.gather(2, x[..., None]).squeeze(2)  # (N, T)
    if bool(torch.isinf(tok_logq[real]).any()):
        bad = int(torch.isinf(tok_logq[real]).sum())
        raise ValueError(f"{bad} token(s) of sequences have probability 0 under spec={spec!r} (e.g. EOS before "
                         f"min_length): pass spec=None to score the raw tilt, or rows the env could write.")
    return float(-tok_logq[real].sum()) / int(real.sum())


@torch.no_grad()
def tilted_nll_by_alpha(generator: torch.nn.Module, discriminator: Any, sequences: Any, alphas: Any,
                        spec: Any = None, batch_size: int = 64) -> dict[float, float]:
    """:func:`tilted_nll` at several tilt strengths for the cost of one: D scores every candidate once.

    Choosing alpha on validation rows this way is temperature scaling of D's logit (alpha multiplies it).

    Args:
        generator: as in :func:`tilted_log_probs`.
        discriminator: as in :func:`tilted_log_probs`.
        spec: as in :func:`tilted_log_probs`.
        batch_size: as in :func:`tilted_log_probs`.
        sequences: (N, T) held-out rows (symbols, EOS, PAD; no BOS).
        alphas: a non-empty sequence of finite tilt strengths.

    Returns:
        {alpha: mean per-token NLL in nats}, each exactly what ``tilted_nll`` returns at that alpha.

    Raises:
        ValueError: as :func:`tilted_nll`, or ``alphas`` empty or holding a non-finite value.
    """
    try:
        alist = list(dict.fromkeys(float(a) for a in alphas))  # a repeated alpha is scored once
    except (TypeError, ValueError):
        alist = []
    if not alist:
        raise ValueError(f"alphas={alphas!r} is invalid: pass a non-empty list of tilt strengths, e.g. [0, 0.5, 1].")
    for a in alist:
        _check_common(generator, discriminator, a, spec, batch_size)
    vocab = _vocab_size(generator)
    x_all = _check_rows("sequences", sequences)
    device = next(generator.parameters()).device
    totals = {a: 0.0 for a in alist}
    count = 0
    was_training = generator.training
    generator.eval()
    try:
        for i in range(0, x_all.shape[0], batch_size):
            x = x_all[i : i + batch_size].to(device)  # (n, T)
            logp, scores = _chunk_parts(generator, discriminator, x, spec, vocab)  # each (n, T, V)
            real = x != PAD_ID  # (n, T)
            count += int(real.sum())
            for a in alist:
                logq = torch.log_softmax(logp + a * scores, dim=-1)  # (n, T, V)
                tok = logq.gather(2, x[..., None]).squeeze(2)[real]  # (k,)
                if bool(torch.isinf(tok).any()):
                    raise ValueError(f"{int(torch.isinf(tok).sum())} token(s) of sequences have probability 0 under "
                                     f"spec={spec!r}: pass spec=None to score the raw tilt, or rows the env could write.")
                totals[a] += float(-tok.sum())
    finally:
        generator.train(was_training)
    if count == 0:
        raise ValueError("sequences hold only PAD tokens: there is nothing to score; pass the held-out split.")
    return {a: totals[a] / count for a in alist}


@torch.no_grad()
def sample_tilted(generator: torch.nn.Module, discriminator: Any, n: int, alpha: float, spec: Any,
                  seed: int | None = None, temperature: float = 1.0) -> torch.Tensor:
    """``n`` rows drawn exactly from the tilted generator under the env's token rule, one token per step.

    Args:
        generator: as in :func:`tilted_log_probs`.
        discriminator: as in :func:`tilted_log_probs`.
        alpha: as in :func:`tilted_log_probs`.
        n: rows to draw (all in one batch: each step scores n x V prefixes with D).
        spec: the env's token rule and ``max_length`` (required: sampling needs the row length).
        seed: seeds a fresh torch.Generator (the global RNG is untouched); None: the global RNG.
        temperature: > 0; each step samples from q^(1/temperature), renormalised (1: the tilted model itself).

    Returns:
        (n, spec.max_length) long on the generator's device: symbols, EOS, then PAD (no BOS); a row
        stops after EOS, as the env's episodes do.

    Raises:
        ValueError: ``n`` not an int >= 1, ``spec`` not an EnvConfig, ``temperature`` not > 0, or as :func:`tilted_log_probs`.
    """
    check_int("n", n, 1, "the number of rows to draw")
    if not all(hasattr(spec, a) for a in ("vocab_size", "max_length", "min_length", "allow_eos")):
        raise ValueError(f"spec={spec!r} is invalid: sample_tilted needs the env's EnvConfig (token rule and "
                         f"max_length); build it as EnvConfig(vocab_size=V, max_length=L).")
    alpha, vocab = _check_common(generator, discriminator, alpha, spec, 1)
    temperature = check_number("temperature", temperature, 0, fix="use 1.0 to sample the tilted model itself",
                               low_open=True)
    device = next(generator.parameters()).device
    d_dev = getattr(discriminator, "device", device)
    rng = None
    if seed is not None:
        rng = torch.Generator(device=device) if device.type == "cuda" else torch.Generator()
        rng.manual_seed(seed)
    out = torch.full((n, spec.max_length), PAD_ID, dtype=torch.long, device=device)  # (n, L)
    live = torch.ones(n, dtype=torch.bool, device=device)  # (n,) rows still writing

    def next_logits(_action: torch.Tensor | None, t: int) -> torch.Tensor:
        # q's log-probabilities of step t for the rows still writing (finished rows get zeros: their
        # draws are not recorded); the full forward each step, as every candidate is scored by D anyway
        idx = live.nonzero().squeeze(1)  # (k,)
        prefix = out[idx, :t]  # (k, t)
        inp = torch.cat([torch.full_like(out[idx, :1], BOS_ID), prefix], dim=1)  # (k, t + 1)
        logits = generator(input_ids=inp).logits[:, -1].float()  # (k, V)
        spec.mask_logits_(logits, torch.full((len(idx),), t, device=device))
        x = torch.log_softmax(logits, dim=-1)  # (k, V)
        if alpha != 0.0:
            x = x + alpha * _candidate_scores(discriminator, prefix.to(d_dev), vocab).to(device)  # (k, V)
        full = torch.zeros(n, x.shape[1], device=device)  # (n, V)
        full[idx] = x
        return full

    def observe(t: int, draw: TokenDraw) -> torch.Tensor:
        out[:, t] = torch.where(live, draw.action, torch.full_like(draw.action, PAD_ID))
        live.logical_and_(draw.action != EOS_ID)
        return live

    # the one sampling loop (token rule, temperature, draw) over q's per-step log-probabilities
    sampler = TokenSampler(spec, temperature=temperature, rng=rng)
    lengths = torch.zeros(n, dtype=torch.long, device=device)  # (n,) every row has written t symbols at step t
    was_training = generator.training
    generator.eval()
    try:
        decode(next_logits(None, 0), next_logits, sampler, spec.max_length, lambda t: lengths.fill_(t), observe)
    finally:
        generator.train(was_training)
    return out
