"""Experiment bookkeeping over run directories: status, listing, diffs, notes, seed groups.

Everything here only *reads* run directories made by :class:`seqgan_env.runs.rundir.RunDir`
(``config.json``, ``metrics.jsonl``, ``checkpoints/``, ``generator/``, ``lock``), except
:func:`write_note` (``note.txt``) and :func:`write_group_summary` (``summary.json``),
which write atomically.

Contract
--------
* ``run_status`` is one of :data:`STATUSES`:

  - ``running``:  a ``lock`` file names a live process;
  - ``finished``: the generator export ``generator/config.json`` exists, or the last
    metrics step reached ``config.schedule.updates``;
  - ``stopped``:  neither, but a checkpoint exists (interrupted; ``--resume`` continues it);
  - ``crashed``:  neither, and nothing to resume from.

* A metric's *final* value is the value in the last ``metrics.jsonl`` line that has the
  key.  Non-finite values are logged as ``null`` and come back as ``None``.
* Unreadable files raise ``ValueError`` naming the file and the fix (from ``RunDir``);
  :func:`list_runs` reports such a run with status ``unreadable`` instead of failing.
* Seed-group statistics use the **population** standard deviation (numpy ``ddof=0``).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from seqgan_env.runs.rundir import CONFIG_FILE, RunDir, check_run_info
from seqgan_env.utils.atomic import atomic_write_text
from seqgan_env.utils.codec import read_json
from seqgan_env.utils.pidlock import lock_owner

STATUSES = ("running", "finished", "stopped", "crashed")
NOTE_FILE = "note.txt"
SUMMARY_FILE = "summary.json"
LOCK_FILE = "lock"
DEFAULT_SEED_METRICS = ("eval/bigram_nll", "eval/uniqueness", "eval/novelty", "reward_mean")
#: For runs on the SeqGAN oracle task, whose evaluations report NLL-oracle and NLL-test instead.
ORACLE_SEED_METRICS = ("eval/nll_oracle", "eval/nll_test", "eval/uniqueness", "reward_mean")


class _Missing:
    """Marker for a key present in only one of two configs (prints as ``<missing>``)."""

    _instance = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "<missing>"

    def __bool__(self) -> bool:
        return False


MISSING = _Missing()


# ----------------------------------------------------------------------------
# reading one run


def _run_path(run_path: str | os.PathLike) -> Path:
    path = Path(run_path)
    if not (path / CONFIG_FILE).is_file():
        raise ValueError(f"'{path}' is not a run directory (no {CONFIG_FILE}); pass a directory made by "
                         f"`seqgan-env train` (e.g. runs/<YYYYmmdd-HHMMSS>-<name>).")
    return path


def _info(path: Path) -> dict[str, Any]:
    return read_json(path / CONFIG_FILE, "this is not a readable run directory; fix: restore the file, or "
                      "remove the directory if it is not a run")


def _open(path: Path, info: dict[str, Any]) -> RunDir:
    return RunDir(path, info, tensorboard=False)


def read_metrics(run_path: str | os.PathLike) -> list[dict[str, Any]]:
    """All metric rows of a run, in order ([] when there is no metrics.jsonl)."""
    path = _run_path(run_path)
    return _open(path, {}).read_metrics()


def _final(rows: Sequence[dict[str, Any]], key: str) -> Any:
    for row in reversed(rows):
        if key in row:
            return row[key]
    return None


def final_metric(run_path: str | os.PathLike, key: str) -> float | None:
    """The value of ``key`` in the last metrics line that has it; None when absent or non-finite.

    For a sweep's ``train_fn``: ``return final_metric(trainer.run.path, "eval/bigram_nll")``.
    """
    value = _final(read_metrics(run_path), key)
    if value is None or isinstance(value, (bool, str)) or not math.isfinite(float(value)):
        return None
    return float(value)


def _status(path: Path, info: dict[str, Any], rows: Sequence[dict[str, Any]]) -> str:
    if lock_owner(path / LOCK_FILE) is not None:
        return "running"
    if (path / "generator" / "config.json").is_file():
        return "finished"
    updates = ((info.get("config") or {}).get("schedule") or {}).get("updates")
    if rows and isinstance(updates, int) and rows[-1]["step"] >= updates:
        return "finished"
    if _open(path, info).latest_checkpoint() is not None:
        return "stopped"
    return "crashed"


def run_status(run_path: str | os.PathLike) -> str:
    """``running`` | ``finished`` | ``stopped`` | ``crashed`` (definitions in the module docstring)."""
    path = _run_path(run_path)
    info = _info(path)
    return _status(path, info, _open(path, info).read_metrics())


# ----------------------------------------------------------------------------
# notes


def write_note(run_path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``<run>/note.txt`` atomically (replacing an earlier note); return its path."""
    path = _run_path(run_path)
    if not isinstance(text, str):
        raise TypeError(f"note text must be a str, got {type(text).__name__}.")
    check_run_info(path, _info(path))  # a model directory also has a config.json: write nothing into it
    target = path / NOTE_FILE
    atomic_write_text(target, text.rstrip("\n") + "\n")
    return target


