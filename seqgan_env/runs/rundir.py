"""Run directories: everything needed to reproduce or resume an experiment.

Layout of one run (``RunDir.create`` makes ``<root>/<YYYYmmdd-HHMMSS>-<name>/``)::

    config.json            {"config", "seed", "environment", "data", "created", "format_version"}
    metrics.jsonl          one JSON object per line: {"step", "wall_time", **metrics}
    tb/                    TensorBoard event files (scalars and text), created lazily
    samples/step_000123.txt
    checkpoints/step_000123/<group>.safetensors + meta.json
    checkpoints/latest     text file naming the newest complete checkpoint directory

Contract
--------
* No pickle anywhere: tensors go to safetensors, everything else to JSON.
* Every file is written atomically (temp file in the same directory + fsync +
  ``os.replace``); a failed write removes its temp file and leaves any existing
  file intact.  A checkpoint directory is assembled in a temp directory and
  renamed into place, so a checkpoint is either complete or absent.
* Every unreadable file raises ``ValueError`` naming the file and the fix.
* Optimizer / scheduler states are split into ``(tensors, meta)`` by ``utils.codec``;
  ``rng_state`` does the same for the global RNGs.
"""

from __future__ import annotations

import json
import math
import os
import platform
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seqgan_env.models.lstm import MODEL_TYPE as LSTM_MODEL_TYPE, lstm_from_export
from seqgan_env.utils.atomic import TMP_PREFIX, atomic_save_tensors, atomic_write_text, fsync_dir, umask_mode
from seqgan_env.utils.codec import load_tensors, read_json
from seqgan_env.utils.pidlock import PidLock
from seqgan_env.utils.validation import check_int

FORMAT_VERSION = 1  # of the run directory's files
CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"
TB_DIR = "tb"
SAMPLES_DIR = "samples"
CHECKPOINTS_DIR = "checkpoints"
LATEST_FILE = "latest"
CHECKPOINT_META_FILE = "meta.json"

_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")
_STEP_DIR_RE = re.compile(r"^step_(\d+)$")

# ----------------------------------------------------------------------------
# the generator export (``generator/``: save_pretrained's config.json + model.safetensors)


def save_generator_export(model: Any, directory: str | os.PathLike) -> Path:
    """``model.save_pretrained(directory)`` without transformers' progress bar; returns the directory."""
    from seqgan_env.models.networks import quiet_transformers

    with quiet_transformers():
        model.save_pretrained(directory)
    for p in Path(directory).iterdir():  # safetensors writes its file 0600: give it the umask's mode, as the rest
        if p.is_file():
            os.chmod(p, umask_mode())
    return Path(directory)


