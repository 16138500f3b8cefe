"""Training: the loop, its objectives, optimiser, checkpoints and distributed setup."""
