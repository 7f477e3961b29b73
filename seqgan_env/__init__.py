"""seqgan-env: SeqGAN-style text generation as a Gymnasium reinforcement-learning environment.

``gymnasium.make("seqgan_env:SeqGAN-v1")`` gives one generator episode paid by a
discriminator that co-trains on the episodes it scores; ``gymnasium.make_vec("seqgan_env:SeqGAN-v1",
num_envs=N, vectorization_mode="vector_entry_point")`` gives the natively batched version.
``SeqGAN-v0`` stays registered with its old defaults for reproducibility (see
``seqgan_env.envs.versions``).
"""

from seqgan_env.envs.env import TokenGenerationEnv
from seqgan_env.envs.vector_env import TokenGenerationVectorEnv
from seqgan_env.rewards.registration import make_env, make_vector_env
from seqgan_env.rewards.sources import RewardSource
from seqgan_env.rewards.wrappers import DiscriminatorReward, DiscriminatorRewardVector, RewardConfig

__version__ = "0.1.0"

from seqgan_env.envs.versions import ENV_ID, register_envs

register_envs()

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
