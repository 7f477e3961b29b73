"""Nested dataclass configs to and from dicts, files (JSON/TOML) and `key=value` overrides.

Validation stays in each dataclass's ``__post_init__``; this module only maps
names to fields and reports unknown keys and wrong shapes with the valid choices.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
import types
import typing
from pathlib import Path
from typing import Any


def config_to_dict(cfg: Any) -> dict:
    """A nested dataclass as plain JSON-able dicts (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def _is_dataclass_type(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _convert(value: Any, tp: Any, key: str) -> Any:
    """Convert a JSON value to field type ``tp`` where unambiguous (lists to tuples, ints to floats)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, key)
            except (TypeError, ValueError):
                continue
        return value
    if origin is tuple and isinstance(value, list):
        return tuple(value)
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def config_from_dict(cls: type, data: dict, prefix: str = "") -> Any:
    """Build dataclass ``cls`` from a nested dict; unknown keys raise ValueError listing valid ones."""
    if not isinstance(data, dict):
        raise ValueError(f"config section '{prefix or '<root>'}' must be a table/object, got {type(data).__name__}.")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - names)
    if unknown:
        where = f"'{prefix}'" if prefix else "the top level"
        raise ValueError(
            f"unknown config key(s) {[prefix + k for k in unknown]} at {where}; valid keys: {sorted(names)}."
        )
    kwargs = {}
    for name, value in data.items():
        tp = hints[name]
        if _is_dataclass_type(tp):
            kwargs[name] = config_from_dict(tp, value, f"{prefix}{name}.")
        else:
            kwargs[name] = _convert(value, tp, prefix + name)
    return cls(**kwargs)


def merge_dicts(base: dict, over: dict) -> dict:
    """``base`` with ``over`` laid on top, section by section (a key ``over`` lacks keeps ``base``'s value)."""
    out = dict(base)
    for key, value in over.items():
        out[key] = merge_dicts(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def load_config_file(path: str | Path) -> dict:
    """Read a JSON or TOML config file into a dict (chosen by extension)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"config file '{p}' does not exist; fix: check the path passed to --config.")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"config file '{p}' is not UTF-8 text ({exc}); fix: save it as UTF-8 JSON or TOML.") from None
    try:
        if p.suffix == ".toml":
            return tomllib.loads(text)
        if p.suffix == ".json":
            data = json.loads(text)
            if isinstance(data, dict) and "config" in data and "format_version" in data:
                return data["config"]  # a run directory's config.json
            return data
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"config file '{p}' is not valid {p.suffix[1:].upper()}: {exc}") from None
    raise ValueError(f"config file '{p}' must end in .json or .toml.")


def _parse_value(raw: str) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw  # a bare string such as mode=per_step


def apply_overrides(data: dict, overrides: list[str], cls: type) -> dict:
    """Apply ``key.sub=value`` overrides (values parsed as JSON, else kept as strings)."""
    out = json.loads(json.dumps(data))
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"--set {item!r} must look like key=value (e.g. --set reinforce.gamma=0.95).")
        key, raw = item.split("=", 1)
        parts = key.strip().split(".")
        node_cls, node = cls, out
        for depth, part in enumerate(parts):
            fields = {f.name: f for f in dataclasses.fields(node_cls)}
            if part not in fields:
                where = ".".join(parts[:depth]) or "the top level"
                raise ValueError(f"--set {key}: unknown key '{part}' under {where}; valid keys: {sorted(fields)}.")
            tp = typing.get_type_hints(node_cls)[part]
            if depth == len(parts) - 1:
                if _is_dataclass_type(tp):
                    raise ValueError(f"--set {key}: '{key}' is a section; set one of its keys, e.g. {key}.<name>=value.")
                node[part] = _parse_value(raw)
            else:
                if not _is_dataclass_type(tp):
                    raise ValueError(f"--set {key}: '{'.'.join(parts[: depth + 1])}' is not a section.")
                node = node.setdefault(part, {})
                node_cls = tp
    return out
