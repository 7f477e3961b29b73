"""Stable-Baselines3 PPO against a co-trained discriminator, on the natively batched env.

Shows: ``make_sb3_env(n, backend="native")`` (one SB3 ``VecEnv`` over the batched
torch env, one shared discriminator), ``sb3_policy_kwargs`` (a token embedding + GRU
features extractor instead of an MLP over raw ids) and ``SB3DiscriminatorCallback``
(trains D between rollouts on the sequences PPO just wrote). Trains briefly on the
embedded census first names, then prints a few finished texts and D's metrics.

Run: python examples/sb3_ppo.py      (about 10 s on a 2-core CPU)
"""

import numpy as np
import torch
from stable_baselines3 import PPO

from seqgan_env.integrations.sb3 import SB3DiscriminatorCallback, make_sb3_env, sb3_policy_kwargs
from seqgan_env.rewards.callbacks import DiscriminatorUpdateConfig

torch.set_num_threads(1)  # tiny models: one thread beats two that wait on each other (and on other jobs)

env = make_sb3_env(16, backend="native", max_length=12, seed=0, update_every=None)  # D on the callback's schedule  # obs (16, 12) token ids, right-padded
callback = SB3DiscriminatorCallback(DiscriminatorUpdateConfig(every=1, d_steps=1, batch_size=64))
model = PPO(
    "MlpPolicy", env, n_steps=64, batch_size=256, n_epochs=4, learning_rate=1e-3, ent_coef=0.01, seed=0,
    policy_kwargs=sb3_policy_kwargs(embed_dim=32, features_dim=64, net_arch=[64]),
)
model.learn(16 * 64 * 12, callback=callback)  # 12 rollouts of 1,024 steps, one D update after each

# Sample with the trained policy until 8 episodes have finished; each finished info carries its text.
obs, texts, scores = env.reset(), [], []
while len(texts) < 8:
    actions, _ = model.predict(obs, deterministic=False)  # (16,) token ids
    obs, _, dones, infos = env.step(actions)
    for i in np.flatnonzero(dones):
        if not infos[i].get("invalid_action", False):
            texts.append(infos[i]["text"])
            scores.append(infos[i]["disc_score"])
print("samples:", " ".join(f"{t}({s:.2f})" for t, s in zip(texts[:8], scores[:8])))
m = callback.last_metrics
print(
    f"D after {callback.num_discriminator_updates} updates: loss {m['discriminator/loss']:.3f}  "
    f"acc_real {m['discriminator/acc_real']:.2f}  acc_fake {m['discriminator/acc_fake']:.2f}"
)
