"""Data: synthetic scenes, real dataset readers, vocabulary and PyTorch datasets."""
