"""Example agents (REINFORCE, SB3 PPO) for seqgan-env."""
