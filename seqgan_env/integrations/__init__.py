"""Integrations with RL libraries; the only modules that import them (sb3)."""
