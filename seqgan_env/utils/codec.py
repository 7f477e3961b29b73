"""The one serialisation codec: safetensors + JSON, never pickle.

* ``load_tensors`` / ``read_json``: the safe loaders; a missing or corrupt file raises
  ``ValueError`` naming the file and the caller's fix.
* ``flatten_*_state`` / ``unflatten_*_state``: split a nested state dict (optimizer,
  scheduler, RNG) into ``(tensors, meta)``: a flat ``dict[str, Tensor]`` for safetensors and a
  JSON-able ``meta`` that records the structure (tuples, int dict keys, non-finite floats), so
  that ``unflatten(*flatten(sd))`` gives back an equal state dict.
Writing goes through ``utils.atomic`` (atomic_save_tensors, atomic_write_json).
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

import numpy as np
import safetensors.torch
import torch

FORMAT_VERSION = 1

_DEFAULT_TENSOR_FIX = "fix: re-create the file (its writer was probably interrupted)"


def load_tensors(path: str | os.PathLike, fix: str = _DEFAULT_TENSOR_FIX) -> dict[str, torch.Tensor]:
    """Load a safetensors file onto CPU; missing or corrupt → ValueError naming the file and ``fix``."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"missing tensor file {path}; {fix}.")
    try:
        return safetensors.torch.load_file(path, device="cpu")
    except Exception as e:  # safetensors raises its own error types
        raise ValueError(f"corrupt or truncated tensor file {path} ({e}); {fix}.") from e


