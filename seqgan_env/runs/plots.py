"""PNG plots of a run's metrics.jsonl, and of a multi-seed group with a mean ± std band.

`plot_run` writes reward.png (reward mean with a ± std band), reward_sources.png (each
reward source's ``reward/<name>`` beside the total, when the run logged more than one),
discriminator.png (loss, accuracy on real and fake, D updates per phase when they vary),
kl.png (when the run has a KL term) and eval.png (one panel per eval metric, ``d_auc`` included)
into ``<run>/plots/``. `plot_group` overlays the seeds of a `train --seeds` group: each
seed a thin line, their mean a thick one, mean ± std (population) as a band.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np


def _metrics(run: Path) -> list[dict[str, Any]]:
    path = run / "metrics.jsonl"
    if not path.is_file():
        raise ValueError(f"'{run}' has no metrics.jsonl; fix: pass a run directory made by `seqgan-env train`.")
    from seqgan_env.runs.experiments import read_metrics

    return read_metrics(run)  # the run's own reader: drops only a last line cut short by a crash, loud on others


def _series(rows: Sequence[dict[str, Any]], key: str) -> tuple[np.ndarray, np.ndarray]:
    pts = [(r["step"], r[key]) for r in rows if isinstance(r.get(key), (int, float)) and math.isfinite(r[key])]
    if not pts:
        return np.array([]), np.array([])
    steps, values = zip(*pts)
    return np.asarray(steps, dtype=float), np.asarray(values, dtype=float)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


def plot_run(run_path: str | Path, out_dir: str | Path | None = None) -> list[Path]:
    """Write the run's PNGs; returns their paths."""
    plt = _pyplot()
    run = Path(run_path)
    rows = _metrics(run)
    out = Path(out_dir) if out_dir else run / "plots"
    out.mkdir(parents=True, exist_ok=True)
    written = []

    fig, ax = plt.subplots(figsize=(7, 4))
    x, mean = _series(rows, "reward_mean")
    _, std = _series(rows, "reward_std")
    if len(x):
        ax.plot(x, mean, label="episode reward (mean)")
        if len(std) == len(mean):
            ax.fill_between(x, mean - std, mean + std, alpha=0.2, label="± std")
    ax.set(xlabel="generator update", ylabel="reward", title=f"reward: {run.name}")
    ax.legend(loc="best")
    written.append(save_figure(fig, out / "reward.png"))

    sources = sorted({k for r in rows for k in r if k.startswith("reward/")})
    if len(sources) > 1:  # each source's weighted episode total (reward/kl: the agent's KL term as a reward);
        # one source alone is reward.png again
        fig, ax = plt.subplots(figsize=(7, 4))
        for key in sources:
            ax.plot(*_series(rows, key), label=key)
        ax.plot(*_series(rows, "reward_mean"), color="black", linestyle="--", linewidth=1, label="reward_mean (env)")
        ax.set(xlabel="generator update", ylabel="weighted episode reward", title=f"reward sources: {run.name}")
        ax.legend(loc="best")
        written.append(save_figure(fig, out / "reward_sources.png"))

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for key, label in (("discriminator/loss", "loss"),):
        x, y = _series(rows, key)
        ax1.plot(x, y, label=label)
    for key, label in (("discriminator/acc_real", "accuracy on real"), ("discriminator/acc_fake", "accuracy on fake")):
        x, y = _series(rows, key)
        ax2.plot(x, y, label=label)
    ax1.set(xlabel="generator update", title="discriminator loss")
    ax2.set(xlabel="generator update", title="discriminator accuracy", ylim=(-0.05, 1.05))
    ax2.legend(loc="best")
    x, y = _series(rows, "discriminator/phase_steps")
    if len(x) and (y != y[0]).any():  # train-until-accuracy: how many D updates each phase took
        ax3 = ax1.twinx()
        ax3.plot(x, y, color="grey", linewidth=0.8, label="D updates per phase")
        ax3.set(ylabel="D updates per phase")
    written.append(save_figure(fig, out / "discriminator.png"))

    x, kl = _series(rows, "kl")
    if len(x):  # the KL term to the reference generator, and its (adapted) coefficient
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
        ax1.plot(x, kl)
        ax1.set(xlabel="generator update", title="KL(policy || reference) per step")
        ax2.plot(*_series(rows, "kl_coef"))
        ax2.set(xlabel="generator update", title="kl_coef")
        written.append(save_figure(fig, out / "kl.png"))

    keys = sorted({k for r in rows for k in r if k.startswith("eval/") and "untrained" not in k and "pretrained" not in k})
    if keys:
        cols = min(3, len(keys))
        nrows = math.ceil(len(keys) / cols)
        fig, axes = plt.subplots(nrows, cols, figsize=(4 * cols, 3 * nrows), squeeze=False)
        for ax, key in zip(axes.flat, keys):
            x, y = _series(rows, key)
            ax.plot(x, y, marker="o")
            ax.set(title=key[len("eval/"):], xlabel="generator update")
        for ax in list(axes.flat)[len(keys):]:
            ax.axis("off")
        written.append(save_figure(fig, out / "eval.png"))
    return written


def plot_group(group_path: str | Path, keys: Sequence[str] = ("reward_mean", "eval/bigram_nll")) -> list[Path]:
    """Overlay the seeds of a group directory (made by `train --seeds`) with a mean ± std band."""
    plt = _pyplot()
    group = Path(group_path)
    runs = sorted(p for p in group.iterdir() if (p / "metrics.jsonl").is_file())
    if not runs:
        raise ValueError(f"'{group}' holds no runs; fix: pass a group directory made by `seqgan-env train --seeds`.")
    out = group / "plots"
    out.mkdir(exist_ok=True)
    written = []
    for key in keys:
        fig, ax = plt.subplots(figsize=(7, 4))
        per_run = {}
        for run in runs:
            x, y = _series(_metrics(run), key)
            if len(x):
                ax.plot(x, y, linewidth=0.8, alpha=0.6, label=run.name)
                per_run[run.name] = dict(zip(x.tolist(), y.tolist()))
        shared = sorted(set.intersection(*(set(d) for d in per_run.values()))) if per_run else []
        if shared:
            values = np.array([[d[s] for s in shared] for d in per_run.values()])  # (seeds, steps)
            mean, std = values.mean(axis=0), values.std(axis=0)
            ax.plot(shared, mean, linewidth=2.5, color="black", label=f"mean of {len(per_run)} seeds")
            ax.fill_between(shared, mean - std, mean + std, color="gray", alpha=0.3, label="± std")
        ax.set(xlabel="generator update", title=f"{key}: {group.name}")
        ax.legend(loc="best", fontsize=7)
        written.append(save_figure(fig, out / f"{key.replace('/', '_')}.png"))
    return written


def save_figure(fig, path: str | Path, dpi: int = 100) -> Path:
    """Lay out ``fig``, write it to ``path`` as PNG atomically (a reader never sees half a PNG) and close it.

    Args:
        fig: a matplotlib figure.
        path: the PNG's path; its folder is created if missing.
        dpi: resolution.

    Returns:
        ``path`` as a Path.
    """
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{path.name}")
    fig.tight_layout()
    fig.savefig(tmp, dpi=dpi, format="png")
    plt.close(fig)
    tmp.replace(path)
    return path
