"""PPO over a SubprocVecEnv: each worker process holds its own discriminator copy, kept in sync.

Shows: ``make_sb3_env(2, backend="subproc")`` builds two single envs (each a
``DiscriminatorReward`` with its own discriminator, all seeded alike) in worker
processes. ``SB3DiscriminatorCallback`` trains a trainer-side copy of D between
rollouts and broadcasts its weights to every worker (``load_discriminator_state``
through SB3's worker pipes). The script prints that every worker's discriminator
hash equals the trainer's. Use this backend when the env is not natively batched;
for this env the native adapter (``sb3_ppo.py``) is much faster.

Run: python examples/sb3_subproc.py      (about 15 s on a 2-core CPU, most of it starting the workers)
The ``if __name__ == "__main__":`` guard is required: workers are started by
forkserver/spawn, which re-import this file.
"""

import hashlib
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # tiny models: one torch thread per process (workers inherit it)

import torch  # noqa: E402
from stable_baselines3 import PPO  # noqa: E402

from seqgan_env.integrations.sb3 import SB3DiscriminatorCallback, make_sb3_env, sb3_policy_kwargs  # noqa: E402
from seqgan_env.rewards.callbacks import DiscriminatorUpdateConfig  # noqa: E402


def state_hash(state: dict[str, torch.Tensor]) -> str:
    """First 12 hex digits of the sha256 of a state dict's tensors, in key order."""
    h = hashlib.sha256()
    for key in sorted(state):
        h.update(key.encode())
        h.update(state[key].detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:12]


if __name__ == "__main__":
    # 2 worker processes; update_every=None: no worker trains its own copy, the callback trains one and broadcasts it
    env = make_sb3_env(2, backend="subproc", max_length=12, seed=0, update_every=None)
    try:
        before = state_hash(env.env_method("discriminator_state", indices=0)[0])
        callback = SB3DiscriminatorCallback(DiscriminatorUpdateConfig(every=1, d_steps=1, batch_size=32))
        model = PPO(
            "MlpPolicy", env, n_steps=128, batch_size=128, n_epochs=2, learning_rate=1e-3, seed=0,
            policy_kwargs=sb3_policy_kwargs(embed_dim=32, features_dim=64, net_arch=[64]),
        )
        model.learn(2 * 128 * 4, callback=callback)  # 4 rollouts, a D update + broadcast after each
        trainer = state_hash(callback.reward_env.discriminator_state())
        workers = [state_hash(s) for s in env.env_method("discriminator_state")]
        print(f"D before training: {before}; after {callback.num_discriminator_updates} updates: trainer {trainer}")
        for i, w in enumerate(workers):
            print(f"worker {i}: {w} {'== trainer' if w == trainer else '!= trainer (OUT OF SYNC)'}")
        in_sync = all(w == trainer for w in workers) and trainer != before
        print(f"all {len(workers)} workers in sync with the trained discriminator: {in_sync}")
    finally:
        env.close()
    raise SystemExit(0 if in_sync else 1)
