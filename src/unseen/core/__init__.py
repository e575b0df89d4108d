"""Shared core: assets, data records, training loop, checkpoints, metrics, reports."""
