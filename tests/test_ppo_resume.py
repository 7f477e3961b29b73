"""`train --agent ppo|maskable_ppo --resume`: N updates straight equal N/2, a stop, `--resume`, N/2 more."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from seqgan_agents.lifecycle import new_run, resume_run
from seqgan_agents.trainer_config import TrainConfig, train_config_from_dict
from seqgan_env.runs.configio import config_to_dict

TINY_MODEL = dict(hidden_size=16, intermediate_size=32, num_heads=2, num_layers=1, max_position_embeddings=16)


def ppo_config(tmp_path: Path, agent: str, updates: int, every: int = 3, n_steps: int = 5) -> TrainConfig:
    data = config_to_dict(TrainConfig())
    data.update(out_dir=str(tmp_path / "runs"), name="p", agent=agent)
    data["generator"] = dict(TINY_MODEL)
    data["discriminator_model"] = dict(TINY_MODEL)
    data["reinforce"].update(batch_size=16, device="cpu")
    data["d_updates"].update(batch_size=8, every=every)
    # n_steps below the longest episode (12 tokens): episodes run across rollouts, so the env is saved
    # mid-episode; D's first phase (every * n_steps >= 12) has finished episodes to train on
    data["ppo"].update(n_envs=4, n_steps=n_steps, batch_size=2 * n_steps, n_epochs=2)  # 2 minibatches per epoch
    data["schedule"].update(updates=updates, pretrain_steps=2, d_pretrain_steps=1, eval_every=2, eval_samples=8,
                            checkpoint_every=2)
    return train_config_from_dict(data)


def metric_lines(run: Path) -> list[dict]:
    drop = {"wall_time", "update_seconds"}
    return [{k: v for k, v in json.loads(x).items() if k not in drop}
            for x in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("agent,every,n_steps", [("ppo", 3, 5), ("ppo", 1, 13), ("maskable_ppo", 4, 5)])
def test_resume_equals_uninterrupted(tmp_path, agent, every, n_steps):
    full = new_run(ppo_config(tmp_path / "a", agent, 6, every, n_steps))
    full.fit(progress=False)
    full.run.close()

    half = new_run(ppo_config(tmp_path / "b", agent, 4, every, n_steps))
    half.fit(progress=False)
    half.run.close()
    cfg_path = half.run.path / "config.json"  # raise the budget, as a user extending a run would
    info = json.loads(cfg_path.read_text())
    info["config"]["schedule"]["updates"] = 6
    cfg_path.write_text(json.dumps(info))
    resumed = resume_run(half.run.path)
    assert resumed.step == 4 and resumed.pretrained
    resumed.fit(progress=False)
    resumed.run.close()

    a, b = full.model.policy.state_dict(), resumed.model.policy.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert all(torch.equal(x, y) for x, y in zip(full.discriminator.state_dict().values(),
                                                  resumed.discriminator.state_dict().values()))
    lines_a, lines_b = metric_lines(full.run.path), metric_lines(half.run.path)
    assert any(m["step"] == 5 and "reward_mean" in m for m in lines_a)
    assert lines_a == lines_b


def test_signal_stops_at_a_checkpoint_that_resumes(tmp_path):
    """A stop request checkpoints before the next rollout; the resumed run ends where a straight one does."""
    full = new_run(ppo_config(tmp_path / "a", "ppo", 4))
    full.fit(progress=False)
    full.run.close()

    stopped = new_run(ppo_config(tmp_path / "b", "ppo", 4))
    original = stopped.run.log_metrics

    def log_then_stop(step, metrics):  # a SIGINT arriving during update 3's rollout
        original(step, metrics)
        if step == 2 and "reward_mean" in metrics:
            stopped.stop = True

    stopped.run.log_metrics = log_then_stop
    with pytest.raises(KeyboardInterrupt):
        stopped.fit(progress=False)
    stopped.run.close()
    assert stopped.saved_step == 2
    resumed = resume_run(stopped.run.path)
    assert resumed.step == 2
    resumed.fit(progress=False)
    resumed.run.close()
    a, b = full.model.policy.state_dict(), resumed.model.policy.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert metric_lines(full.run.path) == metric_lines(stopped.run.path)
