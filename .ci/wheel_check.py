"""Checks an installed seqgan-env wheel, run by .ci/wheel_check.sh (`make wheel-check`).

Run it with the Python of a fresh venv holding only the wheel and its dependencies, from a directory
outside the checkout: it fails (non-zero exit, a message saying what is missing) when the package is
imported from a source tree instead of the install, when the wheel lacks its data, py.typed or
licence files, or when the env (gym.make, SB3 make_vec_env) or a tiny `seqgan-env train` fails.
"""

from __future__ import annotations

import importlib.metadata
import importlib.resources
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

DATA_FILES = ("README.md", "census_first_names.txt", "census_last_names.txt", "coco_captions_train.txt",
              "coco_captions_test.txt", "seqgan_oracle_lstm.npz")


def fail(msg: str) -> None:
    print(f"wheel check FAILED: {msg}", file=sys.stderr)
    sys.exit(1)


def check(cond: bool, msg: str) -> None:
    if not cond:
        fail(msg)


def check_install() -> None:
    import seqgan_env

    site = Path(sysconfig.get_paths()["purelib"]).resolve()
    where = Path(seqgan_env.__file__).resolve()
    check(site in where.parents, f"seqgan_env imported from {where}, not from the venv's site-packages {site}")
    dist = importlib.metadata.distribution("seqgan-env")
    check(dist.version == seqgan_env.__version__,
          f"installed version {dist.version} != seqgan_env.__version__ {seqgan_env.__version__}")
    names = {str(f) for f in dist.files or ()}
    for lic in ("LICENSE", "seqgan_env/datasets/README.md"):
        check(any(n.endswith(f".dist-info/licenses/{lic}") for n in names),
              f"{lic} is not in the wheel's .dist-info/licenses/ (setup.cfg license_files)")
    pkg = importlib.resources.files("seqgan_env")
    check((pkg / "py.typed").is_file(), "seqgan_env/py.typed is not in the wheel (setup.cfg package_data)")
    for name in DATA_FILES:
        res = pkg / "datasets" / name
        check(res.is_file() and len(res.read_bytes()) > 0,
              f"data file seqgan_env/datasets/{name} is not in the wheel (setup.cfg package_data)")
    from seqgan_env.data.text import COCO_TEST_PATH, COCO_TRAIN_PATH, DEFAULT_DATA_DIR, DEFAULT_DATA_PATH
    from seqgan_env.eval.oracle import DEFAULT_ORACLE_PATH

    for path in (DEFAULT_DATA_PATH, COCO_TRAIN_PATH, COCO_TEST_PATH, DEFAULT_ORACLE_PATH):
        check(path.is_file() and site in path.resolve().parents, f"{path} is not a file inside {site}")
    print(f"install: seqgan-env {dist.version} at {where.parent}; data in {DEFAULT_DATA_DIR}; "
          f"{len(DATA_FILES)} data files, py.typed, LICENSE and the data README in .dist-info")


def check_gym() -> None:
    import gymnasium as gym

    import seqgan_env

    env = gym.make(f"seqgan_env:{seqgan_env.ENV_ID}")
    obs, info = env.reset(seed=0)
    env.action_space.seed(0)
    steps, done, total = 0, False, 0.0
    while not done:
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        total += float(reward)
        steps += 1
        done = terminated or truncated
        check(steps <= 10_000, "gym.make env: no episode end after 10,000 steps")
    env.close()
    print(f"gym.make('seqgan_env:{seqgan_env.ENV_ID}'): one episode, {steps} steps, return {total:.3f}")


def check_sb3() -> None:
    import numpy as np
    from stable_baselines3.common.env_util import make_vec_env

    import seqgan_env

    vec = make_vec_env(f"seqgan_env:{seqgan_env.ENV_ID}", n_envs=2, seed=0)
    obs = vec.reset()
    ends = 0
    for _ in range(200):
        obs, rewards, dones, infos = vec.step(np.array([vec.action_space.sample() for _ in range(vec.num_envs)]))
        check(np.all(np.isfinite(rewards)), f"make_vec_env: non-finite rewards {rewards}")
        ends += int(np.sum(dones))
        if ends >= 2:
            break
    check(ends > 0, "make_vec_env: no episode ended in 200 steps")
    vec.close()
    print(f"make_vec_env('seqgan_env:{seqgan_env.ENV_ID}', n_envs=2): obs {np.asarray(obs).shape}, {ends} episode end(s)")


def check_train(tmp: Path) -> None:
    exe = shutil.which("seqgan-env", path=str(Path(sys.executable).parent))
    check(exe is not None, f"no seqgan-env console script next to {sys.executable}")
    out_dir = tmp / "runs"
    cmd = [exe, "train", "--updates", "2", "--pretrain-steps", "2", "--schedule.d-pretrain-steps", "2",
           "--schedule.eval-every", "1", "--schedule.eval-samples", "16", "--out-dir", str(out_dir), "--no-progress"]
    print("$", " ".join(cmd[1:]), flush=True)
    proc = subprocess.run(cmd, cwd=tmp, text=True, capture_output=True, timeout=600)
    print(proc.stdout[-2000:], proc.stderr[-2000:], sep="\n")
    check(proc.returncode == 0, f"seqgan-env train exited {proc.returncode}")
    runs = sorted(p for p in out_dir.iterdir() if (p / "config.json").is_file())
    check(len(runs) == 1, f"expected one run directory in {out_dir}, found {runs}")
    info = json.loads((runs[0] / "config.json").read_text())
    data = info.get("data") or {}
    check(Path(data.get("path", "")).name == "census_first_names.txt" and len(data.get("sha256") or "") == 64,
          f"run's config.json records data {data}, expected the shipped census file and its sha256")
    print(f"seqgan-env train: exit 0, run {runs[0].name}, data {data['path']} (sha256 {data['sha256'][:12]}...)")


def main() -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    with tempfile.TemporaryDirectory(prefix="seqgan-wheel-check-") as tmp:
        os.chdir(tmp)  # nothing of a checkout on sys.path (sys.path[0] is this script's folder)
        check_install()
        check_gym()
        check_sb3()
        check_train(Path(tmp))
    print("wheel check OK")


if __name__ == "__main__":
    main()