def _note(path: Path, info: dict[str, Any]) -> str:
    note_path = path / NOTE_FILE
    if note_path.is_file():
        try:
            return note_path.read_text(encoding="utf-8").rstrip("\n")
        except (OSError, UnicodeDecodeError) as e:
            raise ValueError(f"cannot read {note_path} ({e}); rewrite it with write_note().") from e
    note = info.get("note")
    if not isinstance(note, str) or not note:
        note = (info.get("config") or {}).get("note")  # `seqgan-env train --note` records it in the config
    return note if isinstance(note, str) else ""


def read_note(run_path: str | os.PathLike) -> str:
    """The run's note: ``note.txt`` if present, else config.json's ``"note"`` (top level or in the config), else ``""``."""
    path = _run_path(run_path)
    return _note(path, _info(path))


# ----------------------------------------------------------------------------
# summaries and listing


def _get(d: dict[str, Any], dotted: str) -> Any:
    node: Any = d
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def summarize_run(run_path: str | os.PathLike) -> dict[str, Any]:
    """One run as a flat dict (the row of :func:`list_runs`).

    Keys: path, name, created (ISO time from config.json), status, agent, data (file
    basename), reward ("mode/transform"), batch_size, lr, gamma (REINFORCE's, or PPO's
    for PPO runs), d_every, seed, step (last logged), updates (planned), reward_mean and
    d_loss (final per-update values), bigram_nll and uniqueness (latest evaluation), note.
    Values that a run lacks are None.
    """
    path = _run_path(run_path)
    info = _info(path)
    cfg = info.get("config") or {}
    rows = _open(path, info).read_metrics()
    agent = cfg.get("agent")
    knobs = "ppo" if agent in ("ppo", "maskable_ppo") else "reinforce"
    data_path = (info.get("data") or {}).get("path") or _get(cfg, "data.path")
    mode, transform = _get(cfg, "reward.mode"), _get(cfg, "reward.transform")
    return {
        "path": str(path),
        "name": cfg.get("name") or path.name,
        "created": info.get("created"),
        "status": _status(path, info, rows),
        "agent": agent,
        "data": os.path.basename(data_path) if isinstance(data_path, str) else None,
        "reward": f"{mode}/{transform}" if mode or transform else None,
        "batch_size": _get(cfg, f"{knobs}.batch_size"),
        "lr": _get(cfg, f"{knobs}.lr"),
        "gamma": _get(cfg, f"{knobs}.gamma"),
        "d_every": _get(cfg, "d_updates.every"),
        "seed": info.get("seed", cfg.get("seed")),
        "step": rows[-1]["step"] if rows else None,
        "updates": _get(cfg, "schedule.updates"),
        "reward_mean": _final(rows, "reward_mean"),
        "d_loss": _final(rows, "discriminator/loss"),
        "bigram_nll": _final(rows, "eval/bigram_nll"),
        "uniqueness": _final(rows, "eval/uniqueness"),
        "note": _note(path, info),
    }


