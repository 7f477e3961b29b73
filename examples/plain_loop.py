"""A CleanRL-style REINFORCE loop in plain torch: no RL library, only the Gymnasium API.

``gymnasium.make_vec`` builds the natively batched env exactly as a user of any RL library
gets it: the discriminator co-trains on the episodes it scores (a D phase every 128
finished episodes), so the policy cannot win by exploiting a fixed judge and has to move
towards the data. The policy is a small GRU over the (B, T) token-id observation; sampling
is masked with ``env.action_masks()`` (PAD, BOS and too-early EOS are never chosen).
Printed: the character-bigram Jensen-Shannon distance of the policy's samples to held-out
names (lower: closer to the data) before and after training, and the samples.

Run: python examples/plain_loop.py      (about 20 s on a 2-core CPU)
"""

from collections import Counter

import gymnasium as gym
import torch
from torch import nn

from seqgan_env.eval.metrics import ngram_jsd

torch.set_num_threads(1)  # tiny models: one thread beats two that wait on each other (and on other jobs)

NUM_ENVS, ITERATIONS = 64, 100
torch.manual_seed(0)
env = gym.make_vec("seqgan_env:SeqGAN-v1", num_envs=NUM_ENVS, vectorization_mode="vector_entry_point", seed=0)
V, T = env.single_action_space.n, env.single_observation_space.shape[0]
held_out = env.dataset.valid_texts  # names the env's discriminator never trains on


class Policy(nn.Module):
    """(B, T) token ids (right-padded with PAD=0) -> (B, V) logits of the next token."""

    def __init__(self, vocab_size: int, embed_dim: int = 32, hidden: int = 128):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed_dim)
        self.gru = nn.GRU(embed_dim, hidden, batch_first=True)
        self.head = nn.Linear(hidden, vocab_size)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        out, _ = self.gru(self.embed(obs))  # (B, T, H)
        last = (obs != 0).sum(1).clamp(min=1) - 1  # (B,) position of the newest token (BOS at 0)
        return self.head(out[torch.arange(len(obs)), last])  # (B, V)


def rollout(policy: Policy, seed: int):
    """One episode per sub-env: log-probs, rewards and alive masks, each (B, S), and the texts."""
    obs, _ = env.reset(seed=seed)
    logps, rewards, alive = [], [], []
    running = torch.ones(NUM_ENVS, dtype=torch.bool)  # (B,) episode still going
    texts = [""] * NUM_ENVS
    for _ in range(T):
        masks = torch.as_tensor(env.action_masks())  # (B, V) bool
        dist = torch.distributions.Categorical(logits=policy(torch.as_tensor(obs)).masked_fill(~masks, -1e9))
        action = dist.sample()  # (B,)
        obs, reward, terminated, truncated, info = env.step(action.numpy())
        done = torch.as_tensor(terminated | truncated)
        for i in (done & running).nonzero().flatten().tolist():
            texts[i] = str(info["text"][i])
        logps.append(dist.log_prob(action))
        rewards.append(torch.as_tensor(reward, dtype=torch.float32))
        alive.append(running.clone())
        running &= ~done
        if not running.any():
            break
    return torch.stack(logps, 1), torch.stack(rewards, 1), torch.stack(alive, 1).float(), texts


def report(label: str, texts: list[str]) -> None:
    chars = Counter("".join(texts))
    top = chars.most_common(1)[0][1] / max(1, sum(chars.values())) if chars else 1.0
    js = ngram_jsd([list(t) for t in texts if len(t) >= 2] or [["?", "?"]], [list(t) for t in held_out], n=2)
    print(f"{label}: bigram JS to held-out names {js:.3f}  mean length {sum(map(len, texts)) / len(texts):.1f}  "
          f"most common character {top:.2f} of all")


policy = Policy(V)
optimizer = torch.optim.Adam(policy.parameters(), lr=3e-3)
with torch.no_grad():
    report("before", rollout(policy, seed=10_000)[3])
for it in range(ITERATIONS):
    logp, rew, alive, _ = rollout(policy, seed=it)
    rew = rew * alive
    returns = rew.flip(1).cumsum(1).flip(1)  # (B, S) reward-to-go, gamma = 1
    baseline = (returns * alive).sum(0) / alive.sum(0).clamp(min=1)  # (S,) per-step mean
    loss = -(logp * alive * (returns - baseline) * alive).sum() / alive.sum()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    if it % 10 == 0 or it == ITERATIONS - 1:
        d = env.trainer.last_metrics
        print(f"iteration {it:3d}: mean return {float(rew.sum(1).mean()):+.3f}  D phases {env.trainer.num_phases}"
              f"  D accuracy {0.5 * (d.get('acc_real', 0) + d.get('acc_fake', 0)):.2f}")
with torch.no_grad():
    texts = rollout(policy, seed=10_001)[3]
report("after", texts)
print("samples:", " ".join(texts[:12]))
env.close()
