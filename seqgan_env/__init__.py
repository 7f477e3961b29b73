"""seqgan-env: SeqGAN-style text generation as a Gymnasium environment."""