def load_generator_export(directory: str | os.PathLike, fix: str | None = None) -> Any:
    """The causal LM that :func:`save_generator_export` wrote, read with the loud loaders.

    Our tiny Llamas come back as ``LlamaForCausalLM``, the LSTM family (``model_type`` ``seqgan_lstm``)
    as ``seqgan_env.models.lstm.LSTMGenerator``; a run started from ``generator.pretrained``
    exports that model's architecture, built with ``AutoModelForCausalLM.from_config``.

    Not ``from_pretrained``: that one ends a truncated file with a traceback and draws a
    progress bar. Any missing, truncated or mismatched file → ValueError naming it and ``fix``.
    The global torch RNG is left as it was (building the model draws initial weights).
    """
    import transformers

    from seqgan_env.models.networks import quiet_transformers

    directory = Path(directory)
    if fix is None:
        fix = (f"fix: delete {directory} (sample and eval then read the generator from the run's latest "
               f"checkpoint) or train the run again")
    config_path = directory / CONFIG_FILE
    raw = read_json(config_path, fix)
    model_type = raw.get("model_type")
    if not isinstance(model_type, str) or not model_type:
        raise ValueError(f"{config_path} has model_type={model_type!r}, expected a transformers model type such as "
                         f"'llama'; {fix}.")
    index_path = directory / "model.safetensors.index.json"
    if index_path.is_file():  # save_pretrained shards large models
        weight_map = read_json(index_path, fix).get("weight_map")
        if not isinstance(weight_map, dict):
            raise ValueError(f"{index_path} has no 'weight_map' object; {fix}.")
        shards = [directory / name for name in sorted(set(map(str, weight_map.values())))]
    else:
        shards = [directory / "model.safetensors"]
    weights: dict[str, torch.Tensor] = {}
    for shard in shards:
        weights.update(load_tensors(shard, fix))
    if model_type == LSTM_MODEL_TYPE:  # SeqGAN's LSTM family (seqgan_env.models.lstm), not a transformers model
        return lstm_from_export(raw, weights, str(config_path), fix)
    with quiet_transformers():
        try:
            with torch.random.fork_rng(devices=[]):
                if model_type == "llama":
                    config = transformers.LlamaConfig.from_dict(raw)
                    model = transformers.LlamaForCausalLM(config)
                else:
                    config = transformers.AutoConfig.for_model(**raw)
                    model = transformers.AutoModelForCausalLM.from_config(config)
        except Exception as e:  # a config.json whose values transformers refuses
            reason = " ".join(str(e).split())  # one line
            what = "Llama" if model_type == "llama" else f"causal LM of model_type {model_type!r}"
            raise ValueError(f"{config_path} does not describe a usable {what} ({reason}); {fix}.") from None
    dtypes = {t.dtype for t in weights.values() if t.is_floating_point()}
    if len(dtypes) == 1:
        model.to(dtypes.pop())  # as saved (from_pretrained keeps the saved dtype too)
    try:
        missing, unexpected = model.load_state_dict(weights, strict=False)
    except RuntimeError as e:  # shape mismatch between config.json and the weights: name the first one
        lines = [line.strip() for line in str(e).splitlines() if "size mismatch" in line] or [str(e).splitlines()[0]]
        more = f" and {len(lines) - 1} more" if len(lines) > 1 else ""
        raise ValueError(f"the weights in {shards[0]} do not match {config_path} ({lines[0]}{more}); {fix}.") from None
    params = dict(model.named_parameters(remove_duplicate=False))
    loaded = {params[k].data_ptr() for k in weights if k in params}
    # A tied weight (lm_head = embeddings) is saved once; its other name shares the loaded storage.
    missing = [k for k in missing if k not in params or params[k].data_ptr() not in loaded]
    if missing or unexpected:
        raise ValueError(f"the weights in {shards[0]} do not match {config_path} (missing {missing[:3]}, "
                         f"unexpected {unexpected[:3]}); {fix}.")
    return model.eval()


# ----------------------------------------------------------------------------
# RNG state


def rng_state() -> tuple[dict[str, torch.Tensor], dict]:
    """Capture every global RNG as ``(tensors, meta)``.

    tensors: ``torch_cpu`` (ByteTensor) and ``cuda_<i>`` per visible CUDA device;
    meta (JSON-able): ``numpy`` (the global MT19937 state as lists) and
    ``python`` (``random.getstate()`` as lists), ``cuda_devices`` (count).
    """
    tensors = {"torch_cpu": torch.get_rng_state()}
    n_cuda = 0
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda_{i}"] = s
            n_cuda += 1
    name, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    meta = {
        "kind": "rng",
        "numpy": {"bit_generator": str(name), "keys": [int(k) for k in keys], "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": {"version": int(version), "internal": [int(x) for x in internal],
                   "gauss_next": None if gauss_next is None else float(gauss_next)},
        "cuda_devices": n_cuda,
    }
    return tensors, meta


def set_rng_state(tensors: dict[str, torch.Tensor], meta: dict) -> None:
    """Restore the RNGs captured by :func:`rng_state`.

    CUDA states are restored for ``min(saved, visible)`` devices; a mismatch in
    device count only warns (the run then is not bit-reproducible on GPU).
    """
    fix = "pass the (tensors, meta) pair produced by rng_state()"
    if not isinstance(meta, dict) or meta.get("kind") != "rng" or "torch_cpu" not in tensors:
        raise ValueError(f"set_rng_state: not an RNG state (missing 'torch_cpu' tensor or meta kind 'rng'); {fix}.")
    try:
        npm, pym = meta["numpy"], meta["python"]
        np_state = (npm["bit_generator"], np.asarray(npm["keys"], dtype=np.uint32), int(npm["pos"]),
                    int(npm["has_gauss"]), float(npm["cached_gaussian"]))
        py_state = (int(pym["version"]), tuple(int(x) for x in pym["internal"]),
                    None if pym["gauss_next"] is None else float(pym["gauss_next"]))
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"set_rng_state: malformed meta ({e!r}); {fix}.") from e
    torch.set_rng_state(tensors["torch_cpu"].to(dtype=torch.uint8, device="cpu"))
    np.random.set_state(np_state)
    random.setstate(py_state)
    saved = sorted((int(k.split("_", 1)[1]), v) for k, v in tensors.items() if re.fullmatch(r"cuda_\d+", k))
    visible = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if saved and visible:
        for i, s in saved[:visible]:
            if i < visible:
                torch.cuda.set_rng_state(s.to(dtype=torch.uint8, device="cpu"), device=i)
    if len(saved) != visible and (saved or visible):
        warnings.warn(f"RNG state holds {len(saved)} CUDA generator(s) but {visible} CUDA device(s) are visible; "
                      f"restored min(saved, visible). GPU draws will differ from the original run.", stacklevel=2)


