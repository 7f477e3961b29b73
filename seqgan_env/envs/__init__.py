"""Environments: the episode spec (EnvConfig and the one token-validity rule), env, vector env."""
