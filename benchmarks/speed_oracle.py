"""`seqgan-env bench oracle`: adversarial generator tokens/s on the SeqGAN oracle task, vs a peer's numbers.

The peer anchor is a widely used PyTorch SeqGAN implementation measured on
the same 2-core CPU with the same task sizes: LSTM generator (emb/hidden 32), CNN
discriminator, B=64, K=16 rollouts, V=5,000, T=20. One adversarial generator step
took about 29 s (about 45 generator tokens/s); an MLE epoch over 10,000 sequences
took 3.6 s. Those two numbers are constants here (the peer's code is not shipped);
ours are measured in this process:

* ``mc_rollout``: one adversarial generator step = collect B sequences through the
  vector env whose reward is SeqGAN's Monte-Carlo rollout (K completions of every
  prefix, batched, KV-cached) + the REINFORCE update + the rollout-policy update;
* ``per_step``: the same step with our one-pass per-prefix discriminator reward;
* MLE epoch: ceil(10,000 / B) teacher-forced steps of batch B on oracle data, for our LSTM family
  (``generator.family=lstm``, SeqGAN's shape), the peer's step re-implemented here (:class:`PeerLSTM`:
  the plain PyTorch way, log_softmax + NLLLoss over the full logits, Adam) and our Llama, interleaved
  in rounds in this process, so the ratio is measured side by side, not against the constant.

The adversarial steps' generator is our Llama with hidden size 32 (the peer's width), the
discriminator our default tiny one. Tokens per step = B x T (no EOS on this task).
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable

import torch

from seqgan_agents.reinforce import ReinforceAgent, ReinforceConfig
from seqgan_benchmarks.speed_env import machine_description
from seqgan_env.envs.vector_env import TokenGenerationVectorEnv
from seqgan_env.eval.oracle import SEQ_LEN
from seqgan_env.eval.oracle_data import load_oracle_dataset
from seqgan_env.models.discriminator import Discriminator
from seqgan_env.models.networks import ModelConfig, build_generator
from seqgan_env.rewards.mc_rollout import make_mc_rollout_scorer
from seqgan_env.rewards.wrappers import DiscriminatorRewardVector, RewardConfig
from seqgan_env.utils.validation import check_ints

PEER_STEP_SECONDS = 29.0  # one adversarial generator step of the peer (B=64, K=16, V=5000, T=20)
PEER_TOKENS_PER_S = 45.0  # its generator tokens/s
PEER_MLE_EPOCH_SECONDS = 3.6  # its MLE epoch over 10,000 sequences
GOALS = {"mc_rollout": 20.0, "per_step": 1000.0}  # the targets: ours / peer tokens/s


@dataclass(frozen=True)
class OracleBenchConfig:
    """Sizes of ``bench oracle``: B, K, generator updates timed per reward, MLE data size."""

    batch_size: int = 64
    num_rollouts: int = 16
    mc_updates: int = 2
    per_step_updates: int = 10
    train_sequences: int = 10_000
    mle_rounds: int = 3
    device: str = "auto"
    seed: int = 0

    def __post_init__(self) -> None:
        check_ints(self, ("batch_size", "num_rollouts", "mc_updates", "per_step_updates", "train_sequences",
                          "mle_rounds"))


def bench_oracle(cfg: OracleBenchConfig = OracleBenchConfig(), log: Callable[[str], None] = print) -> dict[str, Any]:
    """Measure and print; returns tokens/s per reward, ratios to the peer and the MLE epoch time."""
    data = load_oracle_dataset(cfg.train_sequences, 0, seed=cfg.seed)
    tok, B, T = data.tokenizer, cfg.batch_size, SEQ_LEN
    torch.manual_seed(cfg.seed)
    gen_cfg = ModelConfig(hidden_size=32, intermediate_size=64, max_position_embeddings=T + 1)
    agent = ReinforceAgent(
        build_generator(gen_cfg, tok.vocab_size),
        ReinforceConfig(batch_size=B, baseline="none", device=cfg.device),
        seed=cfg.seed,
    )
    dev = agent.device
    disc = Discriminator(tok.vocab_size, ModelConfig(max_position_embeddings=T + 1), device=dev, seed=cfg.seed)

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize()

    def env() -> TokenGenerationVectorEnv:
        return TokenGenerationVectorEnv(B, tokenizer=tok, max_length=T, allow_eos=False, device=dev,
                                        return_torch=True, decode_text=False)

    def time_steps(venv, updates: int, after: Callable[[], None]) -> float:
        agent.update(agent.collect(venv))  # warm-up
        after()
        sync()
        t0 = time.perf_counter()
        for _ in range(updates):
            agent.update(agent.collect(venv))
            after()
        sync()
        return (time.perf_counter() - t0) / updates

    results: dict[str, Any] = {}
    scorer = make_mc_rollout_scorer(disc, agent.generator, num_rollouts=cfg.num_rollouts, max_length=T,
                                    allow_eos=False, seed=cfg.seed)
    mc_venv = DiscriminatorRewardVector(env(), scorer, RewardConfig(mode="per_step", transform="prob"))
    results["mc_rollout_step_s"] = time_steps(mc_venv, cfg.mc_updates, lambda: scorer.update_rollout_policy(agent.generator))
    ps_venv = DiscriminatorRewardVector(env(), disc, RewardConfig(mode="per_step", transform="prob"))
    results["per_step_step_s"] = time_steps(ps_venv, cfg.per_step_updates, lambda: None)
    for name in ("mc_rollout", "per_step"):
        tps = B * T / results[f"{name}_step_s"]
        results[f"{name}_tokens_per_s"] = tps
        results[f"{name}_vs_peer"] = tps / PEER_TOKENS_PER_S

    results.update(bench_mle_epochs(data.train, tok.vocab_size, cfg, dev, sync))
    log(f"machine: {machine_description()}")
    log(f"bench oracle: B={B}, K={cfg.num_rollouts}, V={tok.num_symbols}, T={T}; generator Llama hidden 32, "
        f"default tiny discriminator; one adversarial generator step = collect through the env + REINFORCE update")
    log(f"  peer (PyTorch SeqGAN, LSTM 32, same CPU): {PEER_STEP_SECONDS:.0f} s/step = {PEER_TOKENS_PER_S:.0f} "
        f"tokens/s; MLE epoch {PEER_MLE_EPOCH_SECONDS} s")
    for name in ("mc_rollout", "per_step"):
        ok = "meets" if results[f"{name}_vs_peer"] >= GOALS[name] else "below"
        log(f"  {name:<10} {results[f'{name}_step_s']:8.3f} s/step {results[f'{name}_tokens_per_s']:10,.0f} tokens/s "
            f"= {results[f'{name}_vs_peer']:7.1f}x peer  (goal >= {GOALS[name]:.0f}x: {ok})")
    log(f"  MLE epoch over {cfg.train_sequences} sequences (batch {B}), {cfg.mle_rounds} interleaved rounds, "
        f"the peer re-implemented and run in this process:")
    for name in MLE_ARMS:
        log(f"    {MLE_LABELS[name]:<46} {results[f'mle_epoch_{name}_s']:7.2f} s "
            f"(rounds {', '.join(f'{t:.2f}' for t in results[f'mle_epoch_{name}_rounds'])})  "
            f"peer/ours {results[f'mle_epoch_{name}_vs_peer']:.2f}x")
    log(f"    the peer's own number on this CPU (idle): {PEER_MLE_EPOCH_SECONDS} s")
    return results


MLE_ARMS = ("lstm", "peer", "llama")
MLE_LABELS = {
    "lstm": "ours, generator.family=lstm (SeqGAN's shape)",
    "peer": "peer: plain PyTorch SeqGAN LSTM step",
    "llama": "ours, tiny Llama hidden 32",
}


class PeerLSTM(torch.nn.Module):
    """The peer's generator and MLE step, written the way PyTorch SeqGAN ports write them: embedding 32,
    one ``nn.LSTM`` of 32, a linear layer, ``log_softmax`` and ``NLLLoss`` over the (B T, V) logits."""

    def __init__(self, vocab: int, size: int = 32) -> None:
        super().__init__()
        self.embedding = torch.nn.Embedding(vocab, size)
        self.lstm = torch.nn.LSTM(size, size, batch_first=True)
        self.out = torch.nn.Linear(size, vocab)

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        y, _ = self.lstm(self.embedding(inp))  # (B, T, H)
        return torch.log_softmax(self.out(y), dim=-1)  # (B, T, V)


def _peer_step(vocab: int, device: torch.device) -> Callable[[torch.Tensor], float]:
    """One MLE step of the peer: Adam lr 0.01, gradient norm clipped at 5 (SeqGAN's settings)."""
    model = PeerLSTM(vocab).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    loss_fn = torch.nn.NLLLoss()

    def step(real: torch.Tensor) -> float:
        inp = torch.cat([torch.full_like(real[:, :1], 1), real[:, :-1]], dim=1)  # (B, T) BOS-shifted
        opt.zero_grad()
        loss = loss_fn(model(inp).flatten(0, 1), real.flatten())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        return loss.item()

    return step


def bench_mle_epochs(train: torch.Tensor, vocab: int, cfg: OracleBenchConfig, dev: torch.device, sync: Callable[[], None]
                     ) -> dict[str, Any]:
    """Seconds per MLE epoch (ceil(N / B) steps of batch B) of our LSTM, the peer's step and our Llama,
    timed in ``cfg.mle_rounds`` rounds that alternate the order of the three (shared-CPU noise hits all alike).

    Returns ``mle_epoch_<arm>_s`` (median over rounds), ``..._rounds`` and ``..._vs_peer`` (peer seconds /
    ours: above 1 means faster than the peer), per 10,000 sequences as the peer's constant is.
    """
    from seqgan_env.models.networks import GeneratorConfig

    B = cfg.batch_size
    torch.manual_seed(cfg.seed)
    agents = {
        "lstm": ReinforceAgent(build_generator(GeneratorConfig(family="lstm", num_layers=1), vocab),
                               ReinforceConfig(batch_size=B, lr=0.01, max_grad_norm=5.0, device=cfg.device)),
        "llama": ReinforceAgent(build_generator(ModelConfig(hidden_size=32, intermediate_size=64,
                                                            max_position_embeddings=SEQ_LEN + 1), vocab),
                                ReinforceConfig(batch_size=B, baseline="none", device=cfg.device)),
    }
    steps = {name: agent.mle_step for name, agent in agents.items()}
    steps["peer"] = _peer_step(vocab, dev)
    n_steps = math.ceil(cfg.train_sequences / B)
    times: dict[str, list[float]] = {name: [] for name in MLE_ARMS}
    for r in range(cfg.mle_rounds):
        order = MLE_ARMS if r % 2 == 0 else MLE_ARMS[::-1]
        for name in order:
            gen = torch.Generator().manual_seed(cfg.seed + r)
            step = steps[name]
            step(train[:B].to(dev))  # warm-up
            sync()
            t0 = time.perf_counter()
            for _ in range(n_steps):
                step(train[torch.randint(len(train), (B,), generator=gen)].to(dev))
            sync()
            times[name].append((time.perf_counter() - t0) * 10_000 / cfg.train_sequences)
    out: dict[str, Any] = {}
    peer = statistics.median(times["peer"])
    for name in MLE_ARMS:
        med = statistics.median(times[name])
        out[f"mle_epoch_{name}_s"], out[f"mle_epoch_{name}_rounds"] = med, times[name]
        out[f"mle_epoch_{name}_vs_peer"] = peer / med
    out["mle_epoch_s"] = out["mle_epoch_lstm_s"]
    return out


__all__ = ["OracleBenchConfig", "bench_oracle", "PEER_TOKENS_PER_S", "PEER_MLE_EPOCH_SECONDS"]
