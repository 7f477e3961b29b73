"""The registered environment ids and what changed between their versions.

Following Gymnasium's convention, a change of behaviour gets a new version of the id and
the old one stays registered as it was, so that results made with it can be reproduced;
``gymnasium.make`` warns when an older version is made while a newer one exists.

Version History:

* ``SeqGAN-v1``: the discriminator co-trains by default (a D phase every
  ``RewardConfig.update_every`` = 128 finished episodes, on the schedule ``seqgan-env train``
  uses); reward ``potential``/``prob`` (pays each prefix's change in D's probability: no
  bias for long or short sequences); D's loss on whole sequences (``prefix_loss=False``);
  the envs made in one process with the same arguments share one discriminator.
* ``SeqGAN-v0``: reward ``per_step``/``prob`` (every step pays D's probability, which is
  > 0, so sequences grow to ``max_length``), D's loss pooled over prefixes, and D fixed
  unless ``update_every`` or a callback trains it; one D per env. Kept for reproducing
  earlier results, not for training.
"""

from __future__ import annotations

from gymnasium.envs.registration import register, registry

ENV_ID = "SeqGAN-v1"
"""The current id: ``gymnasium.make(f"seqgan_env:{ENV_ID}")``."""

#: The keyword defaults of ``SeqGAN-v0``, on top of ``make_env`` / ``make_vector_env``'s own.
V0_KWARGS: dict = {
    "reward_mode": "per_step",
    "reward_transform": "prob",
    "update_every": None,
    "update_batch_size": 64,
    "update_steps": 1,
    "update_until_accuracy": None,
    "discriminator_config": {"prefix_loss": True},
    "share_discriminator": False,
}


def register_envs() -> None:
    """Register every version with Gymnasium (once per process)."""
    entry = dict(entry_point="seqgan_env.rewards.registration:make_env",
                 vector_entry_point="seqgan_env.rewards.registration:make_vector_env")
    if ENV_ID not in registry:
        register(id=ENV_ID, **entry)
    if "SeqGAN-v0" not in registry:
        register(id="SeqGAN-v0", kwargs=dict(V0_KWARGS), **entry)


__all__ = ["ENV_ID", "V0_KWARGS", "register_envs"]