# ----------------------------------------------------------------------------
# environment


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        out = subprocess.run(["git", "--no-optional-locks", *args], cwd=cwd, capture_output=True, text=True,
                             timeout=10, env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"})
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


def _version(module: str) -> str | None:
    try:
        mod = __import__(module)
    except Exception:
        return None
    return getattr(mod, "__version__", None)


def environment_info() -> dict[str, Any]:
    """Python/platform/library versions and the project's git commit; never raises.

    ``git_commit`` is ``git rev-parse HEAD`` of the checkout the package is imported from (None when
    git or the repository is unavailable, and for an installed package: a repository that merely
    holds the environment, e.g. a ``.venv`` inside a checkout, is not the package's source);
    ``git_dirty`` is True when tracked files differ from HEAD or non-ignored untracked files exist
    (None when unknown).  Git is run read-only (``--no-optional-locks``).
    """
    info: dict[str, Any] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch": torch.__version__,
        "numpy": np.__version__,
    }
    for mod in ("transformers", "gymnasium", "stable_baselines3", "safetensors"):
        info[mod] = _version(mod)
    info["cuda"] = torch.version.cuda if torch.cuda.is_available() else None
    head = None
    cwd = Path(__file__).resolve().parents[2]  # the checkout's root when run from source, site-packages when installed
    top = _git(["rev-parse", "--show-toplevel"], cwd)
    if top and Path(top.strip()).resolve() == cwd:  # an installed copy inside some other repository is not its code
        head = _git(["rev-parse", "HEAD"], cwd)
    info["git_commit"] = head.strip() if head else None
    status = _git(["status", "--porcelain"], cwd) if head else None
    info["git_dirty"] = None if status is None else bool(status.strip())
    return info


# ----------------------------------------------------------------------------
# metrics helpers


def _clean_metric(key: str, value: Any) -> Any:
    """JSON value of one metric: numbers (non-finite → None), str, bool, None."""
    if torch.is_tensor(value) or isinstance(value, np.ndarray):
        size = value.numel() if torch.is_tensor(value) else value.size
        if size != 1:
            raise ValueError(f"metric {key!r} is an array of shape {tuple(value.shape)}; log scalars only "
                             f"(e.g. value.mean().item()).")
        value = value.item()
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    raise ValueError(f"metric {key!r} has type {type(value).__name__}; metrics must be numbers, str, bool or None.")


def _step_dir_name(step: int) -> str:
    return f"step_{step:06d}"


def _check_step(step: Any) -> int:
    check_int("step", step, 0, "e.g. the number of env steps", numpy=True)
    return int(step)


# ----------------------------------------------------------------------------
# the run directory