def read_json(path: str | os.PathLike, fix: str) -> dict[str, Any]:
    """Load a JSON object; missing, corrupt or not an object → ValueError naming the file and ``fix``."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"missing JSON file {path}; {fix}.")
    try:
        with open(path, encoding="utf-8") as f:
            obj = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"corrupt or truncated JSON file {path} ({e}); {fix}.") from e
    if not isinstance(obj, dict):
        raise ValueError(f"corrupt JSON file {path}: expected an object at top level; {fix}.")
    return obj


# ----------------------------------------------------------------------------
# (tensors, meta) codec for nested state dicts

_TAGS = ("__tensor__", "__tuple__", "__items__", "__float__")


def _encode(obj: Any, path: str, tensors: dict[str, torch.Tensor], what: str) -> Any:
    """JSON-able description of ``obj``; tensors are moved into ``tensors`` under ``path``."""
    if torch.is_tensor(obj):
        key = path or "tensor"
        n = 1
        while key in tensors:  # e.g. a dict key containing "." colliding with a nested path
            key, n = f"{path}#{n}", n + 1
        tensors[key] = obj
        return {"__tensor__": key}
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        x = float(obj)
        return x if math.isfinite(x) else {"__float__": repr(x)}
    if isinstance(obj, tuple):
        return {"__tuple__": [_encode(v, f"{path}.{i}", tensors, what) for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [_encode(v, f"{path}.{i}", tensors, what) for i, v in enumerate(obj)]
    if isinstance(obj, dict):
        def child(k: Any) -> str:
            return f"{path}.{k}" if path else str(k)

        if all(isinstance(k, str) for k in obj) and not any(k in _TAGS for k in obj):
            return {k: _encode(v, child(k), tensors, what) for k, v in obj.items()}
        items = []
        for k, v in obj.items():
            if k is not None and not isinstance(k, (bool, int, float, str)):
                raise ValueError(
                    f"{what} has a dict key {k!r} of type {type(k).__name__} at {path or '<root>'!r}; only "
                    f"str/int/float/bool/None keys can be stored in JSON. Store a simpler state."
                )
            items.append([_encode(k, child(k), tensors, what), _encode(v, child(k), tensors, what)])
        return {"__items__": items}
    raise ValueError(
        f"{what} holds a value of type {type(obj).__name__} at {path or '<root>'!r} that cannot be saved without "
        f"pickle; allowed are tensors, numbers, str, bool, None and lists/tuples/dicts of those. Use an "
        f"optimizer/scheduler whose state_dict() holds no callables or objects (e.g. OneCycleLR)."
    )


def _decode(obj: Any, tensors: dict[str, torch.Tensor], what: str) -> Any:
    if isinstance(obj, list):
        return [_decode(v, tensors, what) for v in obj]
    if isinstance(obj, dict):
        if len(obj) == 1:
            (tag, val), = obj.items()
            if tag == "__tensor__":
                if val not in tensors:
                    raise ValueError(f"{what}: tensor {val!r} is missing from the tensor file; the checkpoint "
                                     f"is incomplete. Resume from another checkpoint or start a new run.")
                return tensors[val]
            if tag == "__tuple__":
                return tuple(_decode(v, tensors, what) for v in val)
            if tag == "__items__":
                return {_decode(k, tensors, what): _decode(v, tensors, what) for k, v in val}
            if tag == "__float__":
                return float(val)
        return {k: _decode(v, tensors, what) for k, v in obj.items()}
    return obj


def _flatten(sd: Any, kind: str, what: str) -> tuple[dict[str, torch.Tensor], dict]:
    tensors: dict[str, torch.Tensor] = {}
    encoded = _encode(sd, "", tensors, what)
    return tensors, {"kind": kind, "format_version": FORMAT_VERSION, "state": encoded}


def _unflatten(tensors: dict[str, torch.Tensor], meta: dict, kind: str, what: str) -> Any:
    if not isinstance(meta, dict) or meta.get("kind") != kind or "state" not in meta:
        got = meta.get("kind") if isinstance(meta, dict) else type(meta).__name__
        raise ValueError(f"{what}: meta describes {got!r}, expected a {kind!r} meta from flatten_{kind}_state(); "
                         f"pass the meta saved together with these tensors.")
    if meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{what}: format_version={meta.get('format_version')!r}, this code reads "
                         f"{FORMAT_VERSION}; start a new run or use the matching seqgan-env version.")
    return _decode(meta["state"], tensors, what)


def flatten_optimizer_state(opt_state_dict: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """Split ``optimizer.state_dict()`` into ``(tensors, meta)``.

    ``tensors`` holds the per-parameter state under keys ``"state.<param index>.<name>"``
    (e.g. ``state.0.exp_avg``, ``state.0.step``); ``meta`` is JSON-able and keeps
    param_groups (tuples such as ``betas`` recorded so they come back as tuples).
    ValueError naming the offending entry if the state holds something JSON cannot.
    """
    if not isinstance(opt_state_dict, dict) or "state" not in opt_state_dict or "param_groups" not in opt_state_dict:
        raise ValueError("flatten_optimizer_state expects optimizer.state_dict() (a dict with 'state' and "
                         "'param_groups'); pass optimizer.state_dict().")
    return _flatten(opt_state_dict, "optimizer", "optimizer state")


def unflatten_optimizer_state(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    """Inverse of :func:`flatten_optimizer_state`: a dict for ``optimizer.load_state_dict``."""
    return _unflatten(tensors, meta, "optimizer", "optimizer state")


def load_optimizer_state(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict,
                         what: str, fix: str) -> None:
    """``optimizer.load_state_dict(unflatten_optimizer_state(tensors, meta))``, checked first.

    Every per-parameter tensor must have its parameter's shape (``optimizer.load_state_dict``
    would cast it silently) and the param groups must match: otherwise ValueError naming
    ``what`` (the file) and ``fix``.
    """
    try:
        sd = unflatten_optimizer_state(tensors, meta)
    except ValueError as e:
        raise ValueError(f"{what}: {e}; {fix}.") from e
    unexpected = sorted(set(tensors) - set(flatten_optimizer_state(sd)[0]))
    if unexpected:
        raise ValueError(f"{what}: tensors {unexpected[:3]} are not described by the metadata saved with them; "
                         f"the files come from different checkpoints; {fix}.")
    params = [p for g in optimizer.param_groups for p in g["params"]]
    if len(sd.get("param_groups", [])) != len(optimizer.param_groups):
        raise ValueError(f"{what}: {len(sd.get('param_groups', []))} param groups, the optimizer has "
                         f"{len(optimizer.param_groups)}; the file belongs to another model; {fix}.")
    for idx, st in sd["state"].items():
        if not isinstance(idx, int) or not 0 <= idx < len(params):
            raise ValueError(f"{what}: state for parameter {idx!r} but the model has {len(params)} parameters; "
                             f"the file belongs to another model; {fix}.")
        for name, v in st.items():
            if torch.is_tensor(v) and v.dim() > 0 and tuple(v.shape) != tuple(params[idx].shape):
                raise ValueError(f"{what}: state {idx}.{name} has shape {tuple(v.shape)} but parameter {idx} has "
                                 f"shape {tuple(params[idx].shape)}; the file belongs to another model; {fix}.")
    try:
        optimizer.load_state_dict(sd)
    except (KeyError, ValueError, TypeError) as e:
        raise ValueError(f"{what}: the optimizer state does not fit ({e}); {fix}.") from e


def flatten_scheduler_state(sched_state_dict: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """Split ``scheduler.state_dict()`` into ``(tensors, meta)`` (see :func:`flatten_optimizer_state`).

    OneCycleLR's state is plain JSON; callables or other objects raise ValueError naming the entry.
    """
    if not isinstance(sched_state_dict, dict):
        raise ValueError(f"flatten_scheduler_state expects scheduler.state_dict() (a dict), got "
                         f"{type(sched_state_dict).__name__}; pass scheduler.state_dict().")
    return _flatten(sched_state_dict, "scheduler", "scheduler state")


def unflatten_scheduler_state(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    """Inverse of :func:`flatten_scheduler_state`: a dict for ``scheduler.load_state_dict``."""
    return _unflatten(tensors, meta, "scheduler", "scheduler state")
