"""The REINFORCE loop in a few lines: a Llama generator against a co-trained discriminator.

The env trains its discriminator itself (a D phase every 128 finished episodes: once per
collected batch of 128 here), so the loop needs no D schedule of its own.

Runs in well under a minute on a CPU: python examples/train_reinforce.py
"""

from seqgan_agents.reinforce import ReinforceAgent, ReinforceConfig
from seqgan_env import DiscriminatorRewardVector, TokenGenerationVectorEnv
from seqgan_env.data.text import load_dataset
from seqgan_env.models.discriminator import Discriminator
from seqgan_env.models.networks import ModelConfig, build_generator

data = load_dataset(max_length=12)  # the embedded census first names
tok = data.tokenizer
agent = ReinforceAgent(build_generator(ModelConfig(), tok.vocab_size),
                       ReinforceConfig(batch_size=128, lr=2e-3, mle_coef=0.5, device="cpu"))
disc = Discriminator(tok.vocab_size, seed=0)
env = DiscriminatorRewardVector(TokenGenerationVectorEnv(128, tokenizer=tok, max_length=12, return_torch=True),
                                disc, real_data=data.train)

for step in range(400):  # MLE pretraining, as SeqGAN does
    agent.mle_step(data.train[step * 16 % len(data.train):][:128])
for update in range(1, 151):  # adversarial REINFORCE
    rollout = agent.collect(env)  # rewards come from the env's discriminator wrapper
    metrics = agent.update(rollout, real=data.train[update * 64 % len(data.train):][:128])
    if update % 50 == 0:
        d_metrics = env.trainer.last_metrics  # the latest D phase the env ran
        print(f"update {update}: reward {metrics['reward_mean']:.3f}  D loss {d_metrics.get('loss', float('nan')):.3f}")
print(" ".join(tok.decode_batch(agent.sample(12, 12, seed=0))))
