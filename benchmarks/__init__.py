"""Speed (speed_*.py, `seqgan-env bench`) and quality (quality_*.py, `seqgan-env benchmark`) benchmarks.

Installed as ``seqgan_benchmarks``; only ``seqgan_env.cli`` imports it."""