def list_runs(root: str | os.PathLike = "runs") -> list[dict[str, Any]]:
    """:func:`summarize_run` of every run directory directly under ``root``, oldest first.

    A missing ``root`` gives ``[]``.  A run whose files cannot be read is listed with
    status ``unreadable`` and the reason under ``error`` rather than failing the list.
    """
    root = Path(root)
    if not root.is_dir():
        return []
    rows = []
    for p in sorted(root.iterdir()):
        if not (p / CONFIG_FILE).is_file():
            continue
        try:
            rows.append(summarize_run(p))
        except ValueError as e:
            rows.append({"path": str(p), "name": p.name, "created": None, "status": "unreadable", "error": str(e)})
    return sorted(rows, key=lambda r: (r.get("created") or "", r["path"]))


_TABLE_COLUMNS = (
    ("name", "name"), ("created", "created"), ("status", "status"), ("agent", "agent"), ("data", "data"),
    ("reward", "reward"), ("batch_size", "bs"), ("lr", "lr"), ("gamma", "gamma"), ("d_every", "d_every"),
    ("seed", "seed"), ("step", "step"), ("reward_mean", "reward"), ("d_loss", "d_loss"),
    ("bigram_nll", "nll"), ("uniqueness", "uniq"), ("note", "note"),
)


def _cell(key: str, value: Any, note_width: int) -> str:
    if value is None:
        return "-"
    if key == "created" and isinstance(value, str):
        try:
            return datetime.fromisoformat(value).astimezone().strftime("%Y-%m-%d %H:%M")
        except ValueError:
            return value
    if key == "note":
        text = " ".join(str(value).split())
        return text if len(text) <= note_width else text[: note_width - 3] + "..."
    if isinstance(value, float):
        return f"{value:.3g}" if key in ("lr", "gamma") else f"{value:.3f}"
    return str(value)


def format_runs_table(rows: Sequence[dict[str, Any]], note_width: int = 40) -> str:
    """Fixed-width text table of :func:`list_runs` rows (one header line, one line per run)."""
    if not rows:
        return "(no runs)"
    header = [title for _, title in _TABLE_COLUMNS]
    body = [[_cell(key, row.get(key), note_width) for key, _ in _TABLE_COLUMNS] for row in rows]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in [header, *body])


