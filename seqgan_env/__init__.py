"""seqgan-env: SeqGAN-style text generation as a Gymnasium reinforcement-learning environment.

``gymnasium.make("seqgan_env:SeqGAN-v0")`` gives one generator episode paid by a
discriminator; ``gymnasium.make_vec("seqgan_env:SeqGAN-v0", num_envs=N,
vectorization_mode="vector_entry_point")`` gives the natively batched version.
"""

from gymnasium.envs.registration import register, registry

from seqgan_env.envs.env import TokenGenerationEnv
from seqgan_env.envs.vector_env import TokenGenerationVectorEnv
from seqgan_env.rewards.registration import make_env, make_vector_env
from seqgan_env.rewards.sources import RewardSource
from seqgan_env.rewards.wrappers import DiscriminatorReward, DiscriminatorRewardVector, RewardConfig

__version__ = "0.1.0"

ENV_ID = "SeqGAN-v0"
if ENV_ID not in registry:
    register(
        id=ENV_ID,
        entry_point="seqgan_env.rewards.registration:make_env",
        vector_entry_point="seqgan_env.rewards.registration:make_vector_env",
    )

__all__ = [
    "ENV_ID",
    "DiscriminatorReward",
    "DiscriminatorRewardVector",
    "RewardConfig",
    "RewardSource",
    "TokenGenerationEnv",
    "TokenGenerationVectorEnv",
    "make_env",
    "make_vector_env",
]
