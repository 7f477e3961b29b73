"""Rewards: reward modes, discriminator reward wrappers, prefix scoring, MC rollouts, the D-update schedule,
and registration of the D-paid env (SeqGAN-v1)."""
