"""Models the user already has: a pretrained causal LM as the generator, a pretrained backbone under
the discriminator's head.

Contract
--------
* A pretrained directory is anything ``transformers`` loads with ``from_pretrained``
  locally (``local_files_only``: nothing is downloaded) from safetensors weights (never a
  pickled ``.bin``). The generator directory must hold a causal LM and its tokenizer; the
  discriminator directory any model whose base model maps ids to hidden states (its
  ``AutoModel``), with or without a tokenizer.
* Embeddings are aligned to the run's tokenizer (PAD, BOS, EOS at ids 0, 1, 2; see
  ``seqgan_env.data.subword.to_project_ids``) by token string: row ``j`` of the aligned
  input (and output) embedding is the row of the token the run's id ``j`` names in the
  directory's own tokenizer; a token the run added (a ``<bos>`` or ``<pad>`` the directory
  lacked) starts as a copy of the end-of-text row. A directory without a tokenizer must
  have exactly the run's vocabulary size and is taken in the run's order.
* Models come back in float32, in eval mode, with ``config.pad/bos/eos_token_id`` = 0, 1, 2,
  and the global torch RNG untouched. Every failure raises ``ValueError`` naming the
  directory and the fix.
* The lean CPU paths (``fastllama``) take a pretrained Llama as they take our own; any
  other architecture runs through the transformers forward and its cache API.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from seqgan_env.data.tokenizer import BOS_ID, EOS_ID, PAD_ID

_FIX = ("fix: pass a local directory written by save_pretrained (config.json + model.safetensors, and "
        "tokenizer.json for a generator)")


def check_directory(directory: str | Path, what: str) -> Path:
    """``directory`` as a Path if it exists and holds a config.json; else the error naming ``what`` and the fix."""
    path = Path(directory)
    if not path.exists():
        raise FileNotFoundError(f"{what}={str(path)!r} does not exist; {_FIX}.")
    if not path.is_dir():
        raise ValueError(f"{what}={str(path)!r} is not a directory; {_FIX}.")
    if not (path / "config.json").is_file():
        raise ValueError(f"{what}={str(path)!r} has no config.json; {_FIX}.")
    return path


#: model_type values of encoder-only (bidirectional) families: each position sees the whole sequence.
ENCODER_MODEL_TYPES = frozenset({
    "albert", "bert", "big_bird", "camembert", "canine", "convbert", "data2vec-text", "deberta", "deberta-v2",
    "distilbert", "electra", "ernie", "esm", "flaubert", "fnet", "funnel", "ibert", "layoutlm", "layoutlmv2",
    "layoutlmv3", "longformer", "luke", "megatron-bert", "mobilebert", "modernbert", "mpnet", "mra", "nezha",
    "nystromformer", "rembert", "roberta", "roberta-prelayernorm", "roc_bert", "roformer", "splinter",
    "squeezebert", "tapas", "xlm", "xlm-roberta", "xlm-roberta-xl", "xmod", "yoso",
})

_CAUSAL_FIX = "fix: use a causal LM such as a Llama/GPT-2 directory (AutoModelForCausalLM, e.g. a *ForCausalLM)"


def check_causal_config(path: Path, what: str) -> None:
    """Refuse a directory whose config.json says the model is not causal (left to right).

    A bidirectional model (a BERT masked LM, the encoder of a T5) lets position ``t`` see the
    tokens after it: teacher-forced log-probs and per-prefix rewards would read the future.
    Read from config.json alone (no weights): ``is_encoder_decoder``, an architecture named
    ``*ForMaskedLM``, or an encoder-only ``model_type`` without ``is_decoder: true``.
    ``check_causal_model`` probes the loaded weights for what a config cannot say.
    """
    try:
        cfg = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{what}={str(path)!r}: its config.json cannot be read ({exc}); {_FIX}.") from None
    if not isinstance(cfg, dict):
        raise ValueError(f"{what}={str(path)!r}: its config.json is not a JSON object; {_FIX}.")
    model_type = str(cfg.get("model_type", ""))
    archs = [str(a) for a in (cfg.get("architectures") or []) if isinstance(a, str)]
    reason = None
    if cfg.get("is_encoder_decoder") is True:
        reason = f"an encoder-decoder model (model_type {model_type!r}, is_encoder_decoder true)"
    elif any(a.endswith("ForMaskedLM") for a in archs):
        reason = f"a masked LM ({', '.join(archs)}): bidirectional"
    elif model_type in ENCODER_MODEL_TYPES and cfg.get("is_decoder") is not True:
        reason = f"an encoder (model_type {model_type!r}, is_decoder not true): bidirectional"
    if reason:
        raise ValueError(f"{what}={str(path)!r} is {reason}, so each position would see the tokens after it; "
                         f"{_CAUSAL_FIX}.")


def check_causal_model(model: torch.nn.Module, path: Path, what: str, length: int = 6) -> None:
    """Refuse a loaded model whose outputs at positions ``< t`` change when token ``t`` changes (a causality probe).

    Two sequences of fixed ids (no RNG) that differ only in their last token; the outputs
    (logits, or the last hidden state of a base model) at every earlier position must agree.
    """
    rows = model.get_input_embeddings().weight.shape[0]
    if rows < 2:
        return
    ids = torch.tensor([[(7 * i + 3) % rows for i in range(length)]])  # (1, L)
    other = ids.clone()
    other[0, -1] = (int(ids[0, -1]) + 1) % rows
    batch = torch.cat([ids, other])  # (2, L)
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        out = model(input_ids=batch, attention_mask=torch.ones_like(batch))
    hidden = out.logits if getattr(out, "logits", None) is not None else out.last_hidden_state  # (2, L, ·)
    before = hidden[:, :-1].float()
    gap = float((before[0] - before[1]).abs().max())
    scale = float(before.abs().max()) or 1.0
    if gap > 1e-5 * max(1.0, scale):  # a causal model: exactly 0 on CPU; a tiny random BERT: ~2e-3
        raise ValueError(f"{what}={str(path)!r} is not causal: its outputs at earlier positions change when a later "
                         f"token changes (by up to {gap:.3g}), so each position would see the tokens after it; "
                         f"{_CAUSAL_FIX}.")


def _from_pretrained(auto_cls: Any, path: Path, what: str) -> torch.nn.Module:
    """``auto_cls.from_pretrained(path)`` locally from safetensors, quiet, RNG untouched; loud on failure."""
    from seqgan_env.models.networks import quiet_transformers

    with quiet_transformers(), torch.random.fork_rng(devices=[]):
        try:
            model = auto_cls.from_pretrained(str(path), local_files_only=True, use_safetensors=True)
        except Exception as exc:  # OSError, ValueError, safetensors errors: all mean "cannot load this"
            reason = " ".join(str(exc).split())[:300]
            raise ValueError(f"{what}={str(path)!r}: transformers could not load it as {auto_cls.__name__} "
                             f"({reason}); {_FIX}.") from None
    return model.float().eval()


def raw_tokenizer(directory: Path):
    """The directory's own ``tokenizers.Tokenizer``, or None when it holds no tokenizer files."""
    from seqgan_env.data.subword import _tokenizer_from_directory

    from seqgan_env.data.subword import _SLOW_TOKENIZER_FILES

    if not any((directory / n).is_file() for n in ("tokenizer.json", *_SLOW_TOKENIZER_FILES)):
        return None
    return _tokenizer_from_directory(directory)