def check_run_info(path: str | os.PathLike, info: Any) -> None:
    """Refuse a directory whose config.json is not a run's: a model directory (a Hugging Face config, e.g. a
    run's own ``generator/`` export), another file, or a run of another format version."""
    path = Path(path)
    if isinstance(info, dict) and "format_version" not in info and ("model_type" in info or "architectures" in info):
        hint = f" (e.g. '{path.parent}')" if (path.parent / CONFIG_FILE).is_file() else ""
        raise ValueError(f"'{path}' is a model directory (its {CONFIG_FILE} is a model config, model_type="
                         f"{info.get('model_type')!r}), not a run directory; fix: pass the run directory made by "
                         f"`seqgan-env train` that holds it{hint}.")
    if not isinstance(info, dict) or "format_version" not in info:
        raise ValueError(f"'{path}' is not a run directory: its {CONFIG_FILE} has no format_version; fix: pass a run "
                         f"directory made by `seqgan-env train` (e.g. runs/<YYYYmmdd-HHMMSS>-<name>).")
    if info.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path / CONFIG_FILE} has format_version={info.get('format_version')!r} but this "
                         f"code reads format_version={FORMAT_VERSION}; fix: use the seqgan-env version that made "
                         f"the run, or start a new run with `seqgan-env train`.")


