"""Model-quality runs on real MNIST that write QUALITY.md: python -m benchmarks.quality.vae | gan | i2i."""