def embedding_source(raw, tokenizer: Any, what: str) -> list[int]:
    """For each id of the run's ``tokenizer``, the id of the same token in ``raw`` (the directory's).

    A run token that ``raw`` lacks (at most the added pad and begin tokens) maps to ``raw``'s
    id of the run's end token. Tokenizers that differ otherwise raise ValueError.
    """
    inner = tokenizer.tokenizer
    run_tokens = [inner.id_to_token(j) for j in range(tokenizer.vocab_size)]
    raw_vocab = raw.get_vocab(with_added_tokens=True)  # token -> id
    eos = raw_vocab.get(run_tokens[EOS_ID])
    missing = [t for t in run_tokens if t not in raw_vocab]
    extra = sorted(set(raw_vocab) - set(run_tokens))
    if eos is None or len(missing) > 2 or extra or set(missing) - {run_tokens[PAD_ID], run_tokens[BOS_ID]}:
        raise ValueError(
            f"{what}: the directory's tokenizer is not the run's ({len(missing)} of the run's {len(run_tokens)} "
            f"tokens missing, e.g. {missing[:3]}; {len(extra)} extra, e.g. {extra[:3]}); fix: use a model "
            f"trained with the run's tokenizer (--tokenizer {what.split('=')[-1]} or the same family)."
        )
    return [raw_vocab.get(t, eos) for t in run_tokens]


