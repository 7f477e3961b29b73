"""Evaluation: sample metrics, likelihood, n-gram judge, discriminator health, the SeqGAN oracle."""
