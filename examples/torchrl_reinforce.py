"""torchrl drives the SeqGAN env: check_env_specs on the single and the native vector env, then REINFORCE.

Shows: ``GymWrapper`` on ``gymnasium.make("seqgan_env:SeqGAN-v1")`` as is, and
``make_torchrl_env(num_envs)`` for the natively batched env (torchrl needs its autoreset
DISABLED; the adapter does that and adds ``td["action_mask"]``). The policy is a
``ProbabilisticActor`` with torchrl's ``MaskedCategorical`` (PAD, BOS and too-early EOS are
never drawn); returns come from ``torchrl.objectives.value.functional.reward2go``. The
discriminator co-trains on the episodes it scores (the env's default), so the policy has to
move towards the data: the printed character-bigram JS distance to held-out names falls.

Run: python examples/torchrl_reinforce.py      (about 25 s on a shared 2-core CPU; needs pip install 'seqgan-env[torchrl]')
"""

import gymnasium as gym
import torch
from tensordict.nn import TensorDictModule
from torch import nn
from torchrl.envs import GymWrapper
from torchrl.envs.utils import ExplorationType, check_env_specs, set_exploration_type
from torchrl.modules import MaskedCategorical, ProbabilisticActor
from torchrl.objectives.value.functional import reward2go

import seqgan_env  # noqa: F401  (registers seqgan_env:SeqGAN-v1)
from seqgan_env.eval.metrics import ngram_jsd
from seqgan_env.integrations.torchrl import make_torchrl_env
from seqgan_env.rewards.registration import make_vector_env

torch.set_num_threads(1)  # tiny models: one thread beats two that wait on each other (and on other jobs)
torch.manual_seed(0)
NUM_ENVS, MAX_LENGTH, ITERATIONS = 64, 12, 60
ENV_KW = dict(max_length=MAX_LENGTH, seed=0)

# The single env needs no adapter; categorical_action_encoding keeps actions as token ids.
single = GymWrapper(gym.make("seqgan_env:SeqGAN-v1", **ENV_KW), categorical_action_encoding=True)
check_env_specs(single, seed=0)
vec = make_vector_env(NUM_ENVS, **ENV_KW)  # the native vector env paid by a discriminator
env = make_torchrl_env(env=vec)  # batch_size (64,), td["action_mask"]: (64, V) bool
check_env_specs(env, seed=0)
V = env.action_spec.space.n
held_out = [list(t) for t in vec.dataset.valid_texts]  # names the discriminator never trains on


def bigram_js() -> float:
    """Character-bigram JS distance of the sub-envs' current sequences to the held-out names."""
    texts = [list(t) for t in vec.unwrapped.texts() if len(t) >= 2] or [["?", "?"]]
    return ngram_jsd(texts, held_out, n=2)


class Policy(nn.Module):
    """(..., T) token ids (right-padded with PAD=0) -> (..., V) logits of the next token: a GRU over the prefix."""

    def __init__(self, vocab_size: int, embed_dim: int = 32, hidden: int = 128):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed_dim)
        self.gru = nn.GRU(embed_dim, hidden, batch_first=True)
        self.head = nn.Linear(hidden, vocab_size)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        flat = obs.reshape(-1, obs.shape[-1])  # (N, T): torchrl passes (B, T) in rollouts, (B, S, T) in get_dist
        out, _ = self.gru(self.embed(flat))  # (N, T, H)
        last = (flat != 0).sum(1).clamp(min=1) - 1  # (N,) position of the newest token (BOS at 0)
        return self.head(out[torch.arange(len(flat)), last]).reshape(*obs.shape[:-1], -1)  # (..., V)


net = Policy(V)
actor = ProbabilisticActor(
    TensorDictModule(net, in_keys=["observation"], out_keys=["logits"]),
    in_keys={"logits": "logits", "mask": "action_mask"}, distribution_class=MaskedCategorical,
    return_log_prob=True, spec=env.action_spec,
)
optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)

js_before = None
for it in range(ITERATIONS):
    # One episode per sub-env: MAX_LENGTH steps from a reset; steps after a row's first done are masked out.
    with set_exploration_type(ExplorationType.RANDOM):
        td = env.rollout(MAX_LENGTH, actor, auto_reset=True, break_when_any_done=False)  # batch (B, S)
    js_before = bigram_js() if js_before is None else js_before
    done = td["next", "done"]  # (B, S, 1)
    alive = (done.long().cumsum(1) - done.long()) == 0  # (B, S, 1): up to and including the first done
    reward = td["next", "reward"] * alive  # (B, S, 1)
    returns = reward2go(reward, done, gamma=1.0)  # (B, S, 1) reward-to-go within each episode
    baseline = (returns * alive).sum(0) / alive.sum(0).clamp(min=1)  # (S, 1) per-step mean
    dist = actor.get_dist(td)  # recomputed with grad: the rollout's log-probs were taken without
    logp = dist.log_prob(td["action"]).unsqueeze(-1)  # (B, S, 1)
    loss = -(logp * (returns - baseline) * alive).sum() / alive.sum()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    if it % 10 == 0 or it == ITERATIONS - 1:
        print(f"iteration {it:3d}: mean reward per token {float(reward.sum() / alive.sum()):.3f}  "
              f"mean episode length {float(alive.sum(1).float().mean()):.1f}  D phases {vec.trainer.num_phases}")

print(f"bigram JS to held-out names: first rollout {js_before:.3f}, last rollout {bigram_js():.3f}")
print("last sequences:", " ".join(vec.unwrapped.texts()[:8]))
env.close()