# ----------------------------------------------------------------------------
# diffs


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts as one level, keys joined with ``"."`` (``{"a": {"b": 1}}`` → ``{"a.b": 1}``).

    Lists and other values are kept as they are; an empty dict is kept as a value.
    """
    out: dict[str, Any] = {}
    for key, value in d.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict) and value:
            out.update(flatten(value, name))
        else:
            out[name] = value
    return out


def _dict_diff(a: dict[str, Any], b: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    fa, fb = flatten(a), flatten(b)
    out = {}
    for key in sorted(set(fa) | set(fb)):
        va, vb = fa.get(key, MISSING), fb.get(key, MISSING)
        if va is MISSING or vb is MISSING or va != vb or isinstance(va, bool) != isinstance(vb, bool):
            out[key] = (va, vb)  # True == 1 in Python, but not in a config
    return out


def diff_runs(a: str | os.PathLike, b: str | os.PathLike) -> dict[str, Any]:
    """What differs between runs ``a`` and ``b``.

    Returns ``{"a", "b"}`` (paths) and, each as ``{key: (a_value, b_value)}`` holding only
    differing keys (:data:`MISSING` for a key that one run lacks):
    ``config`` (flattened resolved config), ``data`` (data file path and sha256),
    ``code`` (environment: git_commit, git_dirty, library versions, platform);
    plus ``notes`` = ``(note_a, note_b)`` always.
    """
    pa, pb = _run_path(a), _run_path(b)
    ia, ib = _info(pa), _info(pb)
    check_run_info(pa, ia)
    check_run_info(pb, ib)
    return {
        "a": str(pa),
        "b": str(pb),
        "config": _dict_diff(ia.get("config") or {}, ib.get("config") or {}),
        "data": _dict_diff(ia.get("data") or {}, ib.get("data") or {}),
        "code": _dict_diff(ia.get("environment") or {}, ib.get("environment") or {}),
        "notes": (_note(pa, ia), _note(pb, ib)),
    }


def format_diff(d: dict[str, Any]) -> str:
    """Human-readable :func:`diff_runs` result: one ``key: a -> b`` line per difference."""
    lines = [f"a: {d['a']}", f"b: {d['b']}"]
    for section in ("config", "data", "code"):
        diffs = d.get(section) or {}
        lines.append(f"{section}: " + ("identical" if not diffs else f"{len(diffs)} difference(s)"))
        width = max((len(k) for k in diffs), default=0)
        for key, (va, vb) in diffs.items():
            lines.append(f"  {key.ljust(width)}  {va!r} -> {vb!r}")
    na, nb = d.get("notes", ("", ""))
    lines.append("notes:")
    lines.append(f"  a: {na or '-'}")
    lines.append(f"  b: {nb or '-'}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------
# seed groups


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, (bool, str)):
        return None
    x = float(value)
    return x if math.isfinite(x) else None


def summarize_seeds(run_paths: Iterable[str | os.PathLike],
                    metrics: Sequence[str] = DEFAULT_SEED_METRICS) -> dict[str, Any]:
    """Aggregate the final value of each metric over runs that differ only by seed.

    Per metric: ``values`` (the final value of each run, None where the run lacks it or it
    was non-finite), and over the finite values: ``mean``, ``std`` (population std,
    ddof=0), ``min``, ``max``, ``n`` (how many runs contributed); None when ``n == 0``.
    Returns ``{"runs": [paths], "seeds": [seed per run], "std_ddof": 0, "metrics": {...}}``.
    """
    paths = [_run_path(p) for p in run_paths]
    if not paths:
        raise ValueError("run_paths is empty; pass the run directories of one seed group.")
    if isinstance(metrics, str):
        metrics = (metrics,)
    infos = [_info(p) for p in paths]
    rows = [_open(p, i).read_metrics() for p, i in zip(paths, infos, strict=True)]
    out: dict[str, Any] = {}
    for key in metrics:
        values = [_number(_final(r, key)) for r in rows]
        finite = np.array([v for v in values if v is not None], dtype=float)
        stats: dict[str, Any] = {"values": values, "n": int(finite.size)}
        if finite.size:
            stats.update(mean=float(finite.mean()), std=float(finite.std(ddof=0)),
                         min=float(finite.min()), max=float(finite.max()))
        else:
            stats.update(mean=None, std=None, min=None, max=None)
        out[key] = stats
    return {
        "runs": [str(p) for p in paths],
        "seeds": [i.get("seed", (i.get("config") or {}).get("seed")) for i in infos],
        "std_ddof": 0,
        "metrics": out,
    }


def write_group_summary(group_dir: str | os.PathLike, run_paths: Iterable[str | os.PathLike],
                        metrics: Sequence[str] = DEFAULT_SEED_METRICS) -> Path:
    """Write :func:`summarize_seeds` (plus ``created``) to ``<group_dir>/summary.json`` atomically."""
    summary = summarize_seeds(run_paths, metrics)
    summary["created"] = datetime.now(timezone.utc).isoformat()
    group_dir = Path(group_dir)
    group_dir.mkdir(parents=True, exist_ok=True)
    target = group_dir / SUMMARY_FILE
    atomic_write_text(target, json.dumps(summary, indent=2, allow_nan=False) + "\n")
    return target


def format_seed_summary(summary: dict[str, Any]) -> str:
    """One line per metric: ``metric  mean ± std  [min, max]  n=k`` (std: population, ddof=0)."""
    stats = summary.get("metrics") or {}
    width = max((len(k) for k in stats), default=6)
    header = f"{len(summary.get('runs', []))} run(s), seeds {summary.get('seeds')}; std is the population std (ddof=0)"
    lines = [header]
    for key, s in stats.items():
        if not s.get("n"):
            lines.append(f"{key.ljust(width)}  -  (no run logged it)")
            continue
        lines.append(f"{key.ljust(width)}  {s['mean']:.4f} ± {s['std']:.4f}  [{s['min']:.4f}, {s['max']:.4f}]  "
                     f"n={s['n']}")
    return "\n".join(lines)
