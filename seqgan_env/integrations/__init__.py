"""Integrations with RL libraries; the only modules that import them: sb3 (Stable-Baselines3), trl (TRL's
GRPO / RLOO trainers; optional extra ``[trl]``) and torchrl (optional extra ``[torchrl]``)."""
