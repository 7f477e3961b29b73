"""sb3-contrib MaskablePPO: the policy never samples a masked token (PAD, BOS, early EOS).

Shows: the native SB3 adapter exposes ``action_masks()`` ((n_envs, vocab_size) bool),
which MaskablePPO calls on every step, so no episode ends on an invalid action and
no update is spent learning to avoid them. Same setup as ``sb3_ppo.py`` otherwise:
``make_sb3_env(n, backend="native")``, ``sb3_policy_kwargs``, ``SB3DiscriminatorCallback``
on the embedded census first names; prints a few finished texts and D's metrics.

Run: python examples/sb3_maskable_ppo.py      (about 10 s on a 2-core CPU)
"""

import numpy as np
import torch
from sb3_contrib import MaskablePPO

from seqgan_env.integrations.sb3 import SB3DiscriminatorCallback, make_sb3_env, sb3_policy_kwargs
from seqgan_env.rewards.callbacks import DiscriminatorUpdateConfig

torch.set_num_threads(1)  # tiny models: one thread beats two that wait on each other (and on other jobs)

env = make_sb3_env(16, backend="native", max_length=12, seed=0, update_every=None)  # D on the callback's schedule  # obs (16, 12) token ids, right-padded
callback = SB3DiscriminatorCallback(DiscriminatorUpdateConfig(every=1, d_steps=1, batch_size=64))
model = MaskablePPO(
    "MlpPolicy", env, n_steps=64, batch_size=256, n_epochs=4, learning_rate=1e-3, ent_coef=0.01, seed=0,
    policy_kwargs=sb3_policy_kwargs(embed_dim=32, features_dim=64, net_arch=[64]),
)
model.learn(16 * 64 * 12, callback=callback)  # MaskablePPO finds env.action_masks() by itself

# Sample with masks until 8 episodes have finished; none can end on an invalid action.
obs, texts, scores, invalid = env.reset(), [], [], 0
while len(texts) < 8:
    actions, _ = model.predict(obs, action_masks=env.action_masks(), deterministic=False)  # (16,)
    obs, _, dones, infos = env.step(actions)
    for i in np.flatnonzero(dones):
        invalid += bool(infos[i].get("invalid_action", False))
        texts.append(infos[i]["text"])
        scores.append(infos[i].get("disc_score", float("nan")))
print("samples:", " ".join(f"{t}({s:.2f})" for t, s in zip(texts[:8], scores[:8])))
print(f"invalid actions while sampling: {invalid}")
m = callback.last_metrics
print(
    f"D after {callback.num_discriminator_updates} updates: loss {m['discriminator/loss']:.3f}  "
    f"acc_real {m['discriminator/acc_real']:.2f}  acc_fake {m['discriminator/acc_fake']:.2f}"
)
