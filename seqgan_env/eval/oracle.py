"""The SeqGAN synthetic-benchmark oracle: a fixed random LSTM (Yu et al., AAAI 2017).

Contract
--------
* ``OracleLSTM.from_npz(path)`` loads the 15 float arrays of
  ``seqgan_env/datasets/seqgan_oracle_lstm.npz`` (``numpy.load(..., allow_pickle=False)``). A
  missing, extra, non-float, non-finite or wrongly shaped array raises ValueError
  naming the array and the file.
* One step, with row vectors (exactly the data README's equations)::

      i  = sigmoid(x@Wi  + h@Ui  + bi)      f = sigmoid(x@Wf + h@Uf + bf)
      o  = sigmoid(x@Wog + h@Uog + bog)     c~ = tanh(x@Wc + h@Uc + bc)
      c  = f*c + i*c~                       h = o*tanh(c)
      logits = h@Wo + bo

  Start: ``h = c = 0`` and first input ``x = embedding[0]``; every next input is
  the embedding of the previous token. Token 0 is both the start input and a
  normal token of the 5,000. Sequences have no EOS; the benchmark length is 20.
* Oracle tokens are ``0..4999`` (no offset). ``seqgan_env.eval.oracle_data.IntTokenizer``
  maps them to model ids ``k + 3``.
* ``nll`` / ``nll_oracle`` are in nats per token, teacher-forced with the same
  start convention. Check values (data README): oracle samples 5.744 +- 0.02,
  uniform random tokens 11.435.
* The parameters are buffers (no gradients); the module works on CPU or CUDA.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from seqgan_env.utils.resources import dataset_path
from seqgan_env.utils.validation import check_int

DEFAULT_ORACLE_PATH = dataset_path("seqgan_oracle_lstm.npz")  # shipped in the package: seqgan_env/datasets/

VOCAB_SIZE = 5000
EMBED_SIZE = 32
HIDDEN_SIZE = 32
SEQ_LEN = 20
START_TOKEN = 0

#: name -> shape of every array in the oracle file, in the README's order.
PARAM_SHAPES: dict[str, tuple[int, ...]] = {
    "embedding": (VOCAB_SIZE, EMBED_SIZE),
    "Wi": (EMBED_SIZE, HIDDEN_SIZE), "Ui": (HIDDEN_SIZE, HIDDEN_SIZE), "bi": (HIDDEN_SIZE,),
    "Wf": (EMBED_SIZE, HIDDEN_SIZE), "Uf": (HIDDEN_SIZE, HIDDEN_SIZE), "bf": (HIDDEN_SIZE,),
    "Wog": (EMBED_SIZE, HIDDEN_SIZE), "Uog": (HIDDEN_SIZE, HIDDEN_SIZE), "bog": (HIDDEN_SIZE,),
    "Wc": (EMBED_SIZE, HIDDEN_SIZE), "Uc": (HIDDEN_SIZE, HIDDEN_SIZE), "bc": (HIDDEN_SIZE,),
    "Wo": (HIDDEN_SIZE, VOCAB_SIZE), "bo": (VOCAB_SIZE,),
}

_GATES = ("i", "f", "og", "c")


def load_oracle_arrays(path: str | os.PathLike = DEFAULT_ORACLE_PATH) -> dict[str, np.ndarray]:
    """Read and validate the oracle file; return ``{name: float32 array}``.

    Raises FileNotFoundError for a missing path and ValueError naming the file and
    the offending array for anything else (not an npz, missing/extra array, wrong
    shape, non-float dtype, NaN/inf).
    """
    p = Path(path)
    name = str(p)
    fix = f"fix: copy the original file from the data README (default {str(DEFAULT_ORACLE_PATH)!r})"
    if not p.is_file():
        raise FileNotFoundError(f"oracle file {name!r} does not exist or is not a file; {fix}")
    try:
        with np.load(p, allow_pickle=False) as npz:
            if not isinstance(npz, np.lib.npyio.NpzFile):
                raise ValueError(f"oracle file {name!r} holds a single array, expected an .npz archive; {fix}")
            raw = {k: npz[k] for k in npz.files}
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        raise ValueError(f"oracle file {name!r} is not a readable .npz archive ({err}); {fix}") from None
    except ValueError as err:  # e.g. an object array that would need pickle
        if str(err).startswith("oracle file"):
            raise
        raise ValueError(f"oracle file {name!r} could not be read without pickle ({err}); {fix}") from None

    missing = [k for k in PARAM_SHAPES if k not in raw]
    if missing:
        raise ValueError(f"oracle file {name!r} is missing array(s) {missing}; {fix}")
    extra = sorted(k for k in raw if k not in PARAM_SHAPES)
    if extra:
        raise ValueError(
            f"oracle file {name!r} has unexpected array(s) {extra}; expected exactly "
            f"{list(PARAM_SHAPES)}; {fix}"
        )
    arrays: dict[str, np.ndarray] = {}
    for key, shape in PARAM_SHAPES.items():
        a = raw[key]
        if a.shape != shape:
            raise ValueError(
                f"oracle file {name!r}: array {key!r} has shape {a.shape}, expected {shape}; {fix}"
            )
        if not np.issubdtype(a.dtype, np.floating):
            raise ValueError(
                f"oracle file {name!r}: array {key!r} has dtype {a.dtype}, expected a float dtype; {fix}"
            )
        if not np.isfinite(a).all():
            raise ValueError(f"oracle file {name!r}: array {key!r} contains NaN or inf; {fix}")
        arrays[key] = a.astype(np.float32, copy=False)
    return arrays


class OracleLSTM(nn.Module):
    """The fixed oracle LSTM; see the module docstring for the equations.

    Build it with ``OracleLSTM.from_npz(path, device)`` or from a dict of arrays
    (``OracleLSTM(arrays)``, validated like the file's).
    """

    def __init__(self, arrays: dict[str, np.ndarray | torch.Tensor]):
        super().__init__()
        for key, shape in PARAM_SHAPES.items():
            if key not in arrays:
                raise ValueError(f"OracleLSTM: array {key!r} is missing; fix: pass all of {list(PARAM_SHAPES)}")
            t = torch.as_tensor(np.asarray(arrays[key]) if not isinstance(arrays[key], torch.Tensor) else arrays[key])
            if tuple(t.shape) != shape:
                raise ValueError(f"OracleLSTM: array {key!r} has shape {tuple(t.shape)}, expected {shape}")
            self.register_buffer(key, t.detach().to(torch.float32).clone())
        # Fused gate weights: columns [i | f | o | c~], each HIDDEN_SIZE wide.
        self.register_buffer("W", torch.cat([getattr(self, "W" + g) for g in _GATES], dim=1))  # (E, 4H)
        self.register_buffer("U", torch.cat([getattr(self, "U" + g) for g in _GATES], dim=1))  # (H, 4H)
        self.register_buffer("b", torch.cat([getattr(self, "b" + g) for g in _GATES], dim=0))  # (4H,)

    @classmethod
    def from_npz(cls, path: str | os.PathLike = DEFAULT_ORACLE_PATH, device: str | torch.device = "cpu") -> OracleLSTM:
        """Load and validate the oracle file (see ``load_oracle_arrays``) onto ``device``."""
        return cls(load_oracle_arrays(path)).to(device)

    @property
    def device(self) -> torch.device:
        return self.embedding.device

    @property
    def vocab_size(self) -> int:
        return VOCAB_SIZE

    # ------------------------------------------------------------------ core
    def initial_state(self, batch: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(x, h, c)`` at the start: x = embedding[0], h = c = 0."""
        x = self.embedding[START_TOKEN].expand(batch, EMBED_SIZE)  # (B, E)
        h = torch.zeros(batch, HIDDEN_SIZE, device=self.device)  # (B, H)
        return x, h, h.clone()

    def step(self, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One LSTM step: ``x`` (B, E), ``h``/``c`` (B, H) -> ``(logits (B, V), h, c)``."""
        z = x @ self.W + h @ self.U + self.b  # (B, 4H)
        zi, zf, zo, zc = z.split(HIDDEN_SIZE, dim=1)  # each (B, H)
        c = torch.sigmoid(zf) * c + torch.sigmoid(zi) * torch.tanh(zc)  # (B, H)
        h = torch.sigmoid(zo) * torch.tanh(c)  # (B, H)
        logits = torch.addmm(self.bo, h, self.Wo)  # (B, V)
        return logits, h, c

    # -------------------------------------------------------------- sampling
    @torch.no_grad()
    def sample(
        self,
        n: int,
        length: int = SEQ_LEN,
        generator: torch.Generator | None = None,
        batch_size: int = 2048,
    ) -> torch.Tensor:
        """Draw ``n`` sequences of ``length`` oracle tokens: LongTensor (n, length) on ``self.device``.

        Batched over sequences (loop over time and over chunks of ``batch_size``).
        Sampling is inverse-CDF on uniforms drawn from ``generator`` on the
        generator's own device, so a CPU generator gives the same draws whichever
        device the oracle is on; ``None`` uses the global RNG of the oracle's device.
        The result depends on ``batch_size`` (the order in which uniforms are drawn).
        """
        _check_positive_int("n", n, allow_zero=True)
        _check_positive_int("length", length)
        _check_positive_int("batch_size", batch_size)
        rng_device = generator.device if generator is not None else self.device
        chunks = []
        for start in range(0, n, batch_size):
            b = min(batch_size, n - start)
            x, h, c = self.initial_state(b)
            out = torch.empty(b, length, dtype=torch.long, device=self.device)  # (b, L)
            for t in range(length):
                logits, h, c = self.step(x, h, c)  # (b, V)
                u = torch.rand(b, 1, generator=generator, device=rng_device, dtype=torch.float64)
                tok = _inverse_cdf(logits, u.to(self.device))  # (b,)
                out[:, t] = tok
                x = self.embedding[tok]  # (b, E)
            chunks.append(out)
        if not chunks:
            return torch.empty(0, length, dtype=torch.long, device=self.device)
        return torch.cat(chunks, dim=0)  # (n, L)

    # ---------------------------------------------------------------- scoring
    @torch.no_grad()
    def nll(self, tokens: torch.Tensor | np.ndarray | Sequence[Sequence[int]], batch_size: int = 2048) -> torch.Tensor:
        """Per-sequence mean token NLL (nats) under the oracle: Tensor (N,) on ``self.device``.

        ``tokens`` is (N, L) of oracle tokens in [0, 5000) (not model ids: subtract
        the tokenizer offset first). Teacher forcing: the input at step 0 is
        embedding[0], at step t > 0 the embedding of ``tokens[:, t-1]``.
        """
        tokens = self._as_tokens(tokens)  # (N, L)
        _check_positive_int("batch_size", batch_size)
        n, length = tokens.shape
        out = []
        for start in range(0, n, batch_size):
            tok = tokens[start : start + batch_size]  # (b, L)
            x, h, c = self.initial_state(tok.shape[0])
            total = torch.zeros(tok.shape[0], dtype=torch.float64, device=self.device)  # (b,)
            for t in range(length):
                logits, h, c = self.step(x, h, c)  # (b, V)
                picked = logits.gather(1, tok[:, t : t + 1])[:, 0]  # (b,)
                total += (torch.logsumexp(logits, dim=-1) - picked).double()
                x = self.embedding[tok[:, t]]  # (b, E)
            out.append((total / length).float())
        return torch.cat(out) if out else torch.empty(0, device=self.device)  # (N,)

    def nll_oracle(self, samples: torch.Tensor | np.ndarray | Sequence[Sequence[int]]) -> float:
        """NLL-oracle: mean NLL (nats/token) over all tokens of ``samples`` (N, L)."""
        return float(self.nll(samples).double().mean())

    def _as_tokens(self, tokens) -> torch.Tensor:
        if isinstance(tokens, np.ndarray):
            tokens = torch.from_numpy(np.ascontiguousarray(tokens))
        elif not isinstance(tokens, torch.Tensor):
            tokens = torch.as_tensor(list(tokens))
        if tokens.dtype.is_floating_point or tokens.dtype.is_complex or tokens.dtype == torch.bool:
            raise TypeError(f"oracle tokens must be integers, got dtype {tokens.dtype}; fix: .long()")
        if tokens.dim() != 2 or tokens.shape[0] == 0 or tokens.shape[1] == 0:
            raise ValueError(
                f"oracle tokens must have shape (N, L) with N, L >= 1, got {tuple(tokens.shape)}; "
                f"fix: stack the sequences into a 2-D tensor"
            )
        tokens = tokens.to(self.device, torch.long)
        lo, hi = int(tokens.min()), int(tokens.max())
        if lo < 0 or hi >= VOCAB_SIZE:
            raise ValueError(
                f"oracle tokens must lie in [0, {VOCAB_SIZE}), got min {lo}, max {hi}; fix: convert "
                f"model ids with IntTokenizer.to_oracle (subtracts the offset 3)"
            )
        return tokens


_BLOCK = 100  # VOCAB_SIZE = 50 blocks of 100 tokens


def _inverse_cdf(logits: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Token k with cdf[k-1] <= u * total < cdf[k] of softmax(logits): LongTensor (B,).

    ``logits`` (B, V) float32, ``u`` (B, 1) float64 uniforms in [0, 1). Two-level
    CDF so float32 suffices: cumulative sums inside blocks of 100 tokens (float32,
    error ~1e-6 of the block mass) and over the 50 block masses (float64).
    Zero-probability tokens are never drawn.
    """
    bsz, vocab = logits.shape
    w = torch.exp(logits - logits.amax(dim=1, keepdim=True))  # (B, V), unnormalized probs
    within = w.view(bsz, vocab // _BLOCK, _BLOCK).cumsum(dim=2)  # (B, NB, BS)
    block_cdf = within[:, :, -1].double().cumsum(dim=1)  # (B, NB)
    target = u * block_cdf[:, -1:]  # (B, 1) in [0, total mass)
    blk = torch.searchsorted(block_cdf, target, right=True).clamp_(max=vocab // _BLOCK - 1)  # (B, 1)
    before = torch.where(blk > 0, block_cdf.gather(1, (blk - 1).clamp(min=0)), torch.zeros_like(target))  # (B, 1)
    rows = within.gather(1, blk[:, :, None].expand(bsz, 1, _BLOCK))[:, 0]  # (B, BS)
    rest = (target - before).to(rows.dtype)  # (B, 1), in [0, block mass)
    idx = torch.searchsorted(rows, rest.contiguous(), right=True).clamp_(max=_BLOCK - 1)  # (B, 1)
    return (blk * _BLOCK + idx)[:, 0]


def _check_positive_int(name: str, value: int, allow_zero: bool = False) -> None:
    lo = 0 if allow_zero else 1
    check_int(name, value, lo, numpy=True)
