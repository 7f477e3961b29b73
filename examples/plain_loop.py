"""A CleanRL-style REINFORCE loop in plain torch: no RL library, only the Gymnasium API.

Shows that the environment is library-agnostic: ``gymnasium.make_vec`` builds the
natively batched env, the policy is a small embedding + MLP over the (B, T)
token-id observation, and sampling is masked with ``env.action_masks()`` (so PAD,
BOS and too-early EOS are never chosen). The discriminator stays fixed here (no
``update_every``), so the printed mean reward per token should rise as the policy
learns what this discriminator scores as "real".

Run: python examples/plain_loop.py      (about 6 s on a 2-core CPU)
"""

import gymnasium as gym
import torch
from torch import nn

torch.set_num_threads(1)  # tiny models: one thread beats two that wait on each other (and on other jobs)

NUM_ENVS, MAX_LENGTH, ITERATIONS = 64, 12, 30
torch.manual_seed(0)
env = gym.make_vec("seqgan_env:SeqGAN-v0", num_envs=NUM_ENVS, vectorization_mode="vector_entry_point",
                   max_length=MAX_LENGTH, reward_mode="per_step", reward_transform="prob", seed=0)
V = env.single_action_space.n


class Policy(nn.Module):
    """(B, T) token ids (right-padded with PAD=0) -> (B, V) logits of the next token."""

    def __init__(self, vocab_size: int, max_length: int, embed_dim: int = 16, hidden: int = 128):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed_dim)
        self.mlp = nn.Sequential(nn.Linear(max_length * embed_dim, hidden), nn.Tanh(), nn.Linear(hidden, vocab_size))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.embed(obs).flatten(1))  # (B, T, E) -> (B, T*E) -> (B, V)


policy = Policy(V, MAX_LENGTH)
optimizer = torch.optim.Adam(policy.parameters(), lr=3e-3)

for it in range(ITERATIONS):
    # Rollout: one episode per sub-env; a row's steps after its episode ended are masked out.
    obs, _ = env.reset(seed=it)
    logps, rewards, alive = [], [], []
    running = torch.ones(NUM_ENVS, dtype=torch.bool)  # (B,) episode still going
    for t in range(MAX_LENGTH):
        masks = torch.as_tensor(env.action_masks())  # (B, V) bool
        logits = policy(torch.as_tensor(obs)).masked_fill(~masks, float("-inf"))  # (B, V)
        dist = torch.distributions.Categorical(logits=logits)
        action = dist.sample()  # (B,)
        obs, reward, terminated, truncated, _ = env.step(action.numpy())
        logps.append(dist.log_prob(action))
        rewards.append(torch.as_tensor(reward, dtype=torch.float32))
        alive.append(running.clone())
        running &= ~torch.as_tensor(terminated | truncated)
        if not running.any():
            break
    alive_t = torch.stack(alive, 1).float()  # (B, S)
    rew = torch.stack(rewards, 1) * alive_t  # (B, S)
    returns = rew.flip(1).cumsum(1).flip(1)  # (B, S) reward-to-go, gamma = 1
    baseline = (returns * alive_t).sum(0) / alive_t.sum(0).clamp(min=1)  # (S,) per-step mean
    adv = (returns - baseline) * alive_t  # (B, S)
    loss = -(torch.stack(logps, 1) * alive_t * adv).sum() / alive_t.sum()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    if it % 5 == 0 or it == ITERATIONS - 1:
        per_token = float(rew.sum() / alive_t.sum())
        print(f"iteration {it:3d}: mean reward per token {per_token:.3f}  "
              f"mean episode length {float(alive_t.sum(1).mean()):.1f}")

texts = env.unwrapped.texts()
print("last sequences:", " ".join(texts[:8]))
env.close()