class RunDir:
    """One experiment's directory (layout in the module docstring).

    Build with :meth:`create` (new run) or :meth:`open` (resume).  Attributes:
    ``path``, ``info`` (the content of config.json), ``config`` (``info["config"]``),
    ``keep_last``.  Use as a context manager or call :meth:`close`.
    """

    def __init__(self, path: str | os.PathLike, info: dict[str, Any], keep_last: int = 3,
                 tensorboard: bool = True) -> None:
        check_int("keep_last", keep_last, 1, "use 3")
        self.path = Path(path)
        self.info = info
        self.config: dict[str, Any] = info.get("config", {})
        self.keep_last = keep_last
        self.tensorboard = bool(tensorboard)
        self._metrics_fh = None
        self._writer = None
        self._purge_step: int | None = None

    # -- construction ----------------------------------------------------------

    @classmethod
    def create(cls, root: str | os.PathLike = "runs", name: str = "run", config: dict[str, Any] | None = None,
               data_path: str | os.PathLike | None = None, keep_last: int = 3, tensorboard: bool = True,
               extra: dict[str, Any] | None = None) -> "RunDir":
        """Make ``<root>/<YYYYmmdd-HHMMSS>-<name>[-k]/`` and write its config.json.

        ``config`` must be JSON-able (its ``"seed"`` is copied to the top level);
        ``data_path`` (if given) is recorded with its SHA-256; ``extra`` adds top-level
        JSON-able blocks (e.g. ``{"distributed": {...}}``) beside the standard ones.
        """
        if not isinstance(name, str) or not _NAME_RE.match(name) or name in (".", ".."):
            raise ValueError(f"name={name!r} is invalid: it must be non-empty and use only letters, digits, "
                             f"'_', '.', '-'; pass e.g. name='seqgan'.")
        config = {} if config is None else config
        if not isinstance(config, dict):
            raise ValueError(f"config must be a dict, got {type(config).__name__}; pass e.g. "
                             f"dataclasses.asdict(cfg).")
        data = {"path": None, "sha256": None}
        if data_path is not None:
            if not os.path.isfile(data_path):
                raise ValueError(f"data_path={os.fspath(data_path)!r} is not a file; pass the data file the run "
                                 f"trains on, or None.")
            from seqgan_env.data.text import file_sha256
            data = {"path": os.path.abspath(data_path), "sha256": file_sha256(data_path)}
        info = {
            "config": config,
            "seed": config.get("seed"),
            "environment": environment_info(),
            "data": data,
            "created": datetime.now(timezone.utc).isoformat(),
            "format_version": FORMAT_VERSION,
        }
        for key, value in (extra or {}).items():
            if key in info:
                raise ValueError(f"extra block {key!r} would overwrite a standard config.json field; use another "
                                 f"name than {sorted(info)}.")
            info[key] = value
        try:
            text = json.dumps(info, indent=2, allow_nan=False) + "\n"
        except (TypeError, ValueError) as e:
            raise ValueError(f"config is not JSON-able ({e}); pass only numbers, str, bool, None, lists and "
                             f"dicts (e.g. dataclasses.asdict(cfg) with tuples/paths converted).") from e
        root = Path(root)
        root.mkdir(parents=True, exist_ok=True)
        base = f"{time.strftime('%Y%m%d-%H%M%S')}-{name}"
        path, k = root / base, 1
        while True:
            try:
                path.mkdir()
                break
            except FileExistsError:
                path, k = root / f"{base}-{k}", k + 1
        atomic_write_text(path / CONFIG_FILE, text)
        return cls(path, info, keep_last=keep_last, tensorboard=tensorboard)

    @classmethod
    def open(cls, path: str | os.PathLike, keep_last: int = 3, tensorboard: bool = True) -> "RunDir":
        """Open an existing run for resuming; ValueError naming the path and the fix if it is not one."""
        path = Path(path)
        if not path.is_dir():
            raise ValueError(f"run directory {path} does not exist; fix: pass the path of a run made by "
                             f"`seqgan-env train` (RunDir.create()), or start a new run.")
        fix = "this is not a usable run directory; fix: pass a run made by `seqgan-env train` (RunDir.create())"
        info = read_json(path / CONFIG_FILE, fix)
        check_run_info(path, info)
        if not isinstance(info.get("config"), dict):
            raise ValueError(f"{path / CONFIG_FILE} has no 'config' object; {fix}.")
        run = cls(path, info, keep_last=keep_last, tensorboard=tensorboard)
        ckpts = path / CHECKPOINTS_DIR
        if ckpts.is_dir():  # leftovers of an interrupted save_checkpoint
            for p in ckpts.iterdir():
                if p.name.startswith(TMP_PREFIX):
                    shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
        return run

    # -- paths -----------------------------------------------------------------

    @property
    def metrics_path(self) -> Path:
        return self.path / METRICS_FILE

    @property
    def checkpoints_dir(self) -> Path:
        return self.path / CHECKPOINTS_DIR

    @property
    def samples_dir(self) -> Path:
        return self.path / SAMPLES_DIR

    @property
    def tb_dir(self) -> Path:
        return self.path / TB_DIR

    # -- metrics ---------------------------------------------------------------

    def _tb(self):
        if not self.tensorboard:
            return None
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter
            self._writer = SummaryWriter(log_dir=str(self.tb_dir), purge_step=self._purge_step)
            self._purge_step = None
        return self._writer

    def log_metrics(self, step: int, metrics: dict[str, Any]) -> None:
        """Append ``{"step", "wall_time", **metrics}`` as one flushed JSON line; numbers also go to TensorBoard.

        Values: numbers (non-finite floats are written as null), str, bool, None,
        or one-element tensors/arrays.  ``step``/``wall_time`` are reserved keys.
        """
        step = _check_step(step)
        if not isinstance(metrics, dict):
            raise ValueError(f"metrics must be a dict[str, scalar], got {type(metrics).__name__}.")
        row: dict[str, Any] = {"step": step, "wall_time": time.time()}
        raw: dict[str, float] = {}
        for k, v in metrics.items():
            if not isinstance(k, str) or k in ("step", "wall_time"):
                raise ValueError(f"metric key {k!r} is invalid: keys must be str and not 'step'/'wall_time'; "
                                 f"rename it.")
            row[k] = _clean_metric(k, v)
            if not isinstance(v, (str, bool)) and v is not None:
                raw[k] = float(v.item() if hasattr(v, "item") else v)
        line = json.dumps(row, allow_nan=False) + "\n"
        if self._metrics_fh is None:
            self._metrics_fh = open(self.metrics_path, "a", encoding="utf-8")
        self._metrics_fh.write(line)
        self._metrics_fh.flush()
        writer = self._tb()
        if writer is not None:
            for k, v in raw.items():
                writer.add_scalar(k, v, step)

    def log_text(self, step: int, tag: str, text: str) -> None:
        """Write ``text`` under ``tag`` to TensorBoard (no-op when tensorboard=False)."""
        step = _check_step(step)
        writer = self._tb()
        if writer is not None:
            writer.add_text(tag, text, step)

    def write_samples(self, step: int, texts: list[str]) -> Path:
        """Write generated texts, one per line, to ``samples/step_000123.txt`` (atomically); return the path."""
        step = _check_step(step)
        if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
            raise ValueError("texts must be a list of str (one generated sequence each).")
        self.samples_dir.mkdir(exist_ok=True)
        path = self.samples_dir / f"{_step_dir_name(step)}.txt"
        atomic_write_text(path, "".join(t + "\n" for t in texts))
        return path

    def _close_metrics(self) -> None:
        if self._metrics_fh is not None:
            self._metrics_fh.close()
            self._metrics_fh = None

    def _metric_lines(self) -> list[tuple[str, dict]]:
        """(raw line, parsed row) per line; an unterminated unparsable last line (interrupted write) is dropped."""
        if not self.metrics_path.exists():
            return []
        if self._metrics_fh is not None:
            self._metrics_fh.flush()
        with open(self.metrics_path, encoding="utf-8") as f:
            lines = f.read().split("\n")
        complete, tail = lines[:-1], lines[-1]  # tail == "" when the file ends with "\n"
        rows = []
        for i, line in enumerate(complete + ([tail] if tail else [])):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                if not isinstance(row, dict) or not isinstance(row.get("step"), int):
                    raise ValueError("not an object with an int 'step'")
            except ValueError as e:
                if i == len(complete):  # unterminated last line: a write cut short by a crash
                    break
                raise ValueError(f"corrupt line {i + 1} of {self.metrics_path} ({e}); delete that line or start "
                                 f"a new run.") from e
            rows.append((line, row))
        return rows

    def read_metrics(self) -> list[dict[str, Any]]:
        """All logged metric rows in order (nulls come back as None)."""
        return [row for _, row in self._metric_lines()]

    def truncate_metrics_after(self, step: int) -> int:
        """Drop metric rows with ``step`` > ``step`` (atomically); return how many were dropped.

        Call on resume with the checkpoint's step so that the resumed run's
        metrics.jsonl equals an uninterrupted run's.  TensorBoard events with a
        larger step are purged too (when the writer is next opened).
        """
        step = _check_step(step)
        self._close_metrics()
        rows = self._metric_lines()
        keep = [line for line, row in rows if row["step"] <= step]
        if self.metrics_path.exists():
            atomic_write_text(self.metrics_path, "".join(line + "\n" for line in keep))
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self._purge_step = step + 1
        return len(rows) - len(keep)

    # -- checkpoints -----------------------------------------------------------

    def _step_dirs(self) -> list[tuple[int, Path]]:
        if not self.checkpoints_dir.is_dir():
            return []
        out = []
        for p in self.checkpoints_dir.iterdir():
            m = _STEP_DIR_RE.match(p.name)
            if m and p.is_dir():
                out.append((int(m.group(1)), p))
        return sorted(out)

    def save_checkpoint(self, step: int, tensors: dict[str, dict[str, torch.Tensor]], meta: dict[str, Any]) -> Path:
        """Write ``checkpoints/step_000123/`` = one ``<group>.safetensors`` per group + ``meta.json``.

        The directory is assembled in a temp dir and renamed into place (an
        existing checkpoint of the same step is replaced), then
        ``checkpoints/latest`` is updated atomically and only the newest
        ``keep_last`` checkpoints are kept.  ``meta`` must be JSON-able; it is
        stored with ``"step"`` and ``"groups"`` added.  Returns the directory.
        """
        step = _check_step(step)
        if not isinstance(tensors, dict):
            raise ValueError("tensors must be a dict[group name, dict[str, Tensor]].")
        for group in tensors:
            if not isinstance(group, str) or not _NAME_RE.match(group) or group in (".", ".."):
                raise ValueError(f"checkpoint group name {group!r} is invalid: use letters, digits, '_', '.', '-' "
                                 f"(e.g. 'generator', 'discriminator_optim').")
        if not isinstance(meta, dict):
            raise ValueError(f"meta must be a dict, got {type(meta).__name__}.")
        full_meta = {**meta, "step": step, "groups": sorted(tensors), "format_version": FORMAT_VERSION}
        try:
            meta_text = json.dumps(full_meta, indent=2, allow_nan=False) + "\n"
        except (TypeError, ValueError) as e:
            raise ValueError(f"checkpoint meta is not JSON-able ({e}); store tensors in `tensors` (use "
                             f"flatten_optimizer_state / rng_state) and only plain values in meta.") from e
        self.checkpoints_dir.mkdir(exist_ok=True)
        final = self.checkpoints_dir / _step_dir_name(step)
        tmp = Path(tempfile.mkdtemp(dir=self.checkpoints_dir, prefix=TMP_PREFIX + final.name + "-"))
        trash = None
        try:
            os.chmod(tmp, umask_mode(directory=True))  # as mkdir would (mkdtemp makes it 0700)
            for group, group_tensors in tensors.items():
                atomic_save_tensors(tmp / f"{group}.safetensors", group_tensors)
            atomic_write_text(tmp / CHECKPOINT_META_FILE, meta_text)
            fsync_dir(tmp)
            if final.exists():
                trash = self.checkpoints_dir / f"{TMP_PREFIX}old-{final.name}-{os.getpid()}-{time.time_ns()}"
                os.rename(final, trash)
            os.rename(tmp, final)
        except BaseException:
            if trash is not None and trash.exists() and not final.exists():
                os.rename(trash, final)  # put the previous checkpoint of this step back
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        if trash is not None:
            shutil.rmtree(trash, ignore_errors=True)
        fsync_dir(self.checkpoints_dir)
        atomic_write_text(self.checkpoints_dir / LATEST_FILE, final.name + "\n")
        for _, p in self._step_dirs()[:-self.keep_last]:
            if p != final:
                shutil.rmtree(p, ignore_errors=True)
        return final

    def latest_checkpoint(self) -> Path | None:
        """The checkpoint named by ``checkpoints/latest``, else the newest complete one, else None."""
        latest = self.checkpoints_dir / LATEST_FILE
        if latest.is_file():
            name = latest.read_text(encoding="utf-8").strip()
            p = self.checkpoints_dir / name
            if _STEP_DIR_RE.match(name) and (p / CHECKPOINT_META_FILE).is_file():
                return p
        for _, p in reversed(self._step_dirs()):
            if (p / CHECKPOINT_META_FILE).is_file():
                return p
        return None

    def load_checkpoint(self, path: str | os.PathLike | None = None
                        ) -> tuple[dict[str, dict[str, torch.Tensor]], dict[str, Any]]:
        """Load ``(tensors_by_group, meta)`` from ``path`` (default: :meth:`latest_checkpoint`).

        Missing, truncated or corrupt files raise ValueError naming the file.
        """
        fix = "fix: resume from another checkpoint or start a new run"
        if path is None:
            path = self.latest_checkpoint()
            if path is None:
                raise ValueError(f"no checkpoint in {self.checkpoints_dir}; start a new run (or resume a run "
                                 f"that saved one).")
        path = Path(path)
        if not path.is_dir():
            raise ValueError(f"checkpoint directory {path} does not exist; {fix}.")
        meta = read_json(path / CHECKPOINT_META_FILE, fix)
        groups = meta.get("groups")
        if not isinstance(groups, list) or not isinstance(meta.get("step"), int) \
                or not all(isinstance(g, str) and _NAME_RE.match(g) for g in groups):
            raise ValueError(f"{path / CHECKPOINT_META_FILE} lacks a valid 'step' / 'groups'; {fix}.")
        tensors = {g: load_tensors(path / f"{g}.safetensors", fix) for g in groups}
        return tensors, meta

    # -- lifetime --------------------------------------------------------------

    def acquire_lock(self) -> None:
        """Claim the run for this process: a second trainer on the same directory is refused.

        The lock file holds the owner's pid; a lock whose process is gone (a crash or
        kill -9) is stale and taken over.
        """
        self._lock = PidLock(
            self.path / "lock",
            in_use=lambda pid: (f"run directory '{self.path}' is in use by process {pid}; fix: wait for it to "
                                f"finish or stop it, or train into a new run directory."),
            unlockable=f"could not lock run directory '{self.path}'; fix: remove '{self.path / 'lock'}' if no "
                       f"trainer uses it.",
        ).acquire()

    def release_lock(self) -> None:
        lock = getattr(self, "_lock", None)
        if lock is not None:
            lock.release()

    def close(self) -> None:
        """Close the metrics file and the TensorBoard writer, release the lock (safe to call twice)."""
        self._close_metrics()
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self.release_lock()

    def __enter__(self) -> "RunDir":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"
