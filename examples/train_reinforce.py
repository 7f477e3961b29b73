"""The REINFORCE loop in a few lines: a Llama generator against a co-trained discriminator.

Runs in well under a minute on a CPU: python examples/train_reinforce.py
"""

from seqgan_agents.reinforce import ReinforceAgent, ReinforceConfig
from seqgan_env import DiscriminatorRewardVector, RewardConfig, TokenGenerationVectorEnv
from seqgan_env.data.text import load_dataset
from seqgan_env.models.discriminator import Discriminator
from seqgan_env.models.networks import ModelConfig, build_generator
from seqgan_env.rewards.callbacks import DiscriminatorUpdateCallback, DiscriminatorUpdateConfig

data = load_dataset(max_length=12)  # the embedded census first names
tok = data.tokenizer
agent = ReinforceAgent(build_generator(ModelConfig(), tok.vocab_size),
                       ReinforceConfig(batch_size=128, lr=2e-3, mle_coef=0.5, device="cpu"))
disc = Discriminator(tok.vocab_size, seed=0)
env = DiscriminatorRewardVector(TokenGenerationVectorEnv(128, tokenizer=tok, max_length=12, return_torch=True),
                                disc, RewardConfig(mode="potential"), real_data=data.train)
d_schedule = DiscriminatorUpdateCallback(env, lambda n: agent.sample(n, 12), DiscriminatorUpdateConfig(batch_size=128))

for step in range(400):  # MLE pretraining, as SeqGAN does
    agent.mle_step(data.train[step * 16 % len(data.train):][:128])
for update in range(1, 151):  # adversarial REINFORCE
    rollout = agent.collect(env)  # rewards come from the env's discriminator wrapper
    metrics = agent.update(rollout, real=data.train[update * 64 % len(data.train):][:128])
    d_metrics = d_schedule.on_generator_update() or {}
    if update % 50 == 0:
        print(f"update {update}: reward {metrics['reward_mean']:.3f}  D loss {d_metrics.get('discriminator/loss', float('nan')):.3f}")
print(" ".join(tok.decode_batch(agent.sample(12, 12, seed=0))))