def align_embeddings(model: torch.nn.Module, source: list[int], what: str) -> None:
    """Make row ``j`` of the input (and untied output) embedding the old row ``source[j]``; resizes."""
    inp = model.get_input_embeddings()
    out = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    rows = inp.weight.shape[0]
    if max(source) >= rows:
        raise ValueError(f"{what}: its tokenizer has id {max(source)} but the model's embedding has only {rows} "
                         f"rows; fix: use the tokenizer saved with this model.")
    config = model.config
    for name, value in (("pad_token_id", PAD_ID), ("bos_token_id", BOS_ID), ("eos_token_id", EOS_ID)):
        setattr(config, name, value)
        if getattr(model, "generation_config", None) is not None:
            setattr(model.generation_config, name, value)
    if source == list(range(rows)):
        return
    src = torch.tensor(source, dtype=torch.long)  # (V_new,)
    w_in = inp.weight.detach().clone()  # (V_old, C)
    tied = out is not None and out.weight.data_ptr() == inp.weight.data_ptr()
    w_out = out.weight.detach().clone() if out is not None and not tied else None  # (V_old, C)
    b_out = out.bias.detach().clone() if out is not None and getattr(out, "bias", None) is not None else None
    model.resize_token_embeddings(len(source), mean_resizing=False)
    with torch.no_grad():
        model.get_input_embeddings().weight.copy_(w_in[src])
        new_out = model.get_output_embeddings() if out is not None else None
        if w_out is not None:
            new_out.weight.copy_(w_out[src])
        if b_out is not None:
            new_out.bias.copy_(b_out[src])


def pretrained_generator(directory: str | Path, tokenizer: Any) -> torch.nn.Module:
    """The causal LM in ``directory``, its embeddings aligned to the run's ``tokenizer`` (an HFTokenizer)."""
    from transformers import AutoModelForCausalLM

    what = f"generator.pretrained={str(directory)}"
    path = check_directory(directory, "generator.pretrained")
    raw = raw_tokenizer(path)
    if raw is None:
        raise ValueError(f"{what} holds no tokenizer; fix: save the model's tokenizer into it "
                         f"(tokenizer.save_pretrained(directory)).")
    if not hasattr(tokenizer, "tokenizer"):
        raise ValueError(f"{what} needs the run's tokenizer to be its own (tokenizer.kind auto), got "
                         f"{type(tokenizer).__name__}; fix: drop --tokenizer.")
    check_causal_config(path, "generator.pretrained")
    model = _from_pretrained(AutoModelForCausalLM, path, "generator.pretrained")
    check_causal_model(model, path, "generator.pretrained")
    align_embeddings(model, embedding_source(raw, tokenizer, what), what)
    return model


def pretrained_backbone(directory: str | Path, tokenizer: Any, vocab_size: int) -> torch.nn.Module:
    """The base model in ``directory`` (hidden states, no LM head), aligned to ``tokenizer``.

    ``tokenizer`` None: the directory's own tokenizer reordered to the contract. Without a
    tokenizer in the directory its vocabulary must be ``vocab_size`` ids in the run's order.
    """
    from transformers import AutoModel

    from seqgan_env.data.subword import HFTokenizer, load_tokenizer_source

    what = f"discriminator.pretrained={str(directory)}"
    path = check_directory(directory, "discriminator.pretrained")
    check_causal_config(path, "discriminator.pretrained")
    model = _from_pretrained(AutoModel, path, "discriminator.pretrained")
    check_causal_model(model, path, "discriminator.pretrained")
    raw = raw_tokenizer(path)
    if raw is None:
        rows = model.get_input_embeddings().weight.shape[0]
        if rows != vocab_size:
            raise ValueError(f"{what} holds no tokenizer and its embedding has {rows} rows, not the run's "
                             f"vocab_size {vocab_size}; fix: save the tokenizer it was trained with into it.")
        source = list(range(rows))
    else:
        if tokenizer is None:
            tokenizer, _ = load_tokenizer_source(path)
        if not isinstance(tokenizer, HFTokenizer):
            raise ValueError(f"{what} has a subword tokenizer but the run's is {type(tokenizer).__name__}; fix: "
                             f"--tokenizer {path} (or a generator.pretrained with the same tokenizer).")
        source = embedding_source(raw, tokenizer, what)
    align_embeddings(model, source, what)
    return model


def fingerprint(directory: str | Path) -> dict[str, Any]:
    """``{"path": absolute path, "sha256": of every top-level file's name and bytes}`` of a directory."""
    path = Path(directory).resolve()
    digest = hashlib.sha256()
    for f in sorted(p for p in path.iterdir() if p.is_file()):
        digest.update(f.name.encode() + b"\0")
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    return {"path": str(path), "sha256": digest.hexdigest()}


def make_generator(cfg: Any, tokenizer: Any) -> torch.nn.Module:
    """The run's generator: ``cfg.pretrained``'s causal LM aligned to ``tokenizer``, or a fresh tiny Llama
    of ``cfg`` over ``tokenizer.vocab_size`` ids (drawn from the global RNG, as ``build_generator``)."""
    from seqgan_env.models.networks import build_generator

    if getattr(cfg, "pretrained", None):
        return pretrained_generator(cfg.pretrained, tokenizer)
    return build_generator(cfg, tokenizer.vocab_size)


__all__ = ["ENCODER_MODEL_TYPES", "align_embeddings", "check_causal_config", "check_causal_model", "check_directory",
           "embedding_source", "fingerprint", "make_generator", "pretrained_backbone", "pretrained_generator",
           "raw_tokenizer"]
